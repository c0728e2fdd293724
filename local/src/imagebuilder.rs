//! EC2 Image Builder over restJson1: distribution configurations, images and their build versions, and resource-state
//! lifecycle executions, validated as the API reference documents and idempotent by `clientToken`.
//!
//! Distribution configurations and images are kept as the JSON documents Image Builder returns, so every member a
//! client sends (including members newer than this emulator) round-trips unchanged.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::clock::{Timing, iso8601};
use crate::validate::{Object, Rules};
use crate::wire::{ApiError, ApiRequest, Encoded, Reply, ReplyBody};

const RULES: Rules = Rules { code: "InvalidRequestException", status: 400 };
const SERVICE: &str = "imagebuilder";

/// The operations served, by route.
pub const OPERATIONS: [(&str, &str); 10] = [
    ("PUT", "CreateDistributionConfiguration"),
    ("GET", "GetDistributionConfiguration"),
    ("PUT", "UpdateDistributionConfiguration"),
    ("POST", "ListDistributionConfigurations"),
    ("PUT", "StartResourceStateUpdate"),
    ("POST", "ListImages"),
    ("POST", "ListImageBuildVersions"),
    ("GET", "GetImage"),
    ("POST", "ListLifecycleExecutions"),
    ("GET", "GetLifecycleExecution"),
];

/// What Image Builder keeps in one region.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    /// Distribution configurations by ARN, as GetDistributionConfiguration returns them.
    pub distribution_configurations: BTreeMap<String, Value>,
    /// Build versions by ARN, as GetImage returns them.
    pub images: BTreeMap<String, Value>,
    pub lifecycle_executions: BTreeMap<String, Execution>,
    /// `operation:token` → (the request it was first used with, the response).
    pub client_tokens: HashMap<String, (Value, Value)>,
}

/// One lifecycle execution started by StartResourceStateUpdate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Execution {
    pub lifecycle_execution_id: String,
    pub resource_arn: String,
    pub target_status: String,
    pub start_ms: i64,
    pub end_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_at: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_resources: Option<Value>,
    /// Whether the execution has ended (SUCCESS).
    #[serde(default)]
    pub done: bool,
    /// When the image record takes the target state: the execution's end, or `updateAt` for a scheduled
    /// deprecation (the AMIs get their deprecation time at once, the record changes then).
    #[serde(default)]
    pub apply_at_ms: i64,
    /// Whether the image record has taken it.
    #[serde(default)]
    pub applied: bool,
    /// DELETED with exclusion rules: a skipped resource keeps the image record, so its state does not change.
    #[serde(default)]
    pub keeps_record: bool,
}

/// The HTTP status Image Builder uses for an error code.
pub fn status_of(code: &str) -> u16 {
    match code {
        "ServiceException" => 500,
        "ServiceUnavailableException" => 503,
        "ForbiddenException" => 403,
        "CallRateLimitExceededException" => 429,
        "ServiceQuotaExceededException" => 402,
        "DryRunOperationException" => 412,
        "ResourceNotFoundException" | "UnknownOperationException" => 404,
        _ => 400,
    }
}

/// Which operation a request is, and the parameters that identify its target (for faults and the call log).
pub fn route(req: &ApiRequest) -> Result<(&'static str, BTreeMap<String, String>), ApiError> {
    let name = req.path.trim_start_matches('/');
    let operation = OPERATIONS
        .iter()
        .find(|(method, op)| *op == name && req.method.as_str() == *method)
        .map(|(_, op)| *op)
        .ok_or_else(|| {
            ApiError::new(
                "UnknownOperationException",
                404,
                format!("{} {} is not an Image Builder operation", req.method, req.path),
            )
        })?;
    let body: Object = serde_json::from_slice(&req.body).unwrap_or_default();
    let mut params = BTreeMap::new();
    for key in
        ["distributionConfigurationArn", "resourceArn", "clientToken", "name", "imageVersionArn", "executionRole"]
    {
        if let Some(v) = body.get(key).and_then(Value::as_str) {
            params.insert(key.to_string(), v.to_string());
        }
    }
    if let Some(status) = body.get("state").and_then(|s| s.get("status")).and_then(Value::as_str) {
        params.insert("status".into(), status.into());
    }
    for (key, value) in &req.query {
        params.insert(key.clone(), value.clone());
    }
    Ok((operation, params))
}

