//! Builds the AWS SDK configuration once per process and every service client from it, with keeper's retry setup.
//!
//! Endpoints follow the SDK's own rules, so `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` point a function at the
//! emulator or at moto without a code path of its own.

use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_types::SdkConfig;
use aws_types::region::Region;

use crate::config::Settings;
use crate::retry::retry_config;

/// Loads the AWS configuration from the Lambda environment (region, credentials, endpoint overrides).
pub async fn sdk_config(settings: &Settings) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).retry_config(retry_config(settings)).load().await
}

/// The credentials of everything local: the emulator verifies S3 signatures with them, and tests sign with them.
pub const LOCAL_ACCESS_KEY_ID: &str = "AKIDKEEPERLOCAL";
pub const LOCAL_SECRET_ACCESS_KEY: &str = "keeper-local-secret";

/// A configuration for the emulator or moto on this machine: fixed region, dummy static credentials, one endpoint.
/// Nothing is looked up in the environment, so a test can never reach AWS by accident.
pub async fn local_sdk_config(endpoint_url: &str, region: &str, settings: &Settings) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .endpoint_url(endpoint_url)
        .credentials_provider(Credentials::new(
            LOCAL_ACCESS_KEY_ID,
            LOCAL_SECRET_ACCESS_KEY,
            None,
            None,
            "keeper-local",
        ))
        .retry_config(retry_config(settings))
        .load()
        .await
}

/// A service client with keeper's retry classifier, from any SDK crate:
/// `shared::service_client!(aws_sdk_appstream, &sdk_config, &settings)`.
#[macro_export]
macro_rules! service_client {
    ($sdk:ident, $sdk_config:expr, $settings:expr) => {{
        let conf = $sdk::config::Builder::from($sdk_config)
            .retry_classifier($crate::retry::KeeperRetryClassifier::new($settings))
            .build();
        $sdk::Client::from_conf(conf)
    }};
}

/// The DynamoDB client of the idempotency store.
pub fn dynamodb(sdk_config: &SdkConfig, settings: &Settings) -> aws_sdk_dynamodb::Client {
    service_client!(aws_sdk_dynamodb, sdk_config, settings)
}
