//! The new key list of a key group. Pure: ids, the times keys joined and the clock in, the list and the reasons out.
//! Also what one event changed in a group ([`Intent`]), so that its retry recognises its own change.
//!
//! Generic over the key id, so that a rotation can be planned before its new key exists: the caller plans with
//! [`Member`] (existing ids and the key to create) to refuse a rotation that cannot happen before creating anything,
//! and with plain ids once the key is created.

use std::fmt;

use serde::{Deserialize, Serialize};
use shared::classify::{Classify, ErrorType};
use shared::error::InvalidInput;

/// A key of the group and when it joined the group (epoch seconds): when keeper added it (recorded just before the
/// update that added it), else its creation time (a key added outside keeper: CloudFront does not say when a key
/// was added to a group, and a key joins at its creation at the earliest).
#[derive(Debug, Clone, PartialEq)]
pub struct Key<K> {
    pub id: K,
    pub joined: f64,
}

/// A key of a plan made before the new key exists: one that has an id, or the one this run will create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    Existing(String),
    /// The key the run creates, by the name it will have.
    ToCreate(String),
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Member::Existing(id) => f.write_str(id),
            Member::ToCreate(name) => write!(f, "{name} (to be created)"),
        }
    }
}

use crate::config::Job;
pub use crate::config::MAX_KEYS_PER_GROUP;

#[derive(Debug, Clone, PartialEq)]
pub struct Rotation<K> {
    pub add: Vec<K>,
    pub retire: Vec<K>,
    pub max_keys: usize,
    pub grace_seconds: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan<K> {
    pub items: Vec<K>,
    pub added: Vec<K>,
    /// `(id, why)`.
    pub retired: Vec<(K, String)>,
    /// Requested changes that were already true.
    pub already: Vec<(K, String)>,
}

impl<K> Plan<K> {
    pub fn changes(&self) -> bool {
        !self.added.is_empty() || !self.retired.is_empty()
    }
}

/// What one event changed in one key group, recorded before each update that makes the change (see `marks.rs`), so
/// that the event's retry, or a round after a lost answer, recognises its own change and finishes it: it reports what
/// no run reported yet and deletes what the event retired.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Intent {
    /// The items of the last update sent: a group read with exactly these holds that update, answered or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<Vec<String>>,
    /// Every key the event added or retired, in the order planned.
    #[serde(default)]
    pub changes: Vec<Change>,
}

/// One key an event added or retired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    pub verb: Kind,
    pub id: String,
    /// Why it was retired (empty for an addition).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub why: String,
    /// A run has reported it applied, so no other run reports (and counts) it again.
    #[serde(default)]
    pub reported: bool,
    /// The update that made it was answered: it is this event's for certain, even when the group changed since.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub applied: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Add,
    Retire,
}

impl Kind {
    /// The verb of its report line.
    pub fn action(self) -> Verb {
        match self {
            Kind::Add => Verb::AddKey,
            Kind::Retire => Verb::RetireKey,
        }
    }
}

/// The verbs of rotate-key-group's report lines, and the counters their applied lines add to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    CreateKey,
    AddKey,
    RetireKey,
    DeleteKey,
    /// A key this deployment made or retired that no group lists, reported (and counted) rather than deleted.
    OrphanKey,
    /// The sweep's census: how many public keys, how many orphans.
    CountKeys,
    FindOrphans,
    Rotate,
    Update,
    ReadKey,
    /// A managed rotation's new key pair, stored as the secret's pending version (createSecret).
    StoreKey,
    /// A managed rotation's pending key proved: a URL signed and verified, the key in its group (testSecret).
    TestKey,
    /// A managed rotation's pending version made AWSCURRENT (finishSecret).
    MakeCurrent,
    /// A rotation step with nothing left to do.
    Step,
}

impl shared::report::Verb for Verb {
    const ALL: &'static [Verb] = &[
        Verb::CreateKey,
        Verb::AddKey,
        Verb::RetireKey,
        Verb::DeleteKey,
        Verb::OrphanKey,
        Verb::CountKeys,
        Verb::FindOrphans,
        Verb::Rotate,
        Verb::Update,
        Verb::ReadKey,
        Verb::StoreKey,
        Verb::TestKey,
        Verb::MakeCurrent,
        Verb::Step,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Verb::CreateKey => "create-key",
            Verb::AddKey => "add-key",
            Verb::RetireKey => "retire-key",
            Verb::DeleteKey => "delete-key",
            Verb::OrphanKey => "orphan-key",
            Verb::CountKeys => "count-keys",
            Verb::FindOrphans => "find-orphans",
            Verb::Rotate => "rotate",
            Verb::Update => "update",
            Verb::ReadKey => "read-key",
            Verb::StoreKey => "store-key",
            Verb::TestKey => "test-key",
            Verb::MakeCurrent => "make-current",
            Verb::Step => "rotation-step",
        }
    }

    fn metric(self) -> Option<&'static str> {
        match self {
            Verb::CreateKey => Some("created"),
            Verb::AddKey => Some("added"),
            Verb::RetireKey => Some("retired"),
            Verb::DeleteKey => Some("deleted"),
            Verb::MakeCurrent => Some("rotatedSecrets"),
            _ => None,
        }
    }
}

