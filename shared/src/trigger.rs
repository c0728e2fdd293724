//! Turns a raw Lambda payload into a [`Trigger`]: which source sent it, the function's request inside, a stable event id.
//!
//! Accepted shapes, tried in this order:
//! 1. `{"Records": [...]}` from SNS (`EventSource: aws:sns`) or S3 (`eventSource: aws:s3`);
//! 2. an EventBridge envelope (`detail-type`, `source`): `Scheduled Event` from `aws.events`, `Object Created` from
//!    `aws.s3`, or an event the function recognises through [`Request::is_notification`];
//! 3. EventBridge Scheduler input: the function's request with a `scheduler` block (`executionId`, `scheduledTime`,
//!    `scheduleArn`) that the schedules in template.yaml fill from the scheduler's context attributes;
//! 4. a Secrets Manager rotation step (`SecretId`, `ClientRequestToken`, `Step`), for a function that rotates a
//!    secret ([`Rotation`]);
//! 5. anything else that is a JSON object: the function's request sent by hand.
//!
//! The event id is what idempotency keys and client tokens are derived from, so it is stable across redeliveries of
//! one event and differs between two events.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::s3::S3Event;
use aws_lambda_events::event::sns::SnsEvent;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::answer::Caller;
use crate::classify::{Classify, ErrorType};
use crate::hash::{canonical_json, sha256_hex};

/// Lambda's limit for an asynchronous invocation payload (1 MB since 2025; Invoke: "For asynchronous invocations, the
/// maximum payload size is 1 MB"); anything larger did not come from an AWS event source.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;

/// The key in a hand-sent or Scheduler request that names the request for idempotency; stripped before parsing.
pub const REQUEST_ID_KEY: &str = "requestId";
/// The key of the EventBridge Scheduler metadata block; stripped before parsing.
pub const SCHEDULER_KEY: &str = "scheduler";
/// The key with which any request asks for a dry run. Read here, for every function alike, so that no function can
/// forget it; left in the request, whose type still declares and type-checks it.
pub const DRY_RUN_KEY: &str = "dryRun";

const ACCEPTED_SHAPES: &str = "an SNS event (Records[].EventSource = aws:sns), an S3 event notification \
(Records[].eventSource = aws:s3), an EventBridge Scheduled Event (source aws.events), an EventBridge S3 Object Created \
event (source aws.s3), EventBridge Scheduler input (the request with a `scheduler` block), a Secrets Manager rotation \
step (SecretId, ClientRequestToken, Step), or the function's request as a JSON object";

/// The function's request type. Functions deny unknown fields so that a typo is an error naming the field.
pub trait Request: DeserializeOwned {
    /// Whether a JSON document is an AWS notification the function handles itself (an SNS message body such as an
    /// Image Builder build notification, or a whole EventBridge event) rather than a request.
    fn is_notification(_document: &Value) -> bool {
        false
    }

    /// What a notification announces, when two deliveries can announce the same thing in different envelopes (an
    /// Image Builder build's EventBridge state change and its SNS message). The host keys the event guard on it and
    /// validates the redelivery against it, so whichever arrives second is a replay of the first.
    fn announces(_document: &Value) -> Option<String> {
        None
    }
}

/// A payload the trigger cannot accept. Always `Permanent.InvalidInput`: the same payload fails the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TriggerError {
    #[error("payload is {size} bytes, larger than the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("payload is not JSON: {0}")]
    NotJson(String),
    #[error("payload is not a recognised event ({found}); accepted: {ACCEPTED_SHAPES}")]
    UnknownShape { found: String },
    #[error("{envelope} is malformed at `{path}`: {message}")]
    BadEnvelope { envelope: &'static str, path: String, message: String },
    #[error("request is invalid at `{path}` ({location}): {message}")]
    InvalidRequest { location: String, path: String, message: String },
}

impl Classify for TriggerError {
    fn error_type(&self) -> ErrorType {
        ErrorType::INVALID_INPUT
    }
}

