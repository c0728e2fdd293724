//! Reliability, crash mid-run: the real bootstrap SIGKILLed in the middle of an invocation, and the handler
//! panicking in the middle of a run; each time the event is delivered again as Lambda would, and the run must complete
//! with nothing done twice and nothing left half-done (`testbed::crash`).

use serde_json::json;
use testbed::crash::{Case, panic_mid_run, sigkill_mid_run};
use testbed::samples::sample;
use update_distribution_regions::UpdateDistributionRegions;

/// A region added to the demo configuration: the run ends after its re-read under the lease, with the one update
/// held or not yet sent, so it may or may not have landed; the redelivery must converge either way.
fn case() -> Case {
    let event = sample("update-distribution-regions", "manual-add.json");
    let hold = json!({"operation": "UpdateDistributionConfiguration", "count": 1, "latencyMs": 3000});
    Case::on_demo(
        "update-distribution-regions",
        event,
        &[],
        hold,
        |calls| calls.iter().filter(|c| c.operation == "GetDistributionConfiguration" && c.ok()).count() >= 2,
        false,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_bootstrap_killed_at_the_update_when_lambda_redelivers_then_the_region_is_added_once_and_nothing_is_lost()
 {
    sigkill_mid_run(env!("CARGO_BIN_EXE_update-distribution-regions"), case()).await;
}

#[tokio::test]
async fn given_a_panic_before_the_update_when_lambda_retries_then_the_region_is_added_once() {
    panic_mid_run::<UpdateDistributionRegions>(case()).await;
}