impl Change {
    /// Whether `items` (the group as read) shows it done: an added key in the group, a retired one out of it.
    pub fn done_in(&self, items: &[String]) -> bool {
        match self.verb {
            Kind::Add => items.contains(&self.id),
            Kind::Retire => !items.contains(&self.id),
        }
    }
}

impl Intent {
    /// Records a plan about to be sent: its changes (each once, a new one not yet reported) and its items.
    pub fn record(&mut self, plan: &Plan<String>) {
        let added = plan.added.iter().map(|id| (Kind::Add, id, ""));
        let retired = plan.retired.iter().map(|(id, why)| (Kind::Retire, id, why.as_str()));
        for (verb, id, why) in added.chain(retired) {
            match self.changes.iter_mut().find(|c| c.id == *id && c.verb == verb) {
                // Planned again (an earlier round was refused, or the key came back): it is not done yet.
                Some(c) => {
                    c.reported = false;
                    c.applied = false;
                }
                None => self.changes.push(Change {
                    verb,
                    id: id.clone(),
                    why: why.to_string(),
                    reported: false,
                    applied: false,
                }),
            }
        }
        self.sent = Some(plan.items.clone());
    }

    /// Marks the changes of `plan`, whose update was answered, applied.
    pub fn answered(&mut self, plan: &Plan<String>) {
        let added = plan.added.iter().map(|id| (Kind::Add, id));
        let retired = plan.retired.iter().map(|(id, _)| (Kind::Retire, id));
        for (verb, id) in added.chain(retired) {
            if let Some(c) = self.changes.iter_mut().find(|c| c.id == *id && c.verb == verb) {
                c.applied = true;
            }
        }
    }

    /// Marks `id`'s change `verb` reported; whether it was not before.
    pub fn report(&mut self, verb: Kind, id: &str) -> bool {
        match self.changes.iter_mut().find(|c| c.id == id && c.verb == verb) {
            Some(c) if !c.reported => {
                c.reported = true;
                true
            }
            _ => false,
        }
    }

    /// On a read of the group (`items`): when it is exactly what the last update sent left, that update applied,
    /// whether or not its answer came; its changes no run reported yet are returned, now marked reported.
    pub fn recognise(&mut self, items: &[String]) -> Vec<Change> {
        if self.sent.as_deref() != Some(items) {
            return Vec::new();
        }
        let mut found = Vec::new();
        for change in self.changes.iter_mut().filter(|c| !c.reported && c.done_in(items)) {
            change.reported = true;
            found.push(change.clone());
        }
        found
    }

    /// The changes no run reported yet that `items` shows done, now marked reported: done, but not recognisably by
    /// this event (another writer made the same change after a refused update of this event's).
    pub fn done_otherwise(&mut self, items: &[String]) -> Vec<Change> {
        let mut found = Vec::new();
        for change in self.changes.iter_mut().filter(|c| !c.reported && c.done_in(items)) {
            change.reported = true;
            found.push(change.clone());
        }
        found
    }

    /// Every key the event retired that `items` no longer lists: what its retries still delete when unused.
    pub fn retired_gone(&self, items: &[String]) -> Vec<String> {
        self.changes.iter().filter(|c| c.verb == Kind::Retire && c.done_in(items)).map(|c| c.id.clone()).collect()
    }
}

/// Why a rotation cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// The group would exceed CloudFront's limit and no key may leave it yet.
    #[error("{0}")]
    QuotaWouldBeExceeded(String),
}

impl Classify for Refusal {
    fn error_type(&self) -> ErrorType {
        match self {
            Refusal::Invalid(e) => e.error_type(),
            Refusal::QuotaWouldBeExceeded(_) => ErrorType::QUOTA_WOULD_BE_EXCEEDED,
        }
    }
}

/// How old a key of keeper's in no key group must be before it counts as an orphan: longer than any Lambda run, so
/// that a rotation between its create and its update is never mistaken for one.
pub const ORPHAN_MIN_AGE_SECS: f64 = 20.0 * 60.0;

/// How this deployment retired a key: from which group, whether deleting it was allowed then, and whether the
/// update that retired it was answered (or recognised), which makes the retirement keeper's for certain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retired {
    pub group: String,
    pub deletable: bool,
    pub confirmed: bool,
}

/// A public key of the account as the orphan sweep sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub name: String,
    /// Epoch seconds.
    pub created: f64,
    /// Whether a key group lists it.
    pub listed: bool,
    /// Whether its comment says this deployment made it.
    pub made_here: bool,
}

