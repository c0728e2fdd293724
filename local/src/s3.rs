//! S3 objects for uploaded keys and desired-state documents: the `s3s` crate speaks the S3 protocol (and checks SigV4
//! with the local credentials), an in-memory store keeps the objects. Buckets are versioned, as keeper's template
//! makes them: every put is a new version, and a read may name an older one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use s3s::dto::{
    CreateBucketInput, CreateBucketOutput, ETag, GetObjectInput, GetObjectOutput, HeadBucketInput, HeadBucketOutput,
    HeadObjectInput, HeadObjectOutput, ListObjectVersionsInput, ListObjectVersionsOutput, ListObjectsV2Input,
    ListObjectsV2Output, Object, ObjectVersion, PutObjectInput, PutObjectOutput, StreamingBlob,
};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};
use sha2::{Digest, Sha256};

use crate::wire::Body;
use crate::world::SeedObject;

/// One stored object.
#[derive(Debug, Clone)]
struct Stored {
    body: Bytes,
    etag: String,
    version_id: String,
    modified: SystemTime,
    content_type: Option<String>,
}

/// Buckets and their objects, in memory: every version of a key, the current one last.
#[derive(Debug, Default)]
pub struct Store {
    buckets: Mutex<BTreeMap<String, BTreeMap<String, Vec<Stored>>>>,
}

