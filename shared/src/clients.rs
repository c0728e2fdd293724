//! Builds the AWS SDK configuration once per process and every service client from it, with keeper's retry setup.
//!
//! Endpoints follow the SDK's own rules, so `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>` point a function at the
//! emulator or at moto without a code path of its own; the credentials and endpoint of a local emulator are the
//! emulator's business (`local::client`), not production code's.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_config::BehaviorVersion;
use aws_types::SdkConfig;
use aws_types::region::Region;

use crate::config::Settings;
use crate::retry::retry_config;

/// Loads the AWS configuration from the Lambda environment (region, credentials, endpoint overrides).
pub async fn sdk_config(settings: &Settings) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest()).retry_config(retry_config(settings)).load().await
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

/// One client per region, built on first use from the process's one AWS configuration (regional resources live in
/// the region their ARN or request names, not only in the function's own).
pub struct PerRegion<C> {
    sdk_config: SdkConfig,
    build: Box<dyn Fn(&SdkConfig) -> C + Send + Sync>,
    clients: Mutex<HashMap<String, C>>,
}

impl<C: Clone> PerRegion<C> {
    /// `build` makes a client from a configuration whose region is already set, e.g.
    /// `move |c| shared::service_client!(aws_sdk_appstream, c, &settings)`.
    pub fn new(sdk_config: &SdkConfig, build: impl Fn(&SdkConfig) -> C + Send + Sync + 'static) -> Self {
        PerRegion { sdk_config: sdk_config.clone(), build: Box::new(build), clients: Mutex::new(HashMap::new()) }
    }

    pub fn get(&self, region: &str) -> C {
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                (self.build)(&self.sdk_config.to_builder().region(Region::new(region.to_string())).build())
            })
            .clone()
    }

    /// The region of the process's configuration (the function's own region in Lambda).
    pub fn default_region(&self) -> Option<String> {
        self.sdk_config.region().map(|r| r.to_string())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn given_regions_when_clients_are_asked_for_then_one_is_built_per_region_with_that_region() {
        let sdk = SdkConfig::builder().region(Region::new("us-east-1")).build();
        let built = Arc::new(AtomicU32::new(0));
        let counter = built.clone();
        let clients = PerRegion::new(&sdk, move |c| {
            counter.fetch_add(1, Ordering::SeqCst);
            c.region().map(|r| r.to_string()).unwrap_or_default()
        });
        assert_eq!(clients.get("eu-west-1"), "eu-west-1");
        assert_eq!(clients.get("eu-west-1"), "eu-west-1");
        assert_eq!(clients.get("ap-south-1"), "ap-south-1");
        assert_eq!(built.load(Ordering::SeqCst), 2);
        assert_eq!(clients.default_region().as_deref(), Some("us-east-1"));
    }
}
