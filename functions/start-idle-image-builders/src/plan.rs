//! Decides what to do with each image builder. Pure: no SDK types, no I/O; every decision of the function is here.

use std::collections::BTreeMap;
use std::fmt;

use crate::config::{Action, Job, Selector};

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
}

impl shared::report::Verb for Verb {
    const ALL: &'static [Verb] = &[Verb::Start, Verb::WaitAndStart, Verb::Stop];

    fn as_str(self) -> &'static str {
        match self {
            Verb::Start => "start",
            Verb::WaitAndStart => "wait-and-start",
            Verb::Stop => "stop",
        }
    }

    /// A builder started at once or after waiting is one start.
    fn metric(self) -> Option<&'static str> {
        Some(match self {
            Verb::Start | Verb::WaitAndStart => "started",
            Verb::Stop => "stopped",
        })
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
}

impl Planned {
    pub fn target(&self) -> String {
        format!("{}/{}", self.region, self.name)
    }

    pub fn verb(&self, action: Action) -> Verb {
        match (&self.step, action) {
            (Step::WaitThenStart, _) => Verb::WaitAndStart,
            (_, Action::Start) => Verb::Start,
            (_, Action::Stop) => Verb::Stop,
        }
    }

    /// The state before, for the report: `(none)` for a builder that does not exist.
    pub fn before(&self) -> &str {
        self.state_before.as_ref().map(State::as_str).unwrap_or("(none)")
    }

    /// The line of a run that only plans: what would be done to the builder, or why it is left alone.
    pub fn as_planned(&self, action: Action) -> shared::report::Action {
        use shared::report::{Action as Line, Outcome, Verb as _};
        let verb = self.verb(action).as_str();
        match &self.step {
            Step::Skip(why) => Line::new(self.target(), verb, Outcome::Skipped, format!("{}: {why}", self.before())),
            _ => Line::new(self.target(), verb, Outcome::Planned, format!("{}: would {verb}", self.before())),
        }
    }
}

/// Whether the step for this state could act (so the opt-out tag must be known).
fn actionable(action: Action, state: &State) -> bool {
    match action {
        Action::Start => matches!(state.kind(), Kind::Stopped | Kind::Stopping),
        Action::Stop => *state == State::Running,
    }
}

/// Whether a builder now in `state` no longer needs `action`: started (or stopped) meanwhile by someone else, such as
/// another run that read the same STOPPED builder before either of them started it.
pub fn done_meanwhile(action: Action, state: &State) -> bool {
    match action {
        Action::Start => state.kind() == Kind::UpOrBusy,
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
    tag_selector || (job.opt_out_tag.is_some() && actionable(job.action, &builder.state))
}

fn step_for(job: &Job, builder: &Builder) -> Step {
    let state = &builder.state;
    // The report prefixes the state; a broken builder's skip says why it broke (or that it is going away).
    let broken = || match (state, builder.reason.as_deref()) {
        (State::Deleting, _) => "being deleted".to_string(),
        (_, Some(reason)) => reason.to_string(),
        (_, None) => "no reason given".to_string(),
    };
    let unknown = || Step::Skip(format!("state {state} is not known to keeper; left alone"));
    match job.action {
        Action::Start => match state.kind() {
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
pub fn plan(job: &Job, observed: &Observed) -> Vec<Planned> {
    let mut out = Vec::new();
    for builder in &observed.builders {
        if !name_selected(job, &builder.name) {
            continue;
        }
        if let Selector::Matching { tags: wanted, .. } = &job.selector
            && !wanted.is_empty()
        {
            let has_all = builder.tags.as_ref().is_some_and(|tags| wanted.iter().all(|(k, v)| tags.get(k) == Some(v)));
            if !has_all {
                continue;
            }
        }
        let carries = |tags: &BTreeMap<String, String>| job.required_tags.iter().all(|(k, v)| tags.get(k) == Some(v));
        let step = match (&job.opt_out_tag, &builder.tags) {
            (Some(tag), Some(tags)) if tags.contains_key(tag) => Step::Skip(format!("opted out by tag {tag}")),
            // A builder named in the request is still held to TAGS: the request narrows, the settings bound.
            (_, Some(tags)) if !carries(tags) => Step::Skip(format!(
                "does not carry the tags the settings require (TAGS {})",
                job.required_tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")
            )),
            (_, None) if !job.required_tags.is_empty() && actionable(job.action, &builder.state) => {
                Step::Skip("tags unknown; not touched".into())
            }
            (Some(_), None) if actionable(job.action, &builder.state) => {
                // The observer reads tags for every actionable builder; acting without them could override an opt-out.
                Step::Skip("tags unknown; not touched".into())
            }
            _ => step_for(job, builder),
        };
        out.push(Planned {
            region: builder.region.clone(),
            name: builder.name.clone(),
            state_before: Some(builder.state.clone()),
            step,
        });
    }
    for (region, name) in &observed.missing {
        out.push(Planned {
            region: region.clone(),
            name: name.clone(),
            state_before: None,
            step: Step::Skip("no such image builder".into()),
        });
    }
    out.sort_by(|a, b| (&a.region, &a.name).cmp(&(&b.region, &b.name)));
    out
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

    fn steps(job: &Job, builders: Vec<Builder>) -> Vec<(String, Step)> {
        plan(job, &Observed { builders, missing: vec![] }).into_iter().map(|p| (p.name, p.step)).collect()
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
        assert!(plan(&j, &Observed { builders: vec![builder("b1", "STOPPED", &[])], missing: vec![] }).is_empty());
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
