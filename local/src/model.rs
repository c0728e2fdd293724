//! The service models' constraints (generated from botocore by `models/generate.py`) and the one validator every
//! request passes before any service logic, whatever protocol carried it.
//!
//! Requests are first read into JSON (a member per model member, wherever the protocol put it: body, query, URI,
//! header, XML payload), then checked shape by shape. Messages follow AWS's own wording ("1 validation error
//! detected: Value ... at '<path>' failed to satisfy constraint: Member must ..."), so a test can name the member.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::Deserialize;
use serde_json::{Map, Value};

/// One service's model: its operations and every shape they reach.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    pub service: String,
    pub api_version: String,
    /// The `X-Amz-Target` prefix of the awsJson protocols (`<prefix>.<Operation>`).
    pub target_prefix: Option<String>,
    pub operations: BTreeMap<String, Operation>,
    pub shapes: BTreeMap<String, Shape>,
    #[serde(skip)]
    patterns: BTreeMap<String, fancy_regex::Regex>,
}

#[derive(Debug, Deserialize)]
pub struct Operation {
    pub method: String,
    pub uri: String,
    pub input: Option<String>,
    pub output: Option<String>,
    #[serde(default)]
    pub errors: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct Shape {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub required: Vec<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub pattern: Option<String>,
    #[serde(rename = "enum")]
    pub values: Option<Vec<String>>,
    pub payload: Option<String>,
    #[serde(default)]
    pub members: BTreeMap<String, Member>,
    pub member: Option<Member>,
    pub key: Option<Member>,
    pub value: Option<Member>,
    #[serde(default)]
    pub exception: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub shape: String,
    pub location: Option<String>,
    pub location_name: Option<String>,
    #[serde(default)]
    pub idempotency_token: bool,
}

impl Member {
    /// The name on the wire: the location name where the model gives one.
    pub fn wire_name<'a>(&'a self, name: &'a str) -> &'a str {
        self.location_name.as_deref().unwrap_or(name)
    }
}

/// A request or reply that breaks a constraint: where, and which rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: String,
    pub value: String,
    pub rule: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "1 validation error detected: Value {} at '{}' failed to satisfy constraint: {}",
            self.value, self.path, self.rule
        )
    }
}

fn load(text: &str) -> Model {
    // The data is generated and committed; a test loads every model, so a broken file fails there first.
    let mut model: Model = serde_json::from_str(text).expect("a generated model file");
    for (name, shape) in &model.shapes {
        if let Some(p) = &shape.pattern {
            let re = fancy_regex::Regex::new(p).unwrap_or_else(|e| panic!("pattern of {name}: {e}"));
            model.patterns.insert(name.clone(), re);
        }
    }
    model
}

pub static APPSTREAM: LazyLock<Model> = LazyLock::new(|| load(include_str!("../models/appstream.json")));
pub static IMAGEBUILDER: LazyLock<Model> = LazyLock::new(|| load(include_str!("../models/imagebuilder.json")));
pub static CLOUDFRONT: LazyLock<Model> = LazyLock::new(|| load(include_str!("../models/cloudfront.json")));
pub static SECRETSMANAGER: LazyLock<Model> = LazyLock::new(|| load(include_str!("../models/secretsmanager.json")));

/// Shows a value the way AWS's messages do: strings quoted, the rest as JSON, long ones cut.
fn shown(value: &Value) -> String {
    let text = match value {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    };
    if text.chars().count() > 80 { format!("{}...", text.chars().take(77).collect::<String>()) } else { text }
}

fn join(path: &str, member: &str) -> String {
    if path.is_empty() { member.to_string() } else { format!("{path}.{member}") }
}

