//! Every sample in events/start-idle-image-builders/ parses as the trigger it claims to be, and its request is valid.

use shared::config::{FromLookup, Lookup};
use shared::trigger::{SnsMessage, Trigger, parse};
use start_idle_image_builders::config::{Action, Job, Request, Selector, Settings};

fn samples() -> Vec<(String, serde_json::Value)> {
    testbed::samples::samples("start-idle-image-builders")
}

/// The sample schedules document (events/schedules.json), which the reconcile samples decide on.
fn schedules() -> String {
    std::fs::read_to_string(testbed::tools::workspace_root().join("events/schedules.json")).expect("the sample")
}

fn job(request: Request, dry_run: bool) -> Job {
    // The demo account's two regions: the samples name both, inside these bounds.
    let schedules = schedules();
    let settings = Settings::from_lookup(&Lookup::from_pairs(&[
        ("REGIONS", "us-east-1,eu-west-1"),
        ("APPSTREAM_AGENT_VERSION", "[LATEST]"),
        ("SCHEDULES", &schedules),
    ]))
    .unwrap();
    Job::new(
        request,
        &settings,
        settings.inline_schedules().as_ref(),
        Some("us-east-1"),
        jiff::Timestamp::now(),
        dry_run,
    )
    .expect("a valid request")
}

#[test]
fn given_the_sample_schedules_document_when_read_then_every_schedule_is_valid() {
    let document = start_idle_image_builders::config::schedules::parse(&schedules()).expect("valid");
    let names: Vec<&str> = document.schedules.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["berlin-office", "us-east-support", "month-end-batch"]);
}

#[test]
fn given_each_sample_event_when_parsed_then_its_trigger_and_a_valid_job() {
    let samples = samples();
    let names: Vec<&str> = samples.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "dry-run.json",
            "manual-start.json",
            "manual-stop.json",
            "names-with-opt-out.json",
            "reconcile-dry-run.json",
            "schedule-eventbridge-rule.json",
            "scheduler-reconcile.json",
            "scheduler-start.json",
            "scheduler-stop.json",
            "sns-message.json"
        ]
    );
    for (name, payload) in samples {
        let trigger = parse::<Request>(payload).unwrap_or_else(|e| panic!("{name}: {e}"));
        let request = match (&trigger, name.as_str()) {
            (Trigger::Schedule(s), "schedule-eventbridge-rule.json") => {
                assert!(s.request.is_none());
                Request::default()
            }
            (Trigger::Schedule(s), _) => s.request.clone().expect("Scheduler input carries the request"),
            (Trigger::Sns(records), _) => match &records[0].message {
                SnsMessage::Request(r) => r.clone(),
                other => panic!("{name}: {other:?}"),
            },
            (Trigger::Manual(m), _) => m.request.clone(),
            (other, _) => panic!("{name}: unexpected {other:?}"),
        };
        let dry_run = name.contains("dry-run");
        let job = job(request, dry_run);
        assert_eq!(trigger.asks_for_dry_run(), dry_run, "{name}");
        match name.as_str() {
            "dry-run.json" => assert!(trigger.asks_for_dry_run()),
            "manual-stop.json" | "scheduler-stop.json" => assert_eq!(job.action, Action::Stop),
            "names-with-opt-out.json" => {
                assert_eq!(
                    job.selector,
                    Selector::Names(vec!["team-web".into(), "team-legacy".into(), "team-gone".into()])
                );
                assert_eq!(trigger.event_id(), "manual:start-web-and-legacy-2026-11-23");
            }
            "scheduler-start.json" => assert!(trigger.event_id().starts_with("scheduler:")),
            "reconcile-dry-run.json" | "scheduler-reconcile.json" => {
                let reconcile = job.reconcile.expect("a reconcile");
                assert_eq!(job.action, Action::Reconcile);
                if dry_run {
                    assert_eq!(reconcile.at.to_string(), "2026-12-24T08:00:00Z", "the sample's `at`");
                }
            }
            "sns-message.json" => assert_eq!(trigger.event_id(), "95df01b4-ee98-5cb9-9903-4c221d41eb5e"),
            _ => assert_eq!(job.action, Action::Start),
        }
    }
}
