//! start-idle-image-builders end to end: the function's handler, through the real AppStream SDK, against the
//! emulated account. Each test asserts from the emulator's call log which calls happened and which did NOT.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use shared::config::Lookup;
use shared::report::{Outcome, Report};
use start_idle_image_builders::StartIdleImageBuilders;
use testbed::emulator::{called_with, calls, fast_settings, sdk_config, start};
use testbed::guard::Guarded;

/// The function wired to the emulator: fast retries (`max_attempts`), fast polling, the run's guard (memory, or DynamoDB on moto: `testbed::guard`).
async fn function(
    running: &local::Running,
    max_attempts: u32,
    extra: &[(&str, &str)],
) -> Guarded<StartIdleImageBuilders> {
    let attempts = max_attempts.to_string();
    let mut pairs =
        vec![("MAX_ATTEMPTS", attempts.as_str()), ("RETRY_INITIAL_BACKOFF_MS", "1"), ("POLL_INTERVAL_MS", "20")];
    pairs.extend_from_slice(extra);
    let sdk = sdk_config(running, "us-east-1", &fast_settings(max_attempts)).await;
    testbed::guard::host(&sdk, &Lookup::from_pairs(&pairs)).await
}

/// A seeded builder: name, state, tags.
type Seeded<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

fn builders(entries: &[Seeded<'_>]) -> Value {
    let map: serde_json::Map<String, Value> = entries
        .iter()
        .map(|(name, state, tags)| {
            let tags: BTreeMap<&str, &str> = tags.iter().copied().collect();
            (name.to_string(), json!({"State": state, "Tags": tags}))
        })
        .collect();
    Value::Object(map)
}

fn outcomes(report: &Report) -> Vec<(String, Outcome)> {
    report.actions.iter().map(|a| (a.target.clone(), a.outcome)).collect()
}

const MUTATING: [&str; 2] = ["StartImageBuilder", "StopImageBuilder"];

fn mutating_calls(running: &local::Running) -> usize {
    running.emulator.calls().iter().filter(|c| MUTATING.contains(&c.operation.as_str())).count()
}

#[tokio::test]
async fn given_mixed_states_in_two_regions_when_started_then_exactly_the_stopped_selected_builders_start_with_the_agent_version()
 {
    // GIVEN builders in every kind of state, one opted out, one outside the prefix, in two regions
    let running = start(json!({
        "timing": {"transitionMillis": 60000},
        "regions": {
            "us-east-1": {"imageBuilders": builders(&[
                ("team-a", "STOPPED", &[]),
                ("team-b", "RUNNING", &[]),
                ("team-c", "STOPPED", &[("keeper:skip", "true")]),
                ("team-d", "FAILED", &[]),
                ("other-x", "STOPPED", &[]),
            ])},
            "eu-west-1": {"imageBuilders": builders(&[("team-e", "STOPPED", &[]), ("team-f", "PENDING", &[])])},
        }
    }))
    .await;
    let deps =
        function(&running, 3, &[("REGIONS", "us-east-1,eu-west-1"), ("APPSTREAM_AGENT_VERSION", "[LATEST]")]).await;
    // WHEN the function is asked to start the team builders in both regions with the latest agent
    let payload =
        json!({"namePrefix": "team-", "regions": ["us-east-1", "eu-west-1"], "appstreamAgentVersion": "[LATEST]"});
    let report = deps.handle(payload, None).await.expect("a report");
    // THEN exactly team-a and team-e were started, each with the agent version, and nothing else was touched
    let starts = calls(&running, "StartImageBuilder");
    let mut started: Vec<(String, String)> =
        starts.iter().map(|c| (c.region.clone(), c.params["Name"].clone())).collect();
    started.sort();
    assert_eq!(
        started,
        vec![("eu-west-1".to_string(), "team-e".to_string()), ("us-east-1".to_string(), "team-a".to_string())]
    );
    assert!(starts.iter().all(|c| c.params.get("AppstreamAgentVersion").map(String::as_str) == Some("[LATEST]")));
    assert!(calls(&running, "StopImageBuilder").is_empty());
    // Tags are read only where an opt-out could matter: the STOPPED builders in the selection.
    let mut tag_reads: Vec<String> = called_with(&running, "ListTagsForResource", "ResourceArn")
        .into_iter()
        .map(|a| a.rsplit('/').next().unwrap().to_string())
        .collect();
    tag_reads.sort();
    assert_eq!(tag_reads, vec!["team-a", "team-c", "team-e"]);
    assert_eq!(
        outcomes(&report),
        vec![
            ("eu-west-1/team-e".into(), Outcome::Applied),
            ("eu-west-1/team-f".into(), Outcome::Skipped),
            ("us-east-1/team-a".into(), Outcome::Applied),
            ("us-east-1/team-b".into(), Outcome::Skipped),
            ("us-east-1/team-c".into(), Outcome::Skipped),
            ("us-east-1/team-d".into(), Outcome::Skipped),
        ]
    );
    let detail = |target: &str| report.actions.iter().find(|a| a.target == target).unwrap().detail.clone();
    assert_eq!(detail("us-east-1/team-a"), "STOPPED → PENDING (agent [LATEST])");
    assert_eq!(detail("us-east-1/team-c"), "STOPPED: opted out by tag keeper:skip");
    assert_eq!(detail("us-east-1/team-b"), "RUNNING: already running or busy (RUNNING)");
    let state = running.emulator.world().regions["us-east-1"].image_builders["team-a"].state().to_string();
    assert_eq!(state, "PENDING");
}

#[tokio::test]
async fn given_120_builders_when_started_then_every_page_is_read_and_every_builder_started_once() {
    let many: Vec<String> = (0..120).map(|i| format!("b{i:03}")).collect();
    let entries: Vec<Seeded<'_>> = many.iter().map(|n| (n.as_str(), "STOPPED", &[][..])).collect();
    let running = start(
        json!({"timing": {"transitionMillis": 60000}, "regions": {"us-east-1": {"imageBuilders": builders(&entries)}}}),
    )
    .await;
    let deps = function(&running, 3, &[("MAX_CONCURRENCY", "16")]).await;
    let report = deps.handle(json!({}), None).await.unwrap();
    assert_eq!(report.count(Outcome::Applied), 120);
    assert_eq!(called_with(&running, "StartImageBuilder", "Name"), many);
    assert_eq!(calls(&running, "DescribeImageBuilders").len(), 5, "120 builders are five pages of 25");
}

#[tokio::test]
async fn given_stopping_builder_when_started_then_it_is_started_once_it_has_stopped() {
    // STOPPED in 1.5 s: the first read must still see STOPPING on a loaded machine, or the test proves nothing.
    let stops_at = local::clock::now_ms() + 1500;
    let running = start(json!({"timing": {"transitionMillis": 60000}, "regions": {"us-east-1": {"imageBuilders": {
        "b1": {"State": "STOPPING", "Transition": {"to": "STOPPED", "atMillis": stops_at}}
    }}}}))
    .await;
    let deps = function(&running, 3, &[]).await;
    let report = deps.handle(json!({"names": ["b1"]}), None).await.unwrap();
    assert_eq!(report.actions.len(), 1);
    assert_eq!((report.actions[0].action.as_str(), report.actions[0].outcome), ("wait-and-start", Outcome::Applied));
    let log = running.emulator.calls();
    let start_seq = log.iter().find(|c| c.operation == "StartImageBuilder").expect("started").seq;
    let polls_before = log.iter().filter(|c| c.operation == "DescribeImageBuilders" && c.seq < start_seq).count();
    assert!(polls_before >= 2, "polled until STOPPED ({polls_before} reads)");
    assert_eq!(calls(&running, "StartImageBuilder").len(), 1);
    assert!(local::clock::now_ms() >= stops_at);
}

#[tokio::test]
async fn given_a_builder_stopping_past_the_deadline_when_started_then_the_wait_ends_before_the_deadline_and_is_retryable()
 {
    // GIVEN a builder that stays STOPPING for a minute, and an invocation with 2.5 s left and a 1 s margin
    let running = start(json!({"timing": {"transitionMillis": 60000}, "regions": {"us-east-1": {"imageBuilders": {
        "b1": {"State": "STOPPING"}
    }}}}))
    .await;
    let deps = function(&running, 3, &[("DEADLINE_MARGIN_MS", "1000")]).await;
    let deadline = std::time::SystemTime::now() + std::time::Duration::from_millis(2500);
    // WHEN it is asked to start it, waiting for STOPPING
    let answer = deps.handle(json!({"names": ["b1"], "waitForStopping": true}), Some(deadline)).await;
    // THEN the wait gave up before the deadline (the run answered while Lambda would still hear it), polling meanwhile
    assert!(std::time::SystemTime::now() < deadline, "the wait ran past the Lambda deadline");
    let error = answer.expect_err("a builder left STOPPING is work left for the retry");
    assert_eq!(error.error_type, "Retryable.Timeout", "{error:?}");
    assert!(error.error_message.contains("still STOPPING"), "{}", error.error_message);
    assert!(calls(&running, "DescribeImageBuilders").len() >= 2, "it polled while it waited");
    // AND nothing was started
    assert!(calls(&running, "StartImageBuilder").is_empty());
}

#[tokio::test]
async fn given_contention_on_30_percent_of_starts_when_started_then_every_builder_starts() {
    let names: Vec<String> = (0..20).map(|i| format!("b{i:02}")).collect();
    let entries: Vec<Seeded<'_>> = names.iter().map(|n| (n.as_str(), "STOPPED", &[][..])).collect();
    let running = start(json!({
        "randomSeed": 7,
        "timing": {"transitionMillis": 60000},
        "regions": {"us-east-1": {"imageBuilders": builders(&entries)}},
        "faults": {"rules": [{"operation": "StartImageBuilder", "error": "ConcurrentModificationException", "probability": 0.3}]}
    }))
    .await;
    let deps = function(&running, 10, &[]).await;
    let report = deps.handle(json!({}), None).await.expect("keeper retries contention");
    assert_eq!(report.count(Outcome::Applied), 20);
    let starts = calls(&running, "StartImageBuilder");
    let injected = starts.iter().filter(|c| c.injected).count();
    assert!(injected > 0, "the fault fired");
    assert_eq!(starts.iter().filter(|c| c.ok()).count(), 20, "each builder started exactly once");
}

#[tokio::test]
async fn given_incompatible_image_on_one_builder_when_started_then_that_one_fails_and_the_others_start() {
    let running = start(json!({
        "timing": {"transitionMillis": 60000},
        "regions": {"us-east-1": {"imageBuilders": builders(&[("b1", "STOPPED", &[]), ("b2", "STOPPED", &[]), ("b3", "STOPPED", &[])])}},
        "faults": {"rules": [{"operation": "StartImageBuilder", "when": {"Name": "b2"}, "error": "IncompatibleImageException"}]}
    }))
    .await;
    let deps = function(&running, 5, &[]).await;
    let report =
        deps.handle(json!({}), None).await.expect("a permanent failure of one builder is reported, not raised");
    assert_eq!(
        outcomes(&report),
        vec![
            ("us-east-1/b1".into(), Outcome::Applied),
            ("us-east-1/b2".into(), Outcome::Failed),
            ("us-east-1/b3".into(), Outcome::Applied)
        ]
    );
    let b2 = &report.actions[1];
    assert_eq!(b2.error_type.as_deref(), Some("Permanent.Rejected"));
    assert!(b2.detail.contains("IncompatibleImageException"), "{}", b2.detail);
    assert_eq!(
        calls(&running, "StartImageBuilder").iter().filter(|c| c.params["Name"] == "b2").count(),
        1,
        "a permanent error is not retried"
    );
}

#[tokio::test]
async fn given_dry_run_when_run_then_the_plan_is_reported_and_no_mutating_call_is_made() {
    let running = start(json!({"regions": {"us-east-1": {"imageBuilders": builders(&[("b1", "STOPPED", &[]), ("b2", "RUNNING", &[])])}}})).await;
    let deps = function(&running, 3, &[]).await;
    let report = deps.handle(json!({"dryRun": true}), None).await.unwrap();
    assert!(report.dry_run);
    assert_eq!(
        outcomes(&report),
        vec![("us-east-1/b1".into(), Outcome::Planned), ("us-east-1/b2".into(), Outcome::Skipped)]
    );
    assert_eq!(mutating_calls(&running), 0);
    let deps = function(&running, 3, &[("DRY_RUN", "true")]).await;
    let report = deps.handle(json!({"dryRun": false}), None).await.unwrap();
    assert!(report.dry_run, "a request cannot switch off the setting's dry run");
    assert_eq!(mutating_calls(&running), 0);
}

#[tokio::test]
async fn given_the_same_event_twice_when_run_then_one_set_of_starts_and_a_replayed_report() {
    let running = start(json!({"timing": {"transitionMillis": 60000}, "regions": {"us-east-1": {"imageBuilders": builders(&[("b1", "STOPPED", &[]), ("b2", "STOPPED", &[])])}}})).await;
    let deps = function(&running, 3, &[]).await;
    let event = json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:t:s",
        "Sns": {"Type": "Notification", "MessageId": "m-42", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message": "{\"names\":[\"b1\",\"b2\"]}",
                "Timestamp": "2026-11-23T06:55:00.000Z", "SignatureVersion": "1", "Signature": "x", "SigningCertUrl": "x", "UnsubscribeUrl": "x"}}]});
    let first = deps.handle(event.clone(), None).await.unwrap();
    let second = deps.handle(event, None).await.unwrap();
    assert_eq!(first.count(Outcome::Applied), 2);
    assert!(second.replayed);
    assert_eq!(second.actions, first.actions);
    assert_eq!(calls(&running, "StartImageBuilder").len(), 2, "the redelivery made no call");
}

