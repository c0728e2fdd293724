//! How a client reaches a server on this machine (the emulator, or moto): the endpoint, a region, and the documented
//! credentials the emulator checks signatures against when asked to. Tests and `keeper-local` build their SDK
//! configuration here; production code never does.

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_credential_types::Credentials;
use aws_types::SdkConfig;
use aws_types::region::Region;

/// The documented access key pair of the emulator.
pub const ACCESS_KEY_ID: &str = "AKIDKEEPERLOCAL";
pub const SECRET_ACCESS_KEY: &str = "keeper-local-secret";

/// Fixed region, the documented credentials, one endpoint and the given retries; nothing is looked up in the
/// environment, so a client built here can never reach AWS by accident.
pub async fn sdk_config(endpoint_url: &str, region: &str, retry: RetryConfig) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint_url)
        .credentials_provider(Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None, None, "keeper-local"))
        .retry_config(retry)
        .load()
        .await
}
