//! The emulated AWS for end-to-end tests, and SDK settings that retry fast against it.

use std::time::Duration;

use aws_types::SdkConfig;
use local::{Call, Running, World};
use serde_json::Value;
use shared::config::Settings;

/// An emulator on a free loopback port, seeded; stops when dropped.
pub async fn start(seed: Value) -> Running {
    let world = World::from_seed(seed, local::world::now_ms()).expect("a valid seed");
    local::start(world, "127.0.0.1:0").await.expect("the emulator starts")
}

/// Settings with fast retries: the SDK's backoff and keeper's contention wait scale with the initial backoff.
pub fn fast_settings(max_attempts: u32) -> Settings {
    Settings { max_attempts, retry_initial_backoff: Duration::from_millis(1), ..Settings::default() }
}

pub async fn sdk_config(running: &Running, region: &str, settings: &Settings) -> SdkConfig {
    shared::clients::local_sdk_config(&running.url, region, settings).await
}

/// The calls of one operation, in order.
pub fn calls(running: &Running, operation: &str) -> Vec<Call> {
    running.emulator.calls().into_iter().filter(|c| c.operation == operation).collect()
}

/// The value of a parameter of each call of one operation, sorted (for order-free comparisons).
pub fn called_with(running: &Running, operation: &str, param: &str) -> Vec<String> {
    let mut out: Vec<String> =
        calls(running, operation).into_iter().filter_map(|c| c.params.get(param).cloned()).collect();
    out.sort();
    out
}
