//! Observe and apply: the Image Builder and S3 calls, and how the SDK's `Distribution` is copied to a new region.
//!
//! The Get output and the Update input share the SDK's `Distribution` type, so a distribution goes back to AWS as the
//! very value that was read: nothing is converted, nothing can be lost. Only the region-bound members are touched,
//! and the test `given_the_pinned_sdk_when_its_members_are_listed_then_each_is_classified` fails when the SDK grows a
//! member nobody has classified as copied or region-bound.

use std::collections::BTreeMap;

use aws_sdk_imagebuilder::Client;
use aws_sdk_imagebuilder::types::{
    AmiDistributionConfiguration, Distribution as SdkDistribution, FastLaunchLaunchTemplateSpecification,
    LaunchTemplateConfiguration,
};
use shared::aws_error::AwsError;
use shared::error::InvalidInput;
use shared::host::Permit;

use crate::config::{DesiredState, Overrides};
use crate::error::Error;
use crate::plan::{Copied, Distribution};

/// The largest desired-state document read.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

const KMS: &str = "amiDistributionConfiguration.kmsKeyId";
const LAUNCH_TEMPLATES: &str = "launchTemplateConfigurations";
const LICENSES: &str = "licenseConfigurationArns";
const FAST_LAUNCH_TEMPLATE: &str = "fastLaunchConfigurations[].launchTemplate";

impl Distribution for SdkDistribution {
    fn region(&self) -> &str {
        &self.region
    }

    fn copy_for(&self, region: &str, o: &Overrides) -> Copied<Self> {
        let mut d = self.clone();
        d.region = region.to_string();
        let (mut dropped, mut overridden) = (Vec::new(), Vec::new());
        match (&o.kms_key_id, d.ami_distribution_configuration.as_mut()) {
            (Some(kms), Some(ami)) => {
                ami.kms_key_id = Some(kms.clone());
                overridden.push(KMS);
            }
            (Some(kms), None) => {
                d.ami_distribution_configuration =
                    Some(AmiDistributionConfiguration::builder().kms_key_id(kms).build());
                overridden.push(KMS);
            }
            (None, Some(ami)) if ami.kms_key_id.is_some() => {
                ami.kms_key_id = None;
                dropped.push(KMS);
            }
            _ => {}
        }
        match &o.launch_template_configurations {
            Some(templates) => {
                // Validated earlier: every id is present, so no entry can fail to build.
                d.launch_template_configurations = Some(
                    templates
                        .iter()
                        .filter_map(|t| {
                            LaunchTemplateConfiguration::builder()
                                .launch_template_id(&t.launch_template_id)
                                .set_account_id(t.account_id.clone())
                                .set_set_default_version(t.set_default_version)
                                .build()
                                .ok()
                        })
                        .collect(),
                );
                overridden.push(LAUNCH_TEMPLATES);
            }
            None if d.launch_template_configurations.is_some() => {
                d.launch_template_configurations = None;
                dropped.push(LAUNCH_TEMPLATES);
            }
            None => {}
        }
        match &o.license_configuration_arns {
            Some(arns) => {
                d.license_configuration_arns = Some(arns.clone());
                overridden.push(LICENSES);
            }
            None if d.license_configuration_arns.is_some() => {
                d.license_configuration_arns = None;
                dropped.push(LICENSES);
            }
            None => {}
        }
        if let Some(configs) = d.fast_launch_configurations.as_mut() {
            let mut touched = (false, false);
            for c in configs.iter_mut() {
                match &o.fast_launch_template {
                    Some(t) => {
                        c.launch_template = Some(
                            FastLaunchLaunchTemplateSpecification::builder()
                                .set_launch_template_id(t.launch_template_id.clone())
                                .set_launch_template_name(t.launch_template_name.clone())
                                .set_launch_template_version(t.launch_template_version.clone())
                                .build(),
                        );
                        touched.1 = true;
                    }
                    None if c.launch_template.is_some() => {
                        c.launch_template = None;
                        touched.0 = true;
                    }
                    None => {}
                }
            }
            if touched.0 {
                dropped.push(FAST_LAUNCH_TEMPLATE);
            }
            if touched.1 {
                overridden.push(FAST_LAUNCH_TEMPLATE);
            }
        }
        Copied { distribution: d, dropped, overridden }
    }
}