impl Model {
    pub fn shape(&self, name: &str) -> &Shape {
        // Shape names come from the same file: a miss is a generator bug, caught by the model tests.
        self.shapes.get(name).unwrap_or_else(|| panic!("{} model has no shape {name}", self.service))
    }

    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.operations.get(name)
    }

    /// Checks the input of `operation`, read into JSON with model member names.
    pub fn validate_input(&self, operation: &str, input: &Value) -> Result<(), Violation> {
        match self.operations.get(operation).and_then(|o| o.input.as_deref()) {
            Some(shape) => self.validate(shape, input, ""),
            None => Ok(()),
        }
    }

    /// Checks a reply of `operation` (member names as the model gives them) against its output shape.
    pub fn validate_output(&self, operation: &str, output: &Value) -> Result<(), Violation> {
        match self.operations.get(operation).and_then(|o| o.output.as_deref()) {
            Some(shape) => self.validate(shape, output, ""),
            None => Ok(()),
        }
    }

    /// Checks `value` against shape `name`; `path` names it in the message.
    pub fn validate(&self, name: &str, value: &Value, path: &str) -> Result<(), Violation> {
        let shape = self.shape(name);
        let fail = |rule: String| Err(Violation { path: path.to_string(), value: shown(value), rule });
        match (shape.kind.as_str(), value) {
            ("structure", Value::Object(object)) => {
                for required in &shape.required {
                    if object.get(required).is_none_or(Value::is_null) {
                        return Err(Violation {
                            path: join(path, required),
                            value: "null".into(),
                            rule: "Member must not be null".into(),
                        });
                    }
                }
                for (member, reference) in &shape.members {
                    if let Some(v) = object.get(member).filter(|v| !v.is_null()) {
                        self.validate(&reference.shape, v, &join(path, member))?;
                    }
                }
                Ok(())
            }
            ("string", Value::String(s)) => {
                let length = s.chars().count() as f64;
                self.bounds(shape, length, "length", path, value)?;
                if let Some(re) = self.patterns.get(name)
                    && !re.is_match(s).unwrap_or(false)
                {
                    let pattern = shape.pattern.as_deref().unwrap_or_default();
                    return fail(format!("Member must satisfy regular expression pattern: {pattern}"));
                }
                if let Some(values) = &shape.values
                    && !values.iter().any(|v| v == s)
                {
                    return fail(format!("Member must satisfy enum value set: [{}]", values.join(", ")));
                }
                Ok(())
            }
            ("integer" | "long", Value::Number(n)) if n.is_i64() || n.is_u64() => {
                self.bounds(shape, n.as_f64().unwrap_or_default(), "value", path, value)
            }
            ("double" | "float", Value::Number(_)) | ("boolean", Value::Bool(_)) => Ok(()),
            // JSON protocols carry timestamps as epoch seconds; the XML reader hands them over as text.
            ("timestamp", Value::Number(_)) | ("timestamp" | "blob", Value::String(_)) => Ok(()),
            ("list", Value::Array(items)) => {
                self.bounds(shape, items.len() as f64, "length", path, value)?;
                let member = shape.member.as_ref().map(|m| m.shape.as_str()).unwrap_or_default();
                for (i, item) in items.iter().enumerate() {
                    self.validate(member, item, &format!("{path}.{}", i + 1))?;
                }
                Ok(())
            }
            ("map", Value::Object(entries)) => {
                self.bounds(shape, entries.len() as f64, "length", path, value)?;
                let key = shape.key.as_ref().map(|m| m.shape.as_str()).unwrap_or_default();
                let item = shape.value.as_ref().map(|m| m.shape.as_str()).unwrap_or_default();
                for (k, v) in entries {
                    self.validate(key, &Value::String(k.clone()), &format!("{path}.key"))?;
                    self.validate(item, v, &format!("{path}.{k}"))?;
                }
                Ok(())
            }
            (kind, _) => fail(format!("Member must be of type {}", type_word(kind))),
        }
    }

    fn bounds(&self, shape: &Shape, n: f64, what: &str, path: &str, value: &Value) -> Result<(), Violation> {
        let violation = |rule: String| Violation { path: path.to_string(), value: shown(value), rule };
        if let Some(min) = shape.min
            && n < min
        {
            return Err(violation(format!("Member must have {what} greater than or equal to {min}")));
        }
        if let Some(max) = shape.max
            && n > max
        {
            return Err(violation(format!("Member must have {what} less than or equal to {max}")));
        }
        Ok(())
    }

    /// Keeps only the members `shape` models, recursively: what a service stores of what a client sent.
    pub fn modeled(&self, shape: &str, value: &Value) -> Value {
        let s = self.shape(shape);
        match (s.kind.as_str(), value) {
            ("structure", Value::Object(object)) => Value::Object(
                object
                    .iter()
                    .filter_map(|(k, v)| s.members.get(k).map(|m| (k.clone(), self.modeled(&m.shape, v))))
                    .collect(),
            ),
            ("list", Value::Array(items)) => match &s.member {
                Some(m) => Value::Array(items.iter().map(|v| self.modeled(&m.shape, v)).collect()),
                None => value.clone(),
            },
            ("map", Value::Object(entries)) => match &s.value {
                Some(m) => Value::Object(entries.iter().map(|(k, v)| (k.clone(), self.modeled(&m.shape, v))).collect()),
                None => value.clone(),
            },
            _ => value.clone(),
        }
    }

    /// The members of the input of `operation` bound to a wire location (`uri`, `querystring`, `header`), by their
    /// wire name: how a REST request is read back into one JSON document.
    pub fn bound_members(&self, operation: &str, location: &str) -> Vec<(&str, &str, &Member)> {
        let Some(input) = self.operations.get(operation).and_then(|o| o.input.as_deref()) else { return Vec::new() };
        self.shape(input)
            .members
            .iter()
            .filter(|(_, m)| m.location.as_deref() == Some(location))
            .map(|(name, m)| (name.as_str(), m.wire_name(name), m))
            .collect()
    }

    /// A text from the wire (query, header, URI label) as the JSON value of its member's shape; text that cannot be
    /// read as that type is kept as text so that the validator names the member.
    pub fn scalar(&self, shape: &str, text: &str) -> Value {
        match self.shape(shape).kind.as_str() {
            "integer" | "long" => text.parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::String(text.into())),
            "boolean" => match text {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                other => Value::String(other.into()),
            },
            _ => Value::String(text.into()),
        }
    }

    /// Reads an XML payload element into JSON by `shape`: structures by member (or location) name, lists from their
    /// member elements, scalars as text. Elements the model does not know are left out, as a service would.
    pub fn xml_to_json(&self, shape: &str, xml: &str) -> Result<Value, String> {
        let doc = roxmltree_lite::parse(xml)?;
        Ok(self.xml_node(shape, &doc))
    }

    fn xml_node(&self, shape: &str, node: &roxmltree_lite::Element) -> Value {
        let s = self.shape(shape);
        match s.kind.as_str() {
            "structure" => {
                let mut out = Map::new();
                for (name, member) in &s.members {
                    let wire = member.wire_name(name);
                    if let Some(child) = node.children.iter().find(|c| c.name == wire) {
                        out.insert(name.clone(), self.xml_node(&member.shape, child));
                    }
                }
                Value::Object(out)
            }
            "list" => {
                let member = s.member.as_ref();
                let wire = member.and_then(|m| m.location_name.as_deref()).unwrap_or("member");
                let item_shape = member.map(|m| m.shape.as_str()).unwrap_or_default();
                Value::Array(
                    node.children.iter().filter(|c| c.name == wire).map(|c| self.xml_node(item_shape, c)).collect(),
                )
            }
            "integer" | "long" | "boolean" => self.scalar(shape, node.text.trim()),
            _ => Value::String(node.text.clone()),
        }
    }
}

