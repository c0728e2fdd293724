//! The function's response (what it did, per target) and the stable error types Lambda sees.
//!
//! Every error that leaves a handler carries an [`ErrorType`] such as `Permanent.InvalidInput` or
//! `Retryable.Throttled`. The class decides what Lambda does: a retryable error is returned as a function error so
//! Lambda retries it (and sends it to the dead-letter queue in the end); a permanent one never gets better by retrying,
//! so when an event source delivered it, it is answered with a report that carries the failure instead (see
//! [`into_lambda_result`]).

use std::fmt;

use lambda_runtime::Diagnostic;
use serde::{Deserialize, Serialize};

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

    /// How many actions named `action` ended with `outcome` (e.g. applied starts), for metrics.
    pub fn count_of(&self, action: &str, outcome: Outcome) -> usize {
        self.actions.iter().filter(|a| a.action == action && a.outcome == outcome).count()
    }
}

impl crate::idempotency::Storable for Report {
    /// The header and as many of the first actions as fit, with the number of actions and of each outcome.
    fn shortened(&self, max_bytes: usize) -> Report {
        let mut outcomes = std::collections::BTreeMap::new();
        for action in &self.actions {
            *outcomes.entry(action.outcome.as_str().to_string()).or_insert(0) += 1;
        }
        let mut out = Report {
            function: self.function.clone(),
            event_id: self.event_id.clone(),
            dry_run: self.dry_run,
            actions: Vec::new(),
            error: self.error.clone(),
            replayed: self.replayed,
            truncated: Some(Truncated { actions: self.actions.len(), outcomes }),
        };
        let mut size = serde_json::to_string(&out).map(|s| s.len()).unwrap_or(max_bytes);
        for action in &self.actions {
            let next = serde_json::to_string(action).map(|s| s.len() + 1).unwrap_or(max_bytes);
            if size + next > max_bytes {
                break;
            }
            size += next;
            out.actions.push(action.clone());
        }
        out
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

/// Whether an error can get better by trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// Bad input, not found, a quota: a retry fails the same way.
    Permanent,
    /// Throttling, contention, a service fault, a lock held by another run: a later retry may succeed.
    Retryable,
}

/// A stable error type, rendered `Permanent.<Name>` or `Retryable.<Name>` for Lambda, logs and alarms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorType {
    pub class: Class,
    pub name: &'static str,
}

impl ErrorType {
    pub const fn permanent(name: &'static str) -> Self {
        ErrorType { class: Class::Permanent, name }
    }

    pub const fn retryable(name: &'static str) -> Self {
        ErrorType { class: Class::Retryable, name }
    }

    pub fn is_retryable(self) -> bool {
        self.class == Class::Retryable
    }

    // The names every function shares; a function may add its own (e.g. `Permanent.QuotaWouldBeExceeded`).
    pub const INVALID_INPUT: ErrorType = ErrorType::permanent("InvalidInput");
    pub const CONFIGURATION: ErrorType = ErrorType::permanent("Configuration");
    pub const NOT_FOUND: ErrorType = ErrorType::permanent("NotFound");
    pub const QUOTA_EXCEEDED: ErrorType = ErrorType::permanent("QuotaExceeded");
    pub const QUOTA_WOULD_BE_EXCEEDED: ErrorType = ErrorType::permanent("QuotaWouldBeExceeded");
    pub const ACCESS_DENIED: ErrorType = ErrorType::permanent("AccessDenied");
    pub const IDEMPOTENCY_KEY_REUSED: ErrorType = ErrorType::permanent("IdempotencyKeyReused");
    pub const REJECTED: ErrorType = ErrorType::permanent("Rejected");
    /// A fault in keeper itself (a request it could not build): retrying runs the same code again.
    pub const INTERNAL: ErrorType = ErrorType::permanent("Internal");
    pub const THROTTLED: ErrorType = ErrorType::retryable("Throttled");
    pub const CONFLICT: ErrorType = ErrorType::retryable("Conflict");
    pub const IN_PROGRESS: ErrorType = ErrorType::retryable("InProgress");
    pub const SERVICE_UNAVAILABLE: ErrorType = ErrorType::retryable("ServiceUnavailable");
    pub const TIMEOUT: ErrorType = ErrorType::retryable("Timeout");
    /// The function's temporary credentials expired mid-run: the next invocation gets fresh ones.
    pub const CREDENTIALS_EXPIRED: ErrorType = ErrorType::retryable("CredentialsExpired");
    /// Work not started because the Lambda deadline was too near (`DEADLINE_MARGIN_MS`): the retry does it.
    pub const OUT_OF_TIME: ErrorType = ErrorType::retryable("OutOfTime");
    pub const IDEMPOTENCY_STORE: ErrorType = ErrorType::retryable("IdempotencyStore");
    /// The pipeline panicked (a bug): the event is released and Lambda's retries, then its dead-letter queue, see it.
    pub const PANIC: ErrorType = ErrorType::retryable("Panic");
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let class = match self.class {
            Class::Permanent => "Permanent",
            Class::Retryable => "Retryable",
        };
        write!(f, "{class}.{}", self.name)
    }
}

