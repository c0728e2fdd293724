//! CloudFront public keys and key groups over restXml (2020-05-31): every change needs the current ETag in
//! `If-Match` and yields a new one; a repeated `CallerReference` is PublicKeyAlreadyExists (the API reference documents
//! no replay; a seed can ask for replaying instead, to test both); the documented quotas hold.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::iso8601;
use crate::wire::{ApiError, ApiRequest, Encoded, Reply, ReplyBody, xml_escape};

const NS: &str = "http://cloudfront.amazonaws.com/doc/2020-05-31/";
const PREFIX: &str = "/2020-05-31/";
/// Public keys in one key group.
pub const MAX_KEYS_PER_GROUP: usize = 5;
/// Key groups per account.
pub const MAX_KEY_GROUPS: usize = 10;

fn default_max_public_keys() -> usize {
    10
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublicKey {
    #[serde(default)]
    pub caller_reference: String,
    pub name: String,
    pub encoded_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// ISO-8601; defaults to the seed time.
    #[serde(default)]
    pub created_time: String,
    #[serde(default)]
    pub etag: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyGroup {
    pub name: String,
    pub items: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default)]
    pub last_modified_time: String,
    #[serde(default)]
    pub etag: String,
}

/// CloudFront's state (global, not per region).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloudFront {
    #[serde(default)]
    pub public_keys: BTreeMap<String, PublicKey>,
    #[serde(default)]
    pub key_groups: BTreeMap<String, KeyGroup>,
    /// The account's public-key quota (10 by default, as the wire facts give it).
    #[serde(default = "default_max_public_keys")]
    pub max_public_keys: usize,
    /// CreatePublicKey with a CallerReference already used, same content: `false` (the default, what the API
    /// reference documents) answers PublicKeyAlreadyExists; `true` answers with the existing key, as a replay.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replay_caller_reference: bool,
}

impl Default for CloudFront {
    fn default() -> Self {
        CloudFront {
            public_keys: BTreeMap::new(),
            key_groups: BTreeMap::new(),
            max_public_keys: default_max_public_keys(),
            replay_caller_reference: false,
        }
    }
}

impl CloudFront {
    pub fn normalize_seed(&mut self, now_ms: i64) {
        for key in self.public_keys.values_mut() {
            if key.created_time.is_empty() {
                key.created_time = iso8601(now_ms);
            }
            if key.etag.is_empty() {
                key.etag = new_etag();
            }
        }
        for group in self.key_groups.values_mut() {
            if group.last_modified_time.is_empty() {
                group.last_modified_time = iso8601(now_ms);
            }
            if group.etag.is_empty() {
                group.etag = new_etag();
            }
        }
    }
}

fn new_etag() -> String {
    format!("E{}", &uuid::Uuid::new_v4().simple().to_string().to_ascii_uppercase()[..13])
}

fn new_key_id() -> String {
    format!("K{}", &uuid::Uuid::new_v4().simple().to_string().to_ascii_uppercase()[..13])
}

pub fn status_of(code: &str) -> u16 {
    match code {
        "NoSuchPublicKey" | "NoSuchResource" => 404,
        "PreconditionFailed" => 412,
        "PublicKeyAlreadyExists" | "PublicKeyInUse" | "KeyGroupAlreadyExists" | "ResourceInUse" => 409,
        "AccessDenied" => 403,
        "ServiceUnavailable" => 503,
        "InternalError" => 500,
        _ => 400,
    }
}

fn error(code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(code, status_of(code), message)
}

fn invalid(message: impl Into<String>) -> ApiError {
    error("InvalidArgument", message)
}

