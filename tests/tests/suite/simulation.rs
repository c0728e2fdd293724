//! The timeline simulation (`make simulate SEEDS=N` for long runs): seeded histories of deliveries, Lambda's retries,
//! re-sends days later, other writers and faults on any call, run through the real host against the emulator, with
//! each function's promises (docs/testing.md) checked as invariants after every step and at quiescence. A failing
//! history is shrunk and printed as a regression test to paste below.

#[path = "simulation/history.rs"]
mod history;
#[path = "simulation/lifecycle.rs"]
mod lifecycle;
#[path = "simulation/reconcile.rs"]
mod reconcile;
#[path = "simulation/regions.rs"]
mod regions;
#[path = "simulation/rotate.rs"]
mod rotate;
#[path = "simulation/start_idle.rs"]
mod start_idle;

use history::simulate;

/// Histories per function in `make test`; `SIM_CASES` raises it.
const CASES: u32 = 200;
/// update-image-lifecycle's histories are the cheapest (about 25 a second): it takes more of the CI budget (2-4
/// minutes in all), which it needs to find a retry that reuses the first sending's client token (control 6).
const LIFECYCLE_CASES: u32 = 1600;
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
fn given_generated_histories_when_start_idle_image_builders_reconciles_them_then_its_schedule_promises_hold() {
    simulate("reconcile", reconcile::Reconcile::default(), CASES, STEPS);
}

#[test]
fn given_generated_histories_when_update_image_lifecycle_runs_them_then_its_promises_hold() {
    simulate("lifecycle", lifecycle::Lifecycle, LIFECYCLE_CASES, STEPS);
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

    /// The control of the pinned drift repair (round 3, item 3), found with it reverted: a drift repair read the
    /// document, a newer one was uploaded and applied, and the repair wrote the older one's regions.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regression_regions_a_drift_repair_that_read_an_older_document_leaves_the_newer() {
        replay(vec![Interleaved { first: DriftRepair, operation: 0, second: Upload { web: 0, api: 0 } }]).await;
    }

    /// Found by the simulation (seed 42): a hand request's update applied with its answers lost, a drift repair put
    /// the regions back, and the request's retry planned the same result on the same regions: the same token, so
    /// Image Builder answered the first update, and the retry failed Retryable.Conflict until dead-lettered. The
    /// token names the configuration's last update too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regression_regions_a_retry_after_its_change_was_undone_gets_a_new_token() {
        replay(vec![
            Deliver { event: DriftRepair, dry_run: false },
            Fault { operation: 1, fault: AnswersLost },
            Deliver { event: Hand { add: true, region: 2 }, dry_run: false },
            Deliver { event: DriftRepair, dry_run: false },
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
            Fault { operation: 1, fault: Outage },
            Fault { operation: 1, fault: LongOutage },
            TimePasses { hours: 30 },
        ]
    }
}

/// Histories of rotate-key-group the simulation found, shrunk, kept as regressions.
mod rotate_regressions {
    use super::history::{self, Fault::*, Step::*};
    use super::rotate::{Event::*, Rotate};

    async fn replay(steps: Vec<history::Step<super::rotate::Event, super::rotate::Writer>>) {
        history::run(&Rotate::default(), &steps).await.unwrap_or_else(|broken| panic!("{broken}"));
    }

