//! The request (manual JSON, SNS message, Scheduler input) and the settings each of its fields falls back to,
//! merged and validated into one [`Job`] before any AWS call.

pub mod schedules;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use shared::config::{ConfigError, FromLookup, Lookup};
use shared::error::InvalidInput;
use shared::trigger;

/// Start (the default), stop, or do what each builder's schedule says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Start,
    Stop,
    /// Each selected builder that follows a schedule (its tag, or the request's `schedule`) is started or stopped
    /// where its schedule, or an override that has not expired, wants another state.
    Reconcile,
}

/// What a caller may send; every field is optional and falls back to a setting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Request {
    pub action: Option<Action>,
    pub names: Option<Vec<String>>,
    pub name_prefix: Option<String>,
    pub tags: Option<BTreeMap<String, String>>,
    pub regions: Option<Vec<String>>,
    pub appstream_agent_version: Option<String>,
    pub wait_for_stopping: Option<bool>,
    pub dry_run: Option<bool>,
    /// Reconcile: the schedule every selected builder follows, whatever its tag says.
    pub schedule: Option<String>,
    /// Reconcile, in a dry run only: the instant (RFC 3339) to decide at instead of now, to see what a schedule
    /// would do then.
    pub at: Option<String>,
}

impl trigger::Request for Request {}

/// The function's own settings (environment), read once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `NAME_PREFIX`
    pub name_prefix: Option<String>,
    /// `TAGS` (`k=v,k=v`): a builder is selected only when it carries all of them.
    pub tags: BTreeMap<String, String>,
    /// `OPT_OUT_TAG` (default `keeper:skip`): builders carrying it are never touched; empty disables the check.
    pub opt_out_tag: Option<String>,
    /// `APPSTREAM_AGENT_VERSION`
    pub appstream_agent_version: Option<String>,
    /// `REGIONS`; default the function's own region.
    pub regions: Vec<String>,
    /// `MAX_CONCURRENCY` (default 8): start/stop calls in flight at once.
    pub max_concurrency: usize,
    /// `WAIT_FOR_STOPPING` (default true): start a STOPPING builder once it has stopped.
    pub wait_for_stopping: bool,
    /// `POLL_INTERVAL_MS` (default 5000): the base of the backoff while waiting for STOPPED.
    pub poll_interval: Duration,
    /// `SCHEDULES` (the document itself, validated at start) or `SCHEDULES_S3_URI` (where it is kept, read at each
    /// run): what a reconcile decides on. While a valid document is in force, the builders that carry the schedule
    /// tag are the reconcile's, and a fixed start or stop leaves them alone.
    pub schedules: Option<SchedulesSource>,
    /// `SCHEDULE_TAG` (default `keeper:schedule`): the tag whose value names a builder's schedule.
    pub schedule_tag: String,
    /// `OVERRIDE_TAG` (default `keeper:override`): `running until <time>`, `stopped until <time>` or `ignore`.
    pub override_tag: String,
}

