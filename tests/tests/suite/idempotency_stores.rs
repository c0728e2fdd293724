//! One suite for the event guard, run against both stores: DynamoDB (a real moto server) and memory.
//!
//! Each case says GIVEN / WHEN / THEN and asserts, besides the answer, whether the handler ran: a replay or a refused
//! delivery must not run it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use shared::classify::{Classify, ErrorType};
use shared::idempotency::{
    GuardError, Idempotency, IdempotencyStore, LeaseError, Leases, Lock, MemoryStore, Now, Record, Status,
};
use shared::report::{Action, Outcome, Report};
use testbed::moto::Moto;

#[derive(Debug, thiserror::Error)]
#[error("handler failed")]
struct HandlerFailed;

impl Classify for HandlerFailed {
    fn error_type(&self) -> ErrorType {
        ErrorType::SERVICE_UNAVAILABLE
    }
}

/// A store under test, and the moto server behind it (kept alive for the test).
struct Fixture {
    store: Arc<dyn IdempotencyStore>,
    _moto: Option<Moto>,
}

async fn memory() -> Fixture {
    Fixture { store: Arc::new(MemoryStore::default()), _moto: None }
}

async fn dynamodb() -> Fixture {
    let moto = tokio::task::spawn_blocking(Moto::start).await.expect("moto start");
    Fixture { store: Arc::new(moto.idempotency_store().await), _moto: Some(moto) }
}

/// A clock the test moves by hand, starting now.
#[derive(Clone)]
struct TestClock(Arc<AtomicI64>);

impl TestClock {
    fn new() -> Self {
        TestClock(Arc::new(AtomicI64::new(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64)))
    }
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0.load(Ordering::SeqCst) as u64)
    }
    fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }
}

fn guard(fixture: &Fixture, clock: &TestClock) -> Idempotency {
    let clock = clock.clone();
    Idempotency::new(fixture.store.clone(), "start-idle-image-builders", Duration::from_secs(3600))
        .with_clock(move || clock.now())
}

fn report(event_id: &str) -> Report {
    let mut r = Report::new("start-idle-image-builders", event_id, false);
    r.push(Action::new("us-east-1/b1", "start", Outcome::Applied, ""));
    r
}

async fn completed_replays_without_running(fixture: Fixture) {
    // GIVEN an event that was handled once
    let clock = TestClock::new();
    let guard = guard(&fixture, &clock);
    let payload = json!({"names": ["b1"]});
    let runs = AtomicU32::new(0);
    let handler = || async {
        runs.fetch_add(1, Ordering::SeqCst);
        Ok::<_, HandlerFailed>(report("evt-1"))
    };
    let first = guard.run("evt-1", &payload, None, handler).await.unwrap();
    assert!(!first.replayed);
    // WHEN it is delivered again
    let second = guard.run("evt-1", &payload, None, handler).await.unwrap();
    // THEN the stored report comes back and the handler did not run again
    assert!(second.replayed);
    assert_eq!(second.value, first.value);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

async fn payload_key_order_is_not_a_mismatch(fixture: Fixture) {
    // GIVEN a handled event
    let clock = TestClock::new();
    let guard = guard(&fixture, &clock);
    let ok = || async { Ok::<_, HandlerFailed>(report("evt-1")) };
    guard.run("evt-1", &json!({"a": 1, "b": {"x": 1, "y": 2}}), None, ok).await.unwrap();
    // WHEN the same payload arrives with its keys in another order
    let again = guard.run("evt-1", &json!({"b": {"y": 2, "x": 1}, "a": 1}), None, ok).await.unwrap();
    // THEN it is a replay
    assert!(again.replayed);
}

async fn payload_mismatch_is_an_error_and_does_not_run(fixture: Fixture) {
    // GIVEN an event id handled for one payload
    let clock = TestClock::new();
    let guard = guard(&fixture, &clock);
    guard
        .run("manual:change-1", &json!({"names": ["b1"]}), None, || async { Ok::<_, HandlerFailed>(report("e")) })
        .await
        .unwrap();
    // WHEN the same id comes with another payload
    let runs = AtomicU32::new(0);
    let result = guard
        .run("manual:change-1", &json!({"names": ["b2"]}), None, || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, HandlerFailed>(report("e"))
        })
        .await;
    // THEN an explicit permanent error, not a replay, and the handler did not run
    let err = result.unwrap_err();
    assert!(matches!(err, GuardError::PayloadMismatch { .. }), "{err}");
    assert_eq!(err.error_type(), ErrorType::IDEMPOTENCY_KEY_REUSED);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
}

