//! AppStream 2.0 image builders over both of the SDK's protocols: awsJson1_1 (`X-Amz-Target`) and Smithy RPC v2 CBOR
//! (`/service/PhotonAdminProxyService/operation/<Op>`), with the builder state machine moving on a timer.
//!
//! Where the API reference is silent about an error (starting a RUNNING builder, say) the choice is marked inferred.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::validate::{Object, Rules};
use crate::wire::{ApiError, ApiRequest, Encoded, Reply, ReplyBody};

const RULES: Rules = Rules { code: "ValidationException", status: 400 };
const TARGET_PREFIX: &str = "PhotonAdminProxyService.";
const CBOR_PREFIX: &str = "/service/PhotonAdminProxyService/operation/";

pub const OPERATIONS: [&str; 7] = [
    "CreateImageBuilder",
    "DescribeImageBuilders",
    "StartImageBuilder",
    "StopImageBuilder",
    "DeleteImageBuilder",
    "ListTagsForResource",
    "TagResource",
];

/// Members that are timestamps (epoch seconds in JSON, CBOR tag 1 in RPC v2 CBOR).
const TIMESTAMPS: [&str; 2] = ["CreatedTime", "ErrorTimestamp"];

/// States in which a builder is busy changing: another change meanwhile is a concurrent modification.
const TRANSITIONAL: [&str; 10] = [
    "PENDING",
    "UPDATING_AGENT",
    "STOPPING",
    "REBOOTING",
    "SNAPSHOTTING",
    "UPDATING",
    "PENDING_QUALIFICATION",
    "PENDING_SYNCING_APPS",
    "SYNCING_APPS",
    "PENDING_IMAGE_IMPORT",
];

/// A state change that happens by itself at `atMillis` (then `then`, if any, is scheduled from that moment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Transition {
    /// The next state, or `DELETED` to remove the builder.
    pub to: String,
    /// When, in epoch milliseconds.
    #[serde(default)]
    pub at_millis: i64,
    /// Seeds only: when, counted from the moment the seed is loaded (wins over `atMillis`).
    #[serde(default, skip_serializing)]
    pub in_millis: Option<i64>,
}

/// The image builders of one region, by name.
pub type Builders = BTreeMap<String, Builder>;

/// One image builder: the document DescribeImageBuilders returns (PascalCase members), its tags, and its next change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Builder {
    #[serde(rename = "Tags", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(rename = "Transition", default, skip_serializing_if = "Option::is_none")]
    pub transition: Option<Transition>,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl Builder {
    pub fn state(&self) -> &str {
        self.fields.get("State").and_then(Value::as_str).unwrap_or("PENDING")
    }

    fn set_state(&mut self, state: &str) {
        self.fields.insert("State".into(), json!(state));
    }
}

/// The protocol a request came in, so the reply goes back the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Json,
    Cbor,
}

impl Protocol {
    pub fn of(req: &ApiRequest) -> Protocol {
        if req.path.starts_with(CBOR_PREFIX) || req.header("smithy-protocol") == Some("rpc-v2-cbor") {
            Protocol::Cbor
        } else {
            Protocol::Json
        }
    }
}

pub fn status_of(_code: &str) -> u16 {
    // AppStream answers every modeled error with 400 (ResourceNotFoundException too, per the API reference).
    400
}

fn operation_name(req: &ApiRequest) -> Option<&str> {
    match Protocol::of(req) {
        Protocol::Cbor => req.path.strip_prefix(CBOR_PREFIX),
        Protocol::Json => (req.path == "/").then(|| req.header("x-amz-target")?.strip_prefix(TARGET_PREFIX)).flatten(),
    }
}

/// The request body as JSON, whichever protocol carried it.
pub fn body(req: &ApiRequest) -> Result<Object, ApiError> {
    match Protocol::of(req) {
        Protocol::Json => RULES.body(&req.body),
        Protocol::Cbor => {
            if req.body.is_empty() {
                return Ok(Object::new());
            }
            let value: ciborium::Value = ciborium::from_reader(req.body.as_ref())
                .map_err(|e| ApiError::new("SerializationException", 400, format!("request body is not CBOR: {e}")))?;
            match cbor_to_json(value)? {
                Value::Object(o) => Ok(o),
                _ => Err(RULES.fail("request body must be a CBOR map")),
            }
        }
    }
}

