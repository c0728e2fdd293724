//! Reliability: two different events acting on the same resources at the same moment, each having read before the
//! other wrote. (One event delivered many times is `reliability_duplicate_delivery`; the per-function races are in
//! the function suites: eight rotations of one key group in `rotate_key_group.rs`, two region edits and a console
//! edit between read and write in `update_distribution_regions.rs`.)

use std::collections::BTreeMap;

use serde_json::json;
use shared::config::Lookup;
use shared::report::Outcome;
use start_idle_image_builders::StartIdleImageBuilders;
use testbed::emulator::{effects, fast_settings, sdk_config, start};

#[tokio::test]
async fn given_a_schedule_and_a_manual_start_at_once_when_both_start_the_same_builders_then_each_starts_once_and_neither_fails()
 {
    // GIVEN three STOPPED builders, and two instances with their own guards (two different events: nothing to
    // deduplicate), the start calls slowed so that both read STOPPED before either starts
    let running = start(json!({
        "timing": {"transitionMillis": 400},
        "regions": {"us-east-1": {"imageBuilders": {
            "team-a": {"State": "STOPPED"}, "team-b": {"State": "STOPPED"}, "team-c": {"State": "STOPPED"}
        }}},
        "faults": {"rules": [{"operation": "StartImageBuilder", "latencyMs": 100}]}
    }))
    .await;
    let sdk = sdk_config(&running, "us-east-1", &fast_settings(5)).await;
    let settings = [("RETRY_INITIAL_BACKOFF_MS", "20"), ("MAX_ATTEMPTS", "5"), ("OPT_OUT_TAG", "")];
    let schedule = testbed::guard::host::<StartIdleImageBuilders>(&sdk, &Lookup::from_pairs(&settings)).await;
    let by_hand = testbed::guard::host::<StartIdleImageBuilders>(&sdk, &Lookup::from_pairs(&settings)).await;
    let event = |id: &str| json!({"requestId": id, "action": "start", "namePrefix": "team-", "regions": ["us-east-1"]});
    // WHEN both run at once
    let (a, b) = tokio::join!(schedule.handle(event("schedule-0800"), None), by_hand.handle(event("by-hand"), None));
    // THEN every builder was started exactly once, whichever run won it
    let starts: BTreeMap<String, usize> = effects(&running.emulator.calls());
    assert_eq!(
        starts,
        BTreeMap::from([
            ("StartImageBuilder team-a".to_string(), 1),
            ("StartImageBuilder team-b".to_string(), 1),
            ("StartImageBuilder team-c".to_string(), 1)
        ])
    );
    // AND neither run reports a failure for a builder the other one started: the loser says so and skips it
    let mut lines = BTreeMap::new();
    for (name, answer) in [("schedule", a), ("by hand", b)] {
        let report = answer.unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let failed: Vec<_> = report.actions.iter().filter(|x| x.outcome == Outcome::Failed).collect();
        assert!(failed.is_empty(), "{name}: {failed:?}");
        for action in report.actions {
            *lines.entry((action.target, action.outcome.as_str())).or_insert(0) += 1;
        }
    }
    // AND between them, each builder has one applied line and one skipped line
    for name in ["team-a", "team-b", "team-c"] {
        let target = format!("us-east-1/{name}");
        assert_eq!(lines.get(&(target.clone(), "applied")), Some(&1), "{lines:?}");
        assert_eq!(lines.get(&(target, "skipped")), Some(&1), "{lines:?}");
    }
}
