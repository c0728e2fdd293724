//! update-image-lifecycle end to end: the handler, through the real Image Builder SDK, against seeded builds. The call
//! log shows exactly which StartResourceStateUpdate calls happened; the emulator shows the states they led to.

use std::time::Duration;

use serde_json::{Value, json};
use shared::config::Lookup;
use shared::host::Host;
use shared::report::Outcome;
use testbed::emulator::{calls, fast_settings, sdk_config, start};
use testbed::guard::Guarded;
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

async fn function(running: &local::Running, extra: &[(&str, &str)]) -> Guarded<UpdateImageLifecycle> {
    let mut pairs = vec![
        ("MAX_ATTEMPTS", "5"),
        ("RETRY_INITIAL_BACKOFF_MS", "1"),
        ("KEEP_AVAILABLE", "2"),
        ("DEPRECATE_AFTER_DAYS", "30"),
        ("DISABLE_AFTER_DAYS", "90"),
    ];
    pairs.extend_from_slice(extra);
    let sdk = sdk_config(running, "us-east-1", &fast_settings(5)).await;
    testbed::guard::host(&sdk, &Lookup::from_pairs(&pairs)).await
}

/// Image Builder's `semver` of `major.minor.patch/build`: four 30-bit fields, major highest.
fn semver(build: &str) -> u128 {
    build.split(['.', '/']).map(|n| n.parse::<u128>().expect("a number")).fold(0, |acc, n| (acc << 30) | n)
}

