//! AWS Secrets Manager over awsJson1_1 (`X-Amz-Target: secretsmanager.<Op>`): secrets, their versions and staging
//! labels, and rotation requests recorded for a driver to run, since the emulator invokes no Lambda.
//!
//! RotateSecret does what AWS does before it invokes the rotation function: it stages AWSPENDING on a version with
//! the rotation's token as its id and no value yet (DescribeSecret shows it, GetSecretValue and ListSecretVersionIds
//! do not), which the function's createSecret step fills with PutSecretValue.
//!
//! Where the API reference is silent about an error (removing AWSCURRENT without moving it, say) the choice is marked
//! inferred.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::validate::{Object, Rules};
use crate::wire::{ApiError, ApiRequest, Encoded, Reply, ReplyBody};

/// Secrets Manager answers a broken model constraint with ValidationException, a code its model does not list.
const RULES: Rules = Rules { code: "ValidationException", status: 400 };
const TARGET_PREFIX: &str = "secretsmanager.";

pub const OPERATIONS: [&str; 9] = [
    "CreateSecret",
    "DescribeSecret",
    "GetSecretValue",
    "PutSecretValue",
    "UpdateSecretVersionStage",
    "ListSecretVersionIds",
    "TagResource",
    "RotateSecret",
    "CancelRotateSecret",
];

/// The request members that identify what a call acts on: logged, and matched by fault rules' `when`.
const PARAMS: [&str; 7] =
    ["SecretId", "Name", "VersionId", "VersionStage", "MoveToVersionId", "RemoveFromVersionId", "ClientRequestToken"];

pub const CURRENT: &str = "AWSCURRENT";
pub const PREVIOUS: &str = "AWSPREVIOUS";
pub const PENDING: &str = "AWSPENDING";

/// AWS keeps the 100 newest versions (and every one younger than a day); only deprecated ones are ever dropped here.
const MAX_VERSIONS: usize = 100;
/// ListSecretVersionIds' page when the caller names no MaxResults (the model's largest).
const PAGE: usize = 100;
const NEXT_TOKEN_PREFIX: &str = "sv-";

/// What Secrets Manager keeps in one region.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    /// Secrets by name.
    pub secrets: BTreeMap<String, Secret>,
    /// RotateSecret calls whose rotation Lambda no driver has run yet, oldest first.
    pub rotation_requests: Vec<RotationRequest>,
}

/// One secret: its metadata and every version not yet dropped, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Secret {
    /// Filled in with a random suffix when a seed leaves it out.
    #[serde(default)]
    pub arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    /// None until rotation is first configured: DescribeSecret then leaves the member out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_lambda_arn: Option<String>,
    /// As RotateSecret sent it (the model's RotationRulesType members).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_rules: Option<Value>,
    /// The token of the rotation under way: AWSCURRENT reaching that version completes it (LastRotatedDate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotated_ms: Option<i64>,
    #[serde(default)]
    pub last_changed_ms: i64,
    #[serde(default)]
    pub created_ms: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<Version>,
}

/// One version: its value (text, or binary as the wire's base64; neither for the version RotateSecret stages before the
/// rotation function puts one) and the staging labels on it; none = deprecated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Version {
    pub version_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_string: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_binary: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<String>,
    #[serde(default)]
    pub created_ms: i64,
}

/// An invocation of a rotation Lambda that AWS would make after RotateSecret: the event's `SecretId` (the ARN) and
/// `ClientRequestToken`, and the function. A driver runs its steps (createSecret puts the AWSPENDING version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotationRequest {
    pub secret_arn: String,
    pub token: String,
    pub lambda_arn: String,
}

/// A secret value as a request carries it: (SecretString, SecretBinary), exactly one of them set.
type Payload = (Option<String>, Option<String>);

impl Version {
    fn holds(&self, label: &str) -> bool {
        self.stages.iter().any(|s| s == label)
    }

    fn has_value(&self) -> bool {
        self.secret_string.is_some() || self.secret_binary.is_some()
    }

