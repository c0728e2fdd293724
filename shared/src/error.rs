//! The error a function's pipeline ends with: bad input (before any call), a failed AWS call, or a run whose every
//! target was reported but some failed for reasons that may pass.

use crate::aws_error::AwsFailure;
use crate::report::{Classify, ErrorType, Incomplete};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request: `{field}` {rule}")]
    InvalidInput { field: String, rule: String },
    #[error("{target}: {failure}")]
    Aws { target: String, failure: AwsFailure },
    /// A valid request that cannot be carried out now, with its own stable type (e.g. a quota it would exceed).
    #[error("{reason}")]
    Refused { error_type: ErrorType, reason: String },
    #[error(transparent)]
    Incomplete(#[from] Incomplete),
}

impl Error {
    pub fn invalid(field: impl Into<String>, rule: impl Into<String>) -> Error {
        Error::InvalidInput { field: field.into(), rule: rule.into() }
    }

    pub fn aws(target: &str, failure: AwsFailure) -> Error {
        Error::Aws { target: target.to_string(), failure }
    }
}

impl Classify for Error {
    fn error_type(&self) -> ErrorType {
        match self {
            Error::InvalidInput { .. } => ErrorType::INVALID_INPUT,
            Error::Aws { failure, .. } => failure.error_type,
            Error::Refused { error_type, .. } => *error_type,
            Error::Incomplete(incomplete) => incomplete.error_type(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_each_kind_when_classified_then_its_stable_type() {
        assert_eq!(Error::invalid("names[0]", "is empty").error_type(), ErrorType::INVALID_INPUT);
        assert_eq!(Error::invalid("names[0]", "is empty").to_string(), "invalid request: `names[0]` is empty");
        let failure = AwsFailure {
            operation: "GetImage",
            code: Some("ThrottlingException".into()),
            message: "slow".into(),
            error_type: ErrorType::THROTTLED,
        };
        let aws = Error::aws("us-east-1/b1", failure);
        assert_eq!(aws.error_type(), ErrorType::THROTTLED);
        assert_eq!(aws.to_string(), "us-east-1/b1: GetImage failed: ThrottlingException: slow");
    }
}