/// A configuration as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Current {
    pub description: Option<String>,
    pub distributions: Vec<SdkDistribution>,
    /// When it was last updated: tells one state from the same state written again since.
    pub date_updated: Option<String>,
}

pub async fn get(client: &Client, arn: &str) -> Result<Current, Error> {
    let out = client
        .get_distribution_configuration()
        .distribution_configuration_arn(arn)
        .send()
        .await
        .map_err(|e| AwsError::new(arn, "GetDistributionConfiguration", &e))?;
    let config = out.distribution_configuration.ok_or(Error::UnexpectedResponse {
        operation: "GetDistributionConfiguration",
        missing: "distributionConfiguration",
    })?;
    Ok(Current {
        description: config.description,
        distributions: config.distributions.unwrap_or_default(),
        date_updated: config.date_updated,
    })
}

/// Replaces the distributions; the description is sent as read, since an update without one removes it.
pub async fn update(
    client: &Client,
    arn: &str,
    description: Option<&str>,
    distributions: Vec<SdkDistribution>,
    token: &str,
    _: &Permit,
) -> Result<(), Error> {
    client
        .update_distribution_configuration()
        .distribution_configuration_arn(arn)
        .set_description(description.map(String::from))
        .set_distributions(Some(distributions))
        .client_token(token)
        .send()
        .await
        .map_err(|e| AwsError::new(arn, "UpdateDistributionConfiguration", &e))?;
    Ok(())
}

/// A fingerprint of a distributions array that does not depend on the order of map entries: `amiTags`, the one map
/// in a distribution, is a HashMap whose iteration order differs between maps and processes, so its entries are
/// hashed sorted, beside the rest of each distribution's Debug form. It feeds the client token (a Lambda retry in
/// another process must derive the same one) and tells whether the configuration moved between read and write.
/// Structure is kept: sorting the lines of the whole Debug form, as an earlier version did, made two regions that
/// swap a member look unchanged, so a console edit in the window was overwritten.
pub fn fingerprint(distributions: &[SdkDistribution]) -> String {
    let mut text = String::new();
    for distribution in distributions {
        let mut distribution = distribution.clone();
        let tags: Option<BTreeMap<String, String>> = distribution
            .ami_distribution_configuration
            .as_mut()
            .and_then(|ami| ami.ami_tags.take())
            .map(|tags| tags.into_iter().collect());
        text.push_str(&format!("{distribution:?}\namiTags: {tags:?}\n"));
    }
    shared::hash::sha256_hex(text.as_bytes())
}