    fn same_value(&self, payload: &Payload) -> bool {
        self.secret_string == payload.0 && self.secret_binary == payload.1
    }
}

impl Secret {
    fn holder(&self, label: &str) -> Option<usize> {
        self.versions.iter().position(|v| v.holds(label))
    }

    fn index_of(&self, version_id: &str) -> Option<usize> {
        self.versions.iter().position(|v| v.version_id == version_id)
    }
}

pub fn status_of(code: &str) -> u16 {
    // The model marks InternalServiceError as the server's fault; every other error is the caller's.
    if code == "InternalServiceError" { 500 } else { 400 }
}

/// Checks the request against the Secrets Manager model.
pub fn validate(req: &ApiRequest, operation: &str) -> Result<(), ApiError> {
    let input = Value::Object(RULES.body(&req.body)?);
    crate::model::SECRETSMANAGER.validate_input(operation, &input).map_err(|v| RULES.fail(v.to_string()))
}

pub fn route(req: &ApiRequest) -> Result<(&'static str, BTreeMap<String, String>), ApiError> {
    let name = (req.path == "/")
        .then(|| req.header("x-amz-target")?.strip_prefix(TARGET_PREFIX))
        .flatten()
        .unwrap_or_default();
    let operation = OPERATIONS.iter().copied().find(|op| *op == name).ok_or_else(|| {
        ApiError::new(
            "UnknownOperationException",
            400,
            format!("`{name}` is not a Secrets Manager operation served here"),
        )
    })?;
    let mut params = BTreeMap::new();
    if let Ok(body) = RULES.body(&req.body) {
        for key in PARAMS {
            if let Some(v) = body.get(key).and_then(Value::as_str) {
                params.insert(key.to_string(), v.to_string());
            }
        }
    }
    Ok((operation, params))
}

struct Ctx<'a> {
    account: &'a str,
    region_name: &'a str,
    now_ms: i64,
}

/// Runs one operation on the secrets of the request's region.
pub fn execute(state: &mut State, account: &str, req: &ApiRequest, operation: &str) -> Result<Reply, ApiError> {
    let body = RULES.body(&req.body)?;
    let ctx = Ctx { account, region_name: &req.region, now_ms: req.now_ms };
    let out = match operation {
        "CreateSecret" => create(state, &ctx, &body)?,
        "DescribeSecret" => describe(state, &body)?,
        "GetSecretValue" => get_value(state, &body)?,
        "PutSecretValue" => put_value(state, &ctx, &body)?,
        "UpdateSecretVersionStage" => update_stage(state, &ctx, &body)?,
        "ListSecretVersionIds" => list_versions(state, &body)?,
        "TagResource" => tag(state, &ctx, &body)?,
        "RotateSecret" => rotate(state, &ctx, &body)?,
        "CancelRotateSecret" => cancel_rotation(state, &ctx, &body)?,
        other => return Err(ApiError::new("UnknownOperationException", 400, format!("{other} is not served"))),
    };
    Ok(Reply::json(out))
}

fn secs(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

fn not_found() -> ApiError {
    ApiError::new("ResourceNotFoundException", 400, "Secrets Manager can't find the specified secret.")
}

fn invalid_parameter(message: impl Into<String>) -> ApiError {
    ApiError::new("InvalidParameterException", 400, message)
}

fn invalid_request(message: impl Into<String>) -> ApiError {
    ApiError::new("InvalidRequestException", 400, message)
}

/// `arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 random characters>`: a secret created again under a
/// deleted one's name gets another ARN, so grants on the old ARN do not reach it.
fn new_arn(account: &str, region_name: &str, name: &str) -> String {
    let suffix: String = (0..6).map(|_| fastrand::alphanumeric()).collect();
    format!("arn:aws:secretsmanager:{region_name}:{account}:secret:{name}-{suffix}")
}

/// The ARN without its `-XXXXXX` suffix, which AWS also accepts as a SecretId.
fn partial_arn(arn: &str) -> Option<&str> {
    arn.get(..arn.len().checked_sub(7)?)
}

/// The secret a SecretId names (its name, its ARN, or its ARN without the random suffix), with its name.
fn find<'a>(state: &'a mut State, id: &str) -> Result<(String, &'a mut Secret), ApiError> {
    let name = if state.secrets.contains_key(id) {
        id.to_string()
    } else {
        let by_arn = state.secrets.iter().find(|(_, s)| s.arn == id || partial_arn(&s.arn) == Some(id));
        match by_arn {
            Some((name, _)) => name.clone(),
            None => return Err(not_found()),
        }
    };
    match state.secrets.get_mut(&name) {
        Some(secret) => Ok((name, secret)),
        None => Err(not_found()),
    }
}

