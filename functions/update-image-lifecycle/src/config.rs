//! The explicit request (every StartResourceStateUpdate field), the policy settings, and the Image Builder
//! notifications that trigger the policy; all validated before any AWS call.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;
use shared::config::{ConfigError, FromLookup, Lookup};
use shared::error::InvalidInput;
use shared::trigger;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A state keeper can set with StartResourceStateUpdate, in lifecycle order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Available,
    Deprecated,
    Disabled,
    Deleted,
}

impl Status {
    pub const ALL: [Status; 4] = [Status::Available, Status::Deprecated, Status::Disabled, Status::Deleted];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Available => "AVAILABLE",
            Status::Deprecated => "DEPRECATED",
            Status::Disabled => "DISABLED",
            Status::Deleted => "DELETED",
        }
    }

    pub fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IncludeResources {
    pub amis: Option<bool>,
    pub snapshots: Option<bool>,
    pub containers: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LastLaunched {
    pub unit: String,
    pub value: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AmiExclusions {
    #[serde(default)]
    pub is_public: bool,
    pub regions: Option<Vec<String>>,
    pub shared_accounts: Option<Vec<String>>,
    pub last_launched: Option<LastLaunched>,
    pub tag_map: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExclusionRules {
    pub amis: Option<AmiExclusions>,
}

/// An explicit update, or (empty, in a schedule's input) a sweep.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Request {
    pub resource_arn: Option<String>,
    pub state: Option<String>,
    /// RFC 3339 text or epoch seconds.
    pub update_at: Option<Value>,
    pub include_resources: Option<IncludeResources>,
    pub exclusion_rules: Option<ExclusionRules>,
    pub execution_role: Option<String>,
    pub dry_run: Option<bool>,
}

impl trigger::Request for Request {
    fn is_notification(document: &Value) -> bool {
        Notification::from_document(document).is_some()
    }

    /// One build reaching one status, however it is announced: the stack subscribes to both the EventBridge state
    /// change and the pipeline's SNS topic, and each build must be handled once.
    fn announces(document: &Value) -> Option<String> {
        Notification::from_document(document).map(|n| format!("imagebuilder:{}#{}", n.arn, n.status))
    }
}

/// A finished build announced by Image Builder: its SNS message, or the EventBridge "Image State Change" event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The build version ARN.
    pub arn: String,
    pub status: String,
}

impl Notification {
    /// Reads only the fields relied on: the ARN and the status. `semver` (larger than u64) and `dateCreated` (not
    /// ISO-8601) are never parsed.
    pub fn from_document(document: &Value) -> Option<Notification> {
        if document.get("source").and_then(Value::as_str) == Some("aws.imagebuilder") {
            if document.get("detail-type").and_then(Value::as_str) != Some("EC2 Image Builder Image State Change") {
                return None;
            }
            let arn = document
                .get("resources")?
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .find(|r| BUILD_ARN.is_match(r))?;
            let status = document.pointer("/detail/state/status")?.as_str()?;
            return Some(Notification { arn: arn.to_string(), status: status.to_string() });
        }
        document.get("versionlessArn")?;
        let arn = document.get("arn")?.as_str()?;
        let status = document.pointer("/state/status")?.as_str()?;
        BUILD_ARN.is_match(arn).then(|| Notification { arn: arn.to_string(), status: status.to_string() })
    }

    /// The image's name (from the ARN: `.../image/<name>/<version>/<build>`).
    pub fn image_name(&self) -> &str {
        self.arn.split(":image/").nth(1).and_then(|rest| rest.split('/').next()).unwrap_or_default()
    }
}

pub static BUILD_ARN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^arn:aws[^:]*:imagebuilder:([^:]+):(?:[0-9]{12}|aws):image/[a-z0-9-_]+/[0-9]+\.[0-9]+\.[0-9]+/[0-9]+$")
        .expect("valid pattern")
});
static ROLE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:arn:aws(?:-[a-z]+)*:iam::[0-9]{12}:role/)?[a-zA-Z_0-9+=,.@\-_/]+$").expect("valid pattern")
});
static ACCOUNT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^[0-9]{12}$").expect("valid pattern"));

/// The longest Lambda keeps retrying an asynchronous event (`MaximumEventAgeInSeconds`' upper bound): an `updateAt`
/// passed by less may be a retry of a request that was in the future when it was sent.
pub const MAX_EVENT_AGE_SECS: f64 = 6.0 * 3600.0;