#[tokio::test]
async fn given_bad_input_when_run_then_error_names_the_field_and_no_aws_call_is_made() {
    let running =
        start(json!({"regions": {"us-east-1": {"imageBuilders": builders(&[("b1", "STOPPED", &[])])}}})).await;
    let deps = function(&running, 3, &[]).await;
    for (payload, expected) in [
        (json!({"names": ["b1", "not valid!"]}), "names[1]"),
        (json!({"regions": ["eu-wst-1"]}), "did you mean eu-west-1?"),
        (json!({"nmes": ["b1"]}), "unknown field `nmes`"),
        (json!({"action": "restart"}), "unknown variant `restart`"),
    ] {
        let diag = deps.handle(payload, None).await.unwrap_err();
        assert_eq!(diag.error_type, "Permanent.InvalidInput");
        assert!(diag.error_message.contains(expected), "{}", diag.error_message);
    }
    assert!(running.emulator.calls().is_empty(), "no call of any kind");
}

#[tokio::test]
async fn given_stop_action_when_run_then_running_builders_stop_and_the_rest_are_skipped() {
    let running = start(json!({"timing": {"transitionMillis": 60000}, "regions": {"us-east-1": {"imageBuilders": builders(&[
        ("b1", "RUNNING", &[]), ("b2", "STOPPED", &[]), ("b3", "RUNNING", &[("keeper:skip", "")]), ("b4", "SNAPSHOTTING", &[])
    ])}}}))
    .await;
    let deps = function(&running, 3, &[]).await;
    let report = deps.handle(json!({"action": "stop"}), None).await.unwrap();
    assert_eq!(called_with(&running, "StopImageBuilder", "Name"), vec!["b1"]);
    assert!(calls(&running, "StartImageBuilder").is_empty());
    assert_eq!(report.count(Outcome::Applied), 1);
    assert_eq!(report.count(Outcome::Skipped), 3);
}

