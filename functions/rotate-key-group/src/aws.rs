//! Observe and apply: the CloudFront calls (key groups with their ETags, public keys) and the uploaded PEM. Errors
//! are classified here, on the SDK's typed variants.

use aws_sdk_cloudfront::Client;
use aws_sdk_cloudfront::error::SdkError;
use aws_sdk_cloudfront::operation::delete_public_key::DeletePublicKeyError;
use aws_sdk_cloudfront::operation::get_public_key::GetPublicKeyError;
use aws_sdk_cloudfront::operation::update_key_group::UpdateKeyGroupError;
use aws_sdk_cloudfront::types::{KeyGroupConfig, PublicKeyConfig};
use shared::aws_error::describe;
use shared::error::InvalidInput;
use shared::report::{Action, Outcome};
use shared::trigger::S3Object;

use crate::Error;
use crate::config::NewKey;

/// The largest PEM file read.
pub const MAX_PEM_BYTES: usize = 8 * 1024;

/// A key group as read, with the ETag an update must quote.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub items: Vec<String>,
    pub comment: Option<String>,
    pub etag: String,
}

fn failed<E>(
    target: &str,
    operation: &'static str,
    e: &SdkError<E, aws_sdk_cloudfront::config::http::HttpResponse>,
) -> Error
where
    E: aws_sdk_cloudfront::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    Error::Aws { target: target.to_string(), failure: describe(operation, e) }
}

pub async fn group(cf: &Client, id: &str) -> Result<Group, Error> {
    let out = cf.get_key_group().id(id).send().await.map_err(|e| failed(id, "GetKeyGroup", &e))?;
    let config = out
        .key_group
        .and_then(|g| g.key_group_config)
        .ok_or(Error::UnexpectedResponse { operation: "GetKeyGroup", missing: "KeyGroupConfig" })?;
    Ok(Group { name: config.name, items: config.items, comment: config.comment, etag: out.e_tag.unwrap_or_default() })
}

/// When a public key was created (epoch seconds).
pub async fn created(cf: &Client, id: &str) -> Result<f64, Error> {
    let out = cf.get_public_key().id(id).send().await.map_err(|e| failed(id, "GetPublicKey", &e))?;
    let key = out.public_key.ok_or(Error::UnexpectedResponse { operation: "GetPublicKey", missing: "PublicKey" })?;
    Ok(key.created_time.as_secs_f64())
}

/// Creates the key; returns its id.
pub async fn create(cf: &Client, key: &NewKey) -> Result<String, Error> {
    let config = PublicKeyConfig::builder()
        .caller_reference(&key.caller_reference)
        .name(&key.name)
        .encoded_key(&key.pem)
        .comment(&key.comment)
        .build()
        .map_err(|e| Error::Internal(format!("PublicKeyConfig: {e}")))?;
    let out = cf
        .create_public_key()
        .public_key_config(config)
        .send()
        .await
        .map_err(|e| failed(&key.name, "CreatePublicKey", &e))?;
    out.public_key.map(|k| k.id).ok_or(Error::UnexpectedResponse { operation: "CreatePublicKey", missing: "PublicKey" })
}

/// Replaces the items, quoting the ETag; returns the new ETag. A stale ETag is [`Error::GroupChanged`].
pub async fn update(cf: &Client, id: &str, group: &Group, items: Vec<String>) -> Result<String, Error> {
    let config = KeyGroupConfig::builder()
        .name(&group.name)
        .set_items(Some(items))
        .set_comment(group.comment.clone())
        .build()
        .map_err(|e| Error::Internal(format!("KeyGroupConfig: {e}")))?;
    match cf.update_key_group().id(id).if_match(&group.etag).key_group_config(config).send().await {
        Ok(out) => Ok(out.e_tag.unwrap_or_default()),
        Err(e) if matches!(e.as_service_error(), Some(UpdateKeyGroupError::PreconditionFailed(_))) => {
            Err(Error::GroupChanged { group: id.to_string() })
        }
        Err(e) => Err(failed(id, "UpdateKeyGroup", &e)),
    }
}

/// Whether any key group of the account lists the key (every page).
pub async fn in_any_group(cf: &Client, key_id: &str) -> Result<bool, Error> {
    let mut marker: Option<String> = None;
    loop {
        let out = cf
            .list_key_groups()
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| failed(key_id, "ListKeyGroups", &e))?;
        let Some(list) = out.key_group_list else { return Ok(false) };
        let listed = list
            .items
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| s.key_group)
            .filter_map(|g| g.key_group_config)
            .any(|c| c.items.iter().any(|i| i == key_id));
        if listed {
            return Ok(true);
        }
        match list.next_marker.filter(|m| !m.is_empty()) {
            Some(m) => marker = Some(m),
            None => return Ok(false),
        }
    }
}

/// Deletes a retired key that no key group lists any more; the outcome names why a key was left alone.
pub async fn delete_if_unused(cf: &Client, group_id: &str, id: &str) -> Action {
    let target = format!("{group_id}/{id}");
    let skipped = |why: &str| Action::new(&target, "delete-key", Outcome::Skipped, why);
    match in_any_group(cf, id).await {
        Ok(true) => return skipped("still in a key group"),
        Ok(false) => {}
        Err(e) => return Action::failed(&target, "delete-key", &e),
    }
    let etag = match cf.get_public_key().id(id).send().await {
        Ok(out) => out.e_tag.unwrap_or_default(),
        Err(e) if matches!(e.as_service_error(), Some(GetPublicKeyError::NoSuchPublicKey(_))) => {
            return skipped("already deleted");
        }
        Err(e) => return Action::failed(&target, "delete-key", &failed(id, "GetPublicKey", &e)),
    };
    match cf.delete_public_key().id(id).if_match(etag).send().await {
        Ok(_) => Action::new(&target, "delete-key", Outcome::Applied, ""),
        Err(e) => match e.as_service_error() {
            Some(DeletePublicKeyError::PublicKeyInUse(_)) => skipped("in use"),
            Some(DeletePublicKeyError::NoSuchPublicKey(_)) => skipped("already deleted"),
            _ => Action::failed(&target, "delete-key", &failed(id, "DeletePublicKey", &e)),
        },
    }
}

/// An uploaded PEM (that version), refused over [`MAX_PEM_BYTES`] or when it is not text.
pub async fn read_pem(s3: &aws_sdk_s3::Client, object: &S3Object) -> Result<String, Error> {
    let (bucket, key) = (&object.bucket, &object.key);
    let bytes = shared::s3::read_bounded(s3, bucket, key, object.version_id.as_deref(), MAX_PEM_BYTES).await?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| InvalidInput::new(format!("s3://{bucket}/{key}"), "is not text").into())
}