impl FromLookup for Settings {
    fn from_lookup(lookup: &Lookup<'_>) -> Result<Settings, ConfigError> {
        // `OPT_OUT_TAG=""` turns the opt-out check off; unset keeps the default tag.
        let opt_out_tag = match lookup.string("OPT_OUT_TAG") {
            Some(tag) => Some(tag),
            None if lookup.is_set("OPT_OUT_TAG") => None,
            None => Some("keeper:skip".to_string()),
        };
        let config = Settings {
            name_prefix: lookup.string("NAME_PREFIX"),
            tags: lookup.pairs("TAGS")?,
            opt_out_tag,
            appstream_agent_version: lookup.string("APPSTREAM_AGENT_VERSION"),
            regions: lookup.list("REGIONS"),
            max_concurrency: lookup.number("MAX_CONCURRENCY", 8usize, 1..=64)?,
            wait_for_stopping: lookup.flag("WAIT_FOR_STOPPING", true)?,
            poll_interval: Duration::from_millis(lookup.number("POLL_INTERVAL_MS", 5000u64, 10..=60_000)?),
            // A bad document refuses the reconcile that would decide on it, naming the field, and nothing else: the
            // fixed start and stop and the requests by hand still run.
            schedules: match (lookup.string("SCHEDULES"), lookup.string("SCHEDULES_S3_URI")) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError {
                        name: "SCHEDULES_S3_URI".into(),
                        problem: "is set and so is SCHEDULES: which document decides would be a guess".into(),
                        accepted: "one of SCHEDULES (the document) or SCHEDULES_S3_URI (where it is kept)".into(),
                    });
                }
                // Refused as the setting, naming the document's field, as a document kept in S3 is.
                (Some(json), None) => Some(SchedulesSource::Inline(
                    schedules::parse(&json)
                        .map(Arc::new)
                        .inspect_err(|e| {
                            tracing::error!(field = %e.field, rule = %e.rule, "SCHEDULES is not a valid schedules document; every reconcile is refused until it is");
                        })
                        .map_err(|bad| {
                            invalid("SCHEDULES", format!("holds no valid schedules document: {}: {}", bad.field, bad.rule))
                        }),
                )),
                (None, Some(uri)) => {
                    let (bucket, key) = shared::s3::parse_uri(&uri).ok_or_else(|| ConfigError {
                        name: "SCHEDULES_S3_URI".into(),
                        problem: format!("`{uri}` is not an S3 URI"),
                        accepted: "s3://bucket/key".into(),
                    })?;
                    Some(SchedulesSource::S3 { bucket, key })
                }
                (None, None) => None,
            },
            schedule_tag: lookup.string("SCHEDULE_TAG").unwrap_or_else(|| "keeper:schedule".into()),
            override_tag: lookup.string("OVERRIDE_TAG").unwrap_or_else(|| "keeper:override".into()),
        };
        let as_setting = |e: InvalidInput, name: &str| ConfigError {
            name: name.into(),
            problem: e.rule,
            accepted: "see functions/start-idle-image-builders/README.md".into(),
        };
        for region in &config.regions {
            check_region("REGIONS", region).map_err(|e| as_setting(e, "REGIONS"))?;
        }
        if let Some(v) = &config.appstream_agent_version {
            check_agent_version("APPSTREAM_AGENT_VERSION", v).map_err(|e| as_setting(e, "APPSTREAM_AGENT_VERSION"))?;
        }
        Ok(config)
    }
}

/// Where the schedules document is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchedulesSource {
    /// In the settings (`SCHEDULES`), read and validated once at start; a bad one is refused as `SCHEDULES`.
    Inline(Result<Arc<schedules::Schedules>, InvalidInput>),
    /// An S3 object in a versioned bucket (`SCHEDULES_S3_URI`), read at every run: its current version, or when that
    /// is not valid, the newest version before it that is (the last good one stays in force).
    S3 { bucket: String, key: String },
}

/// The schedules document a run decides on, or why there is none (an error naming `setting`): `setting` names
/// where it was looked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InForce {
    pub setting: &'static str,
    pub document: Result<Arc<schedules::Schedules>, InvalidInput>,
}

impl Settings {
    /// The document `SCHEDULES` holds, which needs no read; `None` when the document is kept elsewhere or nowhere.
    pub fn inline_schedules(&self) -> Option<InForce> {
        match &self.schedules {
            Some(SchedulesSource::Inline(document)) => {
                Some(InForce { setting: "SCHEDULES", document: document.clone() })
            }
            _ => None,
        }
    }
}

