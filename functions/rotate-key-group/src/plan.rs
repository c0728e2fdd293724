//! The new key list of a key group. Pure: ids, creation times and the clock in, the list and the reasons out.

use shared::error::Error;

/// A key of the group and when it was created (epoch seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub id: String,
    pub created: f64,
}

/// CloudFront's limit of public keys in one key group.
pub const MAX_KEYS_PER_GROUP: usize = 5;

#[derive(Debug, Clone, PartialEq)]
pub struct Rotation {
    pub add: Vec<String>,
    pub retire: Vec<String>,
    pub max_keys: usize,
    pub grace_seconds: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub items: Vec<String>,
    pub added: Vec<String>,
    /// `(id, why)`.
    pub retired: Vec<(String, String)>,
    /// Requested changes that were already true.
    pub already: Vec<(String, String)>,
}

impl Plan {
    pub fn changes(&self) -> bool {
        !self.added.is_empty() || !self.retired.is_empty()
    }
}

/// Applies a rotation to the current items. `keys` has the creation time of every current and added key.
pub fn plan(current: &[String], keys: &[Key], rotation: &Rotation, now: f64) -> Result<Plan, Error> {
    let created = |id: &str| keys.iter().find(|k| k.id == id).map(|k| k.created);
    let mut items: Vec<String> = current.to_vec();
    let mut plan = Plan { items: Vec::new(), added: Vec::new(), retired: Vec::new(), already: Vec::new() };
    for id in &rotation.add {
        if items.contains(id) {
            plan.already.push((id.clone(), "already in the group".into()));
        } else {
            items.push(id.clone());
            plan.added.push(id.clone());
        }
    }
    for id in &rotation.retire {
        if rotation.add.contains(id) {
            return Err(Error::invalid("retirePublicKeyIds", format!("`{id}` is also being added")));
        }
        match items.iter().position(|i| i == id) {
            None => plan.already.push((id.clone(), "not in the group".into())),
            Some(_) if items.len() == 1 => {
                return Err(Error::invalid(
                    "retirePublicKeyIds",
                    format!("retiring `{id}` would leave the key group empty"),
                ));
            }
            Some(p) => {
                items.remove(p);
                plan.retired.push((id.clone(), "retired as asked".into()));
            }
        }
    }
    // The newest key is never retired by age: it is what signs new URLs.
    let newest = items.iter().filter_map(|i| created(i).map(|c| (c, i.clone()))).fold(
        None,
        |best: Option<(f64, String)>, (c, i)| match best {
            Some((bc, _)) if bc >= c => best,
            _ => Some((c, i)),
        },
    );
    let retirable = |id: &str| {
        !rotation.add.iter().any(|a| a == id)
            && newest.as_ref().is_none_or(|(_, n)| n != id)
            && created(id).is_some_and(|c| now - c >= rotation.grace_seconds)
    };
    while items.len() > rotation.max_keys {
        let oldest = items
            .iter()
            .filter(|i| retirable(i))
            .min_by(|a, b| created(a).unwrap_or(0.0).total_cmp(&created(b).unwrap_or(0.0)))
            .cloned();
        let Some(id) = oldest else { break };
        items.retain(|i| *i != id);
        plan.retired.push((id, format!("oldest beyond {} keys and past the grace period", rotation.max_keys)));
    }
    if items.len() > MAX_KEYS_PER_GROUP {
        let next = items
            .iter()
            .filter(|i| !rotation.add.contains(i) && newest.as_ref().is_none_or(|(_, n)| n != *i))
            .filter_map(|i| created(i))
            .map(|c| c + rotation.grace_seconds)
            .fold(f64::INFINITY, f64::min);
        let when = if next.is_finite() { shared_iso(next) } else { "never (every key is being added)".into() };
        return Err(Error::Refused {
            error_type: shared::report::ErrorType::QUOTA_WOULD_BE_EXCEEDED,
            reason: format!(
                "adding would put {} keys in the group (CloudFront allows {MAX_KEYS_PER_GROUP}) and none may be retired yet; the next key becomes retirable at {when}",
                items.len()
            ),
        });
    }
    plan.items = items;
    Ok(plan)
}

