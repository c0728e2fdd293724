//! The new `distributions` array. Pure: generic over the distribution type, so the SDK's own values are copied whole
//! (`Clone`) and no member can be lost in a conversion; only the region-bound members are touched, by
//! [`Distribution::copy_for`].

use std::fmt::Debug;

use shared::error::InvalidInput;

use crate::config::{Change, Overrides, Regions};

/// What the plan needs of a distribution.
pub trait Distribution: Clone + PartialEq + Debug {
    fn region(&self) -> &str;
    /// A copy for `region`: every member of `self` except the region and the region-bound members, which come from
    /// `overrides` or are dropped (a foreign region's id must never be copied).
    fn copy_for(&self, region: &str, overrides: &Overrides) -> Copied<Self>;
}

/// A distribution copied for a new region, and what happened to its region-bound members.
#[derive(Debug, Clone, PartialEq)]
pub struct Copied<D> {
    pub distribution: D,
    /// Members dropped because they name something in the template's region and no override was given.
    pub dropped: Vec<&'static str>,
    /// Members set from `regionOverrides`.
    pub overridden: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Added {
    pub region: String,
    pub template: String,
    pub dropped: Vec<&'static str>,
    pub overridden: Vec<&'static str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan<D> {
    /// The whole new array: existing entries in their order (minus the removed ones), added ones appended.
    pub distributions: Vec<D>,
    pub added: Vec<Added>,
    pub removed: Vec<String>,
    /// Requested changes that were already true: `(region, why)`.
    pub already: Vec<(String, String)>,
}

impl<D> Plan<D> {
    /// Whether an update is needed at all.
    pub fn changes(&self) -> bool {
        !self.added.is_empty() || !self.removed.is_empty()
    }
}

pub fn plan<D: Distribution>(change: &Change, current: &[D]) -> Result<Plan<D>, InvalidInput> {
    // A templateRegion that is not there is a mistake in the request, even when nothing needs copying this time.
    let template = template(change, current)?;
    let present = |r: &str| current.iter().any(|d| d.region() == r);
    let mut already = Vec::new();
    let (add, remove): (Vec<String>, Vec<String>) = match &change.regions {
        Regions::AddRemove { add, remove } => {
            for r in add.iter().filter(|r| present(r)) {
                already.push((r.clone(), "already distributed to".to_string()));
            }
            for r in remove.iter().filter(|r| !present(r)) {
                already.push((r.clone(), "not distributed to".to_string()));
            }
            (
                add.iter().filter(|r| !present(r)).cloned().collect(),
                remove.iter().filter(|r| present(r)).cloned().collect(),
            )
        }
        Regions::Set(set) => (
            set.iter().filter(|r| !present(r)).cloned().collect(),
            current.iter().map(|d| d.region().to_string()).filter(|r| !set.contains(r)).collect(),
        ),
    };
    let kept: Vec<D> = current.iter().filter(|d| !remove.iter().any(|r| r == d.region())).cloned().collect();
    if kept.is_empty() && add.is_empty() {
        let field = if matches!(change.regions, Regions::Set(_)) { "setRegions" } else { "removeRegions" };
        return Err(InvalidInput::new(field, "would leave the configuration without a region"));
    }
    let mut distributions = kept;
    let mut added = Vec::new();
    if !add.is_empty() {
        for region in &add {
            let overrides = change.overrides.get(region).cloned().unwrap_or_default();
            let copied = template.copy_for(region, &overrides);
            added.push(Added {
                region: region.clone(),
                template: template.region().to_string(),
                dropped: copied.dropped,
                overridden: copied.overridden,
            });
            distributions.push(copied.distribution);
        }
    }
    Ok(Plan { distributions, added, removed: remove, already })
}

/// The distribution new regions are copied from: `templateRegion`, else the ARN's region, else the first.
fn template<'a, D: Distribution>(change: &Change, current: &'a [D]) -> Result<&'a D, InvalidInput> {
    if let Some(wanted) = &change.template_region {
        return current.iter().find(|d| d.region() == wanted).ok_or_else(|| {
            let regions: Vec<&str> = current.iter().map(|d| d.region()).collect();
            InvalidInput::new(
                "templateRegion",
                format!("`{wanted}` is not a region of this configuration ({})", regions.join(", ")),
            )
        });
    }
    current.iter().find(|d| d.region() == change.arn_region).or_else(|| current.first()).ok_or_else(|| {
        InvalidInput::new("distributionConfigurationArn", "has no distribution to copy new regions from")
    })
}

