//! Decides what to do with each image builder. Pure: no SDK types, no I/O; every decision of the function is here,
//! the schedules' in [`schedule`].

pub mod schedule;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::config::schedules::Mode;
use crate::config::{Action, Job, Reconcile, Selector};
use crate::plan::schedule::Override;

/// An image builder's state as AppStream names it; a state newer than keeper arrives as `Other` with its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Pending,
    UpdatingAgent,
    Running,
    Stopping,
    Stopped,
    Rebooting,
    Snapshotting,
    Deleting,
    Failed,
    Updating,
    PendingQualification,
    PendingSyncingApps,
    SyncingApps,
    PendingImageImport,
    Other(String),
}

/// Where a state stands for keeper. The match in [`State::kind`] has no wildcard: a state added to [`State`] does
/// not compile until someone decides what keeper does in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stopped,
    Stopping,
    /// Up, or on its way up, or in the middle of a change: nothing to start, nothing to interrupt.
    UpOrBusy,
    Broken,
    Unknown,
}

const KNOWN: [State; 14] = [
    State::Pending,
    State::UpdatingAgent,
    State::Running,
    State::Stopping,
    State::Stopped,
    State::Rebooting,
    State::Snapshotting,
    State::Deleting,
    State::Failed,
    State::Updating,
    State::PendingQualification,
    State::PendingSyncingApps,
    State::SyncingApps,
    State::PendingImageImport,
];

impl State {
    pub fn parse(name: &str) -> State {
        KNOWN.iter().find(|s| s.as_str() == name).cloned().unwrap_or_else(|| State::Other(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        match self {
            State::Pending => "PENDING",
            State::UpdatingAgent => "UPDATING_AGENT",
            State::Running => "RUNNING",
            State::Stopping => "STOPPING",
            State::Stopped => "STOPPED",
            State::Rebooting => "REBOOTING",
            State::Snapshotting => "SNAPSHOTTING",
            State::Deleting => "DELETING",
            State::Failed => "FAILED",
            State::Updating => "UPDATING",
            State::PendingQualification => "PENDING_QUALIFICATION",
            State::PendingSyncingApps => "PENDING_SYNCING_APPS",
            State::SyncingApps => "SYNCING_APPS",
            State::PendingImageImport => "PENDING_IMAGE_IMPORT",
            State::Other(name) => name,
        }
    }

    fn kind(&self) -> Kind {
        match self {
            State::Stopped => Kind::Stopped,
            State::Stopping => Kind::Stopping,
            State::Running
            | State::Pending
            | State::UpdatingAgent
            | State::Rebooting
            | State::Snapshotting
            | State::Updating
            | State::PendingQualification
            | State::PendingSyncingApps
            | State::SyncingApps
            | State::PendingImageImport => Kind::UpOrBusy,
            State::Failed | State::Deleting => Kind::Broken,
            State::Other(_) => Kind::Unknown,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An image builder as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Builder {
    pub region: String,
    pub name: String,
    pub arn: String,
    pub state: State,
    /// `StateChangeReason`, code and message.
    pub reason: Option<String>,
    /// Read only when a tag selector or the opt-out check needs them.
    pub tags: Option<BTreeMap<String, String>>,
}

/// What was seen in the account: the builders, and the named builders that do not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub builders: Vec<Builder>,
    /// `(region, name)` of named builders that were not found.
    pub missing: Vec<(String, String)>,
    /// The [`stretch_mark`]s a reconcile finds in keeper's records: builders of a `respect-manual` schedule already
    /// acted on in the stretch of the schedule they are in.
    pub acted: BTreeSet<String>,
    /// The stretch marks that could not be read: those builders are left alone, and the run is retried.
    pub unreadable: BTreeSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Start,
    /// STOPPING now: wait until STOPPED, then start.
    WaitThenStart,
    Stop,
    Skip(String),
}

/// The report's verb of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Start,
    WaitAndStart,
    Stop,
    /// A reconcile's line that is about no one builder: a region that could not be read, a record of keeper's.
    Reconcile,
}

impl shared::report::Verb for Verb {
    const ALL: &'static [Verb] = &[Verb::Start, Verb::WaitAndStart, Verb::Stop, Verb::Reconcile];

    fn as_str(self) -> &'static str {
        match self {
            Verb::Start => "start",
            Verb::WaitAndStart => "wait-and-start",
            Verb::Stop => "stop",
            Verb::Reconcile => "reconcile",
        }
    }

    /// A builder started at once or after waiting is one start; a reconcile's builders count as starts and stops.
    fn metric(self) -> Option<&'static str> {
        match self {
            Verb::Start | Verb::WaitAndStart => Some("started"),
            Verb::Stop => Some("stopped"),
            Verb::Reconcile => None,
        }
    }
}

impl Verb {
    /// The verb of a job's lines about no one builder.
    pub fn of(action: Action) -> Verb {
        match action {
            Action::Start => Verb::Start,
            Action::Stop => Verb::Stop,
            Action::Reconcile => Verb::Reconcile,
        }
    }
}

/// One selected builder and what to do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub region: String,
    pub name: String,
    /// `None` for a named builder that does not exist.
    pub state_before: Option<State>,
    pub step: Step,
    /// Start or stop: the job's, or what the builder's schedule wants in a reconcile.
    pub action: Action,
    /// A reconcile: why the builder should be in that state (the schedule, its period or holiday, an override).
    pub why: Option<String>,
    /// A reconcile of a `respect-manual` schedule: the mark to record once the builder was acted on (or found as
    /// wanted), so that the rest of the stretch leaves it to the people using it.
    pub mark: Option<String>,
}

