//! rotate-key-group under generated histories: key uploads, sweeps, console edits of the group and faults on every
//! CloudFront call. Its promises: a group is never empty and never above 5 keys, a key whose successor joined within
//! the grace period never leaves it, and an applied `add-key` line means the key is in the group.

use std::collections::BTreeSet;
use std::sync::Mutex;

use proptest::prelude::*;
use rotate_key_group::RotateKeyGroup;
use serde_json::{Value, json};
use shared::report::Outcome;

use crate::history::{Delivered, Model, World};

const GROUP: &str = "5f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f";
const BUCKET: &str = "keeper-keys-123456789012-us-east-1";
/// Replaced as signer 300 hours ago: the only key a rotation may retire by age.
const OLD: &str = "K1OLD";

/// Distinct P-256 public keys (the fixture's point with its last bytes changed: keeper and the emulator check the
/// structure, as CloudFront does, not the curve).
const KEYS: [&str; 4] = [
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEceyYEI5K7b7qbY4ENNWCfq1/b4SK\njZnmGufsyv4RcP6UxpRfOlCwCowS9G4Fb0nFRm5/KTWIosVV1HdcSk4f1g==\n-----END PUBLIC KEY-----\n",
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEceyYEI5K7b7qbY4ENNWCfq1/b4SK\njZnmGufsyv4RcP6UxpRfOlCwCowS9G4Fb0nFRm5/KTWIosVV1HdcSk4v1Q==\n-----END PUBLIC KEY-----\n",
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEceyYEI5K7b7qbY4ENNWCfq1/b4SK\njZnmGufsyv4RcP6UxpRfOlCwCowS9G4Fb0nFRm5/KTWIosVV1HdcSk4/1A==\n-----END PUBLIC KEY-----\n",
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEceyYEI5K7b7qbY4ENNWCfq1/b4SK\njZnmGufsyv4RcP6UxpRfOlCwCowS9G4Fb0nFRm5/KTWIosVV1HdcSk5P0w==\n-----END PUBLIC KEY-----\n",
];

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../shared/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR")))
        .expect("a fixture key")
}

fn hours_ago(hours: i64) -> String {
    local::clock::iso8601(local::clock::now_ms() - hours * 3_600_000)
}

#[derive(Debug, Clone)]
pub enum Event {
    /// A PEM uploaded under the group's prefix (a new object version of `keys/<group>/site-<key>.pem`).
    Upload { key: u8 },
    /// The daily sweep.
    Sweep,
}

#[derive(Debug, Clone)]
pub enum Writer {
    /// Someone edits the group's comment in the console: the ETag changes under a rotation.
    ConsoleComment(u8),
    /// Another keeper stack keeps a retired key of its own, in no group, on purpose (two days old).
    AnotherStacksKey,
}

/// The other stack's key: this deployment never touches it.
const FOREIGN: &str = "KOTHERSTACK01";

/// Every key seen in the group during the history, besides the one allowed to leave (reset with each history).
#[derive(Default)]
pub struct Rotate {
    seen: Mutex<BTreeSet<String>>,
}

fn items(world: &World) -> Vec<String> {
    world.running.emulator.world().cloudfront.key_groups.get(GROUP).map(|g| g.items.clone()).unwrap_or_default()
}

impl Model for Rotate {
    type F = RotateKeyGroup;
    type Event = Event;
    type Writer = Writer;

    fn seed(&self) -> Value {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clear();
        json!({"cloudfront": {
            "publicKeys": {
                OLD: {"callerReference": "old", "name": "site-old", "encodedKey": fixture("rsa-2048.pem"), "createdTime": hours_ago(500)},
                "K2MID": {"callerReference": "mid", "name": "site-mid", "encodedKey": fixture("ec-p256.pem"), "createdTime": hours_ago(300)}
            },
            "keyGroups": {GROUP: {"name": "site-signed-urls", "items": [OLD, "K2MID"], "comment": "signed URLs for /private/*"}}
        }, "s3": {BUCKET: {}}})
    }

    fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("KEY_GROUP_IDS", GROUP.into()),
            ("MAX_KEYS", "2".into()),
            ("GRACE_HOURS", "24".into()),
            ("DELETE_RETIRED_KEYS", "true".into()),
        ]
    }

    fn events(&self) -> BoxedStrategy<Event> {
        prop_oneof![3 => (0u8..4).prop_map(|key| Event::Upload { key }), 1 => Just(Event::Sweep)].boxed()
    }

    fn writers(&self) -> BoxedStrategy<Writer> {
        prop_oneof![3 => any::<u8>().prop_map(Writer::ConsoleComment), 1 => Just(Writer::AnotherStacksKey)].boxed()
    }

    fn operations(&self) -> &'static [(&'static str, &'static str, &'static str, &'static str)] {
        &[
            ("UpdateKeyGroup", "Throttling", "ServiceUnavailable", "AccessDenied"),
            ("CreatePublicKey", "Throttling", "ServiceUnavailable", "AccessDenied"),
            ("GetKeyGroup", "Throttling", "ServiceUnavailable", "AccessDenied"),
            ("DeletePublicKey", "Throttling", "ServiceUnavailable", "AccessDenied"),
        ]
    }

    fn payload(&self, event: &Event, n: usize, world: &World) -> Value {
        match event {
            Event::Upload { key } => {
                let object = format!("keys/{GROUP}/site-{key}.pem");
                let pem = KEYS[*key as usize % KEYS.len()];
                let version = world.running.emulator.objects().put(BUCKET, &object, pem.to_string().into(), None).1;
                json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                    "eventTime": "2026-12-02T10:20:00.000Z", "eventName": "ObjectCreated:Put", "userIdentity": {"principalId": "x"},
                    "requestParameters": {"sourceIPAddress": "x"}, "responseElements": {},
                    "s3": {"s3SchemaVersion": "1.0", "configurationId": "c",
                        "bucket": {"name": BUCKET, "ownerIdentity": {"principalId": "x"}, "arn": format!("arn:aws:s3:::{BUCKET}")},
                        "object": {"key": object, "size": 178, "versionId": version, "eTag": "e", "sequencer": format!("{n:04}")}}}]})
            }
            Event::Sweep => json!({"version": "0", "id": format!("sweep-{n}"), "detail-type": "Scheduled Event",
                "source": "aws.events", "account": "123456789012", "time": "2026-12-02T05:00:00Z", "region": "us-east-1",
                "resources": [], "detail": {}}),
        }
    }

    fn write(&self, writer: &Writer, world: &World) {
        let mut w = world.running.emulator.world();
        match writer {
            Writer::ConsoleComment(n) => {
                if let Some(group) = w.cloudfront.key_groups.get_mut(GROUP) {
                    group.comment = Some(format!("edited in the console ({n})"));
                    group.etag = format!("ECONSOLE{n:03}");
                }
            }
            Writer::AnotherStacksKey => {
                if !w.cloudfront.public_keys.contains_key(FOREIGN) {
                    let key = serde_json::from_value(json!({"callerReference": "other-stack", "name": "other-retired",
                        "encodedKey": fixture("rsa-2048-second.pem"), "comment": "keeper:other-stack from s3://other/keys/k.pem",
                        "createdTime": hours_ago(48), "etag": "EOTHERSTACK01"}))
                    .expect("a public key");
                    w.cloudfront.public_keys.insert(FOREIGN.into(), key);
                }
            }
        }
    }

    fn always(&self, world: &World, log: &[Delivered]) -> Result<(), String> {
        let now = items(world);
        if now.is_empty() || now.len() > 5 {
            return Err(format!("the group holds {now:?}"));
        }
        // Another stack's key is never this deployment's to delete.
        let deleted_foreign = world
            .calls()
            .iter()
            .any(|c| c.operation == "DeletePublicKey" && c.ok() && c.params.values().any(|v| v == FOREIGN));
        if deleted_foreign {
            return Err(format!("{FOREIGN}, another stack's key, was deleted"));
        }
        // Every key but the old one joined, or had its successor join, within the grace period: it stays.
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.extend(now.iter().filter(|k| *k != OLD).cloned());
        if let Some(gone) = seen.iter().find(|k| !now.contains(k)) {
            return Err(format!("{gone} left the group inside its grace period: {now:?}"));
        }
        // An applied add-key line of the delivery that just ran means the key is in the group.
        if let Some(last) = log.last().filter(|_| world.fresh())
            && let Some(report) = last.report().filter(|r| !r.replayed)
        {
            for a in report.actions.iter().filter(|a| a.outcome == Outcome::Applied && a.action == "add-key") {
                let key = a.target.rsplit('/').next().unwrap_or_default();
                if !now.iter().any(|k| k == key) {
                    return Err(format!("{key} reported added and the group holds {now:?}"));
                }
            }
        }
        Ok(())
    }

    fn settle(&self) -> Option<Event> {
        Some(Event::Sweep)
    }

    fn quiescent(&self, world: &World, log: &[Delivered]) -> Result<(), String> {
        self.always(world, log)?;
        // What an event retired is finished by that event: with deletion on, a key retired from the group and
        // listed by no group is gone once every delivery was handled (a lost answer or a failed delete included).
        // Only keeper takes the old key out of its group here; a deletion refused for good is a visible failed line.
        let refused = world.calls().iter().any(|c| c.operation == "DeletePublicKey" && c.outcome == "AccessDenied");
        let w = world.running.emulator.world();
        let listed = w.cloudfront.key_groups.values().any(|g| g.items.iter().any(|k| k == OLD));
        if !refused && !listed && w.cloudfront.public_keys.contains_key(OLD) {
            return Err(format!(
                "{OLD} was retired and no group lists it, and it was never deleted (DELETE_RETIRED_KEYS)"
            ));
        }
        Ok(())
    }
}
