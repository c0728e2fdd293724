//! Reliability, crash mid-run: the real bootstrap SIGKILLed in the middle of an invocation, and the handler
//! panicking in the middle of a run; each time the event is delivered again as Lambda would, and the run must complete
//! with nothing done twice and nothing left half-done (`testbed::crash`).

use serde_json::json;
use testbed::crash::{Case, panic_mid_run, sigkill_mid_run};
use testbed::samples::sample;
use update_image_lifecycle::UpdateImageLifecycle;

/// A sweep that deprecates every build but the newest AVAILABLE one, one at a time; the second update is held, and
/// the run ends after the first.
fn case() -> Case {
    let event = sample("update-image-lifecycle", "schedule-sweep.json");
    let hold = json!({"operation": "StartResourceStateUpdate", "after": 1, "count": 1, "latencyMs": 3000});
    Case::on_demo(
        "update-image-lifecycle",
        event,
        &[("MAX_CONCURRENCY", "1"), ("KEEP_AVAILABLE", "1"), ("DEPRECATE_AFTER_DAYS", "0")],
        hold,
        |calls| calls.iter().any(|c| c.operation == "StartResourceStateUpdate" && c.ok()),
        true,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_bootstrap_killed_after_the_first_update_when_lambda_redelivers_then_each_build_changes_once() {
    sigkill_mid_run(env!("CARGO_BIN_EXE_update-image-lifecycle"), case()).await;
}

#[tokio::test]
async fn given_a_panic_after_the_first_update_when_lambda_retries_then_each_build_changes_once() {
    panic_mid_run::<UpdateImageLifecycle>(case()).await;
}