/// What invoked the function.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger<R> {
    Schedule(Schedule<R>),
    Sns(Vec<SnsRecord<R>>),
    S3(Vec<S3Object>),
    /// An EventBridge event (other than a schedule or S3) that the function recognises.
    Event(Notification),
    /// Secrets Manager calling its rotation function for one step of a rotation.
    Rotation(Rotation),
    Manual(Manual<R>),
}

/// One step of a Secrets Manager rotation, as Secrets Manager invokes the rotation function: the secret, the version
/// the rotation makes (its `ClientRequestToken`, the version id) and the step. Secrets Manager calls a step again
/// after a failure or a timeout, with the same three.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The secret's ARN (or name, sent by hand).
    pub secret_id: String,
    /// The version id of the secret version this rotation makes.
    pub token: String,
    pub step: RotationStep,
    /// Sent by Secrets Manager for rotations whose function assumes a role: PutSecretValue must quote it.
    pub rotation_token: Option<String>,
}

/// The four steps of a rotation, in the order Secrets Manager calls them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RotationStep {
    CreateSecret,
    SetSecret,
    TestSecret,
    FinishSecret,
}

impl RotationStep {
    pub const ALL: [RotationStep; 4] =
        [RotationStep::CreateSecret, RotationStep::SetSecret, RotationStep::TestSecret, RotationStep::FinishSecret];

    /// The step's name on the wire (`createSecret` ...).
    pub fn as_str(self) -> &'static str {
        match self {
            RotationStep::CreateSecret => "createSecret",
            RotationStep::SetSecret => "setSecret",
            RotationStep::TestSecret => "testSecret",
            RotationStep::FinishSecret => "finishSecret",
        }
    }
}

/// A scheduled run: an EventBridge rule (no request: the function runs on its settings) or EventBridge Scheduler
/// (the schedule's input as the request).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule<R> {
    pub event_id: String,
    pub time: Option<String>,
    /// The rule or schedule ARN(s), for the log.
    pub resources: Vec<String>,
    pub request: Option<R>,
    /// The Scheduler input has `"dryRun": true`.
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SnsRecord<R> {
    pub message_id: String,
    /// What the message announces ([`Request::announces`]), when it is a notification the function names.
    pub announces: Option<String>,
    pub topic_arn: String,
    pub subject: Option<String>,
    pub timestamp: String,
    pub message: SnsMessage<R>,
    /// The message is a request with `"dryRun": true`.
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SnsMessage<R> {
    Request(R),
    /// An AWS notification the function recognised (see [`Request::is_notification`]).
    Notification(Value),
}

/// One object named by an S3 notification, direct or through EventBridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Object {
    pub event_id: String,
    pub bucket: String,
    /// URL-decoded (direct notifications encode keys like a form: `+` for a space, `%2F` ...).
    pub key: String,
    pub size: Option<i64>,
    pub version_id: Option<String>,
    pub etag: Option<String>,
    pub sequencer: Option<String>,
    /// `ObjectCreated:Put` (direct) or `Object Created` (EventBridge).
    pub event_name: String,
    pub event_time: Option<String>,
    pub region: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    /// EventBridge's id.
    pub event_id: String,
    /// What the event announces ([`Request::announces`]), when the function names it: the event id then.
    pub announces: Option<String>,
    pub source: String,
    pub detail_type: String,
    pub time: Option<String>,
    /// The whole event, for the function to parse.
    pub document: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Manual<R> {
    pub event_id: String,
    pub request: R,
    /// The request has `"dryRun": true`.
    pub dry_run: bool,
    /// The sender named it with a `requestId`: the same name is the same request, whenever it is sent again.
    pub named: bool,
}

/// One unit of work a trigger carries, whatever envelope it came in: what a function's pipeline matches on.
#[derive(Debug, Clone, PartialEq)]
pub enum Input<R> {
    /// A request sent by hand or in an SNS message.
    Request(R),
    /// A schedule firing: an EventBridge rule (no request) or EventBridge Scheduler (its input).
    Schedule(Option<R>),
    /// An AWS notification the function recognised: an SNS message body or a whole EventBridge event.
    Notification(Value),
    /// An object an S3 notification names.
    Object(S3Object),
    /// A step of a Secrets Manager rotation.
    Rotation(Rotation),
}

impl<R> Input<R> {
    /// What it is, for an error that refuses it.
    pub fn kind(&self) -> &'static str {
        match self {
            Input::Request(_) => "a request",
            Input::Schedule(_) => "a schedule",
            Input::Notification(_) => "an AWS notification",
            Input::Object(_) => "an S3 upload",
            Input::Rotation(_) => "a Secrets Manager rotation step",
        }
    }
}