fn secret_id(body: &Object) -> Result<&str, ApiError> {
    RULES.required(body, "SecretId", "")
}

/// The SDKs fill ClientRequestToken themselves; a raw request without one gets a fresh id, like a caller that never
/// retries.
fn token_of(body: &Object) -> Result<String, ApiError> {
    Ok(RULES.string(body, "ClientRequestToken", "")?.map_or_else(|| uuid::Uuid::new_v4().to_string(), String::from))
}

fn payload(body: &Object) -> Result<Option<Payload>, ApiError> {
    let text = RULES.string(body, "SecretString", "")?;
    let binary = RULES.string(body, "SecretBinary", "")?;
    match (text, binary) {
        (Some(_), Some(_)) => Err(invalid_parameter(
            "You can't specify both a binary secret value and a string secret value in the same secret.",
        )),
        (None, None) => Ok(None),
        (text, binary) => Ok(Some((text.map(String::from), binary.map(String::from)))),
    }
}

fn tags_of(body: &Object) -> Result<BTreeMap<String, String>, ApiError> {
    let mut tags = BTreeMap::new();
    for tag in RULES.array(body, "Tags", "")?.into_iter().flatten() {
        // The model leaves Key optional; a tag without one cannot be kept.
        let key = tag.get("Key").and_then(Value::as_str).ok_or_else(|| invalid_parameter("Every tag needs a Key."))?;
        let value = tag.get("Value").and_then(Value::as_str).unwrap_or_default();
        tags.insert(key.to_string(), value.to_string());
    }
    Ok(tags)
}

/// Adds VersionStages to a reply only when there are some: the model's list needs at least one label.
fn with_stages(mut out: Value, stages: &[String]) -> Value {
    if !stages.is_empty() {
        out["VersionStages"] = json!(stages);
    }
    out
}

/// Puts `label` on the version at `to`, taking it off whichever version held it: a label sits on one version at a
/// time. AWSCURRENT leaving a version takes AWSPREVIOUS there; reaching the version of the rotation under way, it
/// completes that rotation.
fn attach(secret: &mut Secret, to: usize, label: &str, now_ms: i64) {
    let from = secret.holder(label);
    if from == Some(to) {
        return;
    }
    if let Some(from) = from {
        secret.versions[from].stages.retain(|s| s != label);
        if label == CURRENT {
            attach(secret, from, PREVIOUS, now_ms);
        }
    }
    secret.versions[to].stages.push(label.to_string());
    if label == CURRENT && secret.rotation_token.as_deref() == Some(secret.versions[to].version_id.as_str()) {
        secret.rotation_token = None;
        secret.last_rotated_ms = Some(now_ms);
    }
}

/// Drops the oldest deprecated versions beyond the versions AWS keeps; labelled ones always stay.
fn prune(secret: &mut Secret) {
    while secret.versions.len() > MAX_VERSIONS {
        match secret.versions.iter().position(|v| v.stages.is_empty()) {
            Some(oldest) => {
                secret.versions.remove(oldest);
            }
            None => break,
        }
    }
}

