//! Reliability, crash mid-run: the real bootstrap SIGKILLed in the middle of an invocation, and the handler
//! panicking in the middle of a run; each time the event is delivered again as Lambda would, and the run must complete
//! with nothing done twice and nothing left half-done (`testbed::crash`).

use rotate_key_group::RotateKeyGroup;
use serde_json::json;
use testbed::crash::{Case, panic_mid_run, sigkill_mid_run};
use testbed::samples::sample;

/// A key uploaded for the demo group: the key is created, then the group update is held, and the run ends between.
fn case() -> Case {
    let event = sample("rotate-key-group", "s3-put.json");
    let hold = json!({"operation": "UpdateKeyGroup", "count": 1, "latencyMs": 3000});
    Case::on_demo(
        "rotate-key-group",
        event,
        &[],
        hold,
        |calls| calls.iter().any(|c| c.operation == "CreatePublicKey" && c.ok()),
        true,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_bootstrap_killed_between_creating_the_key_and_updating_the_group_when_lambda_redelivers_then_one_key_joins_once()
 {
    sigkill_mid_run(env!("CARGO_BIN_EXE_rotate-key-group"), case()).await;
}

#[tokio::test]
async fn given_a_panic_between_creating_the_key_and_updating_the_group_when_lambda_retries_then_one_key_joins_once() {
    panic_mid_run::<RotateKeyGroup>(case()).await;
}
