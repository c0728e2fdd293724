//! The Lambda entry point: the shared host runs the function.

// The handler's future nests the SDK's futures deeply enough to pass rustc's default layout depth.
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::host::serve::<update_distribution_regions::UpdateDistributionRegions>().await
}
