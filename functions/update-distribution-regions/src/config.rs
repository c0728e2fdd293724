//! The request (by hand, by SNS, or one entry of a desired-state document), the settings, and the validated
//! [`Change`] they become before any AWS call.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;
use shared::config::{ConfigError, FromLookup, Lookup};
use shared::error::InvalidInput;
use shared::trigger;

/// Region-bound values for a region being added: an id from the template's region must never be copied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Overrides {
    pub kms_key_id: Option<String>,
    pub launch_template_configurations: Option<Vec<LaunchTemplate>>,
    pub license_configuration_arns: Option<Vec<String>>,
    /// The launch template of every fast-launch configuration in the copy.
    pub fast_launch_template: Option<FastLaunchTemplate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LaunchTemplate {
    pub launch_template_id: String,
    pub account_id: Option<String>,
    pub set_default_version: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FastLaunchTemplate {
    pub launch_template_id: Option<String>,
    pub launch_template_name: Option<String>,
    pub launch_template_version: Option<String>,
}

/// What a caller may send by hand or by SNS.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Request {
    /// Required, except in a schedule's input, where its absence means "reconcile from DESIRED_STATE_S3_URI".
    pub distribution_configuration_arn: Option<String>,
    pub add_regions: Option<Vec<String>>,
    pub remove_regions: Option<Vec<String>>,
    pub set_regions: Option<Vec<String>>,
    pub template_region: Option<String>,
    pub region_overrides: Option<BTreeMap<String, Overrides>>,
    pub dry_run: Option<bool>,
}

impl trigger::Request for Request {}

/// The desired-state document (S3): each listed configuration is reconciled to exactly its regions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DesiredState {
    pub distribution_configurations: Vec<Desired>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Desired {
    pub arn: String,
    pub regions: Vec<String>,
    pub template_region: Option<String>,
    pub region_overrides: Option<BTreeMap<String, Overrides>>,
}

impl From<Desired> for Request {
    fn from(d: Desired) -> Request {
        Request {
            distribution_configuration_arn: Some(d.arn),
            set_regions: Some(d.regions),
            template_region: d.template_region,
            region_overrides: d.region_overrides,
            ..Request::default()
        }
    }
}

/// The function's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `DESIRED_STATE_S3_URI` (`s3://bucket/key`): the document a schedule reconciles to.
    pub desired_state: Option<(String, String)>,
    /// `DISTRIBUTION_CONFIGURATION_ARNS`: the configurations this function may change, and no other (empty: none).
    /// Whoever can send a request borrows the function's grants; this is the operator's bound on them.
    pub allowed: Vec<String>,
}

impl FromLookup for Settings {
    fn from_lookup(lookup: &Lookup<'_>) -> Result<Settings, ConfigError> {
        let desired_state = match lookup.string("DESIRED_STATE_S3_URI") {
            None => None,
            Some(uri) => Some(shared::s3::parse_uri(&uri).ok_or_else(|| ConfigError {
                name: "DESIRED_STATE_S3_URI".into(),
                problem: format!("`{uri}` is not an S3 URI"),
                accepted: "s3://bucket/key".into(),
            })?),
        };
        let allowed = lookup.list("DISTRIBUTION_CONFIGURATION_ARNS");
        if let Some(bad) = allowed.iter().find(|a| !ARN.is_match(a)) {
            return Err(ConfigError {
                name: "DISTRIBUTION_CONFIGURATION_ARNS".into(),
                problem: format!("`{bad}` is not a distribution configuration ARN"),
                accepted: "comma-separated arn:aws:imagebuilder:<region>:<account>:distribution-configuration/<name>"
                    .into(),
            });
        }
        Ok(Settings { desired_state, allowed })
    }
}

impl Settings {
    /// Whether the settings let this function change `change`'s configuration: a request, an SNS message or a
    /// document entry outside `DISTRIBUTION_CONFIGURATION_ARNS` is refused before any call.
    pub fn admits(&self, change: &Change) -> Result<(), InvalidInput> {
        if self.allowed.contains(&change.arn) {
            return Ok(());
        }
        let allowed = if self.allowed.is_empty() { "none: it is empty".to_string() } else { self.allowed.join(", ") };
        Err(invalid(
            "distributionConfigurationArn",
            format!(
                "`{}` is not in DISTRIBUTION_CONFIGURATION_ARNS ({allowed}): the function changes only the configurations its settings name",
                change.arn
            ),
        ))
    }
}