async fn in_progress_blocks_a_second_delivery(fixture: Fixture) {
    // GIVEN a run that holds the event and has not finished
    let clock = TestClock::new();
    let guard = guard(&fixture, &clock);
    let payload = json!({"names": ["b1"]});
    let (release, wait) = tokio::sync::oneshot::channel::<()>();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let deadline = Some(clock.now() + Duration::from_secs(60));
    let first = {
        let guard = guard.clone();
        let payload = payload.clone();
        tokio::spawn(async move {
            guard
                .run("evt-2", &payload, deadline, || async move {
                    let _ = started_tx.send(());
                    let _ = wait.await;
                    Ok::<_, HandlerFailed>(report("evt-2"))
                })
                .await
        })
    };
    started_rx.await.unwrap();
    // WHEN the event is delivered again meanwhile
    let runs = AtomicU32::new(0);
    let second = guard
        .run("evt-2", &payload, deadline, || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, HandlerFailed>(report("evt-2"))
        })
        .await;
    // THEN it is refused with a retryable error and does not run
    let err = second.unwrap_err();
    assert!(matches!(err, GuardError::InProgress { .. }), "{err}");
    assert!(err.error_type().is_retryable());
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    release.send(()).unwrap();
    assert!(!first.await.unwrap().unwrap().replayed);
}

async fn abandoned_lock_expires_at_the_deadline(fixture: Fixture) {
    // GIVEN a run that took the lock and died (its record stays INPROGRESS until its Lambda deadline)
    let clock = TestClock::new();
    let guard = guard(&fixture, &clock);
    let id = guard.record_id("evt-3");
    let now = Now::at(clock.now());
    let abandoned = Record {
        id: id.clone(),
        status: Status::InProgress,
        expiration: now.seconds + 3600,
        in_progress_expiration: Some(now.millis + 30_000),
        data: None,
        validation: None,
        owner: Some("a-run-that-died".into()),
    };
    assert_eq!(fixture.store.put_in_progress(&abandoned, now).await.unwrap(), Lock::Acquired);
    let runs = AtomicU32::new(0);
    let handler = || async {
        runs.fetch_add(1, Ordering::SeqCst);
        Ok::<_, HandlerFailed>(report("evt-3"))
    };
    // WHEN a retry arrives before the deadline THEN it is refused
    let early = guard.run("evt-3", &json!({}), None, handler).await;
    assert!(matches!(early, Err(GuardError::InProgress { .. })));
    // WHEN a retry arrives after the deadline THEN it takes the lock and runs
    clock.advance(Duration::from_secs(31));
    let late = guard.run("evt-3", &json!({}), None, handler).await.unwrap();
    assert!(!late.replayed);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

async fn failed_run_deletes_its_record_so_a_retry_runs(fixture: Fixture) {
    // GIVEN a run whose handler failed
    let clock = TestClock::new();
    let guard = guard(&fixture, &clock);
    let payload = json!({"names": ["b1"]});
    let failed = guard.run("evt-4", &payload, None, || async { Err::<Report, _>(HandlerFailed) }).await;
    assert!(matches!(failed, Err(GuardError::Handler(HandlerFailed))));
    // WHEN Lambda retries it
    let runs = AtomicU32::new(0);
    let retry = guard
        .run("evt-4", &payload, None, || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, HandlerFailed>(report("evt-4"))
        })
        .await
        .unwrap();
    // THEN the retry runs for real
    assert!(!retry.replayed);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

async fn completed_record_expires_after_its_ttl(fixture: Fixture) {
    // GIVEN a handled event
    let clock = TestClock::new();
    let guard = guard(&fixture, &clock);
    let runs = AtomicU32::new(0);
    let handler = || async {
        runs.fetch_add(1, Ordering::SeqCst);
        Ok::<_, HandlerFailed>(report("evt-5"))
    };
    guard.run("evt-5", &json!({}), None, handler).await.unwrap();
    // WHEN it arrives again after the TTL (DynamoDB's TTL deletion is lazy: the record may still be there)
    clock.advance(Duration::from_secs(3602));
    let again = guard.run("evt-5", &json!({}), None, handler).await.unwrap();
    // THEN it runs again
    assert!(!again.replayed);
    assert_eq!(runs.load(Ordering::SeqCst), 2);
}

async fn concurrent_deliveries_run_the_handler_once(fixture: Fixture) {
    // GIVEN eight deliveries of one event at once
    let clock = TestClock::new();
    let guard = guard(&fixture, &clock);
    let runs = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (guard, runs) = (guard.clone(), runs.clone());
        tasks.push(tokio::spawn(async move {
            guard
                .run("evt-6", &json!({"n": 1}), None, || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok::<_, HandlerFailed>(report("evt-6"))
                })
                .await
        }));
    }
    // WHEN they all finish
    let mut ran = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(g) if !g.replayed => ran += 1,
            Ok(_) | Err(GuardError::InProgress { .. }) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    // THEN exactly one ran the handler
    assert_eq!(ran, 1);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

