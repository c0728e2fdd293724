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
        "rotate-key-group",
        env!("CARGO_BIN_EXE_rotate-key-group"),
        "manual-add.json",
        // The sample asks for deletion, which a request may only do where the settings allow it.
        &[("KEY_GROUP_IDS", "5f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f"), ("DELETE_RETIRED_KEYS", "true")],
        &["CreatePublicKey", "UpdateKeyGroup"],
    )
    .await;
    // ... AND the real one acted exactly once
    assert_eq!(calls(&run.running, "UpdateKeyGroup").len(), 1, "exactly one UpdateKeyGroup");
    assert_eq!(calls(&run.running, "CreatePublicKey").len(), 1, "exactly one CreatePublicKey");
}
