//! The emulated AWS for end-to-end tests, and SDK settings that retry fast against it.

use std::collections::BTreeMap;
use std::time::Duration;

use std::sync::Arc;

use aws_types::SdkConfig;
use local::Running;
use shared::config::{Lookup, Settings};
use shared::host::{Function, Host};
use shared::idempotency::MemoryStore;

pub use local::testing::{called_with, calls, start};

/// Settings with fast retries: the SDK's backoff and keeper's contention wait scale with the initial backoff.
pub fn fast_settings(max_attempts: u32) -> Settings {
    Settings { max_attempts, retry_initial_backoff: Duration::from_millis(1), ..Settings::default() }
}

/// An SDK configuration aimed at a local server with keeper's retry configuration for `settings`.
pub async fn sdk_config(running: &Running, region: &str, settings: &Settings) -> SdkConfig {
    local::client::sdk_config(&running.url, region, shared::retry::retry_config(settings)).await
}

/// A function's host in process against the emulator at `running`: the SDK retries fast (`max_attempts`), the
/// guard is a fresh memory store, and `settings` are the function's environment.
pub async fn host<F: Function>(running: &Running, max_attempts: u32, settings: &[(&str, &str)]) -> Host<F> {
    let sdk = sdk_config(running, "us-east-1", &fast_settings(max_attempts)).await;
    Host::with_store(&sdk, &Lookup::from_pairs(settings), Arc::new(MemoryStore::default())).expect("valid settings")
}

/// Whether a call changes the account: keeper's reads are Describe, List, Get and Head; everything else it calls
/// (Start, Stop, Create, Update, Delete, ...) writes.
pub fn mutating(operation: &str) -> bool {
    !["Describe", "List", "Get", "Head"].iter().any(|read| operation.starts_with(read))
}

/// The account-changing calls that succeeded, counted by operation and target: what a run did to the account.
pub fn effects(calls: &[local::Call]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for call in calls.iter().filter(|c| mutating(&c.operation) && c.outcome == "ok") {
        let target = ["Name", "Id", "resourceArn", "distributionConfigurationArn"]
            .iter()
            .find_map(|k| call.params.get(*k))
            .cloned()
            .unwrap_or_default();
        *out.entry(format!("{} {target}", call.operation)).or_insert(0) += 1;
    }
    out
}

/// What AWS did, which is [`effects`] except that a call AWS answered as a replay of an earlier one with the same
/// client token (Image Builder's `clientToken`) counts once: a retried run that sends its token again must not look
/// like a second effect, and a second token would still count twice.
pub fn effects_at_aws(calls: &[local::Call]) -> BTreeMap<String, usize> {
    let mut seen = std::collections::BTreeSet::new();
    let kept: Vec<local::Call> = calls
        .iter()
        .filter(|c| {
            let Some(token) = c.params.get("clientToken").filter(|_| c.ok() && mutating(&c.operation)) else {
                return true;
            };
            seen.insert((c.operation.clone(), token.clone()))
        })
        .cloned()
        .collect();
    effects(&kept)
}