async fn lock_outlives_a_ttl_shorter_than_the_run(fixture: Fixture) {
    // GIVEN IDEMPOTENCY_TTL_SECONDS=60 and a run that holds the event with five minutes to its deadline
    let clock = TestClock::new();
    let guard = {
        let clock = clock.clone();
        Idempotency::new(fixture.store.clone(), "start-idle-image-builders", Duration::from_secs(60))
            .with_clock(move || clock.now())
    };
    let deadline = Some(clock.now() + Duration::from_secs(300));
    let (release, wait) = tokio::sync::oneshot::channel::<()>();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let first = {
        let guard = guard.clone();
        tokio::spawn(async move {
            guard
                .run("evt-7", &json!({}), deadline, || async move {
                    let _ = started_tx.send(());
                    let _ = wait.await;
                    Ok::<_, HandlerFailed>(report("evt-7"))
                })
                .await
        })
    };
    started_rx.await.unwrap();
    // WHEN a duplicate arrives 61 s in: past the TTL, long before the holder's deadline
    clock.advance(Duration::from_secs(61));
    let runs = AtomicU32::new(0);
    let duplicate = guard
        .run("evt-7", &json!({}), deadline, || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, HandlerFailed>(report("evt-7"))
        })
        .await;
    // THEN it is refused as in progress and does not start a second pipeline
    assert!(matches!(duplicate, Err(GuardError::InProgress { .. })), "{duplicate:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    release.send(()).unwrap();
    assert!(!first.await.unwrap().unwrap().replayed);
}