pub fn route(req: &ApiRequest) -> Result<(&'static str, BTreeMap<String, String>), ApiError> {
    let rest = req.path.strip_prefix(PREFIX).unwrap_or_default();
    let parts: Vec<&str> = rest.split('/').collect();
    let operation = match (req.method.as_str(), parts.as_slice()) {
        ("POST", ["public-key"]) => "CreatePublicKey",
        ("GET", ["public-key"]) => "ListPublicKeys",
        ("GET", ["public-key", _]) => "GetPublicKey",
        ("GET", ["public-key", _, "config"]) => "GetPublicKeyConfig",
        ("DELETE", ["public-key", _]) => "DeletePublicKey",
        ("POST", ["key-group"]) => "CreateKeyGroup",
        ("GET", ["key-group"]) => "ListKeyGroups",
        ("GET", ["key-group", _]) => "GetKeyGroup",
        ("GET", ["key-group", _, "config"]) => "GetKeyGroupConfig",
        ("PUT", ["key-group", _]) => "UpdateKeyGroup",
        ("DELETE", ["key-group", _]) => "DeleteKeyGroup",
        _ => {
            return Err(error(
                "InvalidAction",
                format!("{} {} is not a CloudFront operation served here", req.method, req.path),
            ));
        }
    };
    let mut params = BTreeMap::new();
    if let Some(id) = parts.get(1) {
        params.insert("Id".to_string(), id.to_string());
    }
    if let Some(if_match) = req.header("if-match") {
        params.insert("IfMatch".into(), if_match.into());
    }
    Ok((operation, params))
}

/// Checks the request against the CloudFront model: URI labels, headers, query members and the XML payload, read
/// into one document by member name.
pub fn validate(req: &ApiRequest, operation: &str) -> Result<(), ApiError> {
    let model = &*crate::model::CLOUDFRONT;
    let Some(op) = model.operation(operation) else { return Ok(()) };
    let mut input = serde_json::Map::new();
    let template = op.uri.split('?').next().unwrap_or_default();
    for (label, segment) in template.split('/').zip(req.path.split('/')) {
        if let Some(name) = label.strip_prefix('{').and_then(|l| l.strip_suffix('}')) {
            let text = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
            input.insert(name.to_string(), serde_json::Value::String(text.into_owned()));
        }
    }
    for (name, wire, member) in model.bound_members(operation, "header") {
        if let Some(text) = req.header(wire) {
            input.insert(name.to_string(), model.scalar(&member.shape, text));
        }
    }
    for (name, wire, member) in model.bound_members(operation, "querystring") {
        if let Some(text) = req.query.get(wire) {
            input.insert(name.to_string(), model.scalar(&member.shape, text));
        }
    }
    let input_shape = op.input.as_deref().map(|s| model.shape(s));
    if let Some((payload, member)) =
        input_shape.and_then(|s| s.payload.as_deref().and_then(|p| s.members.get(p).map(|m| (p, m))))
        && !req.body.iter().all(u8::is_ascii_whitespace)
    {
        let text = std::str::from_utf8(&req.body).map_err(|_| error("MalformedInput", "body is not UTF-8"))?;
        let value = model.xml_to_json(&member.shape, text).map_err(|e| error("MalformedInput", e))?;
        input.insert(payload.to_string(), value);
    }
    model.validate_input(operation, &serde_json::Value::Object(input)).map_err(|v| invalid(v.to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PublicKeyConfigXml {
    caller_reference: Option<String>,
    name: Option<String>,
    encoded_key: Option<String>,
    comment: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ItemsXml {
    #[serde(rename = "PublicKey", default)]
    keys: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyGroupConfigXml {
    name: Option<String>,
    items: Option<ItemsXml>,
    comment: Option<String>,
}

fn parse<T: for<'de> Deserialize<'de>>(req: &ApiRequest, root: &str) -> Result<T, ApiError> {
    let text = std::str::from_utf8(&req.body).map_err(|_| error("MalformedInput", "body is not UTF-8"))?;
    if !text.contains(&format!("<{root}")) {
        return Err(error("MalformedInput", format!("body must be a <{root}> document")));
    }
    quick_xml::de::from_str(text).map_err(|e| error("MalformedInput", format!("<{root}> cannot be read: {e}")))
}

fn id_of(req: &ApiRequest) -> String {
    req.path.strip_prefix(PREFIX).and_then(|r| r.split('/').nth(1)).unwrap_or_default().to_string()
}

fn check_if_match<'a>(req: &'a ApiRequest, current: &str) -> Result<&'a str, ApiError> {
    let given = req
        .header("if-match")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| error("InvalidIfMatchVersion", "the If-Match version is missing"))?;
    if given != current {
        return Err(error("PreconditionFailed", format!("the If-Match version {given} is not the current version")));
    }
    Ok(given)
}

fn check_comment(comment: &Option<String>) -> Result<(), ApiError> {
    match comment {
        Some(c) if c.chars().count() > 128 => {
            Err(invalid(format!("Comment is {} characters; at most 128", c.chars().count())))
        }
        _ => Ok(()),
    }
}

fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > 128 || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(invalid(format!("{what} `{name}` must be 1 to 128 letters, digits, hyphens or underscores")));
    }
    Ok(())
}