impl Planned {
    pub fn target(&self) -> String {
        format!("{}/{}", self.region, self.name)
    }

    pub fn verb(&self) -> Verb {
        match (&self.step, self.action) {
            (Step::WaitThenStart, _) => Verb::WaitAndStart,
            (_, Action::Stop) => Verb::Stop,
            (_, Action::Start | Action::Reconcile) => Verb::Start,
        }
    }

    /// The state before, and why the builder should be as planned (a reconcile's schedule or override).
    pub fn context(&self) -> String {
        match &self.why {
            Some(why) => format!("{} ({why})", self.before()),
            None => self.before().to_string(),
        }
    }

    /// The state before, for the report: `(none)` for a builder that does not exist.
    pub fn before(&self) -> &str {
        self.state_before.as_ref().map(State::as_str).unwrap_or("(none)")
    }

    /// Whether a reconcile's line settles the builder's `respect-manual` stretch: it was started or stopped, or was
    /// found as its schedule wants. A failure, or a builder left busy, is tried again by the next run.
    pub fn settles_stretch(&self, outcome: shared::report::Outcome) -> bool {
        let as_wanted = self.state_before.as_ref().is_some_and(|s| done_meanwhile(self.action, s));
        self.mark.is_some()
            && match outcome {
                shared::report::Outcome::Applied => true,
                shared::report::Outcome::Skipped => as_wanted,
                _ => false,
            }
    }

    /// The line of a run that only plans: what would be done to the builder, or why it is left alone.
    pub fn as_planned(&self) -> shared::report::Action {
        use shared::report::{Action as Line, Outcome, Verb as _};
        let verb = self.verb().as_str();
        match &self.step {
            Step::Skip(why) => Line::new(self.target(), verb, Outcome::Skipped, format!("{}: {why}", self.context())),
            _ => Line::new(self.target(), verb, Outcome::Planned, format!("{}: would {verb}", self.context())),
        }
    }
}

/// Whether the step for this state could act (so the opt-out tag must be known). A reconcile may act on any
/// builder: its schedule decides.
fn actionable(action: Action, state: &State) -> bool {
    match action {
        Action::Start => matches!(state.kind(), Kind::Stopped | Kind::Stopping),
        Action::Stop => *state == State::Running,
        Action::Reconcile => true,
    }
}

/// Whether a builder now in `state` no longer needs `action`: started (or stopped) meanwhile by someone else, such as
/// another run that read the same STOPPED builder before either of them started it.
pub fn done_meanwhile(action: Action, state: &State) -> bool {
    match action {
        Action::Start | Action::Reconcile => state.kind() == Kind::UpOrBusy,
        Action::Stop => matches!(state.kind(), Kind::Stopped | Kind::Stopping),
    }
}

/// Whether a builder's name is selected (before tags are known).
pub fn name_selected(job: &Job, name: &str) -> bool {
    match &job.selector {
        Selector::Names(names) => names.iter().any(|n| n == name),
        Selector::Matching { prefix, .. } => name.starts_with(prefix.as_str()),
    }
}

/// Whether the builder's tags must be read: for a tag selector, or for the opt-out check of a builder that would be
/// acted on. Others are skipped whatever their tags say, so their tags are not read.
pub fn needs_tags(job: &Job, builder: &Builder) -> bool {
    if !name_selected(job, &builder.name) {
        return false;
    }
    let tag_selector =
        matches!(&job.selector, Selector::Matching { tags, .. } if !tags.is_empty()) || !job.required_tags.is_empty();
    // A reconcile reads every selected builder's schedule and override tags; a fixed start or stop with schedules
    // reads an actionable builder's, to leave the scheduled ones to the reconcile.
    let acts = actionable(job.action, &builder.state);
    tag_selector || job.reconcile.is_some() || ((job.opt_out_tag.is_some() || job.scheduled_by.is_some()) && acts)
}