/// One validated explicit update.
#[derive(Debug, Clone, PartialEq)]
pub struct Explicit {
    pub resource_arn: String,
    pub region: String,
    pub status: Status,
    pub update_at: Option<OffsetDateTime>,
    pub include_resources: Option<IncludeResources>,
    pub exclusion_rules: Option<ExclusionRules>,
    pub execution_role: Option<String>,
}

fn check_role(field: &str, role: &str) -> Result<(), InvalidInput> {
    if role.is_empty() || role.len() > 2048 || !ROLE.is_match(role) {
        return Err(InvalidInput::new(field, "must be a role name or ARN of 1 to 2048 characters"));
    }
    Ok(())
}

/// Epoch seconds or RFC 3339 text.
fn parse_update_at(value: &Value) -> Result<OffsetDateTime, InvalidInput> {
    match value {
        Value::Number(n) => n
            .as_f64()
            .and_then(|secs| OffsetDateTime::from_unix_timestamp_nanos((secs * 1e9) as i128).ok())
            .ok_or_else(|| InvalidInput::new("updateAt", "is not a number of seconds since the epoch")),
        Value::String(s) => OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
            InvalidInput::new("updateAt", format!("`{s}` is not RFC 3339 (2026-12-01T00:00:00Z) or epoch seconds"))
        }),
        _ => Err(InvalidInput::new("updateAt", "must be RFC 3339 text or epoch seconds")),
    }
}

impl Explicit {
    /// Applies the documented rules of StartResourceStateUpdate; `now` is epoch seconds.
    pub fn new(request: Request, now: f64) -> Result<Explicit, InvalidInput> {
        let arn = request.resource_arn.ok_or_else(|| InvalidInput::new("resourceArn", "is required"))?;
        let region =
            BUILD_ARN.captures(&arn).and_then(|c| c.get(1)).map(|m| m.as_str().to_string()).ok_or_else(|| {
                InvalidInput::new(
                    "resourceArn",
                    format!("`{arn}` is not an image build version ARN (…:image/<name>/<x.y.z>/<build>)"),
                )
            })?;
        let name = request.state.ok_or_else(|| InvalidInput::new("state", "is required"))?;
        let status = Status::parse(&name).ok_or_else(|| {
            let all: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
            InvalidInput::new("state", format!("`{name}` is not one of {}", all.join(", ")))
        })?;
        let mut update_at = request.update_at.as_ref().map(parse_update_at).transpose()?;
        if let Some(at) = update_at {
            if status != Status::Deprecated {
                return Err(InvalidInput::new("updateAt", "is only valid with state DEPRECATED"));
            }
            let late = now - (at.unix_timestamp_nanos() as f64) / 1e9;
            if late > MAX_EVENT_AGE_SECS {
                return Err(InvalidInput::new(
                    "updateAt",
                    "must be in the future (or at most 6 hours past: the longest Lambda retries an event)",
                ));
            }
            if late >= 0.0 {
                // Lambda's retry of a request that was throttled until its time passed: AWS refuses a past
                // updateAt, and what was asked for (deprecated from then on) is deprecated now.
                tracing::warn!(update_at = %at, late_secs = late as u64, "updateAt has passed: deprecating now");
                update_at = None;
            }
        }
        if status == Status::Deleted && request.include_resources.is_none() {
            return Err(InvalidInput::new(
                "includeResources",
                "is required with state DELETED (with executionRole): deleting a build deletes its resources",
            ));
        }
        if request.execution_role.is_some() != request.include_resources.is_some() {
            return Err(InvalidInput::new("executionRole", "and includeResources must be given together"));
        }
        if let Some(role) = &request.execution_role {
            check_role("executionRole", role)?;
        }
        let include = request.include_resources.clone().unwrap_or_default();
        if (include.snapshots == Some(true) || include.containers == Some(true)) && status != Status::Deleted {
            return Err(InvalidInput::new(
                "includeResources",
                "snapshots and containers are only valid with state DELETED",
            ));
        }
        if let Some(rules) = &request.exclusion_rules {
            if include.amis != Some(true) {
                return Err(InvalidInput::new("exclusionRules", "apply only when includeResources.amis is true"));
            }
            if let Some(amis) = &rules.amis {
                if let Some(last) = &amis.last_launched {
                    if !(1..=365).contains(&last.value) {
                        return Err(InvalidInput::new(
                            "exclusionRules.amis.lastLaunched.value",
                            format!("{} is not from 1 to 365", last.value),
                        ));
                    }
                    if !["DAYS", "WEEKS", "MONTHS", "YEARS"].contains(&last.unit.as_str()) {
                        return Err(InvalidInput::new(
                            "exclusionRules.amis.lastLaunched.unit",
                            format!("`{}` is not DAYS, WEEKS, MONTHS or YEARS", last.unit),
                        ));
                    }
                }
                if amis.tag_map.as_ref().is_some_and(|t| t.is_empty() || t.len() > 50) {
                    return Err(InvalidInput::new("exclusionRules.amis.tagMap", "must have 1 to 50 tags"));
                }
                for (i, account) in amis.shared_accounts.iter().flatten().enumerate() {
                    if !ACCOUNT.is_match(account) {
                        return Err(InvalidInput::new(
                            format!("exclusionRules.amis.sharedAccounts[{i}]"),
                            "must be a 12-digit account id",
                        ));
                    }
                }
                for (i, region) in amis.regions.iter().flatten().enumerate() {
                    shared::regions::check(region)
                        .map_err(|e| InvalidInput::new(format!("exclusionRules.amis.regions[{i}]"), e.to_string()))?;
                }
            }
        }
        Ok(Explicit {
            resource_arn: arn,
            region,
            status,
            update_at,
            include_resources: request.include_resources,
            exclusion_rules: request.exclusion_rules,
            execution_role: request.execution_role,
        })
    }
}

