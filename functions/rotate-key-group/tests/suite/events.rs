//! Every sample in events/rotate-key-group/ parses as the trigger it claims to be, and its request is valid.

use rotate_key_group::config::{Job, Request, Settings};
use shared::config::{FromLookup, Lookup};
use shared::trigger::{SnsMessage, Trigger, parse};

#[test]
fn given_each_sample_event_when_parsed_then_its_trigger_and_a_valid_job() {
    // With deletion on: a request may turn deletion off, never on, so a sample asking for it needs the setting.
    let config = Settings::from_lookup(&Lookup::from_pairs(&[
        ("KEY_GROUP_IDS", "5f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f"),
        ("DELETE_RETIRED_KEYS", "true"),
    ]))
    .unwrap();
    let samples = testbed::samples::samples("rotate-key-group");
    let names: Vec<&str> = samples.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "dry-run.json",
            "manual-add.json",
            "manual-retire.json",
            "s3-eventbridge.json",
            "s3-put.json",
            "schedule-sweep.json",
            "scheduler-sweep.json",
            "secretsmanager-rotation.json",
            "sns-message.json"
        ]
    );
    for (name, payload) in samples {
        let trigger = parse::<Request>(payload).unwrap_or_else(|e| panic!("{name}: {e}"));
        let asks_for_dry_run = trigger.asks_for_dry_run();
        let request = match trigger {
            Trigger::S3(objects) => {
                assert_eq!(
                    Job::upload_target(&config, &objects[0].key).unwrap(),
                    ("5f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f", "site-2026-11"),
                    "{name}"
                );
                continue;
            }
            Trigger::Schedule(s) => {
                // An EventBridge rule carries no request; Scheduler's input is a request naming no key group.
                let plain = s.request.as_ref().is_none_or(|r| r.key_group_id.is_none());
                assert!(plain, "{name}: a plain schedule sweeps KEY_GROUP_IDS");
                continue;
            }
            Trigger::Sns(records) => match &records[0].message {
                SnsMessage::Request(r) => r.clone(),
                other => panic!("{name}: {other:?}"),
            },
            Trigger::Manual(m) => m.request,
            Trigger::Rotation(r) => {
                // The demo account's managed secret and the version its pending rotation made.
                assert_eq!(r.step, shared::trigger::RotationStep::CreateSecret, "{name}");
                assert!(
                    r.secret_id.contains(":secret:keeper/signing-key/5f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f-"),
                    "{name}"
                );
                continue;
            }
            other => panic!("{name}: unexpected {other:?}"),
        };
        let job = Job::from_request(request, &config, "keeper:keeper", |_| "token".into())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(asks_for_dry_run, name == "dry-run.json", "{name}");
        assert_eq!(job.new_key.is_some(), name == "manual-add.json" || name == "dry-run.json", "{name}");
    }
}