impl<R> Trigger<R> {
    /// The idempotency key of the whole invocation. Lambda delivers one SNS or S3 record per invocation in practice;
    /// when there are several, the key covers all of them.
    pub fn event_id(&self) -> String {
        fn combined<'a>(prefix: &str, mut ids: impl ExactSizeIterator<Item = &'a str>) -> String {
            if ids.len() == 1 {
                ids.next().unwrap_or_default().to_string()
            } else {
                let joined: Vec<&str> = ids.collect();
                format!("{prefix}-{}", sha256_hex(joined.join("\n").as_bytes()))
            }
        }
        match self {
            Trigger::Schedule(s) => s.event_id.clone(),
            Trigger::Sns(records) => {
                combined("sns", records.iter().map(|r| r.announces.as_deref().unwrap_or(&r.message_id)))
            }
            Trigger::S3(objects) => combined("s3", objects.iter().map(|o| o.event_id.as_str())),
            Trigger::Event(n) => n.announces.clone().unwrap_or_else(|| n.event_id.clone()),
            // Secrets Manager's call of a step again (after a failure or a timeout) is the same event; the secret is
            // in it because a token is only unique within its secret.
            Trigger::Rotation(r) => {
                let secret = sha256_hex(r.secret_id.as_bytes());
                format!("rotation-{}-{}-{}", r.step.as_str(), r.token, &secret[..16])
            }
            Trigger::Manual(m) => m.event_id.clone(),
        }
    }

    /// Which delivery this is, whatever it announces: the envelopes' own ids (the SNS `MessageId`s, the EventBridge
    /// `id`), so that two deliveries of one announcement tell each other apart while a retry of one keeps its id.
    pub fn delivery_id(&self) -> String {
        match self {
            Trigger::Sns(records) => records.iter().map(|r| r.message_id.as_str()).collect::<Vec<_>>().join("\n"),
            Trigger::Event(n) => n.event_id.clone(),
            other => other.event_id(),
        }
    }

    /// What the event guard validates a redelivery against: when everything the trigger carries is an announcement
    /// the function names, the announcements, so one build announced through EventBridge and again through SNS is
    /// the same event with the same payload; otherwise `None`, and the guard validates the raw payload.
    pub fn announced(&self) -> Option<Value> {
        let ids: Option<Vec<&str>> = match self {
            Trigger::Event(n) => n.announces.as_deref().map(|a| vec![a]),
            Trigger::Sns(records) => records.iter().map(|r| r.announces.as_deref()).collect(),
            _ => None,
        };
        ids.map(|ids| serde_json::json!({ "announces": ids }))
    }

    /// Whether any request in the trigger asks for a dry run (`"dryRun": true`). A request can turn dry run on,
    /// never off: the host ORs this with `DRY_RUN` once per invocation.
    pub fn asks_for_dry_run(&self) -> bool {
        match self {
            Trigger::Schedule(s) => s.dry_run,
            Trigger::Sns(records) => records.iter().any(|r| r.dry_run),
            Trigger::Manual(m) => m.dry_run,
            Trigger::S3(_) | Trigger::Event(_) | Trigger::Rotation(_) => false,
        }
    }

    /// The units of work, in delivery order, without their envelopes.
    pub fn into_inputs(self) -> Vec<Input<R>> {
        match self {
            Trigger::Schedule(s) => vec![Input::Schedule(s.request)],
            Trigger::Sns(records) => records
                .into_iter()
                .map(|r| match r.message {
                    SnsMessage::Request(request) => Input::Request(request),
                    SnsMessage::Notification(document) => Input::Notification(document),
                })
                .collect(),
            Trigger::S3(objects) => objects.into_iter().map(Input::Object).collect(),
            Trigger::Event(n) => vec![Input::Notification(n.document)],
            Trigger::Rotation(r) => vec![Input::Rotation(r)],
            Trigger::Manual(m) => vec![Input::Request(m.request)],
        }
    }

    /// Who waits for the answer, which decides how a permanent failure is returned.
    pub fn caller(&self) -> Caller {
        match self {
            Trigger::Manual(_) => Caller::ByHand,
            Trigger::Rotation(_) => Caller::SecretsManager,
            _ => Caller::EventSource,
        }
    }

    /// A short name of the source for logs and reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Trigger::Schedule(_) => "schedule",
            Trigger::Sns(_) => "sns",
            Trigger::S3(_) => "s3",
            Trigger::Event(_) => "eventbridge",
            Trigger::Rotation(_) => "secretsmanager",
            Trigger::Manual(_) => "manual",
        }
    }
}

