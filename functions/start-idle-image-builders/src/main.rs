//! The Lambda entry point: the shared host runs the function.
// The pipeline's future (the schedules read, then observe, plan, apply) nests deeper than the default limit.
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::host::serve::<start_idle_image_builders::StartIdleImageBuilders>().await
}