/// Checks the request against the AppStream model, whichever protocol carried it.
pub fn validate(req: &ApiRequest, operation: &str) -> Result<(), ApiError> {
    let input = Value::Object(body(req)?);
    crate::model::APPSTREAM.validate_input(operation, &input).map_err(|v| RULES.fail(v.to_string()))
}

pub fn route(req: &ApiRequest) -> Result<(&'static str, BTreeMap<String, String>), ApiError> {
    let name = operation_name(req).unwrap_or_default();
    let operation = OPERATIONS.iter().copied().find(|op| *op == name).ok_or_else(|| {
        ApiError::new("UnknownOperationException", 400, format!("`{name}` is not an AppStream operation served here"))
    })?;
    let protocol = match Protocol::of(req) {
        Protocol::Json => "awsJson1_1",
        Protocol::Cbor => "rpcv2Cbor",
    };
    let mut params = BTreeMap::from([("protocol".to_string(), protocol.to_string())]);
    if let Ok(body) = body(req) {
        for key in ["Name", "ResourceArn", "AppstreamAgentVersion"] {
            if let Some(v) = body.get(key).and_then(Value::as_str) {
                params.insert(key.to_string(), v.to_string());
            }
        }
        if let Some(names) = body.get("Names").and_then(Value::as_array) {
            let names: Vec<&str> = names.iter().filter_map(Value::as_str).collect();
            params.insert("Names".into(), names.join(","));
        }
    }
    Ok((operation, params))
}

/// Runs one operation on the builders of the request's region; `transition_ms` is how long a state change takes,
/// `page` how many builders a DescribeImageBuilders page holds when the caller names no MaxResults.
pub fn execute(
    region: &mut Builders,
    account: &str,
    (transition_ms, page): (u64, usize),
    req: &ApiRequest,
    operation: &str,
) -> Result<Reply, ApiError> {
    tick(region, req.now_ms);
    let body = body(req)?;
    let ctx = Ctx { account, region_name: &req.region, now_ms: req.now_ms, transition_ms: transition_ms as i64 };
    let out = match operation {
        "CreateImageBuilder" => create(region, &ctx, &body)?,
        "DescribeImageBuilders" => describe(region, &body, page)?,
        "StartImageBuilder" => start(region, &ctx, &body)?,
        "StopImageBuilder" => stop(region, &ctx, &body)?,
        "DeleteImageBuilder" => delete(region, &ctx, &body)?,
        "ListTagsForResource" => list_tags(region, &ctx, &body)?,
        "TagResource" => tag(region, &ctx, &body)?,
        other => return Err(ApiError::new("UnknownOperationException", 400, format!("{other} is not served"))),
    };
    Ok(Reply::json(out))
}

struct Ctx<'a> {
    account: &'a str,
    region_name: &'a str,
    now_ms: i64,
    transition_ms: i64,
}

impl Ctx<'_> {
    fn arn(&self, name: &str) -> String {
        format!("arn:aws:appstream:{}:{}:image-builder/{name}", self.region_name, self.account)
    }

    fn after(&self, to: &str) -> Option<Transition> {
        Some(Transition { to: to.into(), at_millis: self.now_ms + self.transition_ms, in_millis: None })
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::new("ResourceNotFoundException", 400, format!("image builder {name} does not exist"))
}

fn name_of(body: &Object) -> Result<&str, ApiError> {
    RULES.required(body, "Name", "")
}

/// The document Describe returns for a builder: its fields, the state as of now.
fn document(builder: &Builder) -> Value {
    Value::Object(builder.fields.clone())
}