fn create(state: &mut State, ctx: &Ctx<'_>, body: &Object) -> Result<Value, ApiError> {
    let name = RULES.required(body, "Name", "")?;
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c)) {
        return Err(RULES.fail(
            "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: /_+=.@-",
        ));
    }
    for member in ["AddReplicaRegions", "CrossAccountPrimaryARN"] {
        if body.get(member).is_some_and(|v| !v.is_null()) {
            return Err(invalid_request(format!("{member}: replication is not emulated")));
        }
    }
    let payload = payload(body)?;
    let token = token_of(body)?;
    let tags = tags_of(body)?;
    if let Some(existing) = state.secrets.get(name) {
        // A retry of this very create (its answer lost) finds the version its first attempt made: the token names a
        // version with the same value, which PutSecretValue's rule treats as done already.
        if let Some(p) = &payload
            && let Some(version) = existing.versions.iter().find(|v| v.version_id == token)
            && version.same_value(p)
        {
            return Ok(json!({"ARN": existing.arn, "Name": name, "VersionId": token}));
        }
        return Err(ApiError::new(
            "ResourceExistsException",
            400,
            format!("The operation failed because the secret {name} already exists."),
        ));
    }
    let mut secret = Secret {
        arn: new_arn(ctx.account, ctx.region_name, name),
        description: RULES.string(body, "Description", "")?.map(String::from),
        kms_key_id: RULES.string(body, "KmsKeyId", "")?.filter(|k| !k.is_empty()).map(String::from),
        tags,
        rotation_enabled: None,
        rotation_lambda_arn: None,
        rotation_rules: None,
        rotation_token: None,
        last_rotated_ms: None,
        last_changed_ms: ctx.now_ms,
        created_ms: ctx.now_ms,
        versions: Vec::new(),
    };
    let mut out = json!({"ARN": secret.arn, "Name": name});
    if let Some((text, binary)) = payload {
        secret.versions.push(Version {
            version_id: token.clone(),
            secret_string: text,
            secret_binary: binary,
            stages: vec![CURRENT.to_string()],
            created_ms: ctx.now_ms,
        });
        out["VersionId"] = json!(token);
    }
    state.secrets.insert(name.to_string(), secret);
    Ok(out)
}

fn describe(state: &mut State, body: &Object) -> Result<Value, ApiError> {
    let (name, secret) = find(state, secret_id(body)?)?;
    let mut out = json!({
        "ARN": secret.arn,
        "Name": name,
        "CreatedDate": secs(secret.created_ms),
        "LastChangedDate": secs(secret.last_changed_ms),
    });
    if let Some(description) = &secret.description {
        out["Description"] = json!(description);
    }
    if let Some(key) = &secret.kms_key_id {
        out["KmsKeyId"] = json!(key);
    }
    if let Some(enabled) = secret.rotation_enabled {
        out["RotationEnabled"] = json!(enabled);
    }
    if let Some(lambda) = &secret.rotation_lambda_arn {
        out["RotationLambdaARN"] = json!(lambda);
    }
    if let Some(rules) = &secret.rotation_rules {
        out["RotationRules"] = rules.clone();
    }
    // The reference: null when the secret is not configured for rotation or rotation has been turned off.
    if secret.rotation_enabled == Some(true)
        && let Some(ms) = secret.last_rotated_ms
    {
        out["LastRotatedDate"] = secs(ms);
    }
    if !secret.tags.is_empty() {
        out["Tags"] = Value::Array(secret.tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect());
    }
    let stages: Map<String, Value> = secret
        .versions
        .iter()
        .filter(|v| !v.stages.is_empty())
        .map(|v| (v.version_id.clone(), json!(v.stages)))
        .collect();
    if !stages.is_empty() {
        out["VersionIdsToStages"] = Value::Object(stages);
    }
    Ok(out)
}

fn missing_value(what: String) -> ApiError {
    ApiError::new(
        "ResourceNotFoundException",
        400,
        format!("Secrets Manager can't find the specified secret value for {what}"),
    )
}