    /// The control of the join marks (round 3, item 4), found with them reverted: a key created during an outage
    /// of UpdateKeyGroup joins three days later, and the next upload must count K2MID's grace from that join, not
    /// from the key's creation.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regression_rotate_a_key_that_joins_days_after_it_was_created_keeps_its_predecessor() {
        replay(vec![
            Fault { operation: 0, fault: LongOutage },
            Deliver { event: Upload { key: 0 }, dry_run: false },
            ResendDaysLater { pick: 0 },
            Deliver { event: Upload { key: 1 }, dry_run: false },
        ])
        .await;
    }

    /// Found by the simulation (seed 1801807216): an upload retired K1OLD (a key made by hand), its delete met an
    /// outage and its retries a longer one of CreatePublicKey, so the event was dead-lettered and K1OLD, in no group
    /// and not tagged keeper's, stayed forever. Keys keeper retires are now marked, and the sweep deletes them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regression_rotate_a_key_retired_by_an_event_that_died_is_deleted_by_the_sweep() {
        replay(vec![
            Fault { operation: 3, fault: Outage },
            Interleaved { first: Sweep, operation: 0, second: Upload { key: 0 } },
            Fault { operation: 1, fault: LongOutage },
            TimePasses { hours: 2 },
        ])
        .await;
    }

    /// Found by the simulation (seed 1801807216): the event of an older version of a PEM, re-sent three days after a
    /// newer upload of the same object rotated, created and added the older key, which joined as the newest. An
    /// upload that a newer one replaced is now skipped, and checked again just before its key joins.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regression_rotate_an_older_upload_resent_days_later_adds_no_key() {
        replay(vec![
            Fault { operation: 0, fault: Refused },
            Deliver { event: Upload { key: 0 }, dry_run: false },
            Fault { operation: 0, fault: Outage },
            Deliver { event: Upload { key: 0 }, dry_run: false },
            ResendDaysLater { pick: 0 },
        ])
        .await;
    }

    /// Found by the simulation (seed 1801807216): the retry of an upload whose key was already in a full group
    /// planned the key again as one to create, and was refused "6 keys"; now the key it added is a member.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regression_rotate_the_retry_of_an_event_whose_key_joined_a_full_group_finishes() {
        replay(vec![
            Fault { operation: 3, fault: AnswersLost },
            Deliver { event: Upload { key: 0 }, dry_run: false },
            Deliver { event: Upload { key: 0 }, dry_run: false },
            Interleaved { first: Upload { key: 0 }, operation: 0, second: Upload { key: 0 } },
        ])
        .await;
    }

    /// Found by the simulation (seed 7): the retry of an event whose key had joined called CreatePublicKey again,
    /// which was refused for good, and the event ended failed; a key this event added is not created again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regression_rotate_the_retry_of_an_event_whose_key_joined_creates_nothing() {
        replay(vec![
            Fault { operation: 3, fault: AnswersLost },
            Deliver { event: Upload { key: 0 }, dry_run: false },
            Fault { operation: 1, fault: Refused },
            LambdaRetry { pick: 0 },
        ])
        .await;
    }

    /// Found by the simulation (seed 1801807216): an event's update was answered and its delete's answer lost, a
    /// newer upload followed, and the retry, now of a replaced version, was skipped whole: the retirement was never
    /// counted. The retry of a replaced upload still says what its earlier run did.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regression_rotate_a_replaced_upload_retried_says_what_its_first_run_did() {
        replay(vec![
            Fault { operation: 3, fault: AnswersLost },
            Deliver { event: Upload { key: 0 }, dry_run: false },
            Deliver { event: Upload { key: 0 }, dry_run: false },
        ])
        .await;
    }

    /// Found by the simulation (seed 1801807216): a re-sent event whose update's answer was lost, retried after a
    /// newer upload retired its key, said nothing of the key it retired.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regression_rotate_a_replaced_upload_retried_after_a_lost_update_says_what_it_may_have_done() {
        replay(vec![
            DeliverTwiceAtOnce { event: Upload { key: 2 } },
            Deliver { event: Upload { key: 0 }, dry_run: false },
            Fault { operation: 0, fault: AnswersLost },
            ResendDaysLater { pick: 1 },
            DeliverTwiceAtOnce { event: Upload { key: 2 } },
        ])
        .await;
    }

    /// Found by the simulation (seed 1801807216) once it could kill the bootstrap: a run killed at the delete of
    /// the key it had just retired had already recorded its changes as reported, so its retry counted nothing and
    /// the retirement was in no metric. What a run reported is recorded after its last call.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regression_rotate_a_run_killed_at_its_delete_is_counted_by_its_retry() {
        replay(vec![Crash { event: Upload { key: 0 }, operation: 3, nth: 0 }]).await;
    }

    /// Found by the simulation (seed 1801807216) once settings could change: with DELETE_RETIRED_KEYS off, K1OLD
    /// (made by hand) was retired with no mark, and no sweep counted it: a key in no group, kept forever, seen by
    /// no metric. A key retired with deletion off is marked to keep, and counted as an orphan.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regression_rotate_a_key_retired_with_deletion_off_is_counted() {
        replay(vec![Settings { variant: 1 }, Deliver { event: Upload { key: 0 }, dry_run: false }]).await;
    }

    /// Found by the simulation (seed 42) once deletions were reconciled with the `deleted` metric: a run whose
    /// delete of the key it retired lost every answer failed retryably, and its retry, superseded by a newer upload,
    /// skipped the event's deletes, so the deletion was never reported. A superseded retry still finishes them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regression_rotate_a_superseded_retry_finishes_the_deletes_of_its_event() {
        replay(vec![
            Deliver { event: Sweep, dry_run: false },
            Deliver { event: Upload { key: 0 }, dry_run: false },
            Interleaved { first: Upload { key: 0 }, operation: 0, second: Upload { key: 2 } },
            Fault { operation: 3, fault: AnswersLost },
            Deliver { event: Upload { key: 2 }, dry_run: false },
            ResendDaysLater { pick: 7 },
            DeliverTwiceAtOnce { event: Upload { key: 0 } },
        ])
        .await;
    }

    /// Found in review: K1OLD retired with deletion off by a run whose sweep then failed was deleted by the
    /// event's retry once deletion was on again. The retry reads the retire mark, and keeps the key.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regression_rotate_a_retry_with_deletion_on_keeps_a_key_retired_with_deletion_off() {
        replay(vec![
            Settings { variant: 1 },
            Fault { operation: 4, fault: Outage },
            Deliver { event: Upload { key: 0 }, dry_run: false },
            Settings { variant: 0 },
            LambdaRetry { pick: 0 },
        ])
        .await;
    }

    /// Found in review, and by the simulation once a crash could come in the sweep: a run killed in its sweep,
    /// after its rotation, had recorded its changes as reported, so its retry counted nothing and the key it
    /// added and the key it retired were in no metric. What a run reported is recorded after its last call.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regression_rotate_a_run_killed_in_its_sweep_is_counted_by_its_retry() {
        replay(vec![Crash { event: Upload { key: 0 }, operation: 4, nth: 0 }]).await;
    }

    /// Found by the simulation (seed 7): a run killed after its update retired K1OLD, and its retry refused for
    /// good, left K1OLD in no group behind a pending mark, which no sweep looked at. The sweep counts it (and keeps
    /// it: keeper cannot tell its update from another writer's).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regression_rotate_a_retirement_never_answered_is_counted_by_the_sweep() {
        replay(vec![
            Crash { event: Upload { key: 0 }, operation: 0, nth: 0 },
            Fault { operation: 2, fault: Refused },
            TimePasses { hours: 2 },
        ])
        .await;
    }
}