pub fn execute(state: &mut CloudFront, req: &ApiRequest, operation: &str, now_ms: i64) -> Result<Reply, ApiError> {
    match operation {
        "CreatePublicKey" => create_public_key(state, req, now_ms),
        "ListPublicKeys" => list_public_keys(state, req),
        "GetPublicKey" | "GetPublicKeyConfig" => {
            let id = id_of(req);
            let key = state
                .public_keys
                .get(&id)
                .ok_or_else(|| error("NoSuchPublicKey", format!("public key {id} does not exist")))?;
            let xml = if operation == "GetPublicKey" {
                public_key_xml(&id, key, true)
            } else {
                public_key_config_xml(key, true)
            };
            Ok(Reply::xml(200, xml).with_header("ETag", key.etag.clone()))
        }
        "DeletePublicKey" => {
            let id = id_of(req);
            let key = state
                .public_keys
                .get(&id)
                .ok_or_else(|| error("NoSuchPublicKey", format!("public key {id} does not exist")))?;
            check_if_match(req, &key.etag)?;
            if let Some((gid, _)) = state.key_groups.iter().find(|(_, g)| g.items.contains(&id)) {
                return Err(error("PublicKeyInUse", format!("public key {id} is in key group {gid}")));
            }
            state.public_keys.remove(&id);
            Ok(Reply::empty(204))
        }
        "CreateKeyGroup" => create_key_group(state, req, now_ms),
        "ListKeyGroups" => list_key_groups(state, req),
        "GetKeyGroup" | "GetKeyGroupConfig" => {
            let id = id_of(req);
            let group = state
                .key_groups
                .get(&id)
                .ok_or_else(|| error("NoSuchResource", format!("key group {id} does not exist")))?;
            let xml = if operation == "GetKeyGroup" {
                key_group_xml(&id, group, true)
            } else {
                key_group_config_xml(group, true)
            };
            Ok(Reply::xml(200, xml).with_header("ETag", group.etag.clone()))
        }
        "UpdateKeyGroup" => update_key_group(state, req, now_ms),
        "DeleteKeyGroup" => {
            let id = id_of(req);
            let group = state
                .key_groups
                .get(&id)
                .ok_or_else(|| error("NoSuchResource", format!("key group {id} does not exist")))?;
            check_if_match(req, &group.etag)?;
            state.key_groups.remove(&id);
            Ok(Reply::empty(204))
        }
        other => Err(error("InvalidAction", format!("{other} is not served"))),
    }
}

fn create_public_key(state: &mut CloudFront, req: &ApiRequest, now_ms: i64) -> Result<Reply, ApiError> {
    let config: PublicKeyConfigXml = parse(req, "PublicKeyConfig")?;
    let reference =
        config.caller_reference.filter(|r| !r.is_empty()).ok_or_else(|| invalid("CallerReference is required"))?;
    let name = config.name.ok_or_else(|| invalid("Name is required"))?;
    check_name("Name", &name)?;
    let encoded =
        config.encoded_key.filter(|k| !k.trim().is_empty()).ok_or_else(|| invalid("EncodedKey is required"))?;
    check_comment(&config.comment)?;
    // A reference used before is a conflict; only a seed that asks for replays answers the same request with the
    // original key.
    if let Some((id, existing)) = state.public_keys.iter().find(|(_, k)| k.caller_reference == reference) {
        let same = existing.name == name && existing.encoded_key == encoded && existing.comment == config.comment;
        if same && state.replay_caller_reference {
            let location = format!("https://cloudfront.amazonaws.com/2020-05-31/public-key/{id}");
            return Ok(Reply::xml(201, public_key_xml(id, existing, true))
                .with_header("ETag", existing.etag.clone())
                .with_header("Location", location));
        }
        return Err(error(
            "PublicKeyAlreadyExists",
            format!("CallerReference {reference} was already used for public key {id}"),
        ));
    }
    if state.public_keys.values().any(|k| k.name == name) {
        return Err(error("PublicKeyAlreadyExists", format!("a public key named {name} already exists")));
    }
    accepted_key(&encoded).map_err(|e| invalid(format!("EncodedKey: {e}")))?;
    if state.public_keys.len() >= state.max_public_keys {
        return Err(error(
            "TooManyPublicKeys",
            format!("the account already has {} public keys", state.public_keys.len()),
        ));
    }
    let id = new_key_id();
    let key = PublicKey {
        caller_reference: reference,
        name,
        encoded_key: encoded,
        comment: config.comment,
        created_time: iso8601(now_ms),
        etag: new_etag(),
    };
    let reply = Reply::xml(201, public_key_xml(&id, &key, true))
        .with_header("ETag", key.etag.clone())
        .with_header("Location", format!("https://cloudfront.amazonaws.com/2020-05-31/public-key/{id}"));
    state.public_keys.insert(id, key);
    Ok(reply)
}

