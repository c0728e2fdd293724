//! How rotate-key-group fails, each way with its stable error type.

use shared::aws_error::AwsError;
use shared::classify::{Classify, ErrorType};
use shared::error::InvalidInput;
use shared::idempotency::StoreError;
use shared::s3::ReadError;

use crate::plan::Refusal;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// The rotation cannot be planned: it would empty the group or exceed CloudFront's quota.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The uploaded PEM could not be read.
    #[error(transparent)]
    Upload(#[from] ReadError),
    /// UpdateKeyGroup's `If-Match` was stale: someone else changed the group since it was read.
    #[error("{group}: the key group changed since it was read (PreconditionFailed)")]
    GroupChanged { group: String },
    /// CloudFront says the key exists, but the key under keeper's name for this upload is not this key.
    #[error("public key name {name}: {reason}")]
    KeyNameTaken { name: String, reason: String },
    /// What keeper records for its later runs (when a key joined, what an event changed) could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A listing that would not end.
    #[error(transparent)]
    Paging(#[from] shared::paging::Endless),
    /// A CloudFront call failed after the SDK's retries.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// CloudFront answered without a member it always sends.
    #[error("{operation} answered without {missing}")]
    UnexpectedResponse { operation: &'static str, missing: &'static str },
    /// Another invocation holds the secret (a step Secrets Manager called again while the first still runs).
    #[error(transparent)]
    Lease(#[from] shared::idempotency::LeaseError),
    /// Too little time was left to start a rotation step.
    #[error(transparent)]
    OutOfTime(#[from] shared::host::OutOfTime),
    /// testSecret: the pending key did not prove itself (its signature, or its place in the group).
    #[error("the pending key failed its test: {0}")]
    KeyTest(String),
    /// A fault in keeper itself.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Classify for Error {
    fn error_type(&self) -> ErrorType {
        match self {
            Error::Invalid(e) => e.error_type(),
            Error::Refused(e) => e.error_type(),
            Error::Upload(e) => e.error_type(),
            Error::GroupChanged { .. } => ErrorType::CONFLICT,
            Error::KeyNameTaken { .. } => ErrorType::permanent("KeyNameTaken"),
            Error::Store(_) => ErrorType::IDEMPOTENCY_STORE,
            Error::Paging(e) => e.error_type(),
            Error::Aws(e) => e.error_type(),
            Error::UnexpectedResponse { .. } => ErrorType::SERVICE_UNAVAILABLE,
            Error::Lease(e) => e.error_type(),
            Error::OutOfTime(e) => e.error_type(),
            Error::KeyTest(_) => ErrorType::permanent("KeyTestFailed"),
            Error::Internal(_) => ErrorType::INTERNAL,
        }
    }
}
