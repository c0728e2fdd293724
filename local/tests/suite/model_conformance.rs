//! Conformance derived from the service models: for every emulated operation, one valid request that succeeds (its
//! reply checked against the output shape) and, for every constraint the model puts on its input, one request that
//! breaks exactly that constraint and must be refused with the service's validation error naming the member, with
//! no change to the account. Requests are written on the wire by hand (both AppStream protocols, Secrets Manager's
//! awsJson1_1, restJson1, restXml) so that an SDK's own checks cannot hide what the emulator accepts. A constraint
//! added to a model (regenerate with `make models`) is exercised here without anyone writing a case.

use crate::support;

use std::collections::BTreeSet;

use local::model::{APPSTREAM, CLOUDFRONT, IMAGEBUILDER, Model, SECRETSMANAGER};
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::{Map, Value, json};
use support::*;

const ACCOUNT: &str = "123456789012";
const DIST: &str = "arn:aws:imagebuilder:us-east-1:123456789012:distribution-configuration/web";
const IMAGE: &str = "arn:aws:imagebuilder:us-east-1:123456789012:image/web/1.0.0/1";
const EXECUTION: &str = "lce-0123abcd-0123-4567-89ab-0123456789ab";
const SECRET_ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf";
const DEPRECATED: &str = "a0000000-0000-4000-8000-000000000000";
const PREVIOUS: &str = "a1111111-1111-4111-8111-111111111111";
const CURRENT: &str = "a2222222-2222-4222-8222-222222222222";
const PENDING: &str = "b1111111-1111-4111-8111-111111111111";
const TOKEN: &str = "c0000000-0000-4000-8000-000000000000";
const ROTATION_LAMBDA: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotate-db";

