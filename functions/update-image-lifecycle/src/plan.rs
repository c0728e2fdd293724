//! Every decision of the function: which build versions of an image move to which state under the policy, and the
//! update an explicit request asks for. Pure; ages come from the caller's clock.

use std::collections::BTreeMap;
use std::fmt;

use shared::report::Verb as _;
use shared::report::{Action, Outcome};
use time::OffsetDateTime;

pub use crate::config::Status;
use crate::config::{ExclusionRules, Explicit, IncludeResources, Policy};

impl Status {
    /// The report's verb for moving a build to this state.
    pub fn verb(self) -> Verb {
        match self {
            Status::Available => Verb::Restore,
            Status::Deprecated => Verb::Deprecate,
            Status::Disabled => Verb::Disable,
            Status::Deleted => Verb::Delete,
        }
    }
}

/// A build version's status as Image Builder reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildStatus {
    Lifecycle(Status),
    Failed,
    Cancelled,
    /// Still being built (PENDING, BUILDING, TESTING, ...) or a status newer than keeper: never moved.
    Other(String),
}

impl BuildStatus {
    pub fn parse(name: &str) -> BuildStatus {
        match name {
            "FAILED" => BuildStatus::Failed,
            "CANCELLED" => BuildStatus::Cancelled,
            other => {
                Status::parse(other).map(BuildStatus::Lifecycle).unwrap_or_else(|| BuildStatus::Other(other.into()))
            }
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            BuildStatus::Lifecycle(s) => s.as_str(),
            BuildStatus::Failed => "FAILED",
            BuildStatus::Cancelled => "CANCELLED",
            BuildStatus::Other(name) => name,
        }
    }
}

impl fmt::Display for BuildStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The report's verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Deprecate,
    Disable,
    Delete,
    Restore,
    /// A build the policy leaves alone.
    Keep,
    /// Listing an image's builds (a region that could not be listed).
    List,
    /// Planning one image (a plan that could not be made).
    Plan,
}

impl Verb {
    pub const CHANGES: [Verb; 4] = [Verb::Deprecate, Verb::Disable, Verb::Delete, Verb::Restore];
}

impl shared::report::Verb for Verb {
    const ALL: &'static [Verb] =
        &[Verb::Deprecate, Verb::Disable, Verb::Delete, Verb::Restore, Verb::Keep, Verb::List, Verb::Plan];

    fn as_str(self) -> &'static str {
        match self {
            Verb::Deprecate => "deprecate",
            Verb::Disable => "disable",
            Verb::Delete => "delete",
            Verb::Restore => "restore",
            Verb::Keep => "keep",
            Verb::List => "list",
            Verb::Plan => "plan",
        }
    }

    fn metric(self) -> Option<&'static str> {
        match self {
            Verb::Deprecate => Some("deprecated"),
            Verb::Disable => Some("disabled"),
            Verb::Delete => Some("deleted"),
            Verb::Restore => Some("restored"),
            Verb::Keep | Verb::List | Verb::Plan => None,
        }
    }
}

/// One build version as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct Build {
    pub arn: String,
    pub version: Vec<u64>,
    pub build: u64,
    pub status: BuildStatus,
    /// Epoch seconds; `None` when Image Builder's date could not be read.
    pub created: Option<f64>,
    pub tags: BTreeMap<String, String>,
    /// Container images may only be deleted.
    pub container: bool,
}

/// One StartResourceStateUpdate to make.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub arn: String,
    pub status: Status,
    pub update_at: Option<OffsetDateTime>,
    pub include_resources: Option<IncludeResources>,
    pub exclusion_rules: Option<ExclusionRules>,
    pub execution_role: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Update(Update),
    Skip(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub arn: String,
    /// The status it was seen in; `None` for an explicit request, which is not read first.
    pub from: Option<BuildStatus>,
    pub step: Step,
}

impl Decision {
    /// `AVAILABLE → DEPRECATED`, or `→ DEPRECATED` when the status before was not read.
    pub fn change(&self, to: Status) -> String {
        match &self.from {
            Some(from) => format!("{from} → {to}"),
            None => format!("→ {to}"),
        }
    }
}

/// An explicit request is one update, exactly as asked (every rule was checked when it was validated).
pub fn explicit(e: &Explicit) -> Decision {
    Decision {
        arn: e.resource_arn.clone(),
        from: None,
        step: Step::Update(Update {
            arn: e.resource_arn.clone(),
            status: e.status,
            update_at: e.update_at,
            include_resources: e.include_resources.clone(),
            exclusion_rules: e.exclusion_rules.clone(),
            execution_role: e.execution_role.clone(),
        }),
    }
}