fn sns_available(build: &str) -> Value {
    let semver = semver(build);
    let message = format!(
        r#"{{"versionlessArn":"{BASE}","semver":{semver},"arn":"{BASE}/{build}","name":"web-golden","state":{{"status":"AVAILABLE"}},"dateCreated":"Nov 23, 2026 6:02:11 AM"}}"#
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
    // Deprecating or disabling a record with no resources included applies at once: Image Builder runs no execution.
    assert!(applied.iter().all(|d| d.contains("applied at once (no lifecycle execution)")), "{applied:?}");
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
    // GIVEN a policy that also deletes (an execution that runs a minute), so one build's update is still under way
    let running = start(seed(json!({"timing": {"lifecycleMillis": 60000}}))).await;
    let deleting = [("DELETE_AFTER_DAYS", "150"), ("EXECUTION_ROLE", "arn:aws:iam::123456789012:role/lifecycle")];
    let deps = function(&running, &deleting).await;
    deps.handle(sns_available("1.2.0/4"), None).await.unwrap();
    let first_calls = calls(&running, "StartResourceStateUpdate").len();
    // WHEN it is redelivered to the same instance, and to a second instance whose guard knows nothing
    let again = deps.handle(sns_available("1.2.0/4"), None).await.unwrap();
    assert!(again.replayed);
    function(&running, &deleting).await.handle(sns_available("1.2.0/4"), None).await.unwrap();
    // THEN the second instance re-sends only the deletion still in progress, with the same token, and Image Builder
    // replays it: one execution in all; the builds already moved are skipped as already there
    let tokens = |arn: &str| -> Vec<String> {
        calls(&running, "StartResourceStateUpdate")
            .into_iter()
            .filter(|c| c.params["resourceArn"] == arn)
            .map(|c| c.params["clientToken"].clone())
            .collect()
    };
    let deleted = tokens(&format!("{BASE}/1.0.0/1"));
    assert_eq!(deleted.len(), 2, "sent by each instance");
    assert_eq!(deleted[0], deleted[1], "the same token, derived from the event");
    assert_eq!(calls(&running, "StartResourceStateUpdate").len(), first_calls + 1);
    let executions = running.emulator.dump()["regions"]["us-east-1"]["lifecycleExecutions"]
        .as_object()
        .map(|o| o.len())
        .unwrap_or(0);
    assert_eq!(executions, 1);
}

/// Two instances of the function with the policy of these tests, sharing one guard (kept alive by the third value).
async fn two_instances(
    running: &local::Running,
) -> (Host<UpdateImageLifecycle>, Host<UpdateImageLifecycle>, testbed::guard::Store) {
    let guard = testbed::guard::store().await;
    let sdk = sdk_config(running, "us-east-1", &fast_settings(5)).await;
    let lookup = Lookup::from_pairs(&[
        ("RETRY_INITIAL_BACKOFF_MS", "1"),
        ("KEEP_AVAILABLE", "2"),
        ("DEPRECATE_AFTER_DAYS", "30"),
        ("DISABLE_AFTER_DAYS", "90"),
    ]);
    let host = || Host::<UpdateImageLifecycle>::with_store(&sdk, &lookup, guard.store.clone()).expect("valid settings");
    (host(), host(), guard)
}

fn state_change(build: &str, status: &str) -> Value {
    json!({"version": "0", "id": format!("eventbridge-{build}-{status}"), "detail-type": "EC2 Image Builder Image State Change",
        "source": "aws.imagebuilder", "account": "123456789012", "time": "2026-11-23T06:02:11Z", "region": "us-east-1",
        "resources": [format!("{BASE}/{build}")],
        "detail": {"previous-state": {"status": "TESTING"}, "state": {"status": status}}})
}

#[tokio::test]
async fn given_one_build_announced_by_eventbridge_and_by_sns_when_both_arrive_then_it_is_handled_once() {
    for eventbridge_first in [true, false] {
        // GIVEN the stack's two subscriptions to one finished build: the EventBridge rule and the pipeline's topic,
        // delivered to two instances that share the idempotency store
        let running = start(seed(json!({}))).await;
        let (one, two, _guard) = two_instances(&running).await;
        let (first, second) = if eventbridge_first {
            (state_change("1.2.0/4", "AVAILABLE"), sns_available("1.2.0/4"))
        } else {
            (sns_available("1.2.0/4"), state_change("1.2.0/4", "AVAILABLE"))
        };
        // WHEN the first runs the policy and the second arrives in the other envelope
        let handled = one.handle(first, None).await.expect("a report");
        assert!(!handled.replayed);
        let moved = updates(&running);
        assert!(!moved.is_empty(), "the first delivery applies the policy");
        let listed = calls(&running, "ListImageBuildVersions").len();
        let again = two.handle(second, None).await.expect("a replay, not a payload mismatch");
        // THEN the second is a replay of the first's report: no second listing, no second update
        assert!(again.replayed, "eventbridge first: {eventbridge_first}");
        assert_eq!(again.actions, handled.actions);
        assert_eq!(updates(&running), moved);
        assert_eq!(calls(&running, "ListImageBuildVersions").len(), listed, "the second never looks");
        // AND another status of the same build, or another build, is its own event
        let failed = two.handle(state_change("1.2.0/5", "FAILED"), None).await.expect("a report");
        assert!(!failed.replayed);
    }
}

/// The seeded builds, with someone else's lifecycle execution running on `build` for an hour.
fn busy(build: &str) -> Value {
    let now = local::clock::now_ms();
    let mut seeded = seed(json!({}));
    seeded["regions"]["us-east-1"]["lifecycleExecutions"] = json!({"lce-0f0e0d0c-0b0a-4909-8807-060504030201": {
        "lifecycleExecutionId": "lce-0f0e0d0c-0b0a-4909-8807-060504030201", "resourceArn": format!("{BASE}/{build}"),
        "targetStatus": "DISABLED", "startMs": now, "endMs": now + 3_600_000, "applyAtMs": now + 3_600_000}});
    seeded
}

#[tokio::test]
async fn given_an_execution_already_running_on_a_build_when_the_policy_runs_then_that_build_is_skipped_not_retried() {
    // GIVEN 1.1.0/1, due for deprecation, on which a lifecycle execution (someone else's) runs for an hour
    let running = start(busy("1.1.0/1")).await;
    let deps = function(&running, &[("MAX_CONCURRENCY", "1")]).await;
    // WHEN the policy runs
    let report = deps.handle(sns_available("1.2.0/4"), None).await.expect("a report, not a retry");
    // THEN the busy build gets one call, no retries, and is skipped with the reason; the others are updated
    let busy: Vec<String> = calls(&running, "StartResourceStateUpdate")
        .into_iter()
        .filter(|c| c.params["resourceArn"].ends_with("1.1.0/1"))
        .map(|c| c.outcome)
        .collect();
    assert_eq!(busy, vec!["ResourceInUseException"]);
    let line = report.actions.iter().find(|a| a.target.ends_with("1.1.0/1")).unwrap();
    assert_eq!(line.outcome, Outcome::Skipped);
    assert!(line.detail.contains("a lifecycle execution is already in progress"), "{}", line.detail);
    assert_eq!(report.count(Outcome::Applied), 2);
}

#[tokio::test]
async fn given_an_execution_already_running_on_a_build_when_an_explicit_request_meets_it_then_retryable_not_dropped() {
    // GIVEN 1.1.0/1, on which a lifecycle execution (someone else's) runs for an hour
    let running = start(busy("1.1.0/1")).await;
    let deps = function(&running, &[]).await;
    // WHEN an explicit deprecation of that build arrives (no later run would plan it again)
    let request = json!({"resourceArn": format!("{BASE}/1.1.0/1"), "state": "DEPRECATED"});
    let answer = deps.handle(request, None).await;
    // THEN it is not answered as done: a retryable error naming the build, so Lambda retries it and, if the
    // execution outlasts the retries, the request lands in the dead-letter queue instead of vanishing
    let err = answer.expect_err("an explicit request that could not be applied is not a success");
    assert_eq!(err.error_type, "Retryable.Conflict", "{err:?}");
    assert!(err.error_message.contains("1.1.0/1"), "{}", err.error_message);
    assert_eq!(calls(&running, "StartResourceStateUpdate").len(), 1, "no retry within the invocation");
}

#[tokio::test]
async fn given_one_image_whose_builds_cannot_be_listed_when_the_account_is_swept_then_the_other_images_are_still_handled()
 {
    // GIVEN data-golden's builds cannot be listed (access denied), web-golden's can
    let running = start(seed(json!({"faults": {"rules": [{"operation": "ListImageBuildVersions",
        "when": {"imageVersionArn": format!("{OTHER}/1.0.0")}, "error": "ForbiddenException"}]}})))
    .await;
    let deps = function(&running, &[]).await;
    // WHEN the schedule sweeps the account
    let report = deps.handle(schedule("sweep-1"), None).await.expect("a report");
    // THEN data-golden is one failed line, and web-golden's builds were still updated
    let failed: Vec<(&str, Option<&str>)> = report
        .actions
        .iter()
        .filter(|a| a.outcome == Outcome::Failed)
        .map(|a| (a.target.as_str(), a.error_type.as_deref()))
        .collect();
    assert_eq!(failed, vec![(format!("{OTHER}/1.0.0").as_str(), Some("Permanent.AccessDenied"))]);
    assert_eq!(
        updates(&running),
        vec![
            ("1.0.0/1".to_string(), "DISABLED".to_string()),
            ("1.0.0/2".to_string(), "DISABLED".to_string()),
            ("1.1.0/1".to_string(), "DEPRECATED".to_string())
        ]
    );
}

fn schedule(id: &str) -> Value {
    json!({"version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012",
        "time": "2026-11-23T03:00:00Z", "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/sweep"], "detail": {}})
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
async fn given_an_explicit_request_in_dry_run_when_run_then_the_change_is_planned_and_no_update_is_sent() {
    // GIVEN an AVAILABLE build and an explicit request to disable it, as a dry run
    let running = start(seed(json!({}))).await;
    let deps = function(&running, &[]).await;
    let arn = format!("{BASE}/1.2.0/3");
    // WHEN it runs
    let report =
        deps.handle(json!({"resourceArn": arn, "state": "DISABLED", "dryRun": true}), None).await.expect("a report");
    // THEN the one change is reported as planned, from the build's state to the asked one
    assert!(report.dry_run);
    assert_eq!(report.actions.len(), 1, "{report:?}");
    let action = &report.actions[0];
    assert_eq!(
        (action.target.as_str(), action.action.as_str(), action.outcome),
        (arn.as_str(), "disable", Outcome::Planned)
    );
    assert!(action.detail.contains("DISABLED"), "{}", action.detail);
    // AND nothing was sent, and the build is as it was
    assert!(calls(&running, "StartResourceStateUpdate").is_empty());
    assert_eq!(status(&running, &arn), "AVAILABLE");
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
    assert!(report.actions[0].detail.contains("lifecycle execution lce-"), "a scheduled change runs as an execution");
    tokio::time::sleep(Duration::from_millis(120)).await;
    // The deprecation time is set at once; the record becomes DEPRECATED at updateAt, in 2030.
    assert_eq!(status(&running, &arn), "AVAILABLE");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_both_announcements_of_a_build_arriving_while_the_first_still_runs_when_the_second_is_handled_then_it_is_no_error()
 {
    // GIVEN the policy's first update slowed so that the first delivery is still running when the second arrives
    let running = start(seed(json!({"faults": {"rules": [
        {"operation": "StartResourceStateUpdate", "count": 1, "latencyMs": 600}
    ]}})))
    .await;
    let (one, two, _guard) = two_instances(&running).await;
    let one = std::sync::Arc::new(one);
    let first = {
        let one = one.clone();
        tokio::spawn(async move { one.answer(state_change("1.2.0/4", "AVAILABLE"), None).await })
    };
    while calls(&running, "StartResourceStateUpdate").is_empty() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // WHEN the pipeline's SNS announcement of the same build arrives meanwhile
    let calls_before = running.emulator.calls().len();
    let (second, metrics) = two.answer(sns_available("1.2.0/4"), None).await;
    let calls_by_second = running.emulator.calls()[calls_before..]
        .iter()
        .filter(|c| c.operation == "ListImageBuildVersions" || c.operation == "ListImages")
        .count();
    // THEN it is answered without a function error (no Errors alarm for an ordinary build), counted as no failure,
    // and it makes no call of its own
    let second = second.expect("a duplicate announcement is not an error");
    assert!(second.replayed, "{second:?}");
    assert_eq!(metrics.get("failed"), 0);
    let (first, _) = first.await.unwrap();
    let first = first.expect("the first delivery's report");
    assert!(first.count(Outcome::Applied) > 0, "{first:?}");
    assert_eq!(calls_by_second, 0, "the second never looks");
}

#[tokio::test]
async fn given_a_delivery_killed_mid_run_when_its_own_retry_arrives_before_the_deadline_then_it_is_still_in_progress() {
    // GIVEN a first delivery that holds the event (it was killed: its lock lives until its deadline)
    let running = start(seed(json!({}))).await;
    let guard = testbed::guard::store().await;
    let sdk = sdk_config(&running, "us-east-1", &fast_settings(5)).await;
    let lookup = Lookup::from_pairs(&[("RETRY_INITIAL_BACKOFF_MS", "1"), ("KEEP_AVAILABLE", "2")]);
    let host = Host::<UpdateImageLifecycle>::with_store(&sdk, &lookup, guard.store.clone()).expect("valid settings");
    let guard_of =
        shared::idempotency::Idempotency::new(guard.store.clone(), "update-image-lifecycle", Duration::from_secs(3600));
    let held = guard_of
        .run_delivery(
            &format!("imagebuilder:{BASE}/1.2.0/4#AVAILABLE"),
            Some("eventbridge-1.2.0/4-AVAILABLE"),
            &json!({"announces": [format!("imagebuilder:{BASE}/1.2.0/4#AVAILABLE")]}),
            Some(std::time::SystemTime::now() + Duration::from_secs(60)),
            || async {
                // WHEN Lambda's retry of the SAME delivery arrives while the lock is held
                let (answer, _) = host.answer(state_change("1.2.0/4", "AVAILABLE"), None).await;
                // THEN it is refused as in progress, so Lambda keeps retrying it: the work is not given up
                let refused = answer.expect_err("its own retry is not a duplicate announcement");
                assert_eq!(refused.error_type, "Retryable.InProgress");
                Ok::<_, std::convert::Infallible>(shared::report::Report::new("update-image-lifecycle", "x", false))
            },
        )
        .await;
    assert!(held.is_ok());
}

#[tokio::test]
async fn given_deprecate_restore_deprecate_sent_by_hand_when_the_guard_has_forgotten_the_first_then_the_third_deprecates()
 {
    // GIVEN an available build, and three requests sent by hand, each a new Lambda invocation; the first and third are
    // the same request, without a requestId, the third sent after the guard's TTL (a fresh guard)
    let running = start(seed(json!({}))).await;
    let arn = format!("{BASE}/1.2.0/3");
    let deprecate = json!({"resourceArn": arn, "state": "DEPRECATED"});
    let restore = json!({"resourceArn": arn, "state": "AVAILABLE"});
    let first = function(&running, &[]).await;
    first.handle_invocation(deprecate.clone(), None, Some("request-1")).await.expect("deprecated");
    assert_eq!(status(&running, &arn), "DEPRECATED");
    first.handle_invocation(restore, None, Some("request-2")).await.expect("restored");
    assert_eq!(status(&running, &arn), "AVAILABLE");
    // WHEN the first request is sent again, an hour later
    let later = function(&running, &[]).await;
    let report = later.handle_invocation(deprecate.clone(), None, Some("request-3")).await.expect("a report");
    // THEN it is a new delivery with a new token: Image Builder deprecates the build again, as the report says
    assert_eq!(report.count(Outcome::Applied), 1, "{report:?}");
    assert_eq!(status(&running, &arn), "DEPRECATED", "applied means the state shows it");
    let tokens: Vec<String> =
        calls(&running, "StartResourceStateUpdate").iter().map(|c| c.params["clientToken"].clone()).collect();
    assert_eq!(tokens.len(), 3);
    assert_ne!(tokens[0], tokens[2], "a new sending never reuses an old sending's token");
    // AND Lambda's retry of that same invocation (same request id) keeps its token, so it replays at AWS
    let retried = function(&running, &[]).await;
    retried.handle_invocation(deprecate, None, Some("request-3")).await.expect("a report");
    let tokens: Vec<String> =
        calls(&running, "StartResourceStateUpdate").iter().map(|c| c.params["clientToken"].clone()).collect();
    assert!(tokens.len() == 3 || tokens[3] == tokens[2], "a retry of the same delivery reuses its token: {tokens:?}");
}

#[tokio::test]
async fn given_regions_and_one_whose_images_cannot_be_listed_when_the_account_is_swept_then_every_other_region_is_handled()
 {
    // GIVEN the same builds in us-east-1 and eu-west-1, and us-east-1's image listing refused
    let mut seeded = seed(json!({"faults": {"rules": [
        {"operation": "ListImages", "region": "us-east-1", "error": "AccessDeniedException"}
    ]}}));
    let images: serde_json::Map<String, Value> = seeded["regions"]["us-east-1"]["images"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(arn, image)| (arn.replace(":us-east-1:", ":eu-west-1:"), image.clone()))
        .collect();
    seeded["regions"]["eu-west-1"] = json!({"images": images});
    let running = start(seeded).await;
    let deps = function(&running, &[("REGIONS", "us-east-1,eu-west-1")]).await;
    // WHEN the schedule sweeps the account
    let report = deps.handle(json!({}), None).await.expect("a report");
    // THEN us-east-1 is one failed line, and eu-west-1's builds were updated by the policy
    let failed: Vec<&str> =
        report.actions.iter().filter(|a| a.outcome == Outcome::Failed).map(|a| a.target.as_str()).collect();
    assert_eq!(failed, vec!["us-east-1/*"], "{report:?}");
    let regions: Vec<String> = calls(&running, "StartResourceStateUpdate").iter().map(|c| c.region.clone()).collect();
    assert!(!regions.is_empty() && regions.iter().all(|r| r == "eu-west-1"), "{regions:?}");
}
