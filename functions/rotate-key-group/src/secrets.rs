//! Observe and apply for managed signing keys: the Secrets Manager calls of a rotation (describe, read a version,
//! put the pending version, move AWSCURRENT) and the secret's value. Errors are classified here, on the SDK's typed
//! variants.

use std::collections::HashMap;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueError;
use serde::{Deserialize, Serialize};
use shared::aws_error::AwsError;
use shared::host::Permit;

use crate::error::Error;
use crate::keypair::{Algorithm, PrivateKey};

pub const CURRENT: &str = "AWSCURRENT";
pub const PENDING: &str = "AWSPENDING";

/// The tag that names the deployment (`KEEPER_STACK`) a secret belongs to: no other deployment's function rotates it.
pub const STACK_TAG: &str = "keeper:stack";
/// The tag that names the key group a secret's keys sign for.
pub const GROUP_TAG: &str = "keeper:key-group";

/// A managed signing key: what the secret's value holds, and what a signer reads from `AWSCURRENT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SigningKey {
    /// The CloudFront public key id: a signed URL's `Key-Pair-Id`.
    pub key_pair_id: String,
    /// PKCS#8 PEM.
    pub private_key: PrivateKey,
    /// The public half (SubjectPublicKeyInfo PEM), as it was given to CloudFront.
    pub public_key: String,
    pub algorithm: Algorithm,
    pub key_group_id: String,
    /// RFC 3339, when the key pair was made.
    pub created_at: String,
}

impl SigningKey {
    /// The value of a version, if it is a signing key keeper made (a secret's first value may be a placeholder).
    pub fn parse(value: &str) -> Result<SigningKey, String> {
        serde_json::from_str(value).map_err(|e| format!("not a keeper signing key ({e})"))
    }

    pub fn to_json(&self) -> Result<String, Error> {
        serde_json::to_string(self).map_err(|e| Error::Internal(format!("signing key: {e}")))
    }
}

/// A secret as DescribeSecret shows it: what every step checks first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    pub arn: String,
    pub name: String,
    pub rotation_enabled: bool,
    pub tags: HashMap<String, String>,
    /// Version id → staging labels.
    pub versions: HashMap<String, Vec<String>>,
}

impl Secret {
    /// The version that holds `stage`.
    pub fn staged(&self, stage: &str) -> Option<&str> {
        self.versions.iter().find(|(_, stages)| stages.iter().any(|s| s == stage)).map(|(v, _)| v.as_str())
    }

    pub fn stages_of(&self, version: &str) -> Option<&[String]> {
        self.versions.get(version).map(Vec::as_slice)
    }
}

pub async fn describe(sm: &Client, secret_id: &str) -> Result<Secret, Error> {
    let out = sm
        .describe_secret()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| AwsError::new(secret_id, "DescribeSecret", &e))?;
    let tags = out
        .tags()
        .iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
        .collect();
    Ok(Secret {
        arn: out.arn().ok_or(Error::UnexpectedResponse { operation: "DescribeSecret", missing: "ARN" })?.to_string(),
        name: out.name().unwrap_or_default().to_string(),
        rotation_enabled: out.rotation_enabled().unwrap_or(false),
        tags,
        versions: out.version_ids_to_stages().cloned().unwrap_or_default(),
    })
}

/// The value of one version (by id, and the stage it must hold): `None` when the version has no value yet (the
/// version RotateSecret made, before createSecret put one) or does not hold the stage.
pub async fn value(sm: &Client, secret: &str, version: &str, stage: &str) -> Result<Option<String>, Error> {
    match sm.get_secret_value().secret_id(secret).version_id(version).version_stage(stage).send().await {
        Ok(out) => Ok(Some(out.secret_string().unwrap_or_default().to_string())),
        Err(e) if matches!(e.as_service_error(), Some(GetSecretValueError::ResourceNotFoundException(_))) => Ok(None),
        Err(e) => Err(AwsError::new(secret, "GetSecretValue", &e).into()),
    }
}

/// What became of a put of the pending version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// This call stored it (or its answer was lost and the SDK's retry found it stored, the same value).
    Stored,
    /// The version already holds another value: an attempt of this step that ran at the same time stored first.
    TakenByAnother,
}

/// Stores `value` as the version `token`, staged AWSPENDING. Secrets Manager's idempotency is the token itself: the
/// same token with the same value is answered as done, with another value ResourceExistsException.
pub async fn put_pending(
    sm: &Client,
    secret: &str,
    token: &str,
    value: &str,
    rotation_token: Option<&str>,
    _: &Permit,
) -> Result<Put, Error> {
    // The SDK's retry of a call whose answer was lost sends the same token and value: answered as done.
    let sent = sm
        .put_secret_value()
        .secret_id(secret)
        .client_request_token(token)
        .secret_string(value)
        .version_stages(PENDING)
        .set_rotation_token(rotation_token.map(String::from))
        .send()
        .await;
    match sent {
        Ok(_) => Ok(Put::Stored),
        Err(e) if matches!(e.as_service_error(), Some(PutSecretValueError::ResourceExistsException(_))) => {
            Ok(Put::TakenByAnother)
        }
        Err(e) => Err(AwsError::new(secret, "PutSecretValue", &e).into()),
    }
}

/// Moves AWSCURRENT from `from` to `to` (AWSPREVIOUS follows to `from`, Secrets Manager's rule).
pub async fn make_current(sm: &Client, secret: &str, to: &str, from: Option<&str>, _: &Permit) -> Result<(), Error> {
    sm.update_secret_version_stage()
        .secret_id(secret)
        .version_stage(CURRENT)
        .move_to_version_id(to)
        .set_remove_from_version_id(from.map(String::from))
        .send()
        .await
        .map_err(|e| AwsError::new(secret, "UpdateSecretVersionStage", &e))?;
    Ok(())
}