/// Which regions the configuration should end with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Regions {
    AddRemove { add: Vec<String>, remove: Vec<String> },
    Set(Vec<String>),
}

/// One validated change of one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub arn: String,
    /// The region in the ARN.
    pub arn_region: String,
    pub regions: Regions,
    pub template_region: Option<String>,
    pub overrides: BTreeMap<String, Overrides>,
}

static ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:aws[^:]*:imagebuilder:([^:]+):([0-9]{12}|aws):distribution-configuration/[a-z0-9-_]+$")
        .expect("valid pattern")
});
static LAUNCH_TEMPLATE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^lt-[a-z0-9-_]{17}$").expect("valid pattern"));
static LICENSE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:aws[^:]*:license-manager:[^:]+:[0-9]{12}:license-configuration:lic-[a-z0-9-_]{32}$")
        .expect("valid pattern")
});
static ACCOUNT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[0-9]{12}$").expect("valid pattern"));

fn invalid(field: impl Into<String>, rule: impl Into<String>) -> InvalidInput {
    InvalidInput::new(field, rule)
}

/// Known, not repeated.
fn check_regions(field: &str, regions: &[String]) -> Result<(), InvalidInput> {
    for (i, region) in regions.iter().enumerate() {
        shared::regions::check(region).map_err(|e| invalid(format!("{field}[{i}]"), e.to_string()))?;
        if regions[..i].contains(region) {
            return Err(invalid(format!("{field}[{i}]"), format!("`{region}` is listed twice")));
        }
    }
    Ok(())
}

/// A KMS key or alias ARN: its region and account.
static KMS_ARN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^arn:aws[^:]*:kms:([^:]*):([^:]*):(?:key|alias)/.+$").expect("valid pattern"));

fn check_overrides(region: &str, account: &str, o: &Overrides) -> Result<(), InvalidInput> {
    let field = |name: &str| format!("regionOverrides.{region}.{name}");
    if let Some(kms) = &o.kms_key_id {
        if kms.is_empty() || kms.len() > 1024 {
            return Err(invalid(field("kmsKeyId"), "must be 1 to 1024 characters"));
        }
        // A key is regional: one of another region cannot encrypt this region's AMIs, and one of another account
        // hands the AMIs' encryption to that account. A bare key id or alias is resolved in the region itself.
        if let Some(c) = KMS_ARN.captures(kms) {
            if &c[1] != region {
                return Err(invalid(field("kmsKeyId"), format!("`{kms}` is a key of {}, not of {region}", &c[1])));
            }
            if &c[2] != account {
                return Err(invalid(
                    field("kmsKeyId"),
                    format!("`{kms}` belongs to account {}, not to the configuration's account {account}", &c[2]),
                ));
            }
        } else if kms.starts_with("arn:") {
            return Err(invalid(field("kmsKeyId"), format!("`{kms}` is not a KMS key or alias ARN")));
        }
    }
    if let Some(templates) = &o.launch_template_configurations {
        if templates.is_empty() || templates.len() > 100 {
            return Err(invalid(field("launchTemplateConfigurations"), "must have 1 to 100 entries"));
        }
        for (i, t) in templates.iter().enumerate() {
            if !LAUNCH_TEMPLATE.is_match(&t.launch_template_id) {
                return Err(invalid(
                    field(&format!("launchTemplateConfigurations[{i}].launchTemplateId")),
                    format!("`{}` does not match {}", t.launch_template_id, LAUNCH_TEMPLATE.as_str()),
                ));
            }
            if let Some(account) = &t.account_id
                && !ACCOUNT.is_match(account)
            {
                return Err(invalid(
                    field(&format!("launchTemplateConfigurations[{i}].accountId")),
                    "must be a 12-digit account id",
                ));
            }
        }
    }
    if let Some(arns) = &o.license_configuration_arns {
        if arns.is_empty() || arns.len() > 50 {
            return Err(invalid(field("licenseConfigurationArns"), "must have 1 to 50 entries"));
        }
        for (i, arn) in arns.iter().enumerate() {
            if !LICENSE.is_match(arn) {
                return Err(invalid(
                    field(&format!("licenseConfigurationArns[{i}]")),
                    "is not a license configuration ARN",
                ));
            }
            if !arn.contains(&format!(":{region}:")) {
                return Err(invalid(field(&format!("licenseConfigurationArns[{i}]")), format!("is not in {region}")));
            }
        }
    }
    if let Some(t) = &o.fast_launch_template
        && let Some(id) = &t.launch_template_id
        && !LAUNCH_TEMPLATE.is_match(id)
    {
        return Err(invalid(
            field("fastLaunchTemplate.launchTemplateId"),
            format!("`{id}` does not match {}", LAUNCH_TEMPLATE.as_str()),
        ));
    }
    Ok(())
}