/// The verbs of update-distribution-regions' report lines, and the counters their applied lines add to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    AddRegion,
    RemoveRegion,
    /// A configuration's update as a whole: skipped (already as desired), or failed.
    Update,
    Read,
    Plan,
    /// A document or drift repair as a whole (an upload a newer one replaced).
    Reconcile,
}

impl shared::report::Verb for Verb {
    const ALL: &'static [Verb] =
        &[Verb::AddRegion, Verb::RemoveRegion, Verb::Update, Verb::Read, Verb::Plan, Verb::Reconcile];

    fn as_str(self) -> &'static str {
        match self {
            Verb::AddRegion => "add-region",
            Verb::RemoveRegion => "remove-region",
            Verb::Update => "update",
            Verb::Read => "read",
            Verb::Plan => "plan",
            Verb::Reconcile => "reconcile",
        }
    }

    fn metric(self) -> Option<&'static str> {
        match self {
            Verb::AddRegion => Some("regionsAdded"),
            Verb::RemoveRegion => Some("regionsRemoved"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A stand-in with one copied member (`name`) and one regional member (`kms`).
    #[derive(Debug, Clone, PartialEq)]
    struct Fake {
        region: String,
        name: String,
        kms: Option<String>,
    }

    impl Distribution for Fake {
        fn region(&self) -> &str {
            &self.region
        }
        fn copy_for(&self, region: &str, overrides: &Overrides) -> Copied<Self> {
            let (kms, dropped, overridden) = match (&overrides.kms_key_id, &self.kms) {
                (Some(k), _) => (Some(k.clone()), vec![], vec!["kmsKeyId"]),
                (None, Some(_)) => (None, vec!["kmsKeyId"], vec![]),
                (None, None) => (None, vec![], vec![]),
            };
            Copied { distribution: Fake { region: region.into(), name: self.name.clone(), kms }, dropped, overridden }
        }
    }

    fn fake(region: &str) -> Fake {
        Fake { region: region.into(), name: format!("ami-{region}"), kms: Some(format!("key-{region}")) }
    }

    fn change(regions: Regions) -> Change {
        Change {
            arn: "arn:aws:imagebuilder:us-east-1:123456789012:distribution-configuration/x".into(),
            arn_region: "us-east-1".into(),
            regions,
            template_region: None,
            overrides: BTreeMap::new(),
        }
    }

    fn add_remove(add: &[&str], remove: &[&str]) -> Regions {
        Regions::AddRemove {
            add: add.iter().map(|s| s.to_string()).collect(),
            remove: remove.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn regions(plan: &Plan<Fake>) -> Vec<&str> {
        plan.distributions.iter().map(|d| d.region.as_str()).collect()
    }

    #[test]
    fn given_add_and_remove_when_planned_then_existing_order_kept_removed_gone_added_appended() {
        let current = vec![fake("eu-west-1"), fake("us-east-1"), fake("ap-south-1")];
        let plan = plan(&change(add_remove(&["eu-west-2", "ca-central-1"], &["ap-south-1"])), &current).unwrap();
        assert_eq!(regions(&plan), vec!["eu-west-1", "us-east-1", "eu-west-2", "ca-central-1"]);
        assert_eq!(plan.removed, vec!["ap-south-1"]);
        assert!(plan.changes());
        assert_eq!(plan.distributions[0], current[0], "untouched entries are the same values");
        assert_eq!(plan.added[0].template, "us-east-1", "the ARN's region is the default template");
        assert_eq!(plan.distributions[2].name, "ami-us-east-1");
        assert_eq!(plan.distributions[2].kms, None);
        assert_eq!(plan.added[0].dropped, vec!["kmsKeyId"]);
    }

    #[test]
    fn given_template_choices_when_planned_then_explicit_then_arn_region_then_first() {
        let current = vec![fake("eu-west-1"), fake("us-east-1")];
        let mut explicit = change(add_remove(&["eu-west-2"], &[]));
        explicit.template_region = Some("eu-west-1".into());
        assert_eq!(plan(&explicit, &current).unwrap().added[0].template, "eu-west-1");
        let mut elsewhere = change(add_remove(&["eu-west-2"], &[]));
        elsewhere.arn_region = "sa-east-1".into();
        assert_eq!(
            plan(&elsewhere, &current).unwrap().added[0].template,
            "eu-west-1",
            "the first when the ARN's region is absent"
        );
        let mut missing = change(add_remove(&["eu-west-2"], &[]));
        missing.template_region = Some("ap-south-1".into());
        let err = plan(&missing, &current).unwrap_err();
        assert!(
            err.to_string().contains("`ap-south-1` is not a region of this configuration (eu-west-1, us-east-1)"),
            "{err}"
        );
    }

    #[test]
    fn given_override_when_added_then_regional_member_taken_from_it() {
        let mut c = change(add_remove(&["eu-west-2"], &[]));
        c.overrides
            .insert("eu-west-2".into(), Overrides { kms_key_id: Some("key-eu-west-2".into()), ..Overrides::default() });
        let plan = plan(&c, &[fake("us-east-1")]).unwrap();
        assert_eq!(plan.distributions[1].kms.as_deref(), Some("key-eu-west-2"));
        assert_eq!(plan.added[0].overridden, vec!["kmsKeyId"]);
        assert!(plan.added[0].dropped.is_empty());
    }

    #[test]
    fn given_set_regions_when_planned_then_difference_added_and_removed() {
        let current = vec![fake("us-east-1"), fake("eu-west-1"), fake("ap-south-1")];
        let plan =
            plan(&change(Regions::Set(vec!["eu-west-1".into(), "us-east-1".into(), "eu-west-2".into()])), &current)
                .unwrap();
        assert_eq!(regions(&plan), vec!["us-east-1", "eu-west-1", "eu-west-2"]);
        assert_eq!(plan.removed, vec!["ap-south-1"]);
    }

    #[test]
    fn given_changes_already_true_when_planned_then_no_update_and_noted() {
        let current = vec![fake("us-east-1"), fake("eu-west-1")];
        let plan = plan(&change(add_remove(&["eu-west-1"], &["ap-south-1"])), &current).unwrap();
        assert!(!plan.changes());
        assert_eq!(plan.distributions, current);
        assert_eq!(
            plan.already,
            vec![
                ("eu-west-1".to_string(), "already distributed to".to_string()),
                ("ap-south-1".to_string(), "not distributed to".to_string())
            ]
        );
        let same = super::plan(&change(Regions::Set(vec!["eu-west-1".into(), "us-east-1".into()])), &current).unwrap();
        assert!(!same.changes(), "set to the same regions in another order changes nothing");
    }

    #[test]
    fn given_removal_of_every_region_when_planned_then_refused() {
        let err = plan(&change(add_remove(&[], &["us-east-1"])), &[fake("us-east-1")]).unwrap_err();
        assert!(err.to_string().contains("`removeRegions` would leave the configuration without a region"), "{err}");
        let replaced = plan(&change(Regions::Set(vec!["eu-west-2".into()])), &[fake("us-east-1")]).unwrap();
        assert_eq!(regions(&replaced), vec!["eu-west-2"], "replacing the last region is not emptying");
        assert_eq!(replaced.added[0].template, "us-east-1", "a region being removed can still be the template");
    }

    mod invariants {
        //! The plan's promises, checked over generated configurations and requests rather than chosen cases.

        use proptest::prelude::*;

        use super::*;

        const POOL: [&str; 6] = ["us-east-1", "us-west-2", "eu-west-1", "eu-central-1", "ap-south-1", "sa-east-1"];

        /// Distinct regions from the pool, in a generated order; each entry has its own members.
        fn configuration() -> impl Strategy<Value = Vec<Fake>> {
            prop::sample::subsequence(POOL.to_vec(), 1..=POOL.len()).prop_shuffle().prop_map(|regions| {
                regions
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| Fake {
                        region: r.into(),
                        name: format!("ami-{i}-{r}"),
                        kms: (i % 2 == 0).then(|| format!("key-{r}")),
                    })
                    .collect()
            })
        }

        fn request() -> impl Strategy<Value = Regions> {
            let some = || prop::sample::subsequence(POOL.to_vec(), 0..=POOL.len());
            prop_oneof![
                (some(), some()).prop_map(|(add, remove)| Regions::AddRemove {
                    remove: remove.iter().filter(|r| !add.contains(r)).map(|r| r.to_string()).collect(),
                    add: add.into_iter().map(String::from).collect(),
                }),
                prop::sample::subsequence(POOL.to_vec(), 1..=POOL.len())
                    .prop_map(|set| Regions::Set(set.into_iter().map(String::from).collect())),
            ]
        }

        proptest! {
            #[test]
            fn given_any_configuration_and_request_when_planned_then_nothing_is_lost_that_was_not_removed(
                current in configuration(), regions in request()
            ) {
                let change = change(regions.clone());
                let Ok(plan) = plan(&change, &current) else {
                    // Refused only when the result would have no region.
                    let left = match &regions {
                        Regions::Set(set) => set.len(),
                        Regions::AddRemove { add, remove } => {
                            current.iter().filter(|d| !remove.contains(&d.region)).count() + add.len()
                        }
                    };
                    prop_assert_eq!(left, 0, "refused although regions were left");
                    return Ok(());
                };
                let asked_removed = |r: &str| match &regions {
                    Regions::Set(set) => !set.iter().any(|s| s == r),
                    Regions::AddRemove { remove, .. } => remove.iter().any(|s| s == r),
                };
                // Every entry not removed is kept whole (every member, the regional ones too), in its order.
                let kept: Vec<&Fake> = current.iter().filter(|d| !asked_removed(&d.region)).collect();
                prop_assert_eq!(&plan.distributions.iter().take(kept.len()).collect::<Vec<_>>(), &kept);
                for d in &current {
                    prop_assert_eq!(plan.removed.contains(&d.region), asked_removed(&d.region), "{}", d.region);
                }
                // Each wanted region is there exactly once; added ones are copies of the template's members.
                let wanted: Vec<String> = match &regions {
                    Regions::Set(set) => set.clone(),
                    Regions::AddRemove { add, .. } => add.clone(),
                };
                for r in &wanted {
                    prop_assert_eq!(plan.distributions.iter().filter(|d| d.region == *r).count(), 1, "{}", r);
                }
                let template = current.iter().find(|d| d.region == "us-east-1").unwrap_or(&current[0]);
                for d in plan.distributions.iter().skip(kept.len()) {
                    prop_assert!(!current.iter().any(|c| c.region == d.region), "{} was already there", d.region);
                    prop_assert_eq!(&d.name, &template.name, "an added region copies the template's members");
                    prop_assert_eq!(&d.kms, &None, "a foreign region's key is never copied");
                }
                let before: std::collections::BTreeSet<&str> = current.iter().map(|d| d.region.as_str()).collect();
                let after: std::collections::BTreeSet<&str> = plan.distributions.iter().map(|d| d.region.as_str()).collect();
                prop_assert_eq!(plan.changes(), before != after, "an update exactly when the regions change");
            }
        }
    }
}