/// Whether CloudFront takes a key: a PEM SubjectPublicKeyInfo of an RSA key with a 2048-bit modulus, or of a point
/// on P-256. Read with the RustCrypto types directly, never with keeper's own check, so that a mistake in keeper's
/// cannot hide behind the same mistake here.
pub fn accepted_key(pem: &str) -> Result<(), String> {
    use p256::pkcs8::DecodePublicKey;
    use pkcs1::der::Decode;
    use spki::ObjectIdentifier as Oid;
    const RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
    const EC: Oid = Oid::new_unwrap("1.2.840.10045.2.1");
    const CURVES: [(Oid, &str); 4] = [
        (Oid::new_unwrap("1.2.840.10045.3.1.7"), "P-256"),
        (Oid::new_unwrap("1.3.132.0.34"), "P-384"),
        (Oid::new_unwrap("1.3.132.0.35"), "P-521"),
        (Oid::new_unwrap("1.3.132.0.10"), "secp256k1"),
    ];
    let not_a_key = |why: String| format!("not a PEM public key (SubjectPublicKeyInfo): {why}");
    let (label, der) = pkcs1::der::pem::decode_vec(pem.trim().as_bytes()).map_err(|e| not_a_key(e.to_string()))?;
    if label != "PUBLIC KEY" {
        return Err(not_a_key(format!("the PEM holds a `{label}`")));
    }
    let info = spki::SubjectPublicKeyInfoRef::from_der(&der).map_err(|e| not_a_key(e.to_string()))?;
    match info.algorithm.oid {
        RSA => {
            let key =
                pkcs1::RsaPublicKey::<pkcs1::der::asn1::UintRef<'_>>::from_der(info.subject_public_key.raw_bytes())
                    .map_err(|e| not_a_key(format!("RSA key body: {e}")))?;
            let modulus = key.modulus.as_bytes();
            let first = modulus.iter().position(|b| *b != 0).unwrap_or(modulus.len());
            let bits = modulus.get(first).map_or(0, |b| (modulus.len() - first) * 8 - b.leading_zeros() as usize);
            match bits {
                2048 => Ok(()),
                _ => Err(format!("an RSA {bits}-bit key; CloudFront accepts RSA 2048-bit and ECDSA P-256 keys")),
            }
        }
        EC => {
            let curve = info.algorithm.parameters.and_then(|p| p.decode_as::<Oid>().ok());
            match CURVES.iter().find(|(oid, _)| Some(*oid) == curve).map(|(_, name)| *name) {
                Some("P-256") => p256::PublicKey::from_public_key_pem(pem.trim())
                    .map(|_| ())
                    .map_err(|e| format!("an EC key whose point is not on P-256: {e}")),
                found => Err(format!(
                    "an EC key on {}; CloudFront accepts RSA 2048-bit and ECDSA P-256 keys",
                    found.map(String::from).or(curve.map(|c| c.to_string())).unwrap_or_else(|| "no named curve".into())
                )),
            }
        }
        other => Err(format!("a key with algorithm {other}; CloudFront accepts RSA 2048-bit and ECDSA P-256 keys")),
    }
}