/// The holder whose lock was taken over finishes late; `outcome` is how its handler ends.
async fn late_holder_leaves_the_new_holders_lock_alone(fixture: Fixture, outcome: Result<(), HandlerFailed>) {
    // GIVEN run A holding the event past its deadline (say, a frozen sandbox), and run B that took the lock over
    let clock = TestClock::new();
    let guard = guard(&fixture, &clock);
    let deadline_a = Some(clock.now() + Duration::from_secs(10));
    let (release_a, wait_a) = tokio::sync::oneshot::channel::<()>();
    let (started_a, a_started) = tokio::sync::oneshot::channel::<()>();
    let a = {
        let guard = guard.clone();
        tokio::spawn(async move {
            guard
                .run("evt-8", &json!({}), deadline_a, || async move {
                    let _ = started_a.send(());
                    let _ = wait_a.await;
                    outcome.map(|()| report("evt-8-from-a"))
                })
                .await
        })
    };
    a_started.await.unwrap();
    clock.advance(Duration::from_secs(11));
    let deadline_b = Some(clock.now() + Duration::from_secs(300));
    let (release_b, wait_b) = tokio::sync::oneshot::channel::<()>();
    let (started_b, b_started) = tokio::sync::oneshot::channel::<()>();
    let b = {
        let guard = guard.clone();
        tokio::spawn(async move {
            guard
                .run("evt-8", &json!({}), deadline_b, || async move {
                    let _ = started_b.send(());
                    let _ = wait_b.await;
                    Ok::<_, HandlerFailed>(report("evt-8-from-b"))
                })
                .await
        })
    };
    b_started.await.unwrap();
    // WHEN A finishes while B still runs
    release_a.send(()).unwrap();
    let _ = a.await.unwrap();
    // THEN B still holds the event: a third delivery is refused, not run, and not answered with A's result
    let runs = AtomicU32::new(0);
    let third = guard
        .run("evt-8", &json!({}), deadline_b, || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, HandlerFailed>(report("evt-8-third"))
        })
        .await;
    assert!(matches!(third, Err(GuardError::InProgress { .. })), "{third:?}");
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    // THEN B's result is the one stored
    release_b.send(()).unwrap();
    b.await.unwrap().unwrap();
    let replay = guard.run("evt-8", &json!({}), None, || async { Ok::<_, HandlerFailed>(report("x")) }).await.unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.value.event_id, "evt-8-from-b");
}

async fn result_too_large_for_an_item_is_stored_shortened(fixture: Fixture) {
    // GIVEN a run whose report is larger than a DynamoDB item may be (a sweep over thousands of builds)
    let clock = TestClock::new();
    let guard = guard(&fixture, &clock);
    let mut big = Report::new("update-image-lifecycle", "evt-9", false);
    for i in 0..4000 {
        let target = format!("arn:aws:imagebuilder:us-east-1:123456789012:image/web-golden/1.0.{i}/1");
        let outcome = if i % 3 == 0 { Outcome::Applied } else { Outcome::Skipped };
        big.push(Action::new(target, "deprecate", outcome, "AVAILABLE → DEPRECATED; lifecycle execution lce-0123"));
    }
    assert!(serde_json::to_string(&big).unwrap().len() > 400 * 1024);
    // WHEN it completes
    let first = guard.run("evt-9", &json!({}), None, || async { Ok::<_, HandlerFailed>(big.clone()) }).await.unwrap();
    // THEN the caller gets the whole report, and a redelivery gets a stored one that says it was shortened
    assert_eq!(first.value.actions.len(), 4000);
    let runs = AtomicU32::new(0);
    let replay = guard
        .run("evt-9", &json!({}), None, || async {
            runs.fetch_add(1, Ordering::SeqCst);
            Ok::<_, HandlerFailed>(report("evt-9"))
        })
        .await
        .expect("the completed record was stored, so the redelivery is a replay");
    assert!(replay.replayed);
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    let truncated = replay.value.truncated.as_ref().expect("marked as shortened");
    assert_eq!(truncated.actions, 4000);
    assert_eq!(truncated.outcomes.get("applied"), Some(&1334));
    assert_eq!(truncated.outcomes.get("skipped"), Some(&2666));
    assert!(!replay.value.actions.is_empty() && replay.value.actions.len() < 4000);
    assert_eq!(replay.value.actions[0], big.actions[0], "the stored actions are the first ones, unchanged");
}

