//! The Lambda answer rule: a retryable error is returned as a function error so Lambda retries it (and sends it to
//! the dead-letter queue in the end); a permanent one never gets better by retrying, so when an event source
//! delivered it, it is answered with a report that carries the failure instead.

use lambda_runtime::Diagnostic;

use crate::classify::{Classify, Failure};
use crate::report::Report;

/// Who is waiting for the answer, which decides how a permanent failure is returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A person or a script invoked the function with its own request: they see every failure as a function error.
    ByHand,
    /// A schedule, SNS, S3 or EventBridge: Lambda retries any function error, so only retryable ones are returned
    /// as errors.
    EventSource,
    /// Secrets Manager calling a rotation step: it takes any answer that is not a function error for the step done
    /// and goes on to the next, so every failure, permanent or not, must be a function error.
    SecretsManager,
}

impl Caller {
    /// Whether a permanent failure is answered as a function error (else as a report that carries it).
    pub fn sees_every_failure(self) -> bool {
        matches!(self, Caller::ByHand | Caller::SecretsManager)
    }
}

/// Turns the handler's result into what the Lambda runtime returns.
///
/// - success → the report;
/// - retryable failure → a function error with the stable type, so Lambda retries and finally dead-letters it;
/// - permanent failure from an event source → a report whose `error` names the failure: retrying cannot help, and a
///   function error would make Lambda retry twice for nothing;
/// - permanent failure of a request sent by hand → a function error, so the caller sees it at once; the same for a
///   rotation step, which Secrets Manager would otherwise take for done.
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
            if error.error_type().is_retryable() || caller.sees_every_failure() {
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
    use crate::report::tests::{TestError, header};

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

    #[test]
    fn given_permanent_failure_of_a_rotation_step_when_answered_then_secrets_manager_sees_a_function_error() {
        // GIVEN a step refused for good: a report would be taken by Secrets Manager for the step done
        let diag = into_lambda_result::<TestError>(Err(TestError::Bad), Caller::SecretsManager, header()).unwrap_err();
        // THEN it is a function error, so the rotation stops there
        assert_eq!(diag.error_type, "Permanent.InvalidInput");
    }
}