#[tokio::test]
async fn given_contention_that_outlasts_the_retries_when_run_then_retryable_error_and_the_retry_finishes_the_job() {
    let running = start(json!({
        "timing": {"transitionMillis": 60000},
        "regions": {"us-east-1": {"imageBuilders": builders(&[("b1", "STOPPED", &[]), ("b2", "STOPPED", &[])])}},
        "faults": {"rules": [{"operation": "StartImageBuilder", "when": {"Name": "b2"}, "error": "ConcurrentModificationException", "count": 3}]}
    }))
    .await;
    let deps = function(&running, 3, &[]).await;
    let payload = json!({"requestId": "morning-1"});
    let diag = deps.handle(payload.clone(), None).await.unwrap_err();
    assert_eq!(diag.error_type, "Retryable.Conflict");
    assert!(diag.error_message.contains("us-east-1/b2"), "{}", diag.error_message);
    assert_eq!(called_with(&running, "StartImageBuilder", "Name"), vec!["b1", "b2", "b2", "b2"]);
    // Lambda's retry of the same event: b1 is already PENDING and skipped, b2 starts now.
    let report = deps.handle(payload, None).await.expect("the retry completes");
    assert!(!report.replayed, "a failed run is not replayed");
    assert_eq!(
        outcomes(&report),
        vec![("us-east-1/b1".into(), Outcome::Skipped), ("us-east-1/b2".into(), Outcome::Applied)]
    );
    assert_eq!(calls(&running, "StartImageBuilder").iter().filter(|c| c.ok()).count(), 2);
}

#[tokio::test]
async fn given_thirty_named_builders_and_ten_per_page_when_started_then_every_page_of_every_chunk_is_read() {
    // GIVEN 30 named builders, and an AppStream that answers DescribeImageBuilders ten at a time
    let names: Vec<String> = (0..30).map(|i| format!("b{i:02}")).collect();
    let entries: Vec<Seeded<'_>> = names.iter().map(|n| (n.as_str(), "STOPPED", &[][..])).collect();
    let running = start(json!({"timing": {"transitionMillis": 60000}, "paging": {"describeImageBuilders": 10},
        "regions": {"us-east-1": {"imageBuilders": builders(&entries)}}}))
    .await;
    let deps = function(&running, 3, &[]).await;
    // WHEN all thirty are named (a chunk of 25, then 5)
    let report = deps.handle(json!({"names": names}), None).await.unwrap();
    // THEN every one is found and started: the chunk's later pages are read, not taken for missing or unselected
    assert_eq!(report.count(Outcome::Applied), 30, "{report:?}");
    assert_eq!(called_with(&running, "StartImageBuilder", "Name"), names);
}

#[tokio::test]
async fn given_one_region_that_cannot_be_read_when_started_then_the_other_region_still_starts() {
    // GIVEN builders in two regions, and eu-west-1 refusing to be described
    let running = start(json!({"timing": {"transitionMillis": 60000},
        "regions": {"us-east-1": {"imageBuilders": builders(&[("b1", "STOPPED", &[])])},
                    "eu-west-1": {"imageBuilders": builders(&[("b2", "STOPPED", &[])])}},
        "faults": {"rules": [{"operation": "DescribeImageBuilders", "region": "eu-west-1", "error": "InvalidAccountStatusException"}]}}))
    .await;
    let deps = function(&running, 3, &[("REGIONS", "us-east-1,eu-west-1")]).await;
    // WHEN both regions are asked for
    let report = deps.handle(json!({"regions": ["us-east-1", "eu-west-1"]}), None).await.expect("a report");
    // THEN us-east-1's builder started, and eu-west-1 is one failed line with its type
    assert_eq!(called_with(&running, "StartImageBuilder", "Name"), vec!["b1"]);
    let failed = report.actions.iter().find(|a| a.outcome == Outcome::Failed).expect("eu-west-1's line");
    assert_eq!((failed.target.as_str(), failed.error_type.as_deref()), ("eu-west-1", Some("Permanent.AccessDenied")));
}