fn shared_iso(secs: f64) -> String {
    aws_smithy_types::DateTime::from_secs_f64(secs)
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_else(|_| format!("{secs} s"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: f64 = 1_800_000_000.0;
    const HOUR: f64 = 3600.0;

    fn keys(ages_hours: &[(&str, f64)]) -> (Vec<String>, Vec<Key>) {
        let ids = ages_hours.iter().map(|(id, _)| id.to_string()).collect();
        let keys = ages_hours.iter().map(|(id, age)| Key { id: id.to_string(), created: NOW - age * HOUR }).collect();
        (ids, keys)
    }

    fn rotation(add: &[&str], retire: &[&str], max_keys: usize, grace_hours: f64) -> Rotation {
        Rotation {
            add: add.iter().map(|s| s.to_string()).collect(),
            retire: retire.iter().map(|s| s.to_string()).collect(),
            max_keys,
            grace_seconds: grace_hours * HOUR,
        }
    }

    #[test]
    fn given_a_full_group_with_a_retirable_key_when_adding_then_the_oldest_past_grace_goes_and_order_is_kept() {
        let (mut current, mut all) = keys(&[("K1", 500.0), ("K2", 300.0)]);
        all.push(Key { id: "K3".into(), created: NOW });
        let plan = plan(&current, &all, &rotation(&["K3"], &[], 2, 24.0), NOW).unwrap();
        assert_eq!(plan.items, vec!["K2", "K3"]);
        assert_eq!(plan.retired[0].0, "K1");
        current.push("K3".into());
        assert!(plan.changes());
    }

    #[test]
    fn given_keys_inside_the_grace_period_when_adding_then_kept_beyond_max_keys_up_to_five() {
        let (current, mut all) = keys(&[("K1", 2.0), ("K2", 1.0)]);
        all.push(Key { id: "K3".into(), created: NOW });
        let plan = plan(&current, &all, &rotation(&["K3"], &[], 2, 24.0), NOW).unwrap();
        assert_eq!(plan.items, vec!["K1", "K2", "K3"], "signed URLs may still use K1 and K2");
        assert!(plan.retired.is_empty());
    }

    #[test]
    fn given_the_grace_boundary_when_planned_then_a_key_exactly_grace_old_is_retirable() {
        let (current, mut all) = keys(&[("K1", 24.0), ("K2", 23.9)]);
        all.push(Key { id: "K3".into(), created: NOW });
        let plan = plan(&current, &all, &rotation(&["K3"], &[], 2, 24.0), NOW).unwrap();
        assert_eq!(plan.items, vec!["K2", "K3"]);
    }

    #[test]
    fn given_five_young_keys_when_adding_a_sixth_then_quota_refusal_saying_when_and_no_plan() {
        let (current, mut all) = keys(&[("K1", 5.0), ("K2", 4.0), ("K3", 3.0), ("K4", 2.0), ("K5", 1.0)]);
        all.push(Key { id: "K6".into(), created: NOW });
        let err = plan(&current, &all, &rotation(&["K6"], &[], 2, 24.0), NOW).unwrap_err().to_string();
        assert!(err.contains("would put 6 keys in the group (CloudFront allows 5)"), "{err}");
        assert!(err.contains("next key becomes retirable at 2027-01-16T03:00:00Z"), "{err}");
    }

    #[test]
    fn given_explicit_retire_of_the_last_key_when_planned_then_refused() {
        let (current, all) = keys(&[("K1", 500.0)]);
        let err = plan(&current, &all, &rotation(&[], &["K1"], 2, 24.0), NOW).unwrap_err().to_string();
        assert!(err.contains("would leave the key group empty"), "{err}");
    }

    #[test]
    fn given_nothing_to_change_when_planned_then_no_update_and_notes() {
        let (current, all) = keys(&[("K1", 500.0), ("K2", 1.0)]);
        let plan = plan(&current, &all, &rotation(&["K2"], &["K9"], 2, 24.0), NOW).unwrap();
        assert!(!plan.changes());
        assert_eq!(plan.items, current);
        assert_eq!(plan.already.len(), 2);
    }

    #[test]
    fn given_old_keys_and_zero_grace_when_swept_then_the_newest_key_is_never_retired() {
        let (current, all) = keys(&[("K1", 500.0), ("K2", 400.0), ("K3", 300.0)]);
        let plan = plan(&current, &all, &rotation(&[], &[], 1, 0.0), NOW).unwrap();
        assert_eq!(plan.items, vec!["K3"]);
        assert_eq!(plan.retired.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), vec!["K1", "K2"]);
    }
}
