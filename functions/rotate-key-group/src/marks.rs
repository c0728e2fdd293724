//! What rotate-key-group records for its later runs, in the idempotency table beside its event records (through the
//! host's [`Leases`]): when keeper added each key to each group, and what each event changed in each group. Both are
//! written just before the UpdateKeyGroup that makes the change, so that a crash or a lost answer after the update
//! still leaves them.

use std::time::Duration;

use shared::hash::sha256_hex;
use shared::idempotency::Leases;

use crate::error::Error;
use crate::plan::{Intent, Retired};

/// How long the moment a key joined a group is kept: longer than any grace period (`GRACE_HOURS` is at most 8760).
pub const JOINED_KEPT: Duration = Duration::from_secs(400 * 86_400);

/// How long what an event changed is kept: longer than an event can come back (Lambda's retries within six hours, a
/// re-send from the dead-letter queue, which keeps a message 14 days at most).
pub const INTENT_KEPT: Duration = Duration::from_secs(30 * 86_400);

/// The mark of when `key` joined `group` (`rotate-key-group#joined#<group>#<key>` in the table).
pub fn joined_name(group: &str, key: &str) -> String {
    format!("joined#{group}#{key}")
}

/// What the join mark of a managed rotation's key holds from the moment setSecret adds it until finishSecret makes
/// its version AWSCURRENT: it is in the group, but signers still use the key it replaces, whose grace period must not
/// start yet.
const NOT_SIGNING_YET: &str = "pending";

/// When `key` started signing for `group` (epoch seconds): when keeper added it, or, for a managed rotation's key,
/// when its version became AWSCURRENT; `f64::INFINITY` while it has not (see [`NOT_SIGNING_YET`]), so that no key it
/// replaces counts as replaced. `None` when keeper did not add it or the mark is gone.
pub async fn joined(leases: &Leases, group: &str, key: &str) -> Result<Option<f64>, Error> {
    let Some(value) = leases.mark(&joined_name(group, key)).await? else { return Ok(None) };
    if value == NOT_SIGNING_YET {
        return Ok(Some(f64::INFINITY));
    }
    let millis: i64 = value.parse().map_err(|_| {
        Error::Internal(format!("the mark of when {key} joined {group} is not epoch milliseconds: {value}"))
    })?;
    Ok(Some(millis as f64 / 1000.0))
}

/// Records that `key` joins `group` now (`now`, epoch seconds), just before the update that adds it; or, with `now`
/// infinite, that it joins without signing yet (a managed rotation's key, until finishSecret).
pub async fn put_joined(leases: &Leases, group: &str, key: &str, now: f64) -> Result<(), Error> {
    let value = match now.is_finite() {
        true => ((now * 1000.0).round() as i64).to_string(),
        false => NOT_SIGNING_YET.to_string(),
    };
    Ok(leases.put_mark(&joined_name(group, key), &value, JOINED_KEPT).await?)
}

/// The mark that this deployment retired `key` (from a group): a key it did not make, but whose deletion is its
/// job once no group lists it, even when the event that retired it died before deleting it (dead-lettered). A key
/// retired with deletion off is marked too, as one to keep: the sweep counts it as an orphan and never deletes it.
pub fn retired_name(key: &str) -> String {
    format!("retired#{key}")
}

/// How this deployment retired `key`, or meant to, if the mark is kept.
pub async fn retired(leases: &Leases, key: &str) -> Result<Option<Retired>, Error> {
    Ok(leases.mark(&retired_name(key)).await?.map(|value| Retired::parse(&value)))
}

/// What a retire mark holds until its update is answered.
const PENDING: &str = "pending:";
/// What a retire mark holds when the key was retired with deletion off.
const KEPT: &str = "kept:";

impl Retired {
    /// The mark's value: `[pending:][kept:]<group>`.
    fn value(&self) -> String {
        let pending = if self.confirmed { "" } else { PENDING };
        let kept = if self.deletable { "" } else { KEPT };
        format!("{pending}{kept}{}", self.group)
    }

    fn parse(value: &str) -> Self {
        let (confirmed, value) = value.strip_prefix(PENDING).map_or((true, value), |rest| (false, rest));
        let (deletable, group) = value.strip_prefix(KEPT).map_or((true, value), |group| (false, group));
        Retired { group: group.to_string(), deletable, confirmed }
    }
}

/// Records that `key` leaves a group by this deployment's hand: pending just before the update that retires it,
/// confirmed once that update was answered.
pub async fn put_retired(leases: &Leases, key: &str, retired: &Retired) -> Result<(), Error> {
    Ok(leases.put_mark(&retired_name(key), &retired.value(), JOINED_KEPT).await?)
}

/// The mark of what the event `event_id` changed in `group` (the event id hashed: it may be long).
pub fn intent_name(event_id: &str, group: &str) -> String {
    format!("event#{}#{group}", sha256_hex(event_id.as_bytes()))
}

/// What earlier runs (and rounds) of the event changed in `group`; empty when none got as far as an update.
pub async fn intent(leases: &Leases, event_id: &str, group: &str) -> Result<Intent, Error> {
    match leases.mark(&intent_name(event_id, group)).await? {
        None => Ok(Intent::default()),
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| Error::Internal(format!("the record of what event {event_id} changed in {group}: {e}"))),
    }
}

pub async fn put_intent(leases: &Leases, event_id: &str, group: &str, intent: &Intent) -> Result<(), Error> {
    let json = serde_json::to_string(intent).map_err(|e| Error::Internal(format!("intent: {e}")))?;
    Ok(leases.put_mark(&intent_name(event_id, group), &json, INTENT_KEPT).await?)
}
