//! The Lambda entry point: the shared host runs the function.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::host::serve::<update_image_lifecycle::UpdateImageLifecycle>().await
}