impl Change {
    /// Validates a request completely; nothing is called before this succeeds.
    pub fn new(request: Request) -> Result<Change, InvalidInput> {
        let arn = request
            .distribution_configuration_arn
            .ok_or_else(|| invalid("distributionConfigurationArn", "is required"))?;
        let captures = ARN.captures(&arn).ok_or_else(|| {
            invalid("distributionConfigurationArn", format!("`{arn}` does not match {}", ARN.as_str()))
        })?;
        let (arn_region, account) = (captures[1].to_string(), captures[2].to_string());
        let regions = match (request.set_regions, request.add_regions, request.remove_regions) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(invalid("setRegions", "cannot be combined with addRegions or removeRegions"));
            }
            (Some(set), None, None) => {
                if set.is_empty() {
                    return Err(invalid("setRegions", "must keep at least one region"));
                }
                check_regions("setRegions", &set)?;
                Regions::Set(set)
            }
            (None, add, remove) => {
                let (add, remove) = (add.unwrap_or_default(), remove.unwrap_or_default());
                if add.is_empty() && remove.is_empty() {
                    return Err(invalid("addRegions", "addRegions, removeRegions or setRegions must name a region"));
                }
                check_regions("addRegions", &add)?;
                check_regions("removeRegions", &remove)?;
                if let Some(both) = add.iter().find(|r| remove.contains(r)) {
                    return Err(invalid("removeRegions", format!("`{both}` is also in addRegions")));
                }
                Regions::AddRemove { add, remove }
            }
        };
        if let Some(template) = &request.template_region {
            shared::regions::check(template).map_err(|e| invalid("templateRegion", e.to_string()))?;
        }
        let overrides = request.region_overrides.unwrap_or_default();
        let added: &[String] = match &regions {
            Regions::AddRemove { add, .. } => add,
            Regions::Set(set) => set,
        };
        for (region, o) in &overrides {
            shared::regions::check(region).map_err(|e| invalid(format!("regionOverrides.{region}"), e.to_string()))?;
            if !added.contains(region) {
                return Err(invalid(format!("regionOverrides.{region}"), "names a region that is not being added"));
            }
            check_overrides(region, &account, o)?;
        }
        Ok(Change { arn, arn_region, regions, template_region: request.template_region, overrides })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:imagebuilder:us-east-1:123456789012:distribution-configuration/web-golden";

    fn request(json: serde_json::Value) -> Request {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn given_add_and_remove_when_validated_then_change_with_the_arn_region() {
        let change = Change::new(request(serde_json::json!({"distributionConfigurationArn": ARN, "addRegions": ["eu-west-2"], "removeRegions": ["ap-south-1"]}))).unwrap();
        assert_eq!(change.arn_region, "us-east-1");
        assert_eq!(
            change.regions,
            Regions::AddRemove { add: vec!["eu-west-2".into()], remove: vec!["ap-south-1".into()] }
        );
    }

    #[test]
    fn given_invalid_requests_when_validated_then_error_names_field_and_rule() {
        let cases = [
            (
                serde_json::json!({"distributionConfigurationArn": "arn:aws:imagebuilder:us-east-1:123:distribution-configuration/x", "addRegions": ["eu-west-2"]}),
                "distributionConfigurationArn",
                "does not match",
            ),
            (
                serde_json::json!({"distributionConfigurationArn": ARN, "addRegions": ["eu-wst-1"]}),
                "addRegions[0]",
                "did you mean eu-west-1?",
            ),
            (
                serde_json::json!({"distributionConfigurationArn": ARN, "addRegions": ["eu-west-2", "eu-west-2"]}),
                "addRegions[1]",
                "listed twice",
            ),
            (
                serde_json::json!({"distributionConfigurationArn": ARN, "addRegions": ["eu-west-2"], "removeRegions": ["eu-west-2"]}),
                "removeRegions",
                "also in addRegions",
            ),
            (
                serde_json::json!({"distributionConfigurationArn": ARN, "setRegions": ["eu-west-2"], "addRegions": ["eu-west-1"]}),
                "setRegions",
                "cannot be combined",
            ),
            (
                serde_json::json!({"distributionConfigurationArn": ARN, "setRegions": []}),
                "setRegions",
                "at least one region",
            ),
            (serde_json::json!({"distributionConfigurationArn": ARN}), "addRegions", "must name a region"),
            (serde_json::json!({"addRegions": ["eu-west-2"]}), "distributionConfigurationArn", "is required"),
            (
                serde_json::json!({"distributionConfigurationArn": ARN, "addRegions": ["eu-west-2"], "templateRegion": "us-est-1"}),
                "templateRegion",
                "did you mean us-east-1?",
            ),
            (
                serde_json::json!({"distributionConfigurationArn": ARN, "addRegions": ["eu-west-2"], "regionOverrides": {"eu-west-3": {"kmsKeyId": "k"}}}),
                "regionOverrides.eu-west-3",
                "not being added",
            ),
            (
                serde_json::json!({"distributionConfigurationArn": ARN, "addRegions": ["eu-west-2"], "regionOverrides": {"eu-west-2": {"launchTemplateConfigurations": [{"launchTemplateId": "lt-1"}]}}}),
                "regionOverrides.eu-west-2.launchTemplateConfigurations[0].launchTemplateId",
                "does not match",
            ),
            (
                serde_json::json!({"distributionConfigurationArn": ARN, "addRegions": ["eu-west-2"], "regionOverrides": {"eu-west-2": {"licenseConfigurationArns": ["arn:aws:license-manager:us-east-1:123456789012:license-configuration:lic-0123456789abcdef0123456789abcdef"]}}}),
                "regionOverrides.eu-west-2.licenseConfigurationArns[0]",
                "is not in eu-west-2",
            ),
        ];
        for (json, field, rule) in cases {
            let err = Change::new(request(json)).unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(err.rule.contains(rule), "{err}");
        }
    }

    #[test]
    fn given_desired_state_entry_when_turned_into_a_request_then_set_regions() {
        let doc: DesiredState = serde_json::from_value(serde_json::json!({"distributionConfigurations": [{"arn": ARN, "regions": ["us-east-1", "eu-west-1"], "templateRegion": "us-east-1"}]})).unwrap();
        let change = Change::new(doc.distribution_configurations[0].clone().into()).unwrap();
        assert_eq!(change.regions, Regions::Set(vec!["us-east-1".into(), "eu-west-1".into()]));
        assert_eq!(change.template_region.as_deref(), Some("us-east-1"));
    }

    #[test]
    fn given_desired_state_setting_when_loaded_then_bucket_and_key_or_an_error_naming_it() {
        let c =
            Settings::from_lookup(&Lookup::from_pairs(&[("DESIRED_STATE_S3_URI", "s3://docs/desired/regions.json")]))
                .unwrap();
        assert_eq!(c.desired_state, Some(("docs".into(), "desired/regions.json".into())));
        let err = Settings::from_lookup(&Lookup::from_pairs(&[("DESIRED_STATE_S3_URI", "https://x")])).unwrap_err();
        assert_eq!(err.name, "DESIRED_STATE_S3_URI");
    }
}