/// `1.x.x`: each part a number or a wildcard (`x` or `*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionFilter(Vec<Option<u64>>);

impl VersionFilter {
    pub fn parse(text: &str) -> Option<VersionFilter> {
        let parts: Option<Vec<Option<u64>>> = text
            .split('.')
            .map(|p| match p {
                "x" | "X" | "*" => Some(None),
                n => n.parse().ok().map(Some),
            })
            .collect();
        parts.filter(|p| p.len() == 3).map(VersionFilter)
    }

    pub fn matches(&self, version: &[u64]) -> bool {
        version.len() == self.0.len() && self.0.iter().zip(version).all(|(want, got)| want.is_none_or(|w| w == *got))
    }
}

/// The policy applied to an image's builds (settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `KEEP_AVAILABLE` (default 3): the newest AVAILABLE builds are left alone.
    pub keep_available: usize,
    pub deprecate_after_days: Option<u32>,
    pub disable_after_days: Option<u32>,
    /// Unset: never delete.
    pub delete_after_days: Option<u32>,
    pub execution_role: Option<String>,
    pub include_snapshots: bool,
    /// `EXCLUDE_TAGS` (`k=v,k=v`): a build carrying any of them is left alone.
    pub exclude_tags: BTreeMap<String, String>,
    pub version_filter: Option<VersionFilter>,
}

/// The function's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub policy: Policy,
    /// `MAX_CONCURRENCY` (default 2): Image Builder calls in flight (a sweep's build listings, then its updates).
    pub max_concurrency: usize,
    /// `REGIONS`: the regions a sweep of the account covers (default: the function's own region). A build
    /// notification is handled in its build's region whatever this says.
    pub regions: Vec<String>,
}