#[tokio::test]
async fn given_a_start_whose_answer_is_lost_after_it_applied_when_the_sdk_retries_then_the_builder_is_reported_started_by_this_run()
 {
    // GIVEN a builder whose StartImageBuilder takes effect and then loses its answer (the connection is reset)
    let running = start(json!({"timing": {"transitionMillis": 60000},
        "regions": {"us-east-1": {"imageBuilders": builders(&[("b1", "STOPPED", &[]), ("b2", "STOPPED", &[])])}},
        "faults": {"rules": [{"operation": "StartImageBuilder", "when": {"Name": "b1"}, "count": 1, "loseAnswer": true}]}}))
    .await;
    let deps = function(&running, 3, &[]).await;
    // WHEN the function starts both
    let (answer, metrics) = deps.answer(json!({"names": ["b1", "b2"]}), None).await;
    let report = answer.expect("a report");
    // THEN the SDK's retry met the builder its first attempt started, and the report says this run started it
    let b1 = report.actions.iter().find(|a| a.target.ends_with("/b1")).expect("b1's line");
    assert_eq!(b1.outcome, Outcome::Applied, "{b1:?}");
    assert!(b1.detail.contains("answer was lost"), "{}", b1.detail);
    assert!(!b1.detail.contains("not by this run"), "{}", b1.detail);
    assert_eq!(metrics.get("started"), 2, "both counted as started by this run");
    // AND the first attempt took effect once: the builder is not started twice
    let starts: Vec<String> =
        calls(&running, "StartImageBuilder").iter().filter(|c| c.ok()).map(|c| c.params["Name"].clone()).collect();
    assert_eq!(starts.iter().filter(|n| *n == "b1").count(), 1, "{starts:?}");
}

#[tokio::test]
async fn given_a_start_by_someone_else_between_read_and_start_when_refused_then_it_is_not_reported_as_this_runs() {
    // GIVEN a builder started by another caller after the function read it: AppStream refuses the second start
    let running = start(json!({"timing": {"transitionMillis": 60000},
        "regions": {"us-east-1": {"imageBuilders": builders(&[("b1", "STOPPED", &[])])}},
        "faults": {"rules": [{"operation": "DescribeImageBuilders", "count": 1, "latencyAfterMs": 300}]}}))
    .await;
    let deps = std::sync::Arc::new(function(&running, 3, &[]).await);
    let run = {
        let deps = deps.clone();
        tokio::spawn(async move { deps.answer(json!({"names": ["b1"]}), None).await })
    };
    while calls(&running, "DescribeImageBuilders").is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let other = sdk_config(&running, "us-east-1", &fast_settings(1)).await;
    aws_sdk_appstream::Client::new(&other)
        .start_image_builder()
        .name("b1")
        .send()
        .await
        .expect("someone else starts it");
    let (answer, metrics) = run.await.unwrap();
    // THEN it is skipped as someone else's, and not counted as started
    let report = answer.expect("a report");
    assert_eq!(report.actions[0].outcome, Outcome::Skipped, "{report:?}");
    assert!(report.actions[0].detail.contains("not by this run"), "{}", report.actions[0].detail);
    assert_eq!(metrics.get("started"), 0);
}

#[tokio::test]
async fn given_four_stopping_builders_and_a_limit_of_one_when_started_then_one_is_polled_at_a_time() {
    // GIVEN four STOPPING builders that stop in 2 s (after the DynamoDB guard's moto has started), and MAX_CONCURRENCY 1
    let stops_at = local::clock::now_ms() + 2000;
    let entries: serde_json::Map<String, Value> = (1..=4)
        .map(|i| (format!("b{i}"), json!({"State": "STOPPING", "Transition": {"to": "STOPPED", "atMillis": stops_at}})))
        .collect();
    let running =
        start(json!({"timing": {"transitionMillis": 60000}, "regions": {"us-east-1": {"imageBuilders": entries}}}))
            .await;
    let deps = function(&running, 3, &[("MAX_CONCURRENCY", "1")]).await;
    // WHEN they are started, waiting for STOPPING
    let report = deps.handle(json!({"names": ["b1", "b2", "b3", "b4"], "waitForStopping": true}), None).await.unwrap();
    assert_eq!(report.count(Outcome::Applied), 4, "{report:?}");
    assert_eq!(report.count_of("wait-and-start", Outcome::Applied), 4, "all four were read STOPPING: {report:?}");
    // THEN a builder's polls and start come together, never interleaved with another's: one caller at a time
    let order: Vec<String> = running
        .emulator
        .calls()
        .iter()
        .filter_map(|c| match c.operation.as_str() {
            // A poll reads one builder; the first read (all four at once) is not a poll.
            "DescribeImageBuilders" => c.params.get("Names").filter(|n| !n.contains(',')).cloned(),
            "StartImageBuilder" => Some(format!("start {}", c.params["Name"])),
            _ => None,
        })
        .collect();
    let mut finished: Vec<&str> = Vec::new();
    let mut current: Option<&str> = None;
    for entry in &order {
        match entry.strip_prefix("start ") {
            Some(started) => finished.push(started),
            None => {
                if let Some(previous) = current.filter(|p| *p != entry.as_str()) {
                    assert!(finished.contains(&previous), "{previous} and {entry} polled at once: {order:?}");
                }
                assert!(!finished.contains(&entry.as_str()), "{entry} polled after its start: {order:?}");
                current = Some(entry.as_str());
            }
        }
    }
    assert_eq!(finished.len(), 4, "{order:?}");
}

#[tokio::test]
async fn given_settings_as_bounds_when_a_message_would_widen_them_then_refused_naming_the_bound_and_nothing_is_called()
{
    // GIVEN a function for team- builders tagged office-hours in us-east-1, and a builder outside those bounds
    let running = start(json!({"regions": {"us-east-1": {"imageBuilders": builders(&[
        ("team-a", "RUNNING", &[("keeper:schedule", "office-hours")]), ("prod-db", "RUNNING", &[])])}}}))
    .await;
    let deps = function(&running, 3, &[("NAME_PREFIX", "team-"), ("TAGS", "keeper:schedule=office-hours")]).await;
    // WHEN messages try to stop every builder, other regions, or builders without the tag
    for (request, bound) in [
        (json!({"action": "stop", "namePrefix": ""}), "NAME_PREFIX"),
        (json!({"action": "stop", "names": ["prod-db"]}), "NAME_PREFIX"),
        (json!({"action": "stop", "tags": {}}), "TAGS"),
        (json!({"action": "stop", "regions": ["eu-west-1"]}), "REGIONS"),
    ] {
        let diag = deps.handle(request.clone(), None).await.expect_err("refused");
        // THEN each is Permanent.InvalidInput naming the setting that bounds it
        assert_eq!(diag.error_type, "Permanent.InvalidInput", "{request}");
        assert!(diag.error_message.contains(bound), "{request}: {}", diag.error_message);
    }
    // AND no call reached AppStream at all
    assert!(running.emulator.calls().is_empty(), "{:?}", running.emulator.calls());
}