/// Checks the request against the Image Builder model: the JSON body and the query members, by member name.
pub fn validate(req: &ApiRequest, operation: &str) -> Result<(), ApiError> {
    let model = &*crate::model::IMAGEBUILDER;
    let mut input = RULES.body(&req.body)?;
    for (name, wire, member) in model.bound_members(operation, "querystring") {
        if let Some(text) = req.query.get(wire) {
            input.insert(name.to_string(), model.scalar(&member.shape, text));
        }
    }
    model.validate_input(operation, &Value::Object(input)).map_err(|v| RULES.fail(v.to_string()))
}

/// Context of one call.
pub struct Call<'a> {
    pub account: &'a str,
    pub region_name: &'a str,
    pub timing: &'a Timing,
    pub req: &'a ApiRequest,
}

pub fn execute(state: &mut State, call: &Call<'_>, operation: &str) -> Result<Reply, ApiError> {
    tick(state, call.req.now_ms);
    match operation {
        "CreateDistributionConfiguration" => idempotent(state, call, operation, create_distribution_configuration),
        "UpdateDistributionConfiguration" => idempotent(state, call, operation, update_distribution_configuration),
        "StartResourceStateUpdate" => idempotent(state, call, operation, start_resource_state_update),
        "GetDistributionConfiguration" => get_distribution_configuration(state, call),
        "ListDistributionConfigurations" => list_distribution_configurations(state, call),
        "ListImages" => list_images(state, call),
        "ListImageBuildVersions" => list_image_build_versions(state, call),
        "GetImage" => get_image(state, call),
        "ListLifecycleExecutions" => list_lifecycle_executions(state, call),
        "GetLifecycleExecution" => get_lifecycle_execution(state, call),
        other => Err(ApiError::new("UnknownOperationException", 404, format!("{other} is not served"))),
    }
}

/// Encodes a reply or an error as restJson1: `requestId` in every success body, `X-Amzn-ErrorType` on errors.
pub fn encode(result: Result<Reply, ApiError>, request_id: &str) -> Encoded {
    match result {
        Ok(reply) => {
            let mut body = match reply.body {
                ReplyBody::Json(v) => v,
                _ => json!({}),
            };
            body["requestId"] = json!(request_id);
            let mut headers = reply.headers;
            headers.push(("content-type".into(), "application/json".into()));
            Encoded { status: reply.status, headers, body: body.to_string().into() }
        }
        Err(e) => Encoded {
            status: e.status,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-amzn-errortype".into(), e.code.clone()),
            ],
            body: json!({"message": e.message}).to_string().into(),
        },
    }
}

