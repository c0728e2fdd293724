//! The Lambda path: the function's real bootstrap under `cargo lambda watch`, invoked with `cargo lambda invoke`,
//! configured by environment and talking to the emulated demo account, exactly as it would run in Lambda.

use serde_json::{Value, json};
use testbed::emulator::{calls, start};
use testbed::lambda::LambdaPath;
use testbed::samples::samples;
use testbed::tools::workspace_root;

/// The calls that change the account.
const MUTATING: &[&str] = &["CreatePublicKey", "UpdateKeyGroup"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_the_bootstrap_under_cargo_lambda_watch_when_a_sample_is_invoked_then_a_dry_run_changes_nothing_and_the_real_one_acts()
 {
    // GIVEN the demo account and the function under the Lambda runtime emulator, configured by environment
    let seed: Value =
        serde_json::from_str(&std::fs::read_to_string(workspace_root().join("events/local-account.json")).unwrap())
            .unwrap();
    let running = start(seed).await;
    let mut lambda = LambdaPath::watch().await;
    lambda.start_bootstrap(
        env!("CARGO_BIN_EXE_rotate-key-group"),
        &running.url,
        &[("RETRY_INITIAL_BACKOFF_MS", "1"), ("KEY_GROUP_IDS", "5f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f")],
    );
    let (_, mut event) =
        samples("rotate-key-group").into_iter().find(|(name, _)| name == "manual-add.json").expect("the sample");
    // WHEN the sample is invoked as a dry run, then for real
    let mut dry_event = event.clone();
    dry_event["dryRun"] = json!(true);
    let dry = lambda.invoke(&dry_event).await;
    let dry_mutations: usize = MUTATING.iter().map(|op| calls(&running, op).len()).sum();
    event["requestId"] = json!("lambda-path-1");
    let real = lambda.invoke(&event).await;
    // THEN both answers are reports; the dry run planned and made no mutating call; the real one applied, once
    assert_eq!(dry["function"], "rotate-key-group");
    assert_eq!(dry["dryRun"], true);
    assert!(dry["actions"].as_array().is_some_and(|a| a.iter().all(|x| x["outcome"] != "applied")), "{dry}");
    assert_eq!(dry_mutations, 0, "a dry run makes no mutating call");
    assert_eq!(real["eventId"], "manual:lambda-path-1");
    assert!(real["actions"].as_array().is_some_and(|a| a.iter().any(|x| x["outcome"] == "applied")), "{real}");
    assert_eq!(calls(&running, "UpdateKeyGroup").len(), 1, "exactly one UpdateKeyGroup");
    assert_eq!(calls(&running, "CreatePublicKey").len(), 1, "exactly one CreatePublicKey");
}