impl Seen {
    /// Whether the sweep looks at the key at all: in no key group, and older than any run.
    pub fn unlisted(&self, now: f64) -> bool {
        !self.listed && now - self.created >= ORPHAN_MIN_AGE_SECS
    }
}

/// What the sweep does with an unlisted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sweep {
    /// Not this deployment's: never looked at again, not counted.
    NotOurs,
    /// This deployment's orphan, deleted.
    Delete { why: String },
    /// This deployment's orphan, counted and kept.
    Keep { detail: String },
}

/// What the sweep does with an unlisted key (see [`Seen::unlisted`]), given this deployment's retire mark of it
/// (`Err` when it could not be read) and whether deletion is on. A key this deployment made is its orphan. So is a
/// key it retired from a group: the event that retired it may have died (dead-lettered) before its delete. One
/// retired with deletion off is counted and kept, whoever made it; one whose retiring update was never confirmed (its
/// answer lost, or refused and not tried again) may have been taken out by another writer: counted, never deleted on
/// that guess. A mark that cannot be read keeps a key of this deployment's until a run can read it.
pub fn orphan(key: &Seen, mark: Result<Option<&Retired>, ()>, delete: bool) -> Sweep {
    const KEPT_OFF: &str = "it was retired with deletion off";
    let (why, kept) = match (key.made_here, mark) {
        (true, Ok(mark)) => (
            format!("orphan: this deployment made it ({}) and no key group lists it", key.name),
            mark.is_some_and(|m| !m.deletable).then_some(KEPT_OFF),
        ),
        (true, Err(())) => (
            format!("orphan: this deployment made it ({}) and no key group lists it", key.name),
            Some("its retire mark could not be read"),
        ),
        (false, Ok(Some(Retired { group, deletable, confirmed: true }))) => (
            format!("orphan: this deployment retired it from {group} and no key group lists it"),
            (!deletable).then_some(KEPT_OFF),
        ),
        (false, Ok(Some(Retired { group, confirmed: false, .. }))) => (
            format!(
                "orphan: no key group lists it, and this deployment's update that would retire it from {group} was never confirmed"
            ),
            Some("another writer may have taken it out; delete it by hand if nothing uses it"),
        ),
        (false, Ok(None) | Err(())) => return Sweep::NotOurs,
    };
    match (kept, delete) {
        (Some(reason), _) => Sweep::Keep { detail: format!("{why}; kept: {reason}") },
        (None, true) => Sweep::Delete { why },
        (None, false) => Sweep::Keep { detail: format!("{why}; set DELETE_RETIRED_KEYS to delete it") },
    }
}

/// A job's rotation, with the keys to add and retire named by `K`.
pub fn rotation<K>(job: &Job, add: Vec<K>, retire: Vec<K>) -> Rotation<K> {
    Rotation { add, retire, max_keys: job.max_keys, grace_seconds: job.grace_hours * 3600.0 }
}

/// The plan made before the job's new key is created, with that key as one to create: a rotation that cannot
/// happen (the group full, no key old enough to leave) is refused before anything is made. `keys` are the group's
/// members with when each joined; `joined`, the key this event created and an earlier run of it added, which is a
/// member now, not a key to create (it would count twice against the five a group may hold).
pub fn with_new_key(
    job: &Job,
    items: &[String],
    keys: &[Key<String>],
    joined: Option<&str>,
    now: f64,
) -> Result<Plan<Member>, Refusal> {
    let existing = |id: &str| Member::Existing(id.to_string());
    let mut members: Vec<Key<Member>> = keys.iter().map(|k| Key { id: existing(&k.id), joined: k.joined }).collect();
    let mut add: Vec<Member> = job.add.iter().map(|id| existing(id)).collect();
    match (&job.new_key, joined) {
        (Some(_), Some(id)) => add.push(existing(id)),
        (Some(new_key), None) => {
            add.push(Member::ToCreate(new_key.name.clone()));
            members.push(Key { id: Member::ToCreate(new_key.name.clone()), joined: now });
        }
        (None, _) => {}
    }
    let current: Vec<Member> = items.iter().map(|id| existing(id)).collect();
    let retire = job.retire.iter().map(|id| existing(id)).collect();
    plan(&current, &members, &rotation(job, add, retire), now)
}

