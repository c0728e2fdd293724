//! Reliability, crash mid-run: the real bootstrap SIGKILLed in the middle of an invocation, and the handler
//! panicking in the middle of a run; each time the event is delivered again as Lambda would, and the run must complete
//! with nothing done twice and nothing left half-done (`testbed::crash`).

use rotate_key_group::RotateKeyGroup;
use serde_json::json;
use testbed::crash::{Case, panic_mid_run, sigkill_mid_run};
use testbed::samples::{DEMO_SETTINGS, demo_account, sample};

/// A key uploaded for the demo group: the key is created, then the group update is held, and the run ends between.
fn case() -> Case {
    let event = sample("rotate-key-group", "s3-put.json");
    let extra: &[(&'static str, &str)] = &[];
    let mut settings: Vec<(&'static str, String)> = DEMO_SETTINGS.iter().map(|(k, v)| (*k, v.to_string())).collect();
    settings.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    // The first invocation's deadline is 8 s away: work may start until half a second before it.
    settings.push(("DEADLINE_MARGIN_MS", "500".into()));
    Case {
        function: "rotate-key-group",
        seed: demo_account(),
        event,
        settings,
        hold: json!({"operation": "UpdateKeyGroup", "count": 1, "latencyMs": 3000}),
        ends_after: |calls| calls.iter().any(|c| c.operation == "CreatePublicKey" && c.ok()),
        leaves_work: true,
    }
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
