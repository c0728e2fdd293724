//! The request (by hand or SNS), the settings, and the validated [`Job`] per key group.

use serde::Deserialize;
use shared::config::{ConfigError, Lookup};
use shared::error::InvalidInput;
use shared::trigger;

use crate::plan::MAX_KEYS_PER_GROUP;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Request {
    pub key_group_id: Option<String>,
    pub add_public_key_ids: Option<Vec<String>>,
    pub add_public_key_pem: Option<String>,
    pub retire_public_key_ids: Option<Vec<String>>,
    pub max_keys: Option<usize>,
    pub grace_hours: Option<f64>,
    pub delete_retired_keys: Option<bool>,
    pub dry_run: Option<bool>,
}

impl trigger::Request for Request {}

/// The function's own settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `KEY_GROUP_IDS`: the only key groups the function may change (requests and uploads naming another are
    /// refused), and the ones a schedule sweeps. Empty: every request is refused.
    pub key_group_ids: Vec<String>,
    /// `KEY_PREFIX` (default `keys/`): uploads are `<prefix><key-group-id>/<name>.pem`.
    pub key_prefix: String,
    /// `MAX_KEYS` (1..5, default 2).
    pub max_keys: usize,
    /// `GRACE_HOURS` (default 24): at least your longest signed-URL lifetime.
    pub grace_hours: u32,
    /// `DELETE_RETIRED_KEYS` (default false): delete retired keys no key group uses any more.
    pub delete_retired_keys: bool,
}

impl Settings {
    pub fn from_lookup(lookup: &Lookup<'_>) -> Result<Settings, ConfigError> {
        Ok(Settings {
            key_group_ids: lookup.list("KEY_GROUP_IDS"),
            key_prefix: lookup.string("KEY_PREFIX").unwrap_or_else(|| "keys/".into()),
            max_keys: lookup.number("MAX_KEYS", 2usize, 1..=MAX_KEYS_PER_GROUP)?,
            grace_hours: lookup.number("GRACE_HOURS", 24u32, 0..=8760)?,
            delete_retired_keys: lookup.flag("DELETE_RETIRED_KEYS", false)?,
        })
    }
}

