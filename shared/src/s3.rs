//! S3 for the functions that read what users upload (PEM keys, desired-state documents): the client, and a read that
//! stops at a size bound instead of holding whatever was uploaded in memory.

use aws_sdk_s3::Client;
use aws_types::SdkConfig;
use bytes::Bytes;

use crate::aws_error::AwsError;
use crate::classify::{Classify, ErrorType};
use crate::config::Settings;
use crate::error::InvalidInput;
use crate::retry::KeeperRetryClassifier;

/// The S3 client: keeper's retry classifier, and path-style addressing when an endpoint is configured (the emulator
/// or any local S3 has no per-bucket host names; AWS accepts path-style for GetObject too).
pub fn client(sdk_config: &SdkConfig, settings: &Settings) -> Client {
    let config = aws_sdk_s3::config::Builder::from(sdk_config)
        .force_path_style(sdk_config.endpoint_url().is_some())
        .retry_classifier(KeeperRetryClassifier::new(settings))
        .build();
    Client::from_conf(config)
}

/// Why an object could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Bigger than the caller accepts: the upload is wrong, reading it again will not shrink it. `version` is the one
    /// S3 answered with (`None` in an unversioned bucket), so a caller can tell which upload was refused.
    #[error("{error}")]
    TooLarge { error: InvalidInput, version: Option<String> },
    /// GetObject failed (no such key or bucket, access denied, throttled, ...).
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// The body broke off while streaming: the object is fine, the connection was not.
    #[error("{target} could not be read to the end: {reason}")]
    Stream { target: String, reason: String },
}

impl Classify for ReadError {
    fn error_type(&self) -> ErrorType {
        match self {
            ReadError::TooLarge { error, .. } => error.error_type(),
            ReadError::Aws(e) => e.error_type(),
            ReadError::Stream { .. } => ErrorType::SERVICE_UNAVAILABLE,
        }
    }
}

/// An object as uploaded (that version, when given), refused once it is known to exceed `limit` bytes: by its
/// declared length before any byte is read, or while streaming when no length was declared.
pub async fn read_bounded(
    client: &Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
    limit: usize,
) -> Result<Bytes, ReadError> {
    read_bounded_version(client, bucket, key, version, limit).await.map(|(bytes, _)| bytes)
}

/// The current version of an S3 object (`None` in an unversioned bucket): whether the version an event names still
/// decides, or a newer upload of the same object replaced it.
pub async fn current_version(client: &Client, bucket: &str, key: &str) -> Result<Option<String>, ReadError> {
    let out = client
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| AwsError::new(format!("s3://{bucket}/{key}"), "HeadObject", &e))?;
    Ok(out.version_id)
}

/// [`read_bounded`], with the version id of what was read (S3's answer; `None` in an unversioned bucket): a reader of
/// "the current version" pins what it read, so a check made later can tell whether a newer one was uploaded since.
pub async fn read_bounded_version(
    client: &Client,
    bucket: &str,
    key: &str,
    version: Option<&str>,
    limit: usize,
) -> Result<(Bytes, Option<String>), ReadError> {
    let target = format!("s3://{bucket}/{key}");
    let too_large = |version: &Option<String>| ReadError::TooLarge {
        error: InvalidInput::new(&target, format!("is larger than {limit} bytes")),
        version: version.clone(),
    };
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(String::from))
        .send()
        .await
        .map_err(|e| AwsError::new(&target, "GetObject", &e))?;
    let read_version = out.version_id.clone();
    if out.content_length.is_some_and(|n| n < 0 || n as u64 > limit as u64) {
        return Err(too_large(&read_version));
    }
    let mut body = out.body;
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ReadError::Stream { target: target.clone(), reason: e.to_string() })?;
        if bytes.len() + chunk.len() > limit {
            return Err(too_large(&read_version));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok((Bytes::from(bytes), read_version))
}

/// `s3://bucket/key` as its bucket and key; `None` when it is not one.
pub fn parse_uri(uri: &str) -> Option<(String, String)> {
    let (bucket, key) = uri.strip_prefix("s3://")?.split_once('/')?;
    (!bucket.is_empty() && !key.is_empty()).then(|| (bucket.to_string(), key.to_string()))
}

/// One entry of an object's history in a versioned bucket: a version, or a delete marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub id: String,
    pub delete_marker: bool,
}

/// The versions uploaded before `current`, newest first, back to the object's last deletion: the ones that may
/// stand in for it. A version from before a deletion was withdrawn by whoever deleted it, so it never comes back
/// on its own. `history` is newest first, as [`history`] gives it; empty when `current` is not in it.
pub fn older_than(history: &[Version], current: &str) -> Vec<String> {
    let Some(at) = history.iter().position(|v| v.id == current && !v.delete_marker) else {
        return Vec::new();
    };
    history[at + 1..].iter().take_while(|v| !v.delete_marker).map(|v| v.id.clone()).collect()
}

/// How much of an object's history [`history`] lists: far more versions than a fallback ever tries.
const HISTORY: i32 = 100;

