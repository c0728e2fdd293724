//! Faults injected on demand (an error code with a probability or for the next N calls, added latency) and the log of
//! every call, so tests can assert which calls happened and which did not.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::wire::ApiError;

/// One fault: for calls to `operation` (of `service`, when set) whose key parameters include every pair in `when`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    pub operation: String,
    /// Only calls to this region (the SigV4 scope's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Key parameters that must match, e.g. `{"Name": "b3"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub when: BTreeMap<String, String>,
    /// The error code to return, e.g. `ConcurrentModificationException`; none = latency only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The HTTP status of that error; default: what the service uses for the code, else 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Chance of firing per matching call, 0..=1 (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// Fires only for the next `count` matching calls, then retires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// Lets the first `after` matching calls through untouched, then starts firing (the third read, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u32>,
    /// Added before the call takes effect (also when no error is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// Added after the call took effect, before its answer arrives: the caller acts on a state that may already
    /// have moved on (a read that is stale when it lands, a write whose answer is slow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_after_ms: Option<u64>,
    /// The call takes effect and its answer is lost: the connection is closed without a response (after
    /// `latencyAfterMs`, when set), as when a network path drops after AWS committed a write. The SDK sees a
    /// connection error and retries, so the retry meets a state its own first attempt made.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lose_answer: bool,
}

impl FaultRule {
    /// A rule that answers every call of `operation` with the modeled `error` (and nothing else): the start of
    /// most rules, narrowed with struct update syntax (`FaultRule { count: Some(1), ..FaultRule::error(..) }`).
    pub fn error(operation: &str, error: &str) -> FaultRule {
        FaultRule {
            service: None,
            operation: operation.into(),
            when: BTreeMap::new(),
            error: Some(error.into()),
            status: None,
            message: None,
            probability: None,
            count: None,
            after: None,
            latency_ms: None,
            latency_after_ms: None,
            lose_answer: false,
            region: None,
        }
    }
}

/// What the faults decided for one call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Injection {
    pub error: Option<ApiError>,
    pub latency_ms: u64,
    pub latency_after_ms: u64,
    /// The call takes effect, and then its connection is closed without an answer.
    pub lose_answer: bool,
}

/// The active faults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Faults {
    pub rules: Vec<FaultRule>,
}

impl Faults {
    /// Decides the faults of a call; `random` gives numbers in [0, 1) and `default_status` maps a code to its status.
    pub fn inject(
        &mut self,
        service: &str,
        operation: &str,
        region: &str,
        params: &BTreeMap<String, String>,
        mut random: impl FnMut() -> f64,
        default_status: impl Fn(&str) -> u16,
    ) -> Injection {
        let mut injection = Injection::default();
        for rule in self.rules.iter_mut() {
            let applies = rule.operation == operation
                && rule.service.as_deref().is_none_or(|s| s == service)
                && rule.region.as_deref().is_none_or(|r| r == region)
                && rule.when.iter().all(|(k, v)| params.get(k) == Some(v))
                && rule.count != Some(0);
            if !applies {
                continue;
            }
            if let Some(after) = rule.after.as_mut().filter(|n| **n > 0) {
                *after -= 1;
                continue;
            }
            if random() >= rule.probability.unwrap_or(1.0) {
                continue;
            }
            if let Some(count) = rule.count.as_mut() {
                *count -= 1;
            }
            injection.latency_ms += rule.latency_ms.unwrap_or(0);
            injection.latency_after_ms += rule.latency_after_ms.unwrap_or(0);
            injection.lose_answer |= rule.lose_answer;
            if injection.error.is_none()
                && let Some(code) = &rule.error
            {
                let status = rule.status.unwrap_or_else(|| default_status(code));
                let message = rule.message.clone().unwrap_or_else(|| format!("injected fault: {code}"));
                injection.error = Some(ApiError::new(code.clone(), status, message));
            }
        }
        self.rules.retain(|r| r.count != Some(0));
        injection
    }
}

/// One call the emulator answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    pub seq: u64,
    pub service: String,
    pub operation: String,
    pub region: String,
    /// The parameters that identify the target (names, ARNs, ids, tokens).
    pub params: BTreeMap<String, String>,
    /// `ok`, or the error code returned.
    pub outcome: String,
    /// True when the outcome came from an injected fault.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub injected: bool,
}