impl Store {
    pub fn from_seed(seed: &BTreeMap<String, BTreeMap<String, SeedObject>>) -> Store {
        let store = Store::default();
        for (bucket, objects) in seed {
            store.lock().entry(bucket.clone()).or_default();
            for (key, object) in objects {
                store.put_version(bucket, key, Bytes::from(object.body().to_string()), object.version_id());
            }
        }
        store
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, BTreeMap<String, Vec<Stored>>>> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores an object as a seed gives it: with its own version id when it names one.
    fn put_version(&self, bucket: &str, key: &str, body: Bytes, version_id: Option<&str>) {
        let (_, generated) = self.put(bucket, key, body, None);
        if let Some(version_id) = version_id
            && let Some(stored) = self.lock().get_mut(bucket).and_then(|b| b.get_mut(key)).and_then(|v| v.last_mut())
            && stored.version_id == generated
        {
            stored.version_id = version_id.to_string();
        }
    }

    /// Stores an object (creating the bucket), returning its ETag and version id.
    pub fn put(&self, bucket: &str, key: &str, body: Bytes, content_type: Option<String>) -> (String, String) {
        let etag: String = Sha256::digest(&body).iter().take(16).map(|b| format!("{b:02x}")).collect();
        let version_id = uuid::Uuid::new_v4().simple().to_string();
        let stored = Stored {
            body,
            etag: etag.clone(),
            version_id: version_id.clone(),
            modified: SystemTime::now(),
            content_type,
        };
        self.lock().entry(bucket.to_string()).or_default().entry(key.to_string()).or_default().push(stored);
        (etag, version_id)
    }

    /// The current version's body.
    pub fn get(&self, bucket: &str, key: &str) -> Option<Bytes> {
        self.lock().get(bucket)?.get(key)?.last().map(|o| o.body.clone())
    }

    /// The current version id of an object (what an S3 notification of its last upload names).
    pub fn version(&self, bucket: &str, key: &str) -> Option<String> {
        self.lock().get(bucket)?.get(key)?.last().map(|o| o.version_id.clone())
    }

    /// Every object's current version as text (lossy) with its version id, for the state dump.
    pub fn snapshot(&self) -> BTreeMap<String, BTreeMap<String, SeedObject>> {
        self.lock()
            .iter()
            .map(|(b, objects)| {
                (
                    b.clone(),
                    objects
                        .iter()
                        .filter_map(|(k, versions)| versions.last().map(|o| (k, o)))
                        .map(|(k, o)| {
                            let body = String::from_utf8_lossy(&o.body).into_owned();
                            (k.clone(), SeedObject::Versioned { body, version_id: o.version_id.clone() })
                        })
                        .collect(),
                )
            })
            .collect()
    }
}

struct Backend(Arc<Store>);

/// The current version of an object, or the one named.
fn lookup(store: &Store, bucket: &str, key: &str, version: Option<&str>) -> S3Result<Stored> {
    let buckets = store.lock();
    let objects = buckets.get(bucket).ok_or_else(|| s3_error!(NoSuchBucket, "bucket {bucket} does not exist"))?;
    let versions = objects.get(key).ok_or_else(|| s3_error!(NoSuchKey, "key {key} does not exist"))?;
    match version {
        None => versions.last().cloned().ok_or_else(|| s3_error!(NoSuchKey, "key {key} does not exist")),
        Some(v) => versions
            .iter()
            .find(|o| o.version_id == v)
            .cloned()
            .ok_or_else(|| s3_error!(NoSuchVersion, "version {v} of {key} does not exist")),
    }
}

#[async_trait::async_trait]
impl S3 for Backend {
    async fn create_bucket(&self, req: S3Request<CreateBucketInput>) -> S3Result<S3Response<CreateBucketOutput>> {
        self.0.lock().entry(req.input.bucket.clone()).or_default();
        Ok(S3Response::new(CreateBucketOutput::default()))
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        if !self.0.lock().contains_key(&req.input.bucket) {
            return Err(s3_error!(NoSuchBucket));
        }
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let input = req.input;
        if !self.0.lock().contains_key(&input.bucket) {
            return Err(s3_error!(NoSuchBucket, "bucket {} does not exist", input.bucket));
        }
        let mut body = Vec::new();
        if let Some(mut blob) = input.body {
            while let Some(chunk) = blob.next().await {
                body.extend_from_slice(&chunk.map_err(|e| s3_error!(IncompleteBody, "{e}"))?);
            }
        }
        let (etag, version_id) = self.0.put(&input.bucket, &input.key, Bytes::from(body), input.content_type);
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(etag)),
            version_id: Some(version_id),
            ..Default::default()
        }))
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let o = lookup(&self.0, &req.input.bucket, &req.input.key, req.input.version_id.as_deref())?;
        let length = o.body.len() as i64;
        let blob = StreamingBlob::wrap(futures_util::stream::once(async move { Ok::<_, std::io::Error>(o.body) }));
        Ok(S3Response::new(GetObjectOutput {
            body: Some(blob),
            content_length: Some(length),
            content_type: o.content_type,
            e_tag: Some(ETag::Strong(o.etag)),
            last_modified: Some(o.modified.into()),
            version_id: Some(o.version_id),
            ..Default::default()
        }))
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let o = lookup(&self.0, &req.input.bucket, &req.input.key, req.input.version_id.as_deref())?;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(o.body.len() as i64),
            content_type: o.content_type,
            e_tag: Some(ETag::Strong(o.etag)),
            last_modified: Some(o.modified.into()),
            version_id: Some(o.version_id),
            ..Default::default()
        }))
    }

    /// Every version of every key under the prefix: keys in order, each key's versions newest first (the store
    /// keeps them oldest first), from after `key-marker` (and `version-id-marker`), at most `max-keys` of them. The
    /// store has no deletes, so no delete markers.
    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let input = req.input;
        let buckets = self.0.lock();
        let objects = buckets.get(&input.bucket).ok_or_else(|| s3_error!(NoSuchBucket))?;
        // As S3 answers: a version marker needs its key marker, and must be a version of that key.
        match (&input.key_marker, &input.version_id_marker) {
            (None, Some(_)) => {
                return Err(s3_error!(
                    InvalidArgument,
                    "A version-id marker cannot be specified without a key marker."
                ));
            }
            (Some(key), Some(version))
                if !objects.get(key).is_some_and(|versions| versions.iter().any(|o| o.version_id == *version)) =>
            {
                return Err(s3_error!(InvalidArgument, "Invalid version id specified"));
            }
            _ => {}
        }
        let prefix = input.prefix.clone().unwrap_or_default();
        let max = input.max_keys.unwrap_or(1000).clamp(0, 1000) as usize;
        let entries = objects
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .flat_map(|(k, versions)| {
                let latest = versions.len().saturating_sub(1);
                versions.iter().enumerate().rev().map(move |(i, o)| (k, o, i == latest))
            })
            .skip_while(|(k, o, _)| match (&input.key_marker, &input.version_id_marker) {
                (None, _) => false,
                (Some(marker), None) => k.as_str() <= marker.as_str(),
                (Some(marker), Some(version)) => {
                    k.as_str() < marker.as_str() || (k.as_str() == marker.as_str() && o.version_id != *version)
                }
            });
        // With a version marker, the entry it names was the last one of the page before.
        let mut entries: Vec<_> = entries.collect();
        if input.version_id_marker.is_some() && !entries.is_empty() {
            entries.remove(0);
        }
        let truncated = entries.len() > max;
        entries.truncate(max);
        let versions: Vec<ObjectVersion> = entries
            .iter()
            .map(|(k, o, latest)| ObjectVersion {
                key: Some((*k).clone()),
                version_id: Some(o.version_id.clone()),
                is_latest: Some(*latest),
                size: Some(o.body.len() as i64),
                e_tag: Some(ETag::Strong(o.etag.clone())),
                last_modified: Some(o.modified.into()),
                ..Default::default()
            })
            .collect();
        let last = entries.last().filter(|_| truncated);
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket.clone()),
            prefix: input.prefix.clone(),
            key_marker: input.key_marker.clone(),
            version_id_marker: input.version_id_marker.clone(),
            max_keys: Some(max as i32),
            is_truncated: Some(truncated),
            next_key_marker: last.map(|(k, _, _)| (*k).clone()),
            next_version_id_marker: last.map(|(_, o, _)| o.version_id.clone()),
            versions: Some(versions),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(&self, req: S3Request<ListObjectsV2Input>) -> S3Result<S3Response<ListObjectsV2Output>> {
        let buckets = self.0.lock();
        let objects = buckets.get(&req.input.bucket).ok_or_else(|| s3_error!(NoSuchBucket))?;
        let prefix = req.input.prefix.clone().unwrap_or_default();
        let contents: Vec<Object> = objects
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .filter_map(|(k, versions)| versions.last().map(|o| (k, o)))
            .map(|(k, o)| Object {
                key: Some(k.clone()),
                size: Some(o.body.len() as i64),
                e_tag: Some(ETag::Strong(o.etag.clone())),
                last_modified: Some(o.modified.into()),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListObjectsV2Output {
            key_count: Some(contents.len() as i32),
            contents: Some(contents),
            name: Some(req.input.bucket.clone()),
            prefix: req.input.prefix.clone(),
            is_truncated: Some(false),
            ..Default::default()
        }))
    }
}

