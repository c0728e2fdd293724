//! The Lambda path: the function's real bootstrap under `cargo lambda watch`, invoked with `cargo lambda invoke`,
//! configured by environment and talking to the emulated demo account, exactly as it would run in Lambda.

use testbed::emulator::calls;
use testbed::lambda::dry_run_then_real;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_the_bootstrap_under_cargo_lambda_watch_when_a_sample_is_invoked_then_a_dry_run_changes_nothing_and_the_real_one_acts()
 {
    // GIVEN the demo account and the bootstrap configured by environment; WHEN the sample is invoked as a dry run,
    // then for real; THEN both are reports, the dry run made no mutating call (asserted by the helper) ...
    let run = dry_run_then_real(
        "update-distribution-regions",
        env!("CARGO_BIN_EXE_update-distribution-regions"),
        "manual-add.json",
        &[
            ("DESIRED_STATE_S3_URI", "s3://keeper-desired-state-123456789012-us-east-1/distribution-regions.json"),
            ("DISTRIBUTION_CONFIGURATION_ARNS", testbed::samples::DEMO_DISTRIBUTION_CONFIGURATIONS),
        ],
        &["UpdateDistributionConfiguration"],
    )
    .await;
    // ... AND the real one acted exactly once
    assert_eq!(
        calls(&run.running, "UpdateDistributionConfiguration").len(),
        1,
        "exactly one UpdateDistributionConfiguration"
    );
}