impl Call {
    pub fn ok(&self) -> bool {
        self.outcome == "ok"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn given_count_rule_when_calls_match_then_fires_n_times_then_retires() {
        let mut faults = Faults {
            rules: vec![FaultRule { count: Some(2), ..FaultRule::error("UpdateKeyGroup", "PreconditionFailed") }],
        };
        let mut fire =
            || faults.inject("cloudfront", "UpdateKeyGroup", "us-east-1", &params(&[]), || 0.0, |_| 412).error;
        assert_eq!(fire().map(|e| (e.code, e.status)), Some(("PreconditionFailed".into(), 412)));
        assert!(fire().is_some());
        assert!(fire().is_none());
        assert!(faults.rules.is_empty());
    }

    #[test]
    fn given_parameter_match_when_other_target_called_then_no_fault() {
        let mut faults = Faults {
            rules: vec![FaultRule {
                when: params(&[("Name", "b3")]),
                ..FaultRule::error("StartImageBuilder", "IncompatibleImageException")
            }],
        };
        assert!(
            faults
                .inject("appstream", "StartImageBuilder", "us-east-1", &params(&[("Name", "b1")]), || 0.0, |_| 400)
                .error
                .is_none()
        );
        assert!(
            faults
                .inject("appstream", "StartImageBuilder", "us-east-1", &params(&[("Name", "b3")]), || 0.0, |_| 400)
                .error
                .is_some()
        );
        assert!(
            faults
                .inject("appstream", "StopImageBuilder", "us-east-1", &params(&[("Name", "b3")]), || 0.0, |_| 400)
                .error
                .is_none()
        );
    }

    #[test]
    fn given_probability_when_random_above_it_then_no_fault_and_count_kept() {
        let mut faults =
            Faults { rules: vec![FaultRule { probability: Some(0.3), count: Some(1), ..FaultRule::error("X", "E") }] };
        assert!(faults.inject("s", "X", "us-east-1", &params(&[]), || 0.5, |_| 400).error.is_none());
        assert_eq!(faults.rules[0].count, Some(1));
        assert!(faults.inject("s", "X", "us-east-1", &params(&[]), || 0.1, |_| 400).error.is_some());
    }

    #[test]
    fn given_latency_only_rule_when_matched_then_latency_without_error() {
        let mut faults =
            Faults { rules: vec![FaultRule { error: None, latency_ms: Some(25), ..FaultRule::error("X", "") }] };
        assert_eq!(
            faults.inject("s", "X", "us-east-1", &params(&[]), || 0.0, |_| 400),
            Injection { error: None, latency_ms: 25, latency_after_ms: 0, lose_answer: false }
        );
    }

    #[test]
    fn given_service_scoped_rule_when_other_service_has_same_operation_then_no_fault() {
        let mut faults = Faults {
            rules: vec![FaultRule {
                service: Some("imagebuilder".into()),
                ..FaultRule::error("GetImage", "ServiceException")
            }],
        };
        assert!(faults.inject("appstream", "GetImage", "us-east-1", &params(&[]), || 0.0, |_| 500).error.is_none());
        assert!(faults.inject("imagebuilder", "GetImage", "us-east-1", &params(&[]), || 0.0, |_| 500).error.is_some());
    }

    #[test]
    fn given_region_and_after_when_calls_match_then_only_that_region_and_only_after_the_first_n() {
        let mut faults = Faults {
            rules: vec![FaultRule { region: Some("eu-west-1".into()), after: Some(2), ..FaultRule::error("X", "E") }],
        };
        let mut fire = |region: &str| faults.inject("s", "X", region, &params(&[]), || 0.0, |_| 400).error.is_some();
        assert!(!fire("us-east-1"), "another region");
        assert!(!fire("eu-west-1"), "first call let through");
        assert!(!fire("eu-west-1"), "second call let through");
        assert!(fire("eu-west-1"), "third call fires");
        assert!(fire("eu-west-1"), "no count: keeps firing");
    }
}
