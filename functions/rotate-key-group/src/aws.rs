//! Observe and apply: the CloudFront calls (key groups with their ETags, public keys) and the uploaded PEM. Errors
//! are classified here, on the SDK's typed variants.

use std::collections::HashSet;

use aws_sdk_cloudfront::Client;
use aws_sdk_cloudfront::operation::create_public_key::CreatePublicKeyError;
use aws_sdk_cloudfront::operation::delete_public_key::DeletePublicKeyError;
use aws_sdk_cloudfront::operation::get_public_key::GetPublicKeyError;
use aws_sdk_cloudfront::operation::update_key_group::UpdateKeyGroupError;
use aws_sdk_cloudfront::types::{KeyGroupConfig, PublicKeyConfig};
use shared::aws_error::AwsError;
use shared::error::InvalidInput;
use shared::host::Permit;
use shared::lost_answer::AnswerWatch;
use shared::report::Verb as _;
use shared::report::{Action, Outcome};
use shared::trigger::S3Object;

use crate::config::NewKey;
use crate::error::Error;
use crate::plan::Verb;

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

pub async fn group(cf: &Client, id: &str) -> Result<Group, Error> {
    let out = cf.get_key_group().id(id).send().await.map_err(|e| AwsError::new(id, "GetKeyGroup", &e))?;
    let config = out
        .key_group
        .and_then(|g| g.key_group_config)
        .ok_or(Error::UnexpectedResponse { operation: "GetKeyGroup", missing: "KeyGroupConfig" })?;
    Ok(Group { name: config.name, items: config.items, comment: config.comment, etag: out.e_tag.unwrap_or_default() })
}

/// When a public key was created (epoch seconds).
pub async fn created(cf: &Client, id: &str) -> Result<f64, Error> {
    let out = cf.get_public_key().id(id).send().await.map_err(|e| AwsError::new(id, "GetPublicKey", &e))?;
    let key = out.public_key.ok_or(Error::UnexpectedResponse { operation: "GetPublicKey", missing: "PublicKey" })?;
    Ok(key.created_time.as_secs_f64())
}

/// The PEM CloudFront holds for a public key; `None` when there is no such key.
pub async fn encoded_key(cf: &Client, id: &str) -> Result<Option<String>, Error> {
    match cf.get_public_key().id(id).send().await {
        Ok(out) => Ok(out.public_key.and_then(|k| k.public_key_config).map(|c| c.encoded_key)),
        Err(e) if matches!(e.as_service_error(), Some(GetPublicKeyError::NoSuchPublicKey(_))) => Ok(None),
        Err(e) => Err(AwsError::new(id, "GetPublicKey", &e).into()),
    }
}

/// The key of a job: its id, and who created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Made {
    pub id: String,
    pub by: Maker,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Maker {
    /// This call created it.
    ThisRun,
    /// This call created it, but CloudFront's answer was lost: the SDK's retry was answered PublicKeyAlreadyExists
    /// and found the key.
    ThisRunAnswerLost,
    /// An earlier delivery of the same upload created it.
    EarlierDelivery,
}

/// Creates the key. CloudFront documents CallerReference only as protection against a replay, and answers a
/// repeated one with PublicKeyAlreadyExists: then the key an earlier delivery made is looked up by its name (keeper
/// derives it from the upload) and used if it holds the same key; a different key under that name is refused. When
/// an earlier attempt of this very call went unanswered, the key found is this call's own (its answer was lost).
pub async fn create(cf: &Client, key: &NewKey, _: &Permit) -> Result<Made, Error> {
    let config = PublicKeyConfig::builder()
        .caller_reference(&key.caller_reference)
        .name(&key.name)
        .encoded_key(&key.pem)
        .comment(&key.comment)
        .build()
        .map_err(|e| Error::Internal(format!("PublicKeyConfig: {e}")))?;
    let unanswered = AnswerWatch::new();
    match cf.create_public_key().public_key_config(config).customize().interceptor(unanswered.clone()).send().await {
        Ok(out) => {
            let id = out
                .public_key
                .map(|k| k.id)
                .ok_or(Error::UnexpectedResponse { operation: "CreatePublicKey", missing: "PublicKey" })?;
            Ok(Made { id, by: Maker::ThisRun })
        }
        Err(e) if matches!(e.as_service_error(), Some(CreatePublicKeyError::PublicKeyAlreadyExists(_))) => {
            let taken = |reason: String| Error::KeyNameTaken { name: key.name.clone(), reason };
            match public_keys(cf).await?.into_iter().find(|k| k.name == key.name) {
                Some(k) if same_pem(&k.encoded_key, &key.pem) => {
                    let by = if unanswered.lost() { Maker::ThisRunAnswerLost } else { Maker::EarlierDelivery };
                    Ok(Made { id: k.id, by })
                }
                Some(k) => Err(taken(format!("public key {} already has this name and holds a different key", k.id))),
                None => Err(taken(
                    "CloudFront answered PublicKeyAlreadyExists, but no key has this name: its CallerReference was used for another key".into(),
                )),
            }
        }
        Err(e) => Err(AwsError::new(&key.name, "CreatePublicKey", &e).into()),
    }
}

