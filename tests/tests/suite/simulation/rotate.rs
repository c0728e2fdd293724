//! rotate-key-group under generated histories: key uploads, sweeps, console edits of the group and faults on every
//! CloudFront call, the clock moving hours to days. Its promises: a group is never empty and never above 5 keys, a key
//! whose successor joined within the grace period never leaves it, and an applied `add-key` line means the key is in
//! the group.

use std::collections::BTreeMap;
use std::sync::Mutex;

use proptest::prelude::*;
use rotate_key_group::RotateKeyGroup;
use serde_json::{Value, json};
use shared::report::Outcome;

use super::history::{Delivered, Model, World, lock};

const GROUP: &str = "5f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f";
const BUCKET: &str = "keeper-keys-123456789012-us-east-1";
/// Replaced as signer 300 hours ago: the only key a rotation may retire by age.
const OLD: &str = "K1OLD";

/// How many distinct keys an upload picks from.
const KEYS: u8 = 4;

/// The `n`-th distinct P-256 public key of the simulation: the point of the scalar `n + 1`, valid as CloudFront
/// checks it (the emulator refuses a point off the curve, as CloudFront does).
fn key_pem(n: u8) -> String {
    use p256::pkcs8::EncodePublicKey;
    let mut scalar = [0u8; 32];
    scalar[31] = n % KEYS + 1;
    let secret = p256::SecretKey::from_slice(&scalar).expect("a scalar below the order");
    secret.public_key().to_public_key_pem(p256::pkcs8::LineEnding::LF).expect("a PEM")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../shared/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR")))
        .expect("a fixture key")
}

fn hours_ago(hours: i64) -> String {
    local::clock::iso8601(local::clock::now_ms() - hours * 3_600_000)
}

#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// A PEM uploaded under the group's prefix (a new object version of `keys/<group>/site-<key>.pem`).
    Upload { key: u8 },
    /// The daily sweep.
    Sweep,
}

#[derive(Debug, Clone)]
pub(crate) enum Writer {
    /// Someone edits the group's comment in the console: the ETag changes under a rotation.
    ConsoleComment(u8),
    /// Another keeper stack keeps a retired key of its own, in no group, on purpose (two days old).
    AnotherStacksKey,
}

/// The other stack's key: this deployment never touches it.
const FOREIGN: &str = "KOTHERSTACK01";

/// `GRACE_HOURS` in force, in milliseconds.
fn grace_ms(world: &World) -> i64 {
    let hours: i64 = world.setting("GRACE_HOURS").and_then(|h| h.parse().ok()).unwrap_or(24);
    hours * 3_600_000
}

/// When each key in the group joined it, as the history saw it: (order of joining, epoch ms moved back as the clock
/// moves on). Reset with each history.
#[derive(Default)]
pub(crate) struct Rotate {
    joined: Mutex<BTreeMap<String, (usize, i64)>>,
    /// Keys that left the group during the history.
    left: Mutex<BTreeMap<String, Left>>,
    /// Keys that joined the group during the history, with the step during which they joined.
    arrived: Mutex<BTreeMap<String, usize>>,
    /// Object versions a newer upload replaced, with where in the call log that happened.
    replaced: Mutex<BTreeMap<String, usize>>,
}

/// How a key left the group.
#[derive(Debug, Clone)]
struct Left {
    /// The step of the history during which it left.
    step: usize,
    /// `DELETE_RETIRED_KEYS` was off when it left or at some step since: keeper keeps it, and counts it.
    deletion_off: bool,
    /// `DELETE_RETIRED_KEYS` was off when it left: retired to be kept, it is never deleted.
    kept: bool,
}

/// Keys seeded in the group; any other key joined it during the history.
const SEEDED: usize = 2;

/// Notes the keys of the group not seen before as joining at `at`, in the group's order (keeper appends a key it
/// adds, so two keys that joined within one step keep their order).
fn note_joins(joined: &mut BTreeMap<String, (usize, i64)>, items: &[String], at: i64) {
    for key in items {
        let next = joined.values().map(|(order, _)| order + 1).max().unwrap_or(0);
        joined.entry(key.clone()).or_insert((next, at));
    }
}

