//! The function's response: what it did, per target, and whether what failed may pass on a retry.

use serde::{Deserialize, Serialize};

use crate::classify::{Classify, ErrorType, Failure};

/// What became of one planned action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Dry run: the action would have been applied.
    Planned,
    Applied,
    Skipped,
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [Outcome::Planned, Outcome::Applied, Outcome::Skipped, Outcome::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Planned => "planned",
            Outcome::Applied => "applied",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
        }
    }
}

/// One line of the report: what was (or would have been) done to one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    /// The resource, e.g. `us-east-1/image-builder/b1` or a key group id.
    pub target: String,
    /// The verb, e.g. `start`, `retire-key`, `add-region`.
    pub action: String,
    pub outcome: Outcome,
    /// Why it was skipped, what failed, or what changed; empty when there is nothing to add.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// The stable error type of a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// The same, typed, for deciding whether the run must be retried (not part of the response).
    #[serde(skip)]
    pub failure: Option<ErrorType>,
}

impl Action {
    pub fn new(
        target: impl Into<String>,
        action: impl Into<String>,
        outcome: Outcome,
        detail: impl Into<String>,
    ) -> Self {
        Action {
            target: target.into(),
            action: action.into(),
            outcome,
            detail: detail.into(),
            error_type: None,
            failure: None,
        }
    }

    /// A failed action, carrying the error's stable type and message.
    pub fn failed(target: impl Into<String>, action: impl Into<String>, error: &(impl Classify + ?Sized)) -> Self {
        Action {
            target: target.into(),
            action: action.into(),
            outcome: Outcome::Failed,
            detail: error.to_string(),
            error_type: Some(error.error_type().to_string()),
            failure: Some(error.error_type()),
        }
    }
}

/// The function's response, serialised camelCase as the Lambda result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub function: String,
    pub event_id: String,
    pub dry_run: bool,
    pub actions: Vec<Action>,
    /// Set when the invocation as a whole failed permanently (see [`into_lambda_result`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    /// True when this report is the stored result of an earlier delivery of the same event: nothing was done again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
    /// Set on a stored report too large to keep whole: `actions` holds only the first ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<Truncated>,
}

/// What a shortened report left out: how many actions there were, and how many ended each way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Truncated {
    pub actions: usize,
    pub outcomes: std::collections::BTreeMap<String, usize>,
}

impl Report {
    pub fn new(function: impl Into<String>, event_id: impl Into<String>, dry_run: bool) -> Self {
        Report {
            function: function.into(),
            event_id: event_id.into(),
            dry_run,
            actions: Vec::new(),
            error: None,
            replayed: false,
            truncated: None,
        }
    }

    pub fn push(&mut self, action: Action) {
        self.actions.push(action);
    }

    /// How many actions ended with `outcome`.
    pub fn count(&self, outcome: Outcome) -> usize {
        self.actions.iter().filter(|a| a.outcome == outcome).count()
    }

    /// When some targets failed for reasons that may pass: the error the invocation should end with, so Lambda retries
    /// (the report itself is logged by the caller first, since Lambda keeps only the error).
    pub fn incomplete(&self) -> Option<Incomplete> {
        let transient: Vec<(&Action, ErrorType)> =
            self.actions.iter().filter_map(|a| a.failure.filter(|t| t.is_retryable()).map(|t| (a, t))).collect();
        let (first, error_type) = transient.first()?;
        Some(Incomplete {
            count: transient.len(),
            first: format!("{}: {}", first.target, first.detail),
            error_type: *error_type,
        })
    }

    /// How many actions of `verb` ended with `outcome`.
    pub fn count_verb(&self, verb: impl Verb, outcome: Outcome) -> usize {
        self.count_of(verb.as_str(), outcome)
    }

    /// How many actions named `action` ended with `outcome` (e.g. applied starts), for metrics.
    pub fn count_of(&self, action: &str, outcome: Outcome) -> usize {
        self.actions.iter().filter(|a| a.action == action && a.outcome == outcome).count()
    }
}

