//! Reliability, crash mid-run: the real bootstrap SIGKILLed in the middle of an invocation, and the handler
//! panicking in the middle of a run; each time the event is delivered again as Lambda would, and the run must complete
//! with nothing done twice and nothing left half-done (`testbed::crash`).

use serde_json::json;
use start_idle_image_builders::StartIdleImageBuilders;
use testbed::crash::{Case, panic_mid_run, sigkill_mid_run};
use testbed::samples::sample;

/// Two builders to start in us-east-1, one at a time; the second start is held, and the run ends after the first.
fn case() -> Case {
    // One region: eu-west-1's STOPPING builder stops while the test runs, which would change the plan meanwhile.
    let mut event = sample("start-idle-image-builders", "manual-start.json");
    event["regions"] = json!(["us-east-1"]);
    let hold = json!({"operation": "StartImageBuilder", "after": 1, "count": 1, "latencyMs": 3000});
    Case::on_demo(
        "start-idle-image-builders",
        event,
        &[("MAX_CONCURRENCY", "1")],
        hold,
        |calls| calls.iter().any(|c| c.operation == "StartImageBuilder" && c.ok()),
        true,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_bootstrap_killed_after_the_first_start_when_lambda_redelivers_then_each_builder_starts_once() {
    sigkill_mid_run(env!("CARGO_BIN_EXE_start-idle-image-builders"), case()).await;
}

#[tokio::test]
async fn given_a_panic_after_the_first_start_when_lambda_retries_then_each_builder_starts_once() {
    panic_mid_run::<StartIdleImageBuilders>(case()).await;
}