/// One run's instructions: the request merged over the settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub action: Action,
    pub selector: Selector,
    /// `TAGS`, which every builder acted on must carry, a named one too: a request narrows the selection, never
    /// widens it past the settings.
    pub required_tags: BTreeMap<String, String>,
    pub opt_out_tag: Option<String>,
    pub regions: Vec<String>,
    pub appstream_agent_version: Option<String>,
    pub wait_for_stopping: bool,
    /// What a reconcile decides on; `None` for a start or a stop.
    pub reconcile: Option<Reconcile>,
    /// A start or stop while a valid schedules document is in force: the schedule tag, whose builders the reconcile
    /// decides.
    pub scheduled_by: Option<String>,
}

/// What a reconcile decides each builder's state on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconcile {
    /// The instant decided at: the invocation's time, or a dry run's `at`.
    pub at: jiff::Timestamp,
    pub schedules: Arc<schedules::Schedules>,
    /// The request's `schedule`: every selected builder follows it, whatever its tag says.
    pub schedule: Option<String>,
    pub schedule_tag: String,
    pub override_tag: String,
}

/// Which builders a run considers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// Exactly these names (each region).
    Names(Vec<String>),
    /// Every builder whose name starts with the prefix (empty: all) and that carries all the tags.
    Matching { prefix: String, tags: BTreeMap<String, String> },
}

static NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,100}$").expect("valid pattern"));

fn invalid(field: &str, rule: impl Into<String>) -> InvalidInput {
    InvalidInput::new(field, rule)
}

fn check_region(field: &str, region: &str) -> Result<(), InvalidInput> {
    shared::regions::check(region).map_err(|e| invalid(field, e.to_string()))
}

fn check_agent_version(field: &str, v: &str) -> Result<(), InvalidInput> {
    if (1..=100).contains(&v.chars().count()) {
        Ok(())
    } else {
        Err(invalid(field, "must be 1 to 100 characters, e.g. [LATEST]"))
    }
}

/// A request checked against every rule that needs no schedules document: what is left is to decide it on the
/// document in force ([`Checked::decide_on`]), which may have to be read first.
#[derive(Debug, Clone)]
pub struct Checked {
    job: Job,
    /// A reconcile's instant and the request's `schedule`.
    reconcile: Option<(jiff::Timestamp, Option<String>)>,
}

impl Checked {
    /// The job, decided on `schedules`, the document in force (`None` when the function has none): a reconcile
    /// needs a valid one that knows the request's schedule; a start or stop leaves the scheduled builders to the
    /// reconcile while one is valid.
    pub fn decide_on(self, config: &Settings, schedules: Option<&InForce>) -> Result<Job, InvalidInput> {
        let Checked { mut job, reconcile } = self;
        let schedule_tag = config.schedule_tag.clone();
        match reconcile {
            Some((at, schedule)) => {
                let schedules = reconciled_on(schedules, schedule.as_deref())?;
                let override_tag = config.override_tag.clone();
                job.reconcile = Some(Reconcile { at, schedules, schedule, schedule_tag, override_tag });
            }
            // A broken document decides nothing: the fixed start and stop then keep the scheduled builders too, at
            // the fixed hours, rather than none being started at all.
            None if schedules.is_some_and(|s| s.document.is_ok()) => job.scheduled_by = Some(schedule_tag),
            None => {}
        }
        Ok(job)
    }
}

impl Job {
    /// Merges a request over the settings and checks every field; `schedules` is the document in force (`None`
    /// when the function has none), `default_region` the function's own region.
    pub fn new(
        request: Request,
        config: &Settings,
        schedules: Option<&InForce>,
        default_region: Option<&str>,
        now: jiff::Timestamp,
        dry_run: bool,
    ) -> Result<Job, InvalidInput> {
        Job::check(request, config, default_region, now, dry_run)?.decide_on(config, schedules)
    }

