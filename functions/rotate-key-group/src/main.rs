//! The Lambda entry point: settings and clients once per process, then one handler call per event.

// The handler's future nests the SDK's futures deeply enough to pass rustc's default layout depth.
#![recursion_limit = "256"]

use lambda_runtime::{LambdaEvent, service_fn};
use rotate_key_group::Deps;
use serde_json::Value;
use shared::config::{Lookup, Settings};
use shared::invocation::deadline_of;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let lookup = Lookup::env();
    shared::telemetry::init(&lookup);
    let sdk_config = shared::clients::sdk_config(&Settings::from_lookup(&lookup)?).await;
    let deps = Deps::from_lookup(&sdk_config, &lookup)?;
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        deps.run(event.payload, deadline_of(&event.context)).await
    }))
    .await
}
