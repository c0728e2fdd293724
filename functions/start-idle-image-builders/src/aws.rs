//! The AppStream calls, one small function each, returning the plan's types; errors are described once, here.

use std::collections::BTreeMap;

use aws_sdk_appstream::Client;
use aws_sdk_appstream::types::ImageBuilder;
use shared::aws_error::describe;
use shared::report::ErrorType;

use crate::Error;
use crate::plan::Builder;

/// How many names one DescribeImageBuilders call asks for.
const NAMES_PER_CALL: usize = 25;

fn to_builder(region: &str, b: &ImageBuilder) -> Builder {
    Builder {
        region: region.to_string(),
        name: b.name.clone().unwrap_or_default(),
        arn: b.arn.clone().unwrap_or_default(),
        state: b.state.as_ref().map(|s| s.as_str().to_string()).unwrap_or_else(|| "UNKNOWN".into()),
        reason: b.state_change_reason.as_ref().map(|r| {
            let code = r.code.as_ref().map(|c| c.as_str().to_string()).unwrap_or_default();
            let message = r.message.clone().unwrap_or_default();
            if code.is_empty() { message } else { format!("{code}: {message}") }
        }),
        tags: None,
    }
}

/// Every builder of the region, page by page (the SDK has no paginator for this call).
pub async fn describe_all(client: &Client, region: &str) -> Result<Vec<Builder>, Error> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = client
            .describe_image_builders()
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| Error::aws(region, describe("DescribeImageBuilders", &e)))?;
        out.extend(page.image_builders.unwrap_or_default().iter().map(|b| to_builder(region, b)));
        match page.next_token.filter(|t| !t.is_empty()) {
            Some(t) => token = Some(t),
            None => return Ok(out),
        }
    }
}

/// The named builders, in chunks; a chunk that names a builder that does not exist fails whole, so its names are
/// then asked one by one to tell which are missing.
pub async fn describe_named(
    client: &Client,
    region: &str,
    names: &[String],
) -> Result<(Vec<Builder>, Vec<String>), Error> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for chunk in names.chunks(NAMES_PER_CALL) {
        match describe_exact(client, region, chunk).await? {
            Some(builders) => found.extend(builders),
            None => {
                for name in chunk {
                    match describe_exact(client, region, std::slice::from_ref(name)).await? {
                        Some(builders) => found.extend(builders),
                        None => missing.push(name.clone()),
                    }
                }
            }
        }
    }
    Ok((found, missing))
}

/// `None` when AppStream answers that a named builder does not exist.
async fn describe_exact(client: &Client, region: &str, names: &[String]) -> Result<Option<Vec<Builder>>, Error> {
    match client.describe_image_builders().set_names(Some(names.to_vec())).send().await {
        Ok(out) => Ok(Some(out.image_builders.unwrap_or_default().iter().map(|b| to_builder(region, b)).collect())),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(None),
        Err(e) => Err(Error::aws(region, describe("DescribeImageBuilders", &e))),
    }
}

/// The current state of one builder; `None` when it no longer exists.
pub async fn state_of(client: &Client, region: &str, name: &str) -> Result<Option<String>, Error> {
    Ok(describe_exact(client, region, &[name.to_string()]).await?.and_then(|b| b.into_iter().next()).map(|b| b.state))
}

pub async fn tags(client: &Client, region: &str, arn: &str) -> Result<BTreeMap<String, String>, Error> {
    let out = client
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(|e| Error::aws(&format!("{region}/{arn}"), describe("ListTagsForResource", &e)))?;
    Ok(out.tags.unwrap_or_default().into_iter().collect())
}

/// Starts a builder; returns its state afterwards.
pub async fn start(client: &Client, region: &str, name: &str, agent_version: Option<&str>) -> Result<String, Error> {
    let out = client
        .start_image_builder()
        .name(name)
        .set_appstream_agent_version(agent_version.map(String::from))
        .send()
        .await
        .map_err(|e| Error::aws(&format!("{region}/{name}"), describe("StartImageBuilder", &e)))?;
    Ok(out.image_builder.and_then(|b| b.state).map(|s| s.as_str().to_string()).unwrap_or_default())
}

/// Stops a builder; returns its state afterwards.
pub async fn stop(client: &Client, region: &str, name: &str) -> Result<String, Error> {
    let out = client
        .stop_image_builder()
        .name(name)
        .send()
        .await
        .map_err(|e| Error::aws(&format!("{region}/{name}"), describe("StopImageBuilder", &e)))?;
    Ok(out.image_builder.and_then(|b| b.state).map(|s| s.as_str().to_string()).unwrap_or_default())
}

/// Whether an error means the builder is gone (deleted between the read and the call).
pub fn is_gone(error: &Error) -> bool {
    matches!(error, Error::Aws { failure, .. } if failure.error_type == ErrorType::NOT_FOUND)
}