/// The new configuration of a key group, checked against the keys that exist and the quota.
fn key_group_config(state: &CloudFront, req: &ApiRequest) -> Result<(String, Vec<String>, Option<String>), ApiError> {
    let config: KeyGroupConfigXml = parse(req, "KeyGroupConfig")?;
    let name = config.name.ok_or_else(|| invalid("Name is required"))?;
    check_name("Name", &name)?;
    check_comment(&config.comment)?;
    let items = config.items.map(|i| i.keys).unwrap_or_default();
    if items.is_empty() {
        return Err(invalid("Items must name at least one public key"));
    }
    if items.len() > MAX_KEYS_PER_GROUP {
        return Err(error(
            "TooManyPublicKeysInKeyGroup",
            format!("{} public keys; a key group holds at most {MAX_KEYS_PER_GROUP}", items.len()),
        ));
    }
    for (i, id) in items.iter().enumerate() {
        if items[..i].contains(id) {
            return Err(invalid(format!("public key {id} is listed twice")));
        }
        if !state.public_keys.contains_key(id) {
            return Err(invalid(format!("public key {id} does not exist")));
        }
    }
    Ok((name, items, config.comment))
}

fn create_key_group(state: &mut CloudFront, req: &ApiRequest, now_ms: i64) -> Result<Reply, ApiError> {
    let (name, items, comment) = key_group_config(state, req)?;
    if state.key_groups.values().any(|g| g.name == name) {
        return Err(error("KeyGroupAlreadyExists", format!("a key group named {name} already exists")));
    }
    if state.key_groups.len() >= MAX_KEY_GROUPS {
        return Err(error("TooManyKeyGroups", format!("the account already has {MAX_KEY_GROUPS} key groups")));
    }
    let id = uuid::Uuid::new_v4().to_string();
    let group = KeyGroup { name, items, comment, last_modified_time: iso8601(now_ms), etag: new_etag() };
    let reply = Reply::xml(201, key_group_xml(&id, &group, true))
        .with_header("ETag", group.etag.clone())
        .with_header("Location", format!("https://cloudfront.amazonaws.com/2020-05-31/key-group/{id}"));
    state.key_groups.insert(id, group);
    Ok(reply)
}

fn update_key_group(state: &mut CloudFront, req: &ApiRequest, now_ms: i64) -> Result<Reply, ApiError> {
    let id = id_of(req);
    let current =
        state.key_groups.get(&id).ok_or_else(|| error("NoSuchResource", format!("key group {id} does not exist")))?;
    check_if_match(req, &current.etag)?;
    let (name, items, comment) = key_group_config(state, req)?;
    if state.key_groups.iter().any(|(other, g)| *other != id && g.name == name) {
        return Err(error("KeyGroupAlreadyExists", format!("a key group named {name} already exists")));
    }
    let group = KeyGroup { name, items, comment, last_modified_time: iso8601(now_ms), etag: new_etag() };
    let reply = Reply::xml(200, key_group_xml(&id, &group, true)).with_header("ETag", group.etag.clone());
    state.key_groups.insert(id, group);
    Ok(reply)
}

/// `(items after Marker, next marker)` for `MaxItems` paging; markers are ids.
/// One page of a listing: the entries, the next marker, and the page size used.
struct Page<'a, T> {
    items: Vec<(&'a String, &'a T)>,
    next: Option<String>,
    max: usize,
}

fn page<'a, T>(items: &'a BTreeMap<String, T>, req: &ApiRequest) -> Result<Page<'a, T>, ApiError> {
    let max = match req.query.get("MaxItems") {
        None => 100,
        Some(m) => m
            .parse::<usize>()
            .ok()
            .filter(|m| (1..=1000).contains(m))
            .ok_or_else(|| invalid(format!("MaxItems `{m}` must be 1 to 1000")))?,
    };
    let after = req.query.get("Marker").filter(|m| !m.is_empty());
    let rest: Vec<(&String, &T)> =
        items.iter().filter(|(id, _)| after.is_none_or(|m| id.as_str() > m.as_str())).collect();
    let next = (rest.len() > max).then(|| rest[max - 1].0.clone());
    Ok(Page { items: rest.into_iter().take(max).collect(), next, max })
}