/// Runs a token-carrying operation once per token: the same token with the same parameters returns the first
/// response without acting again; with other parameters it is IdempotentParameterMismatchException.
fn idempotent(
    state: &mut State,
    call: &Call<'_>,
    operation: &str,
    act: fn(&mut State, &Call<'_>, &Object) -> Result<Value, ApiError>,
) -> Result<Reply, ApiError> {
    let body = RULES.body(&call.req.body)?;
    let token = RULES.required(&body, "clientToken", "")?;
    let key = format!("{operation}:{token}");
    // serde_json's maps compare by content, whatever their key order.
    let request = Value::Object(body.clone());
    if let Some((seen, response)) = state.client_tokens.get(&key) {
        if *seen != request {
            return Err(ApiError::new(
                "IdempotentParameterMismatchException",
                400,
                format!("client token {token} was used with other parameters"),
            ));
        }
        return Ok(Reply::json(response.clone()));
    }
    let response = act(state, call, &body)?;
    state.client_tokens.insert(key, (request, response.clone()));
    Ok(Reply::json(response))
}

fn distribution_arn(account: &str, region: &str, name: &str) -> String {
    format!("arn:aws:imagebuilder:{region}:{account}:distribution-configuration/{}", name.to_ascii_lowercase())
}

fn create_distribution_configuration(state: &mut State, call: &Call<'_>, body: &Object) -> Result<Value, ApiError> {
    let name = RULES.required(body, "name", "")?;
    let distributions = check_distributions(body)?;
    let arn = distribution_arn(call.account, call.region_name, name);
    if state.distribution_configurations.contains_key(&arn) {
        return Err(ApiError::new("ResourceAlreadyExistsException", 400, format!("{arn} already exists")));
    }
    if RULES.boolean(body, "dryRun", "")? == Some(true) {
        // Everything checked and the request would succeed: the dry run says so and creates nothing.
        return Err(ApiError::new(
            "DryRunOperationException",
            412,
            format!("the request would have created {arn}; dryRun is set"),
        ));
    }
    let mut config = json!({
        "arn": arn, "name": name, "distributions": distributions, "timeoutMinutes": 720,
        "dateCreated": iso8601(call.req.now_ms),
    });
    // The model's TagMap holds 1 to 50 tags: a resource without tags has no `tags` member.
    if let Some(tags) = body.get("tags") {
        config["tags"] = tags.clone();
    }
    if let Some(d) = body.get("description") {
        config["description"] = d.clone();
    }
    state.distribution_configurations.insert(arn.clone(), config);
    Ok(json!({"clientToken": body["clientToken"], "distributionConfigurationArn": arn}))
}

fn update_distribution_configuration(state: &mut State, call: &Call<'_>, body: &Object) -> Result<Value, ApiError> {
    let arn = RULES.required(body, "distributionConfigurationArn", "")?;
    let distributions = check_distributions(body)?;
    let config = state.distribution_configurations.get_mut(arn).ok_or_else(|| {
        ApiError::new("ResourceNotFoundException", 404, format!("distribution configuration {arn} does not exist"))
    })?;
    let object = config.as_object_mut().ok_or_else(|| ApiError::new("ServiceException", 500, "corrupt state"))?;
    // The update replaces the distributions and the description: a description left out is removed.
    object.insert("distributions".into(), distributions);
    match body.get("description") {
        Some(d) => object.insert("description".into(), d.clone()),
        None => object.remove("description"),
    };
    object.insert("dateUpdated".into(), json!(iso8601(call.req.now_ms)));
    Ok(json!({"clientToken": body["clientToken"], "distributionConfigurationArn": arn}))
}

/// The `distributions` list, which the model has checked member by member, under the rule it cannot express (one
/// distribution per region); only the members the model defines are kept.
fn check_distributions(body: &Object) -> Result<Value, ApiError> {
    let list = RULES.array(body, "distributions", "")?.ok_or_else(|| RULES.fail("distributions is required"))?;
    let mut regions = std::collections::BTreeSet::new();
    for item in list {
        let region = item.get("region").and_then(Value::as_str).unwrap_or_default();
        if !regions.insert(region) {
            return Err(ApiError::new(
                "InvalidParameterCombinationException",
                400,
                format!("region {region} appears in more than one distribution"),
            ));
        }
    }
    Ok(crate::model::IMAGEBUILDER.modeled("DistributionList", &Value::Array(list.clone())))
}

fn get_distribution_configuration(state: &State, call: &Call<'_>) -> Result<Reply, ApiError> {
    let arn = call
        .req
        .query
        .get("distributionConfigurationArn")
        .ok_or_else(|| RULES.fail("distributionConfigurationArn is required"))?;
    let config = state.distribution_configurations.get(arn).ok_or_else(|| {
        ApiError::new("ResourceNotFoundException", 404, format!("distribution configuration {arn} does not exist"))
    })?;
    Ok(Reply::json(json!({"distributionConfiguration": config})))
}

/// One page of `items` for `maxResults` / `nextToken`, and the token of the next page.
fn page<T: Clone>(body: &Object, items: Vec<T>) -> Result<(Vec<T>, Option<String>), ApiError> {
    // The model bounds maxResults to 1..=100.
    let max = RULES.number(body, "maxResults", "")?.map_or(25, |n| n as usize);
    let start = match RULES.string(body, "nextToken", "")? {
        None => 0,
        Some(t) => {
            t.strip_prefix("page-").and_then(|n| n.parse::<usize>().ok()).filter(|n| *n <= items.len()).ok_or_else(
                || ApiError::new("InvalidPaginationTokenException", 400, format!("nextToken `{t}` is not valid")),
            )?
        }
    };
    let end = (start + max).min(items.len());
    let next = (end < items.len()).then(|| format!("page-{end}"));
    Ok((items[start..end].to_vec(), next))
}

fn with_token(mut body: Value, next: Option<String>) -> Reply {
    if let Some(next) = next {
        body["nextToken"] = json!(next);
    }
    Reply::json(body)
}

fn list_distribution_configurations(state: &State, call: &Call<'_>) -> Result<Reply, ApiError> {
    let body = RULES.body(&call.req.body)?;
    let filters = filters(&body, &["name"])?;
    let summaries: Vec<Value> = state
        .distribution_configurations
        .values()
        .filter(|c| matches_filters(c, &filters))
        .map(|c| {
            let regions: Vec<Value> =
                c["distributions"].as_array().into_iter().flatten().map(|d| d["region"].clone()).collect();
            let mut s =
                json!({"arn": c["arn"], "name": c["name"], "dateCreated": c["dateCreated"], "regions": regions});
            for key in ["description", "dateUpdated", "tags"] {
                if let Some(v) = c.get(key) {
                    s[key] = v.clone();
                }
            }
            s
        })
        .collect();
    let (items, next) = page(&body, summaries)?;
    Ok(with_token(json!({"distributionConfigurationSummaryList": items}), next))
}

/// `(name, "1.2.0", build)` of an image build version ARN.
fn parse_build_arn(arn: &str) -> Option<(String, String, u64)> {
    let rest = arn.split(":image/").nth(1)?;
    let mut parts = rest.split('/');
    let (name, version, build) = (parts.next()?, parts.next()?, parts.next()?.parse().ok()?);
    parts.next().is_none().then(|| (name.to_string(), version.to_string(), build))
}

/// Sort key of a version string: numerically by each part.
fn version_key(version: &str) -> Vec<u64> {
    version.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

fn build_sort_key(arn: &str) -> (String, Vec<u64>, u64) {
    parse_build_arn(arn).map(|(n, v, b)| (n, version_key(&v), b)).unwrap_or_default()
}

fn sorted_images(state: &State) -> Vec<&Value> {
    sorted(state.images.values().collect())
}

/// Builds in the service's order. The key is parsed once per build: an account of thousands of builds is listed
/// once per image version, and parsing in every comparison made the emulator, not the function, the cost of a sweep.
fn sorted(mut images: Vec<&Value>) -> Vec<&Value> {
    images.sort_by_cached_key(|i| build_sort_key(i["arn"].as_str().unwrap_or_default()));
    images
}

fn list_images(state: &State, call: &Call<'_>) -> Result<Reply, ApiError> {
    let body = RULES.body(&call.req.body)?;
    let filters = filters(&body, &IMAGE_FILTERS)?;
    let owner_self = RULES.string(&body, "owner", "")?.is_none_or(|o| o == "Self");
    let include_deprecated = RULES.boolean(&body, "includeDeprecated", "")?.unwrap_or(false);
    let by_name = RULES.boolean(&body, "byName", "")?.unwrap_or(false);
    // One entry per image version (name + semantic version); deprecated versions only when asked for.
    let mut versions: BTreeMap<(String, Vec<u64>), (Value, bool)> = BTreeMap::new();
    for image in sorted_images(state).into_iter().filter(|i| owner_self && matches_filters(i, &filters)) {
        let arn = image["arn"].as_str().unwrap_or_default();
        let Some((name, version, _)) = parse_build_arn(arn) else { continue };
        let deprecated = image["state"]["status"] == "DEPRECATED";
        let key = (name.clone(), if by_name { Vec::new() } else { version_key(&version) });
        let version_arn = arn.rsplit_once('/').map(|(a, _)| a.to_string()).unwrap_or_default();
        let summary = json!({
            "arn": version_arn, "name": name, "type": image["type"], "version": version, "platform": image["platform"],
            "osVersion": image["osVersion"], "owner": image["owner"], "dateCreated": image["dateCreated"],
            "buildType": image["buildType"], "imageSource": image["imageSource"],
        });
        let entry = versions.entry(key).or_insert((summary.clone(), true));
        entry.0 = summary;
        entry.1 &= deprecated;
    }
    let list: Vec<Value> = versions
        .into_values()
        .filter(|(_, all_deprecated)| include_deprecated || !all_deprecated)
        .map(|(v, _)| v)
        .collect();
    let (items, next) = page(&body, list)?;
    Ok(with_token(json!({"imageVersionList": items}), next))
}

const SUMMARY_MEMBERS: [&str; 16] = [
    "arn",
    "name",
    "type",
    "version",
    "platform",
    "osVersion",
    "state",
    "owner",
    "dateCreated",
    "outputResources",
    "tags",
    "buildType",
    "imageSource",
    "deprecationTime",
    "lifecycleExecutionId",
    "loggingConfiguration",
];

fn list_image_build_versions(state: &State, call: &Call<'_>) -> Result<Reply, ApiError> {
    let body = RULES.body(&call.req.body)?;
    let filter = RULES.string(&body, "imageVersionArn", "")?;
    let filters = filters(&body, &IMAGE_FILTERS)?;
    let of_version = state.images.values().filter(|i| {
        filter.is_none_or(|f| i["arn"].as_str().and_then(|a| a.rsplit_once('/')).is_some_and(|(v, _)| v == f))
    });
    let summaries: Vec<Value> = sorted(of_version.filter(|i| matches_filters(i, &filters)).collect())
        .into_iter()
        .map(|i| {
            let mut s = serde_json::Map::new();
            for key in SUMMARY_MEMBERS {
                if let Some(v) = i.get(key) {
                    s.insert(key.into(), v.clone());
                }
            }
            Value::Object(s)
        })
        .collect();
    let (items, next) = page(&body, summaries)?;
    Ok(with_token(json!({"imageSummaryList": items}), next))
}

/// The filter names the API reference lists for ListImages and ListImageBuildVersions.
const IMAGE_FILTERS: [&str; 5] = ["name", "osVersion", "platform", "type", "version"];

/// The `filters` of a List request (sizes checked by the model), their names checked against what the operation
/// documents: `(name, values)`.
fn filters(body: &Object, allowed: &[&str]) -> Result<Vec<(String, Vec<String>)>, ApiError> {
    let mut out = Vec::new();
    for (i, filter) in RULES.array(body, "filters", "")?.into_iter().flatten().enumerate() {
        let name = filter.get("name").and_then(Value::as_str).unwrap_or_default();
        if !allowed.contains(&name) {
            return Err(RULES.fail(format!(
                "filters.{}.name `{name}` is not a filter of this operation; use one of: {}",
                i + 1,
                allowed.join(", ")
            )));
        }
        let values = filter.get("values").and_then(Value::as_array).into_iter().flatten();
        out.push((name.to_string(), values.filter_map(Value::as_str).map(String::from).collect()));
    }
    Ok(out)
}

/// Whether a resource passes every filter: its member equals one of the filter's values (a build version matches
/// on its semantic version too).
fn matches_filters(resource: &Value, filters: &[(String, Vec<String>)]) -> bool {
    filters.iter().all(|(name, values)| {
        let member = resource.get(name).and_then(Value::as_str).unwrap_or_default();
        let semantic = member.split('/').next().unwrap_or_default();
        values.iter().any(|v| v == member || (name == "version" && v == semantic))
    })
}

fn get_image(state: &State, call: &Call<'_>) -> Result<Reply, ApiError> {
    let arn =
        call.req.query.get("imageBuildVersionArn").ok_or_else(|| RULES.fail("imageBuildVersionArn is required"))?;
    let image = state
        .images
        .get(arn)
        .ok_or_else(|| ApiError::new("ResourceNotFoundException", 404, format!("image {arn} does not exist")))?;
    Ok(Reply::json(json!({"image": image})))
}

fn start_resource_state_update(state: &mut State, call: &Call<'_>, body: &Object) -> Result<Value, ApiError> {
    // The model has checked every member; what follows are the documented rules between members and states.
    let arn = RULES.required(body, "resourceArn", "")?;
    let requested = RULES.object(body, "state", "")?.ok_or_else(|| RULES.fail("state is required"))?;
    let role = RULES.string(body, "executionRole", "")?;
    let Some(target) = RULES.string(requested, "status", "state.")? else {
        // Inferred: the model makes `state.status` optional and the reference says nothing of a state without one;
        // taken as asking for no change (nothing starts, nothing moves).
        if !state.images.contains_key(arn) {
            return Err(ApiError::new("ResourceNotFoundException", 404, format!("image {arn} does not exist")));
        }
        return Ok(json!({"resourceArn": arn}));
    };
    let include = RULES.object(body, "includeResources", "")?;
    if role.is_some() != include.is_some() {
        return Err(RULES.fail("executionRole and includeResources must be given together"));
    }
    let flag = |name: &str| -> Result<bool, ApiError> {
        Ok(match include {
            Some(i) => RULES.boolean(i, name, "includeResources.")?.unwrap_or(false),
            None => false,
        })
    };
    let (amis, snapshots, containers) = (flag("amis")?, flag("snapshots")?, flag("containers")?);
    if (snapshots || containers) && target != "DELETED" {
        return Err(
            RULES.fail("includeResources.snapshots and includeResources.containers are only valid with state DELETED")
        );
    }
    if RULES.object(body, "exclusionRules", "")?.is_some() && !amis {
        return Err(RULES.fail("exclusionRules apply only when includeResources.amis is true"));
    }
    let update_at = RULES.number(body, "updateAt", "")?;
    if let Some(at) = update_at {
        if target != "DEPRECATED" {
            return Err(RULES.fail("updateAt is only valid with state DEPRECATED"));
        }
        if at * 1000.0 <= call.req.now_ms as f64 {
            return Err(RULES.fail("updateAt must be in the future"));
        }
    }
    let image = state
        .images
        .get(arn)
        .ok_or_else(|| ApiError::new("ResourceNotFoundException", 404, format!("image {arn} does not exist")))?;
    let current = image["state"]["status"].as_str().unwrap_or_default();
    if !["AVAILABLE", "DEPRECATED", "DISABLED", "FAILED", "CANCELLED"].contains(&current) {
        return Err(RULES.fail(format!("image {arn} is {current}; its state can only be updated when AVAILABLE, DEPRECATED, DISABLED, FAILED or CANCELLED")));
    }
    if ["FAILED", "CANCELLED"].contains(&current) && target != "DELETED" {
        return Err(RULES.fail(format!("image {arn} is {current}; it can only be DELETED")));
    }
    if image["type"] == "DOCKER" && target != "DELETED" {
        return Err(RULES.fail("container images can only be DELETED"));
    }
    if target == "DELETED" && include.is_none() {
        return Err(RULES.fail(
            "DELETED deletes the image's resources: includeResources and executionRole are required (DeleteImage removes only the record)",
        ));
    }
    if state.lifecycle_executions.values().any(|e| e.resource_arn == arn && !e.done) {
        return Err(ApiError::new(
            "ResourceInUseException",
            400,
            format!("a lifecycle execution is already in progress for {arn}"),
        ));
    }
    let now = call.req.now_ms;
    // With no resources to change and nothing scheduled, the record changes at once and no execution runs.
    if include.is_none() && update_at.is_none() {
        if let Some(image) = state.images.get_mut(arn) {
            set_status(image, target, now as f64 / 1000.0);
        }
        return Ok(json!({"resourceArn": arn}));
    }
    let id = format!("lce-{}", uuid::Uuid::new_v4());
    let end_ms = now + call.timing.lifecycle_millis as i64;
    if let (Some(at), Some(image)) = (update_at, state.images.get_mut(arn)) {
        // The AMIs are deprecated at `updateAt` from now on; the record follows at `updateAt`.
        image["deprecationTime"] = json!(at);
    }
    let excluded = RULES.object(body, "exclusionRules", "")?.is_some();
    state.lifecycle_executions.insert(
        id.clone(),
        Execution {
            lifecycle_execution_id: id.clone(),
            resource_arn: arn.to_string(),
            target_status: target.to_string(),
            start_ms: now,
            end_ms,
            update_at,
            execution_role: role.map(String::from),
            include_resources: include.map(|i| Value::Object(i.clone())),
            done: false,
            apply_at_ms: update_at.map(|at| (at * 1000.0) as i64).unwrap_or(end_ms),
            applied: false,
            keeps_record: target == "DELETED" && excluded,
        },
    );
    tick(state, now);
    Ok(json!({"lifecycleExecutionId": id, "resourceArn": arn}))
}

/// Moves an image record to `status`; a deprecation records when it happened, a restore forgets it.
fn set_status(image: &mut Value, status: &str, deprecated_at: f64) {
    image["state"] = json!({"status": status});
    match status {
        "DEPRECATED" if image.get("deprecationTime").is_none() => image["deprecationTime"] = json!(deprecated_at),
        "AVAILABLE" => {
            if let Some(o) = image.as_object_mut() {
                o.remove("deprecationTime");
            }
        }
        _ => {}
    }
}

fn execution_json(e: &Execution) -> Value {
    let status = if e.done { "SUCCESS" } else { "IN_PROGRESS" };
    let mut v = json!({
        "lifecycleExecutionId": e.lifecycle_execution_id,
        "state": {"status": status},
        "startTime": e.start_ms as f64 / 1000.0,
        "resourcesImpactedSummary": {"hasImpactedResources": true},
    });
    if e.done {
        v["endTime"] = json!(e.end_ms as f64 / 1000.0);
    }
    v
}

fn list_lifecycle_executions(state: &State, call: &Call<'_>) -> Result<Reply, ApiError> {
    let body = RULES.body(&call.req.body)?;
    let arn = RULES.required(&body, "resourceArn", "")?;
    let mut executions: Vec<&Execution> =
        state.lifecycle_executions.values().filter(|e| e.resource_arn == arn).collect();
    executions.sort_by_key(|e| std::cmp::Reverse(e.start_ms));
    let (items, next) = page(&body, executions.into_iter().map(execution_json).collect())?;
    Ok(with_token(json!({"lifecycleExecutions": items}), next))
}

fn get_lifecycle_execution(state: &State, call: &Call<'_>) -> Result<Reply, ApiError> {
    let id =
        call.req.query.get("lifecycleExecutionId").ok_or_else(|| RULES.fail("lifecycleExecutionId is required"))?;
    let e = state.lifecycle_executions.get(id).ok_or_else(|| {
        ApiError::new("ResourceNotFoundException", 404, format!("lifecycle execution {id} does not exist"))
    })?;
    Ok(Reply::json(json!({"lifecycleExecution": execution_json(e)})))
}

/// Ends the executions whose time has come, and moves each image whose change is due (at the execution's end, or
/// at `updateAt` for a scheduled deprecation).
pub fn tick(state: &mut State, now_ms: i64) {
    for e in state.lifecycle_executions.values_mut() {
        let Some(image) = state.images.get_mut(&e.resource_arn) else { continue };
        if !e.done && e.end_ms <= now_ms {
            // The execution has acted on the image's resources: it is the image's last execution from now on.
            e.done = true;
            image["lifecycleExecutionId"] = json!(e.lifecycle_execution_id);
        }
        if e.done && !e.applied && e.apply_at_ms <= now_ms {
            e.applied = true;
            if !e.keeps_record {
                set_status(image, &e.target_status, e.apply_at_ms as f64 / 1000.0);
            }
        }
    }
}

/// Completes a seeded image or distribution configuration with the members AWS always returns.
pub fn normalize_seed(account: &str, region_name: &str, state: &mut State, seed_ms: i64) {
    for (arn, image) in state.images.iter_mut() {
        let Some((name, version, build)) = parse_build_arn(arn) else { continue };
        let defaults = json!({
            "arn": arn, "name": name, "version": format!("{version}/{build}"), "type": "AMI", "platform": "Linux",
            "osVersion": "Amazon Linux 2023", "owner": account, "dateCreated": iso8601(seed_ms),
            "state": {"status": "AVAILABLE"}, "buildType": "USER_INITIATED", "imageSource": "CUSTOM",
        });
        fill(image, &defaults);
    }
    for (arn, config) in state.distribution_configurations.iter_mut() {
        let name = arn.rsplit('/').next().unwrap_or_default().to_string();
        let defaults = json!({"arn": arn, "name": name, "timeoutMinutes": 720, "dateCreated": iso8601(seed_ms), "distributions": [{"region": region_name}]});
        fill(config, &defaults);
    }
}

fn fill(target: &mut Value, defaults: &Value) {
    if !target.is_object() {
        *target = json!({});
    }
    if let (Some(t), Some(d)) = (target.as_object_mut(), defaults.as_object()) {
        for (k, v) in d {
            t.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

pub const fn service() -> &'static str {
    SERVICE
}