/// Applies a rotation to the current items. `keys` has the creation time of every current and added key.
pub fn plan<K>(current: &[K], keys: &[Key<K>], rotation: &Rotation<K>, now: f64) -> Result<Plan<K>, Refusal>
where
    K: Clone + PartialEq + fmt::Display,
{
    let recorded = |id: &K| keys.iter().find(|k| k.id == *id).map(|k| k.joined);
    let mut items: Vec<K> = current.to_vec();
    let mut plan = Plan { items: Vec::new(), added: Vec::new(), retired: Vec::new(), already: Vec::new() };
    for id in &rotation.add {
        if items.contains(id) {
            plan.already.push((id.clone(), "already in the group".into()));
        } else {
            items.push(id.clone());
            plan.added.push(id.clone());
        }
    }
    for id in &rotation.retire {
        if rotation.add.contains(id) {
            return Err(InvalidInput::new("retirePublicKeyIds", format!("`{id}` is also being added")).into());
        }
        match items.iter().position(|i| i == id) {
            None => plan.already.push((id.clone(), "not in the group".into())),
            Some(_) if items.len() == 1 => {
                return Err(InvalidInput::new(
                    "retirePublicKeyIds",
                    format!("retiring `{id}` would leave the key group empty"),
                )
                .into());
            }
            Some(p) => {
                items.remove(p);
                plan.retired.push((id.clone(), "retired as asked".into()));
            }
        }
    }
    // When each key started signing: a key added by this rotation joins now; a key already in the group when it
    // joined (see [`Key`]).
    let joined = |id: &K| {
        if rotation.add.contains(id) && !current.contains(id) { Some(now) } else { recorded(id) }
    };
    // A key stops signing when the next key joins: URLs it signed until then stay valid for the grace period after
    // that. So a key may leave once the key that replaced it as newest has been in the group for the grace period;
    // the newest key (or keys, when several joined at once) is never replaced, so it never leaves by age.
    // Every key that has signed for the group, the ones retired by this rotation included: they replaced others.
    let signers: Vec<&K> = current.iter().chain(&rotation.add).collect();
    let replaced_at = |id: &K| {
        let since = joined(id)?;
        signers.iter().filter_map(|k| joined(k)).filter(|t| *t > since).min_by(f64::total_cmp)
    };
    let retirable_at = |id: &K| replaced_at(id).map(|t| t + rotation.grace_seconds);
    let retirable = |id: &K| !rotation.add.contains(id) && retirable_at(id).is_some_and(|t| t <= now);
    // A key retired by name is held to the grace period too: one message could otherwise retire the live signer (and
    // add its own key) and break every URL it signed. An operator who must remove a key at once (compromised) lowers
    // GRACE_HOURS, or removes it in CloudFront.
    for (id, _) in plan.retired.iter() {
        if !retirable(id) {
            let why = match retirable_at(id) {
                Some(at) => format!("its successor joined less than the grace period ago; it may be retired from {}", iso(at)),
                None => "it is the group's newest signer: it may be retired once a newer key has been in the group for the grace period".into(),
            };
            return Err(InvalidInput::new(
                "retirePublicKeyIds",
                format!("`{id}` may still have signed live URLs ({why}; GRACE_HOURS / graceHours)"),
            )
            .into());
        }
    }
    while items.len() > rotation.max_keys {
        let oldest = items
            .iter()
            .filter(|i| retirable(i))
            .min_by(|a, b| joined(a).unwrap_or(0.0).total_cmp(&joined(b).unwrap_or(0.0)))
            .cloned();
        let Some(id) = oldest else { break };
        items.retain(|i| *i != id);
        plan.retired.push((
            id,
            format!("oldest beyond {} keys, replaced as signer more than the grace period ago", rotation.max_keys),
        ));
    }
    if items.len() > MAX_KEYS_PER_GROUP {
        let next =
            items.iter().filter(|i| !rotation.add.contains(i)).filter_map(&retirable_at).fold(f64::INFINITY, f64::min);
        let when = if next.is_finite() {
            iso(next)
        } else {
            "not known yet (every key is being added, or has not started signing: a managed rotation in progress)"
                .into()
        };
        return Err(Refusal::QuotaWouldBeExceeded(format!(
            "adding would put {} keys in the group (CloudFront allows {MAX_KEYS_PER_GROUP}) and none may be retired yet; the next key becomes retirable at {when}",
            items.len()
        )));
    }
    plan.items = items;
    Ok(plan)
}