/// Parses raw payload bytes: the size bound first, then JSON, then the shape.
pub fn parse_slice<R: Request>(payload: &[u8]) -> Result<Trigger<R>, TriggerError> {
    check_size(payload.len())?;
    let value: Value = serde_json::from_slice(payload).map_err(|e| TriggerError::NotJson(e.to_string()))?;
    parse_checked(value)
}

/// Parses a payload the Lambda runtime already decoded; its size is measured as compact JSON.
pub fn parse<R: Request>(payload: Value) -> Result<Trigger<R>, TriggerError> {
    check_size(canonical_json(&payload).len())?;
    parse_checked(payload)
}

fn check_size(size: usize) -> Result<(), TriggerError> {
    if size > MAX_PAYLOAD_BYTES {
        return Err(TriggerError::TooLarge { size, limit: MAX_PAYLOAD_BYTES });
    }
    Ok(())
}

fn parse_checked<R: Request>(payload: Value) -> Result<Trigger<R>, TriggerError> {
    let Value::Object(object) = payload else {
        return Err(TriggerError::UnknownShape { found: format!("a JSON {}", json_kind(&payload)) });
    };
    if let Some(records) = object.get("Records") {
        return parse_records(records, Value::Object(object.clone()));
    }
    if object.contains_key("detail-type") && object.contains_key("source") {
        return parse_eventbridge(Value::Object(object));
    }
    if object.contains_key(SCHEDULER_KEY) {
        return parse_scheduler(object);
    }
    if object.contains_key("Step") && object.contains_key("SecretId") {
        return parse_rotation(Value::Object(object));
    }
    parse_manual(object)
}

fn parse_records<R: Request>(records: &Value, whole: Value) -> Result<Trigger<R>, TriggerError> {
    let first = records.as_array().and_then(|r| r.first());
    let source = first.and_then(|r| r.get("EventSource").or_else(|| r.get("eventSource"))).and_then(Value::as_str);
    match source {
        Some("aws:sns") => parse_sns(whole),
        Some("aws:s3") => parse_s3(whole),
        Some(other) => Err(TriggerError::UnknownShape { found: format!("Records from event source `{other}`") }),
        None => Err(TriggerError::UnknownShape { found: "a Records list without an event source".into() }),
    }
}

fn envelope<T: DeserializeOwned>(envelope: &'static str, value: Value) -> Result<T, TriggerError> {
    serde_path_to_error::deserialize(value).map_err(|e| TriggerError::BadEnvelope {
        envelope,
        path: e.path().to_string(),
        message: e.inner().to_string(),
    })
}

/// Secrets Manager's event, exactly: a field it never sends is refused, so a request by hand that happens to have a
/// `Step` is not taken for a rotation.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotationEvent {
    #[serde(rename = "SecretId")]
    secret_id: String,
    #[serde(rename = "ClientRequestToken")]
    client_request_token: String,
    #[serde(rename = "Step")]
    step: RotationStep,
    #[serde(rename = "RotationToken", default)]
    rotation_token: Option<String>,
}