/// Histories of update-image-lifecycle the simulation found, shrunk, kept as regressions.
mod lifecycle_regressions {
    use super::history::{self, Fault::*, Step::*};
    use super::lifecycle::{Event::*, Lifecycle};

    async fn replay(steps: Vec<history::Step<super::lifecycle::Event, super::lifecycle::Writer>>) {
        history::run(&Lifecycle, &steps).await.unwrap_or_else(|broken| panic!("{broken}"));
    }

    /// Found by the simulation (seed 42): a restore whose answers were lost, retried after the policy disabled the
    /// build again, met its own first token at Image Builder and reported "applied" on a DISABLED build. The token
    /// names the status it changes from, and a change applied at once is read back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regression_lifecycle_a_restore_retried_after_the_policy_undid_it_is_applied_again() {
        replay(vec![
            Interleaved {
                first: Announce { build: 0, sns: false },
                operation: 0,
                second: Announce { build: 1, sns: false },
            },
            Fault { operation: 0, fault: AnswersLost },
            DeliverTwiceAtOnce { event: Hand { build: 0, deprecate: false } },
            Deliver { event: Sweep, dry_run: false },
            LambdaRetry { pick: 0 },
        ])
        .await;
    }
}

/// Controls of start-idle-image-builders' reconcile: histories the simulation found with a fix undone, kept so
/// that undoing it again fails here.
mod reconcile_regressions {
    use super::history::{self, Step::*};
    use super::reconcile::{Event::*, Reconcile, Writer::*};

    async fn replay(steps: Vec<history::Step<super::reconcile::Event, super::reconcile::Writer>>) {
        history::run(&Reconcile::default(), &steps).await.unwrap_or_else(|broken| panic!("{broken}"));
    }

    /// Found with the fixed jobs' leave-it-to-the-reconcile rule undone (`Checked::decide_on` not setting
    /// `scheduled_by`): a start by hand started a builder that follows a schedule, so it had two masters.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regression_reconcile_a_start_by_hand_leaves_a_scheduled_builder_to_the_reconcile() {
        replay(vec![Deliver { event: Hand { start: true, mask: 1 }, dry_run: false }]).await;
    }

    /// Found by the simulation (seed 7): a reconcile killed after its start of r-0 took effect had recorded
    /// nothing, a person stopped r-0, and the next reconcile of the same night started it again. The mark is now
    /// written before the start (and undone when the start fails).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regression_reconcile_seed_7_a_run_killed_after_its_start_leaves_the_stretch_to_people() {
        replay(vec![
            Crash { event: Reconcile, operation: 0, nth: 0 },
            Other { writer: Stops(2) },
            Interleaved { first: Reconcile, operation: 0, second: Reconcile },
        ])
        .await;
    }

    /// Found with the respect-manual marks undone (none written), seed 1801807216: a night's reconcile
    /// started r-0, a person stopped it, and the next reconcile of the same night (a re-send days later decides
    /// on the night it runs in) started it again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn regression_reconcile_a_respect_manual_stretch_settled_is_left_to_people() {
        replay(vec![
            Deliver { event: Reconcile, dry_run: false },
            ResendDaysLater { pick: 0 },
            Other { writer: Stops(2) },
            Deliver { event: Reconcile, dry_run: false },
        ])
        .await;
    }
}