fn get_value(state: &mut State, body: &Object) -> Result<Value, ApiError> {
    let id = secret_id(body)?;
    let version_id = RULES.string(body, "VersionId", "")?;
    let stage = RULES.string(body, "VersionStage", "")?;
    let (name, secret) = find(state, id)?;
    let version = match version_id {
        Some(wanted) => {
            let version = secret
                .versions
                .iter()
                .find(|v| v.version_id == wanted && v.has_value())
                .ok_or_else(|| missing_value(format!("VersionId: {wanted}")))?;
            // Both given must name the same version.
            if let Some(stage) = stage
                && !version.holds(stage)
            {
                return Err(missing_value(format!("VersionId: {wanted} and staging label: {stage}")));
            }
            version
        }
        None => {
            let stage = stage.unwrap_or(CURRENT);
            secret
                .versions
                .iter()
                .find(|v| v.holds(stage) && v.has_value())
                .ok_or_else(|| missing_value(format!("staging label: {stage}")))?
        }
    };
    let mut out = json!({
        "ARN": secret.arn,
        "Name": name,
        "VersionId": version.version_id,
        "CreatedDate": secs(version.created_ms),
    });
    if let Some(text) = &version.secret_string {
        out["SecretString"] = json!(text);
    }
    if let Some(binary) = &version.secret_binary {
        out["SecretBinary"] = json!(binary);
    }
    Ok(with_stages(out, &version.stages))
}

fn put_value(state: &mut State, ctx: &Ctx<'_>, body: &Object) -> Result<Value, ApiError> {
    let id = secret_id(body)?;
    let Some((text, binary)) = payload(body)? else {
        return Err(invalid_request("You must provide either SecretString or SecretBinary."));
    };
    let labels: Vec<String> = match RULES.array(body, "VersionStages", "")? {
        Some(items) => items.iter().filter_map(Value::as_str).map(String::from).collect(),
        None => vec![CURRENT.to_string()],
    };
    // RotationToken proves who rotates across accounts; there is one account here, so it is only validated.
    let token = token_of(body)?;
    let (name, secret) = find(state, id)?;
    let value: Payload = (text, binary);
    let existing = secret.index_of(&token);
    if let Some(existing) = existing
        && secret.versions[existing].has_value()
    {
        let version = &secret.versions[existing];
        if !version.same_value(&value) {
            return Err(ApiError::new(
                "ResourceExistsException",
                400,
                format!(
                    "A version with VersionId {token} already exists with another value; a version can't be changed, only a new one created."
                ),
            ));
        }
        // The same token and value again: a retry, answered as the first call was, with nothing changed.
        return Ok(with_stages(json!({"ARN": secret.arn, "Name": name, "VersionId": token}), &version.stages));
    }
    let first = secret.holder(CURRENT).is_none();
    let at = match existing {
        // The version RotateSecret staged for this token gets its value: the rotation's createSecret step.
        Some(at) => {
            let version = &mut secret.versions[at];
            (version.secret_string, version.secret_binary) = value;
            at
        }
        None => {
            secret.versions.push(Version {
                version_id: token.clone(),
                secret_string: value.0,
                secret_binary: value.1,
                stages: Vec::new(),
                created_ms: ctx.now_ms,
            });
            secret.versions.len() - 1
        }
    };
    for label in &labels {
        attach(secret, at, label, ctx.now_ms);
    }
    // The secret's first value is its current one, whatever labels the call named.
    if first {
        attach(secret, at, CURRENT, ctx.now_ms);
    }
    secret.last_changed_ms = ctx.now_ms;
    let out = with_stages(json!({"ARN": secret.arn, "Name": name, "VersionId": token}), &secret.versions[at].stages);
    prune(secret);
    Ok(out)
}

