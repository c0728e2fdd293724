//! Reliability: an invocation whose Lambda deadline comes near in the middle of its work stops starting new work,
//! says what it did and what it left, and answers `Retryable.OutOfTime`; Lambda's retry of the same event then does
//! exactly what was left, so the two together have the effect of one calm run: nothing missing, nothing twice.
//!
//! The first mutating call is slowed down (emulator latency) so that the deadline margin is crossed while it runs:
//! the work already in flight completes, the rest is not started.

// Four functions' pipelines in one async test nest deeper than the default limit.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use rotate_key_group::RotateKeyGroup;
use serde_json::{Value, json};
use shared::host::Function;
use start_idle_image_builders::StartIdleImageBuilders;
use testbed::emulator::{effects_at_aws, host, mutating, start};
use testbed::samples::{DEMO_SETTINGS, demo_account, sample};
use update_distribution_regions::UpdateDistributionRegions;
use update_image_lifecycle::UpdateImageLifecycle;

const MARGIN_MS: u64 = 2000;
/// How long the first mutating call takes: the margin is crossed while it runs.
const SLOW_MS: u64 = 1500;

/// What the account went through: a lifecycle update sent again with the same client token counts once (Image
/// Builder replays it and starts nothing new).
fn done(running: &local::Running) -> BTreeMap<String, usize> {
    effects_at_aws(&running.emulator.calls())
}

/// How far the first invocation gets before the deadline margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// The deadline is already inside the margin when the invocation starts: nothing is started.
    AtOnce,
    /// The margin is crossed while the first (slowed) mutating call runs: that one completes, the rest waits.
    AfterTheFirst,
}

async fn check<F: Function>(seed: Value, event: Value, settings: &[(&str, &str)], slow: &str, cut: Cut) {
    let mut settings = settings.to_vec();
    let margin = MARGIN_MS.to_string();
    settings.extend([("MAX_CONCURRENCY", "1"), ("DEADLINE_MARGIN_MS", margin.as_str())]);
    // GIVEN what one calm run does to the account (several targets, or nothing is proven)
    let calm = {
        let running = start(seed.clone()).await;
        let report = host::<F>(&running, 3, &settings).await.handle(event.clone(), None).await.expect("the calm run");
        assert!(report.error.is_none(), "{}: {report:?}", F::NAME);
        done(&running)
    };
    let targets: usize = calm.values().sum();
    assert!(targets >= 2 || cut == Cut::AtOnce, "{}: the calm run changes {calm:?}", F::NAME);
    // AND an account where the first mutating call is slow, and a deadline that the margin reaches during it
    let mut slowed = seed;
    slowed["faults"] = json!({"rules": [{"operation": slow, "latencyMs": SLOW_MS, "count": 1}]});
    let running = start(slowed).await;
    let host = host::<F>(&running, 3, &settings).await;
    let window = match cut {
        Cut::AtOnce => Duration::ZERO,
        Cut::AfterTheFirst => Duration::from_millis(SLOW_MS / 2),
    };
    let deadline = SystemTime::now() + Duration::from_millis(MARGIN_MS) + window;
    // WHEN the event is handled with that deadline
    let (answer, metrics) = host.answer(event.clone(), Some(deadline)).await;
    // THEN it answers a retryable OutOfTime error that names what was left
    let error = answer.expect_err("work was left: the answer must make Lambda retry");
    assert_eq!(error.error_type, "Retryable.OutOfTime", "{}: {error:?}", F::NAME);
    assert!(error.error_message.contains("not started") && error.error_message.contains("DEADLINE_MARGIN_MS"));
    let first = done(&running);
    let first_count: usize = first.values().sum();
    // AND it did what it had started, and no more: each effect is the calm run's, and some were left
    for (effect, n) in &first {
        assert_eq!(calm.get(effect), Some(n), "{}: {effect} is not what the calm run did", F::NAME);
    }
    match cut {
        Cut::AtOnce => {
            assert_eq!(first_count, 0, "{}: nothing may start inside the margin: {first:?}", F::NAME);
            assert!(!running.emulator.calls().iter().any(|c| mutating(&c.operation)), "not even an attempt");
            assert_eq!(metrics.get("applied"), 0);
        }
        Cut::AfterTheFirst => {
            assert!(first_count >= 1 && first_count < targets, "{}: {first:?} of {calm:?}", F::NAME);
            assert!(metrics.get("applied") >= 1, "{}: what it did is counted: {metrics:?}", F::NAME);
        }
    }
    assert!(metrics.get("failed") >= 1, "{}: what it left is counted as failed: {metrics:?}", F::NAME);
    // WHEN Lambda retries the event, with time enough
    let report = host.handle(event, None).await.unwrap_or_else(|e| panic!("{}: the retry: {e:?}", F::NAME));
    // THEN the retry ran (the failed run left no record) and the two runs together did exactly the calm run
    assert!(!report.replayed && report.error.is_none(), "{}: {report:?}", F::NAME);
    assert_eq!(done(&running), calm, "{}: effects of the cut run and its retry", F::NAME);
}