/// The current version of an S3 object (`None` in an unversioned bucket).
pub async fn current_version(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Option<String>, Error> {
    Ok(shared::s3::current_version(s3, bucket, key).await?)
}

/// The regions of a distributions array, in order: what an update changes, and what a read-back confirms.
pub fn regions(distributions: &[SdkDistribution]) -> Vec<String> {
    distributions.iter().map(|d| d.region.clone()).collect()
}

/// Reads and parses a desired-state document (that version, when given, else the current one), refusing anything
/// over [`MAX_DOCUMENT_BYTES`]; with the version id read, which pins "the current document" for the checks made
/// under the lease.
pub async fn read_document(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Result<(DesiredState, Option<String>), Error> {
    let (bytes, read) = shared::s3::read_bounded_version(s3, bucket, key, version, MAX_DOCUMENT_BYTES).await?;
    let document = serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(&bytes))
        .map_err(|e| InvalidInput::new(format!("s3://{bucket}/{key} at `{}`", e.path()), e.inner().to_string()))?;
    Ok((document, read.or_else(|| version.map(String::from))))
}

#[cfg(test)]
mod tests {
    use aws_sdk_imagebuilder::types::*;

    use super::{FAST_LAUNCH_TEMPLATE, KMS, LAUNCH_TEMPLATES, LICENSES, fingerprint};
    use crate::config::{FastLaunchTemplate, LaunchTemplate, Overrides};
    use crate::plan::Distribution as _;

    /// The top-level member names of a struct's Debug output (`Name { a: None, b: None }` → `[a, b]`).
    fn members(debug: &str) -> Vec<String> {
        let inner = debug.split_once(" { ").map(|(_, rest)| rest.trim_end_matches(" }")).unwrap_or_default();
        inner.split(", ").filter_map(|field| field.split_once(':').map(|(name, _)| name.trim().to_string())).collect()
    }

    #[test]
    fn given_the_pinned_sdk_when_its_members_are_listed_then_each_is_classified() {
        // Every member is either copied to a new region as it is, or region-bound and handled in copy_for. A member
        // added by a newer SDK makes this fail until it is classified (and, if region-bound, handled).
        let distribution = members(&format!("{:?}", Distribution::builder().region("r").build().unwrap()));
        let copied = [
            "region",
            "ami_distribution_configuration",
            "container_distribution_configuration",
            "s3_export_configuration",
            "fast_launch_configurations",
            "ssm_parameter_configurations",
        ];
        let region_bound = ["license_configuration_arns", "launch_template_configurations"];
        let mut known: Vec<&str> = copied.iter().chain(region_bound.iter()).copied().collect();
        known.sort_unstable();
        let mut found: Vec<&str> = distribution.iter().map(String::as_str).collect();
        found.sort_unstable();
        assert_eq!(found, known, "Distribution's members changed: classify the new ones");
        let mut ami = members(&format!("{:?}", AmiDistributionConfiguration::builder().build()));
        ami.sort();
        assert_eq!(
            ami,
            vec!["ami_tags", "description", "kms_key_id", "launch_permission", "name", "target_account_ids"],
            "kms_key_id is region-bound; the rest is copied"
        );
        let mut fast = members(&format!("{:?}", FastLaunchConfiguration::builder().enabled(true).build()));
        fast.sort();
        assert_eq!(
            fast,
            vec!["account_id", "enabled", "launch_template", "max_parallel_launches", "snapshot_configuration"],
            "launch_template is region-bound; the rest is copied"
        );
    }

    #[test]
    fn given_the_pinned_sdk_when_the_nested_members_are_listed_then_each_is_known_and_copied_whole() {
        // These nested structures name nothing regional that keeper could know to replace: they are copied whole to
        // a new region. A member added by a newer SDK fails here until someone decides whether it is region-bound.
        let sorted = |debug: String| {
            let mut m = members(&debug);
            m.sort();
            m
        };
        let permission = sorted(format!("{:?}", LaunchPermissionConfiguration::builder().build()));
        assert_eq!(permission, ["organization_arns", "organizational_unit_arns", "user_groups", "user_ids"]);
        let container = sorted(format!("{:?}", ContainerDistributionConfiguration::builder().build()));
        assert_eq!(container, ["container_tags", "description", "target_repository"]);
        let repository = TargetContainerRepository::builder()
            .service(ContainerRepositoryService::Ecr)
            .repository_name("web")
            .build()
            .unwrap();
        assert_eq!(sorted(format!("{repository:?}")), ["repository_name", "service"]);
        let export = S3ExportConfiguration::builder()
            .role_name("vmimport")
            .disk_image_format(DiskImageFormat::Raw)
            .s3_bucket("exports")
            .build()
            .unwrap();
        assert_eq!(sorted(format!("{export:?}")), ["disk_image_format", "role_name", "s3_bucket", "s3_prefix"]);
        let ssm = SsmParameterConfiguration::builder().parameter_name("/golden/web").build().unwrap();
        assert_eq!(sorted(format!("{ssm:?}")), ["ami_account_id", "data_type", "parameter_name"]);
        let snapshot = FastLaunchSnapshotConfiguration::builder().build();
        assert_eq!(sorted(format!("{snapshot:?}")), ["target_resource_count"]);
        let template = FastLaunchLaunchTemplateSpecification::builder().build();
        assert_eq!(
            sorted(format!("{template:?}")),
            ["launch_template_id", "launch_template_name", "launch_template_version"],
            "the region-bound launch template of a fast-launch configuration, replaced by fastLaunchTemplate"
        );
        // AND copying keeps each of them whole
        let template = maximal("us-east-1");
        let copied = template.copy_for("eu-west-2", &Overrides::default()).distribution;
        assert_eq!(copied.container_distribution_configuration, template.container_distribution_configuration);
        assert_eq!(copied.s3_export_configuration, template.s3_export_configuration);
        assert_eq!(copied.ssm_parameter_configurations, template.ssm_parameter_configurations);
        let permission =
            |d: &Distribution| d.ami_distribution_configuration.as_ref().and_then(|a| a.launch_permission.clone());
        assert_eq!(permission(&copied), permission(&template));
        assert!(permission(&copied).is_some_and(|p| p.user_ids == Some(vec!["111122223333".into()])));
    }

    fn maximal(region: &str) -> Distribution {
        Distribution::builder()
            .region(region)
            .ami_distribution_configuration(
                AmiDistributionConfiguration::builder()
                    .name("web-{{ imagebuilder:buildDate }}")
                    .description("golden")
                    .target_account_ids("210987654321")
                    .ami_tags("team", "web")
                    .kms_key_id("arn:aws:kms:us-east-1:123456789012:key/k")
                    .launch_permission(LaunchPermissionConfiguration::builder().user_ids("111122223333").build())
                    .build(),
            )
            .container_distribution_configuration(
                ContainerDistributionConfiguration::builder()
                    .target_repository(TargetContainerRepository::builder().service(ContainerRepositoryService::Ecr).repository_name("web").build().unwrap())
                    .build(),
            )
            .license_configuration_arns("arn:aws:license-manager:us-east-1:123456789012:license-configuration:lic-0123456789abcdef0123456789abcdef")
            .launch_template_configurations(LaunchTemplateConfiguration::builder().launch_template_id("lt-0123456789abcdef0").build().unwrap())
            .s3_export_configuration(S3ExportConfiguration::builder().role_name("vmimport").disk_image_format(DiskImageFormat::Raw).s3_bucket("exports").build().unwrap())
            .fast_launch_configurations(
                FastLaunchConfiguration::builder()
                    .enabled(true)
                    .max_parallel_launches(6)
                    .launch_template(FastLaunchLaunchTemplateSpecification::builder().launch_template_id("lt-0123456789abcdef0").build())
                    .build(),
            )
            .ssm_parameter_configurations(SsmParameterConfiguration::builder().parameter_name("/golden/web").build().unwrap())
            .build()
            .unwrap()
    }

    #[test]
    fn given_template_with_every_member_when_copied_without_overrides_then_region_bound_members_dropped_and_the_rest_identical()
     {
        let template = maximal("us-east-1");
        let copied = template.copy_for("eu-west-2", &Overrides::default());
        let d = &copied.distribution;
        assert_eq!(d.region, "eu-west-2");
        assert_eq!(copied.dropped, vec![KMS, LAUNCH_TEMPLATES, LICENSES, FAST_LAUNCH_TEMPLATE]);
        assert!(copied.overridden.is_empty());
        assert_eq!(d.ami_distribution_configuration.as_ref().unwrap().kms_key_id, None);
        assert_eq!(d.launch_template_configurations, None);
        assert_eq!(d.license_configuration_arns, None);
        assert_eq!(d.fast_launch_configurations.as_ref().unwrap()[0].launch_template, None);
        // Put the region-bound members back: the copy equals the template member for member.
        let mut restored = d.clone();
        restored.region = template.region.clone();
        restored.ami_distribution_configuration.as_mut().unwrap().kms_key_id =
            template.ami_distribution_configuration.as_ref().unwrap().kms_key_id.clone();
        restored.launch_template_configurations = template.launch_template_configurations.clone();
        restored.license_configuration_arns = template.license_configuration_arns.clone();
        restored.fast_launch_configurations.as_mut().unwrap()[0].launch_template =
            template.fast_launch_configurations.as_ref().unwrap()[0].launch_template.clone();
        assert_eq!(restored, template);
    }

    #[test]
    fn given_overrides_when_copied_then_region_bound_members_come_from_them() {
        let overrides = Overrides {
            kms_key_id: Some("arn:aws:kms:eu-west-2:123456789012:key/k2".into()),
            launch_template_configurations: Some(vec![LaunchTemplate { launch_template_id: "lt-0fedcba9876543210".into(), account_id: None, set_default_version: Some(true) }]),
            license_configuration_arns: Some(vec!["arn:aws:license-manager:eu-west-2:123456789012:license-configuration:lic-ffffffffffffffffffffffffffffffff".into()]),
            fast_launch_template: Some(FastLaunchTemplate { launch_template_id: Some("lt-0fedcba9876543210".into()), launch_template_name: None, launch_template_version: Some("4".into()) }),
        };
        let copied = maximal("us-east-1").copy_for("eu-west-2", &overrides);
        assert!(copied.dropped.is_empty());
        assert_eq!(copied.overridden, vec![KMS, LAUNCH_TEMPLATES, LICENSES, FAST_LAUNCH_TEMPLATE]);
        let d = copied.distribution;
        assert_eq!(
            d.ami_distribution_configuration.unwrap().kms_key_id.as_deref(),
            Some("arn:aws:kms:eu-west-2:123456789012:key/k2")
        );
        assert_eq!(d.launch_template_configurations.unwrap()[0].launch_template_id, "lt-0fedcba9876543210");
        assert_eq!(
            d.fast_launch_configurations.unwrap()[0]
                .launch_template
                .as_ref()
                .unwrap()
                .launch_template_version
                .as_deref(),
            Some("4")
        );
    }

    #[test]
    fn given_template_without_region_bound_members_when_copied_then_nothing_dropped() {
        let plain = Distribution::builder()
            .region("us-east-1")
            .ami_distribution_configuration(
                AmiDistributionConfiguration::builder().name("x-{{ imagebuilder:buildDate }}").build(),
            )
            .build()
            .unwrap();
        let copied = plain.copy_for("eu-west-1", &Overrides::default());
        assert!(copied.dropped.is_empty());
        assert_eq!(copied.distribution.ami_distribution_configuration, plain.ami_distribution_configuration);
    }

    #[test]
    fn given_the_same_array_when_fingerprinted_then_equal_and_a_change_differs() {
        let a = vec![maximal("us-east-1"), maximal("eu-west-1")];
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        let mut b = a.clone();
        b[1].region = "eu-west-2".into();
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }

    fn with_tags(region: &str, tags: &[(String, String)]) -> Distribution {
        let mut d = maximal(region);
        let ami = d.ami_distribution_configuration.as_mut().expect("maximal has one");
        ami.ami_tags = Some(tags.iter().cloned().collect());
        d
    }

    #[test]
    fn given_many_tags_inserted_in_other_orders_when_fingerprinted_then_equal() {
        // GIVEN 40 tags, inserted forwards and backwards into maps whose iteration order is random per map
        let tags: Vec<(String, String)> = (0..40).map(|i| (format!("tag-{i:02}"), format!("value-{i}"))).collect();
        let reversed: Vec<(String, String)> = tags.iter().rev().cloned().collect();
        let a = vec![with_tags("us-east-1", &tags)];
        let b = vec![with_tags("us-east-1", &reversed)];
        // THEN the fingerprint (which feeds the client token a retry in another process must derive again) is equal
        assert_eq!(fingerprint(&a), fingerprint(&b));
        // AND a tag's value changed is a different array
        let mut changed = tags.clone();
        changed[7].1 = "other".into();
        assert_ne!(fingerprint(&a), fingerprint(&[with_tags("us-east-1", &changed)]));
    }

    #[test]
    fn given_two_regions_that_swap_a_member_when_fingerprinted_then_different() {
        // GIVEN us-east-1 and eu-west-1 with different KMS keys, and the same two with the keys swapped: a console
        // edit the re-read before the update must notice, and a different update that must not share a token
        let key = |n: &str| format!("arn:aws:kms:us-east-1:123456789012:key/{n}");
        let set = |d: &mut Distribution, k: String| {
            d.ami_distribution_configuration.as_mut().expect("maximal has one").kms_key_id = Some(k);
        };
        let (mut a1, mut a2) = (maximal("us-east-1"), maximal("eu-west-1"));
        set(&mut a1, key("one"));
        set(&mut a2, key("two"));
        let (mut b1, mut b2) = (maximal("us-east-1"), maximal("eu-west-1"));
        set(&mut b1, key("two"));
        set(&mut b2, key("one"));
        assert_ne!(fingerprint(&[a1, a2]), fingerprint(&[b1, b2]));
    }
}
