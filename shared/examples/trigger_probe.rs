//! A minimal keeper function on the shared host: it parses the trigger, takes the event guard and reports what it
//! read, changing nothing. Used to measure the release profile (bootstrap size, cold start) and to see how keeper
//! reads an event source before trusting a real function with it.

use aws_types::SdkConfig;
use serde::Deserialize;
use serde_json::{Map, Value};
use shared::config::{Lookup, Settings};
use shared::host::{Context, Function, Host};
use shared::report::{Action, Outcome, Report};
use shared::trigger::{Input, Request, SnsMessage, Trigger};

/// Any JSON object is a request; any EventBridge event is a notification.
#[derive(Debug, Deserialize)]
struct AnyRequest(Map<String, Value>);

impl Request for AnyRequest {
    fn is_notification(_document: &Value) -> bool {
        true
    }
}

struct TriggerProbe;

impl Function for TriggerProbe {
    type Verb = shared::report::NoVerbs;
    const NAME: &'static str = "trigger-probe";
    type Request = AnyRequest;
    type Settings = ();
    type Error = std::convert::Infallible;

    fn new(_sdk_config: &SdkConfig, _shared: &Settings, _settings: ()) -> Self {
        TriggerProbe
    }

    async fn run(
        &self,
        inputs: Vec<Input<AnyRequest>>,
        _ctx: &Context,
        report: &mut Report,
    ) -> Result<(), Self::Error> {
        for input in inputs {
            let (target, detail) = match input {
                Input::Schedule(request) => ("schedule".to_string(), format!("request: {}", request.is_some())),
                Input::Request(r) => ("request".to_string(), format!("{} field(s)", r.0.len())),
                Input::Notification(n) => {
                    let field = |k: &str| n.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                    (field("source"), field("detail-type"))
                }
                Input::Object(o) => (format!("s3://{}/{}", o.bucket, o.key), o.event_name),
                Input::Rotation(r) => (r.secret_id, format!("{} of version {}", r.step.as_str(), r.token)),
            };
            report.push(Action::new(target, "read", Outcome::Skipped, detail));
        }
        Ok(())
    }
}

/// What the envelope says, which the inputs a function gets no longer carry: a schedule's time and resources, an SNS
/// record's topic and message id, an S3 record's event, an EventBridge event's source.
fn envelope(trigger: Trigger<AnyRequest>) -> Vec<(String, String)> {
    match trigger {
        Trigger::Schedule(s) => {
            vec![(s.resources.join(","), format!("schedule at {:?}, request: {}", s.time, s.request.is_some()))]
        }
        Trigger::Sns(records) => records
            .into_iter()
            .map(|r| {
                let kind = match r.message {
                    SnsMessage::Request(_) => "request",
                    SnsMessage::Notification(_) => "notification",
                };
                (r.topic_arn, format!("SNS {kind} {}", r.message_id))
            })
            .collect(),
        Trigger::S3(objects) => {
            objects.into_iter().map(|o| (format!("s3://{}/{}", o.bucket, o.key), o.event_name)).collect()
        }
        Trigger::Event(n) => vec![(n.source, n.detail_type)],
        Trigger::Rotation(r) => vec![(r.secret_id, format!("Secrets Manager {}", r.step.as_str()))],
        Trigger::Manual(m) => vec![("manual".into(), format!("{} field(s)", m.request.0.len()))],
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // `trigger_probe EVENT.json`: one event, in process, the report on stdout. Without an argument: a Lambda.
    let Some(path) = std::env::args().nth(1) else { return shared::host::serve::<TriggerProbe>().await };
    let lookup = Lookup::env();
    shared::telemetry::init(&lookup);
    let host = Host::<TriggerProbe>::from_lookup(&lookup).await?;
    let payload: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    if let Ok(trigger) = shared::trigger::parse::<AnyRequest>(payload.clone()) {
        for (target, detail) in envelope(trigger) {
            println!("envelope: {target}: {detail}");
        }
    }
    match host.handle(payload, None).await {
        Ok(report) => println!("{}", serde_json::to_string_pretty(&report)?),
        Err(diagnostic) => println!("{}: {}", diagnostic.error_type, diagnostic.error_message),
    }
    Ok(())
}