fn parse_rotation<R>(whole: Value) -> Result<Trigger<R>, TriggerError> {
    let event: RotationEvent = envelope("Secrets Manager rotation event", whole)?;
    let blank = |path: &str| TriggerError::BadEnvelope {
        envelope: "Secrets Manager rotation event",
        path: path.into(),
        message: "is empty".into(),
    };
    if event.secret_id.trim().is_empty() {
        return Err(blank("SecretId"));
    }
    if event.client_request_token.trim().is_empty() {
        return Err(blank("ClientRequestToken"));
    }
    Ok(Trigger::Rotation(Rotation {
        secret_id: event.secret_id,
        token: event.client_request_token,
        step: event.step,
        rotation_token: event.rotation_token.filter(|t| !t.is_empty()),
    }))
}

fn parse_sns<R: Request>(whole: Value) -> Result<Trigger<R>, TriggerError> {
    let event: SnsEvent = envelope("SNS event", whole)?;
    let mut out = Vec::with_capacity(event.records.len());
    for (i, record) in event.records.into_iter().enumerate() {
        if record.event_source != "aws:sns" {
            return Err(TriggerError::BadEnvelope {
                envelope: "SNS event",
                path: format!("Records[{i}].EventSource"),
                message: format!("`{}` in an SNS event", record.event_source),
            });
        }
        let location = format!("Records[{i}].Sns.Message");
        let sns = record.sns;
        let document: Value = serde_json::from_str(&sns.message).map_err(|e| TriggerError::InvalidRequest {
            location: location.clone(),
            path: ".".into(),
            message: format!("the SNS message is not JSON: {e}"),
        })?;
        let dry_run = asks_for_dry_run(&document);
        let mut announces = None;
        let message = if R::is_notification(&document) {
            announces = R::announces(&document);
            SnsMessage::Notification(document)
        } else {
            let Value::Object(object) = document else {
                return Err(TriggerError::InvalidRequest {
                    location,
                    path: ".".into(),
                    message: format!("the SNS message is a JSON {}, not a request object", json_kind(&document)),
                });
            };
            let (_, request) = request_from(object, &location)?;
            SnsMessage::Request(request)
        };
        out.push(SnsRecord {
            message_id: sns.message_id,
            announces,
            topic_arn: sns.topic_arn,
            subject: sns.subject,
            timestamp: sns.timestamp.to_rfc3339(),
            dry_run: dry_run && matches!(message, SnsMessage::Request(_)),
            message,
        });
    }
    if out.is_empty() {
        return Err(TriggerError::BadEnvelope {
            envelope: "SNS event",
            path: "Records".into(),
            message: "no records".into(),
        });
    }
    Ok(Trigger::Sns(out))
}

fn parse_s3<R>(whole: Value) -> Result<Trigger<R>, TriggerError> {
    let event: S3Event = envelope("S3 event", whole)?;
    let mut out = Vec::with_capacity(event.records.len());
    for (i, record) in event.records.into_iter().enumerate() {
        let missing = |what: &str| TriggerError::BadEnvelope {
            envelope: "S3 event",
            path: format!("Records[{i}].s3.{what}"),
            message: "missing".into(),
        };
        let object = record.s3.object;
        let bucket = record.s3.bucket.name.ok_or_else(|| missing("bucket.name"))?;
        let raw_key = object.key.ok_or_else(|| missing("object.key"))?;
        let key = decode_s3_key(&raw_key).map_err(|message| TriggerError::BadEnvelope {
            envelope: "S3 event",
            path: format!("Records[{i}].s3.object.key"),
            message,
        })?;
        out.push(s3_object(S3Object {
            event_id: String::new(),
            bucket,
            key,
            size: object.size,
            version_id: object.version_id.filter(|v| !v.is_empty()),
            etag: object.e_tag.filter(|v| !v.is_empty()),
            sequencer: object.sequencer.filter(|v| !v.is_empty()),
            event_name: record.event_name.unwrap_or_default(),
            event_time: Some(record.event_time.to_rfc3339()),
            region: record.aws_region,
        }));
    }
    if out.is_empty() {
        return Err(TriggerError::BadEnvelope {
            envelope: "S3 event",
            path: "Records".into(),
            message: "no records".into(),
        });
    }
    Ok(Trigger::S3(out))
}