fn type_word(kind: &str) -> &str {
    match kind {
        "structure" | "map" => "object",
        "list" => "list",
        "integer" | "long" => "integer",
        "double" | "float" => "number",
        "timestamp" => "timestamp",
        other => other,
    }
}

/// A small element tree read with quick-xml: names without prefixes, text, children.
mod roxmltree_lite {
    use quick_xml::Reader;
    use quick_xml::events::Event;

    #[derive(Debug, Default)]
    pub(crate) struct Element {
        pub name: String,
        pub text: String,
        pub children: Vec<Element>,
    }

    /// The root element of `xml`; malformed XML is an error naming where it broke.
    pub(crate) fn parse(xml: &str) -> Result<Element, String> {
        let mut reader = Reader::from_str(xml);
        let mut stack: Vec<Element> = Vec::new();
        loop {
            match reader.read_event().map_err(|e| format!("malformed XML at {}: {e}", reader.buffer_position()))? {
                Event::Start(start) => {
                    stack.push(Element { name: local(start.local_name().as_ref()), ..Default::default() })
                }
                Event::Empty(start) => {
                    let element = Element { name: local(start.local_name().as_ref()), ..Default::default() };
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(element),
                        None => return Ok(element),
                    }
                }
                Event::Text(text) => {
                    if let Some(top) = stack.last_mut() {
                        let decoded = text.decode().map_err(|e| format!("malformed XML text: {e}"))?;
                        top.text.push_str(&decoded);
                    }
                }
                Event::GeneralRef(reference) => {
                    if let Some(top) = stack.last_mut() {
                        let name = reference.decode().map_err(|e| format!("malformed XML reference: {e}"))?;
                        let resolved = quick_xml::escape::resolve_predefined_entity(&name)
                            .map(String::from)
                            .or_else(|| reference.resolve_char_ref().ok().flatten().map(|c| c.to_string()))
                            .ok_or_else(|| format!("unknown XML entity &{name};"))?;
                        top.text.push_str(&resolved);
                    }
                }
                Event::CData(data) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&String::from_utf8_lossy(&data));
                    }
                }
                Event::End(_) => {
                    let done = stack.pop().ok_or("unbalanced XML")?;
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(done),
                        None => return Ok(done),
                    }
                }
                Event::Eof => return Err("XML ended before its root element closed".into()),
                _ => {}
            }
        }
    }

    fn local(name: &[u8]) -> String {
        String::from_utf8_lossy(name).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn given_the_generated_models_when_loaded_then_every_pattern_compiles_and_every_shape_resolves() {
        for model in [&*APPSTREAM, &*IMAGEBUILDER, &*CLOUDFRONT, &*SECRETSMANAGER] {
            assert!(!model.operations.is_empty());
            for shape in model.shapes.values() {
                let refs = shape.members.values().chain(&shape.member).chain(&shape.key).chain(&shape.value);
                for r in refs {
                    assert!(model.shapes.contains_key(&r.shape), "{}: {} is not in the file", model.service, r.shape);
                }
            }
            for op in model.operations.values() {
                for s in op.input.iter().chain(&op.output).chain(&op.errors) {
                    assert!(model.shapes.contains_key(s), "{}: {s} is not in the file", model.service);
                }
            }
        }
    }

    #[test]
    fn given_a_name_against_a_lookahead_pattern_when_validated_then_aws_wording_names_the_member() {
        let input = json!({"clientToken": "t", "name": "ok", "distributions": [{"region": "us-east-1",
            "amiDistributionConfiguration": {"amiTags": {"aws:reserved": "x"}}}]});
        let v = IMAGEBUILDER.validate_input("CreateDistributionConfiguration", &input).unwrap_err();
        assert_eq!(v.path, "distributions.1.amiDistributionConfiguration.amiTags.key");
        assert!(v.to_string().starts_with("1 validation error detected: Value 'aws:reserved' at"), "{v}");
    }

    #[test]
    fn given_xml_with_entities_and_unknown_elements_when_read_by_shape_then_modeled_members_only() {
        let xml = r#"<KeyGroupConfig xmlns="x"><Name>a&amp;b</Name><Extra>1</Extra><Items><PublicKey>K1</PublicKey><PublicKey>K2</PublicKey></Items></KeyGroupConfig>"#;
        let v = CLOUDFRONT.xml_to_json("KeyGroupConfig", xml).unwrap();
        assert_eq!(v, json!({"Name": "a&b", "Items": ["K1", "K2"]}));
        assert!(CLOUDFRONT.xml_to_json("KeyGroupConfig", "<KeyGroupConfig><Name>").is_err());
    }
}
