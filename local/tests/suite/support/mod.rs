//! What the emulator's conformance tests add to `local::testing`: an SDK configuration that makes one attempt per
//! call, so a test sees the emulator's answer and not a retry of it.
// The one test binary uses parts of it from several modules; what some module uses is unused in others.
#![allow(dead_code, unused_imports)]

use aws_config::retry::RetryConfig;
use aws_types::SdkConfig;
use local::Running;

pub(crate) use local::testing::{admin, calls as calls_of, start as emulator};

pub(crate) async fn sdk(running: &Running, region: &str) -> SdkConfig {
    local::client::sdk_config(&running.url, region, RetryConfig::standard().with_max_attempts(1)).await
}