/// The event id of an object: the same upload always gives the same id, a new upload of the same key a new one.
/// The version id names an upload in a versioned bucket; otherwise the sequencer orders events of one key.
fn s3_object(mut object: S3Object) -> S3Object {
    let discriminator = object
        .version_id
        .as_deref()
        .map(|v| format!("version={v}"))
        .or_else(|| object.sequencer.as_deref().map(|s| format!("sequencer={s}")))
        .or_else(|| object.etag.as_deref().map(|e| format!("etag={e}")))
        .unwrap_or_default();
    object.event_id = format!("s3://{}/{}#{discriminator}", object.bucket, object.key);
    object
}

/// S3 notifications encode the key like an HTML form value: `+` is a space, `%XX` a byte.
fn decode_s3_key(raw: &str) -> Result<String, String> {
    let plus_decoded = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_decoded)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|e| format!("not UTF-8 once decoded: {e}"))
}

/// The `detail` of S3's EventBridge events: keys are not URL-encoded there.
#[derive(Deserialize)]
struct S3EventBridgeDetail {
    bucket: S3EventBridgeBucket,
    object: S3EventBridgeObject,
}

#[derive(Deserialize)]
struct S3EventBridgeBucket {
    name: String,
}

#[derive(Deserialize)]
struct S3EventBridgeObject {
    key: String,
    size: Option<i64>,
    etag: Option<String>,
    #[serde(rename = "version-id")]
    version_id: Option<String>,
    sequencer: Option<String>,
}

fn parse_eventbridge<R: Request>(whole: Value) -> Result<Trigger<R>, TriggerError> {
    let event: EventBridgeEvent<Value> = envelope("EventBridge event", whole.clone())?;
    let id = event.id.clone().filter(|id| !id.is_empty());
    let time = event.time.map(|t| t.to_rfc3339());
    let missing_id =
        || TriggerError::BadEnvelope { envelope: "EventBridge event", path: "id".into(), message: "missing".into() };
    match (event.source.as_str(), event.detail_type.as_str()) {
        ("aws.events", "Scheduled Event") => Ok(Trigger::Schedule(Schedule {
            event_id: id.ok_or_else(missing_id)?,
            time,
            resources: event.resources.unwrap_or_default(),
            request: None,
            dry_run: false,
        })),
        ("aws.s3", "Object Created") => {
            let detail: S3EventBridgeDetail = envelope("EventBridge S3 event", event.detail)?;
            id.ok_or_else(missing_id)?;
            Ok(Trigger::S3(vec![s3_object(S3Object {
                event_id: String::new(),
                bucket: detail.bucket.name,
                key: detail.object.key,
                size: detail.object.size,
                version_id: detail.object.version_id.filter(|v| !v.is_empty()),
                etag: detail.object.etag.filter(|v| !v.is_empty()),
                sequencer: detail.object.sequencer.filter(|v| !v.is_empty()),
                event_name: event.detail_type,
                event_time: time,
                region: event.region,
            })]))
        }
        (source, detail_type) if R::is_notification(&whole) => {
            let announces = R::announces(&whole);
            // What is announced names the event; EventBridge's id is needed only when nothing is.
            let event_id = if announces.is_some() { id.unwrap_or_default() } else { id.ok_or_else(missing_id)? };
            Ok(Trigger::Event(Notification {
                event_id,
                announces,
                source: source.to_string(),
                detail_type: detail_type.to_string(),
                time,
                document: whole,
            }))
        }
        (source, detail_type) => {
            Err(TriggerError::UnknownShape { found: format!("an EventBridge `{detail_type}` event from `{source}`") })
        }
    }
}

