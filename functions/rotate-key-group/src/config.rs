//! The request (by hand or SNS), the settings, and the validated [`Job`] per key group.

use serde::{Deserialize, Serialize};
use shared::config::{ConfigError, FromLookup, Lookup};
use shared::error::InvalidInput;
use shared::trigger;

/// CloudFront's limit of public keys in one key group.
pub const MAX_KEYS_PER_GROUP: usize = 5;

/// The longest grace period, a year: `GRACE_HOURS` and a request's `graceHours` stay within it.
pub const MAX_GRACE_HOURS: f64 = 8760.0;

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

/// The kind of key a managed rotation makes (`KEY_ALGORITHM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Algorithm {
    #[serde(rename = "RSA_2048")]
    Rsa2048,
    #[serde(rename = "ECDSA_P256")]
    EcdsaP256,
}

impl Algorithm {
    pub const NAMES: &'static str = "RSA_2048, ECDSA_P256";

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rsa2048 => "RSA_2048",
            Algorithm::EcdsaP256 => "ECDSA_P256",
        }
    }

    pub fn parse(name: &str) -> Option<Algorithm> {
        [Algorithm::Rsa2048, Algorithm::EcdsaP256].into_iter().find(|a| a.as_str().eq_ignore_ascii_case(name))
    }
}

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
    /// `KEY_ALGORITHM` (`RSA_2048`, the default, or `ECDSA_P256`): the key pairs managed rotations make.
    pub key_algorithm: Algorithm,
    /// `PUBLIC_KEY_QUOTA` (1..1000, default 10, CloudFront's default quota): the public keys the account may hold. A
    /// managed rotation that would need one more is refused before it makes anything.
    pub public_key_quota: usize,
}