const DAY: f64 = 86_400.0;

/// The decisions for one image's builds, newest first. `trigger` is the build that started the run (never touched).
pub fn plan(policy: &Policy, builds: &[Build], now: f64, trigger: Option<&str>) -> Vec<Decision> {
    let mut sorted: Vec<&Build> =
        builds.iter().filter(|b| policy.version_filter.as_ref().is_none_or(|f| f.matches(&b.version))).collect();
    sorted.sort_by(|a, b| (&b.version, b.build).cmp(&(&a.version, a.build)));
    let available: Vec<&str> = sorted
        .iter()
        .filter(|b| b.status == BuildStatus::Lifecycle(Status::Available))
        .map(|b| b.arn.as_str())
        .collect();
    let kept = &available[..policy.keep_available.min(available.len())];
    // The image's newest AVAILABLE build, managed or not: the one build it always keeps whatever KEEP_AVAILABLE says.
    let newest = builds
        .iter()
        .filter(|b| b.status == BuildStatus::Lifecycle(Status::Available))
        .max_by(|a, b| (&a.version, a.build).cmp(&(&b.version, b.build)))
        .map(|b| b.arn.as_str());
    let all_available = builds.iter().filter(|b| b.status == BuildStatus::Lifecycle(Status::Available)).count();
    sorted
        .into_iter()
        .map(|b| {
            let decide = |step: Step| Decision { arn: b.arn.clone(), from: Some(b.status.clone()), step };
            let skip = |why: String| decide(Step::Skip(why));
            if trigger == Some(b.arn.as_str()) {
                return skip("the build that triggered this run".into());
            }
            if kept.contains(&b.arn.as_str()) {
                return skip(format!("one of the newest {} AVAILABLE builds", policy.keep_available));
            }
            // Whatever KEEP_AVAILABLE says (0 included), an image always keeps a build that can be launched.
            if newest == Some(b.arn.as_str()) {
                let which = if all_available == 1 { "only" } else { "newest" };
                return skip(format!("the {which} AVAILABLE build is never retired"));
            }
            if let Some((k, v)) = policy.exclude_tags.iter().find(|(k, v)| b.tags.get(*k) == Some(*v)) {
                return skip(format!("excluded by tag {k}={v}"));
            }
            let Some(age_days) = b.created.map(|c| (now - c) / DAY) else {
                return skip("creation date unknown".into());
            };
            let due = |days: Option<u32>| days.is_some_and(|d| age_days >= f64::from(d));
            let target = if due(policy.delete_after_days) {
                Status::Deleted
            } else if due(policy.disable_after_days) {
                Status::Disabled
            } else if due(policy.deprecate_after_days) {
                Status::Deprecated
            } else {
                return skip(format!("{} days old; no policy age reached", age_days.floor()));
            };
            let current = match &b.status {
                BuildStatus::Failed | BuildStatus::Cancelled if target == Status::Deleted => None,
                BuildStatus::Failed | BuildStatus::Cancelled => {
                    return skip(format!("{} builds can only be deleted", b.status));
                }
                BuildStatus::Other(s) => return skip(format!("{s}: not a state the policy moves")),
                BuildStatus::Lifecycle(s) => Some(*s),
            };
            if b.container && target != Status::Deleted {
                return skip("container images can only be deleted".into());
            }
            if let Some(current) = current.filter(|c| *c >= target) {
                return skip(format!("already {current}"));
            }
            // Deleting takes the AMIs (and snapshots when set) with the execution role; other moves only the record.
            let deleting = target == Status::Deleted;
            decide(Step::Update(Update {
                arn: b.arn.clone(),
                status: target,
                update_at: None,
                include_resources: deleting.then_some(IncludeResources {
                    amis: Some(true),
                    snapshots: Some(policy.include_snapshots),
                    containers: None,
                }),
                exclusion_rules: None,
                execution_role: policy.execution_role.clone().filter(|_| deleting),
            }))
        })
        .collect()
}

/// The report line of a decision in a run that only plans.
pub fn planned(d: &Decision) -> Action {
    match &d.step {
        Step::Skip(why) => kept(d, why),
        Step::Update(u) => Action::new(&d.arn, u.status.verb().as_str(), Outcome::Planned, d.change(u.status)),
    }
}