fn items(world: &World) -> Vec<String> {
    world.running.emulator.world().cloudfront.key_groups.get(GROUP).map(|g| g.items.clone()).unwrap_or_default()
}

impl Model for Rotate {
    type F = RotateKeyGroup;
    type Event = Event;
    type Writer = Writer;

    fn seed(&self) -> Value {
        *lock(&self.joined) = BTreeMap::from([
            (OLD.to_string(), (0, local::clock::now_ms() - 500 * 3_600_000)),
            ("K2MID".to_string(), (1, local::clock::now_ms() - 300 * 3_600_000)),
        ]);
        lock(&self.left).clear();
        lock(&self.arrived).clear();
        lock(&self.replaced).clear();
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

    /// An operator turns deletion off, shortens the grace period, or allows a third key.
    fn variants(&self) -> Vec<Vec<(&'static str, String)>> {
        vec![
            vec![("DELETE_RETIRED_KEYS", "false".into())],
            vec![("GRACE_HOURS", "2".into())],
            vec![("MAX_KEYS", "3".into())],
        ]
    }

    fn events(&self) -> BoxedStrategy<Event> {
        prop_oneof![3 => (0u8..KEYS).prop_map(|key| Event::Upload { key }), 1 => Just(Event::Sweep)].boxed()
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
            // Only the sweep lists the account's keys: a fault or a crash here comes after the rotation's calls.
            ("ListPublicKeys", "Throttling", "ServiceUnavailable", "AccessDenied"),
        ]
    }