fn pem(name: &str) -> String {
    let path = format!("{}/../shared/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).expect(&path)
}

/// One account with a resource for every operation's valid request; nothing in it moves by itself.
fn seed() -> Value {
    let builder = |state: &str| json!({"State": state, "Tags": {"team": "web"}});
    json!({
        "regions": {"us-east-1": {
            "imageBuilders": {"idle": builder("STOPPED"), "busy": builder("RUNNING")},
            "distributionConfigurations": {DIST: {"description": "web", "tags": {"team": "web"}, "distributions": [{"region": "us-east-1",
                "amiDistributionConfiguration": {"name": "web-{{ imagebuilder:buildDate }}", "amiTags": {"team": "web"}}}]}},
            "images": {IMAGE: {"tags": {"team": "web"}}, "arn:aws:imagebuilder:us-east-1:123456789012:image/web/1.0.0/2": {}},
            "lifecycleExecutions": {EXECUTION: {"lifecycleExecutionId": EXECUTION, "resourceArn": IMAGE,
                "targetStatus": "DEPRECATED", "startMs": 0, "endMs": 1, "done": true, "applyAtMs": 1, "applied": true,
                "keepsRecord": true}},
            "secrets": {
                "db": {"arn": SECRET_ARN, "description": "web database", "kmsKeyId": "alias/keeper", "tags": {"team": "web"},
                    "rotationEnabled": true, "rotationLambdaArn": ROTATION_LAMBDA, "rotationRules": {"AutomaticallyAfterDays": 30},
                    "lastRotatedMs": 1_700_000_000_000i64, "versions": [
                        {"versionId": DEPRECATED, "secretString": "oldest"},
                        {"versionId": PREVIOUS, "secretString": "old", "stages": ["AWSPREVIOUS"]},
                        {"versionId": CURRENT, "secretString": "new", "stages": ["AWSCURRENT"]}
                    ]},
                "rotating": {"rotationEnabled": true, "rotationLambdaArn": ROTATION_LAMBDA, "versions": [
                    {"versionId": CURRENT, "secretString": "now", "stages": ["AWSCURRENT"]},
                    {"versionId": PENDING, "secretString": "next", "stages": ["AWSPENDING"]}
                ]}
            }
        }},
        "cloudfront": {
            "publicKeys": {
                "K1": {"callerReference": "r1", "name": "one", "encodedKey": pem("rsa-2048.pem"), "etag": "EK1",
                    "comment": "signs /private"},
                "K2": {"callerReference": "r2", "name": "two", "encodedKey": pem("ec-p256.pem"), "etag": "EK2"},
                "K3": {"callerReference": "r3", "name": "three", "encodedKey": pem("rsa-2048-second.pem"), "etag": "EK3"}
            },
            "keyGroups": {
                "G1": {"name": "group", "items": ["K1"], "etag": "EG1", "comment": "signed URLs"},
                "G2": {"name": "spare", "items": ["K2"], "etag": "EG2"}
            }
        }
    })
}

/// The valid request of every emulated operation, members named as the model names them.
fn valid_requests() -> Vec<(&'static Model, &'static str, Value)> {
    let builder_arn = format!("arn:aws:appstream:us-east-1:{ACCOUNT}:image-builder/idle");
    vec![
        (
            &*APPSTREAM,
            "CreateImageBuilder",
            json!({"Name": "new-builder", "InstanceType": "stream.standard.medium",
            "ImageName": "AppStream-WinServer2022-2026-01-01"}),
        ),
        (&*APPSTREAM, "DescribeImageBuilders", json!({"Names": ["idle"]})),
        (&*APPSTREAM, "StartImageBuilder", json!({"Name": "idle"})),
        (&*APPSTREAM, "StopImageBuilder", json!({"Name": "busy"})),
        (&*APPSTREAM, "DeleteImageBuilder", json!({"Name": "idle"})),
        (&*APPSTREAM, "ListTagsForResource", json!({"ResourceArn": builder_arn})),
        (&*APPSTREAM, "TagResource", json!({"ResourceArn": builder_arn, "Tags": {"owner": "ops"}})),
        (
            &*IMAGEBUILDER,
            "CreateDistributionConfiguration",
            json!({"name": "new-dist", "clientToken": "t-create",
            "distributions": [{"region": "us-east-1"}]}),
        ),
        (&*IMAGEBUILDER, "GetDistributionConfiguration", json!({"distributionConfigurationArn": DIST})),
        (
            &*IMAGEBUILDER,
            "UpdateDistributionConfiguration",
            json!({"distributionConfigurationArn": DIST,
            "clientToken": "t-update", "distributions": [{"region": "us-east-1"}, {"region": "eu-west-1"}]}),
        ),
        (&*IMAGEBUILDER, "ListDistributionConfigurations", json!({})),
        (
            &*IMAGEBUILDER,
            "StartResourceStateUpdate",
            json!({"resourceArn": IMAGE, "state": {"status": "DEPRECATED"},
            "clientToken": "t-state"}),
        ),
        (&*IMAGEBUILDER, "ListImages", json!({})),
        (&*IMAGEBUILDER, "ListImageBuildVersions", json!({"imageVersionArn": IMAGE.rsplit_once('/').unwrap().0})),
        (&*IMAGEBUILDER, "GetImage", json!({"imageBuildVersionArn": IMAGE})),
        (&*IMAGEBUILDER, "ListLifecycleExecutions", json!({"resourceArn": IMAGE})),
        (&*IMAGEBUILDER, "GetLifecycleExecution", json!({"lifecycleExecutionId": EXECUTION})),
        (
            &*CLOUDFRONT,
            "CreatePublicKey",
            json!({"PublicKeyConfig": {"CallerReference": "r-new", "Name": "new-key",
            "EncodedKey": pem("rsa-2048.pem")}}),
        ),
        (&*CLOUDFRONT, "ListPublicKeys", json!({})),
        (&*CLOUDFRONT, "GetPublicKey", json!({"Id": "K1"})),
        (&*CLOUDFRONT, "GetPublicKeyConfig", json!({"Id": "K1"})),
        (&*CLOUDFRONT, "DeletePublicKey", json!({"Id": "K3", "IfMatch": "EK3"})),
        (&*CLOUDFRONT, "CreateKeyGroup", json!({"KeyGroupConfig": {"Name": "new-group", "Items": ["K3"]}})),
        (&*CLOUDFRONT, "ListKeyGroups", json!({})),
        (&*CLOUDFRONT, "GetKeyGroup", json!({"Id": "G1"})),
        (&*CLOUDFRONT, "GetKeyGroupConfig", json!({"Id": "G1"})),
        (
            &*CLOUDFRONT,
            "UpdateKeyGroup",
            json!({"Id": "G1", "IfMatch": "EG1",
            "KeyGroupConfig": {"Name": "group", "Items": ["K1", "K3"]}}),
        ),
        (&*CLOUDFRONT, "DeleteKeyGroup", json!({"Id": "G2", "IfMatch": "EG2"})),
        (
            &*SECRETSMANAGER,
            "CreateSecret",
            json!({"Name": "new-secret", "SecretString": "s3cr3t", "ClientRequestToken": TOKEN}),
        ),
        (&*SECRETSMANAGER, "DescribeSecret", json!({"SecretId": SECRET_ARN})),
        (&*SECRETSMANAGER, "GetSecretValue", json!({"SecretId": "db"})),
        (
            &*SECRETSMANAGER,
            "PutSecretValue",
            json!({"SecretId": "db", "SecretString": "newer", "ClientRequestToken": TOKEN}),
        ),
        (
            &*SECRETSMANAGER,
            "UpdateSecretVersionStage",
            json!({"SecretId": "db", "VersionStage": "AWSCURRENT", "MoveToVersionId": PREVIOUS,
            "RemoveFromVersionId": CURRENT}),
        ),
        (&*SECRETSMANAGER, "ListSecretVersionIds", json!({"SecretId": SECRET_ARN})),
        (&*SECRETSMANAGER, "TagResource", json!({"SecretId": "db", "Tags": [{"Key": "owner", "Value": "ops"}]})),
        (
            &*SECRETSMANAGER,
            "RotateSecret",
            json!({"SecretId": "db", "RotationLambdaARN": ROTATION_LAMBDA,
            "RotationRules": {"AutomaticallyAfterDays": 30}}),
        ),
        (&*SECRETSMANAGER, "CancelRotateSecret", json!({"SecretId": "rotating"})),
    ]
}

/// The code each service answers a broken constraint with.
fn validation_code(model: &Model) -> &'static str {
    match model.service.as_str() {
        "appstream" | "secretsmanager" => "ValidationException",
        "imagebuilder" => "InvalidRequestException",
        _ => "InvalidArgument",
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The wire: each protocol written by hand.

#[derive(Debug, Clone, Copy, PartialEq)]
enum Wire {
    AwsJson,
    Cbor,
    RestJson,
    RestXml,
}

fn wires(model: &Model) -> Vec<Wire> {
    match model.service.as_str() {
        "appstream" => vec![Wire::AwsJson, Wire::Cbor],
        "secretsmanager" => vec![Wire::AwsJson],
        "imagebuilder" => vec![Wire::RestJson],
        _ => vec![Wire::RestXml],
    }
}

struct Answer {
    status: u16,
    code: String,
    message: String,
    body: Value,
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A JSON document written as restXml by shape: members as elements, lists as their member elements.
fn to_xml(model: &Model, shape: &str, element: &str, value: &Value) -> String {
    let s = model.shape(shape);
    let inner = match (s.kind.as_str(), value) {
        ("structure", Value::Object(o)) => s
            .members
            .iter()
            .filter_map(|(name, m)| o.get(name).map(|v| to_xml(model, &m.shape, m.wire_name(name), v)))
            .collect(),
        ("list", Value::Array(items)) => {
            let m = s.member.as_ref().unwrap();
            let wire = m.location_name.as_deref().unwrap_or("member");
            items.iter().map(|v| to_xml(model, &m.shape, wire, v)).collect()
        }
        (_, Value::String(text)) => xml_escape(text),
        (_, other) => other.to_string(),
    };
    format!("<{element}>{inner}</{element}>")
}

fn text_of(value: &Value) -> String {
    value.as_str().map(String::from).unwrap_or_else(|| value.to_string())
}

async fn send(running: &local::Running, model: &Model, wire: Wire, operation: &str, input: &Value) -> Answer {
    let op = model.operation(operation).unwrap();
    let input_shape = model.shape(op.input.as_deref().unwrap());
    let object = input.as_object().cloned().unwrap_or_default();
    let mut headers: Vec<(String, String)> = Vec::new();
    let (method, mut path, body): (&str, String, Vec<u8>) = match wire {
        Wire::AwsJson => {
            let prefix = model.target_prefix.as_deref().unwrap();
            headers.push(("x-amz-target".into(), format!("{prefix}.{operation}")));
            headers.push(("content-type".into(), "application/x-amz-json-1.1".into()));
            ("POST", "/".into(), input.to_string().into_bytes())
        }
        Wire::Cbor => {
            headers.push(("smithy-protocol".into(), "rpc-v2-cbor".into()));
            headers.push(("content-type".into(), "application/cbor".into()));
            let mut bytes = Vec::new();
            ciborium::into_writer(&local::appstream::json_to_cbor(input, None), &mut bytes).unwrap();
            ("POST", format!("/service/PhotonAdminProxyService/operation/{operation}"), bytes)
        }
        Wire::RestJson | Wire::RestXml => {
            let mut path = op.uri.split('?').next().unwrap().to_string();
            let mut body_members = Map::new();
            let mut payload = None;
            for (name, value) in &object {
                let Some(m) = input_shape.members.get(name) else { continue };
                let wire_name = m.wire_name(name);
                let text = text_of(value);
                match m.location.as_deref() {
                    Some("uri") => path = path.replace(&format!("{{{wire_name}}}"), &text),
                    Some("header") => headers.push((wire_name.to_string(), text)),
                    Some("querystring") => {
                        let sep = if path.contains('?') { '&' } else { '?' };
                        let encoded: String =
                            percent_encoding::utf8_percent_encode(&text, percent_encoding::NON_ALPHANUMERIC)
                                .to_string();
                        path = format!("{path}{sep}{wire_name}={encoded}");
                    }
                    _ if input_shape.payload.as_deref() == Some(name.as_str()) => {
                        payload = Some(to_xml(model, &m.shape, wire_name, value))
                    }
                    _ => {
                        body_members.insert(name.clone(), value.clone());
                    }
                }
            }
            let body = match (wire, op.method.as_str()) {
                (Wire::RestXml, _) => payload.unwrap_or_default().into_bytes(),
                (_, "GET") => Vec::new(),
                _ => Value::Object(body_members).to_string().into_bytes(),
            };
            headers.push((
                "content-type".into(),
                if wire == Wire::RestXml { "text/xml" } else { "application/json" }.into(),
            ));
            (op.method.as_str(), path, body)
        }
    };
    if path.is_empty() {
        path = "/".into();
    }
    let (status, response_headers, bytes) = raw(running, &model.service, method, &path, &headers, &body).await;
    decode(model, wire, operation, status, &response_headers, &bytes)
}

/// One HTTP/1.1 exchange, signed with a scope only (the emulator accepts any signature unless told to verify).
async fn raw(
    running: &local::Running,
    service: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nauthorization: AWS4-HMAC-SHA256 Credential=AKIDANYKEY/20261123/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=00\r\n"
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    local::testing::exchange(running, &head, body).await
}

fn decode(
    model: &Model,
    wire: Wire,
    operation: &str,
    status: u16,
    headers: &[(String, String)],
    bytes: &[u8],
) -> Answer {
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let body = match wire {
        Wire::Cbor if !bytes.is_empty() => {
            local::appstream::cbor_to_json(ciborium::from_reader(bytes).expect("CBOR reply")).unwrap()
        }
        Wire::RestXml if status < 300 && model.operation(operation).unwrap().output.is_none() => json!({}),
        Wire::RestXml if status < 300 => {
            let op = model.operation(operation).unwrap();
            let output = model.shape(op.output.as_deref().unwrap());
            let mut out = Map::new();
            if let Some(payload) = output.payload.as_deref()
                && !bytes.is_empty()
            {
                let member = &output.members[payload];
                let xml = std::str::from_utf8(bytes).unwrap();
                out.insert(payload.into(), model.xml_to_json(&member.shape, xml).expect("XML reply"));
            }
            for (name, m) in &output.members {
                if m.location.as_deref() == Some("header")
                    && let Some(v) = header(&m.wire_name(name).to_ascii_lowercase())
                {
                    out.insert(name.clone(), Value::String(v));
                }
            }
            Value::Object(out)
        }
        Wire::RestXml => {
            let text = String::from_utf8_lossy(bytes);
            let element = |name: &str| {
                text.split(&format!("<{name}>"))
                    .nth(1)
                    .and_then(|r| r.split(&format!("</{name}>")).next())
                    .map(|t| quick_xml::escape::unescape(t).map(|u| u.into_owned()).unwrap_or_else(|_| t.to_string()))
            };
            json!({"__type": element("Code").unwrap_or_default(), "message": element("Message").unwrap_or_default()})
        }
        _ if bytes.is_empty() => json!({}),
        _ => serde_json::from_slice(bytes).expect("a JSON reply"),
    };
    let code = header("x-amzn-errortype")
        .or_else(|| body.get("__type").and_then(Value::as_str).map(String::from))
        .map(|c| c.rsplit('#').next().unwrap_or_default().split(':').next().unwrap_or_default().to_string())
        .unwrap_or_default();
    let message = ["message", "Message"].iter().find_map(|k| body.get(*k).and_then(Value::as_str)).unwrap_or_default();
    Answer { status, code: if status < 300 { String::new() } else { code }, message: message.to_string(), body }
}

// ---------------------------------------------------------------------------------------------------------------
// Values from the model: valid ones to fill in what a mutation needs, and one breaking value per constraint.

/// Where a member lives in a request document.
#[derive(Debug, Clone)]
enum Step {
    Member(String),
    Index(usize),
    Key(String),
}

fn at<'a>(doc: &'a mut Value, steps: &[Step]) -> &'a mut Value {
    steps.iter().fold(doc, |v, step| match step {
        Step::Member(name) | Step::Key(name) => &mut v[name.as_str()],
        Step::Index(i) => &mut v[*i],
    })
}

struct Values {
    runner: TestRunner,
}

impl Values {
    /// A string the shape accepts: an enum value, a string generated from the pattern (look-ahead removed, then
    /// checked against the real pattern), or letters, within the length bounds.
    fn string(&mut self, model: &Model, shape: &str) -> String {
        let s = model.shape(shape);
        if let Some(values) = &s.values {
            return values[0].clone();
        }
        let (min, max) = (s.min.unwrap_or(1.0).max(1.0) as usize, s.max.unwrap_or(4096.0) as usize);
        let Some(pattern) = &s.pattern else { return "a".repeat(min.min(max).max(1)) };
        let real = fancy_regex::Regex::new(pattern).unwrap();
        let simplified = regex::Regex::new(r"\(\?![^)]*\)").unwrap().replace_all(pattern, "");
        // The generator wants no anchors: the models anchor at the ends (and once inside a group).
        let simplified = regex::Regex::new(r"(^|\()\^").unwrap().replace_all(&simplified, "$1");
        let simplified = regex::Regex::new(r"\$(\)|$)").unwrap().replace_all(&simplified, "$1");
        let simplified = simplified.replace("\\s", " ").replace("\\p{Z}", " ");
        // Short repetitions, so that long-bounded parts (an ARN's 1,023-character tail) stay small.
        let simplified =
            regex::Regex::new(r"\{(\d+),(\d+)\}").unwrap().replace_all(&simplified, |c: &regex::Captures<'_>| {
                let low: usize = c[1].parse().unwrap();
                format!("{{{low},{}}}", c[2].parse::<usize>().unwrap().min(low + 3))
            });
        // Repetitions of at most three first; a shape longer than that at its shortest (a token of one character
        // class, 36 at least) then gets repetitions as long as its minimum.
        let bounds = if min > 3 { vec![3, min] } else { vec![3] };
        let (star, plus) = (regex::Regex::new(r"([^\\])\*").unwrap(), regex::Regex::new(r"([^\\])\+").unwrap());
        for bound in bounds {
            let repeated = star.replace_all(&simplified, format!("$1{{0,{bound}}}").as_str()).into_owned();
            let repeated = plus.replace_all(&repeated, format!("$1{{1,{bound}}}").as_str()).into_owned();
            let strategy = proptest::string::string_regex(&repeated).unwrap();
            for _ in 0..500 {
                let candidate = strategy.new_tree(&mut self.runner).unwrap().current();
                let n = candidate.chars().count();
                if (min..=max).contains(&n) && real.is_match(&candidate).unwrap() && !candidate.contains(['\n', '\r']) {
                    return candidate;
                }
            }
        }
        panic!("no valid value found for {shape} ({pattern}, {min}..={max})");
    }

    /// The smallest document the shape accepts: required members only, one item per list and map.
    fn valid(&mut self, model: &Model, shape: &str, depth: usize) -> Value {
        let s = model.shape(shape);
        assert!(depth < 12, "{shape}: the model nests deeper than expected");
        match s.kind.as_str() {
            "structure" => Value::Object(
                s.required.iter().map(|r| (r.clone(), self.valid(model, &s.members[r].shape, depth + 1))).collect(),
            ),
            "list" => {
                let n = s.min.unwrap_or(1.0).max(1.0) as usize;
                let member = &s.member.as_ref().unwrap().shape;
                Value::Array((0..n).map(|_| self.valid(model, member, depth + 1)).collect())
            }
            "map" => {
                let n = s.min.unwrap_or(1.0).max(1.0) as usize;
                Value::Object(self.entries(model, shape, n))
            }
            "integer" | "long" => json!(s.min.unwrap_or(1.0).max(s.max.map_or(1.0, |m| m.min(1.0))) as i64),
            "boolean" => json!(true),
            "timestamp" | "double" | "float" => json!(4_102_444_800i64),
            _ => Value::String(self.string(model, shape)),
        }
    }

    /// `n` distinct valid entries of a map shape.
    fn entries(&mut self, model: &Model, shape: &str, n: usize) -> Map<String, Value> {
        let s = model.shape(shape);
        let (key, value) = (&s.key.as_ref().unwrap().shape, &s.value.as_ref().unwrap().shape);
        let mut out = Map::new();
        for _ in 0..n * 50 {
            if out.len() == n {
                break;
            }
            let k = self.string(model, key);
            let v = self.valid(model, value, 1);
            out.insert(k, v);
        }
        assert_eq!(out.len(), n, "{shape}: cannot make {n} distinct keys");
        out
    }

    /// A string that breaks the shape's pattern but keeps its length bounds, if one exists.
    fn off_pattern(&mut self, model: &Model, shape: &str) -> Option<String> {
        let s = model.shape(shape);
        let re = fancy_regex::Regex::new(s.pattern.as_deref()?).unwrap();
        let (min, max) = (s.min.unwrap_or(0.0) as usize, s.max.unwrap_or(f64::MAX) as usize);
        let valid = self.string(model, shape);
        let candidates = [
            "!".to_string(),
            "aws:reserved".into(),
            format!("{valid}!"),
            format!("!{valid}"),
            format!("{valid}\u{7}"),
            format!("aws:{valid}"),
            " ".repeat(min.max(1)),
            "!".repeat(min.max(1)),
        ];
        candidates.into_iter().find(|c| (min..=max).contains(&c.chars().count()) && !re.is_match(c).unwrap())
    }
}