fn create(region: &mut Builders, ctx: &Ctx<'_>, body: &Object) -> Result<Value, ApiError> {
    // The model has checked every member; what is left is the rule between two of them, and the state.
    let name = RULES.required(body, "Name", "")?;
    let image_arn = RULES.string(body, "ImageArn", "")?;
    let image_name = RULES.string(body, "ImageName", "")?;
    if image_arn.is_some() == image_name.is_some() {
        return Err(ApiError::new(
            "InvalidParameterCombinationException",
            400,
            "exactly one of ImageArn and ImageName is required",
        ));
    }
    if region.contains_key(name) {
        return Err(ApiError::new(
            "ResourceAlreadyExistsException",
            400,
            format!("image builder {name} already exists"),
        ));
    }
    let tags = check_tags(body)?.unwrap_or_default();
    // Only what the model's ImageBuilder defines is kept: a request member of another shape never comes back.
    let Value::Object(mut fields) = crate::model::APPSTREAM.modeled("ImageBuilder", &Value::Object(body.clone()))
    else {
        return Err(ApiError::new("ServiceException", 500, "a structure read as something else"));
    };
    fields.insert("Arn".into(), json!(ctx.arn(name)));
    let image_arn = image_arn
        .map(String::from)
        .unwrap_or_else(|| format!("arn:aws:appstream:{}::image/{}", ctx.region_name, image_name.unwrap_or_default()));
    fields.insert("ImageArn".into(), json!(image_arn));
    fields.insert("State".into(), json!("PENDING"));
    fields.insert("CreatedTime".into(), json!(ctx.now_ms as f64 / 1000.0));
    fields.entry("Platform").or_insert(json!("WINDOWS_SERVER_2022"));
    fields.entry("AppstreamAgentVersion").or_insert(json!("[LATEST]"));
    fields.entry("LatestAppstreamAgentVersion").or_insert(json!("TRUE"));
    let builder = Builder { tags, transition: ctx.after("RUNNING"), fields };
    let out = json!({"ImageBuilder": document(&builder)});
    region.insert(name.to_string(), builder);
    Ok(out)
}

fn describe(region: &Builders, body: &Object, page: usize) -> Result<Value, ApiError> {
    let max = RULES.number(body, "MaxResults", "")?.map_or(page, |n| n.max(1.0) as usize);
    let names: Option<Vec<String>> = match RULES.array(body, "Names", "")? {
        None => None,
        Some(list) => Some(
            list.iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str().map(String::from).ok_or_else(|| RULES.fail(format!("Names[{i}] must be a string")))
                })
                .collect::<Result<_, _>>()?,
        ),
    };
    let selected: Vec<&Builder> = match &names {
        Some(names) => names.iter().map(|n| region.get(n).ok_or_else(|| not_found(n))).collect::<Result<_, _>>()?,
        None => region.values().collect(),
    };
    let start = match RULES.string(body, "NextToken", "")? {
        None => 0,
        Some(t) => t
            .strip_prefix("ib-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n <= selected.len())
            .ok_or_else(|| RULES.fail(format!("NextToken `{t}` is not valid")))?,
    };
    let end = (start + max).min(selected.len());
    let mut out = json!({"ImageBuilders": selected[start..end].iter().map(|b| document(b)).collect::<Vec<_>>()});
    if end < selected.len() {
        out["NextToken"] = json!(format!("ib-{end}"));
    }
    Ok(out)
}

fn start(region: &mut Builders, ctx: &Ctx<'_>, body: &Object) -> Result<Value, ApiError> {
    let name = name_of(body)?;
    let agent = RULES.string(body, "AppstreamAgentVersion", "")?;
    let builder = region.get_mut(name).ok_or_else(|| not_found(name))?;
    match builder.state() {
        "STOPPED" => {}
        state if TRANSITIONAL.contains(&state) => {
            return Err(ApiError::new(
                "ConcurrentModificationException",
                400,
                format!("image builder {name} is {state}; wait a few minutes and try again"),
            ));
        }
        // Inferred: the reference names no error for starting a builder that is not stopped.
        state => {
            return Err(ApiError::new(
                "ResourceNotAvailableException",
                400,
                format!("image builder {name} is {state}; only a STOPPED image builder can be started"),
            ));
        }
    }
    let current = builder.fields.get("AppstreamAgentVersion").and_then(Value::as_str).unwrap_or("[LATEST]").to_string();
    let outdated = builder.fields.get("LatestAppstreamAgentVersion").and_then(Value::as_str) == Some("FALSE");
    let changes_agent = match agent {
        Some("[LATEST]") => current != "[LATEST]" || outdated,
        Some(v) => v != current,
        None => false,
    };
    if let Some(v) = agent {
        builder.fields.insert("AppstreamAgentVersion".into(), json!(v));
        if v == "[LATEST]" {
            builder.fields.insert("LatestAppstreamAgentVersion".into(), json!("TRUE"));
        }
    }
    builder.set_state(if changes_agent { "UPDATING_AGENT" } else { "PENDING" });
    builder.fields.remove("StateChangeReason");
    builder.transition = ctx.after("RUNNING");
    Ok(json!({"ImageBuilder": document(builder)}))
}

