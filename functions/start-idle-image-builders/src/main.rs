//! The Lambda entry point: the shared host runs the function.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::host::serve::<start_idle_image_builders::StartIdleImageBuilders>().await
}