/// An error that knows its stable type. Every error enum that can leave a handler implements it.
pub trait Classify: std::error::Error {
    fn error_type(&self) -> ErrorType;
}

/// A pipeline that cannot fail.
impl Classify for std::convert::Infallible {
    fn error_type(&self) -> ErrorType {
        match *self {}
    }
}

/// A failure as it appears in a report and in Lambda's error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub error_type: String,
    pub error_message: String,
}

impl Failure {
    pub fn of(error: &(impl Classify + ?Sized)) -> Self {
        Failure { error_type: error.error_type().to_string(), error_message: error.to_string() }
    }
}

impl From<Failure> for Diagnostic {
    fn from(f: Failure) -> Self {
        Diagnostic { error_type: f.error_type, error_message: f.error_message }
    }
}

/// Who is waiting for the answer, which decides how a permanent failure is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A person or a script invoked the function with its own request: they see every failure as a function error.
    ByHand,
    /// A schedule, SNS, S3 or EventBridge: Lambda retries any function error, so only retryable ones are returned
    /// as errors.
    EventSource,
}

/// Turns the handler's result into what the Lambda runtime returns.
///
/// - success → the report;
/// - retryable failure → a function error with the stable type, so Lambda retries and finally dead-letters it;
/// - permanent failure from an event source → a report whose `error` names the failure: retrying cannot help, and a
///   function error would make Lambda retry twice for nothing;
/// - permanent failure of a request sent by hand → a function error, so the caller sees it at once.
///
/// Every failure is logged at ERROR with its type, so alarms see the permanent ones too.
pub fn into_lambda_result<E: Classify>(
    result: Result<Report, E>,
    caller: Caller,
    header: Report,
) -> Result<Report, Diagnostic> {
    match result {
        Ok(report) => Ok(report),
        Err(error) => {
            let failure = Failure::of(&error);
            tracing::error!(error_type = %failure.error_type, error = %failure.error_message, event_id = %header.event_id, "invocation failed");
            if error.error_type().is_retryable() || caller == Caller::ByHand {
                Err(failure.into())
            } else {
                Ok(Report { error: Some(failure), ..header })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum TestError {
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

    fn header() -> Report {
        Report::new("start-idle-image-builders", "evt-1", false)
    }

    #[test]
    fn given_error_types_when_rendered_then_class_dot_name() {
        assert_eq!(ErrorType::INVALID_INPUT.to_string(), "Permanent.InvalidInput");
        assert_eq!(ErrorType::THROTTLED.to_string(), "Retryable.Throttled");
        assert!(!ErrorType::NOT_FOUND.is_retryable());
        assert!(ErrorType::IN_PROGRESS.is_retryable());
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

    #[test]
    fn given_retryable_failure_when_answered_then_lambda_error_for_any_caller() {
        for caller in [Caller::ByHand, Caller::EventSource] {
            let diag = into_lambda_result::<TestError>(Err(TestError::Slow), caller, header()).unwrap_err();
            assert_eq!(diag.error_type, "Retryable.Throttled");
            assert_eq!(diag.error_message, "rate exceeded");
        }
    }

    #[test]
    fn given_permanent_failure_from_event_source_when_answered_then_report_carries_it_and_lambda_does_not_retry() {
        let report = into_lambda_result::<TestError>(Err(TestError::Bad), Caller::EventSource, header()).unwrap();
        let failure = report.error.expect("failure recorded in the report");
        assert_eq!(failure.error_type, "Permanent.InvalidInput");
        assert!(failure.error_message.contains("names[0]"));
        assert_eq!(report.event_id, "evt-1");
    }

    #[test]
    fn given_permanent_failure_sent_by_hand_when_answered_then_caller_sees_function_error() {
        let diag = into_lambda_result::<TestError>(Err(TestError::Bad), Caller::ByHand, header()).unwrap_err();
        assert_eq!(diag.error_type, "Permanent.InvalidInput");
    }
}
