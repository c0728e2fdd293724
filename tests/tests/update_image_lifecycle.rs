//! update-image-lifecycle end to end: the handler, through the real Image Builder SDK, against seeded builds. The call
//! log shows exactly which StartResourceStateUpdate calls happened; the emulator shows the states they led to.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use shared::config::Lookup;
use shared::host::Host;
use shared::idempotency::MemoryStore;
use shared::report::Outcome;
use testbed::emulator::{calls, fast_settings, sdk_config, start};
use update_image_lifecycle::UpdateImageLifecycle;

const BASE: &str = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-golden";
const OTHER: &str = "arn:aws:imagebuilder:us-east-1:123456789012:image/data-golden";

fn days_ago(days: i64) -> String {
    local::clock::iso8601(local::clock::now_ms() - days * 86_400_000)
}

/// web-golden: six older builds and the new 1.2.0/4; data-golden: an old build (beyond the newest two) that another
/// image's event must not touch.
fn seed(extra: Value) -> Value {
    let mut images = serde_json::Map::new();
    for (version, status, age) in [
        ("1.0.0/1", "AVAILABLE", 200),
        ("1.0.0/2", "AVAILABLE", 120),
        ("1.1.0/1", "AVAILABLE", 60),
        ("1.1.0/2", "DEPRECATED", 40),
        ("1.1.0/3", "FAILED", 35),
        ("1.2.0/3", "AVAILABLE", 10),
        ("1.2.0/4", "AVAILABLE", 0),
    ] {
        images.insert(format!("{BASE}/{version}"), json!({"state": {"status": status}, "dateCreated": days_ago(age)}));
    }
    images.insert(format!("{OTHER}/1.0.0/1"), json!({"state": {"status": "AVAILABLE"}, "dateCreated": days_ago(300)}));
    images.insert(format!("{OTHER}/1.0.0/2"), json!({"state": {"status": "AVAILABLE"}, "dateCreated": days_ago(2)}));
    images.insert(format!("{OTHER}/1.0.0/3"), json!({"state": {"status": "AVAILABLE"}, "dateCreated": days_ago(1)}));
    let mut seed = json!({"timing": {"lifecycleMillis": 50}, "regions": {"us-east-1": {"images": images}}});
    if let (Some(s), Some(e)) = (seed.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    seed
}

async fn function(running: &local::Running, extra: &[(&str, &str)]) -> Host<UpdateImageLifecycle> {
    let mut pairs = vec![
        ("MAX_ATTEMPTS", "5"),
        ("RETRY_INITIAL_BACKOFF_MS", "1"),
        ("KEEP_AVAILABLE", "2"),
        ("DEPRECATE_AFTER_DAYS", "30"),
        ("DISABLE_AFTER_DAYS", "90"),
    ];
    pairs.extend_from_slice(extra);
    let sdk = sdk_config(running, "us-east-1", &fast_settings(5)).await;
    Host::with_store(&sdk, &Lookup::from_pairs(&pairs), Arc::new(MemoryStore::default())).expect("valid settings")
}

fn sns_available(build: &str) -> Value {
    let message = format!(
        r#"{{"versionlessArn":"{BASE}","semver":1237940039285380274899124227,"arn":"{BASE}/{build}","name":"web-golden","state":{{"status":"AVAILABLE"}},"dateCreated":"Nov 23, 2026 6:02:11 AM"}}"#
    );
    json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:t:s",
        "Sns": {"Type": "Notification", "MessageId": format!("build-{build}"), "TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message": message,
                "Timestamp": "2026-11-23T06:02:12.000Z", "SignatureVersion": "1", "Signature": "x", "SigningCertUrl": "x", "UnsubscribeUrl": "x"}}]})
}

/// `(build, status)` of every StartResourceStateUpdate call, in order of ARN.
fn updates(running: &local::Running) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = calls(running, "StartResourceStateUpdate")
        .into_iter()
        .map(|c| (c.params["resourceArn"].replace(&format!("{BASE}/"), ""), c.params["status"].clone()))
        .collect();
    out.sort();
    out
}