/// The report line of a build the plan leaves alone.
pub fn kept(d: &Decision, why: &str) -> Action {
    let from = d.from.as_ref().map(BuildStatus::as_str).unwrap_or_default();
    Action::new(&d.arn, Verb::Keep.as_str(), Outcome::Skipped, format!("{from}: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::VersionFilter;

    const NOW: f64 = 1_800_000_000.0;

    fn policy() -> Policy {
        Policy {
            keep_available: 2,
            deprecate_after_days: Some(30),
            disable_after_days: Some(90),
            delete_after_days: None,
            execution_role: None,
            include_snapshots: false,
            exclude_tags: BTreeMap::new(),
            version_filter: None,
        }
    }

    fn build(version: &str, number: u64, status: &str, age_days: f64) -> Build {
        Build {
            arn: format!("arn:aws:imagebuilder:us-east-1:123456789012:image/web/{version}/{number}"),
            version: version.split('.').map(|p| p.parse().unwrap()).collect(),
            build: number,
            status: BuildStatus::parse(status),
            created: Some(NOW - age_days * DAY),
            tags: BTreeMap::new(),
            container: false,
        }
    }

    /// A decision as the tests compare it: the target state, or why the build is skipped.
    #[derive(Debug, PartialEq)]
    enum Got {
        To(Status),
        Skip(String),
    }

    fn steps(policy: &Policy, builds: &[Build], trigger: Option<&str>) -> Vec<(String, Got)> {
        plan(policy, builds, NOW, trigger)
            .into_iter()
            .map(|d| {
                let got = match d.step {
                    Step::Update(u) => Got::To(u.status),
                    Step::Skip(why) => Got::Skip(why),
                };
                (d.arn.rsplit("/web/").next().unwrap().to_string(), got)
            })
            .collect()
    }

    #[test]
    fn given_builds_of_many_ages_when_planned_then_newest_kept_and_older_ones_move_by_age() {
        let builds = vec![
            build("1.0.0", 1, "AVAILABLE", 200.0),
            build("1.0.0", 2, "AVAILABLE", 100.0),
            build("1.1.0", 1, "AVAILABLE", 45.0),
            build("1.1.0", 2, "AVAILABLE", 10.0),
            build("1.2.0", 1, "AVAILABLE", 5.0),
            build("1.10.0", 1, "AVAILABLE", 1.0),
        ];
        assert_eq!(
            steps(&policy(), &builds, None),
            vec![
                ("1.10.0/1".into(), Got::Skip("one of the newest 2 AVAILABLE builds".into())),
                ("1.2.0/1".into(), Got::Skip("one of the newest 2 AVAILABLE builds".into())),
                ("1.1.0/2".into(), Got::Skip("10 days old; no policy age reached".into())),
                ("1.1.0/1".into(), Got::To(Status::Deprecated)),
                ("1.0.0/2".into(), Got::To(Status::Disabled)),
                ("1.0.0/1".into(), Got::To(Status::Disabled)),
            ],
            "versions sort numerically (1.10.0 is newest) and by build number"
        );
    }

    #[test]
    fn given_the_triggering_build_when_planned_then_never_touched() {
        let builds = vec![
            build("1.0.0", 1, "AVAILABLE", 200.0),
            build("1.0.0", 2, "AVAILABLE", 200.0),
            build("1.0.0", 3, "AVAILABLE", 200.0),
        ];
        let mut p = policy();
        p.keep_available = 0;
        let trigger = builds[0].arn.clone();
        let decided = steps(&p, &builds, Some(&trigger));
        assert_eq!(decided[2], ("1.0.0/1".into(), Got::Skip("the build that triggered this run".into())));
        assert_eq!(decided[1].1, Got::To(Status::Disabled));
        assert_eq!(
            decided[0].1,
            Got::Skip("the newest AVAILABLE build is never retired".into()),
            "even with KEEP_AVAILABLE=0"
        );
    }

    #[test]
    fn given_failed_and_deprecated_builds_when_planned_then_only_forward_moves_and_failed_only_to_deleted() {
        let mut p = policy();
        p.keep_available = 0;
        let builds = vec![
            build("2.0.0", 1, "AVAILABLE", 1.0),
            build("1.0.0", 1, "FAILED", 200.0),
            build("1.0.0", 2, "DISABLED", 200.0),
            build("1.0.0", 3, "DEPRECATED", 45.0),
            build("1.0.0", 4, "BUILDING", 200.0),
        ];
        let decided = steps(&p, &builds, None);
        assert_eq!(decided[1], ("1.0.0/4".into(), Got::Skip("BUILDING: not a state the policy moves".into())));
        assert_eq!(decided[2], ("1.0.0/3".into(), Got::Skip("already DEPRECATED".into())));
        assert_eq!(decided[3], ("1.0.0/2".into(), Got::Skip("already DISABLED".into())));
        assert_eq!(decided[4], ("1.0.0/1".into(), Got::Skip("FAILED builds can only be deleted".into())));
        p.delete_after_days = Some(180);
        let decided = steps(&p, &builds, None);
        assert_eq!(decided[4], ("1.0.0/1".into(), Got::To(Status::Deleted)));
        assert_eq!(decided[3], ("1.0.0/2".into(), Got::To(Status::Deleted)));
    }

    #[test]
    fn given_the_only_available_build_when_old_then_never_retired() {
        let mut p = policy();
        p.keep_available = 0;
        let decided = steps(&p, &[build("1.0.0", 1, "AVAILABLE", 400.0), build("1.0.0", 2, "DEPRECATED", 400.0)], None);
        assert_eq!(decided[1], ("1.0.0/1".into(), Got::Skip("the only AVAILABLE build is never retired".into())));
    }

    #[test]
    fn given_excluded_tags_containers_and_a_version_filter_when_planned_then_those_builds_are_left_alone() {
        let mut p = policy();
        p.keep_available = 0;
        p.exclude_tags = BTreeMap::from([("keep".to_string(), "true".to_string())]);
        p.version_filter = VersionFilter::parse("1.x.x");
        let mut tagged = build("1.0.0", 1, "AVAILABLE", 100.0);
        tagged.tags.insert("keep".into(), "true".into());
        let mut container = build("1.0.0", 2, "AVAILABLE", 100.0);
        container.container = true;
        let decided = steps(
            &p,
            &[tagged, container, build("1.0.0", 3, "AVAILABLE", 100.0), build("2.0.0", 1, "AVAILABLE", 100.0)],
            None,
        );
        assert_eq!(
            decided,
            vec![
                ("1.0.0/3".into(), Got::To(Status::Disabled)),
                ("1.0.0/2".into(), Got::Skip("container images can only be deleted".into())),
                ("1.0.0/1".into(), Got::Skip("excluded by tag keep=true".into())),
            ],
            "2.0.0 is outside 1.x.x and not considered at all"
        );
    }

    #[test]
    fn given_a_deletion_when_planned_then_it_takes_the_amis_the_snapshots_setting_and_the_role_and_others_take_neither()
    {
        let mut p = policy();
        p.keep_available = 0;
        p.delete_after_days = Some(180);
        p.include_snapshots = true;
        p.execution_role = Some("arn:aws:iam::123456789012:role/lifecycle".into());
        let decided = plan(
            &p,
            &[
                build("2.0.0", 1, "AVAILABLE", 1.0),
                build("1.0.0", 1, "AVAILABLE", 200.0),
                build("1.1.0", 1, "AVAILABLE", 100.0),
            ],
            NOW,
            None,
        );
        let updates: Vec<&Update> =
            decided.iter().filter_map(|d| if let Step::Update(u) = &d.step { Some(u) } else { None }).collect();
        let deleted = updates.iter().find(|u| u.status == Status::Deleted).expect("the 200-day-old build is deleted");
        assert_eq!(
            deleted.include_resources,
            Some(IncludeResources { amis: Some(true), snapshots: Some(true), containers: None })
        );
        assert_eq!(deleted.execution_role.as_deref(), Some("arn:aws:iam::123456789012:role/lifecycle"));
        let disabled =
            updates.iter().find(|u| u.status == Status::Disabled).expect("the 100-day-old build is disabled");
        assert_eq!((&disabled.include_resources, &disabled.execution_role), (&None, &None));
        assert_eq!(decided[1].change(Status::Disabled), "AVAILABLE → DISABLED");
    }

    #[test]
    fn given_an_explicit_request_when_planned_then_one_update_with_every_field_as_asked() {
        let request: crate::config::Request = serde_json::from_value(serde_json::json!({
            "resourceArn": "arn:aws:imagebuilder:us-east-1:123456789012:image/web/1.0.0/1", "state": "DELETED",
            "executionRole": "lifecycle", "includeResources": {"amis": true, "snapshots": true},
            "exclusionRules": {"amis": {"isPublic": true}}}))
        .unwrap();
        let e = Explicit::new(request, NOW).unwrap();
        let d = explicit(&e);
        assert_eq!(d.from, None);
        assert_eq!(d.change(Status::Deleted), "→ DELETED");
        let Step::Update(u) = d.step else { panic!("an update") };
        assert_eq!((u.arn.as_str(), u.status), (e.resource_arn.as_str(), Status::Deleted));
        assert_eq!(u.include_resources, e.include_resources);
        assert_eq!(u.exclusion_rules, e.exclusion_rules);
        assert_eq!(u.execution_role.as_deref(), Some("lifecycle"));
    }

    #[test]
    fn given_every_status_name_when_parsed_then_it_reads_back() {
        for s in Status::ALL {
            assert_eq!(BuildStatus::parse(s.as_str()), BuildStatus::Lifecycle(s));
        }
        assert_eq!(BuildStatus::parse("FAILED"), BuildStatus::Failed);
        assert_eq!(BuildStatus::parse("BUILDING"), BuildStatus::Other("BUILDING".into()));
        assert_eq!(Status::Available.verb().as_str(), "restore");
    }

    mod invariants {
        //! The policy's promises, checked over generated build sets and settings rather than chosen cases.

        use proptest::prelude::*;

        use super::*;

        const STATUSES: [&str; 7] =
            ["AVAILABLE", "DEPRECATED", "DISABLED", "DELETED", "FAILED", "CANCELLED", "BUILDING"];

        fn builds() -> impl Strategy<Value = Vec<Build>> {
            let one = (0u64..3, 0u64..3, 1u64..4, 0usize..STATUSES.len(), 0.0f64..400.0, any::<bool>(), any::<bool>());
            prop::collection::vec(one, 0..12).prop_map(|raw| {
                let mut out: Vec<Build> = Vec::new();
                for (minor, patch, number, status, age, container, keep) in raw {
                    let version = format!("1.{minor}.{patch}");
                    let mut b = build(&version, number, STATUSES[status], age);
                    b.container = container;
                    if keep {
                        b.tags.insert("keep".into(), "true".into());
                    }
                    if !out.iter().any(|o| o.arn == b.arn) {
                        out.push(b);
                    }
                }
                out
            })
        }

        fn policies() -> impl Strategy<Value = Policy> {
            let days = prop::option::of(0u32..300);
            (0usize..4, days.clone(), days.clone(), days, any::<bool>()).prop_map(
                |(keep_available, deprecate, disable, delete, exclude)| Policy {
                    keep_available,
                    deprecate_after_days: deprecate,
                    disable_after_days: disable,
                    delete_after_days: delete,
                    execution_role: Some("lifecycle".into()),
                    include_snapshots: false,
                    exclude_tags: if exclude {
                        BTreeMap::from([("keep".into(), "true".into())])
                    } else {
                        BTreeMap::new()
                    },
                    version_filter: None,
                },
            )
        }

        proptest! {
            #[test]
            fn given_any_builds_and_settings_when_planned_then_the_newest_available_build_is_never_touched(
                builds in builds(), policy in policies(), trigger in prop::option::of(0usize..12)
            ) {
                let trigger = trigger.and_then(|i| builds.get(i)).map(|b| b.arn.clone());
                let decided = plan(&policy, &builds, NOW, trigger.as_deref());
                let updated = |arn: &str| decided.iter().any(|d| d.arn == arn && matches!(d.step, Step::Update(_)));
                let newest = builds
                    .iter()
                    .filter(|b| b.status == BuildStatus::Lifecycle(Status::Available))
                    .max_by(|a, b| (&a.version, a.build).cmp(&(&b.version, b.build)));
                if let Some(newest) = newest {
                    prop_assert!(!updated(&newest.arn), "the newest AVAILABLE build {} was retired", newest.arn);
                }
                if let Some(trigger) = &trigger {
                    prop_assert!(!updated(trigger), "the triggering build was touched");
                }
                prop_assert_eq!(decided.len(), builds.len(), "one decision per build");
            }

            #[test]
            fn given_any_builds_and_settings_when_planned_then_states_only_move_forward_and_exclusions_hold(
                builds in builds(), policy in policies()
            ) {
                for d in plan(&policy, &builds, NOW, None) {
                    let Step::Update(u) = &d.step else { continue };
                    let b = builds.iter().find(|b| b.arn == d.arn).expect("a decision is about a given build");
                    match &b.status {
                        BuildStatus::Lifecycle(from) => prop_assert!(u.status > *from, "{} moved {from} → {}", b.arn, u.status),
                        BuildStatus::Failed | BuildStatus::Cancelled => prop_assert_eq!(u.status, Status::Deleted),
                        BuildStatus::Other(s) => prop_assert!(false, "{} in {s} was moved", b.arn),
                    }
                    if b.container {
                        prop_assert_eq!(u.status, Status::Deleted, "a container image only goes to DELETED");
                    }
                    prop_assert!(policy.exclude_tags.is_empty() || !b.tags.contains_key("keep"), "an excluded build moved");
                    prop_assert_eq!(u.include_resources.is_some(), u.status == Status::Deleted);
                }
            }
        }
    }
}