fn list_public_keys(state: &CloudFront, req: &ApiRequest) -> Result<Reply, ApiError> {
    let Page { items, next, max } = page(&state.public_keys, req)?;
    let mut xml = format!(r#"<?xml version="1.0" encoding="UTF-8"?><PublicKeyList xmlns="{NS}">"#);
    if let Some(next) = next {
        xml.push_str(&format!("<NextMarker>{}</NextMarker>", xml_escape(&next)));
    }
    xml.push_str(&format!("<MaxItems>{max}</MaxItems><Quantity>{}</Quantity><Items>", items.len()));
    for (id, k) in items {
        xml.push_str(&format!(
            "<PublicKeySummary><Id>{}</Id><Name>{}</Name><CreatedTime>{}</CreatedTime><EncodedKey>{}</EncodedKey>{}</PublicKeySummary>",
            xml_escape(id),
            xml_escape(&k.name),
            k.created_time,
            xml_escape(&k.encoded_key),
            optional("Comment", &k.comment)
        ));
    }
    xml.push_str("</Items></PublicKeyList>");
    Ok(Reply::xml(200, xml))
}

fn list_key_groups(state: &CloudFront, req: &ApiRequest) -> Result<Reply, ApiError> {
    let Page { items, next, max } = page(&state.key_groups, req)?;
    let mut xml = format!(r#"<?xml version="1.0" encoding="UTF-8"?><KeyGroupList xmlns="{NS}">"#);
    if let Some(next) = next {
        xml.push_str(&format!("<NextMarker>{}</NextMarker>", xml_escape(&next)));
    }
    xml.push_str(&format!("<MaxItems>{max}</MaxItems><Quantity>{}</Quantity><Items>", items.len()));
    for (id, g) in items {
        xml.push_str(&format!("<KeyGroupSummary>{}</KeyGroupSummary>", key_group_xml(id, g, false)));
    }
    xml.push_str("</Items></KeyGroupList>");
    Ok(Reply::xml(200, xml))
}

fn optional(element: &str, value: &Option<String>) -> String {
    value.as_ref().map(|v| format!("<{element}>{}</{element}>", xml_escape(v))).unwrap_or_default()
}

fn root(element: &str, top: bool) -> (String, String) {
    if top {
        (format!(r#"<?xml version="1.0" encoding="UTF-8"?><{element} xmlns="{NS}">"#), format!("</{element}>"))
    } else {
        (format!("<{element}>"), format!("</{element}>"))
    }
}

fn public_key_config_xml(k: &PublicKey, top: bool) -> String {
    let (open, close) = root("PublicKeyConfig", top);
    format!(
        "{open}<CallerReference>{}</CallerReference><Name>{}</Name><EncodedKey>{}</EncodedKey>{}{close}",
        xml_escape(&k.caller_reference),
        xml_escape(&k.name),
        xml_escape(&k.encoded_key),
        optional("Comment", &k.comment)
    )
}

fn public_key_xml(id: &str, k: &PublicKey, top: bool) -> String {
    let (open, close) = root("PublicKey", top);
    format!(
        "{open}<Id>{}</Id><CreatedTime>{}</CreatedTime>{}{close}",
        xml_escape(id),
        k.created_time,
        public_key_config_xml(k, false)
    )
}

fn key_group_config_xml(g: &KeyGroup, top: bool) -> String {
    let (open, close) = root("KeyGroupConfig", top);
    let items: String = g.items.iter().map(|i| format!("<PublicKey>{}</PublicKey>", xml_escape(i))).collect();
    format!(
        "{open}<Name>{}</Name><Items>{items}</Items>{}{close}",
        xml_escape(&g.name),
        optional("Comment", &g.comment)
    )
}

fn key_group_xml(id: &str, g: &KeyGroup, top: bool) -> String {
    let (open, close) = root("KeyGroup", top);
    format!(
        "{open}<Id>{}</Id><LastModifiedTime>{}</LastModifiedTime>{}{close}",
        xml_escape(id),
        g.last_modified_time,
        key_group_config_xml(g, false)
    )
}

/// Encodes a reply, or an error as `<ErrorResponse>` (the SDK reads only Error/Code and Error/Message).
pub fn encode(result: Result<Reply, ApiError>, request_id: &str) -> Encoded {
    match result {
        Ok(reply) => {
            let mut headers = reply.headers;
            let body = match reply.body {
                ReplyBody::Raw { content_type, bytes } => {
                    headers.push(("content-type".into(), content_type.into()));
                    bytes
                }
                _ => bytes::Bytes::new(),
            };
            Encoded { status: reply.status, headers, body }
        }
        Err(e) => {
            let kind = if e.status >= 500 { "Receiver" } else { "Sender" };
            let xml = format!(
                r#"<?xml version="1.0"?><ErrorResponse xmlns="{NS}"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"#,
                xml_escape(&e.code),
                xml_escape(&e.message)
            );
            Encoded { status: e.status, headers: vec![("content-type".into(), "text/xml".into())], body: xml.into() }
        }
    }
}