#[tokio::test]
async fn given_a_stopping_builder_first_and_a_limit_of_one_when_started_then_the_stopped_builder_is_not_held_back() {
    // GIVEN a-builder STOPPING for 3 s (the DynamoDB guard's moto starts first: the read must still see STOPPING),
    // listed before b-builder, which is STOPPED, and MAX_CONCURRENCY 1
    let stops_at = local::clock::now_ms() + 3000;
    let running = start(json!({"timing": {"transitionMillis": 60000}, "regions": {"us-east-1": {"imageBuilders": {
        "a-builder": {"State": "STOPPING", "Transition": {"to": "STOPPED", "atMillis": stops_at}},
        "b-builder": {"State": "STOPPED"}
    }}}}))
    .await;
    let deps = function(&running, 3, &[("MAX_CONCURRENCY", "1")]).await;
    // WHEN both are started, waiting for STOPPING
    let report =
        deps.handle(json!({"names": ["a-builder", "b-builder"], "waitForStopping": true}), None).await.unwrap();
    // THEN both started, the ready one first: the wait did not hold the only permit ahead of it
    assert_eq!(report.count(Outcome::Applied), 2, "{report:?}");
    assert_eq!(report.count_of("wait-and-start", Outcome::Applied), 1, "a-builder was read STOPPING: {report:?}");
    let order: Vec<String> = calls(&running, "StartImageBuilder").iter().map(|c| c.params["Name"].clone()).collect();
    assert_eq!(order, vec!["b-builder", "a-builder"]);
    // AND the report keeps the plan's order
    assert!(report.actions[0].target.ends_with("/a-builder"), "{:?}", report.actions);
}

/// A schedules document: Berlin office hours on weekdays with Good Friday 2026 off, enforced.
const OFFICE: &str = r#"{"schedules": [{"name": "office", "timezone": "Europe/Berlin", "mode": "enforced",
    "periods": [{"begin": "08:00", "end": "18:00", "weekdays": ["mon-fri"]}], "holidays": ["2026-04-03"]}]}"#;

/// A reconcile as the Scheduler sends it at `time`: each its own event, so none is a replay of another.
fn reconcile_event(n: u32, time: &str) -> Value {
    json!({"action": "reconcile", "scheduler": {
        "executionId": format!("00000000-0000-4000-8000-{n:012}"),
        "scheduledTime": time,
        "scheduleArn": "arn:aws:scheduler:us-east-1:123456789012:schedule/default/keeper-reconcile-image-builders"
    }})
}

/// A clock the test moves, which the function's invocations read (`Guarded::with_clock`).
#[derive(Clone, Default)]
struct Moved(std::sync::Arc<std::sync::atomic::AtomicI64>);

impl Moved {
    /// The function wired to the emulator (as [`function`]), reading this clock.
    async fn function(&self, running: &local::Running, extra: &[(&str, &str)]) -> Guarded<StartIdleImageBuilders> {
        let clock = self.0.clone();
        function(running, 3, extra).await.with_clock(move || {
            let secs = clock.load(std::sync::atomic::Ordering::SeqCst);
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64)
        })
    }

    /// The clock moved to `time`, and the `n`-th reconcile as the Scheduler sends it then.
    fn reconcile(&self, n: u32, time: &str) -> Value {
        let t: jiff::Timestamp = time.parse().expect("an instant");
        self.0.store(t.as_second(), std::sync::atomic::Ordering::SeqCst);
        reconcile_event(n, time)
    }
}

fn line<'a>(report: &'a Report, target: &str) -> &'a shared::report::Action {
    report.actions.iter().find(|a| a.target == target).unwrap_or_else(|| panic!("no line for {target}: {report:?}"))
}

#[tokio::test]
async fn given_tagged_builders_when_reconciled_across_a_dst_change_a_holiday_and_an_expiring_override_then_each_follows_its_schedule()
 {
    // GIVEN two builders on Berlin office hours (one held stopped by an override until Monday 09:00 Berlin), and
    // one without a schedule tag, all STOPPED; and a clock the test moves
    let running = start(json!({"timing": {"transitionMillis": 20}, "regions": {"us-east-1": {"imageBuilders": builders(&[
        ("office", "STOPPED", &[("keeper:schedule", "office")]),
        ("held", "STOPPED", &[("keeper:schedule", "office"), ("keeper:override", "stopped until 2026-03-30T09:00:00+02:00")]),
        ("free", "STOPPED", &[]),
    ])}}}))
    .await;
    let clock = Moved::default();
    let deps = clock.function(&running, &[("SCHEDULES", OFFICE)]).await;
    let mut n = 0;
    let mut at = |time: &str| {
        n += 1;
        clock.reconcile(n, time)
    };
    let settle = || tokio::time::sleep(std::time::Duration::from_millis(120));

    // WHEN it runs on Friday 27 March at 07:30 Berlin (06:30 UTC, winter time): before the period
    let report = deps.handle(at("2026-03-27T06:30:00Z"), None).await.expect("a report");
    // THEN nothing is started, and the builder without a schedule is not even listed
    assert_eq!(calls(&running, "StartImageBuilder").len(), 0, "{report:?}");
    assert!(report.actions.iter().all(|a| !a.target.ends_with("/free")), "{report:?}");
    assert!(line(&report, "us-east-1/office").detail.contains("outside every period"), "{report:?}");

    // WHEN it runs at 08:05 Berlin (07:05 UTC): in the period
    let report = deps.handle(at("2026-03-27T07:05:00Z"), None).await.expect("a report");
    // THEN the office builder is started, and the held one stays stopped by its override
    assert_eq!(called_with(&running, "StartImageBuilder", "Name"), vec!["office"], "{report:?}");
    assert_eq!(line(&report, "us-east-1/office").outcome, Outcome::Applied);
    assert!(line(&report, "us-east-1/held").detail.contains("keeper:override"), "{report:?}");
    settle().await;

    // WHEN it runs at 18:05 Berlin (17:05 UTC)
    deps.handle(at("2026-03-27T17:05:00Z"), None).await.expect("a report");
    // THEN the office builder is stopped
    assert_eq!(called_with(&running, "StopImageBuilder", "Name"), vec!["office"]);
    settle().await;

    // WHEN it runs on Monday 30 March at 06:30 UTC: 08:30 Berlin summer time (it would be 07:30 without the DST change)
    let report = deps.handle(at("2026-03-30T06:30:00Z"), None).await.expect("a report");
    // THEN the office builder is started again; the held one's override still holds
    assert_eq!(called_with(&running, "StartImageBuilder", "Name"), vec!["office", "office"], "{report:?}");
    assert!(line(&report, "us-east-1/office").detail.contains("CEST"), "{report:?}");
    settle().await;

    // WHEN it runs at 09:05 Berlin (07:05 UTC): the override has expired
    let report = deps.handle(at("2026-03-30T07:05:00Z"), None).await.expect("a report");
    // THEN the held builder follows the schedule again, and the report says the override expired
    assert_eq!(called_with(&running, "StartImageBuilder", "Name"), vec!["held", "office", "office"], "{report:?}");
    assert!(line(&report, "us-east-1/held").detail.contains("expired"), "{report:?}");
    assert_eq!(line(&report, "us-east-1/office").outcome, Outcome::Skipped, "already running: no second start");
    settle().await;

    // WHEN it runs on Good Friday, 3 April, at 11:00 Berlin: a holiday
    let report = deps.handle(at("2026-04-03T09:00:00Z"), None).await.expect("a report");
    // THEN both are stopped, saying why (the call log's names come sorted)
    let stopped = called_with(&running, "StopImageBuilder", "Name");
    assert_eq!(stopped, vec!["held", "office", "office"], "{report:?}");
    assert!(line(&report, "us-east-1/office").detail.contains("holiday 2026-04-03"), "{report:?}");
    // AND the builder without a schedule was never started or stopped
    assert!(!called_with(&running, "StartImageBuilder", "Name").contains(&"free".to_string()));
}