fn status(running: &local::Running, arn: &str) -> String {
    running.emulator.dump()["regions"]["us-east-1"]["images"][arn]["state"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn given_a_new_build_announced_when_the_policy_runs_then_exactly_the_planned_updates_and_the_new_states() {
    let running = start(seed(json!({}))).await;
    let deps = function(&running, &[]).await;
    let report = deps.handle(sns_available("1.2.0/4"), None).await.expect("a report");
    // Older than 30 days → DEPRECATED, older than 90 → DISABLED; the newest two AVAILABLE, the trigger, the already
    // DEPRECATED and the FAILED build (no DELETE_AFTER_DAYS) are left alone; the other image is not touched.
    assert_eq!(
        updates(&running),
        vec![
            ("1.0.0/1".to_string(), "DISABLED".to_string()),
            ("1.0.0/2".to_string(), "DISABLED".to_string()),
            ("1.1.0/1".to_string(), "DEPRECATED".to_string())
        ]
    );
    assert!(calls(&running, "StartResourceStateUpdate").iter().all(|c| c.params["clientToken"].len() == 36));
    assert_eq!(report.count(Outcome::Applied), 3);
    let applied: Vec<&str> =
        report.actions.iter().filter(|a| a.outcome == Outcome::Applied).map(|a| a.detail.as_str()).collect();
    assert!(applied.iter().all(|d| d.contains("lifecycle execution lce-")), "{applied:?}");
    let kept = report.actions.iter().find(|a| a.target.ends_with("1.2.0/4")).unwrap();
    assert_eq!(kept.detail, "AVAILABLE: the build that triggered this run");
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(status(&running, &format!("{BASE}/1.1.0/1")), "DEPRECATED");
    assert_eq!(status(&running, &format!("{BASE}/1.0.0/1")), "DISABLED");
    assert_eq!(status(&running, &format!("{BASE}/1.2.0/3")), "AVAILABLE");
    assert_eq!(status(&running, &format!("{OTHER}/1.0.0/1")), "AVAILABLE");
}

#[tokio::test]
async fn given_the_same_notification_twice_when_run_then_no_second_execution() {
    let running = start(seed(json!({}))).await;
    let deps = function(&running, &[]).await;
    deps.handle(sns_available("1.2.0/4"), None).await.unwrap();
    let again = deps.handle(sns_available("1.2.0/4"), None).await.unwrap();
    assert!(again.replayed);
    // A second instance (its guard knows nothing) derives the same tokens: Image Builder replays, nothing new starts.
    function(&running, &[]).await.handle(sns_available("1.2.0/4"), None).await.unwrap();
    let executions = running.emulator.dump()["regions"]["us-east-1"]["lifecycleExecutions"]
        .as_object()
        .map(|o| o.len())
        .unwrap_or(0);
    assert_eq!(executions, 3);
}

#[tokio::test]
async fn given_an_execution_in_progress_on_the_first_call_when_run_then_it_is_retried_and_done() {
    let running = start(seed(json!({"faults": {"rules": [{"operation": "StartResourceStateUpdate", "error": "ResourceInUseException", "count": 1}]}}))).await;
    let deps = function(&running, &[("MAX_CONCURRENCY", "1")]).await;
    let report = deps.handle(sns_available("1.2.0/4"), None).await.expect("retried past ResourceInUse");
    assert_eq!(report.count(Outcome::Applied), 3);
    let outcomes: Vec<String> = calls(&running, "StartResourceStateUpdate").into_iter().map(|c| c.outcome).collect();
    assert_eq!(outcomes, vec!["ResourceInUseException", "ok", "ok", "ok"]);
}

#[tokio::test]
async fn given_an_invalid_explicit_request_when_run_then_a_clear_error_and_no_call() {
    let running = start(seed(json!({}))).await;
    let deps = function(&running, &[]).await;
    let diag = deps
        .handle(
            json!({"resourceArn": format!("{BASE}/1.1.0/1"), "state": "DISABLED", "updateAt": "2030-01-01T00:00:00Z"}),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(diag.error_type, "Permanent.InvalidInput");
    assert!(diag.error_message.contains("`updateAt` is only valid with state DEPRECATED"), "{}", diag.error_message);
    assert!(running.emulator.calls().is_empty(), "no call of any kind");
}

#[tokio::test]
async fn given_dry_run_when_the_account_is_swept_then_the_plan_is_reported_and_nothing_is_updated() {
    let running = start(seed(json!({}))).await;
    let deps = function(&running, &[]).await;
    let report = deps.handle(json!({"dryRun": true}), None).await.unwrap();
    assert!(report.dry_run);
    let planned: Vec<&str> =
        report.actions.iter().filter(|a| a.outcome == Outcome::Planned).map(|a| a.target.as_str()).collect();
    assert!(planned.contains(&format!("{OTHER}/1.0.0/1").as_str()), "the sweep covers every image: {planned:?}");
    assert_eq!(planned.len(), 4);
    assert!(calls(&running, "StartResourceStateUpdate").is_empty());
}

#[tokio::test]
async fn given_explicit_deprecate_then_restore_when_run_then_each_is_one_update_with_its_fields() {
    let running = start(seed(json!({}))).await;
    let deps = function(&running, &[]).await;
    let arn = format!("{BASE}/1.2.0/3");
    let report = deps
        .handle(json!({"resourceArn": arn, "state": "DEPRECATED", "updateAt": "2030-01-01T00:00:00Z"}), None)
        .await
        .unwrap();
    assert_eq!((report.actions[0].action.as_str(), report.actions[0].outcome), ("deprecate", Outcome::Applied));
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(status(&running, &arn), "DEPRECATED");
    assert_eq!(
        running.emulator.dump()["regions"]["us-east-1"]["images"][&arn]["deprecationTime"],
        json!(1_893_456_000.0)
    );
    deps.handle(json!({"resourceArn": arn, "state": "AVAILABLE"}), None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(status(&running, &arn), "AVAILABLE");
    assert_eq!(
        updates(&running),
        vec![("1.2.0/3".to_string(), "AVAILABLE".to_string()), ("1.2.0/3".to_string(), "DEPRECATED".to_string())]
    );
}
