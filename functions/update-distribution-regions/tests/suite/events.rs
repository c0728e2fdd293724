//! Every sample in events/update-distribution-regions/ parses as the trigger it claims to be; requests validate (the
//! typo sample must not, and must say what it meant).

use shared::trigger::{SnsMessage, Trigger, parse};
use update_distribution_regions::config::{Change, Regions, Request};

fn samples() -> Vec<(String, serde_json::Value)> {
    testbed::samples::samples("update-distribution-regions")
}

#[test]
fn given_each_sample_event_when_parsed_then_its_trigger_and_a_valid_change() {
    let samples = samples();
    let names: Vec<&str> = samples.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "dry-run.json",
            "manual-add.json",
            "manual-remove.json",
            "manual-set.json",
            "s3-document.json",
            "schedule-drift-repair.json",
            "scheduler-drift-repair.json",
            "sns-message.json",
            "typo-region.json"
        ]
    );
    for (name, payload) in samples {
        let trigger = parse::<Request>(payload).unwrap_or_else(|e| panic!("{name}: {e}"));
        let request = match (&trigger, name.as_str()) {
            (Trigger::S3(objects), "s3-document.json") => {
                assert_eq!(
                    (objects[0].bucket.as_str(), objects[0].key.as_str()),
                    ("keeper-desired-state-123456789012-us-east-1", "distribution-regions.json")
                );
                continue;
            }
            (Trigger::Schedule(s), "schedule-drift-repair.json" | "scheduler-drift-repair.json") => {
                // An EventBridge rule carries no request; Scheduler's input is a request naming no configuration.
                let plain = s.request.as_ref().is_none_or(|r| r.distribution_configuration_arn.is_none());
                assert!(plain, "a plain schedule reconciles from DESIRED_STATE_S3_URI");
                continue;
            }
            (Trigger::Sns(records), _) => match &records[0].message {
                SnsMessage::Request(r) => r.clone(),
                other => panic!("{name}: {other:?}"),
            },
            (Trigger::Manual(m), _) => m.request.clone(),
            (other, _) => panic!("{name}: unexpected {other:?}"),
        };
        assert_eq!(trigger.asks_for_dry_run(), name == "dry-run.json", "{name}");
        let change = Change::new(request);
        match name.as_str() {
            "typo-region.json" => {
                let err = change.expect_err("a typo is refused").to_string();
                assert!(err.contains("`addRegions[0]`") && err.contains("did you mean eu-west-1?"), "{err}");
            }
            "manual-set.json" => assert!(matches!(change.unwrap().regions, Regions::Set(_))),
            _ => {
                change.unwrap_or_else(|e| panic!("{name}: {e}"));
            }
        }
    }
}

#[test]
fn given_the_demo_desired_state_document_when_read_then_it_is_a_valid_set_of_changes() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/local-account.json");
    let seed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let text = seed["s3"]["keeper-desired-state-123456789012-us-east-1"]["distribution-regions.json"]["body"]
        .as_str()
        .unwrap();
    let doc: update_distribution_regions::config::DesiredState = serde_json::from_str(text).unwrap();
    for entry in doc.distribution_configurations {
        Change::new(entry.into()).expect("valid");
    }
}