async fn a_lease_is_held_by_one_invocation_at_a_time(fixture: Fixture) {
    // GIVEN one invocation holding the lease on a configuration
    let leases = Leases::new(fixture.store.clone(), "update-distribution-regions");
    let until = SystemTime::now() + Duration::from_secs(300);
    let soon = || std::time::Instant::now() + Duration::from_millis(300);
    let held = leases.acquire("arn:dc/web", until, soon()).await.expect("free");
    // WHEN a second one asks for it THEN it waits, and gives up at its limit while the first holds it
    let refused = leases.acquire("arn:dc/web", until, soon()).await;
    assert!(matches!(refused, Err(LeaseError::Held { .. })), "{refused:?}");
    // WHEN another resource is asked for THEN it is free
    let other = leases.acquire("arn:dc/data", until, soon()).await.expect("another resource");
    // WHEN the first releases it while the second waits THEN the second gets it
    let waiting = {
        let leases = leases.clone();
        tokio::spawn(async move {
            leases.acquire("arn:dc/web", until, std::time::Instant::now() + Duration::from_secs(10)).await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    leases.release(held).await;
    let second = waiting.await.unwrap().expect("taken once released");
    leases.release(second).await;
    leases.release(other).await;
}

async fn a_dead_holders_lease_frees_at_its_expiry_and_its_late_release_leaves_the_new_holder_alone(fixture: Fixture) {
    let leases = Leases::new(fixture.store.clone(), "update-distribution-regions");
    let far = || std::time::Instant::now() + Duration::from_secs(5);
    // GIVEN a holder whose deadline is 200 ms away, which then hangs
    let dead = leases.acquire("arn:dc/web", SystemTime::now() + Duration::from_millis(200), far()).await.unwrap();
    // WHEN another asks THEN it gets the lease once that deadline has passed
    let next = leases.acquire("arn:dc/web", SystemTime::now() + Duration::from_secs(300), far()).await.unwrap();
    // WHEN the dead holder wakes and releases THEN the new holder still holds it
    leases.release(dead).await;
    let refused = leases
        .acquire(
            "arn:dc/web",
            SystemTime::now() + Duration::from_secs(300),
            std::time::Instant::now() + Duration::from_millis(200),
        )
        .await;
    assert!(matches!(refused, Err(LeaseError::Held { .. })), "{refused:?}");
    leases.release(next).await;
}

macro_rules! suite {
    ($store:ident) => {
        mod $store {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn given_handled_event_when_redelivered_then_stored_result_without_running() {
                completed_replays_without_running(super::$store().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn given_handled_event_when_redelivered_with_keys_reordered_then_replay() {
                payload_key_order_is_not_a_mismatch(super::$store().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn given_handled_event_id_when_sent_with_other_payload_then_mismatch_error_and_no_run() {
                payload_mismatch_is_an_error_and_does_not_run(super::$store().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn given_run_in_progress_when_redelivered_then_retryable_refusal_and_no_run() {
                in_progress_blocks_a_second_delivery(super::$store().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn given_abandoned_lock_when_deadline_passes_then_retry_takes_over() {
                abandoned_lock_expires_at_the_deadline(super::$store().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn given_failed_run_when_retried_then_runs_again() {
                failed_run_deletes_its_record_so_a_retry_runs(super::$store().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn given_completed_record_when_ttl_passes_then_runs_again() {
                completed_record_expires_after_its_ttl(super::$store().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn given_eight_concurrent_deliveries_when_guarded_then_handler_runs_once() {
                concurrent_deliveries_run_the_handler_once(super::$store().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn given_ttl_shorter_than_the_run_when_a_duplicate_arrives_after_the_ttl_then_still_in_progress() {
                lock_outlives_a_ttl_shorter_than_the_run(super::$store().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn given_a_lock_taken_over_when_the_late_holder_completes_then_the_new_holder_keeps_it() {
                late_holder_leaves_the_new_holders_lock_alone(super::$store().await, Ok(())).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn given_a_lock_taken_over_when_the_late_holder_fails_then_the_new_holder_keeps_it() {
                late_holder_leaves_the_new_holders_lock_alone(super::$store().await, Err(HandlerFailed)).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn given_a_lease_held_when_another_invocation_asks_then_it_waits_for_the_release() {
                a_lease_is_held_by_one_invocation_at_a_time(super::$store().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn given_a_dead_lease_holder_when_its_deadline_passes_then_another_takes_it_and_keeps_it() {
                a_dead_holders_lease_frees_at_its_expiry_and_its_late_release_leaves_the_new_holder_alone(
                    super::$store().await,
                )
                .await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn given_a_result_larger_than_an_item_when_completed_then_a_shortened_result_is_replayed() {
                result_too_large_for_an_item_is_stored_shortened(super::$store().await).await;
            }
        }
    };
}

suite!(memory);
suite!(dynamodb);
