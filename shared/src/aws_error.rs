//! Turns any AWS SDK error into what keeper reports: the AWS code and message, and a stable error type that says
//! whether another attempt can help. Called after the SDK's own retries are spent.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::classify::{Classify, ErrorType};

/// One failed AWS call, as keeper reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed: {}{message}", code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default())]
pub struct AwsFailure {
    pub operation: &'static str,
    pub code: Option<String>,
    pub message: String,
    pub error_type: ErrorType,
}

/// A failed AWS call on one target (a builder, a configuration, a key group): the variant every function's error
/// type wraps, so that none builds it by hand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{target}: {failure}")]
pub struct AwsError {
    pub target: String,
    pub failure: AwsFailure,
}

impl AwsError {
    /// `operation` on `target` failed with `err`, after the SDK's own retries.
    pub fn new<E>(target: impl Into<String>, operation: &'static str, err: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        AwsError { target: target.into(), failure: describe(operation, err) }
    }
}

impl Classify for AwsError {
    fn error_type(&self) -> ErrorType {
        self.failure.error_type
    }
}

/// The stable type of an AWS error code (HTTP status as a fallback for codes not listed).
pub fn error_type_of(code: &str, status: Option<u16>) -> ErrorType {
    match code {
        "ResourceNotFoundException"
        | "NoSuchResource"
        | "NoSuchPublicKey"
        | "NoSuchKey"
        | "NoSuchBucket"
        | "NoSuchVersion" => ErrorType::NOT_FOUND,
        "LimitExceededException"
        | "ServiceQuotaExceededException"
        | "TooManyPublicKeys"
        | "TooManyKeyGroups"
        | "TooManyPublicKeysInKeyGroup" => ErrorType::QUOTA_EXCEEDED,
        "AccessDeniedException"
        | "AccessDenied"
        | "ForbiddenException"
        | "UnauthorizedOperation"
        | "InvalidAccountStatusException" => ErrorType::ACCESS_DENIED,
        "ConcurrentModificationException" | "ResourceInUseException" | "PreconditionFailed" => ErrorType::CONFLICT,
        "ThrottlingException"
        | "Throttling"
        | "TooManyRequestsException"
        | "CallRateLimitExceededException"
        | "RequestLimitExceeded"
        | "RequestLimitExceededException"
        | "SlowDown" => ErrorType::THROTTLED,
        // S3 closes a request whose body stopped arriving in time; the SDK's own transient list has it too.
        "RequestTimeout" | "RequestTimeoutException" => ErrorType::TIMEOUT,
        // The role session's credentials ran out during a long run; Lambda's retry runs with new ones.
        "ExpiredToken" | "ExpiredTokenException" | "TokenRefreshRequired" => ErrorType::CREDENTIALS_EXPIRED,
        "ServiceException"
        | "ServiceUnavailableException"
        | "ServiceUnavailable"
        | "InternalError"
        | "InternalFailure"
        | "InternalServerError" => ErrorType::SERVICE_UNAVAILABLE,
        _ => match status {
            Some(429) => ErrorType::THROTTLED,
            Some(s) if s >= 500 => ErrorType::SERVICE_UNAVAILABLE,
            _ => ErrorType::REJECTED,
        },
    }
}

/// Describes an SDK error: service errors by code, connection and timeout failures as retryable.
pub fn describe<E>(operation: &'static str, err: &SdkError<E, HttpResponse>) -> AwsFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::ServiceError(service) => {
            let e = service.err();
            let code = e.code().map(String::from);
            let status = Some(service.raw().status().as_u16());
            AwsFailure {
                operation,
                error_type: error_type_of(code.as_deref().unwrap_or_default(), status),
                message: e.message().map(String::from).unwrap_or_else(|| e.to_string()),
                code,
            }
        }
        SdkError::TimeoutError(_) => {
            AwsFailure { operation, code: None, message: "timed out".into(), error_type: ErrorType::TIMEOUT }
        }
        SdkError::DispatchFailure(d) => AwsFailure {
            operation,
            code: None,
            message: format!("could not reach AWS: {}", aws_smithy_types::error::display::DisplayErrorContext(err)),
            error_type: if d.is_user() { ErrorType::REJECTED } else { ErrorType::SERVICE_UNAVAILABLE },
        },
        SdkError::ResponseError(_) => AwsFailure {
            operation,
            code: None,
            message: format!("unreadable response: {}", aws_smithy_types::error::display::DisplayErrorContext(err)),
            error_type: ErrorType::SERVICE_UNAVAILABLE,
        },
        _ => AwsFailure {
            operation,
            code: None,
            message: aws_smithy_types::error::display::DisplayErrorContext(err).to_string(),
            error_type: ErrorType::REJECTED,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_codes_named_in_the_wire_facts_when_typed_then_permanent_or_retryable() {
        assert_eq!(error_type_of("ResourceNotFoundException", Some(400)), ErrorType::NOT_FOUND);
        assert_eq!(error_type_of("LimitExceededException", Some(400)), ErrorType::QUOTA_EXCEEDED);
        assert_eq!(error_type_of("ConcurrentModificationException", Some(400)), ErrorType::CONFLICT);
        assert_eq!(error_type_of("CallRateLimitExceededException", Some(429)), ErrorType::THROTTLED);
        assert_eq!(error_type_of("IncompatibleImageException", Some(400)), ErrorType::REJECTED);
        assert_eq!(error_type_of("SomethingNew", Some(503)), ErrorType::SERVICE_UNAVAILABLE);
        assert_eq!(error_type_of("SomethingNew", Some(429)), ErrorType::THROTTLED);
        assert!(!error_type_of("InvalidParameterCombinationException", Some(400)).is_retryable());
        assert!(error_type_of("ResourceInUseException", Some(400)).is_retryable());
    }

    #[test]
    fn given_s3_timeout_and_expired_credentials_when_typed_then_retryable_not_rejected() {
        // S3 answers both with HTTP 400, which alone would read as a permanent refusal.
        assert_eq!(error_type_of("RequestTimeout", Some(400)), ErrorType::TIMEOUT);
        assert_eq!(error_type_of("ExpiredToken", Some(400)), ErrorType::CREDENTIALS_EXPIRED);
        assert_eq!(error_type_of("TokenRefreshRequired", Some(400)), ErrorType::CREDENTIALS_EXPIRED);
        assert!(error_type_of("ExpiredToken", Some(400)).is_retryable());
    }
}