impl FromLookup for Settings {
    fn from_lookup(lookup: &Lookup<'_>) -> Result<Settings, ConfigError> {
        let days = |name: &str| -> Result<Option<u32>, ConfigError> {
            match lookup.string(name) {
                None => Ok(None),
                Some(_) => Ok(Some(lookup.number(name, 0u32, 0..=36_500)?)),
            }
        };
        let version_filter = match lookup.string("VERSION_FILTER") {
            None => None,
            Some(text) => Some(VersionFilter::parse(&text).ok_or_else(|| ConfigError {
                name: "VERSION_FILTER".into(),
                problem: format!("`{text}` is not a version pattern"),
                accepted: "three parts, each a number or x, e.g. 1.x.x".into(),
            })?),
        };
        let policy = Policy {
            keep_available: lookup.number("KEEP_AVAILABLE", 3usize, 0..=1000)?,
            deprecate_after_days: days("DEPRECATE_AFTER_DAYS")?,
            disable_after_days: days("DISABLE_AFTER_DAYS")?,
            delete_after_days: days("DELETE_AFTER_DAYS")?,
            execution_role: lookup.string("EXECUTION_ROLE"),
            include_snapshots: lookup.flag("INCLUDE_SNAPSHOTS", false)?,
            exclude_tags: lookup.pairs("EXCLUDE_TAGS")?,
            version_filter,
        };
        if policy.delete_after_days.is_some() && policy.execution_role.is_none() {
            return Err(ConfigError {
                name: "EXECUTION_ROLE".into(),
                problem: "is required when DELETE_AFTER_DAYS is set (deleting AMIs and snapshots needs a role)".into(),
                accepted: "an IAM role name or ARN that Image Builder can assume".into(),
            });
        }
        if let Some(role) = &policy.execution_role {
            check_role("EXECUTION_ROLE", role).map_err(|e| ConfigError {
                name: "EXECUTION_ROLE".into(),
                problem: e.to_string(),
                accepted: "a role name or ARN".into(),
            })?;
        }
        let regions = lookup.list("REGIONS");
        for region in &regions {
            shared::regions::check(region).map_err(|e| ConfigError {
                name: "REGIONS".into(),
                problem: e.to_string(),
                accepted: "comma-separated region codes, e.g. us-east-1,eu-west-1".into(),
            })?;
        }
        Ok(Settings { policy, max_concurrency: lookup.number("MAX_CONCURRENCY", 2usize, 1..=16)?, regions })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ARN: &str = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-golden/1.2.0/3";
    const NOW: f64 = 1_795_000_000.0;

    fn explicit(json: Value) -> Result<Explicit, InvalidInput> {
        Explicit::new(serde_json::from_value(json).unwrap(), NOW)
    }

    fn at(secs: i64) -> Option<OffsetDateTime> {
        Some(OffsetDateTime::from_unix_timestamp(secs).unwrap())
    }

    #[test]
    fn given_an_update_at_that_passed_while_lambda_retried_when_validated_again_then_it_deprecates_now_not_refused() {
        // GIVEN a request whose updateAt was 10 minutes ahead when it was sent, retried by Lambda 20 minutes later
        let at_secs = NOW as i64 - 600;
        let retried = explicit(json!({"resourceArn": ARN, "state": "DEPRECATED", "updateAt": at_secs}));
        // THEN it is still the same request: deprecated now, since the time asked for has come
        let retried = retried.expect("not Permanent.InvalidInput");
        assert_eq!((retried.status, retried.update_at), (Status::Deprecated, None));
        // AND a time further past than Lambda ever retries is a mistake, refused naming the field
        let old = explicit(json!({"resourceArn": ARN, "state": "DEPRECATED", "updateAt": NOW as i64 - 7 * 3600}));
        let e = old.unwrap_err();
        assert_eq!(e.field, "updateAt");
        assert!(e.to_string().contains("must be in the future"), "{e}");
    }

    #[test]
    fn given_valid_requests_when_validated_then_explicit_updates() {
        let e =
            explicit(json!({"resourceArn": ARN, "state": "DEPRECATED", "updateAt": "2026-12-01T00:00:00Z"})).unwrap();
        assert_eq!(e.region, "us-east-1");
        assert_eq!(e.update_at, at(1_796_083_200));
        assert_eq!(e.status, Status::Deprecated);
        let e = explicit(json!({"resourceArn": ARN, "state": "DEPRECATED", "updateAt": 1_796_083_200})).unwrap();
        assert_eq!(e.update_at, at(1_796_083_200));
        explicit(json!({"resourceArn": ARN, "state": "DELETED", "executionRole": "arn:aws:iam::123456789012:role/lifecycle",
            "includeResources": {"amis": true, "snapshots": true}, "exclusionRules": {"amis": {"isPublic": true, "lastLaunched": {"unit": "DAYS", "value": 30}}}})).unwrap();
        explicit(json!({"resourceArn": ARN, "state": "AVAILABLE"})).unwrap();
    }

    #[test]
    fn given_each_documented_rule_violated_when_validated_then_error_naming_it() {
        let role = "arn:aws:iam::123456789012:role/lifecycle";
        let cases = [
            (
                json!({"resourceArn": "arn:aws:imagebuilder:us-east-1:123456789012:image/web/1.2.0", "state": "DEPRECATED"}),
                "resourceArn",
                "not an image build version ARN",
            ),
            (
                json!({"resourceArn": ARN, "state": "ARCHIVED"}),
                "state",
                "not one of AVAILABLE, DEPRECATED, DISABLED, DELETED",
            ),
            (json!({"resourceArn": ARN}), "state", "is required"),
            (
                json!({"resourceArn": ARN, "state": "DISABLED", "updateAt": "2026-12-01T00:00:00Z"}),
                "updateAt",
                "only valid with state DEPRECATED",
            ),
            (
                json!({"resourceArn": ARN, "state": "DEPRECATED", "updateAt": "2020-01-01T00:00:00Z"}),
                "updateAt",
                "must be in the future",
            ),
            (json!({"resourceArn": ARN, "state": "DEPRECATED", "updateAt": "next week"}), "updateAt", "not RFC 3339"),
            (json!({"resourceArn": ARN, "state": "DELETED"}), "includeResources", "required with state DELETED"),
            (
                json!({"resourceArn": ARN, "state": "DELETED", "executionRole": role}),
                "includeResources",
                "required with state DELETED",
            ),
            (
                json!({"resourceArn": ARN, "state": "DEPRECATED", "executionRole": role}),
                "executionRole",
                "given together",
            ),
            (
                json!({"resourceArn": ARN, "state": "DELETED", "includeResources": {"amis": true}}),
                "executionRole",
                "given together",
            ),
            (
                json!({"resourceArn": ARN, "state": "DISABLED", "executionRole": role, "includeResources": {"snapshots": true}}),
                "includeResources",
                "only valid with state DELETED",
            ),
            (
                json!({"resourceArn": ARN, "state": "DELETED", "executionRole": role, "includeResources": {"snapshots": true}, "exclusionRules": {"amis": {}}}),
                "exclusionRules",
                "only when includeResources.amis",
            ),
            (
                json!({"resourceArn": ARN, "state": "DELETED", "executionRole": role, "includeResources": {"amis": true}, "exclusionRules": {"amis": {"lastLaunched": {"unit": "DAYS", "value": 400}}}}),
                "exclusionRules.amis.lastLaunched.value",
                "not from 1 to 365",
            ),
            (
                json!({"resourceArn": ARN, "state": "DELETED", "executionRole": role, "includeResources": {"amis": true}, "exclusionRules": {"amis": {"tagMap": {}}}}),
                "exclusionRules.amis.tagMap",
                "1 to 50",
            ),
        ];
        for (request, field, rule) in cases {
            let err = explicit(request.clone()).unwrap_err();
            assert_eq!(err.field, field, "{request}");
            assert!(err.rule.contains(rule), "{err}");
        }
    }

    #[test]
    fn given_notifications_as_aws_sends_them_when_read_then_arn_and_status_without_touching_semver() {
        let sns = json!({"versionlessArn": "arn:aws:imagebuilder:us-east-1:123456789012:image/web-golden", "semver": 1237940039285380274899124227u128 as f64,
            "arn": "arn:aws:imagebuilder:us-east-1:123456789012:image/web-golden/1.2.0/4", "name": "web-golden", "version": "1.2.0",
            "state": {"status": "AVAILABLE"}, "dateCreated": "Jul 28, 2022 1:13:45 AM"});
        let n = Notification::from_document(&sns).unwrap();
        assert_eq!(
            (n.arn.as_str(), n.status.as_str(), n.image_name()),
            ("arn:aws:imagebuilder:us-east-1:123456789012:image/web-golden/1.2.0/4", "AVAILABLE", "web-golden")
        );
        let event = json!({"version": "0", "id": "e", "detail-type": "EC2 Image Builder Image State Change", "source": "aws.imagebuilder",
            "resources": ["arn:aws:imagebuilder:us-east-1:123456789012:image/web-golden/1.2.0/4"], "detail": {"previous-state": {"status": "TESTING"}, "state": {"status": "FAILED"}}});
        assert_eq!(Notification::from_document(&event).unwrap().status, "FAILED");
        assert!(Notification::from_document(&json!({"resourceArn": ARN})).is_none(), "a request is not a notification");
    }

    #[test]
    fn given_version_patterns_when_parsed_then_wildcards_match() {
        let f = VersionFilter::parse("1.x.x").unwrap();
        assert!(f.matches(&[1, 2, 0]));
        assert!(!f.matches(&[2, 0, 0]));
        assert!(VersionFilter::parse("1.*.3").unwrap().matches(&[1, 9, 3]));
        assert!(VersionFilter::parse("1.x").is_none());
        assert!(VersionFilter::parse("a.b.c").is_none());
    }

    #[test]
    fn given_policy_settings_when_loaded_then_typed_or_an_error_naming_the_variable() {
        let c = Settings::from_lookup(&Lookup::from_pairs(&[
            ("DEPRECATE_AFTER_DAYS", "30"),
            ("VERSION_FILTER", "1.x.x"),
            ("EXCLUDE_TAGS", "keep=true"),
        ]))
        .unwrap();
        assert_eq!(c.policy.keep_available, 3);
        assert_eq!(c.policy.deprecate_after_days, Some(30));
        assert_eq!(c.policy.delete_after_days, None);
        assert_eq!(c.max_concurrency, 2);
        let err = Settings::from_lookup(&Lookup::from_pairs(&[("DELETE_AFTER_DAYS", "90")])).unwrap_err();
        assert_eq!(err.name, "EXECUTION_ROLE");
        let err = Settings::from_lookup(&Lookup::from_pairs(&[("VERSION_FILTER", "1.x")])).unwrap_err();
        assert_eq!(err.name, "VERSION_FILTER");
    }
}