/// One request that breaks one constraint, and the member the answer must name.
struct Broken {
    request: Value,
    path: String,
    rule: String,
}

fn path_text(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| match s {
            Step::Member(m) | Step::Key(m) => m.clone(),
            Step::Index(i) => (i + 1).to_string(),
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Every constraint reachable from the input: walks the valid document, fills in any optional member it must reach
/// with a valid value, and breaks one constraint per request.
fn broken_requests(model: &Model, wire: Wire, operation: &str, valid: &Value, values: &mut Values) -> Vec<Broken> {
    let mut out = Vec::new();
    let input = model.operation(operation).unwrap().input.clone().unwrap();
    walk(model, wire, &input, valid.clone(), Vec::new(), None, values, &mut out, &mut Vec::new());
    out
}

#[allow(clippy::too_many_arguments)]
fn walk(
    model: &Model,
    wire: Wire,
    shape: &str,
    doc: Value,
    steps: Vec<Step>,
    location: Option<&str>,
    values: &mut Values,
    out: &mut Vec<Broken>,
    open: &mut Vec<String>,
) {
    if open.iter().filter(|s| *s == shape).count() >= 1 || steps.len() > 10 {
        return; // a recursive shape: its constraints were met on the way in
    }
    open.push(shape.to_string());
    let s = model.shape(shape);
    let here = path_text(&steps);
    let mut broken = |value: Value, rule: &str| {
        let mut request = doc.clone();
        *at(&mut request, &steps) = value;
        out.push(Broken { request, path: here.clone(), rule: rule.to_string() });
    };
    // XML, URI labels and headers carry text: a "wrong type" cannot be written there; a query can carry bad numbers.
    let typed = matches!(wire, Wire::AwsJson | Wire::Cbor | Wire::RestJson) && location.is_none() && !steps.is_empty();
    match s.kind.as_str() {
        "structure" => {
            if typed {
                broken(json!("not an object"), "type");
            }
            for (name, member) in &s.members {
                if member.location.as_deref() == Some("uri") {
                    continue; // another path is another operation
                }
                let mut member_steps = steps.clone();
                member_steps.push(Step::Member(name.clone()));
                if s.required.contains(name) {
                    let mut request = doc.clone();
                    if let Some(o) = at(&mut request, &steps).as_object_mut() {
                        o.remove(name);
                    }
                    out.push(Broken { request, path: path_text(&member_steps), rule: "required".into() });
                }
                let mut filled = doc.clone();
                let slot = at(&mut filled, &member_steps);
                if slot.is_null() {
                    *slot = values.valid(model, &member.shape, steps.len());
                }
                walk(model, wire, &member.shape, filled, member_steps, member.location.as_deref(), values, out, open);
            }
        }
        "list" => {
            if typed {
                broken(json!("not a list"), "type");
            }
            let item = at(&mut doc.clone(), &steps).get(0).cloned().unwrap();
            if let Some(min) = s.min.filter(|m| *m >= 1.0) {
                broken(Value::Array(vec![item.clone(); min as usize - 1]), "min");
            }
            if let Some(max) = s.max {
                broken(Value::Array(vec![item.clone(); max as usize + 1]), "max");
            }
            let mut item_steps = steps.clone();
            item_steps.push(Step::Index(0));
            let member = s.member.as_ref().unwrap();
            walk(model, wire, &member.shape, doc.clone(), item_steps, location, values, out, open);
        }
        "map" => {
            if typed {
                broken(json!(["not a map"]), "type");
            }
            if let Some(min) = s.min.filter(|m| *m >= 1.0) {
                broken(Value::Object(values.entries(model, shape, min as usize - 1)), "min");
            }
            if let Some(max) = s.max {
                broken(Value::Object(values.entries(model, shape, max as usize + 1)), "max");
            }
            let current = at(&mut doc.clone(), &steps).as_object().cloned().unwrap();
            let (first_key, first_value) = current.iter().next().map(|(k, v)| (k.clone(), v.clone())).unwrap();
            // The key: a one-entry map whose key breaks the key shape, named `<map>.key`.
            let key_shape = &s.key.as_ref().unwrap().shape;
            for broken_key in key_values(model, key_shape, values) {
                let mut request = doc.clone();
                *at(&mut request, &steps) = Value::Object(Map::from_iter([(broken_key.0, first_value.clone())]));
                out.push(Broken { request, path: format!("{here}.key"), rule: broken_key.1 });
            }
            let mut value_steps = steps.clone();
            value_steps.push(Step::Key(first_key));
            walk(model, wire, &s.value.as_ref().unwrap().shape, doc.clone(), value_steps, location, values, out, open);
        }
        "string" => {
            if typed {
                broken(json!(12345), "type");
            }
            if let Some(min) = s.min.filter(|m| *m >= 1.0) {
                broken(json!("a".repeat(min as usize - 1)), "min");
            }
            if let Some(max) = s.max {
                broken(json!("a".repeat(max as usize + 1)), "max");
            }
            if s.pattern.is_some()
                && let Some(v) = values.off_pattern(model, shape)
            {
                broken(json!(v), "pattern");
            }
            if s.values.is_some() {
                broken(json!("NOT_A_MODELED_VALUE"), "enum");
            }
        }
        "integer" | "long" => {
            if typed || location == Some("querystring") {
                broken(json!("twelve"), "type");
            }
            if let Some(min) = s.min {
                broken(json!(min as i64 - 1), "min");
            }
            if let Some(max) = s.max {
                broken(json!(max as i64 + 1), "max");
            }
        }
        "boolean" if typed => broken(json!("yes"), "type"),
        "timestamp" if typed => broken(json!({"at": "noon"}), "type"),
        _ => {}
    }
    open.pop();
}

/// Map keys that break the key shape, each with its rule.
fn key_values(model: &Model, shape: &str, values: &mut Values) -> Vec<(String, String)> {
    let s = model.shape(shape);
    let mut out = Vec::new();
    if let Some(min) = s.min.filter(|m| *m >= 1.0) {
        out.push(("a".repeat(min as usize - 1), "min".into()));
    }
    if let Some(max) = s.max {
        out.push(("a".repeat(max as usize + 1), "max".into()));
    }
    if let Some(v) = values.off_pattern(model, shape) {
        out.push((v, "pattern".into()));
    }
    out
}

// ---------------------------------------------------------------------------------------------------------------

/// The members (as `Shape.member`) of an output and of the structures it holds (through lists) that a reply carried.
fn returned_members(model: &Model, shape: &str, value: &Value, depth: usize, out: &mut BTreeSet<String>) {
    let s = model.shape(shape);
    match (s.kind.as_str(), value) {
        ("structure", Value::Object(o)) => {
            for (name, m) in &s.members {
                if let Some(v) = o.get(name).filter(|v| !v.is_null()) {
                    out.insert(format!("{}:{shape}.{name}", model.service));
                    if depth < 1 {
                        returned_members(model, &m.shape, v, depth + 1, out);
                    }
                }
            }
        }
        ("list", Value::Array(items)) => {
            for item in items {
                returned_members(model, &s.member.as_ref().unwrap().shape, item, depth, out);
            }
        }
        _ => {}
    }
}

/// The members the model defines where `returned_members` looks.
fn defined_members(model: &Model, shape: &str, depth: usize, out: &mut BTreeSet<String>) {
    let s = model.shape(shape);
    match s.kind.as_str() {
        "structure" => {
            for (name, m) in &s.members {
                out.insert(format!("{}:{shape}.{name}", model.service));
                if depth < 1 {
                    defined_members(model, &m.shape, depth + 1, out);
                }
            }
        }
        "list" => defined_members(model, &s.member.as_ref().unwrap().shape, depth, out),
        _ => {}
    }
}

/// Output members the model defines that the valid requests above never get back, each on purpose. A member that
/// starts being returned, or stops, fails the test until this list says so.
const NOT_RETURNED: &[&str] = &[
    // One page here: paging itself is proven by the SDK suites of each service.
    "appstream:DescribeImageBuildersResult.NextToken",
    "cloudfront:KeyGroupList.NextMarker",
    "cloudfront:PublicKeyList.NextMarker",
    "imagebuilder:ListDistributionConfigurationsResponse.nextToken",
    "imagebuilder:ListImageBuildVersionsResponse.nextToken",
    "imagebuilder:ListImagesResponse.nextToken",
    "imagebuilder:ListLifecycleExecutionsResponse.nextToken",
    // Returned only when a resource has them, and the seeded resources here do not (or, for the lifecycle execution
    // id, the change applies at once).
    "appstream:ImageBuilder.AccessEndpoints",
    "appstream:ImageBuilder.AgentAccessConfig",
    "appstream:ImageBuilder.Description",
    "appstream:ImageBuilder.DisableIMDSV1",
    "appstream:ImageBuilder.DisplayName",
    "appstream:ImageBuilder.DomainJoinInfo",
    "appstream:ImageBuilder.EnableDefaultInternetAccess",
    "appstream:ImageBuilder.IamRoleArn",
    "appstream:ImageBuilder.ImageBuilderErrors",
    "appstream:ImageBuilder.NetworkAccessConfiguration",
    "appstream:ImageBuilder.RootVolumeConfig",
    "appstream:ImageBuilder.StateChangeReason",
    "appstream:ImageBuilder.VpcConfig",
    "imagebuilder:DistributionConfiguration.dateUpdated",
    "imagebuilder:DistributionConfigurationSummary.dateUpdated",
    "imagebuilder:Image.deprecationTime",
    "imagebuilder:Image.lifecycleExecutionId",
    "imagebuilder:Image.loggingConfiguration",
    "imagebuilder:Image.outputResources",
    "imagebuilder:ImageSummary.deprecationTime",
    "imagebuilder:ImageSummary.lifecycleExecutionId",
    "imagebuilder:ImageSummary.loggingConfiguration",
    "imagebuilder:ImageSummary.outputResources",
    "imagebuilder:StartResourceStateUpdateResponse.lifecycleExecutionId",
    // Never kept by the emulator: recipes, pipelines, scans, workflows and version references keeper never reads.
    "imagebuilder:GetImageResponse.latestVersionReferences",
    "imagebuilder:Image.containerRecipe",
    "imagebuilder:Image.distributionConfiguration",
    "imagebuilder:Image.enhancedImageMetadataEnabled",
    "imagebuilder:Image.executionRole",
    "imagebuilder:Image.imageRecipe",
    "imagebuilder:Image.imageScanningConfiguration",
    "imagebuilder:Image.imageTestsConfiguration",
    "imagebuilder:Image.infrastructureConfiguration",
    "imagebuilder:Image.scanState",
    "imagebuilder:Image.sourcePipelineArn",
    "imagebuilder:Image.sourcePipelineName",
    "imagebuilder:Image.workflows",
    "imagebuilder:LatestVersionReferences.latestMajorVersionArn",
    "imagebuilder:LatestVersionReferences.latestMinorVersionArn",
    "imagebuilder:LatestVersionReferences.latestPatchVersionArn",
    "imagebuilder:LatestVersionReferences.latestVersionArn",
    "imagebuilder:LifecycleExecution.lifecyclePolicyArn",
    // One page of versions, as for the other services.
    "secretsmanager:ListSecretVersionIdsResponse.NextToken",
    // The seeded secret holds text, and was last rotated on a schedule in days.
    "secretsmanager:GetSecretValueResponse.SecretBinary",
    "secretsmanager:RotationRulesType.Duration",
    "secretsmanager:RotationRulesType.ScheduleExpression",
    // Never kept by the emulator: replication (CreateSecret refuses it), cross-account replicas, deletion, partner
    // (external) rotation, owning services, access dates, the next rotation date and per-version KMS keys.
    "secretsmanager:CreateSecretResponse.ReplicationStatus",
    "secretsmanager:CrossAccountPrimaryType.PrimarySecretARN",
    "secretsmanager:CrossAccountPrimaryType.ReplicationStatus",
    "secretsmanager:CrossAccountPrimaryType.StatusMessage",
    "secretsmanager:CrossAccountReplicaEntry.ReplicaSecretARN",
    "secretsmanager:CrossAccountReplicaEntry.ReplicationRoleARN",
    "secretsmanager:CrossAccountReplicaEntry.ReplicationStatus",
    "secretsmanager:CrossAccountReplicaEntry.StatusMessage",
    "secretsmanager:DescribeSecretResponse.CrossAccountPrimary",
    "secretsmanager:DescribeSecretResponse.CrossAccountReplicas",
    "secretsmanager:DescribeSecretResponse.DeletedDate",
    "secretsmanager:DescribeSecretResponse.ExternalSecretRotationMetadata",
    "secretsmanager:DescribeSecretResponse.ExternalSecretRotationRoleArn",
    "secretsmanager:DescribeSecretResponse.LastAccessedDate",
    "secretsmanager:DescribeSecretResponse.NextRotationDate",
    "secretsmanager:DescribeSecretResponse.OwningService",
    "secretsmanager:DescribeSecretResponse.PrimaryRegion",
    "secretsmanager:DescribeSecretResponse.ReplicationStatus",
    "secretsmanager:DescribeSecretResponse.Type",
    "secretsmanager:ExternalSecretRotationMetadataItem.Key",
    "secretsmanager:ExternalSecretRotationMetadataItem.Value",
    "secretsmanager:ReplicationStatusType.KmsKeyId",
    "secretsmanager:ReplicationStatusType.LastAccessedDate",
    "secretsmanager:ReplicationStatusType.Region",
    "secretsmanager:ReplicationStatusType.Status",
    "secretsmanager:ReplicationStatusType.StatusMessage",
    "secretsmanager:SecretVersionsListEntry.KmsKeyIds",
    "secretsmanager:SecretVersionsListEntry.LastAccessedDate",
];

#[tokio::test]
async fn given_every_emulated_operation_when_each_modeled_constraint_is_broken_then_refused_naming_the_member_and_nothing_changes()
 {
    let mut values = Values { runner: TestRunner::deterministic() };
    let requests = valid_requests();
    // Every operation of every model is covered.
    for model in [&*APPSTREAM, &*IMAGEBUILDER, &*CLOUDFRONT, &*SECRETSMANAGER] {
        let covered: BTreeSet<&str> =
            requests.iter().filter(|(m, _, _)| m.service == model.service).map(|(_, op, _)| *op).collect();
        let modeled: BTreeSet<&str> = model.operations.keys().map(String::as_str).collect();
        assert_eq!(covered, modeled, "{}: operations without a valid request", model.service);
    }
    let mut total = 0;
    let mut refused_wrongly = Vec::new();
    let mut unseen = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for (model, operation, valid) in &requests {
        for wire in wires(model) {
            let running = emulator(seed()).await;
            let before = running.emulator.dump();
            for broken in broken_requests(model, wire, operation, valid, &mut values) {
                total += 1;
                let answer = send(&running, model, wire, operation, &broken.request).await;
                let named = answer.message.contains(&format!("at '{}'", broken.path));
                if answer.status < 400 || answer.code != validation_code(model) || !named {
                    refused_wrongly.push(format!(
                        "{}:{operation} {wire:?} {} ({}): {} {} {}",
                        model.service, broken.path, broken.rule, answer.status, answer.code, answer.message
                    ));
                }
                assert_eq!(
                    running.emulator.dump(),
                    before,
                    "{operation} {wire:?} {}: a refusal changed the account",
                    broken.path
                );
            }
            let answer = send(&running, model, wire, operation, valid).await;
            assert!(
                answer.status < 300,
                "{}:{operation} {wire:?}: the valid request failed: {} {}",
                model.service,
                answer.code,
                answer.message
            );
            let mut body = answer.body.clone();
            if let Some(o) = body.as_object_mut() {
                o.retain(|k, _| k != "__type");
            }
            model
                .validate_output(operation, &body)
                .unwrap_or_else(|v| panic!("{}:{operation} {wire:?} reply: {v}", model.service));
            let Some(output) = model.operation(operation).unwrap().output.clone() else { continue };
            returned_members(model, &output, &body, 0, &mut seen);
            defined_members(model, &output, 0, &mut unseen);
        }
    }
    assert!(
        refused_wrongly.is_empty(),
        "{} of {total} invalid requests were not refused as the model requires:\n{}",
        refused_wrongly.len(),
        refused_wrongly.join("\n")
    );
    let unseen: BTreeSet<String> = unseen.difference(&seen).cloned().collect();
    let listed: BTreeSet<String> = NOT_RETURNED.iter().map(|s| s.to_string()).collect();
    assert_eq!(unseen, listed, "output members never returned, against the list of those left out on purpose");
    assert!(total > 300, "only {total} invalid requests: the walk missed the models");
}

#[tokio::test]
async fn given_create_image_builder_with_members_the_model_does_not_define_when_described_then_only_modeled_members() {
    let running = emulator(seed()).await;
    let create = json!({"Name": "extra", "InstanceType": "stream.standard.medium", "ImageName": "AppStream-WinServer2022-2026-01-01",
        "Description": "kept", "Bogus": {"nested": 1}, "SoftwaresToInstall": ["x"]});
    for wire in [Wire::AwsJson, Wire::Cbor] {
        let mut request = create.clone();
        request["Name"] = json!(format!("extra-{wire:?}").to_lowercase());
        let answer = send(&running, &APPSTREAM, wire, "CreateImageBuilder", &request).await;
        assert!(answer.status < 300, "{}: {}", answer.code, answer.message);
        let builder = &answer.body["ImageBuilder"];
        assert_eq!(builder["Description"], "kept");
        assert!(builder.get("Bogus").is_none() && builder.get("SoftwaresToInstall").is_none(), "{builder}");
        APPSTREAM.validate_output("CreateImageBuilder", &answer.body).unwrap();
    }
    let stored = running.emulator.dump();
    let builders = &stored["regions"]["us-east-1"]["imageBuilders"];
    assert!(builders["extra-awsjson"].get("Bogus").is_none() && builders["extra-cbor"].get("Bogus").is_none());
}
