//! How update-image-lifecycle fails, each way with its stable error type.

use shared::aws_error::AwsError;
use shared::classify::{Classify, ErrorType};
use shared::error::InvalidInput;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// An Image Builder call failed after the SDK's retries.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// The build version was deleted between the read and the update.
    #[error("{arn}: no such image build version")]
    Gone { arn: String },
    /// A lifecycle execution already runs on the build (Image Builder's ResourceInUseException).
    #[error("{arn}: a lifecycle execution is already in progress for this build")]
    InUse { arn: String },
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
            Error::InUse { .. } => ErrorType::CONFLICT,
            Error::Internal(_) => ErrorType::INTERNAL,
        }
    }
}