/// What the schedules in template.yaml put into their input from the scheduler's context attributes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SchedulerBlock {
    /// `<aws.scheduler.execution-id>`: one per ATTEMPT (a retry by the scheduler gets a new one), so it keys a firing
    /// only when the schedule ARN or the scheduled time is missing.
    execution_id: String,
    /// `<aws.scheduler.scheduled-time>`.
    scheduled_time: Option<String>,
    /// `<aws.scheduler.schedule-arn>`.
    schedule_arn: Option<String>,
}

fn parse_scheduler<R: Request>(mut object: Map<String, Value>) -> Result<Trigger<R>, TriggerError> {
    let block = object.remove(SCHEDULER_KEY).unwrap_or(Value::Null);
    let block: SchedulerBlock = serde_path_to_error::deserialize(block).map_err(|e| TriggerError::InvalidRequest {
        location: "EventBridge Scheduler input".into(),
        path: format!("{SCHEDULER_KEY}.{}", e.path()),
        message: e.inner().to_string(),
    })?;
    if block.execution_id.trim().is_empty() || block.execution_id.starts_with("<aws.scheduler") {
        return Err(TriggerError::InvalidRequest {
            location: "EventBridge Scheduler input".into(),
            path: format!("{SCHEDULER_KEY}.executionId"),
            message: "must be the scheduler's `<aws.scheduler.execution-id>`, filled in by EventBridge Scheduler"
                .into(),
        });
    }
    let dry_run = asks_for_dry_run(&Value::Object(object.clone()));
    let (_, request) = request_from(object, "EventBridge Scheduler input")?;
    // One firing is one event: the schedule and its scheduled time name it across the scheduler's retries.
    let filled = |v: &Option<String>| {
        v.as_deref().map(str::trim).filter(|v| !v.is_empty() && !v.starts_with("<aws.scheduler")).map(String::from)
    };
    let event_id = match (filled(&block.schedule_arn), filled(&block.scheduled_time)) {
        (Some(arn), Some(time)) => format!("scheduler:{arn}@{time}"),
        _ => format!("scheduler:{}", block.execution_id),
    };
    Ok(Trigger::Schedule(Schedule {
        event_id,
        time: block.scheduled_time,
        resources: block.schedule_arn.into_iter().collect(),
        request: Some(request),
        dry_run,
    }))
}

fn parse_manual<R: Request>(object: Map<String, Value>) -> Result<Trigger<R>, TriggerError> {
    let whole = Value::Object(object.clone());
    let canonical_hash = sha256_hex(canonical_json(&whole).as_bytes());
    let dry_run = asks_for_dry_run(&whole);
    let (request_id, request) = request_from(object, "request")?;
    let event_id = match &request_id {
        Some(id) => format!("manual:{id}"),
        None => format!("manual-{canonical_hash}"),
    };
    let named = request_id.is_some();
    Ok(Trigger::Manual(Manual { event_id, request, dry_run, named }))
}

/// Splits off the optional `requestId` and parses the rest as the function's request, naming the failing field.
fn request_from<R: Request>(
    mut object: Map<String, Value>,
    location: &str,
) -> Result<(Option<String>, R), TriggerError> {
    let request_id = match object.remove(REQUEST_ID_KEY) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 256 => Some(s),
        Some(_) => {
            return Err(TriggerError::InvalidRequest {
                location: location.into(),
                path: REQUEST_ID_KEY.into(),
                message: "must be a non-empty string of at most 256 characters".into(),
            });
        }
    };
    let request =
        serde_path_to_error::deserialize(Value::Object(object)).map_err(|e| TriggerError::InvalidRequest {
            location: location.into(),
            path: e.path().to_string(),
            message: e.inner().to_string(),
        })?;
    Ok((request_id, request))
}

/// `"dryRun": true` in a request document; anything else (absent, false, not a boolean) asks for no dry run, and the
/// request's own type refuses a value that is not a boolean.
fn asks_for_dry_run(document: &Value) -> bool {
    document.get(DRY_RUN_KEY) == Some(&Value::Bool(true))
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests;