fn step_for(action: Action, job: &Job, builder: &Builder) -> Step {
    let state = &builder.state;
    // The report prefixes the state; a broken builder's skip says why it broke (or that it is going away).
    let broken = || match (state, builder.reason.as_deref()) {
        (State::Deleting, _) => "being deleted".to_string(),
        (_, Some(reason)) => reason.to_string(),
        (_, None) => "no reason given".to_string(),
    };
    let unknown = || Step::Skip(format!("state {state} is not known to keeper; left alone"));
    match action {
        Action::Start | Action::Reconcile => match state.kind() {
            Kind::Stopped => Step::Start,
            Kind::Stopping if job.wait_for_stopping => Step::WaitThenStart,
            Kind::Stopping => Step::Skip("STOPPING, and waitForStopping is off".into()),
            Kind::UpOrBusy => Step::Skip(format!("already running or busy ({state})")),
            Kind::Broken => Step::Skip(broken()),
            Kind::Unknown => unknown(),
        },
        Action::Stop => match state.kind() {
            _ if *state == State::Running => Step::Stop,
            Kind::Stopped | Kind::Stopping => Step::Skip(format!("already {}", state.as_str().to_ascii_lowercase())),
            Kind::UpOrBusy => Step::Skip(format!("busy ({state}); not stopped in the middle of a change")),
            Kind::Broken => Step::Skip(broken()),
            Kind::Unknown => unknown(),
        },
    }
}

/// The plan: one entry per selected builder (and per named builder that does not exist), in region then name order.
/// A reconcile leaves out the builders of a selection that follow no schedule; a builder named in it is reported.
pub fn plan(job: &Job, observed: &Observed) -> Vec<Planned> {
    let mut out = Vec::new();
    for builder in &observed.builders {
        if !name_selected(job, &builder.name) {
            continue;
        }
        // A reconcile selects by the schedule tag itself: a TAGS pair on that tag (the fixed jobs' selector) does not
        // bound which schedules builders may follow.
        let schedule_tag = job.reconcile.as_ref().map(|r| r.schedule_tag.as_str());
        let counts = |k: &String| Some(k.as_str()) != schedule_tag;
        if let Selector::Matching { tags: wanted, .. } = &job.selector
            && !wanted.is_empty()
        {
            let has_all = builder
                .tags
                .as_ref()
                .is_some_and(|tags| wanted.iter().filter(|(k, _)| counts(k)).all(|(k, v)| tags.get(k) == Some(v)));
            if !has_all {
                continue;
            }
        }
        let carries = |tags: &BTreeMap<String, String>| {
            job.required_tags.iter().filter(|(k, _)| counts(k)).all(|(k, v)| tags.get(k) == Some(v))
        };
        let (mut action, mut why, mut mark) = (job.action, None, None);
        let step = match (&job.opt_out_tag, &builder.tags) {
            (Some(tag), Some(tags)) if tags.contains_key(tag) => Step::Skip(format!("opted out by tag {tag}")),
            // With schedules, a builder that carries the schedule tag is the reconcile's: a fixed start or stop
            // would fight its schedule twice a day.
            (_, Some(tags)) if job.scheduled_by.as_ref().is_some_and(|t| tags.contains_key(t)) => Step::Skip(format!(
                "follows schedule `{}` ({}): the reconcile decides its state",
                job.scheduled_by.as_ref().and_then(|t| tags.get(t)).map(String::as_str).unwrap_or_default(),
                job.scheduled_by.as_deref().unwrap_or_default()
            )),
            // A builder named in the request is still held to TAGS: the request narrows, the settings bound.
            (_, Some(tags)) if !carries(tags) => Step::Skip(format!(
                "does not carry the tags the settings require (TAGS {})",
                job.required_tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
            )),
            (_, None) if !job.required_tags.is_empty() && actionable(job.action, &builder.state) => {
                Step::Skip("tags unknown; not touched".into())
            }
            (_, None)
                if (job.opt_out_tag.is_some() || job.scheduled_by.is_some())
                    && actionable(job.action, &builder.state) =>
            {
                // The observer reads tags for every actionable builder; acting without them could override an opt-out.
                Step::Skip("tags unknown; not touched".into())
            }
            _ => match &job.reconcile {
                None => step_for(job.action, job, builder),
                Some(reconcile) => match scheduled(reconcile, builder, &observed.acted, &observed.unreadable) {
                    Scheduled::Unscheduled if matches!(job.selector, Selector::Matching { .. }) => continue,
                    Scheduled::Unscheduled => {
                        Step::Skip(format!("follows no schedule (no {} tag)", reconcile.schedule_tag))
                    }
                    Scheduled::Leave(reason) => Step::Skip(reason),
                    Scheduled::Respect { running, because } => {
                        // The line's verb is what the schedule wants, though a person's choice stands.
                        action = if running { Action::Start } else { Action::Stop };
                        Step::Skip(because)
                    }
                    Scheduled::Want { running, because, stretch } => {
                        action = if running { Action::Start } else { Action::Stop };
                        why = Some(because);
                        mark = stretch;
                        step_for(action, job, builder)
                    }
                },
            },
        };
        // A reconcile's line says start or stop, never "reconcile": what the builder was to get.
        if action == Action::Reconcile {
            action = Action::Start;
        }
        out.push(Planned {
            region: builder.region.clone(),
            name: builder.name.clone(),
            state_before: Some(builder.state.clone()),
            step,
            action,
            why: why.take(),
            mark: mark.take(),
        });
    }
    for (region, name) in &observed.missing {
        out.push(Planned {
            region: region.clone(),
            name: name.clone(),
            state_before: None,
            step: Step::Skip("no such image builder".into()),
            action: if job.action == Action::Stop { Action::Stop } else { Action::Start },
            why: None,
            mark: None,
        });
    }
    out.sort_by(|a, b| (&a.region, &a.name).cmp(&(&b.region, &b.name)));
    out
}

