//! Every sample in events/update-image-lifecycle/ parses as the trigger it claims to be; explicit requests validate
//! (the invalid one must not, and must name the rule).

use shared::trigger::{SnsMessage, Trigger, parse};
use update_image_lifecycle::config::{Explicit, Notification, Request};

const NOW: f64 = 1_795_000_000.0;

#[test]
fn given_each_sample_event_when_parsed_then_its_trigger_and_a_valid_request_or_notification() {
    let samples = testbed::samples::samples("update-image-lifecycle");
    let names: Vec<&str> = samples.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "dry-run.json",
            "eventbridge-state-change.json",
            "explicit-delete.json",
            "explicit-deprecate.json",
            "invalid-combination.json",
            "restore.json",
            "schedule-sweep.json",
            "scheduler-sweep.json",
            "sns-available.json",
            "sns-failed.json"
        ]
    );
    for (name, payload) in samples {
        let trigger = parse::<Request>(payload).unwrap_or_else(|e| panic!("{name}: {e}"));
        match (&trigger, name.as_str()) {
            (Trigger::Sns(records), "sns-available.json" | "sns-failed.json") => {
                let SnsMessage::Notification(doc) = &records[0].message else { panic!("{name}: a notification") };
                let n = Notification::from_document(doc).expect("readable");
                assert_eq!(n.image_name(), "web-golden");
                assert_eq!(n.status, if name == "sns-available.json" { "AVAILABLE" } else { "FAILED" });
            }
            (Trigger::Event(e), "eventbridge-state-change.json") => {
                assert_eq!(
                    Notification::from_document(&e.document).unwrap().arn,
                    "arn:aws:imagebuilder:us-east-1:123456789012:image/web-golden/1.2.0/3"
                );
            }
            (Trigger::Schedule(s), "schedule-sweep.json") => assert!(s.request.is_none()),
            // Scheduler's input: a sweep under its own event id per firing.
            (Trigger::Schedule(s), "scheduler-sweep.json") => assert!(s.event_id.starts_with("scheduler:")),
            (Trigger::Manual(m), "dry-run.json") => assert_eq!(m.request.dry_run, Some(true)),
            (Trigger::Manual(m), "invalid-combination.json") => {
                let err = Explicit::new(m.request.clone(), NOW).unwrap_err().to_string();
                assert!(
                    err.contains("`includeResources` snapshots and containers are only valid with state DELETED"),
                    "{err}"
                );
            }
            (Trigger::Manual(m), _) => {
                Explicit::new(m.request.clone(), NOW).unwrap_or_else(|e| panic!("{name}: {e}"));
            }
            (other, _) => panic!("{name}: unexpected {other:?}"),
        }
    }
}

/// Image Builder's `semver`: four 30-bit fields, major highest (AWS's own sample message, 1.0.0/3, encodes so).
fn semver(version: &str, build: u64) -> u128 {
    version
        .split('.')
        .map(|n| n.parse::<u128>().expect("a number"))
        .chain([u128::from(build)])
        .fold(0, |acc, n| (acc << 30) | n)
}

#[test]
fn given_the_image_builder_notification_samples_when_read_then_each_names_one_build_consistently() {
    for name in ["sns-available.json", "sns-failed.json"] {
        let payload = testbed::samples::sample("update-image-lifecycle", name);
        let message = payload["Records"][0]["Sns"]["Message"].as_str().expect("an SNS message").to_string();
        let doc: serde_json::Value = serde_json::from_str(&message).expect("JSON");
        // GIVEN the build ARN .../image/<name>/<version>/<build>
        let arn = doc["arn"].as_str().expect("arn");
        let parts: Vec<&str> = arn.rsplitn(3, '/').collect();
        let (build, version, versionless) = (parts[0], parts[1], parts[2]);
        // THEN every other field names the same build
        assert_eq!(doc["versionlessArn"], versionless, "{name}");
        assert_eq!(doc["version"], version, "{name}");
        assert_eq!(doc["buildVersion"].to_string(), build, "{name}");
        assert_eq!(Some(doc["name"].as_str().expect("name")), versionless.rsplit('/').next(), "{name}");
        // semver is larger than any JSON number serde_json keeps exact: read it from the text
        let digits: String =
            message.split("\"semver\":").nth(1).expect("semver").chars().take_while(char::is_ascii_digit).collect();
        assert_eq!(digits, semver(version, build.parse().expect("a build number")).to_string(), "{name}");
        // AND a failed build distributed no AMI
        if doc["state"]["status"] == "FAILED" {
            assert!(doc["outputResources"].get("amis").is_none(), "{name}");
        }
    }
}
