//! How update-distribution-regions fails, each way with its stable error type.

use shared::aws_error::AwsError;
use shared::classify::{Classify, ErrorType};
use shared::error::InvalidInput;
use shared::idempotency::LeaseError;
use shared::s3::ReadError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// The desired-state document could not be read.
    #[error(transparent)]
    Document(#[from] ReadError),
    /// An Image Builder call failed after the SDK's retries.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// Another invocation holds the configuration's lease past the time this one could wait.
    #[error(transparent)]
    Lease(#[from] LeaseError),
    /// The configuration read back after the update is not the one written: another writer (the console, an
    /// older tool) changed it in between. Image Builder has no ETag to prevent that; Lambda's retry re-reads and
    /// re-plans on top of the other change.
    #[error("{arn}: read back with regions {found:?} after writing {written:?}; another writer changed it meanwhile")]
    Moved { arn: String, written: Vec<String>, found: Vec<String> },
    /// Image Builder answered without a member it always sends.
    #[error("{operation} answered without {missing}")]
    UnexpectedResponse { operation: &'static str, missing: &'static str },
}

impl Classify for Error {
    fn error_type(&self) -> ErrorType {
        match self {
            Error::Invalid(e) => e.error_type(),
            Error::Document(e) => e.error_type(),
            Error::Lease(e) => e.error_type(),
            Error::Moved { .. } => ErrorType::CONFLICT,
            Error::Aws(e) => e.error_type(),
            Error::UnexpectedResponse { .. } => ErrorType::SERVICE_UNAVAILABLE,
        }
    }
}