/// Two PEM texts of one key: line breaks and surrounding blanks do not count.
pub fn same_pem(a: &str, b: &str) -> bool {
    let squeeze = |s: &str| s.split_whitespace().collect::<String>();
    squeeze(a) == squeeze(b)
}

/// A public key as ListPublicKeys sums it up.
#[derive(Debug, Clone, PartialEq)]
pub struct KeySummary {
    pub id: String,
    pub name: String,
    pub encoded_key: String,
    pub comment: Option<String>,
    /// Epoch seconds.
    pub created: f64,
}

/// Every public key of the account (every page).
pub async fn public_keys(cf: &Client) -> Result<Vec<KeySummary>, Error> {
    let mut out = Vec::new();
    let mut pages = cf.list_public_keys().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::new("public keys", "ListPublicKeys", &e))?;
        let items = page.public_key_list.and_then(|l| l.items).unwrap_or_default();
        out.extend(items.into_iter().map(|k| KeySummary {
            created: k.created_time.as_secs_f64(),
            id: k.id,
            name: k.name,
            encoded_key: k.encoded_key,
            comment: k.comment,
        }));
    }
    Ok(out)
}

/// Every public key of the account, and the ids every key group lists: what the orphan sweep decides on.
pub async fn census(cf: &Client) -> Result<(Vec<KeySummary>, HashSet<String>), Error> {
    let listed = listed_keys(cf).await?;
    Ok((public_keys(cf).await?, listed))
}

/// Replaces the items, quoting the ETag; returns the new ETag. A stale ETag is [`Error::GroupChanged`].
pub async fn update(cf: &Client, id: &str, group: &Group, items: Vec<String>, _: &Permit) -> Result<String, Error> {
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
        Err(e) => Err(AwsError::new(id, "UpdateKeyGroup", &e).into()),
    }
}

/// The ids every key group of the account lists (every page; the SDK has no paginator for ListKeyGroups).
pub async fn listed_keys(cf: &Client) -> Result<HashSet<String>, Error> {
    let mut listed = HashSet::new();
    let mut pages = shared::paging::Pages::new("ListKeyGroups");
    let mut marker: Option<String> = None;
    loop {
        let out = cf
            .list_key_groups()
            .set_marker(marker.take())
            .send()
            .await
            .map_err(|e| AwsError::new("key groups", "ListKeyGroups", &e))?;
        let Some(list) = out.key_group_list else { return Ok(listed) };
        listed.extend(
            list.items
                .unwrap_or_default()
                .into_iter()
                .filter_map(|s| s.key_group)
                .filter_map(|g| g.key_group_config)
                .flat_map(|c| c.items),
        );
        match pages.next(list.next_marker)? {
            Some(m) => marker = Some(m),
            None => return Ok(listed),
        }
    }
}

/// Deletes a retired key that no key group lists any more; the outcome names why a key was left alone.
pub async fn delete_if_unused(cf: &Client, group_id: &str, id: &str, may: &Permit) -> Action {
    let target = format!("{group_id}/{id}");
    match listed_keys(cf).await {
        Ok(listed) if listed.contains(id) => {
            Action::new(&target, Verb::DeleteKey.as_str(), Outcome::Skipped, "still in a key group")
        }
        Ok(_) => delete(cf, &target, id, "", may).await,
        Err(e) => Action::failed(&target, Verb::DeleteKey.as_str(), &e),
    }
}

/// Deletes a key no key group lists, with its current ETag; `why` says what made it deletable.
pub async fn delete(cf: &Client, target: &str, id: &str, why: &str, _: &Permit) -> Action {
    let skipped = |detail: &str| Action::new(target, Verb::DeleteKey.as_str(), Outcome::Skipped, detail);
    let etag = match cf.get_public_key().id(id).send().await {
        Ok(out) => out.e_tag.unwrap_or_default(),
        Err(e) if matches!(e.as_service_error(), Some(GetPublicKeyError::NoSuchPublicKey(_))) => {
            return skipped("already deleted");
        }
        Err(e) => return Action::failed(target, Verb::DeleteKey.as_str(), &AwsError::new(id, "GetPublicKey", &e)),
    };
    let unanswered = AnswerWatch::new();
    match cf.delete_public_key().id(id).if_match(etag).customize().interceptor(unanswered.clone()).send().await {
        Ok(_) => Action::new(target, Verb::DeleteKey.as_str(), Outcome::Applied, why),
        Err(e) => match e.as_service_error() {
            Some(DeletePublicKeyError::PublicKeyInUse(_)) => skipped("in use"),
            Some(DeletePublicKeyError::NoSuchPublicKey(_)) if !unanswered.lost() => skipped("already deleted"),
            // An earlier attempt of this call went unanswered and the SDK's retry found the key gone: it is gone by
            // this call, whose answer was lost.
            Some(DeletePublicKeyError::NoSuchPublicKey(_)) => {
                let lost = "CloudFront's answer was lost; its retry found the key gone";
                let detail = if why.is_empty() { lost.to_string() } else { format!("{why} ({lost})") };
                Action::new(target, Verb::DeleteKey.as_str(), Outcome::Applied, detail)
            }
            _ => Action::failed(target, Verb::DeleteKey.as_str(), &AwsError::new(id, "DeletePublicKey", &e)),
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
