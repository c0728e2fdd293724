//! The Lambda path: the function's real bootstrap under `cargo lambda watch`, invoked with `cargo lambda invoke`,
//! configured by environment and talking to the emulated AWS, exactly as it would run in Lambda.

use serde_json::json;
use testbed::emulator::{calls, start};
use testbed::lambda::LambdaPath;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_the_bootstrap_under_cargo_lambda_watch_when_invoked_then_it_reports_and_acts_through_the_emulator() {
    // GIVEN the emulated account and the function under the Lambda runtime emulator, configured by environment
    let running = start(json!({"timing": {"transitionMillis": 60000}, "regions": {"us-east-1": {"imageBuilders": {
        "team-a": {"State": "STOPPED"}, "team-b": {"State": "RUNNING"}
    }}}}))
    .await;
    let mut lambda = LambdaPath::watch().await;
    lambda.start_bootstrap(
        env!("CARGO_BIN_EXE_start-idle-image-builders"),
        &running.url,
        &[("RETRY_INITIAL_BACKOFF_MS", "1"), ("NAME_PREFIX", "team-")],
    );
    // WHEN a dry run and then a real request are invoked
    let dry = lambda.invoke(&json!({"dryRun": true})).await;
    let real = lambda.invoke(&json!({"requestId": "lambda-path-1"})).await;
    // THEN both answers are reports, the dry run made no mutating call, and the real one started team-a only
    assert_eq!(dry["function"], "start-idle-image-builders");
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["actions"][0]["outcome"], "planned");
    assert_eq!(real["eventId"], "manual:lambda-path-1");
    assert_eq!(real["actions"][0]["target"], "us-east-1/team-a");
    assert_eq!(real["actions"][0]["outcome"], "applied");
    assert_eq!(real["actions"][1]["outcome"], "skipped");
    let starts = calls(&running, "StartImageBuilder");
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].params["Name"], "team-a");
}
