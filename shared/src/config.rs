//! Typed settings read through a lookup function, so tests pass a map and Lambda passes the environment.
//!
//! Every reader validates at init and names the variable and what it accepts; a function never starts with a setting
//! it misread.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use crate::classify::{Classify, ErrorType};

/// A setting that is missing, malformed or out of range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("setting {name}: {problem}; accepted: {accepted}")]
pub struct ConfigError {
    pub name: String,
    pub problem: String,
    pub accepted: String,
}

impl Classify for ConfigError {
    fn error_type(&self) -> ErrorType {
        ErrorType::CONFIGURATION
    }
}

/// Reads one variable.
type Getter<'a> = Box<dyn Fn(&str) -> Option<String> + Send + Sync + 'a>;

/// Where settings come from: the process environment, or a map in tests.
pub struct Lookup<'a> {
    get: Getter<'a>,
}

impl<'a> Lookup<'a> {
    pub fn new(get: impl Fn(&str) -> Option<String> + Send + Sync + 'a) -> Self {
        Lookup { get: Box::new(get) }
    }

    pub fn env() -> Lookup<'static> {
        Lookup::new(|name| std::env::var(name).ok())
    }

    pub fn from_map(map: &'a HashMap<String, String>) -> Self {
        Lookup::new(move |name| map.get(name).cloned())
    }

    pub fn from_pairs(pairs: &[(&str, &str)]) -> Lookup<'static> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Lookup::new(move |name| map.get(name).cloned())
    }

    /// The trimmed value; a variable set to blanks counts as unset (SAM renders an empty parameter that way).
    pub fn string(&self, name: &str) -> Option<String> {
        (self.get)(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
    }

    /// Whether the variable exists at all, even empty (an empty value can mean "off").
    pub fn is_set(&self, name: &str) -> bool {
        (self.get)(name).is_some()
    }

    pub fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.string(name) {
            None => Ok(default),
            Some(v) => parse_flag(&v).ok_or_else(|| ConfigError {
                name: name.into(),
                problem: format!("`{v}` is not a boolean"),
                accepted: "true, false, 1, 0, yes, no".into(),
            }),
        }
    }

    pub fn number<T>(&self, name: &str, default: T, range: RangeInclusive<T>) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Display + Copy,
    {
        let accepted = || format!("a whole number from {} to {}", range.start(), range.end());
        let Some(raw) = self.string(name) else { return Ok(default) };
        let value: T = raw.parse().map_err(|_| ConfigError {
            name: name.into(),
            problem: format!("`{raw}` is not a number"),
            accepted: accepted(),
        })?;
        if !range.contains(&value) {
            return Err(ConfigError {
                name: name.into(),
                problem: format!("{value} is out of range"),
                accepted: accepted(),
            });
        }
        Ok(value)
    }

    /// A comma-separated list; blanks and empty items are dropped.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.string(name)
            .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
            .unwrap_or_default()
    }

    /// `key=value,key=value` (tags); a key may not repeat.
    pub fn pairs(&self, name: &str) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut out = BTreeMap::new();
        for item in self.list(name) {
            let err =
                |problem: String| ConfigError { name: name.into(), problem, accepted: "key=value,key=value".into() };
            let (k, v) = item.split_once('=').ok_or_else(|| err(format!("`{item}` has no `=`")))?;
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() {
                return Err(err(format!("`{item}` has an empty key")));
            }
            if out.insert(k.to_string(), v.to_string()).is_some() {
                return Err(err(format!("key `{k}` appears twice")));
            }
        }
        Ok(out)
    }
}