    fn payload(&self, event: &Event, n: usize, world: &World) -> Value {
        match event {
            Event::Upload { key } => {
                let object = format!("keys/{GROUP}/site-{key}.pem");
                if let Some(previous) = world.running.emulator.objects().version(BUCKET, &object) {
                    lock(&self.replaced).insert(previous, world.calls().len());
                }
                let version = world.running.emulator.objects().put(BUCKET, &object, key_pem(*key).into(), None).1;
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
        let deletion_off = world.setting("DELETE_RETIRED_KEYS").as_deref() != Some("true");
        if deletion_off {
            lock(&self.left).values_mut().for_each(|left| left.deletion_off = true);
        }
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
        // A key retired while deletion was off is kept, even once deletion is on again.
        let left = lock(&self.left).clone();
        let deleted_kept = world.calls().iter().find_map(|c| {
            let id = c.params.get("Id").filter(|_| c.operation == "DeletePublicKey" && c.ok())?;
            left.get(id).filter(|l| l.kept).map(|l| (id.clone(), l.step))
        });
        if let Some((key, step)) = deleted_kept {
            return Err(format!("{key}, retired with deletion off (step {step}), was deleted"));
        }
        // A key signed until the next key joined; it may leave only once that successor joined a grace period ago.
        let at = local::clock::now_ms();
        let mut joined = lock(&self.joined);
        note_joins(&mut joined, &now, at);
        let step = log.last().map_or(0, |d| d.step);
        let mut arrived = lock(&self.arrived);
        for (key, _) in joined.iter().filter(|(_, (order, _))| *order >= SEEDED) {
            arrived.entry(key.clone()).or_insert(step);
        }
        drop(arrived);
        let gone: Vec<(String, usize)> =
            joined.iter().filter(|(k, _)| !now.contains(k)).map(|(k, (order, _))| (k.clone(), *order)).collect();
        for (key, order) in gone {
            // The key that joined next: its joining ended this one's signing.
            let successor = joined.values().filter(|(o, _)| *o > order).min().map(|(_, t)| *t);
            if successor.is_none_or(|t| at - t < grace_ms(world)) {
                return Err(format!(
                    "{key} left the group inside its grace period (its successor joined {} h ago): {now:?}",
                    successor.map(|t| (at - t) / 3_600_000).unwrap_or(0)
                ));
            }
            joined.remove(&key);
            lock(&self.left).insert(key, Left { step, deletion_off, kept: deletion_off });
        }
        drop(joined);
        // An upload that a newer upload of the same object replaced before its event was delivered adds no key (an
        // older key joining after the newer one would be the newest, and push out the key the signer now uses).
        if let Some(last) = log.last().filter(|_| world.fresh())
            && let Some(report) = last.report().filter(|r| !r.replayed)
            && let Some(version) = last.payload.pointer("/Records/0/s3/object/versionId").and_then(Value::as_str)
        {
            let replaced = lock(&self.replaced).get(version).copied();
            if replaced.is_some_and(|at| at <= last.calls.start) {
                let added = report.actions.iter().find(|a| {
                    a.action == "add-key"
                        && a.outcome == Outcome::Applied
                        && !a.detail.starts_with("applied by this event's")
                });
                if let Some(added) = added {
                    return Err(format!("an upload a newer one replaced added a key: {added:?}"));
                }
            }
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

    fn time_passes(&self, world: &World, ms: i64) {
        // Keys that joined in this step (a Lambda retry delivered before the hours passed) joined before the move.
        let at = local::clock::now_ms();
        note_joins(&mut lock(&self.joined), &items(world), at);
        for key in world.running.emulator.world().cloudfront.public_keys.values_mut() {
            if let Some(created) = local::clock::parse_iso8601(&key.created_time) {
                key.created_time = local::clock::iso8601(created - ms);
            }
        }
        lock(&self.joined).values_mut().for_each(|(_, t)| *t -= ms);
    }

    /// A join mark holds when keeper added a key (epoch milliseconds).
    fn backdate_mark(&self, name: &str, value: &str, ms: i64) -> String {
        match (name.contains("joined#"), value.parse::<i64>()) {
            (true, Ok(millis)) => (millis - ms).to_string(),
            _ => value.to_string(),
        }
    }

    fn quiescent(&self, world: &World, log: &[Delivered]) -> Result<(), String> {
        self.always(world, log)?;
        // Every change keeper made is counted once: every key it added by the `added` metric, every key it took out
        // of the group by `retired`, every key it deleted by `deleted` (of the run that did it, or of the retry that
        // found it done), unless the event of the delivery that made it ended failed (in the dead-letter queue, or
        // a failed line counted in `failed`), which is then what says it. A retry that cannot tell its earlier
        // run's change from another writer's says so, naming this event's earlier run. A deletion the bootstrap
        // was killed at, in a sweep, is left to Lambda's own Errors metric: no record says whose it was.
        // (A dry run settles nothing: the event's last real run is what says how it ended.)
        let mut last_answer: BTreeMap<String, bool> = BTreeMap::new();
        for d in log.iter().filter(|d| !d.dry_run) {
            let clean = d.report().is_some_and(|r| r.count(Outcome::Failed) == 0);
            last_answer.insert(d.payload.to_string(), clean);
        }
        let failed_event = |d: &Delivered| last_answer.get(&d.payload.to_string()) == Some(&false);
        let failed_in_step = |step: usize| log.iter().any(|d| d.step == step && failed_event(d));
        let calls = world.calls();
        // The deliveries whose call windows hold call `i`.
        let made = |i: usize| log.iter().filter(move |d| d.calls.contains(&i));
        let left = lock(&self.left).clone();
        let arrived = lock(&self.arrived).clone();
        let mut deleted: BTreeMap<String, bool> = BTreeMap::new();
        for (i, c) in calls.iter().enumerate().filter(|(_, c)| c.operation == "DeletePublicKey" && c.ok()) {
            let Some(id) = c.params.get("Id") else { continue };
            let killed_there = made(i).any(|d| {
                d.crashed == Some("DeletePublicKey")
                    && calls[d.calls.clone()].iter().rposition(|c| c.operation == "DeletePublicKey")
                        == Some(i - d.calls.start)
            });
            let excused = killed_there || made(i).any(failed_event);
            *deleted.entry(id.clone()).or_insert(true) &= excused;
        }
        let lines = |verb: &str, key: &str, earlier: &str| {
            log.iter().filter_map(Delivered::run_report).flat_map(|r| &r.actions).any(|a| {
                a.action == verb
                    && a.outcome == Outcome::Skipped
                    && (a.target == key || a.target.ends_with(&format!("/{key}")))
                    && a.detail.contains(earlier)
            })
        };
        let reconcile: [(&str, &str, &str, BTreeMap<&String, bool>); 3] = [
            (
                "added",
                "add-key",
                "this event's earlier update",
                arrived.iter().map(|(k, s)| (k, failed_in_step(*s))).collect(),
            ),
            (
                "retired",
                "retire-key",
                "this event's earlier update",
                left.iter().map(|(k, l)| (k, failed_in_step(l.step))).collect(),
            ),
            ("deleted", "delete-key", "already deleted", deleted.iter().map(|(k, e)| (k, *e)).collect()),
        ];
        for (metric, verb, earlier, keys) in &reconcile {
            let counted: u64 = log.iter().map(|d| d.metrics.get(metric)).sum();
            // Every deletion is in the call log; a key added and retired within one step is not in `arrived` or
            // `left`, so only deletions are bounded from above.
            if *metric == "deleted" && counted > keys.len() as u64 {
                return Err(format!("{keys:?} were {metric} and {counted} counted: some twice"));
            }
            let owed: Vec<&&String> = keys.iter().filter(|(_, excused)| !**excused).map(|(k, _)| k).collect();
            let maybe = owed.iter().filter(|key| lines(verb, key, earlier)).count() as u64;
            if counted + maybe < owed.len() as u64 {
                return Err(format!("{owed:?} were {metric} and {counted} counted ({maybe} maybe by an earlier run)"));
            }
        }
        // Every key keeper retired and no group lists is deleted (with deletion on since it left), or else counted
        // by the settling sweep as an orphan, whoever made it.
        let refused = calls.iter().any(|c| c.operation == "DeletePublicKey" && c.outcome == "AccessDenied");
        let w = world.running.emulator.world();
        let kept: Vec<(&String, &Left)> = left
            .iter()
            .filter(|(key, _)| {
                let listed = w.cloudfront.key_groups.values().any(|g| g.items.contains(key));
                !listed && w.cloudfront.public_keys.contains_key(*key)
            })
            .collect();
        // Unless keeper cannot be sure it retired it: its update took effect and the answer never came (lost, or
        // the bootstrap killed there), in the step the key left, and no re-read recognised it. Then the sweep
        // names it as an orphan it keeps, and why.
        let unanswered = |step: usize| {
            log.iter().filter(|d| d.step == step).any(|d| {
                let updates: Vec<_> =
                    calls[d.calls.clone()].iter().filter(|c| c.operation == "UpdateKeyGroup" && c.ok()).collect();
                let killed_at_last = d.crashed == Some("UpdateKeyGroup") && !updates.is_empty();
                killed_at_last || updates.iter().any(|c| c.injected)
            })
        };
        let settle = log.last().and_then(Delivered::report);
        let unconfirmed = |key: &str| {
            settle.is_some_and(|r| {
                r.actions
                    .iter()
                    .any(|a| a.action == "orphan-key" && a.target == key && a.detail.contains("never confirmed"))
            })
        };
        let excused = |key: &str, l: &Left| l.deletion_off || (unanswered(l.step) && unconfirmed(key));
        let not_deleted = kept.iter().find(|(key, l)| !excused(key, l));
        if let Some((key, l)) = not_deleted.filter(|_| !refused) {
            return Err(format!(
                "{key} was retired (step {}) and no group lists it, and it was never deleted (DELETE_RETIRED_KEYS)",
                l.step
            ));
        }
        let orphans = log.last().map(|settle| settle.metrics.get("orphans")).unwrap_or(0);
        if orphans < kept.len() as u64 {
            let kept: Vec<&String> = kept.iter().map(|(key, _)| *key).collect();
            return Err(format!(
                "{kept:?} were retired and no group lists them, and the sweep counted {orphans} orphans"
            ));
        }
        Ok(())
    }
}