fn update_stage(state: &mut State, ctx: &Ctx<'_>, body: &Object) -> Result<Value, ApiError> {
    let id = secret_id(body)?;
    let label = RULES.required(body, "VersionStage", "")?;
    let move_to = RULES.string(body, "MoveToVersionId", "")?;
    let remove_from = RULES.string(body, "RemoveFromVersionId", "")?;
    let (name, secret) = find(state, id)?;
    let holder = secret.holder(label);
    let to = match move_to {
        Some(wanted) => Some(secret.index_of(wanted).ok_or_else(|| {
            ApiError::new(
                "ResourceNotFoundException",
                400,
                format!("Secrets Manager can't find the specified secret version: {wanted}"),
            )
        })?),
        None => None,
    };
    // Already there, and nothing else asked: nothing to move. A RemoveFromVersionId that does not hold the label is
    // refused below even then (the API reference: it must name the version the label is attached to), so a retry of
    // a move whose answer was lost meets that refusal, as at AWS, and the caller must recognise its own move.
    let named_holder =
        remove_from.is_none_or(|from| holder.map(|h| secret.versions[h].version_id.as_str()) == Some(from));
    if to.is_some() && to == holder && named_holder {
        return Ok(json!({"ARN": secret.arn, "Name": name}));
    }
    // Every check comes before any change: a refused call leaves the labels as they were.
    if let Some(from) = remove_from
        && holder.map(|h| secret.versions[h].version_id.as_str()) != Some(from)
    {
        return Err(invalid_parameter(format!(
            "The staging label {label} is not attached to version {from}, so it can't be removed from it."
        )));
    }
    match to {
        Some(to) => {
            if let Some(h) = holder
                && h != to
                && remove_from.is_none()
            {
                return Err(invalid_parameter(format!(
                    "The parameter RemoveFromVersionId can't be empty. Staging label {label} is currently attached to version {}, so you must explicitly reference that version in RemoveFromVersionId.",
                    secret.versions[h].version_id
                )));
            }
            attach(secret, to, label, ctx.now_ms);
        }
        None => {
            // RemoveFromVersionId, when given, was checked above to name the holder.
            let (Some(h), Some(_)) = (holder, remove_from) else {
                return Err(invalid_parameter("Name a version in MoveToVersionId, RemoveFromVersionId or both."));
            };
            // Inferred: a secret with a current version keeps one; AWSCURRENT moves, it is never only removed.
            if label == CURRENT {
                return Err(invalid_parameter(
                    "The staging label AWSCURRENT can't be removed from a version without moving it: name the version to move it to in MoveToVersionId.",
                ));
            }
            secret.versions[h].stages.retain(|s| s != label);
        }
    }
    secret.last_changed_ms = ctx.now_ms;
    Ok(json!({"ARN": secret.arn, "Name": name}))
}

fn list_versions(state: &mut State, body: &Object) -> Result<Value, ApiError> {
    let id = secret_id(body)?;
    let include_deprecated = RULES.boolean(body, "IncludeDeprecated", "")?.unwrap_or(false);
    let max = RULES.number(body, "MaxResults", "")?.map_or(PAGE, |n| n.max(1.0) as usize);
    let invalid_token =
        |t: &str| ApiError::new("InvalidNextTokenException", 400, format!("NextToken `{t}` is not valid"));
    let start = match RULES.string(body, "NextToken", "")? {
        None => 0,
        Some(t) => {
            t.strip_prefix(NEXT_TOKEN_PREFIX).and_then(|n| n.parse::<usize>().ok()).ok_or_else(|| invalid_token(t))?
        }
    };
    let (name, secret) = find(state, id)?;
    // The reference: only versions that hold a value (not the one a rotation staged before its function put one).
    let listed: Vec<&Version> =
        secret.versions.iter().filter(|v| v.has_value() && (include_deprecated || !v.stages.is_empty())).collect();
    if start > listed.len() {
        return Err(invalid_token(&format!("{NEXT_TOKEN_PREFIX}{start}")));
    }
    let end = (start + max).min(listed.len());
    let versions: Vec<Value> = listed[start..end]
        .iter()
        .map(|v| with_stages(json!({"VersionId": v.version_id, "CreatedDate": secs(v.created_ms)}), &v.stages))
        .collect();
    let mut out = json!({"ARN": secret.arn, "Name": name, "Versions": versions});
    if end < listed.len() {
        out["NextToken"] = json!(format!("{NEXT_TOKEN_PREFIX}{end}"));
    }
    Ok(out)
}

