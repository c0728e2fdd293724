//! The CloudFront and S3 calls: key groups with their ETags, public keys, and uploaded PEM files.

use aws_sdk_cloudfront::Client;
use aws_sdk_cloudfront::types::{KeyGroupConfig, PublicKeyConfig};
use shared::aws_error::describe;
use shared::error::Error;

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

fn built<T>(what: &str, r: Result<T, aws_smithy_types::error::operation::BuildError>) -> Result<T, Error> {
    r.map_err(|e| Error::invalid(what, e.to_string()))
}

pub async fn group(cf: &Client, id: &str) -> Result<Group, Error> {
    let out = cf.get_key_group().id(id).send().await.map_err(|e| Error::aws(id, describe("GetKeyGroup", &e)))?;
    let config = out
        .key_group
        .and_then(|g| g.key_group_config)
        .ok_or_else(|| Error::invalid("keyGroupId", format!("{id} has no configuration")))?;
    Ok(Group { name: config.name, items: config.items, comment: config.comment, etag: out.e_tag.unwrap_or_default() })
}

/// When a public key was created (epoch seconds).
pub async fn created(cf: &Client, id: &str) -> Result<f64, Error> {
    let out = cf.get_public_key().id(id).send().await.map_err(|e| Error::aws(id, describe("GetPublicKey", &e)))?;
    Ok(out.public_key.map(|k| k.created_time.as_secs_f64()).unwrap_or(0.0))
}

/// Creates the key (or, for the same CallerReference and content, gets the one created before); returns its id.
pub async fn create(cf: &Client, key: &NewKey) -> Result<String, Error> {
    let config = built(
        "public key",
        PublicKeyConfig::builder()
            .caller_reference(&key.caller_reference)
            .name(&key.name)
            .encoded_key(&key.pem)
            .comment(&key.comment)
            .build(),
    )?;
    let out = cf
        .create_public_key()
        .public_key_config(config)
        .send()
        .await
        .map_err(|e| Error::aws(&key.name, describe("CreatePublicKey", &e)))?;
    out.public_key.map(|k| k.id).ok_or_else(|| Error::invalid("public key", "CloudFront returned no id"))
}

/// Replaces the items, quoting the ETag; returns the new ETag. A stale ETag fails as a conflict.
pub async fn update(cf: &Client, id: &str, group: &Group, items: Vec<String>) -> Result<String, Error> {
    let config = built(
        "key group",
        KeyGroupConfig::builder().name(&group.name).set_items(Some(items)).set_comment(group.comment.clone()).build(),
    )?;
    let out = cf
        .update_key_group()
        .id(id)
        .if_match(&group.etag)
        .key_group_config(config)
        .send()
        .await
        .map_err(|e| Error::aws(id, describe("UpdateKeyGroup", &e)))?;
    Ok(out.e_tag.unwrap_or_default())
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
            .map_err(|e| Error::aws(key_id, describe("ListKeyGroups", &e)))?;
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

/// Deletes a public key with its current ETag.
pub async fn delete(cf: &Client, id: &str) -> Result<(), Error> {
    let etag = cf
        .get_public_key()
        .id(id)
        .send()
        .await
        .map_err(|e| Error::aws(id, describe("GetPublicKey", &e)))?
        .e_tag
        .unwrap_or_default();
    cf.delete_public_key()
        .id(id)
        .if_match(etag)
        .send()
        .await
        .map_err(|e| Error::aws(id, describe("DeletePublicKey", &e)))?;
    Ok(())
}

/// An uploaded PEM, refused over [`MAX_PEM_BYTES`].
pub async fn read_pem(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> Result<String, Error> {
    let target = format!("s3://{bucket}/{key}");
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(String::from))
        .send()
        .await
        .map_err(|e| Error::aws(&target, describe("GetObject", &e)))?;
    if out.content_length.is_some_and(|n| n as usize > MAX_PEM_BYTES) {
        return Err(Error::invalid(
            target,
            format!("is larger than {MAX_PEM_BYTES} bytes; a public key is far smaller"),
        ));
    }
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| Error::invalid(target.clone(), format!("could not be read: {e}")))?
        .into_bytes();
    if bytes.len() > MAX_PEM_BYTES {
        return Err(Error::invalid(target, format!("is larger than {MAX_PEM_BYTES} bytes")));
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::invalid(target, "is not text"))
}