#[tokio::test]
async fn given_reconcile_requests_that_break_a_rule_when_handled_then_refused_naming_the_field_without_a_call() {
    // GIVEN a builder on a schedule
    let running = start(json!({"regions": {"us-east-1": {"imageBuilders": builders(&[
        ("office", "STOPPED", &[("keeper:schedule", "office")]),
    ])}}}))
    .await;
    let with = function(&running, 3, &[("SCHEDULES", OFFICE)]).await;
    let without = function(&running, 3, &[]).await;
    for (deps, request, field) in [
        // WHEN the function has no schedules, a schedule is unknown, or a real run asks to decide at another time
        (&without, json!({"action": "reconcile"}), "action"),
        (&with, json!({"action": "reconcile", "names": ["office"], "schedule": "night"}), "schedule"),
        (&with, json!({"action": "reconcile", "schedule": "office"}), "schedule"),
        (&with, json!({"action": "reconcile", "at": "2026-03-30T06:30:00Z"}), "at"),
        (&with, json!({"action": "start", "schedule": "office"}), "schedule"),
    ] {
        // THEN each is refused, naming the field
        let error = deps.handle(request.clone(), None).await.expect_err("refused");
        assert!(error.error_message.contains(&format!("`{field}`")), "{request}: {error:?}");
    }
    // AND no builder was read for it, nor started
    assert!(calls(&running, "StartImageBuilder").is_empty());
    assert!(calls(&running, "DescribeImageBuilders").is_empty());
}

#[tokio::test]
async fn given_a_dry_run_at_a_chosen_time_when_reconciled_then_the_decisions_and_why_and_no_call() {
    // GIVEN a builder on Berlin office hours
    let running = start(json!({"regions": {"us-east-1": {"imageBuilders": builders(&[
        ("office", "STOPPED", &[("keeper:schedule", "office")]),
    ])}}}))
    .await;
    let deps = function(&running, 3, &[("SCHEDULES", OFFICE)]).await;
    // WHEN a dry run asks what would happen on Monday 30 March at 08:30 Berlin
    let report = deps
        .handle(json!({"action": "reconcile", "dryRun": true, "at": "2026-03-30T08:30:00+02:00"}), None)
        .await
        .expect("a report");
    // THEN it plans a start and says which schedule and period, in local time
    let office = line(&report, "us-east-1/office");
    assert_eq!((office.action.as_str(), office.outcome), ("start", Outcome::Planned), "{report:?}");
    assert!(office.detail.contains("schedule office, in period 1 at Mon 2026-03-30 08:30 CEST"), "{}", office.detail);
    // AND nothing is started
    assert!(calls(&running, "StartImageBuilder").is_empty());
}

#[tokio::test]
async fn given_a_respect_manual_schedule_when_a_person_stops_the_builder_mid_period_then_keeper_leaves_it_until_the_next_edge()
 {
    // GIVEN a builder on a respect-manual schedule, 08:00-18:00 UTC every day, STOPPED
    let schedules = r#"{"schedules": [{"name": "polite", "timezone": "UTC", "mode": "respect-manual",
        "periods": [{"begin": "08:00", "end": "18:00"}]}]}"#;
    let running =
        start(json!({"timing": {"transitionMillis": 20}, "regions": {"us-east-1": {"imageBuilders": builders(&[
            ("b", "STOPPED", &[("keeper:schedule", "polite")]),
        ])}}}))
        .await;
    let clock = Moved::default();
    let deps = clock.function(&running, &[("SCHEDULES", schedules)]).await;
    let at = |time: &str, n: u32| clock.reconcile(n, time);
    // WHEN the first run after the period's start finds it stopped
    deps.handle(at("2026-06-01T08:05:00Z", 1), None).await.expect("a report");
    // THEN it is started
    assert_eq!(called_with(&running, "StartImageBuilder", "Name"), vec!["b"]);
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    // WHEN a person stops it at 10:00, and keeper runs at 10:15, and that run is delivered again
    let sdk = sdk_config(&running, "us-east-1", &fast_settings(3)).await;
    aws_sdk_appstream::Client::new(&sdk).stop_image_builder().name("b").send().await.expect("stopped by hand");
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    let report = deps.handle(at("2026-06-01T10:15:00Z", 2), None).await.expect("a report");
    deps.handle(at("2026-06-01T10:30:00Z", 3), None).await.expect("a report");
    // THEN keeper leaves it stopped, saying why
    assert_eq!(called_with(&running, "StartImageBuilder", "Name"), vec!["b"], "{report:?}");
    assert!(line(&report, "us-east-1/b").detail.contains("respect-manual"), "{report:?}");
    // WHEN the period ends with the builder stopped, and the next period begins
    deps.handle(at("2026-06-01T18:05:00Z", 4), None).await.expect("a report");
    deps.handle(at("2026-06-02T08:05:00Z", 5), None).await.expect("a report");
    // THEN the new period's start starts it again, once
    assert_eq!(called_with(&running, "StartImageBuilder", "Name"), vec!["b", "b"]);
    assert!(calls(&running, "StopImageBuilder").len() == 1, "only the person stopped it");
}

