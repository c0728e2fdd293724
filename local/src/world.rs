//! The emulated account: every resource the services keep, seeded from JSON and dumped as JSON. The world composes
//! each service's own state; no service module reads the world.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::appstream::{self, Builders};
use crate::clock::Timing;
use crate::cloudfront::CloudFront;
use crate::faults::{FaultRule, Faults};
use crate::imagebuilder::{self, Execution};
use crate::secretsmanager::{self, RotationRequest, Secret};

fn default_account() -> String {
    "123456789012".into()
}

/// What one region holds: AppStream's image builders, Image Builder's resources and Secrets Manager's secrets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "RegionSeed", into = "RegionSeed")]
pub struct Region {
    /// AppStream image builders by name.
    pub image_builders: Builders,
    pub imagebuilder: imagebuilder::State,
    pub secretsmanager: secretsmanager::State,
}

/// A region as seeds and dumps write it: one flat object, unknown keys refused.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RegionSeed {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    image_builders: Builders,
    /// Image Builder distribution configurations by ARN, as GetDistributionConfiguration returns them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    distribution_configurations: BTreeMap<String, Value>,
    /// Image Builder build versions by ARN, as GetImage returns them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    images: BTreeMap<String, Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    lifecycle_executions: BTreeMap<String, Execution>,
    /// Secrets Manager secrets by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    secrets: BTreeMap<String, Secret>,
    /// RotateSecret calls whose rotation Lambda no driver has run yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    rotation_requests: Vec<RotationRequest>,
}

impl From<RegionSeed> for Region {
    fn from(seed: RegionSeed) -> Region {
        Region {
            image_builders: seed.image_builders,
            imagebuilder: imagebuilder::State {
                distribution_configurations: seed.distribution_configurations,
                images: seed.images,
                lifecycle_executions: seed.lifecycle_executions,
                client_tokens: Default::default(),
            },
            secretsmanager: secretsmanager::State { secrets: seed.secrets, rotation_requests: seed.rotation_requests },
        }
    }
}

impl From<Region> for RegionSeed {
    fn from(region: Region) -> RegionSeed {
        RegionSeed {
            image_builders: region.image_builders,
            distribution_configurations: region.imagebuilder.distribution_configurations,
            images: region.imagebuilder.images,
            lifecycle_executions: region.imagebuilder.lifecycle_executions,
            secrets: region.secretsmanager.secrets,
            rotation_requests: region.secretsmanager.rotation_requests,
        }
    }
}

/// Page sizes a service uses when the caller names none. AWS does not document all of them; a test sets them small
/// to see that a caller reads every page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Paging {
    /// AppStream DescribeImageBuilders, with or without `Names`.
    #[serde(default = "Paging::default_describe_image_builders")]
    pub describe_image_builders: usize,
}

impl Paging {
    fn default_describe_image_builders() -> usize {
        25
    }
}

impl Default for Paging {
    fn default() -> Self {
        Paging { describe_image_builders: Paging::default_describe_image_builders() }
    }
}

/// An S3 object in a seed: its text, or its text and the version id an S3 notification of it names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SeedObject {
    Text(String),
    Versioned {
        body: String,
        #[serde(rename = "versionId")]
        version_id: String,
    },
}

impl SeedObject {
    pub fn body(&self) -> &str {
        match self {
            SeedObject::Text(body) | SeedObject::Versioned { body, .. } => body,
        }
    }

    pub fn version_id(&self) -> Option<&str> {
        match self {
            SeedObject::Text(_) => None,
            SeedObject::Versioned { version_id, .. } => Some(version_id),
        }
    }
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
    pub paging: Paging,
    #[serde(default)]
    pub regions: BTreeMap<String, Region>,
    /// CloudFront is global.
    #[serde(default)]
    pub cloudfront: CloudFront,
    /// S3 objects: bucket → key → UTF-8 body, or body and version id (seeding and dumps; S3 itself is served by
    /// s3s).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub s3: BTreeMap<String, BTreeMap<String, SeedObject>>,
    #[serde(default)]
    pub faults: Faults,
    /// Seeds the dice of probabilistic faults, so a test with `probability` is repeatable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub random_seed: Option<u64>,
    /// Check every request's SigV4 signature against the documented key pair (`keeper-local serve
    /// --verify-signatures`); by default any access key is accepted, as other local AWS emulators do.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verify_signatures: bool,
}

impl Default for World {
    fn default() -> Self {
        World {
            account_id: default_account(),
            timing: Timing::default(),
            paging: Paging::default(),
            regions: BTreeMap::new(),
            cloudfront: CloudFront::default(),
            s3: BTreeMap::new(),
            faults: Faults::default(),
            random_seed: None,
            verify_signatures: false,
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
            imagebuilder::normalize_seed(&account, name, &mut region.imagebuilder, now_ms);
            appstream::normalize_seed(&account, name, &mut region.image_builders, now_ms);
            secretsmanager::normalize_seed(&account, name, &mut region.secretsmanager, now_ms);
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
            appstream::tick(&mut region.image_builders, now_ms);
            imagebuilder::tick(&mut region.imagebuilder, now_ms);
        }
    }

    /// The rotations RotateSecret asked for that no driver has taken yet, region by region, oldest first: the
    /// invocations of the rotation Lambda AWS would make, which the emulator leaves to a driver (the steps' calls
    /// come back as PutSecretValue and UpdateSecretVersionStage).
    pub fn rotation_requests(&self) -> Vec<RotationRequest> {
        self.regions.values().flat_map(|r| r.secretsmanager.rotation_requests.iter().cloned()).collect()
    }

    /// [`World::rotation_requests`], removed: a driver takes each one once.
    pub fn take_rotation_requests(&mut self) -> Vec<RotationRequest> {
        self.regions.values_mut().flat_map(|r| std::mem::take(&mut r.secretsmanager.rotation_requests)).collect()
    }

    pub fn add_faults(&mut self, rules: impl IntoIterator<Item = FaultRule>) {
        self.faults.rules.extend(rules);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_seed_with_misspelt_key_when_loaded_then_error_names_the_path() {
        let err = World::from_seed(serde_json::json!({"regions": {"us-east-1": {"imageBuilder": {}}}}), 0).unwrap_err();
        assert!(err.contains("regions.us-east-1"), "{err}");
        assert!(err.contains("imageBuilder"), "{err}");
    }

    #[test]
    fn given_a_seeded_region_when_dumped_then_the_same_flat_shape_comes_back() {
        let seed = serde_json::json!({"regions": {"us-east-1": {
            "imageBuilders": {"b1": {"State": "STOPPED"}},
            "images": {"arn:aws:imagebuilder:us-east-1:123456789012:image/web/1.0.0/1": {}},
        }}});
        let world = World::from_seed(seed, 0).unwrap();
        let region = &world.regions["us-east-1"];
        assert_eq!(region.image_builders["b1"].state(), "STOPPED");
        assert_eq!(region.imagebuilder.images.len(), 1);
        let dumped = serde_json::to_value(&world).unwrap();
        let again = World::from_seed(dumped.clone(), 0).unwrap();
        assert_eq!(again.regions, world.regions);
        assert!(dumped["regions"]["us-east-1"]["images"].is_object(), "{dumped}");
    }
}