fn tag(state: &mut State, ctx: &Ctx<'_>, body: &Object) -> Result<Value, ApiError> {
    let id = secret_id(body)?;
    let tags = tags_of(body)?;
    let (_, secret) = find(state, id)?;
    secret.tags.extend(tags);
    secret.last_changed_ms = ctx.now_ms;
    Ok(json!({}))
}

fn rotate(state: &mut State, ctx: &Ctx<'_>, body: &Object) -> Result<Value, ApiError> {
    let id = secret_id(body)?;
    let token = token_of(body)?;
    let lambda = RULES.string(body, "RotationLambdaARN", "")?.filter(|a| !a.is_empty());
    let rules = RULES.object(body, "RotationRules", "")?;
    let set = |rules: &Object, member: &str| rules.get(member).is_some_and(|v| !v.is_null());
    if let Some(rules) = rules
        && set(rules, "AutomaticallyAfterDays")
        && set(rules, "ScheduleExpression")
    {
        return Err(invalid_parameter(
            "You can't specify both AutomaticallyAfterDays and ScheduleExpression in RotationRules.",
        ));
    }
    let immediately = RULES.boolean(body, "RotateImmediately", "")?.unwrap_or(true);
    let (name, secret) = find(state, id)?;
    // AWSPENDING apart from AWSCURRENT is a rotation not finished, unless it is this very rotation retried.
    if let Some(pending) = secret.holder(PENDING)
        && !secret.versions[pending].holds(CURRENT)
        && secret.versions[pending].version_id != token
    {
        return Err(invalid_request("A previous rotation isn't complete. That rotation will be reattempted."));
    }
    let Some(lambda) = lambda.map(String::from).or_else(|| secret.rotation_lambda_arn.clone()) else {
        return Err(invalid_request("No Lambda rotation function ARN is associated with this secret."));
    };
    secret.rotation_enabled = Some(true);
    secret.rotation_lambda_arn = Some(lambda.clone());
    if let Some(rules) = rules {
        let modeled = crate::model::SECRETSMANAGER.modeled("RotationRulesType", &Value::Object(rules.clone()));
        secret.rotation_rules = Some(modeled);
    }
    secret.last_changed_ms = ctx.now_ms;
    let mut out = json!({"ARN": secret.arn, "Name": name});
    if !immediately {
        // AWS then only tests the function (testSecret) and rotates at the next window: nothing to invoke now.
        return Ok(out);
    }
    out["VersionId"] = json!(token);
    // The pending version, without a value until the function's createSecret step; a retry finds it made.
    if secret.index_of(&token).is_none() {
        secret.versions.push(Version {
            version_id: token.clone(),
            secret_string: None,
            secret_binary: None,
            stages: Vec::new(),
            created_ms: ctx.now_ms,
        });
        let at = secret.versions.len() - 1;
        attach(secret, at, PENDING, ctx.now_ms);
        prune(secret);
    }
    secret.rotation_token = Some(token.clone());
    let request = RotationRequest { secret_arn: secret.arn.clone(), token, lambda_arn: lambda };
    if !state.rotation_requests.contains(&request) {
        state.rotation_requests.push(request);
    }
    Ok(out)
}

fn cancel_rotation(state: &mut State, ctx: &Ctx<'_>, body: &Object) -> Result<Value, ApiError> {
    let (name, secret) = find(state, secret_id(body)?)?;
    // The reference: labels stay as they are (AWSPENDING included); the caller cleans up with
    // UpdateSecretVersionStage. The reply names the version the rotation was making.
    let pending = secret
        .holder(PENDING)
        .filter(|&at| !secret.versions[at].holds(CURRENT))
        .map(|at| secret.versions[at].version_id.clone());
    let version = secret.rotation_token.take().or(pending);
    secret.rotation_enabled = Some(false);
    secret.last_changed_ms = ctx.now_ms;
    let mut out = json!({"ARN": secret.arn, "Name": name});
    if let Some(version) = version {
        out["VersionId"] = json!(version);
    }
    let arn = secret.arn.clone();
    // A cancelled rotation's Lambda is not invoked any more.
    state.rotation_requests.retain(|r| r.secret_arn != arn);
    Ok(out)
}