#[tokio::test]
async fn given_schedules_and_the_fixed_jobs_when_both_run_then_each_builder_has_one_master() {
    // GIVEN the template's TAGS (keeper:schedule=office-hours) and a document with another schedule; a builder on
    // that schedule, one on office-hours (not in the document), both STOPPED
    let running = start(json!({"regions": {"us-east-1": {"imageBuilders": builders(&[
        ("berlin", "STOPPED", &[("keeper:schedule", "office")]),
        ("legacy", "STOPPED", &[("keeper:schedule", "office-hours")]),
    ])}}}))
    .await;
    let settings = [("SCHEDULES", OFFICE), ("TAGS", "keeper:schedule=office-hours")];
    let deps = function(&running, 3, &settings).await;
    // WHEN the fixed 07:00 start runs
    let report = deps.handle(json!({"action": "start"}), None).await.expect("a report");
    // THEN it leaves the scheduled builder to the reconcile, saying so, and starts nothing
    assert!(calls(&running, "StartImageBuilder").is_empty(), "{report:?}");
    assert!(line(&report, "us-east-1/legacy").detail.contains("the reconcile decides"), "{report:?}");
    // WHEN a reconcile runs in the office period: the TAGS pair on the schedule tag does not bound it
    let report = deps
        .handle(json!({"action": "reconcile", "dryRun": true, "at": "2026-03-30T08:30:00+02:00"}), None)
        .await
        .expect("a report");
    assert_eq!(line(&report, "us-east-1/berlin").outcome, Outcome::Planned, "{report:?}");
    assert!(line(&report, "us-east-1/legacy").detail.contains("not in the schedules document"), "{report:?}");
    // AND a broken document refuses the reconcile alone, naming the field; the fixed jobs still run, on every builder
    let broken = function(
        &running,
        3,
        &[("SCHEDULES", r#"{"schedules": [{"name": "x", "timezone": "UTC", "periods": [{"begin": "9"}]}]}"#)],
    )
    .await;
    let error = broken.handle(json!({"action": "reconcile"}), None).await.expect_err("refused");
    assert!(error.error_message.contains("schedules[0].periods[0].begin"), "{error:?}");
    broken.handle(json!({"action": "start", "names": ["berlin"]}), None).await.expect("the fixed start runs");
    assert_eq!(called_with(&running, "StartImageBuilder", "Name"), vec!["berlin"]);
}

/// Where the tests below keep the schedules document: a versioned bucket, as the template's desired-state bucket.
const SCHEDULES_BUCKET: &str = "keeper-desired-state-123456789012-us-east-1";

/// `OFFICE` with the evening off: the office closes at 12:00.
const HALF_DAY: &str = r#"{"schedules": [{"name": "office", "timezone": "Europe/Berlin", "mode": "enforced",
    "periods": [{"begin": "08:00", "end": "12:00", "weekdays": ["mon-fri"]}]}]}"#;

/// A document with a typo in its second schedule's period: `"begin": "25:00"`.
const TYPO: &str = r#"{"schedules": [{"name": "office", "timezone": "Europe/Berlin", "mode": "enforced",
    "periods": [{"begin": "08:00", "end": "18:00", "weekdays": ["mon-fri"]}]},
    {"name": "night", "timezone": "UTC", "periods": [{"begin": "25:00", "end": "06:00"}]}]}"#;

#[tokio::test]
async fn given_schedules_kept_in_s3_when_a_bad_version_is_uploaded_then_the_run_names_the_field_and_the_last_good_one_stays_in_force()
 {
    // GIVEN a running builder on office hours, and the schedules document in S3 (v1: 08:00-18:00)
    let running =
        start(json!({"timing": {"transitionMillis": 20}, "regions": {"us-east-1": {"imageBuilders": builders(&[
        ("office", "RUNNING", &[("keeper:schedule", "office")]),
    ])}}, "s3": {"keeper-desired-state-123456789012-us-east-1": {}}}))
        .await;
    let objects = running.emulator.objects();
    let (_, good) = objects.put(SCHEDULES_BUCKET, "schedules.json", OFFICE.into(), None);
    let uri = format!("s3://{SCHEDULES_BUCKET}/schedules.json");
    let deps = function(&running, 3, &[("SCHEDULES_S3_URI", uri.as_str())]).await;
    // Monday 30 March 2026, 14:00 Berlin: in v1's period, after a half day's; each request its own
    let dry_run_at = |n: u32| json!({"requestId": format!("r{n}"), "action": "reconcile", "dryRun": true, "at": "2026-03-30T14:00:00+02:00"});

    // WHEN a reconcile runs on v1
    let report = deps.handle(dry_run_at(1), None).await.expect("a report");
    // THEN the builder is left running, and no line failed
    assert_eq!(line(&report, "us-east-1/office").outcome, Outcome::Skipped, "{report:?}");
    assert!(report.actions.iter().all(|a| a.outcome != Outcome::Failed), "{report:?}");

    // WHEN a version with a typo is uploaded, and the reconcile runs again
    let (_, bad) = objects.put(SCHEDULES_BUCKET, "schedules.json", TYPO.into(), None);
    let report = deps.handle(dry_run_at(2), None).await.expect("a report, not a refusal");
    // THEN one failed line names the version, the field and the version that stays in force
    let refused = line(&report, &uri);
    assert_eq!(refused.outcome, Outcome::Failed, "{report:?}");
    for part in
        [bad.as_str(), "schedules[1].periods[0].begin", &format!("version {good}, the last good one, stays in force")]
    {
        assert!(refused.detail.contains(part), "{part}: {}", refused.detail);
    }
    // AND the builder is still decided on v1: left running
    assert_eq!(line(&report, "us-east-1/office").outcome, Outcome::Skipped, "{report:?}");
    // AND the last good version was found by its history and read by its version id
    assert_eq!(calls(&running, "ListObjectVersions").len(), 1);
    assert!(called_with(&running, "GetObject", "VersionId").contains(&good), "the last good version, read by id");

    // WHEN a good v3 (a half day) is uploaded
    objects.put(SCHEDULES_BUCKET, "schedules.json", HALF_DAY.into(), None);
    let report = deps.handle(dry_run_at(3), None).await.expect("a report");
    // THEN v3 decides: at 14:00 the builder would be stopped; and nothing failed
    let office = line(&report, "us-east-1/office");
    assert_eq!((office.action.as_str(), office.outcome), ("stop", Outcome::Planned), "{report:?}");
    assert!(report.actions.iter().all(|a| a.outcome != Outcome::Failed), "{report:?}");
    // AND no builder was started or stopped by any of these dry runs
    assert_eq!(mutating_calls(&running), 0);
}