/// A function's report verbs, as its own enum: each names its lines, and says which EMF counter its applied lines add
/// to, so that a counter cannot drift from its verb (a typo in a string would silently zero it, and the alarm on it).
pub trait Verb: Copy + 'static {
    /// Every verb of the function.
    const ALL: &'static [Self];
    /// The verb as a report line's `action`.
    fn as_str(self) -> &'static str;
    /// The EMF counter its applied lines add to, if it has one (several verbs may share one).
    fn metric(self) -> Option<&'static str> {
        None
    }
}

/// The verbs of a function whose report lines count nothing (a probe, a test's function).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoVerbs {}

impl Verb for NoVerbs {
    const ALL: &'static [Self] = &[];
    fn as_str(self) -> &'static str {
        match self {}
    }
}

/// A run that reported every target but where some failed for reasons that may pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{count} target(s) could not be handled for reasons that may pass (first: {first}); Lambda retries, and the retry re-observes and skips what already changed"
)]
pub struct Incomplete {
    pub count: usize,
    pub first: String,
    pub error_type: ErrorType,
}

impl Classify for Incomplete {
    fn error_type(&self) -> ErrorType {
        self.error_type
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A permanent and a retryable failure, for the tests of the report and of the answer rule.
    #[derive(Debug, thiserror::Error)]
    pub(crate) enum TestError {
        #[error("field `names[0]`: must not be empty")]
        Bad,
        #[error("rate exceeded")]
        Slow,
    }

    impl Classify for TestError {
        fn error_type(&self) -> ErrorType {
            match self {
                TestError::Bad => ErrorType::INVALID_INPUT,
                TestError::Slow => ErrorType::THROTTLED,
            }
        }
    }

    pub(crate) fn header() -> Report {
        Report::new("start-idle-image-builders", "evt-1", false)
    }

    #[test]
    fn given_report_when_serialised_then_camel_case_with_lowercase_outcomes() {
        let mut report = header();
        report.push(Action::new("us-east-1/b1", "start", Outcome::Applied, ""));
        report.push(Action::failed("us-east-1/b2", "start", &TestError::Bad));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "function": "start-idle-image-builders", "eventId": "evt-1", "dryRun": false,
                "actions": [
                    {"target": "us-east-1/b1", "action": "start", "outcome": "applied"},
                    {"target": "us-east-1/b2", "action": "start", "outcome": "failed",
                     "detail": "field `names[0]`: must not be empty", "errorType": "Permanent.InvalidInput"}
                ]
            })
        );
        let back: Report = serde_json::from_value(json).unwrap();
        assert_eq!(back.actions[1].error_type, report.actions[1].error_type);
        assert_eq!(back.actions[0], report.actions[0]);
        assert_eq!(report.count(Outcome::Failed), 1);
        assert_eq!(report.count_of("start", Outcome::Applied), 1);
    }

    #[test]
    fn given_failed_actions_when_checked_then_only_retryable_ones_make_the_run_incomplete() {
        let mut report = header();
        report.push(Action::new("b1", "start", Outcome::Applied, ""));
        report.push(Action::failed("b2", "start", &TestError::Bad));
        assert_eq!(report.incomplete(), None, "a permanent failure is reported, not retried");
        report.push(Action::failed("b3", "start", &TestError::Slow));
        let incomplete = report.incomplete().expect("a retryable failure");
        assert_eq!((incomplete.count, incomplete.error_type), (1, ErrorType::THROTTLED));
        assert_eq!(incomplete.first, "b3: rate exceeded");
        let replayed: Report = serde_json::from_value(serde_json::to_value(&report).unwrap()).unwrap();
        assert_eq!(
            replayed.actions[2].error_type.as_deref(),
            Some("Retryable.Throttled"),
            "the response keeps the type as text"
        );
    }
}