    /// [`Job::new`] up to the schedules document: every rule that needs none, so a request that can never pass is
    /// refused before the document is read.
    pub fn check(
        request: Request,
        config: &Settings,
        default_region: Option<&str>,
        now: jiff::Timestamp,
        dry_run: bool,
    ) -> Result<Checked, InvalidInput> {
        let action = request.action.unwrap_or(Action::Start);
        let reconcile = match action {
            Action::Reconcile => Some(reconcile(&request, now, dry_run)?),
            _ => {
                for (field, set) in [("schedule", request.schedule.is_some()), ("at", request.at.is_some())] {
                    if set {
                        return Err(invalid(field, "is read only with \"action\": \"reconcile\""));
                    }
                }
                None
            }
        };
        if request.names.is_some() && (request.name_prefix.is_some() || request.tags.is_some()) {
            return Err(invalid(
                "names",
                "cannot be combined with namePrefix or tags: name the builders, or select them",
            ));
        }
        let selector = match request.names {
            Some(names) => {
                if names.is_empty() {
                    return Err(invalid(
                        "names",
                        "must name at least one builder (leave it out to select by prefix and tags)",
                    ));
                }
                for (i, name) in names.iter().enumerate() {
                    if !NAME.is_match(name) {
                        return Err(invalid(
                            &format!("names[{i}]"),
                            format!("`{name}` is not an image builder name ({})", NAME.as_str()),
                        ));
                    }
                    if names[..i].contains(name) {
                        return Err(invalid(&format!("names[{i}]"), format!("`{name}` is listed twice")));
                    }
                    if let Some(bound) = config.name_prefix.as_deref().filter(|b| !name.starts_with(b)) {
                        return Err(invalid(
                            &format!("names[{i}]"),
                            format!(
                                "`{name}` does not start with NAME_PREFIX `{bound}`: a request may only narrow the builders the settings allow"
                            ),
                        ));
                    }
                }
                Selector::Names(names)
            }
            None => {
                let prefix = request.name_prefix.or_else(|| config.name_prefix.clone()).unwrap_or_default();
                if prefix.chars().count() > 100 {
                    return Err(invalid("namePrefix", "must be at most 100 characters"));
                }
                if let Some(bound) = config.name_prefix.as_deref().filter(|b| !prefix.starts_with(b)) {
                    return Err(invalid(
                        "namePrefix",
                        format!(
                            "`{prefix}` does not start with NAME_PREFIX `{bound}`: a request may only narrow the builders the settings allow"
                        ),
                    ));
                }
                let tags = request.tags.unwrap_or_else(|| config.tags.clone());
                for (k, v) in &tags {
                    if k.is_empty() || k.chars().count() > 128 || v.chars().count() > 256 {
                        return Err(invalid(&format!("tags.{k}"), "keys are 1 to 128 characters, values at most 256"));
                    }
                }
                for (k, v) in &config.tags {
                    if tags.get(k) != Some(v) {
                        return Err(invalid(
                            &format!("tags.{k}"),
                            format!(
                                "must be `{v}`, as TAGS requires: a request may add tags, never drop or change the settings' ones"
                            ),
                        ));
                    }
                }
                Selector::Matching { prefix, tags }
            }
        };
        // The regions the function manages: REGIONS, or its own region. A request may name fewer, never others.
        let allowed = match (&config.regions, default_region) {
            (configured, _) if !configured.is_empty() => configured.clone(),
            (_, Some(own)) => vec![own.to_string()],
            (_, None) => Vec::new(),
        };
        let regions = match request.regions {
            Some(r) if r.is_empty() => return Err(invalid("regions", "must name at least one region")),
            Some(r) => r,
            None if !allowed.is_empty() => allowed.clone(),
            None => return Err(invalid("regions", "no region given and the function has no AWS_REGION")),
        };
        for (i, region) in regions.iter().enumerate() {
            check_region(&format!("regions[{i}]"), region)?;
            if regions[..i].contains(region) {
                return Err(invalid(&format!("regions[{i}]"), format!("`{region}` is listed twice")));
            }
            if !allowed.contains(region) {
                return Err(invalid(
                    &format!("regions[{i}]"),
                    format!(
                        "`{region}` is not one of the regions the function manages ({}; REGIONS, or its own region): a request may only narrow them",
                        allowed.join(", ")
                    ),
                ));
            }
        }
        if let Some(v) = &request.appstream_agent_version {
            check_agent_version("appstreamAgentVersion", v)?;
            // Which agent every builder runs is the operator's: a request may repeat the setting, not choose another.
            if config.appstream_agent_version.as_deref() != Some(v.as_str()) {
                let bound = match &config.appstream_agent_version {
                    Some(set) => format!("APPSTREAM_AGENT_VERSION is `{set}`"),
                    None => "APPSTREAM_AGENT_VERSION is not set, so builders keep their own".to_string(),
                };
                return Err(invalid(
                    "appstreamAgentVersion",
                    format!("`{v}` is refused: {bound}; a request may only narrow the settings"),
                ));
            }
        }
        let appstream_agent_version = config.appstream_agent_version.clone();
        // Waiting for a STOPPING builder and starting it (someone is stopping it) is allowed only where the settings
        // allow it; a request may turn the wait off.
        if request.wait_for_stopping == Some(true) && !config.wait_for_stopping {
            return Err(invalid(
                "waitForStopping",
                "`true` is refused: WAIT_FOR_STOPPING is false; a request may only narrow the settings",
            ));
        }
        let job = Job {
            reconcile: None,
            scheduled_by: None,
            action,
            selector,
            required_tags: config.tags.clone(),
            opt_out_tag: config.opt_out_tag.clone(),
            regions,
            appstream_agent_version,
            wait_for_stopping: request.wait_for_stopping.unwrap_or(config.wait_for_stopping),
        };
        Ok(Checked { job, reconcile })
    }
}

