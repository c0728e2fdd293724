//! The stable error types Lambda, logs and alarms see, and the trait every error that can leave a handler implements.
//!
//! Every error carries an [`ErrorType`] such as `Permanent.InvalidInput` or `Retryable.Throttled`. The class decides
//! what Lambda does with it (see [`crate::answer`]).

use std::fmt;

use lambda_runtime::Diagnostic;
use serde::{Deserialize, Serialize};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_error_types_when_rendered_then_class_dot_name() {
        assert_eq!(ErrorType::INVALID_INPUT.to_string(), "Permanent.InvalidInput");
        assert_eq!(ErrorType::THROTTLED.to_string(), "Retryable.Throttled");
        assert!(!ErrorType::NOT_FOUND.is_retryable());
        assert!(ErrorType::IN_PROGRESS.is_retryable());
    }
}
