//! How start-idle-image-builders fails, each way with its stable error type.

use shared::aws_error::AwsError;
use shared::classify::{Classify, ErrorType};
use shared::error::InvalidInput;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// An AppStream call failed after the SDK's retries.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// The builder was deleted between the read and the call.
    #[error("{target}: no such image builder (deleted meanwhile)")]
    Gone { target: String },
    /// A listing that would not end.
    #[error(transparent)]
    Paging(#[from] shared::paging::Endless),
    /// A STOPPING builder did not stop before the deadline; Lambda's retry starts it once it has.
    #[error("{target}: still STOPPING after {waited_secs} s; the retry starts it once it has stopped")]
    StillStopping { target: String, waited_secs: u64 },
    /// The schedules document could not be read from S3, for a reason that may pass.
    #[error(transparent)]
    Read(#[from] shared::s3::ReadError),
    /// Keeper's record of a `respect-manual` stretch acted on could not be read.
    #[error(transparent)]
    Store(#[from] shared::idempotency::StoreError),
    /// A fault in keeper itself.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Classify for Error {
    fn error_type(&self) -> ErrorType {
        match self {
            Error::Invalid(e) => e.error_type(),
            Error::Aws(e) => e.error_type(),
            Error::Gone { .. } => ErrorType::NOT_FOUND,
            Error::StillStopping { .. } => ErrorType::TIMEOUT,
            Error::Paging(e) => e.error_type(),
            Error::Read(e) => e.error_type(),
            Error::Store(_) => ErrorType::IDEMPOTENCY_STORE,
            Error::Internal(_) => ErrorType::INTERNAL,
        }
    }
}