fn parse_flag(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// A function's own settings, read once, at start, from the environment (or a test's pairs); an error names the
/// variable.
pub trait FromLookup: Sized {
    fn from_lookup(lookup: &Lookup<'_>) -> Result<Self, ConfigError>;
}

/// A function without settings of its own.
impl FromLookup for () {
    fn from_lookup(_: &Lookup<'_>) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// The settings every function shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `DRY_RUN`: observe and plan, never mutate. A request's `dryRun: true` also turns it on (never off).
    pub dry_run: bool,
    /// `IDEMPOTENCY_TABLE`: the DynamoDB table of the event guard; unset → an in-memory guard (local runs).
    pub idempotency_table: Option<String>,
    /// `IDEMPOTENCY_TTL_SECONDS`: how long a completed event is remembered (default 1 h).
    pub idempotency_ttl: Duration,
    /// `MAX_ATTEMPTS`: SDK attempts per call, first included (default 5).
    pub max_attempts: u32,
    /// `RETRY_INITIAL_BACKOFF_MS`: the SDK's first backoff step (default 1000; tests and the emulator use less).
    pub retry_initial_backoff: Duration,
    /// `METRICS_NAMESPACE`: the CloudWatch namespace of the EMF counters (default `keeper`).
    pub metrics_namespace: String,
    /// `DEADLINE_MARGIN_MS`: no mutating work starts with less than this left before the Lambda deadline (default
    /// 5000: one call with the SDK's retries fits, so nothing is cut off halfway by the timeout).
    pub deadline_margin: Duration,
    /// `KEEPER_STACK`: which deployment this is (the stack name; default `keeper`). Several stacks can share an
    /// account: it is the `stack` dimension of every metric and marks what this deployment made (its keys).
    pub stack: String,
}

/// Lambda's longest function timeout.
pub const LAMBDA_MAX_TIMEOUT_SECS: u64 = 900;

/// What a stack name may be: CloudFormation's own rule (a letter, then letters, digits and hyphens, 128 at most).
fn valid_stack(name: &str) -> bool {
    name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

impl Settings {
    pub fn from_lookup(lookup: &Lookup<'_>) -> Result<Self, ConfigError> {
        let metrics_namespace = lookup.string("METRICS_NAMESPACE").unwrap_or_else(|| "keeper".into());
        if metrics_namespace.len() > 255 {
            return Err(ConfigError {
                name: "METRICS_NAMESPACE".into(),
                problem: format!("{} characters", metrics_namespace.len()),
                accepted: "1 to 255 characters".into(),
            });
        }
        let stack = lookup.string("KEEPER_STACK").unwrap_or_else(|| "keeper".into());
        if !valid_stack(&stack) {
            return Err(ConfigError {
                name: "KEEPER_STACK".into(),
                problem: format!("`{stack}` is not a stack name"),
                accepted: "a letter, then letters, digits and hyphens, 128 characters at most".into(),
            });
        }
        Settings {
            dry_run: lookup.flag("DRY_RUN", false)?,
            idempotency_table: lookup.string("IDEMPOTENCY_TABLE"),
            idempotency_ttl: Duration::from_secs(lookup.number(
                "IDEMPOTENCY_TTL_SECONDS",
                3600u64,
                60..=30 * 86_400,
            )?),
            max_attempts: lookup.number("MAX_ATTEMPTS", 5u32, 1..=10)?,
            retry_initial_backoff: Duration::from_millis(lookup.number(
                "RETRY_INITIAL_BACKOFF_MS",
                1000u64,
                1..=20_000,
            )?),
            metrics_namespace,
            deadline_margin: Duration::ZERO,
            stack,
        }
        .with_margin(lookup)
    }

    /// The longest one AWS call can take with the SDK's retries, waits only: `MAX_ATTEMPTS - 1` waits, each the
    /// SDK's exponential step (capped at its 20 s) or keeper's contention wait (up to 8 × the first step, see
    /// [`crate::retry`]), whichever is longer.
    pub fn worst_call(&self) -> Duration {
        (1..self.max_attempts)
            .map(|i| {
                let exponential =
                    self.retry_initial_backoff.saturating_mul(1 << (i - 1).min(20)).min(Duration::from_secs(20));
                exponential.max(self.retry_initial_backoff * 8)
            })
            .sum()
    }

    /// `DEADLINE_MARGIN_MS`, checked against the retry settings: a call started just before the margin must be able to
    /// finish with all its retries, so the margin is at least [`Settings::worst_call`] (its default: that, and
    /// never under 5 s), and that worst call must fit in Lambda's longest timeout with the margin.
    fn with_margin(mut self, lookup: &Lookup<'_>) -> Result<Self, ConfigError> {
        let worst = self.worst_call();
        let worst_ms = worst.as_millis() as u64;
        let retries = format!(
            "one call with its retries can wait {worst_ms} ms (MAX_ATTEMPTS {}, RETRY_INITIAL_BACKOFF_MS {})",
            self.max_attempts,
            self.retry_initial_backoff.as_millis()
        );
        if worst > Duration::from_secs(LAMBDA_MAX_TIMEOUT_SECS / 2) {
            return Err(ConfigError {
                name: "RETRY_INITIAL_BACKOFF_MS".into(),
                problem: format!("{retries}, more than half of Lambda's longest timeout"),
                accepted: "a first backoff step and attempts whose waits add up to at most 450 s".into(),
            });
        }
        let default = worst_ms.max(5000);
        let margin = lookup.number("DEADLINE_MARGIN_MS", default, 0..=600_000)?;
        if margin < worst_ms {
            return Err(ConfigError {
                name: "DEADLINE_MARGIN_MS".into(),
                problem: format!("{margin} ms is less than {retries}: a call started inside it could be cut off"),
                accepted: format!("{worst_ms} to 600000, or unset for {default}"),
            });
        }
        self.deadline_margin = Duration::from_millis(margin);
        Ok(self)
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Settings::from_lookup(&Lookup::env())
    }
}

impl Default for Settings {
    fn default() -> Self {
        // Cannot fail: every variable is unset and every default is valid.
        Settings {
            dry_run: false,
            idempotency_table: None,
            idempotency_ttl: Duration::from_secs(3600),
            max_attempts: 5,
            retry_initial_backoff: Duration::from_millis(1000),
            metrics_namespace: "keeper".into(),
            // The derived default for 5 attempts from 1 s: four contention waits of up to 8 s.
            deadline_margin: Duration::from_millis(32_000),
            stack: "keeper".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_nothing_set_when_loaded_then_defaults() {
        let s = Settings::from_lookup(&Lookup::from_pairs(&[])).unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn given_every_setting_when_loaded_then_typed_values() {
        let s = Settings::from_lookup(&Lookup::from_pairs(&[
            ("DRY_RUN", "yes"),
            ("IDEMPOTENCY_TABLE", " keeper-idem "),
            ("IDEMPOTENCY_TTL_SECONDS", "7200"),
            ("MAX_ATTEMPTS", "3"),
            ("RETRY_INITIAL_BACKOFF_MS", "10"),
            ("METRICS_NAMESPACE", "ops/keeper"),
            ("DEADLINE_MARGIN_MS", "160"),
        ]))
        .unwrap();
        assert!(s.dry_run);
        assert_eq!(s.deadline_margin, Duration::from_millis(160), "two waits of up to 80 ms fit");
        assert_eq!(s.idempotency_table.as_deref(), Some("keeper-idem"));
        assert_eq!(s.idempotency_ttl, Duration::from_secs(7200));
        assert_eq!(s.max_attempts, 3);
        assert_eq!(s.retry_initial_backoff, Duration::from_millis(10));
        assert_eq!(s.metrics_namespace, "ops/keeper");
    }

    #[test]
    fn given_bad_values_when_loaded_then_error_names_variable_and_accepted_values() {
        let cases = [
            ("DRY_RUN", "maybe", "true, false"),
            ("MAX_ATTEMPTS", "0", "from 1 to 10"),
            ("MAX_ATTEMPTS", "five", "from 1 to 10"),
            ("IDEMPOTENCY_TTL_SECONDS", "5", "from 60 to"),
            ("RETRY_INITIAL_BACKOFF_MS", "-1", "from 1 to 20000"),
        ];
        for (name, value, accepted) in cases {
            let err = Settings::from_lookup(&Lookup::from_pairs(&[(name, value)])).unwrap_err();
            assert_eq!(err.name, name);
            let text = err.to_string();
            assert!(text.starts_with(&format!("setting {name}:")), "{text}");
            assert!(text.contains(accepted), "{text}");
            assert_eq!(err.error_type(), ErrorType::CONFIGURATION);
        }
    }

    #[test]
    fn given_retry_settings_when_the_margin_is_checked_then_it_covers_one_call_with_its_retries() {
        // GIVEN the defaults: 5 attempts from 1 s, so four contention waits of up to 8 s
        let defaults = Settings::from_lookup(&Lookup::from_pairs(&[])).unwrap();
        assert_eq!(defaults.worst_call(), Duration::from_secs(32));
        assert_eq!(defaults.deadline_margin, Duration::from_secs(32), "the default is derived, not 5 s");
        // WHEN a margin under one call's worst case is given THEN it is refused at start, naming both
        let err = Settings::from_lookup(&Lookup::from_pairs(&[("DEADLINE_MARGIN_MS", "5000")])).unwrap_err();
        assert_eq!(err.name, "DEADLINE_MARGIN_MS");
        assert!(err.problem.contains("32000 ms") && err.problem.contains("MAX_ATTEMPTS 5"), "{err}");
        // AND a first step whose waits outlast any Lambda timeout is refused (8 x 20 s, nine times)
        let err = Settings::from_lookup(&Lookup::from_pairs(&[
            ("RETRY_INITIAL_BACKOFF_MS", "20000"),
            ("MAX_ATTEMPTS", "10"),
        ]))
        .unwrap_err();
        assert_eq!(err.name, "RETRY_INITIAL_BACKOFF_MS", "{err}");
        // AND one attempt has no wait at all: the 5 s floor stays
        let once = Settings::from_lookup(&Lookup::from_pairs(&[("MAX_ATTEMPTS", "1")])).unwrap();
        assert_eq!((once.worst_call(), once.deadline_margin), (Duration::ZERO, Duration::from_secs(5)));
        // AND a small first step (tests, the emulator) gives a small worst case and margin
        let fast = Settings::from_lookup(&Lookup::from_pairs(&[
            ("RETRY_INITIAL_BACKOFF_MS", "1"),
            ("DEADLINE_MARGIN_MS", "32"),
        ]));
        assert_eq!(fast.map(|s| s.deadline_margin), Ok(Duration::from_millis(32)));
    }

    #[test]
    fn given_blank_value_when_read_then_unset() {
        let lookup = Lookup::from_pairs(&[("IDEMPOTENCY_TABLE", "   "), ("MAX_ATTEMPTS", "")]);
        let s = Settings::from_lookup(&lookup).unwrap();
        assert_eq!(s.idempotency_table, None);
        assert_eq!(s.max_attempts, 5);
    }

    #[test]
    fn given_lists_and_pairs_when_read_then_split_and_validated() {
        let lookup = Lookup::from_pairs(&[
            ("REGIONS", " us-east-1, ,eu-west-1 "),
            ("TAGS", "team=ops, keeper:schedule=office-hours,empty="),
            ("DUP", "a=1,a=2"),
            ("NOEQ", "a"),
        ]);
        assert_eq!(lookup.list("REGIONS"), vec!["us-east-1", "eu-west-1"]);
        assert!(lookup.list("UNSET").is_empty());
        let tags = lookup.pairs("TAGS").unwrap();
        assert_eq!(tags.get("keeper:schedule").map(String::as_str), Some("office-hours"));
        assert_eq!(tags.get("empty").map(String::as_str), Some(""));
        assert!(lookup.pairs("DUP").unwrap_err().to_string().contains("`a` appears twice"));
        assert!(lookup.pairs("NOEQ").unwrap_err().to_string().contains("accepted: key=value"));
    }
}