/// What a builder's schedule (or override) wants of it at a reconcile's instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheduled {
    /// It follows no schedule.
    Unscheduled,
    /// Left as it is, for this reason (an `ignore` override, an unknown schedule).
    Leave(String),
    /// A `respect-manual` schedule that wants the builder `running` (or not), left as people set it: its stretch was
    /// acted on already, or keeper's record of that cannot be read.
    Respect { running: bool, because: String },
    /// Running or stopped, because of this; `stretch` is the mark of a `respect-manual` schedule's stretch.
    Want { running: bool, because: String, stretch: Option<String> },
}

/// A stretch's mark once it is settled: found as the schedule wants, or about to be acted on. It is written just
/// before keeper starts or stops the builder, so a run killed between the two leaves the builder to people for the
/// rest of the stretch rather than risk acting on it twice; a call that then surely did not happen undoes it.
pub const MARK_ACTED: &str = "acted";
/// A stretch's mark whose start or stop surely did not happen: not acted on, so the next run acts.
pub const MARK_UNDONE: &str = "undone";
/// How long a stretch's mark is kept: longer than a stretch is looked back on ([`schedule::LOOK_BACK`]).
pub const STRETCH_KEPT: std::time::Duration = std::time::Duration::from_secs(410 * 86_400);

/// The mark that a builder was acted on in the stretch of a `respect-manual` schedule that began at `since` (epoch
/// seconds; `None`: it has not changed its mind within the look-back).
pub fn stretch_mark(region: &str, name: &str, schedule: &str, since: Option<i64>) -> String {
    let since = since.map(|s| s.to_string()).unwrap_or_else(|| "always".into());
    format!("scheduled#{region}/{name}#{schedule}#{since}")
}

/// The schedule a builder follows in a reconcile: the request's, else its tag's.
pub fn schedule_of<'a>(reconcile: &'a Reconcile, builder: &'a Builder) -> Option<&'a str> {
    reconcile
        .schedule
        .as_deref()
        .or_else(|| builder.tags.as_ref().and_then(|t| t.get(&reconcile.schedule_tag)).map(String::as_str))
}

