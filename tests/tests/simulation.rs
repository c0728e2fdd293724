//! The timeline simulation (`make simulate SEEDS=N` for long runs): seeded histories of deliveries, Lambda's retries,
//! re-sends days later, other writers and faults on any call, run through the real host against the emulator, with
//! each function's README promises checked as invariants after every step and at quiescence. A failing history is
//! shrunk and printed as a regression test to paste below.

#![recursion_limit = "256"]

#[path = "simulation/history.rs"]
mod history;
#[path = "simulation/lifecycle.rs"]
mod lifecycle;
#[path = "simulation/regions.rs"]
mod regions;
#[path = "simulation/rotate.rs"]
mod rotate;
#[path = "simulation/start_idle.rs"]
mod start_idle;

use history::simulate;

/// Histories per function in `make test`; `SIM_CASES` raises it.
const CASES: u32 = 200;
/// The longest history generated.
const STEPS: usize = 12;

#[test]
fn given_generated_histories_when_update_distribution_regions_runs_them_then_its_promises_hold() {
    simulate("regions", regions::Regions, CASES, STEPS);
}

#[test]
fn given_generated_histories_when_start_idle_image_builders_runs_them_then_its_promises_hold() {
    simulate("start_idle", start_idle::StartIdle, CASES, STEPS);
}

#[test]
fn given_generated_histories_when_update_image_lifecycle_runs_them_then_its_promises_hold() {
    simulate("lifecycle", lifecycle::Lifecycle, CASES, STEPS);
}

#[test]
fn given_generated_histories_when_rotate_key_group_runs_them_then_its_promises_hold() {
    simulate("rotate", rotate::Rotate::default(), CASES, STEPS);
}

/// Histories the simulation found, shrunk, kept as they were printed.
mod regions_regressions {
    use super::history::{self, Fault::*, Step::*};
    use super::regions::{Event::*, Regions, Writer::*};

    async fn replay(steps: Vec<history::Step<super::regions::Event, super::regions::Writer>>) {
        history::run(&Regions, &steps).await.unwrap_or_else(|broken| panic!("{broken}"));
    }

    /// Found by the simulation (seed 1801807216): an S3 event re-sent days later reused its first delivery's
    /// clientToken, so Image Builder answered the first update and did nothing, and every retry read back the
    /// console's region and failed Retryable.Conflict until the token expired.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regression_regions_seed_1801807216_an_upload_resent_days_later_gets_a_new_token() {
        replay(vec![
            Deliver { event: DriftRepair, dry_run: false },
            Deliver { event: Upload { web: 0, api: 0 }, dry_run: false },
            Other { writer: AddsRegion },
            ResendDaysLater { pick: 1 },
            LambdaRetry { pick: 0 },
        ])
        .await;
    }

    /// Found by the simulation (seed 1801807216): a drift repair's Lambda retry that came after the guard forgot it
    /// (an IDEMPOTENCY_TTL_SECONDS shorter than Lambda's 3-minute retry) and after a hand request re-added a region
    /// re-planned the same result on another base, sent the first update's token, and Image Builder answered the first
    /// update: Retryable.Conflict until the token expired. The token now names the base the plan was made on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regression_regions_seed_1801807216_a_retry_after_another_change_replans_with_a_new_token() {
        replay(vec![
            DeliverTwiceAtOnce { event: DriftRepair },
            Deliver { event: Hand { add: false, region: 2 }, dry_run: false },
            Deliver { event: Hand { add: true, region: 2 }, dry_run: false },
            ResendDaysLater { pick: 3 },
        ])
        .await;
    }

    #[allow(dead_code, reason = "the vocabulary a pasted regression may use")]
    fn vocabulary() -> Vec<history::Step<super::regions::Event, super::regions::Writer>> {
        vec![
            DeliverTwiceAtOnce { event: Hand { add: true, region: 1 } },
            Fault { operation: 0, fault: AnswerLost },
            Fault { operation: 1, fault: Throttled },
            Fault { operation: 1, fault: Unavailable },
            Fault { operation: 1, fault: Refused },
            Other { writer: EditsDescription(1) },
            Other { writer: RemovesApiTemplate },
        ]
    }
}
