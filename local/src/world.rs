//! The emulated account: every resource the services keep, seeded from JSON and dumped as JSON.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::appstream::Builder;
use crate::cloudfront::CloudFront;
use crate::faults::{FaultRule, Faults};
use crate::imagebuilder::Execution;

fn default_account() -> String {
    "123456789012".into()
}

/// How fast the emulated account moves; tests make it fast, the demo keeps it visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timing {
    /// AppStream image builder transitions (PENDING → RUNNING, STOPPING → STOPPED, ...).
    #[serde(default = "Timing::default_transition")]
    pub transition_millis: u64,
    /// Image Builder lifecycle executions (IN_PROGRESS → SUCCESS).
    #[serde(default = "Timing::default_lifecycle")]
    pub lifecycle_millis: u64,
}

impl Timing {
    fn default_transition() -> u64 {
        1000
    }
    fn default_lifecycle() -> u64 {
        1000
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing { transition_millis: Timing::default_transition(), lifecycle_millis: Timing::default_lifecycle() }
    }
}

/// What one region holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Region {
    /// AppStream image builders by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub image_builders: BTreeMap<String, Builder>,
    /// Image Builder distribution configurations by ARN, as GetDistributionConfiguration returns them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub distribution_configurations: BTreeMap<String, Value>,
    /// Image Builder build versions by ARN, as GetImage returns them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lifecycle_executions: BTreeMap<String, Execution>,
    /// Image Builder client tokens: `operation:token` → (request fingerprint, response).
    #[serde(skip)]
    pub client_tokens: HashMap<String, (String, Value)>,
}

/// The whole emulated account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct World {
    #[serde(default = "default_account")]
    pub account_id: String,
    #[serde(default)]
    pub timing: Timing,
    #[serde(default)]
    pub regions: BTreeMap<String, Region>,
    /// CloudFront is global.
    #[serde(default)]
    pub cloudfront: CloudFront,
    /// S3 objects: bucket → key → UTF-8 body (seeding only; S3 itself is served by s3s).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub s3: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default)]
    pub faults: Faults,
    /// Seeds the dice of probabilistic faults, so a test with `probability` is repeatable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_seed: Option<u64>,
}

impl Default for World {
    fn default() -> Self {
        World {
            account_id: default_account(),
            timing: Timing::default(),
            regions: BTreeMap::new(),
            cloudfront: CloudFront::default(),
            s3: BTreeMap::new(),
            faults: Faults::default(),
            random_seed: None,
        }
    }
}

impl World {
    /// A world from a seed document; unknown keys are errors so a typo in a seed is not silently ignored.
    pub fn from_seed(seed: Value, now_ms: i64) -> Result<World, String> {
        let mut world: World =
            serde_path_to_error::deserialize(seed).map_err(|e| format!("seed: `{}`: {}", e.path(), e.inner()))?;
        let account = world.account_id.clone();
        for (name, region) in world.regions.iter_mut() {
            crate::imagebuilder::normalize_seed(&account, name, region, now_ms);
            crate::appstream::normalize_seed(&account, name, region, now_ms);
        }
        world.cloudfront.normalize_seed(now_ms);
        Ok(world)
    }

    pub fn region(&mut self, name: &str) -> &mut Region {
        self.regions.entry(name.to_string()).or_default()
    }

    /// Moves every timed transition that is due (builder states, lifecycle executions) in every region.
    pub fn tick(&mut self, now_ms: i64) {
        for region in self.regions.values_mut() {
            crate::appstream::tick(region, now_ms);
            crate::imagebuilder::tick(region, now_ms);
        }
    }

    pub fn add_faults(&mut self, rules: impl IntoIterator<Item = FaultRule>) {
        self.faults.rules.extend(rules);
    }
}

/// `2026-11-21T05:38:52.000Z` for epoch milliseconds (UTC, proleptic Gregorian).
pub fn iso8601(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_epoch_millis_when_formatted_then_iso8601_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601(1_795_239_532_000), "2026-11-21T05:38:52.000Z");
    }

    #[test]
    fn given_seed_with_misspelt_key_when_loaded_then_error_names_the_path() {
        let err = World::from_seed(serde_json::json!({"regions": {"us-east-1": {"imageBuilder": {}}}}), 0).unwrap_err();
        assert!(err.contains("regions.us-east-1"), "{err}");
        assert!(err.contains("imageBuilder"), "{err}");
    }
}