impl FromLookup for Settings {
    fn from_lookup(lookup: &Lookup<'_>) -> Result<Settings, ConfigError> {
        Ok(Settings {
            key_group_ids: lookup.list("KEY_GROUP_IDS"),
            key_prefix: lookup.string("KEY_PREFIX").unwrap_or_else(|| "keys/".into()),
            max_keys: lookup.number("MAX_KEYS", 2usize, 1..=MAX_KEYS_PER_GROUP)?,
            grace_hours: lookup.number("GRACE_HOURS", 24u32, 0..=MAX_GRACE_HOURS as u32)?,
            delete_retired_keys: lookup.flag("DELETE_RETIRED_KEYS", false)?,
            key_algorithm: match lookup.string("KEY_ALGORITHM") {
                None => Algorithm::Rsa2048,
                Some(name) => Algorithm::parse(&name).ok_or_else(|| ConfigError {
                    name: "KEY_ALGORITHM".into(),
                    problem: format!("`{name}` is not a key CloudFront accepts"),
                    accepted: Algorithm::NAMES.into(),
                })?,
            },
            public_key_quota: lookup.number("PUBLIC_KEY_QUOTA", 10usize, 1..=1000)?,
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

/// How every comment keeper gives a public key starts; the deployment's name follows (see [`owner_tag`]).
pub const KEEPER_COMMENT: &str = "keeper:";

/// The longest stack name a comment carries whole; a longer one is shortened with a hash, so that the tag always
/// fits in CloudFront's 128 characters with room for what the comment says.
const STACK_IN_COMMENT: usize = 64;

/// `keeper:<stack>`: how the comment of every key this deployment (`KEEPER_STACK`) makes starts, by which its
/// sweep tells its own keys from other stacks' and from keys made by hand. A stack name over 64 characters is cut
/// to 55 and followed by `~` and 8 hex digits of its hash, so that two long names never share a tag.
pub fn owner_tag(stack: &str) -> String {
    if stack.len() <= STACK_IN_COMMENT {
        return format!("{KEEPER_COMMENT}{stack}");
    }
    let hash = shared::hash::sha256_hex(stack.as_bytes());
    let head: String = stack.chars().take(STACK_IN_COMMENT - 9).collect();
    format!("{KEEPER_COMMENT}{head}~{}", &hash[..8])
}

/// A key's comment: the deployment's tag, then what it says, cut to CloudFront's 128 characters (the tag is never
/// cut: it is at most 72).
pub fn comment(tag: &str, says: &str) -> String {
    format!("{tag} {says}").chars().take(128).collect()
}

/// Whether a key's comment says this deployment (its [`owner_tag`]) made it: the tag, alone or followed by a space.
/// A comment of another stack, or of a release before comments named the stack (`keeper: from ...`), is not.
pub fn made_by(comment: Option<&str>, tag: &str) -> bool {
    comment.and_then(|c| c.strip_prefix(tag)).is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
}

/// A new key to create from a PEM, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKey {
    pub pem: String,
    /// The public key's Name: the file name (or `keeper`), made valid, with a suffix that makes it unique.
    pub name: String,
    pub comment: String,
    /// CallerReference: the same upload never creates a second key.
    pub caller_reference: String,
    /// The uploaded object version it came from (bucket, key, version id), checked again before it joins: a newer
    /// upload of the same object meanwhile decides instead.
    pub upload: Option<(String, String, String)>,
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
    /// The keys it adds do not sign yet: a managed rotation's setSecret, whose key signs from finishSecret on.
    pub pending_signer: bool,
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
    /// A request by hand or SNS, checked whole; `tag` starts the comment of a key it creates ([`owner_tag`]) and
    /// `token` makes a PEM's CallerReference (stable per event). The settings are the operator's bounds: a request
    /// may only narrow them (fewer keys, a longer grace, no deletion), and one that would widen them is refused.
    pub fn from_request(
        request: Request,
        config: &Settings,
        tag: &str,
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
        if !(1..=config.max_keys).contains(&max_keys) {
            return Err(InvalidInput::new(
                "maxKeys",
                format!(
                    "{max_keys} is not from 1 to MAX_KEYS ({}): a request may keep fewer keys than the setting, never more",
                    config.max_keys
                ),
            ));
        }
        let grace_hours = request.grace_hours.unwrap_or(f64::from(config.grace_hours));
        if !(f64::from(config.grace_hours)..=MAX_GRACE_HOURS).contains(&grace_hours) {
            return Err(InvalidInput::new(
                "graceHours",
                format!(
                    "{grace_hours} is not from GRACE_HOURS ({}) to {MAX_GRACE_HOURS}: a request may ask for a longer grace than the setting, never a shorter one",
                    config.grace_hours
                ),
            ));
        }
        if request.delete_retired_keys == Some(true) && !config.delete_retired_keys {
            return Err(InvalidInput::new(
                "deleteRetiredKeys",
                "true is refused: DELETE_RETIRED_KEYS is false, and a request may turn deletion off, never on",
            ));
        }
        let new_key = match request.add_public_key_pem {
            None => None,
            Some(pem) => {
                shared::public_key::inspect(&pem).map_err(|e| InvalidInput::new("addPublicKeyPem", e.to_string()))?;
                let caller_reference = token(&pem);
                Some(NewKey {
                    name: key_name("keeper", &caller_reference),
                    comment: comment(tag, &format!("added to {group} by request")),
                    caller_reference,
                    pem,
                    upload: None,
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
            pending_signer: false,
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
            pending_signer: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TAG: &str = "keeper:keeper";

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
            let err = Job::from_request(request, &config(), TAG, |_| "t".into()).unwrap_err();
            assert!(err.to_string().contains(&format!("`{field}`")), "{err}");
        }
        let err = Job::from_request(
            Request {
                key_group_id: Some("g".into()),
                add_public_key_pem: Some(pem("rsa-1024.pem")),
                ..Request::default()
            },
            &config(),
            TAG,
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
        assert!(Job::from_request(request, &empty, TAG, |_| "t".into()).is_err());
        assert!(Job::upload_target(&empty, "keys/5f1c/site.pem").is_err());
    }

    #[test]
    fn given_requests_against_the_settings_when_checked_then_only_narrower_ones_pass_and_a_wider_one_names_its_bound() {
        // GIVEN MAX_KEYS 3, GRACE_HOURS 24, DELETE_RETIRED_KEYS false
        let bounds = Settings::from_lookup(&Lookup::from_pairs(&[("KEY_GROUP_IDS", "g"), ("MAX_KEYS", "3")])).unwrap();
        let request = |f: &dyn Fn(&mut Request)| {
            let mut r = Request { key_group_id: Some("g".into()), ..Request::default() };
            f(&mut r);
            Job::from_request(r, &bounds, TAG, |_| "t".into())
        };
        // WHEN a request asks for more keys, less grace or deletion THEN refused, naming the field and the setting
        for (widen, field, bound) in [
            (&(|r: &mut Request| r.max_keys = Some(4)) as &dyn Fn(&mut Request), "maxKeys", "MAX_KEYS (3)"),
            (&|r: &mut Request| r.grace_hours = Some(23.5), "graceHours", "GRACE_HOURS (24)"),
            (
                &|r: &mut Request| r.delete_retired_keys = Some(true),
                "deleteRetiredKeys",
                "DELETE_RETIRED_KEYS is false",
            ),
        ] {
            let err = request(widen).unwrap_err();
            assert_eq!(err.field, field);
            assert!(err.rule.contains(bound), "{err}");
        }
        // WHEN it asks for fewer keys, more grace, no deletion THEN taken as asked
        let job = request(&|r| {
            r.max_keys = Some(1);
            r.grace_hours = Some(48.0);
            r.delete_retired_keys = Some(false);
        })
        .unwrap();
        assert_eq!((job.max_keys, job.grace_hours, job.delete_retired), (1, 48.0, false));
        // AND with deletion on, a request may still turn it off for itself
        let deleting =
            Settings::from_lookup(&Lookup::from_pairs(&[("KEY_GROUP_IDS", "g"), ("DELETE_RETIRED_KEYS", "true")]))
                .unwrap();
        let off = Request { key_group_id: Some("g".into()), delete_retired_keys: Some(false), ..Request::default() };
        assert!(!Job::from_request(off, &deleting, TAG, |_| "t".into()).unwrap().delete_retired);
    }

    #[test]
    fn given_stacks_when_keys_are_tagged_then_each_stack_knows_its_own_keys_and_no_other() {
        let a = owner_tag("site-a");
        assert_eq!(a, "keeper:site-a");
        assert_eq!(comment(&a, "from s3://b/k.pem"), "keeper:site-a from s3://b/k.pem");
        assert!(made_by(Some("keeper:site-a from s3://b/k.pem"), &a));
        assert!(made_by(Some("keeper:site-a"), &a));
        // Another stack, a stack whose name starts with this one's, an earlier release's comment, none: not ours
        for other in [
            Some("keeper:site-b from s3://b/k.pem"),
            Some("keeper:site-ab from x"),
            Some("keeper: from s3://b/k.pem"),
            None,
        ] {
            assert!(!made_by(other, &a), "{other:?}");
        }
        // A long comment is cut to 128 characters, never inside the tag
        let long = comment(&a, &"x".repeat(300));
        assert_eq!(long.chars().count(), 128);
        assert!(made_by(Some(&long), &a));
        // The longest stack names keep a tag that fits and tells them apart
        let (x, y) = ("a".repeat(128), format!("{}b", "a".repeat(127)));
        let (tx, ty) = (owner_tag(&x), owner_tag(&y));
        assert_ne!(tx, ty);
        assert!(tx.len() <= 72, "{tx}");
        assert!(made_by(Some(&comment(&tx, &"y".repeat(200))), &tx));
        assert!(!made_by(Some(&comment(&tx, "z")), &ty));
    }
}
