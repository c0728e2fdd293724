//! A minimal keeper Lambda on the shared pipeline: it parses the trigger, takes the event guard and reports what it
//! read, changing nothing. Used to measure the release profile (bootstrap size, cold start) and to see how keeper
//! reads an event source before trusting a real function with it.

use lambda_runtime::{LambdaEvent, service_fn};
use serde::Deserialize;
use serde_json::{Map, Value};
use shared::config::{Lookup, Settings};
use shared::invocation::{Context, Runtime, deadline_of};
use shared::report::{Action, Outcome, Report};
use shared::trigger::{Request, SnsMessage, Trigger};

/// Any JSON object is a request; any EventBridge event is a notification.
#[derive(Debug, Deserialize)]
struct AnyRequest(Map<String, Value>);

impl Request for AnyRequest {
    fn is_notification(_document: &Value) -> bool {
        true
    }
}

async fn describe(trigger: Trigger<AnyRequest>, ctx: Context) -> Result<Report, std::convert::Infallible> {
    let mut report = Report::new(ctx.function, ctx.event_id, true);
    let mut seen = |target: String, detail: String| report.push(Action::new(target, "read", Outcome::Skipped, detail));
    match trigger {
        Trigger::Schedule(s) => {
            seen(s.resources.join(","), format!("schedule at {:?}, request: {}", s.time, s.request.is_some()))
        }
        Trigger::Sns(records) => records.into_iter().for_each(|r| {
            let kind = match r.message {
                SnsMessage::Request(_) => "request",
                SnsMessage::Notification(_) => "notification",
            };
            seen(r.topic_arn, format!("SNS {kind} {}", r.message_id))
        }),
        Trigger::S3(objects) => {
            objects.into_iter().for_each(|o| seen(format!("s3://{}/{}", o.bucket, o.key), o.event_name))
        }
        Trigger::Event(n) => seen(n.source, n.detail_type),
        Trigger::Manual(m) => seen("manual".into(), format!("{} field(s)", m.request.0.len())),
    }
    Ok(report)
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let lookup = Lookup::env();
    shared::telemetry::init(&lookup);
    let settings = Settings::from_lookup(&lookup)?;
    let sdk_config = shared::clients::sdk_config(&settings).await;
    let runtime = Runtime::from_settings("trigger-probe", settings, &sdk_config);
    let runtime = &runtime;
    // `trigger_probe EVENT.json`: one event, in process, the report on stdout. Without an argument: a Lambda.
    if let Some(path) = std::env::args().nth(1) {
        let payload: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        let answer = runtime.handle(payload, None, describe).await;
        match answer {
            Ok(report) => println!("{}", serde_json::to_string_pretty(&report)?),
            Err(diagnostic) => println!("{}: {}", diagnostic.error_type, diagnostic.error_message),
        }
        return Ok(());
    }
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        runtime.handle(event.payload, deadline_of(&event.context), describe).await
    }))
    .await
}