fn stop(region: &mut Builders, ctx: &Ctx<'_>, body: &Object) -> Result<Value, ApiError> {
    let name = name_of(body)?;
    let builder = region.get_mut(name).ok_or_else(|| not_found(name))?;
    match builder.state() {
        "RUNNING" => {}
        state if TRANSITIONAL.contains(&state) => {
            return Err(ApiError::new(
                "ConcurrentModificationException",
                400,
                format!("image builder {name} is {state}; wait a few minutes and try again"),
            ));
        }
        state => {
            return Err(ApiError::new(
                "OperationNotPermittedException",
                400,
                format!("image builder {name} is {state}; only a RUNNING image builder can be stopped"),
            ));
        }
    }
    builder.set_state("STOPPING");
    builder.transition = ctx.after("STOPPED");
    Ok(json!({"ImageBuilder": document(builder)}))
}

fn delete(region: &mut Builders, ctx: &Ctx<'_>, body: &Object) -> Result<Value, ApiError> {
    let name = name_of(body)?;
    let builder = region.get_mut(name).ok_or_else(|| not_found(name))?;
    let state = builder.state().to_string();
    if TRANSITIONAL.contains(&state.as_str()) || state == "DELETING" {
        return Err(ApiError::new(
            "ConcurrentModificationException",
            400,
            format!("image builder {name} is {state}; wait a few minutes and try again"),
        ));
    }
    builder.set_state("DELETING");
    builder.transition = ctx.after("DELETED");
    Ok(json!({"ImageBuilder": document(builder)}))
}

fn builder_by_arn<'a>(region: &'a mut Builders, ctx: &Ctx<'_>, body: &Object) -> Result<&'a mut Builder, ApiError> {
    let arn = RULES.required(body, "ResourceArn", "")?;
    let name = arn
        .strip_prefix(&format!("arn:aws:appstream:{}:{}:image-builder/", ctx.region_name, ctx.account))
        .ok_or_else(|| {
            ApiError::new(
                "ResourceNotFoundException",
                400,
                format!("resource {arn} does not exist in this account and region"),
            )
        })?;
    region
        .get_mut(name)
        .ok_or_else(|| ApiError::new("ResourceNotFoundException", 400, format!("resource {arn} does not exist")))
}

fn list_tags(region: &mut Builders, ctx: &Ctx<'_>, body: &Object) -> Result<Value, ApiError> {
    let builder = builder_by_arn(region, ctx, body)?;
    Ok(json!({"Tags": builder.tags}))
}

fn check_tags(body: &Object) -> Result<Option<BTreeMap<String, String>>, ApiError> {
    // Sizes, lengths and the reserved `aws:` prefix are the model's TagKey/TagValue/Tags constraints.
    let Some(tags) = RULES.object(body, "Tags", "")? else { return Ok(None) };
    Ok(Some(tags.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect()))
}

fn tag(region: &mut Builders, ctx: &Ctx<'_>, body: &Object) -> Result<Value, ApiError> {
    let tags = check_tags(body)?.ok_or_else(|| RULES.fail("Tags is required"))?;
    let builder = builder_by_arn(region, ctx, body)?;
    let mut merged = builder.tags.clone();
    merged.extend(tags);
    if merged.len() > 50 {
        return Err(ApiError::new("LimitExceededException", 400, "a resource can have at most 50 tags"));
    }
    builder.tags = merged;
    Ok(json!({}))
}

/// Moves every builder whose transition is due; a chain (STOPPING → STOPPED) takes one step per due transition.
pub fn tick(region: &mut Builders, now_ms: i64) {
    let mut deleted = Vec::new();
    for (name, builder) in region.iter_mut() {
        if let Some(t) = builder.transition.take_if(|t| t.at_millis <= now_ms) {
            if t.to == "DELETED" {
                deleted.push(name.clone());
            } else {
                builder.set_state(&t.to);
            }
        }
    }
    for name in deleted {
        region.remove(&name);
    }
}