/// The newest entries of `key`'s history (versions and delete markers), newest first: one ListObjectVersions page.
/// The exact key sorts before every longer key with it as a prefix, so its entries come first.
pub async fn history(client: &Client, bucket: &str, key: &str) -> Result<Vec<Version>, ReadError> {
    let out = client
        .list_object_versions()
        .bucket(bucket)
        .prefix(key)
        .max_keys(HISTORY)
        .send()
        .await
        .map_err(|e| AwsError::new(format!("s3://{bucket}/{key}"), "ListObjectVersions", &e))?;
    let of_key = |k: Option<&str>| k == Some(key);
    let versions = out
        .versions()
        .iter()
        .filter(|v| of_key(v.key()))
        .filter_map(|v| Some((v.version_id()?.to_string(), v.last_modified().copied())));
    let markers = out
        .delete_markers()
        .iter()
        .filter(|m| of_key(m.key()))
        .filter_map(|m| Some((m.version_id()?.to_string(), m.last_modified().copied())));
    Ok(merged(versions.collect(), markers.collect()))
}

/// An object's versions and delete markers as one history, newest first. S3 lists each kind apart, newest first:
/// the versions keep S3's own order (a multipart upload's LastModified is when it began, so times do not order
/// them), each marker goes before the first version no newer than it, a marker of the same second counting as the
/// newer: a deletion never brings back what it withdrew.
fn merged(
    versions: Vec<(String, Option<aws_sdk_s3::primitives::DateTime>)>,
    markers: Vec<(String, Option<aws_sdk_s3::primitives::DateTime>)>,
) -> Vec<Version> {
    let mut out = Vec::with_capacity(versions.len() + markers.len());
    let mut markers = markers.into_iter().peekable();
    for (id, modified) in versions {
        while let Some((marker, _)) = markers.next_if(|(_, at)| *at >= modified) {
            out.push(Version { id: marker, delete_marker: true });
        }
        out.push(Version { id, delete_marker: false });
    }
    out.extend(markers.map(|(id, _)| Version { id, delete_marker: true }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws_error::AwsFailure;

    #[test]
    fn given_an_objects_history_when_asked_for_older_versions_then_newest_first_and_none_from_before_a_deletion() {
        let v = |id: &str| Version { id: id.into(), delete_marker: false };
        let gone = |id: &str| Version { id: id.into(), delete_marker: true };
        // GIVEN v1, deleted, then v3 v4 v5 uploaded (newest first)
        let history = [v("v5"), v("v4"), v("v3"), gone("d2"), v("v1")];
        // THEN the versions before v5 are v4 and v3, not v1, which the deletion withdrew
        assert_eq!(older_than(&history, "v5"), vec!["v4", "v3"]);
        assert_eq!(older_than(&history, "v3"), Vec::<String>::new());
        // AND a version not in the history (or a marker's id) has no older ones
        assert!(older_than(&history, "v9").is_empty());
        assert!(older_than(&history, "d2").is_empty());
    }

    #[test]
    fn given_versions_and_delete_markers_when_merged_then_a_marker_of_the_same_second_is_the_newer() {
        let t = |s: i64| Some(aws_sdk_s3::primitives::DateTime::from_secs(s));
        let ids = |history: Vec<Version>| -> Vec<(String, bool)> {
            history.into_iter().map(|v| (v.id, v.delete_marker)).collect()
        };
        // GIVEN v1, its deletion in the same second, then v3
        let history = merged(vec![("v3".into(), t(30)), ("v1".into(), t(10))], vec![("d".into(), t(10))]);
        // THEN the marker is newer than v1, so nothing before v3 may stand in for it
        assert_eq!(ids(history.clone()), vec![("v3".into(), false), ("d".into(), true), ("v1".into(), false)]);
        assert!(older_than(&history, "v3").is_empty());
        // GIVEN a multipart v2 begun before v1 and completed after it: S3 lists it newer, and that order stands
        let history = merged(vec![("v3".into(), t(30)), ("v2".into(), t(5)), ("v1".into(), t(10))], vec![]);
        assert_eq!(older_than(&history, "v3"), vec!["v2", "v1"]);
    }

    #[test]
    fn given_s3_uris_when_parsed_then_bucket_and_key_or_none() {
        assert_eq!(parse_uri("s3://b/dir/k.json"), Some(("b".into(), "dir/k.json".into())));
        for bad in ["s3://b", "s3:///k", "s3://b/", "https://b/k", "b/k"] {
            assert_eq!(parse_uri(bad), None, "{bad}");
        }
    }

    #[test]
    fn given_each_read_failure_when_classified_then_a_broken_stream_is_retried_and_a_large_object_is_not() {
        let stream = ReadError::Stream { target: "s3://b/k".into(), reason: "connection reset".into() };
        assert_eq!(stream.error_type(), ErrorType::SERVICE_UNAVAILABLE);
        assert!(stream.error_type().is_retryable());
        let large =
            ReadError::TooLarge { error: InvalidInput::new("s3://b/k", "is larger than 10 bytes"), version: None };
        assert_eq!(large.error_type(), ErrorType::INVALID_INPUT);
        assert_eq!(large.to_string(), "invalid request: `s3://b/k` is larger than 10 bytes");
        let missing = ReadError::Aws(AwsError {
            target: "s3://b/k".into(),
            failure: AwsFailure {
                operation: "GetObject",
                code: Some("NoSuchKey".into()),
                message: "gone".into(),
                error_type: crate::aws_error::error_type_of("NoSuchKey", Some(404)),
            },
        });
        assert_eq!(missing.error_type(), ErrorType::NOT_FOUND);
    }
}
