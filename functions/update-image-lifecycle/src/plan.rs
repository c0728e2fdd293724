//! The lifecycle policy: which build versions of an image move to which state. Pure; ages come from the caller's
//! clock.

use std::collections::BTreeMap;

use crate::config::Policy;

/// One build version as observed.
#[derive(Debug, Clone, PartialEq)]
pub struct Build {
    pub arn: String,
    pub version: Vec<u64>,
    pub build: u64,
    pub status: String,
    /// Epoch seconds; `None` when Image Builder's date could not be read.
    pub created: Option<f64>,
    pub tags: BTreeMap<String, String>,
    /// Container images may only be deleted.
    pub container: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Move to this status; `DELETED` also deletes the AMIs (and snapshots, when set) with the execution role.
    To(&'static str),
    Skip(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub arn: String,
    pub from: String,
    pub step: Step,
}

/// The verb of the report for a target status.
pub fn verb(status: &str) -> &'static str {
    match status {
        "DEPRECATED" => "deprecate",
        "DISABLED" => "disable",
        "DELETED" => "delete",
        "AVAILABLE" => "restore",
        _ => "update",
    }
}

/// How far along the lifecycle a status is; a build only ever moves forward under the policy.
fn rank(status: &str) -> Option<u8> {
    match status {
        "AVAILABLE" => Some(0),
        "DEPRECATED" => Some(1),
        "DISABLED" => Some(2),
        "DELETED" => Some(3),
        _ => None,
    }
}

const DAY: f64 = 86_400.0;

/// The decisions for one image's builds, newest first. `trigger` is the build that started the run (never touched).
pub fn plan(policy: &Policy, builds: &[Build], now: f64, trigger: Option<&str>) -> Vec<Decision> {
    let mut sorted: Vec<&Build> =
        builds.iter().filter(|b| policy.version_filter.as_ref().is_none_or(|f| f.matches(&b.version))).collect();
    sorted.sort_by(|a, b| (&b.version, b.build).cmp(&(&a.version, a.build)));
    let kept: Vec<&str> =
        sorted.iter().filter(|b| b.status == "AVAILABLE").take(policy.keep_available).map(|b| b.arn.as_str()).collect();
    let available = sorted.iter().filter(|b| b.status == "AVAILABLE").count();
    sorted
        .into_iter()
        .map(|b| {
            let skip = |why: String| Decision { arn: b.arn.clone(), from: b.status.clone(), step: Step::Skip(why) };
            if trigger == Some(b.arn.as_str()) {
                return skip("the build that triggered this run".into());
            }
            if kept.contains(&b.arn.as_str()) {
                return skip(format!("one of the newest {} AVAILABLE builds", policy.keep_available));
            }
            if let Some((k, v)) = policy.exclude_tags.iter().find(|(k, v)| b.tags.get(*k) == Some(*v)) {
                return skip(format!("excluded by tag {k}={v}"));
            }
            let Some(age_days) = b.created.map(|c| (now - c) / DAY) else {
                return skip("creation date unknown".into());
            };
            let due = |days: Option<u32>| days.is_some_and(|d| age_days >= f64::from(d));
            let target = if due(policy.delete_after_days) {
                "DELETED"
            } else if due(policy.disable_after_days) {
                "DISABLED"
            } else if due(policy.deprecate_after_days) {
                "DEPRECATED"
            } else {
                return skip(format!("{} days old; no policy age reached", age_days.floor()));
            };
            match b.status.as_str() {
                "FAILED" | "CANCELLED" if target == "DELETED" => {}
                "FAILED" | "CANCELLED" => return skip(format!("{} builds can only be deleted", b.status)),
                s if rank(s).is_none() => return skip(format!("{s}: not a state the policy moves")),
                _ => {}
            }
            if b.container && target != "DELETED" {
                return skip("container images can only be deleted".into());
            }
            if rank(&b.status).is_some_and(|r| rank(target).is_some_and(|t| r >= t)) {
                return skip(format!("already {}", b.status));
            }
            if b.status == "AVAILABLE" && available == 1 {
                return skip("the only AVAILABLE build is never retired".into());
            }
            Decision { arn: b.arn.clone(), from: b.status.clone(), step: Step::To(target) }
        })
        .collect()
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
            status: status.into(),
            created: Some(NOW - age_days * DAY),
            tags: BTreeMap::new(),
            container: false,
        }
    }

    fn steps(policy: &Policy, builds: &[Build], trigger: Option<&str>) -> Vec<(String, Step)> {
        plan(policy, builds, NOW, trigger)
            .into_iter()
            .map(|d| (d.arn.rsplit("/web/").next().unwrap().to_string(), d.step))
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
                ("1.10.0/1".into(), Step::Skip("one of the newest 2 AVAILABLE builds".into())),
                ("1.2.0/1".into(), Step::Skip("one of the newest 2 AVAILABLE builds".into())),
                ("1.1.0/2".into(), Step::Skip("10 days old; no policy age reached".into())),
                ("1.1.0/1".into(), Step::To("DEPRECATED")),
                ("1.0.0/2".into(), Step::To("DISABLED")),
                ("1.0.0/1".into(), Step::To("DISABLED")),
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
        assert_eq!(decided[2], ("1.0.0/1".into(), Step::Skip("the build that triggered this run".into())));
        assert_eq!(decided[0].1, Step::To("DISABLED"));
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
        assert_eq!(decided[1], ("1.0.0/4".into(), Step::Skip("BUILDING: not a state the policy moves".into())));
        assert_eq!(decided[2], ("1.0.0/3".into(), Step::Skip("already DEPRECATED".into())));
        assert_eq!(decided[3], ("1.0.0/2".into(), Step::Skip("already DISABLED".into())));
        assert_eq!(decided[4], ("1.0.0/1".into(), Step::Skip("FAILED builds can only be deleted".into())));
        p.delete_after_days = Some(180);
        let decided = steps(&p, &builds, None);
        assert_eq!(decided[4], ("1.0.0/1".into(), Step::To("DELETED")));
        assert_eq!(decided[3], ("1.0.0/2".into(), Step::To("DELETED")));
    }

    #[test]
    fn given_the_only_available_build_when_old_then_never_retired() {
        let mut p = policy();
        p.keep_available = 0;
        let decided = steps(&p, &[build("1.0.0", 1, "AVAILABLE", 400.0), build("1.0.0", 2, "DEPRECATED", 400.0)], None);
        assert_eq!(decided[1], ("1.0.0/1".into(), Step::Skip("the only AVAILABLE build is never retired".into())));
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
                ("1.0.0/3".into(), Step::To("DISABLED")),
                ("1.0.0/2".into(), Step::Skip("container images can only be deleted".into())),
                ("1.0.0/1".into(), Step::Skip("excluded by tag keep=true".into())),
            ],
            "2.0.0 is outside 1.x.x and not considered at all"
        );
    }
}