/// Epoch seconds as RFC 3339 (UTC), for messages.
fn iso(secs: f64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs.floor() as i64)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{secs} s after the epoch"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_800_000_000.0;
    const HOUR: f64 = 3600.0;

    fn seen(made_here: bool) -> Seen {
        Seen { name: "keeper-k".into(), created: NOW - 2.0 * HOUR, listed: false, made_here }
    }

    #[test]
    fn given_keys_listed_or_young_when_swept_then_not_looked_at() {
        // GIVEN a key in a group, and one made within the last 20 minutes (a rotation between create and update)
        let listed = Seen { listed: true, ..seen(true) };
        let young = Seen { created: NOW - ORPHAN_MIN_AGE_SECS + 1.0, ..seen(true) };
        // THEN neither is unlisted; a key exactly at the age is
        assert!(!listed.unlisted(NOW) && !young.unlisted(NOW));
        assert!(Seen { created: NOW - ORPHAN_MIN_AGE_SECS, ..seen(true) }.unlisted(NOW));
    }

    #[test]
    fn given_each_kind_of_unlisted_key_when_swept_then_deleted_only_when_ours_for_certain_and_deletion_is_on() {
        let retired = |deletable, confirmed| Retired { group: "g".into(), deletable, confirmed };
        let deletes = |s: &Sweep| matches!(s, Sweep::Delete { .. });
        // GIVEN a key this deployment made, with no mark: deleted with deletion on, kept and counted with it off
        assert!(deletes(&orphan(&seen(true), Ok(None), true)));
        let Sweep::Keep { detail } = orphan(&seen(true), Ok(None), false) else { panic!("kept") };
        assert!(detail.contains("set DELETE_RETIRED_KEYS"), "{detail}");
        // GIVEN one retired with deletion off, or whose mark cannot be read: kept even with deletion on
        assert!(matches!(orphan(&seen(true), Ok(Some(&retired(false, true))), true), Sweep::Keep { .. }));
        assert!(matches!(orphan(&seen(true), Err(()), true), Sweep::Keep { .. }));
        // GIVEN a key made by hand that this deployment retired, confirmed: ours to delete
        assert!(deletes(&orphan(&seen(false), Ok(Some(&retired(true, true))), true)));
        // GIVEN one whose retiring update was never confirmed: counted, never deleted on that guess
        let Sweep::Keep { detail } = orphan(&seen(false), Ok(Some(&retired(true, false))), true) else { panic!() };
        assert!(detail.contains("never confirmed") && detail.contains("another writer"), "{detail}");
        // GIVEN a key made by hand with no mark, or an unreadable one: not ours, not counted
        assert_eq!(orphan(&seen(false), Ok(None), true), Sweep::NotOurs);
        assert_eq!(orphan(&seen(false), Err(()), true), Sweep::NotOurs);
    }

    fn keys(ages_hours: &[(&str, f64)]) -> (Vec<String>, Vec<Key<String>>) {
        let ids = ages_hours.iter().map(|(id, _)| id.to_string()).collect();
        let keys = ages_hours.iter().map(|(id, age)| Key { id: id.to_string(), joined: NOW - age * HOUR }).collect();
        (ids, keys)
    }

    fn rotation(add: &[&str], retire: &[&str], max_keys: usize, grace_hours: f64) -> Rotation<String> {
        Rotation {
            add: add.iter().map(|s| s.to_string()).collect(),
            retire: retire.iter().map(|s| s.to_string()).collect(),
            max_keys,
            grace_seconds: grace_hours * HOUR,
        }
    }

    #[test]
    fn given_a_full_group_with_a_retirable_key_when_adding_then_the_oldest_past_grace_goes_and_order_is_kept() {
        let (mut current, mut all) = keys(&[("K1", 500.0), ("K2", 300.0)]);
        all.push(Key { id: "K3".into(), joined: NOW });
        let plan = plan(&current, &all, &rotation(&["K3"], &[], 2, 24.0), NOW).unwrap();
        assert_eq!(plan.items, vec!["K2", "K3"]);
        assert_eq!(plan.retired[0].0, "K1");
        current.push("K3".into());
        assert!(plan.changes());
    }

    #[test]
    fn given_keys_inside_the_grace_period_when_adding_then_kept_beyond_max_keys_up_to_five() {
        let (current, mut all) = keys(&[("K1", 2.0), ("K2", 1.0)]);
        all.push(Key { id: "K3".into(), joined: NOW });
        let plan = plan(&current, &all, &rotation(&["K3"], &[], 2, 24.0), NOW).unwrap();
        assert_eq!(plan.items, vec!["K1", "K2", "K3"], "signed URLs may still use K1 and K2");
        assert!(plan.retired.is_empty());
    }

    #[test]
    fn given_the_grace_boundary_when_planned_then_a_key_replaced_exactly_grace_ago_is_retirable() {
        // K1 stopped signing when K2 joined, exactly 24 h ago: its URLs have expired.
        let (current, mut all) = keys(&[("K1", 48.0), ("K2", 24.0)]);
        all.push(Key { id: "K3".into(), joined: NOW });
        let at_grace = plan(&current, &all, &rotation(&["K3"], &[], 2, 24.0), NOW).unwrap();
        assert_eq!(at_grace.items, vec!["K2", "K3"]);
        // A moment less, and K1 stays: K2 has signed for less than the grace period.
        let (current, mut all) = keys(&[("K1", 48.0), ("K2", 23.9)]);
        all.push(Key { id: "K3".into(), joined: NOW });
        let inside = plan(&current, &all, &rotation(&["K3"], &[], 2, 24.0), NOW).unwrap();
        assert_eq!(inside.items, vec!["K1", "K2", "K3"]);
    }

    #[test]
    fn given_max_keys_one_when_a_new_key_is_added_then_the_key_signing_until_now_stays_until_the_grace_has_passed() {
        // GIVEN K1, alone and long past any grace period, and MAX_KEYS=1
        let (current, mut all) = keys(&[("K1", 500.0)]);
        all.push(Key { id: "K2".into(), joined: NOW });
        // WHEN K2 is uploaded
        let added = plan(&current, &all, &rotation(&["K2"], &[], 1, 24.0), NOW).unwrap();
        // THEN K1 stays: it signed URLs until this moment, so it may leave 24 h from now, not now
        assert_eq!(added.items, vec!["K1", "K2"]);
        assert!(added.retired.is_empty());
        // WHEN the sweep runs 23 h later THEN K1 still stays; 24 h later it goes
        let later =
            |hours: f64| plan(&["K1".into(), "K2".into()], &all, &rotation(&[], &[], 1, 24.0), NOW + hours * HOUR);
        assert_eq!(later(23.0).unwrap().items, vec!["K1", "K2"]);
        assert_eq!(later(24.0).unwrap().items, vec!["K2"]);
    }

    #[test]
    fn given_the_defaults_when_a_third_key_comes_two_hours_after_the_second_then_the_first_stays() {
        // GIVEN the defaults (2 keys, 24 h): K1 old, K2 uploaded 2 h ago (K1 signed until then)
        let (current, mut all) = keys(&[("K1", 500.0), ("K2", 2.0)]);
        all.push(Key { id: "K3".into(), joined: NOW });
        // WHEN K3 is uploaded
        let plan = plan(&current, &all, &rotation(&["K3"], &[], 2, 24.0), NOW).unwrap();
        // THEN nothing leaves: K1 was replaced 2 h ago, K2 is being replaced now; the group holds 3 for a while
        assert_eq!(plan.items, vec!["K1", "K2", "K3"]);
        assert!(plan.retired.is_empty());
    }

    #[test]
    fn given_an_old_key_added_by_id_when_planned_then_it_counts_as_joining_now() {
        // GIVEN K1 in the group, and K9, created long ago elsewhere, added by id now
        let (current, mut all) = keys(&[("K1", 500.0)]);
        all.push(Key { id: "K9".into(), joined: NOW - 900.0 * HOUR });
        // WHEN planned with MAX_KEYS=1 THEN K1 stays: K9 starts signing now, whatever its age
        let plan = plan(&current, &all, &rotation(&["K9"], &[], 1, 24.0), NOW).unwrap();
        assert_eq!(plan.items, vec!["K1", "K9"]);
    }

    #[test]
    fn given_five_young_keys_when_adding_a_sixth_then_quota_refusal_saying_when_and_no_plan() {
        let (current, mut all) = keys(&[("K1", 5.0), ("K2", 4.0), ("K3", 3.0), ("K4", 2.0), ("K5", 1.0)]);
        all.push(Key { id: "K6".into(), joined: NOW });
        let err = plan(&current, &all, &rotation(&["K6"], &[], 2, 24.0), NOW).unwrap_err().to_string();
        assert!(err.contains("would put 6 keys in the group (CloudFront allows 5)"), "{err}");
        // K1 was replaced when K2 joined (4 h ago): it may leave 24 h after that.
        assert!(err.contains("next key becomes retirable at 2027-01-16T04:00:00Z"), "{err}");
    }

    #[test]
    fn given_explicit_retire_of_the_last_key_when_planned_then_refused() {
        let (current, all) = keys(&[("K1", 500.0)]);
        let err = plan(&current, &all, &rotation(&[], &["K1"], 2, 24.0), NOW).unwrap_err().to_string();
        assert!(err.contains("would leave the key group empty"), "{err}");
    }

    #[test]
    fn given_a_request_that_retires_the_live_signer_by_name_when_planned_then_refused_until_its_grace_has_passed() {
        // GIVEN K1 replaced by K2 500 hours ago, and K2 the newest signer
        let (current, mut all) = keys(&[("K1", 800.0), ("K2", 500.0)]);
        // WHEN a request adds its own key and retires K2 by name THEN it is refused: K2 signed URLs until now
        all.push(Key { id: "N1".into(), joined: NOW });
        let err = plan(&current, &all, &rotation(&["N1"], &["K2"], 2, 24.0), NOW).unwrap_err().to_string();
        assert!(err.contains("`K2` may still have signed live URLs") && err.contains("retirePublicKeyIds"), "{err}");
        // AND retiring the newest signer alone is refused too
        let err = plan(&current, &all, &rotation(&[], &["K2"], 2, 24.0), NOW).unwrap_err().to_string();
        assert!(err.contains("newest signer"), "{err}");
        // AND K1, replaced long past the grace period, may be retired by name
        let plan = plan(&current, &all, &rotation(&[], &["K1"], 2, 24.0), NOW).unwrap();
        assert_eq!(plan.items, vec!["K2"]);
    }

    #[test]
    fn given_nothing_to_change_when_planned_then_no_update_and_notes() {
        let (current, all) = keys(&[("K1", 500.0), ("K2", 1.0)]);
        let plan = plan(&current, &all, &rotation(&["K2"], &["K9"], 2, 24.0), NOW).unwrap();
        assert!(!plan.changes());
        assert_eq!(plan.items, current);
        assert_eq!(plan.already.len(), 2);
    }

    #[test]
    fn given_old_keys_and_zero_grace_when_swept_then_the_newest_key_is_never_retired() {
        let (current, all) = keys(&[("K1", 500.0), ("K2", 400.0), ("K3", 300.0)]);
        let plan = plan(&current, &all, &rotation(&[], &[], 1, 0.0), NOW).unwrap();
        assert_eq!(plan.items, vec!["K3"]);
        assert_eq!(plan.retired.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), vec!["K1", "K2"]);
    }

    #[test]
    fn given_a_key_still_to_create_when_planned_then_it_counts_as_the_newest_and_is_named_in_the_refusal() {
        let existing = |id: &str| Member::Existing(id.into());
        let current: Vec<Member> = ["K1", "K2", "K3", "K4", "K5"].map(existing).to_vec();
        let mut all: Vec<Key<Member>> = current
            .iter()
            .enumerate()
            .map(|(i, m)| Key { id: m.clone(), joined: NOW - (5 - i) as f64 * HOUR })
            .collect();
        let new = Member::ToCreate("site-2026".into());
        all.push(Key { id: new.clone(), joined: NOW });
        let rotation = Rotation { add: vec![new.clone()], retire: vec![], max_keys: 2, grace_seconds: 24.0 * HOUR };
        let err = plan(&current, &all, &rotation, NOW).unwrap_err();
        assert_eq!(err.error_type(), ErrorType::QUOTA_WOULD_BE_EXCEEDED);
        let zero_grace = Rotation { grace_seconds: 0.0, ..rotation };
        let planned = plan(&current, &all, &zero_grace, NOW).unwrap();
        assert_eq!(planned.added, vec![new.clone()]);
        assert_eq!(planned.items, vec![existing("K5"), new], "the key to create is kept as the newest");
        assert_eq!(Member::ToCreate("site-2026".into()).to_string(), "site-2026 (to be created)");
    }

    fn planned(items: &[&str], added: &[&str], retired: &[&str]) -> Plan<String> {
        let ids = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Plan {
            items: ids(items),
            added: ids(added),
            retired: retired.iter().map(|s| (s.to_string(), "oldest".to_string())).collect(),
            already: Vec::new(),
        }
    }

    #[test]
    fn given_an_update_sent_when_a_later_read_finds_the_group_as_it_left_it_then_its_changes_are_recognised_once() {
        // GIVEN an event that sent [K2, K3] (K3 added, K1 retired), and whose answer was lost
        let mut intent = Intent::default();
        intent.record(&planned(&["K2", "K3"], &["K3"], &["K1"]));
        let items: Vec<String> = vec!["K2".into(), "K3".into()];
        // WHEN a read finds exactly that THEN both changes are recognised, each once
        let found: Vec<(Kind, String)> = intent.recognise(&items).into_iter().map(|c| (c.verb, c.id)).collect();
        assert_eq!(found, vec![(Kind::Add, "K3".to_string()), (Kind::Retire, "K1".to_string())]);
        assert!(intent.recognise(&items).is_empty(), "reported already");
        assert!(intent.done_otherwise(&items).is_empty());
        // AND K1 stays among what the event's retries delete while no group lists it
        assert_eq!(intent.retired_gone(&items), vec!["K1"]);
        assert_eq!(intent.retired_gone(&["K1".to_string()]), Vec::<String>::new());
    }

    #[test]
    fn given_a_group_changed_after_the_update_sent_when_read_then_nothing_is_claimed_as_this_events_update() {
        let mut intent = Intent::default();
        intent.record(&planned(&["K2", "K3"], &["K3"], &["K1"]));
        // Someone added K4 since: the group is not as the update left it, although K3 is in it and K1 out
        let moved: Vec<String> = vec!["K2".into(), "K3".into(), "K4".into()];
        assert!(intent.recognise(&moved).is_empty());
        let done: Vec<String> = intent.done_otherwise(&moved).into_iter().map(|c| c.id).collect();
        assert_eq!(done, vec!["K3", "K1"]);
        // A change planned again (a later round) is not reported until it is done again
        intent.record(&planned(&["K2", "K3"], &["K3"], &[]));
        assert!(intent.report(Kind::Add, "K3"));
        assert!(!intent.report(Kind::Add, "K3"), "once");
        assert_eq!(intent.changes.len(), 2, "each change once: {:?}", intent.changes);
        let json = serde_json::to_string(&intent).unwrap();
        assert_eq!(serde_json::from_str::<Intent>(&json).unwrap(), intent);
    }

    mod invariants {
        //! The rotation's promises, checked over generated groups, ages and settings rather than chosen cases.

        use proptest::prelude::*;

        use super::*;

        /// A group of 1–5 keys with ages in hours, up to two keys added (one may already be in the group), up to two
        /// asked to retire, and the settings.
        fn cases() -> impl Strategy<Value = (Vec<Key<String>>, Vec<String>, Rotation<String>, f64)> {
            let ages = prop::collection::vec(0.0f64..1000.0, 1..=5);
            (ages, 0usize..=2, any::<bool>(), prop::collection::vec(0usize..5, 0..=2), 1usize..=5, 0.0f64..200.0)
                .prop_map(|(ages, adding, re_add, retire, max_keys, grace_hours)| {
                    let mut keys: Vec<Key<String>> = ages
                        .iter()
                        .enumerate()
                        .map(|(i, age)| Key { id: format!("K{i}"), joined: NOW - age * HOUR })
                        .collect();
                    let current: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
                    let mut add: Vec<String> = (0..adding).map(|i| format!("N{i}")).collect();
                    keys.extend(add.iter().map(|id| Key { id: id.clone(), joined: NOW }));
                    if re_add {
                        add.push(current[0].clone());
                    }
                    let mut retire: Vec<String> = retire.iter().filter_map(|i| current.get(*i).cloned()).collect();
                    retire.retain(|r| !add.contains(r));
                    retire.dedup();
                    let rotation = Rotation { add, retire, max_keys, grace_seconds: grace_hours * HOUR };
                    (keys, current, rotation, grace_hours)
                })
        }

        proptest! {
            #[test]
            fn given_any_group_and_rotation_when_planned_then_at_most_five_keys_never_empty_and_no_key_lost(
                (keys, current, rotation, _grace) in cases()
            ) {
                let joining = rotation.add.iter().filter(|a| !current.contains(a)).count();
                let plan = match plan(&current, &keys, &rotation, NOW) {
                    Ok(plan) => plan,
                    Err(Refusal::QuotaWouldBeExceeded(why)) => {
                        prop_assert!(current.len() + joining > MAX_KEYS_PER_GROUP, "refused without need: {why}");
                        return Ok(());
                    }
                    Err(Refusal::Invalid(e)) => {
                        // Refused only for emptying the group, or for retiring by name a key inside its grace.
                        let inside_grace = e.to_string().contains("may still have signed live URLs")
                            && !rotation.retire.is_empty();
                        prop_assert!(e.to_string().contains("empty") || inside_grace, "{e}");
                        return Ok(());
                    }
                };
                prop_assert!(!plan.items.is_empty(), "the group would be empty");
                prop_assert!(plan.items.len() <= MAX_KEYS_PER_GROUP, "{} keys", plan.items.len());
                let retired: Vec<&String> = plan.retired.iter().map(|(id, _)| id).collect();
                for id in current.iter().chain(&rotation.add) {
                    let kept = plan.items.contains(id);
                    prop_assert!(kept != retired.contains(&id), "{id}: kept {kept}, retired {}", retired.contains(&id));
                }
                for id in &rotation.add {
                    prop_assert!(plan.items.contains(id), "{id} was to be added");
                }
                for id in &plan.items {
                    prop_assert!(current.contains(id) || rotation.add.contains(id), "{id} came from nowhere");
                }
                let mut unique = plan.items.clone();
                unique.sort();
                unique.dedup();
                prop_assert_eq!(unique.len(), plan.items.len(), "a key twice in the group");
            }

            #[test]
            fn given_any_group_and_rotation_when_planned_then_a_key_leaves_by_age_only_after_its_replacement_signed_for_the_grace(
                (keys, current, rotation, _grace) in cases()
            ) {
                let Ok(plan) = plan(&current, &keys, &rotation, NOW) else { return Ok(()) };
                let joined = |id: &String| {
                    if rotation.add.contains(id) && !current.contains(id) {
                        NOW
                    } else {
                        keys.iter().find(|k| k.id == *id).map(|k| k.joined).unwrap_or(NOW)
                    }
                };
                let newest = current.iter().chain(&rotation.add).map(joined).fold(f64::MIN, f64::max);
                for (id, _) in plan.retired.iter().filter(|(id, _)| !rotation.retire.contains(id)) {
                    prop_assert!(!rotation.add.contains(id), "{id} was added and retired at once");
                    prop_assert!(joined(id) < newest, "{id}, the newest signer, left by age");
                    // The first key that joined after it took over signing: URLs it signed stay valid for the grace.
                    let replaced = current
                        .iter()
                        .chain(&rotation.add)
                        .map(joined)
                        .filter(|t| *t > joined(id))
                        .fold(f64::INFINITY, f64::min);
                    prop_assert!(replaced + rotation.grace_seconds <= NOW, "{id} left inside the grace period");
                }
            }
        }
    }
}