#[tokio::test]
async fn given_schedules_in_s3_with_no_good_version_when_run_then_the_reconcile_is_refused_and_the_fixed_start_takes_every_builder()
 {
    // GIVEN a STOPPED builder on office hours, and only a bad version of the schedules document
    let running = start(json!({"regions": {"us-east-1": {"imageBuilders": builders(&[
        ("office", "STOPPED", &[("keeper:schedule", "office")]),
    ])}}, "s3": {"keeper-desired-state-123456789012-us-east-1": {}}}))
    .await;
    let (_, bad) = running.emulator.objects().put(SCHEDULES_BUCKET, "schedules.json", TYPO.into(), None);
    let uri = format!("s3://{SCHEDULES_BUCKET}/schedules.json");
    let deps = function(&running, 3, &[("SCHEDULES_S3_URI", uri.as_str())]).await;
    // WHEN a request that can never pass comes first
    let error = deps.handle(json!({"action": "reconcile", "at": "2026-03-30T06:30:00Z"}), None).await;
    // THEN it is refused for its own field before the document is even read
    assert!(error.expect_err("refused").error_message.contains("`at`"));
    assert!(calls(&running, "GetObject").is_empty(), "no read for a request refused on its own");
    // WHEN the reconcile runs
    let error = deps.handle(reconcile_event(1, "2026-03-30T06:30:00Z"), None).await;
    // THEN it is refused, naming the setting, the version and the field, before any builder is read
    let report = error.expect("an event source's permanent failure is answered with a report");
    let failure = report.error.expect("the reconcile is refused");
    assert_eq!(failure.error_type, "Permanent.InvalidInput");
    for part in ["SCHEDULES_S3_URI", bad.as_str(), "schedules[1].periods[0].begin", "no version before it is valid"] {
        assert!(failure.error_message.contains(part), "{part}: {}", failure.error_message);
    }
    assert!(calls(&running, "DescribeImageBuilders").is_empty());
    // WHEN the fixed start runs
    let report = deps.handle(json!({"action": "start"}), None).await.expect("a report");
    // THEN no document is in force, so it starts the scheduled builder too, and says what is wrong with the upload
    assert_eq!(called_with(&running, "StartImageBuilder", "Name"), vec!["office"], "{report:?}");
    assert_eq!(line(&report, &uri).outcome, Outcome::Failed, "{report:?}");
    // AND a document that does not exist at all is said the same way
    let missing =
        function(&running, 3, &[("SCHEDULES_S3_URI", format!("s3://{SCHEDULES_BUCKET}/gone.json").as_str())]).await;
    let error = missing.handle(json!({"action": "reconcile"}), None).await.expect_err("refused, by hand");
    assert!(error.error_message.contains("gone.json is missing or cannot be read"), "{error:?}");
}

#[tokio::test]
async fn given_both_schedules_settings_when_the_function_starts_then_it_refuses_to_guess() {
    let running = start(json!({})).await;
    let sdk = sdk_config(&running, "us-east-1", &fast_settings(1)).await;
    let pairs = [("SCHEDULES", OFFICE), ("SCHEDULES_S3_URI", "s3://b/schedules.json")];
    let refused = shared::host::Host::<StartIdleImageBuilders>::with_store(
        &sdk,
        &Lookup::from_pairs(&pairs),
        std::sync::Arc::new(shared::idempotency::MemoryStore::default()),
    )
    .err()
    .expect("refused at start");
    assert!(refused.to_string().contains("SCHEDULES_S3_URI"), "{refused}");
}

/// The guard's store, whose marks can be made to refuse writes: keeper's record of a stretch that cannot be kept.
#[derive(Default)]
struct MarksRefused {
    inner: shared::idempotency::MemoryStore,
    refuse: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl shared::idempotency::IdempotencyStore for MarksRefused {
    async fn put_in_progress(
        &self,
        record: &shared::idempotency::Record,
        now: shared::idempotency::Now,
    ) -> Result<shared::idempotency::Lock, shared::idempotency::StoreError> {
        self.inner.put_in_progress(record, now).await
    }
    async fn complete(&self, record: &shared::idempotency::Record) -> Result<bool, shared::idempotency::StoreError> {
        self.inner.complete(record).await
    }
    async fn delete(&self, id: &str, owner: &str) -> Result<bool, shared::idempotency::StoreError> {
        self.inner.delete(id, owner).await
    }
    async fn get_mark(&self, id: &str) -> Result<Option<String>, shared::idempotency::StoreError> {
        self.inner.get_mark(id).await
    }
    async fn put_mark(&self, id: &str, value: &str, expiration: i64) -> Result<(), shared::idempotency::StoreError> {
        if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(shared::idempotency::StoreError("PutItem: ProvisionedThroughputExceededException".into()));
        }
        self.inner.put_mark(id, value, expiration).await
    }
}

#[tokio::test]
async fn given_a_respect_manual_builder_when_its_record_cannot_be_written_or_its_start_fails_then_keeper_acts_only_on_a_record()
 {
    // GIVEN a STOPPED builder on a respect-manual schedule that wants it running all day
    let schedules = r#"{"schedules": [{"name": "polite", "timezone": "UTC", "mode": "respect-manual",
        "periods": [{"begin": "00:00"}]}]}"#;
    let running = start(json!({"regions": {"us-east-1": {"imageBuilders": builders(&[
        ("b", "STOPPED", &[("keeper:schedule", "polite")]),
    ])}}}))
    .await;
    let store = std::sync::Arc::new(MarksRefused::default());
    let sdk = sdk_config(&running, "us-east-1", &fast_settings(1)).await;
    let pairs = [("SCHEDULES", schedules), ("MAX_ATTEMPTS", "1")];
    let host =
        shared::host::Host::<StartIdleImageBuilders>::with_store(&sdk, &Lookup::from_pairs(&pairs), store.clone())
            .expect("valid settings");
    // WHEN the record of the stretch cannot be written
    store.refuse.store(true, std::sync::atomic::Ordering::SeqCst);
    let error = host.handle(reconcile_event(1, "2026-06-01T08:00:00Z"), None).await.expect_err("retried");
    // THEN the builder is not started (a start with no record could be repeated), and the run is retried for it
    assert!(calls(&running, "StartImageBuilder").is_empty(), "{error:?}");
    assert_eq!(error.error_type, "Retryable.IdempotencyStore");
    assert!(error.error_message.contains("us-east-1/b"), "{error:?}");
    // WHEN the record can be written again but the start fails for good
    store.refuse.store(false, std::sync::atomic::Ordering::SeqCst);
    running.emulator.add_fault(local::FaultRule {
        count: Some(1),
        ..local::FaultRule::error("StartImageBuilder", "InvalidAccountStatusException")
    });
    let report = host.handle(reconcile_event(2, "2026-06-01T08:15:00Z"), None).await.expect("a report");
    assert_eq!(line(&report, "us-east-1/b").outcome, Outcome::Failed, "{report:?}");
    // THEN the record is undone: the next run starts it, once
    let report = host.handle(reconcile_event(3, "2026-06-01T08:30:00Z"), None).await.expect("a report");
    assert_eq!(line(&report, "us-east-1/b").outcome, Outcome::Applied, "{report:?}");
    let started: Vec<_> = calls(&running, "StartImageBuilder").into_iter().filter(|c| c.ok()).collect();
    assert_eq!(started.len(), 1, "{report:?}");
}