/// Completes seeded secrets: an ARN, and dates (now) where the seed gives none.
pub fn normalize_seed(account: &str, region_name: &str, state: &mut State, now_ms: i64) {
    for (name, secret) in state.secrets.iter_mut() {
        if secret.arn.is_empty() {
            secret.arn = new_arn(account, region_name, name);
        }
        if secret.created_ms == 0 {
            secret.created_ms = now_ms;
        }
        if secret.last_changed_ms == 0 {
            secret.last_changed_ms = secret.created_ms;
        }
        for version in secret.versions.iter_mut().filter(|v| v.created_ms == 0) {
            version.created_ms = now_ms;
        }
    }
}

/// Encodes a reply or an error as awsJson1_1.
pub fn encode(result: Result<Reply, ApiError>) -> Encoded {
    let (status, body) = match result {
        Ok(reply) => (
            reply.status,
            match reply.body {
                ReplyBody::Json(v) => v,
                _ => json!({}),
            },
        ),
        Err(e) => (e.status, json!({"__type": e.code, "Message": e.message})),
    };
    Encoded {
        status,
        headers: vec![("content-type".into(), "application/x-amz-json-1.1".into())],
        body: body.to_string().into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A secret with versions given as (id, comma-separated labels).
    fn secret(versions: &[(&str, &str)]) -> Secret {
        Secret {
            arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:s-AbCdEf".into(),
            description: None,
            kms_key_id: None,
            tags: BTreeMap::new(),
            rotation_enabled: None,
            rotation_lambda_arn: None,
            rotation_rules: None,
            rotation_token: None,
            last_rotated_ms: None,
            last_changed_ms: 0,
            created_ms: 0,
            versions: versions
                .iter()
                .map(|(id, stages)| Version {
                    version_id: id.to_string(),
                    secret_string: Some(id.to_string()),
                    secret_binary: None,
                    stages: stages.split(',').filter(|s| !s.is_empty()).map(String::from).collect(),
                    created_ms: 0,
                })
                .collect(),
        }
    }

    fn stages(secret: &Secret) -> Vec<(String, Vec<String>)> {
        secret.versions.iter().map(|v| (v.version_id.clone(), v.stages.clone())).collect()
    }

    #[test]
    fn given_awscurrent_moved_back_onto_the_previous_version_when_attached_then_the_labels_swap() {
        let mut s = secret(&[("v1", "AWSPREVIOUS"), ("v2", "AWSCURRENT,AWSPENDING")]);
        attach(&mut s, 0, CURRENT, 1);
        assert_eq!(
            stages(&s),
            vec![
                ("v1".to_string(), vec![CURRENT.to_string()]),
                ("v2".to_string(), vec![PENDING.to_string(), PREVIOUS.to_string()])
            ]
        );
    }

    #[test]
    fn given_the_rotation_version_when_awscurrent_reaches_it_then_the_rotation_is_complete() {
        let mut s = secret(&[("v1", "AWSCURRENT"), ("v2", "AWSPENDING")]);
        s.rotation_token = Some("v2".into());
        attach(&mut s, 1, CURRENT, 42);
        assert_eq!((s.rotation_token.as_deref(), s.last_rotated_ms), (None, Some(42)));
        assert_eq!(s.holder(PREVIOUS), Some(0));
    }

    #[test]
    fn given_a_full_arn_or_one_without_its_suffix_when_looked_up_then_the_same_secret() {
        let mut state = State::default();
        state.secrets.insert("s".into(), secret(&[]));
        for id in [
            "s",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:s-AbCdEf",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:s",
        ] {
            assert_eq!(find(&mut state, id).map(|(name, _)| name), Ok("s".to_string()), "{id}");
        }
        assert_eq!(find(&mut state, "t").map(|(name, _)| name).unwrap_err().code, "ResourceNotFoundException");
    }
}
