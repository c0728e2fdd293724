//! update-image-lifecycle under generated histories: both announcements of a build, sweeps, explicit requests by
//! hand, someone else changing a build, and faults. Its promises: an image's newest AVAILABLE build is never retired
//! by the policy, and an explicit request reported applied has the state to show it.

use proptest::prelude::*;
use serde_json::{Value, json};
use shared::report::Outcome;
use update_image_lifecycle::UpdateImageLifecycle;

use super::history::{Delivered, Model, World};

const IMAGE: &str = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-golden";
/// Oldest first; the last is the newest AVAILABLE build.
const BUILDS: [(&str, i64); 5] = [("1.0.0/1", 200), ("1.0.0/2", 120), ("1.1.0/1", 60), ("1.2.0/3", 10), ("1.2.0/4", 0)];
const NEWEST: &str = "1.2.0/4";

#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// The build's AVAILABLE announcement: by the EventBridge rule, or by the pipeline's SNS topic.
    Announce { build: u8, sns: bool },
    /// The schedule's sweep.
    Sweep,
    /// By hand: deprecate, or restore to AVAILABLE, one of the older builds.
    Hand { build: u8, deprecate: bool },
}

#[derive(Debug, Clone)]
pub(crate) enum Writer {
    /// Someone deprecates one of the older builds in the console.
    Deprecates(u8),
}

fn arn(build: &str) -> String {
    format!("{IMAGE}/{build}")
}

fn older(i: u8) -> &'static str {
    BUILDS[i as usize % (BUILDS.len() - 1)].0
}

fn status(dump: &Value, build: &str) -> String {
    dump["regions"]["us-east-1"]["images"][arn(build)]["state"]["status"].as_str().unwrap_or_default().to_string()
}

/// Image Builder's `semver`: four 30-bit fields, major highest.
fn semver(build: &str) -> u128 {
    build.split(['.', '/']).filter_map(|n| n.parse::<u128>().ok()).fold(0, |acc, n| (acc << 30) | n)
}

pub(crate) struct Lifecycle;

impl Model for Lifecycle {
    type F = UpdateImageLifecycle;
    type Event = Event;
    type Writer = Writer;

    fn seed(&self) -> Value {
        let mut images = serde_json::Map::new();
        for (build, days) in BUILDS {
            let created = local::clock::iso8601(local::clock::now_ms() - days * 86_400_000);
            images.insert(arn(build), json!({"state": {"status": "AVAILABLE"}, "dateCreated": created}));
        }
        json!({"timing": {"lifecycleMillis": 20}, "regions": {"us-east-1": {"images": images}}})
    }

    fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("KEEP_AVAILABLE", "1".into()),
            ("DEPRECATE_AFTER_DAYS", "30".into()),
            ("DISABLE_AFTER_DAYS", "90".into()),
            ("MAX_CONCURRENCY", "2".into()),
        ]
    }

    /// An operator keeps two builds available, or allows one change at a time.
    fn variants(&self) -> Vec<Vec<(&'static str, String)>> {
        vec![vec![("KEEP_AVAILABLE", "2".into())], vec![("MAX_CONCURRENCY", "1".into())]]
    }

    fn events(&self) -> BoxedStrategy<Event> {
        prop_oneof![
            2 => (0u8..5, any::<bool>()).prop_map(|(build, sns)| Event::Announce { build, sns }),
            1 => Just(Event::Sweep),
            2 => (0u8..4, any::<bool>()).prop_map(|(build, deprecate)| Event::Hand { build, deprecate }),
        ]
        .boxed()
    }

    fn writers(&self) -> BoxedStrategy<Writer> {
        (0u8..4).prop_map(Writer::Deprecates).boxed()
    }

    fn operations(&self) -> &'static [(&'static str, &'static str, &'static str, &'static str)] {
        &[
            ("StartResourceStateUpdate", "CallRateLimitExceededException", "ServiceException", "AccessDeniedException"),
            ("ListImageBuildVersions", "CallRateLimitExceededException", "ServiceException", "AccessDeniedException"),
            ("ListImages", "CallRateLimitExceededException", "ServiceException", "AccessDeniedException"),
        ]
    }

    fn payload(&self, event: &Event, n: usize, _world: &World) -> Value {
        match event {
            Event::Announce { build, sns: false } => {
                let build = BUILDS[*build as usize % BUILDS.len()].0;
                json!({"version": "0", "id": format!("eventbridge-{build}"), "detail-type": "EC2 Image Builder Image State Change",
                    "source": "aws.imagebuilder", "account": "123456789012", "time": "2026-12-02T06:02:11Z", "region": "us-east-1",
                    "resources": [arn(build)], "detail": {"previous-state": {"status": "TESTING"}, "state": {"status": "AVAILABLE"}}})
            }
            Event::Announce { build, sns: true } => {
                let build = BUILDS[*build as usize % BUILDS.len()].0;
                let message = format!(
                    r#"{{"versionlessArn":"{IMAGE}","semver":{},"arn":"{}","name":"web-golden","state":{{"status":"AVAILABLE"}},"dateCreated":"Dec 2, 2026 6:02:11 AM"}}"#,
                    semver(build),
                    arn(build)
                );
                json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:t:s",
                    "Sns": {"Type": "Notification", "MessageId": format!("sns-{build}"), "TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message": message,
                            "Timestamp": "2026-12-02T06:02:12.000Z", "SignatureVersion": "1", "Signature": "x", "SigningCertUrl": "x", "UnsubscribeUrl": "x"}}]})
            }
            Event::Sweep => json!({"version": "0", "id": format!("sweep-{n}"), "detail-type": "Scheduled Event",
                "source": "aws.events", "account": "123456789012", "time": "2026-12-02T04:00:00Z", "region": "us-east-1",
                "resources": [], "detail": {}}),
            Event::Hand { build, deprecate } => json!({"resourceArn": arn(older(*build)),
                "state": if *deprecate { "DEPRECATED" } else { "AVAILABLE" }}),
        }
    }

    fn twin(&self, event: &Event) -> Event {
        match event {
            Event::Announce { build, sns } => Event::Announce { build: *build, sns: !sns },
            other => other.clone(),
        }
    }

    fn write(&self, writer: &Writer, world: &World) {
        let Writer::Deprecates(i) = writer;
        let mut w = world.running.emulator.world();
        if let Some(image) = w.region("us-east-1").imagebuilder.images.get_mut(&arn(older(*i))) {
            image["state"]["status"] = json!("DEPRECATED");
        }
    }

    fn always(&self, world: &World, log: &[Delivered]) -> Result<(), String> {
        let dump = world.dump();
        // Nobody but the policy could retire the newest build, and the policy never retires it.
        if status(&dump, NEWEST) != "AVAILABLE" {
            return Err(format!("the newest AVAILABLE build {NEWEST} is {}", status(&dump, NEWEST)));
        }
        // An explicit request reported applied has the state to show it, right after it ran (a change of the
        // record alone applies at once).
        if let Some(last) = log.last().filter(|_| world.fresh())
            && last.payload.get("resourceArn").is_some()
            && let Some(report) = last.report().filter(|r| !r.replayed)
        {
            let wanted = last.payload["state"].as_str().unwrap_or_default();
            let build =
                last.payload["resourceArn"].as_str().unwrap_or_default().trim_start_matches(&format!("{IMAGE}/"));
            for a in report.actions.iter().filter(|a| a.outcome == Outcome::Applied) {
                if status(&dump, build) != wanted {
                    return Err(format!("{build} reported {wanted} applied and is {}: {a:?}", status(&dump, build)));
                }
            }
        }
        Ok(())
    }

    fn quiescent(&self, world: &World, _log: &[Delivered]) -> Result<(), String> {
        self.always(world, &[])
    }
}