/// What the builder's override, else its schedule, wants of it at the reconcile's instant. A bad override tag is
/// said and ignored (the schedule rules); an expired one is said too.
pub fn scheduled(
    reconcile: &Reconcile,
    builder: &Builder,
    acted: &BTreeSet<String>,
    unreadable: &BTreeSet<String>,
) -> Scheduled {
    let at = reconcile.at;
    let mut notes = Vec::new();
    if let Some(value) = builder.tags.as_ref().and_then(|t| t.get(&reconcile.override_tag)) {
        match schedule::parse_override(value) {
            Ok(Override::Ignore) => {
                return Scheduled::Leave(format!("{} is `ignore`: left as it is", reconcile.override_tag));
            }
            Ok(o @ (Override::Running(until) | Override::Stopped(until))) if at < until => {
                let because = format!("{} `{value}`", reconcile.override_tag);
                return Scheduled::Want { running: matches!(o, Override::Running(_)), because, stretch: None };
            }
            Ok(Override::Running(until) | Override::Stopped(until)) => {
                notes.push(format!("override `{value}` expired at {until}; the schedule rules again"));
            }
            Err(rule) => notes.push(format!("{} ignored: {rule}", reconcile.override_tag)),
        }
    }
    let Some(name) = schedule_of(reconcile, builder) else {
        return match notes.is_empty() {
            true => Scheduled::Unscheduled,
            false => Scheduled::Leave(format!("follows no schedule; {}", notes.join("; "))),
        };
    };
    let Some(schedule) = reconcile.schedules.get(name) else {
        notes.insert(0, format!("schedule `{name}` is not in the schedules document; left as it is"));
        return Scheduled::Leave(notes.join("; "));
    };
    let now = schedule::at(schedule, at);
    let local = schedule::local_time(schedule, at);
    let mut because = format!("schedule {name}, {} at {local}", now.why);
    for note in &notes {
        because.push_str("; ");
        because.push_str(note);
    }
    let stretch = match schedule.mode {
        Mode::Enforced => None,
        Mode::RespectManual => {
            let since = schedule::since(schedule, at).map(|t| t.as_second());
            let mark = stretch_mark(&builder.region, &builder.name, name, since);
            if unreadable.contains(&mark) {
                let because = format!(
                    "{because}; respect-manual: keeper's record of this stretch could not be read, so the builder is left alone and the run retried"
                );
                return Scheduled::Respect { running: now.running, because };
            }
            if acted.contains(&mark) {
                let since = since.and_then(|s| jiff::Timestamp::from_second(s).ok()).map(|t| t.to_string());
                let because = format!(
                    "{because}; respect-manual: acted on already in this stretch (since {}); left as people set it",
                    since.as_deref().unwrap_or("over 400 days")
                );
                return Scheduled::Respect { running: now.running, because };
            }
            Some(mark)
        }
    };
    Scheduled::Want { running: now.running, because, stretch }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(action: Action, selector: Selector) -> Job {
        Job {
            action,
            selector,
            required_tags: BTreeMap::new(),
            opt_out_tag: Some("keeper:skip".into()),
            regions: vec!["us-east-1".into()],
            appstream_agent_version: None,
            wait_for_stopping: true,
            reconcile: None,
            scheduled_by: None,
        }
    }

    fn all() -> Selector {
        Selector::Matching { prefix: String::new(), tags: BTreeMap::new() }
    }

    fn builder(name: &str, state: &str, tags: &[(&str, &str)]) -> Builder {
        Builder {
            region: "us-east-1".into(),
            name: name.into(),
            arn: format!("arn:aws:appstream:us-east-1:123456789012:image-builder/{name}"),
            state: State::parse(state),
            reason: None,
            tags: Some(tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        }
    }

    /// A reconcile at `at` of a respect-manual night schedule, 22:00-06:00 UTC.
    fn reconcile_at(at: &str, names: Option<Vec<String>>) -> Job {
        let schedules = crate::config::schedules::parse(
            r#"{"schedules": [{"name": "night", "timezone": "UTC", "mode": "respect-manual", "periods": [{"begin": "22:00", "end": "06:00"}]}]}"#,
        )
        .expect("valid");
        let selector = match names {
            Some(names) => Selector::Names(names),
            None => all(),
        };
        let mut j = job(Action::Reconcile, selector);
        j.reconcile = Some(Reconcile {
            at: at.parse().expect("an instant"),
            schedules: std::sync::Arc::new(schedules),
            schedule: None,
            schedule_tag: "keeper:schedule".into(),
            override_tag: "keeper:override".into(),
        });
        j
    }

    #[test]
    fn given_a_reconcile_when_planned_then_each_builder_gets_what_its_schedule_or_override_wants_and_says_why() {
        let j = reconcile_at("2026-06-01T12:00:00Z", None);
        let night = [("keeper:schedule", "night")];
        let builders = vec![
            builder("day-running", "RUNNING", &night),
            builder(
                "held",
                "STOPPED",
                &[("keeper:schedule", "night"), ("keeper:override", "running until 2026-06-01T13:00:00Z")],
            ),
            builder(
                "bad-override",
                "RUNNING",
                &[("keeper:schedule", "night"), ("keeper:override", "running until lunch")],
            ),
            builder("lost", "RUNNING", &[("keeper:schedule", "lunch")]),
            builder("untagged", "RUNNING", &[]),
        ];
        let observed = Observed { builders, ..Observed::default() };
        let planned = plan(&j, &observed);
        let by = |name: &str| planned.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("{name}: {planned:?}"));
        // GIVEN noon, outside the night: a running builder is stopped, with the stretch's mark to record
        assert_eq!((by("day-running").action, &by("day-running").step), (Action::Stop, &Step::Stop));
        assert!(
            by("day-running").mark.as_deref().is_some_and(|m| m.starts_with("scheduled#us-east-1/day-running#night#"))
        );
        // AND an unexpired override wins; a bad one is said and ignored; an unknown schedule leaves it alone
        assert_eq!((by("held").action, &by("held").step), (Action::Start, &Step::Start));
        assert_eq!(by("bad-override").step, Step::Stop);
        assert!(by("bad-override").why.as_deref().is_some_and(|w| w.contains("keeper:override ignored")));
        assert!(
            matches!(&by("lost").step, Step::Skip(why) if why.contains("`lunch` is not in the schedules document"))
        );
        // AND a builder without a schedule tag is not in a selection's plan at all
        assert!(planned.iter().all(|p| p.name != "untagged"));
        // WHEN the stretch was acted on already: left as people set it, the line still saying the schedule wants a stop
        let mark = by("day-running").mark.clone().expect("a mark");
        let acted = Observed { acted: [mark].into(), ..observed.clone() };
        let again = plan(&j, &acted);
        let day = again.iter().find(|p| p.name == "day-running").expect("planned");
        assert_eq!(day.action, Action::Stop);
        assert!(matches!(&day.step, Step::Skip(why) if why.contains("left as people set it")), "{day:?}");
        // AND a builder named without a tag is reported, not dropped
        let named = plan(&reconcile_at("2026-06-01T12:00:00Z", Some(vec!["untagged".into()])), &observed);
        assert!(matches!(&named[0].step, Step::Skip(why) if why.contains("follows no schedule")), "{named:?}");
    }

    fn steps(job: &Job, builders: Vec<Builder>) -> Vec<(String, Step)> {
        plan(job, &Observed { builders, missing: vec![], ..Observed::default() })
            .into_iter()
            .map(|p| (p.name, p.step))
            .collect()
    }

    #[test]
    fn given_every_state_when_starting_then_only_stopped_starts_and_stopping_waits() {
        let cases = [
            ("STOPPED", Step::Start),
            ("STOPPING", Step::WaitThenStart),
            ("RUNNING", Step::Skip("already running or busy (RUNNING)".into())),
            ("PENDING", Step::Skip("already running or busy (PENDING)".into())),
            ("UPDATING_AGENT", Step::Skip("already running or busy (UPDATING_AGENT)".into())),
            ("REBOOTING", Step::Skip("already running or busy (REBOOTING)".into())),
            ("SNAPSHOTTING", Step::Skip("already running or busy (SNAPSHOTTING)".into())),
            ("UPDATING", Step::Skip("already running or busy (UPDATING)".into())),
            ("PENDING_QUALIFICATION", Step::Skip("already running or busy (PENDING_QUALIFICATION)".into())),
            ("PENDING_SYNCING_APPS", Step::Skip("already running or busy (PENDING_SYNCING_APPS)".into())),
            ("SYNCING_APPS", Step::Skip("already running or busy (SYNCING_APPS)".into())),
            ("PENDING_IMAGE_IMPORT", Step::Skip("already running or busy (PENDING_IMAGE_IMPORT)".into())),
            ("DELETING", Step::Skip("being deleted".into())),
            ("HIBERNATING", Step::Skip("state HIBERNATING is not known to keeper; left alone".into())),
        ];
        for (state, expected) in cases {
            assert_eq!(
                steps(&job(Action::Start, all()), vec![builder("b", state, &[])]),
                vec![("b".into(), expected)],
                "{state}"
            );
        }
    }

    #[test]
    fn given_failed_builder_when_starting_then_skipped_with_state_change_reason() {
        let mut b = builder("b", "FAILED", &[]);
        b.reason = Some("INTERNAL_ERROR: could not launch".into());
        assert_eq!(
            steps(&job(Action::Start, all()), vec![b]),
            vec![("b".into(), Step::Skip("INTERNAL_ERROR: could not launch".into()))]
        );
    }

    #[test]
    fn given_stopping_builder_and_waiting_off_when_starting_then_skipped() {
        let mut j = job(Action::Start, all());
        j.wait_for_stopping = false;
        assert_eq!(
            steps(&j, vec![builder("b", "STOPPING", &[])]),
            vec![("b".into(), Step::Skip("STOPPING, and waitForStopping is off".into()))]
        );
    }

    #[test]
    fn given_every_state_when_stopping_then_only_running_stops() {
        let cases = [
            ("RUNNING", Step::Stop),
            ("STOPPED", Step::Skip("already stopped".into())),
            ("STOPPING", Step::Skip("already stopping".into())),
            ("PENDING", Step::Skip("busy (PENDING); not stopped in the middle of a change".into())),
            ("SNAPSHOTTING", Step::Skip("busy (SNAPSHOTTING); not stopped in the middle of a change".into())),
            ("FAILED", Step::Skip("no reason given".into())),
            ("NEW_STATE", Step::Skip("state NEW_STATE is not known to keeper; left alone".into())),
        ];
        for (state, expected) in cases {
            assert_eq!(
                steps(&job(Action::Stop, all()), vec![builder("b", state, &[])]),
                vec![("b".into(), expected)],
                "{state}"
            );
        }
    }

    #[test]
    fn given_opt_out_tag_when_named_or_selected_then_never_touched() {
        let opted = builder("legacy", "STOPPED", &[("keeper:skip", "")]);
        let by_name = job(Action::Start, Selector::Names(vec!["legacy".into()]));
        assert_eq!(
            steps(&by_name, vec![opted.clone()]),
            vec![("legacy".into(), Step::Skip("opted out by tag keeper:skip".into()))]
        );
        let mut running = opted.clone();
        running.state = State::Running;
        assert_eq!(
            steps(&job(Action::Stop, all()), vec![running]),
            vec![("legacy".into(), Step::Skip("opted out by tag keeper:skip".into()))]
        );
        let mut no_check = job(Action::Start, all());
        no_check.opt_out_tag = None;
        assert_eq!(steps(&no_check, vec![opted]), vec![("legacy".into(), Step::Start)]);
    }

    #[test]
    fn given_actionable_builder_with_unknown_tags_when_planned_then_not_touched() {
        let mut b = builder("b", "STOPPED", &[]);
        b.tags = None;
        assert_eq!(
            steps(&job(Action::Start, all()), vec![b]),
            vec![("b".into(), Step::Skip("tags unknown; not touched".into()))]
        );
    }

    #[test]
    fn given_prefix_and_tags_when_selecting_then_all_tags_must_match() {
        let selector = Selector::Matching {
            prefix: "team-".into(),
            tags: BTreeMap::from([("keeper:schedule".into(), "office-hours".into()), ("team".into(), "web".into())]),
        };
        let builders = vec![
            builder("team-web", "STOPPED", &[("keeper:schedule", "office-hours"), ("team", "web")]),
            builder("team-web-2", "STOPPED", &[("keeper:schedule", "office-hours")]),
            builder("team-data", "STOPPED", &[("keeper:schedule", "nights"), ("team", "web")]),
            builder("sandbox", "STOPPED", &[("keeper:schedule", "office-hours"), ("team", "web")]),
        ];
        assert_eq!(steps(&job(Action::Start, selector), builders), vec![("team-web".into(), Step::Start)]);
    }

    #[test]
    fn given_names_when_some_are_missing_then_each_missing_one_is_reported() {
        let j = job(Action::Start, Selector::Names(vec!["b1".into(), "ghost".into()]));
        let observed = Observed {
            builders: vec![builder("b1", "STOPPED", &[]), builder("b2", "STOPPED", &[])],
            missing: vec![("us-east-1".into(), "ghost".into())],
            ..Observed::default()
        };
        let planned = plan(&j, &observed);
        assert_eq!(
            planned.iter().map(|p| (p.name.as_str(), &p.step)).collect::<Vec<_>>(),
            vec![("b1", &Step::Start), ("ghost", &Step::Skip("no such image builder".into()))]
        );
        assert_eq!(planned[1].state_before, None);
        assert_eq!(planned[1].before(), "(none)");
    }

    #[test]
    fn given_empty_selection_when_planned_then_empty_plan_not_an_error() {
        let j = job(Action::Start, Selector::Matching { prefix: "nobody-".into(), tags: BTreeMap::new() });
        assert!(
            plan(
                &j,
                &Observed { builders: vec![builder("b1", "STOPPED", &[])], missing: vec![], ..Observed::default() }
            )
            .is_empty()
        );
    }

    #[test]
    fn given_builders_when_deciding_tag_reads_then_only_tag_selectors_and_actionable_builders_need_them() {
        let start = job(Action::Start, all());
        assert!(needs_tags(&start, &builder("b", "STOPPED", &[])));
        assert!(needs_tags(&start, &builder("b", "STOPPING", &[])));
        assert!(!needs_tags(&start, &builder("b", "RUNNING", &[])));
        assert!(needs_tags(&job(Action::Stop, all()), &builder("b", "RUNNING", &[])));
        let by_tag = job(
            Action::Start,
            Selector::Matching { prefix: "t".into(), tags: BTreeMap::from([("a".into(), "b".into())]) },
        );
        assert!(needs_tags(&by_tag, &builder("t1", "RUNNING", &[])));
        assert!(!needs_tags(&by_tag, &builder("x1", "STOPPED", &[])), "names outside the prefix are never read");
        let mut no_opt_out = start.clone();
        no_opt_out.opt_out_tag = None;
        assert!(!needs_tags(&no_opt_out, &builder("b", "STOPPED", &[])));
    }

    #[test]
    fn given_two_regions_when_planned_then_sorted_by_region_then_name() {
        let mut eu = builder("a", "STOPPED", &[]);
        eu.region = "eu-west-1".into();
        let planned = plan(
            &job(Action::Start, all()),
            &Observed {
                builders: vec![builder("b", "STOPPED", &[]), eu, builder("a", "STOPPED", &[])],
                missing: vec![],
                ..Observed::default()
            },
        );
        assert_eq!(
            planned.iter().map(Planned::target).collect::<Vec<_>>(),
            vec!["eu-west-1/a", "us-east-1/a", "us-east-1/b"]
        );
    }

    #[test]
    fn given_every_state_name_when_parsed_then_it_reads_back_and_new_names_are_kept_as_they_are() {
        for state in KNOWN {
            assert_eq!(State::parse(state.as_str()), state);
        }
        assert_eq!(State::parse("HIBERNATING"), State::Other("HIBERNATING".into()));
        assert_eq!(State::parse("HIBERNATING").to_string(), "HIBERNATING");
    }

    mod invariants {
        //! The plan's promises, checked over generated accounts and jobs rather than chosen cases.

        use proptest::prelude::*;

        use super::*;

        const NAMES: [&str; 5] = ["team-a", "team-b", "ops-c", "team-d", "lab-e"];

        /// Builders over two regions (a name at most once per region), in any of the known states or an unknown one,
        /// with their tags read or not, some opted out.
        fn account() -> impl Strategy<Value = Observed> {
            let state = prop_oneof![prop::sample::select(KNOWN.to_vec()), Just(State::Other("HIBERNATING".into()))];
            let tags = prop::option::of((any::<bool>(), any::<bool>()));
            let one = (0usize..2, 0usize..NAMES.len(), state, tags, any::<bool>());
            prop::collection::vec(one, 0..12).prop_map(|raw| {
                let mut observed = Observed::default();
                for (region, name, state, tags, missing) in raw {
                    let (region, name) = (["us-east-1", "eu-west-1"][region].to_string(), NAMES[name].to_string());
                    let seen = observed.builders.iter().any(|b| b.region == region && b.name == name)
                        || observed.missing.iter().any(|(r, n)| *r == region && *n == name);
                    if seen {
                        continue;
                    }
                    if missing {
                        observed.missing.push((region, name));
                        continue;
                    }
                    let tags = tags.map(|(opted_out, scheduled)| {
                        let mut t = BTreeMap::new();
                        if opted_out {
                            t.insert("keeper:skip".to_string(), String::new());
                        }
                        if scheduled {
                            t.insert("keeper:schedule".to_string(), "office-hours".to_string());
                        }
                        t
                    });
                    let arn = format!("arn:aws:appstream:{region}:123456789012:image-builder/{name}");
                    observed.builders.push(Builder { region, name, arn, state, reason: None, tags });
                }
                observed
            })
        }

        fn jobs() -> impl Strategy<Value = Job> {
            let selector = prop_oneof![
                prop::sample::subsequence(NAMES.to_vec(), 1..=3)
                    .prop_map(|n| Selector::Names(n.into_iter().map(String::from).collect())),
                (prop::sample::select(vec!["", "team-", "ops-"]), any::<bool>()).prop_map(|(prefix, tagged)| {
                    let tags = if tagged {
                        BTreeMap::from([("keeper:schedule".to_string(), "office-hours".to_string())])
                    } else {
                        BTreeMap::new()
                    };
                    Selector::Matching { prefix: prefix.into(), tags }
                }),
            ];
            (any::<bool>(), selector, any::<bool>(), any::<bool>()).prop_map(|(start, selector, opt_out, wait)| Job {
                action: if start { Action::Start } else { Action::Stop },
                selector,
                required_tags: BTreeMap::new(),
                opt_out_tag: opt_out.then(|| "keeper:skip".to_string()),
                regions: vec!["us-east-1".into(), "eu-west-1".into()],
                appstream_agent_version: None,
                wait_for_stopping: wait,
                reconcile: None,
                scheduled_by: None,
            })
        }

        fn acts(p: &Planned) -> bool {
            matches!(p.step, Step::Start | Step::WaitThenStart | Step::Stop)
        }

        proptest! {
            #[test]
            fn given_any_account_and_job_when_planned_then_opted_out_builders_are_never_touched_and_each_acted_on_once(
                observed in account(), job in jobs()
            ) {
                let planned = plan(&job, &observed);
                for p in planned.iter().filter(|p| acts(p)) {
                    let b = observed
                        .builders
                        .iter()
                        .find(|b| b.region == p.region && b.name == p.name)
                        .expect("only an observed builder is acted on");
                    prop_assert!(name_selected(&job, &b.name), "{} is not selected", p.target());
                    if let Some(tag) = &job.opt_out_tag {
                        let tags = b.tags.as_ref();
                        prop_assert!(tags.is_some(), "{} acted on with its tags unknown", p.target());
                        prop_assert!(!tags.is_some_and(|t| t.contains_key(tag)), "{} opted out", p.target());
                    }
                    match (job.action, &p.step) {
                        (Action::Start, Step::Start) => prop_assert_eq!(&b.state, &State::Stopped),
                        (Action::Start, Step::WaitThenStart) => {
                            prop_assert!(job.wait_for_stopping && b.state == State::Stopping)
                        }
                        (Action::Stop, Step::Stop) => prop_assert_eq!(&b.state, &State::Running),
                        (action, step) => prop_assert!(false, "{:?} planned for a {:?} job", step, action),
                    }
                }
                let mut targets: Vec<String> = planned.iter().map(Planned::target).collect();
                let all = targets.len();
                targets.sort();
                targets.dedup();
                prop_assert_eq!(targets.len(), all, "a builder planned twice");
                for (region, name) in &observed.missing {
                    let p = planned.iter().find(|p| p.region == *region && p.name == *name);
                    prop_assert!(p.is_some_and(|p| !acts(p)), "{region}/{name} does not exist: reported, not acted on");
                }
            }
        }
    }
}