/// A reconcile's instant and the request's schedule, checked without the document.
fn reconcile(
    request: &Request,
    now: jiff::Timestamp,
    dry_run: bool,
) -> Result<(jiff::Timestamp, Option<String>), InvalidInput> {
    // A request's schedule is for the builders it names: across a whole selection it would override every
    // builder's own schedule tag.
    if request.schedule.is_some() && request.names.is_none() {
        return Err(invalid("schedule", "needs `names`: a request's schedule is for the builders it names"));
    }
    // Deciding at another time is for seeing what a schedule would do: acting on it would start or stop builders
    // at the wrong hours.
    let at = match &request.at {
        None => now,
        Some(_) if !dry_run => {
            return Err(invalid(
                "at",
                "is only for a dry run (\"dryRun\": true): a real run decides on the time it runs",
            ));
        }
        Some(text) => text
            .parse::<jiff::Timestamp>()
            .map_err(|_| invalid("at", format!("`{text}` must be an RFC 3339 time, e.g. 2026-12-04T08:00:00+01:00")))?,
    };
    Ok((at, request.schedule.clone()))
}

/// The document a reconcile decides on: the one in force, valid, knowing the request's `schedule`.
fn reconciled_on(
    in_force: Option<&InForce>,
    schedule: Option<&str>,
) -> Result<Arc<schedules::Schedules>, InvalidInput> {
    let Some(InForce { setting, document }) = in_force else {
        return Err(invalid(
            "action",
            "`reconcile` needs SCHEDULES or SCHEDULES_S3_URI: the function has no schedules document",
        ));
    };
    let schedules = document.clone()?;
    if let Some(name) = schedule
        && schedules.get(name).is_none()
    {
        let known: Vec<&str> = schedules.schedules.iter().map(|s| s.name.as_str()).collect();
        return Err(invalid("schedule", format!("`{name}` is not a schedule of {setting} ({})", known.join(", "))));
    }
    Ok(schedules)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: jiff::Timestamp = jiff::Timestamp::constant(1_800_000_000, 0);

    fn config(pairs: &[(&str, &str)]) -> Settings {
        Settings::from_lookup(&Lookup::from_pairs(pairs)).unwrap()
    }

    #[test]
    fn given_no_settings_when_loaded_then_defaults() {
        let c = config(&[]);
        assert_eq!(c.opt_out_tag.as_deref(), Some("keeper:skip"));
        assert_eq!(c.max_concurrency, 8);
        assert!(c.wait_for_stopping);
        assert!(c.regions.is_empty());
        assert_eq!(config(&[("OPT_OUT_TAG", "")]).opt_out_tag, None, "an empty OPT_OUT_TAG turns the check off");
    }

    #[test]
    fn given_bad_settings_when_loaded_then_error_names_the_variable() {
        for (name, value) in [
            ("REGIONS", "us-east-1,eu-wst"),
            ("MAX_CONCURRENCY", "0"),
            ("TAGS", "novalue"),
            ("APPSTREAM_AGENT_VERSION", &"x".repeat(101)),
        ] {
            let err = Settings::from_lookup(&Lookup::from_pairs(&[(name, value)])).unwrap_err();
            assert_eq!(err.name, name, "{err}");
        }
    }

    #[test]
    fn given_empty_request_when_merged_then_settings_apply() {
        let c = config(&[
            ("NAME_PREFIX", "team-"),
            ("TAGS", "keeper:schedule=office-hours"),
            ("REGIONS", "us-east-1,eu-west-1"),
            ("APPSTREAM_AGENT_VERSION", "[LATEST]"),
        ]);
        let job = Job::new(Request::default(), &c, None, Some("us-west-2"), NOW, false).unwrap();
        assert_eq!(job.action, Action::Start);
        assert_eq!(
            job.selector,
            Selector::Matching {
                prefix: "team-".into(),
                tags: BTreeMap::from([("keeper:schedule".into(), "office-hours".into())])
            }
        );
        assert_eq!(job.regions, vec!["us-east-1", "eu-west-1"]);
        assert_eq!(job.appstream_agent_version.as_deref(), Some("[LATEST]"));
    }

    #[test]
    fn given_request_fields_when_merged_then_they_win() {
        let c = config(&[("NAME_PREFIX", "team-")]);
        let request = Request { action: Some(Action::Stop), names: Some(vec!["team-b1".into()]), ..Request::default() };
        let job = Job::new(request, &c, None, Some("us-east-1"), NOW, false).unwrap();
        assert_eq!(job.action, Action::Stop);
        assert_eq!(job.selector, Selector::Names(vec!["team-b1".into()]));
        assert_eq!(job.regions, vec!["us-east-1"]);
    }

    #[test]
    fn given_settings_as_bounds_when_a_request_would_widen_them_then_refused_naming_the_field_and_the_bound() {
        // GIVEN an operator who manages team- builders tagged for office hours, in two regions
        let c = config(&[
            ("NAME_PREFIX", "team-"),
            ("TAGS", "keeper:schedule=office-hours"),
            ("REGIONS", "us-east-1,eu-west-1"),
        ]);
        let refused = |request: Request| Job::new(request, &c, None, Some("us-east-1"), NOW, false).unwrap_err();
        // WHEN a request asks for every builder, another region, other tags or names outside the prefix
        let cases = [
            (Request { name_prefix: Some(String::new()), ..Request::default() }, "namePrefix", "NAME_PREFIX `team-`"),
            (Request { name_prefix: Some("other-".into()), ..Request::default() }, "namePrefix", "NAME_PREFIX"),
            (Request { tags: Some(BTreeMap::new()), ..Request::default() }, "tags.keeper:schedule", "as TAGS requires"),
            (
                Request {
                    tags: Some(BTreeMap::from([("keeper:schedule".into(), "always".into())])),
                    ..Request::default()
                },
                "tags.keeper:schedule",
                "as TAGS requires",
            ),
            (
                Request { regions: Some(vec!["ap-south-1".into()]), ..Request::default() },
                "regions[0]",
                "may only narrow",
            ),
            (Request { names: Some(vec!["prod-db".into()]), ..Request::default() }, "names[0]", "NAME_PREFIX `team-`"),
            (
                Request { appstream_agent_version: Some("[LATEST]".into()), ..Request::default() },
                "appstreamAgentVersion",
                "APPSTREAM_AGENT_VERSION is not set",
            ),
        ];
        // THEN each is refused, naming the field and the setting that bounds it
        for (request, field, rule) in cases {
            let err = refused(request);
            assert_eq!(err.field, field, "{err}");
            assert!(err.rule.contains(rule), "{err}");
        }
        // AND a request inside the bounds is taken: a longer prefix, one more tag, one of the regions
        let narrower = Request {
            name_prefix: Some("team-web".into()),
            tags: Some(BTreeMap::from([
                ("keeper:schedule".into(), "office-hours".into()),
                ("tier".into(), "1".into()),
            ])),
            regions: Some(vec!["eu-west-1".into()]),
            ..Request::default()
        };
        let job = Job::new(narrower, &c, None, Some("us-east-1"), NOW, false).expect("narrower is allowed");
        assert_eq!(job.regions, vec!["eu-west-1"]);
        assert_eq!(job.required_tags, BTreeMap::from([("keeper:schedule".into(), "office-hours".into())]));
        // AND a wait the settings turn off cannot be turned on
        let no_wait = config(&[("WAIT_FOR_STOPPING", "false")]);
        let err = Job::new(
            Request { wait_for_stopping: Some(true), ..Request::default() },
            &no_wait,
            None,
            Some("us-east-1"),
            NOW,
            false,
        )
        .unwrap_err();
        assert_eq!(err.field, "waitForStopping", "{err}");
        // AND without REGIONS, the function's own region is the bound
        let own = config(&[]);
        let err = Job::new(
            Request { regions: Some(vec!["eu-west-1".into()]), ..Request::default() },
            &own,
            None,
            Some("us-east-1"),
            NOW,
            false,
        )
        .unwrap_err();
        assert!(err.rule.contains("us-east-1"), "{err}");
    }

    #[test]
    fn given_invalid_requests_when_merged_then_error_names_field_and_rule() {
        let c = config(&[("REGIONS", "us-east-1,eu-west-1")]);
        let cases = [
            (Request { names: Some(vec![]), ..Request::default() }, "names", "at least one"),
            (
                Request { names: Some(vec!["ok".into(), "bad name".into()]), ..Request::default() },
                "names[1]",
                "not an image builder name",
            ),
            (Request { names: Some(vec!["b1".into(), "b1".into()]), ..Request::default() }, "names[1]", "listed twice"),
            (
                Request { names: Some(vec!["b1".into()]), name_prefix: Some("t".into()), ..Request::default() },
                "names",
                "cannot be combined",
            ),
            (
                Request { regions: Some(vec!["us-east-1".into(), "eu-wst".into()]), ..Request::default() },
                "regions[1]",
                "not a region code",
            ),
            (
                Request { regions: Some(vec!["eu-wst-1".into()]), ..Request::default() },
                "regions[0]",
                "did you mean eu-west-1?",
            ),
            (Request { regions: Some(vec![]), ..Request::default() }, "regions", "at least one"),
            (
                Request { appstream_agent_version: Some(String::new()), ..Request::default() },
                "appstreamAgentVersion",
                "1 to 100",
            ),
            (Request { name_prefix: Some("x".repeat(101)), ..Request::default() }, "namePrefix", "at most 100"),
        ];
        for (request, field, rule) in cases {
            let err = Job::new(request, &c, None, Some("us-east-1"), NOW, false).unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(err.rule.contains(rule), "{err}");
        }
        let err = Job::new(Request::default(), &config(&[]), None, None, NOW, false).unwrap_err();
        assert!(err.to_string().contains("AWS_REGION"), "{err}");
    }
}