#[tokio::test]
async fn given_the_deadline_near_after_the_first_start_when_builders_are_started_then_the_rest_waits_for_the_retry() {
    // One region, where no builder is STOPPING: eu-west-1's stops while the test runs, which would change the plan
    // between the calm run and the retry (and its wait is bounded by the deadline in its own way, Retryable.Timeout).
    let mut event = sample(StartIdleImageBuilders::NAME, "manual-start.json");
    event["regions"] = json!(["us-east-1"]);
    check::<StartIdleImageBuilders>(demo_account(), event, &DEMO_SETTINGS, "StartImageBuilder", Cut::AfterTheFirst)
        .await;
}

#[tokio::test]
async fn given_the_deadline_near_after_the_first_update_when_builds_are_swept_then_the_rest_waits_for_the_retry() {
    let event = sample(UpdateImageLifecycle::NAME, "schedule-sweep.json");
    // The newest AVAILABLE build is kept; every other is deprecated.
    let mut settings = DEMO_SETTINGS.to_vec();
    settings.extend([("KEEP_AVAILABLE", "1"), ("DEPRECATE_AFTER_DAYS", "0")]);
    check::<UpdateImageLifecycle>(demo_account(), event, &settings, "StartResourceStateUpdate", Cut::AfterTheFirst)
        .await;
}

const GROUP_A: &str = "5f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f";
const GROUP_B: &str = "6a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d";

fn pem(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../shared/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Two key groups of two keys each, the older past any grace: a sweep with MAX_KEYS 1 retires one key per group.
fn two_groups() -> Value {
    let hours_ago = |h: i64| local::clock::iso8601(local::clock::now_ms() - h * 3_600_000);
    let key = |name: &str, file: &str, age: i64| json!({"callerReference": name, "name": name, "encodedKey": pem(file), "createdTime": hours_ago(age)});
    json!({"cloudfront": {
        "publicKeys": {
            "K1AOLD": key("a-old", "rsa-2048.pem", 500), "K2ANEW": key("a-new", "ec-p256.pem", 300),
            "K3BOLD": key("b-old", "rsa-2048.pem", 500), "K4BNEW": key("b-new", "ec-p256.pem", 300)
        },
        "keyGroups": {
            GROUP_A: {"name": "site-a", "items": ["K1AOLD", "K2ANEW"]},
            GROUP_B: {"name": "site-b", "items": ["K3BOLD", "K4BNEW"]}
        }
    }})
}

#[tokio::test]
async fn given_the_deadline_near_after_the_first_group_when_groups_are_swept_then_the_second_waits_for_the_retry() {
    let groups = format!("{GROUP_A},{GROUP_B}");
    let settings = [
        ("MAX_ATTEMPTS", "3"),
        ("RETRY_INITIAL_BACKOFF_MS", "1"),
        ("MAX_KEYS", "1"),
        ("GRACE_HOURS", "24"),
        ("KEY_GROUP_IDS", groups.as_str()),
    ];
    let event = sample(RotateKeyGroup::NAME, "schedule-sweep.json");
    check::<RotateKeyGroup>(two_groups(), event, &settings, "UpdateKeyGroup", Cut::AfterTheFirst).await;
}

#[tokio::test]
async fn given_the_deadline_inside_the_margin_when_a_region_is_added_then_nothing_starts_and_the_retry_adds_it() {
    let event = sample(UpdateDistributionRegions::NAME, "manual-add.json");
    check::<UpdateDistributionRegions>(
        demo_account(),
        event,
        &DEMO_SETTINGS,
        "UpdateDistributionConfiguration",
        Cut::AtOnce,
    )
    .await;
}