/// The S3 service over `store`, verifying SigV4 with keeper's local credentials.
pub fn service(store: Arc<Store>) -> S3Service {
    let mut builder = S3ServiceBuilder::new(Backend(store));
    builder
        .set_auth(s3s::auth::SimpleAuth::from_single(crate::client::ACCESS_KEY_ID, crate::client::SECRET_ACCESS_KEY));
    builder.build()
}

/// The operation of an S3 request, for the call log (path-style requests, as the SDK sends to an IP endpoint).
pub(crate) fn operation(method: &http::Method, uri: &http::Uri) -> (&'static str, String, String) {
    let trimmed = uri.path().trim_start_matches('/');
    let (bucket, key) = trimmed.split_once('/').unwrap_or((trimmed, ""));
    let versions =
        uri.query().is_some_and(|q| q.split('&').any(|pair| pair == "versions" || pair.starts_with("versions=")));
    let op = match (method.as_str(), key.is_empty()) {
        ("PUT", true) => "CreateBucket",
        ("HEAD", true) => "HeadBucket",
        ("GET", true) if versions => "ListObjectVersions",
        ("GET", true) => "ListObjectsV2",
        ("PUT", false) => "PutObject",
        ("GET", false) => "GetObject",
        ("HEAD", false) => "HeadObject",
        ("DELETE", false) => "DeleteObject",
        _ => "(other)",
    };
    (op, bucket.to_string(), percent_encoding::percent_decode_str(key).decode_utf8_lossy().into_owned())
}

/// Serves one S3 request and logs it.
pub async fn handle(
    service: &S3Service,
    req: Request<Incoming>,
    _region: &str,
    log: impl FnOnce(&str, BTreeMap<String, String>, &Result<(), String>),
) -> Response<Body> {
    let (op, bucket, key) = operation(req.method(), req.uri());
    let version = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("versionId="))
            .map(|v| percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
    });
    let response = service.call(req.map(s3s::Body::from)).await;
    let mut params = BTreeMap::from([("Bucket".to_string(), bucket)]);
    if !key.is_empty() {
        params.insert("Key".into(), key);
    }
    if let Some(version) = version {
        params.insert("VersionId".into(), version);
    }
    match response {
        Ok(resp) => {
            let outcome =
                if resp.status().is_success() { Ok(()) } else { Err(format!("HTTP {}", resp.status().as_u16())) };
            log(op, params, &outcome);
            resp.map(BodyExt::boxed)
        }
        Err(e) => {
            log(op, params, &Err("InternalError".into()));
            Response::builder()
                .status(500)
                .body(http_body_util::Full::new(Bytes::from(format!("{e:?}"))).map_err(|never| match never {}).boxed())
                .unwrap_or_else(|_| Response::new(http_body_util::Empty::new().map_err(|never| match never {}).boxed()))
        }
    }
}