impl Settings {
    /// Whether the function may change `group`: anyone who can publish to its topic or write under `keys/` could
    /// otherwise put a key into any key group of the account.
    pub fn allows(&self, group: &str) -> Result<(), InvalidInput> {
        if self.key_group_ids.is_empty() {
            return Err(InvalidInput::new(
                "keyGroupId",
                format!(
                    "`{group}` is refused: KEY_GROUP_IDS is empty, and the function changes only the key groups it names"
                ),
            ));
        }
        if !self.key_group_ids.iter().any(|g| g == group) {
            return Err(InvalidInput::new(
                "keyGroupId",
                format!(
                    "`{group}` is not one of KEY_GROUP_IDS ({}), the only key groups the function changes",
                    self.key_group_ids.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// How every comment keeper gives a public key starts: the mark by which it later finds its own orphans.
pub const KEEPER_COMMENT: &str = "keeper:";

/// A new key to create from a PEM, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    pub pem: String,
    /// The public key's Name: the file name (or `keeper`), made valid, with a suffix that makes it unique.
    pub name: String,
    pub comment: String,
    /// CallerReference: the same upload never creates a second key.
    pub caller_reference: String,
}

/// One rotation of one key group.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub key_group_id: String,
    pub add: Vec<String>,
    pub new_key: Option<NewKey>,
    pub retire: Vec<String>,
    pub max_keys: usize,
    pub grace_hours: f64,
    pub delete_retired: bool,
}

/// A valid CloudFront public-key name from a file name: letters, digits, `-` and `_`.
pub fn key_name(stem: &str, unique: &str) -> String {
    let clean: String =
        stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    let clean = clean.trim_matches('-');
    let clean = if clean.is_empty() { "keeper" } else { clean };
    let suffix: String = unique.chars().filter(|c| c.is_ascii_alphanumeric()).take(8).collect();
    format!("{}-{suffix}", clean.chars().take(128 - suffix.len() - 1).collect::<String>())
}

fn check_ids(field: &str, ids: &[String]) -> Result<(), InvalidInput> {
    for (i, id) in ids.iter().enumerate() {
        if id.is_empty() || id.len() > 128 || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(InvalidInput::new(format!("{field}[{i}]"), format!("`{id}` is not a public key id")));
        }
        if ids[..i].contains(id) {
            return Err(InvalidInput::new(format!("{field}[{i}]"), format!("`{id}` is listed twice")));
        }
    }
    Ok(())
}

impl Job {
    /// A request by hand or SNS, checked whole; `token` makes a PEM's CallerReference (stable per event).
    pub fn from_request(
        request: Request,
        config: &Settings,
        token: impl Fn(&str) -> String,
    ) -> Result<Job, InvalidInput> {
        let group = request
            .key_group_id
            .filter(|g| !g.is_empty())
            .ok_or_else(|| InvalidInput::new("keyGroupId", "is required"))?;
        config.allows(&group)?;
        let add = request.add_public_key_ids.unwrap_or_default();
        let retire = request.retire_public_key_ids.unwrap_or_default();
        check_ids("addPublicKeyIds", &add)?;
        check_ids("retirePublicKeyIds", &retire)?;
        let max_keys = request.max_keys.unwrap_or(config.max_keys);
        if !(1..=MAX_KEYS_PER_GROUP).contains(&max_keys) {
            return Err(InvalidInput::new("maxKeys", format!("{max_keys} is not from 1 to {MAX_KEYS_PER_GROUP}")));
        }
        let grace_hours = request.grace_hours.unwrap_or(f64::from(config.grace_hours));
        if !(0.0..=8760.0).contains(&grace_hours) {
            return Err(InvalidInput::new("graceHours", "must be from 0 to 8760"));
        }
        let new_key = match request.add_public_key_pem {
            None => None,
            Some(pem) => {
                shared::public_key::inspect(&pem).map_err(|e| InvalidInput::new("addPublicKeyPem", e.to_string()))?;
                let caller_reference = token(&pem);
                Some(NewKey {
                    name: key_name("keeper", &caller_reference),
                    comment: format!("{KEEPER_COMMENT} added to {group} by request"),
                    caller_reference,
                    pem,
                })
            }
        };
        Ok(Job {
            key_group_id: group,
            add,
            new_key,
            retire,
            max_keys,
            grace_hours,
            delete_retired: request.delete_retired_keys.unwrap_or(config.delete_retired_keys),
        })
    }

    /// The key group and file name of an upload under the prefix, or why it is not one.
    pub fn upload_target<'a>(config: &Settings, key: &'a str) -> Result<(&'a str, &'a str), InvalidInput> {
        let rest = key
            .strip_prefix(config.key_prefix.as_str())
            .ok_or_else(|| InvalidInput::new("object key", format!("`{key}` is not under {}", config.key_prefix)))?;
        let (group, file) = rest.split_once('/').ok_or_else(|| {
            InvalidInput::new("object key", format!("`{key}` is not {}<key-group-id>/<name>.pem", config.key_prefix))
        })?;
        let stem = file
            .strip_suffix(".pem")
            .filter(|s| !s.is_empty() && !s.contains('/'))
            .ok_or_else(|| InvalidInput::new("object key", format!("`{key}` does not end in <name>.pem")))?;
        config.allows(group)?;
        Ok((group, stem))
    }

    /// A rotation with no additions (the schedule's sweep).
    pub fn sweep(group: &str, config: &Settings) -> Job {
        Job {
            key_group_id: group.to_string(),
            add: Vec::new(),
            new_key: None,
            retire: Vec::new(),
            max_keys: config.max_keys,
            grace_hours: f64::from(config.grace_hours),
            delete_retired: config.delete_retired_keys,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Settings {
        Settings::from_lookup(&Lookup::from_pairs(&[("KEY_GROUP_IDS", "g,5f1c")])).unwrap()
    }

    fn pem(name: &str) -> String {
        std::fs::read_to_string(format!("{}/../../shared/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
    }

    #[test]
    fn given_file_names_when_made_key_names_then_valid_and_unique() {
        assert_eq!(key_name("site 2026.11", "3f2a9c1d-aaaa"), "site-2026-11-3f2a9c1d");
        assert_eq!(key_name("***", "abc"), "keeper-abc");
        assert!(key_name(&"x".repeat(300), "12345678").len() <= 128);
    }

    #[test]
    fn given_invalid_requests_when_checked_then_errors_name_the_field() {
        let cases = [
            (Request::default(), "keyGroupId"),
            (Request { key_group_id: Some("g".into()), max_keys: Some(6), ..Request::default() }, "maxKeys"),
            (
                Request {
                    key_group_id: Some("g".into()),
                    add_public_key_ids: Some(vec!["K1".into(), "K1".into()]),
                    ..Request::default()
                },
                "addPublicKeyIds[1]",
            ),
            (
                Request {
                    key_group_id: Some("g".into()),
                    add_public_key_pem: Some(pem("rsa-1024.pem")),
                    ..Request::default()
                },
                "addPublicKeyPem",
            ),
            (Request { key_group_id: Some("g".into()), grace_hours: Some(-1.0), ..Request::default() }, "graceHours"),
        ];
        for (request, field) in cases {
            let err = Job::from_request(request, &config(), |_| "t".into()).unwrap_err();
            assert!(err.to_string().contains(&format!("`{field}`")), "{err}");
        }
        let err = Job::from_request(
            Request {
                key_group_id: Some("g".into()),
                add_public_key_pem: Some(pem("rsa-1024.pem")),
                ..Request::default()
            },
            &config(),
            |_| "t".into(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("an RSA 1024-bit key"), "{err}");
    }

    #[test]
    fn given_upload_keys_when_read_then_group_and_name_or_an_error() {
        let c = config();
        assert_eq!(Job::upload_target(&c, "keys/5f1c/site-2026-11.pem").unwrap(), ("5f1c", "site-2026-11"));
        assert!(Job::upload_target(&c, "other/5f1c/site.pem").is_err());
        assert!(Job::upload_target(&c, "keys/site.pem").is_err());
        assert!(Job::upload_target(&c, "keys/5f1c/site.txt").is_err());
    }

    #[test]
    fn given_key_group_ids_when_a_group_is_named_then_only_the_listed_ones_pass_and_none_when_empty() {
        let listed = config();
        assert!(listed.allows("g").is_ok());
        let other = listed.allows("h").unwrap_err();
        assert!(other.rule.contains("not one of KEY_GROUP_IDS (g, 5f1c)"), "{other}");
        let empty = Settings::from_lookup(&Lookup::from_pairs(&[])).unwrap();
        let refused = empty.allows("g").unwrap_err();
        assert!(refused.rule.contains("KEY_GROUP_IDS is empty"), "{refused}");
        let request = Request { key_group_id: Some("g".into()), ..Request::default() };
        assert!(Job::from_request(request, &empty, |_| "t".into()).is_err());
        assert!(Job::upload_target(&empty, "keys/5f1c/site.pem").is_err());
    }
}