/// Completes seeded builders with the members AWS always returns.
pub fn normalize_seed(account: &str, region_name: &str, region: &mut Builders, now_ms: i64) {
    for (name, builder) in region.iter_mut() {
        let defaults = [
            ("Name", json!(name)),
            ("Arn", json!(format!("arn:aws:appstream:{region_name}:{account}:image-builder/{name}"))),
            ("State", json!("STOPPED")),
            ("InstanceType", json!("stream.standard.medium")),
            ("Platform", json!("WINDOWS_SERVER_2022")),
            ("ImageArn", json!(format!("arn:aws:appstream:{region_name}::image/AppStream-WinServer2022-2026-01-01"))),
            ("CreatedTime", json!(now_ms as f64 / 1000.0)),
            ("AppstreamAgentVersion", json!("[LATEST]")),
            ("LatestAppstreamAgentVersion", json!("TRUE")),
        ];
        for (k, v) in defaults {
            builder.fields.entry(k).or_insert(v);
        }
        if let Some(t) = builder.transition.as_mut()
            && let Some(delay) = t.in_millis.take()
        {
            t.at_millis = now_ms + delay;
        }
    }
}

/// Encodes a reply or an error in the protocol the request used.
pub fn encode(protocol: Protocol, result: Result<Reply, ApiError>) -> Encoded {
    let (status, body) = match result {
        Ok(reply) => (
            reply.status,
            match reply.body {
                ReplyBody::Json(v) => v,
                _ => json!({}),
            },
        ),
        Err(e) => match protocol {
            Protocol::Json => (e.status, json!({"__type": e.code, "Message": e.message})),
            Protocol::Cbor => {
                (e.status, json!({"__type": format!("com.amazonaws.appstream#{}", e.code), "Message": e.message}))
            }
        },
    };
    match protocol {
        Protocol::Json => Encoded {
            status,
            headers: vec![("content-type".into(), "application/x-amz-json-1.1".into())],
            body: body.to_string().into(),
        },
        Protocol::Cbor => {
            let mut bytes = Vec::new();
            // Writing CBOR into a Vec cannot fail for values built from JSON.
            let _ = ciborium::into_writer(&json_to_cbor(&body, None), &mut bytes);
            Encoded {
                status,
                headers: vec![
                    ("content-type".into(), "application/cbor".into()),
                    ("smithy-protocol".into(), "rpc-v2-cbor".into()),
                ],
                body: bytes.into(),
            }
        }
    }
}

/// JSON → CBOR, timestamps (by member name) as tag 1 around epoch seconds, as the SDK expects.
pub fn json_to_cbor(value: &Value, key: Option<&str>) -> ciborium::Value {
    use ciborium::Value as C;
    match value {
        Value::Null => C::Null,
        Value::Bool(b) => C::Bool(*b),
        Value::Number(n) if key.is_some_and(|k| TIMESTAMPS.contains(&k)) => {
            C::Tag(1, Box::new(C::Float(n.as_f64().unwrap_or(0.0))))
        }
        Value::Number(n) => match n.as_i64() {
            Some(i) => C::Integer(i.into()),
            None => C::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => C::Text(s.clone()),
        Value::Array(items) => C::Array(items.iter().map(|v| json_to_cbor(v, key)).collect()),
        Value::Object(map) => C::Map(map.iter().map(|(k, v)| (C::Text(k.clone()), json_to_cbor(v, Some(k)))).collect()),
    }
}

/// CBOR → JSON; tag 1 timestamps become epoch seconds.
pub fn cbor_to_json(value: ciborium::Value) -> Result<Value, ApiError> {
    use ciborium::Value as C;
    Ok(match value {
        C::Null => Value::Null,
        C::Bool(b) => json!(b),
        C::Integer(i) => json!(i128::from(i) as i64),
        C::Float(f) => json!(f),
        C::Text(s) => json!(s),
        C::Bytes(b) => json!(b),
        C::Array(items) => Value::Array(items.into_iter().map(cbor_to_json).collect::<Result<_, _>>()?),
        C::Map(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                let C::Text(k) = k else { return Err(RULES.fail("CBOR map keys must be text")) };
                map.insert(k, cbor_to_json(v)?);
            }
            Value::Object(map)
        }
        C::Tag(1, inner) => cbor_to_json(*inner)?,
        C::Tag(tag, _) => return Err(RULES.fail(format!("CBOR tag {tag} is not supported"))),
        _ => return Err(RULES.fail("unsupported CBOR value")),
    })
}
