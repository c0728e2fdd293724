//! Reliability properties: whatever JSON arrives, each function's trigger parser answers (a trigger or a refusal)
//! without panicking, and answers the same way twice, so a redelivery gets the same event id and the same guard
//! record. Payloads are generated from the members keeper's envelopes and requests use, so the generator reaches the
//! parsers' inner paths rather than stopping at the first unknown shape.

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use shared::trigger::{Request, parse};

/// The members keeper reads, and a few it does not, as object keys.
const KEYS: &[&str] = &[
    "Records",
    "EventSource",
    "eventSource",
    "EventVersion",
    "EventSubscriptionArn",
    "Sns",
    "Message",
    "MessageId",
    "TopicArn",
    "Timestamp",
    "Type",
    "s3",
    "bucket",
    "object",
    "key",
    "name",
    "versionId",
    "sequencer",
    "eventName",
    "eventTime",
    "awsRegion",
    "detail-type",
    "source",
    "id",
    "time",
    "region",
    "resources",
    "detail",
    "state",
    "status",
    "scheduler",
    "executionId",
    "scheduledTime",
    "scheduleArn",
    "requestId",
    "dryRun",
    "action",
    "names",
    "keyGroupId",
    "addPublicKeyPem",
    "maxKeys",
    "distributionConfigurationArn",
    "addRegions",
    "resourceArn",
    "versionlessArn",
    "arn",
    "x",
    "",
];

/// Strings that mean something to a parser: event sources, detail types, placeholders, ARNs, dates.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("aws:sns".to_string()),
        Just("aws:s3".to_string()),
        Just("aws.events".to_string()),
        Just("aws.s3".to_string()),
        Just("aws.imagebuilder".to_string()),
        Just("Scheduled Event".to_string()),
        Just("Object Created".to_string()),
        Just("EC2 Image Builder Image State Change".to_string()),
        Just("<aws.scheduler.execution-id>".to_string()),
        Just("2026-11-23T06:02:11Z".to_string()),
        Just("arn:aws:imagebuilder:us-east-1:123456789012:image/web-golden/1.2.0/3".to_string()),
        Just("{\"action\":\"start\"}".to_string()),
        "[ -~]{0,16}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|entries| {
                Value::Object(entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect::<Map<_, _>>())
            }),
        ]
    })
}

/// A generated value, bare or inside one of the envelopes (so that the envelope parsers see generated members).
fn payload() -> impl Strategy<Value = Value> {
    (json_value(), json_value(), 0..5u8).prop_map(|(a, b, shape)| match shape {
        0 => a,
        1 => json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "s",
            "Sns": {"Type": "Notification", "MessageId": "m", "TopicArn": "t", "Timestamp": "2026-11-23T06:02:12.000Z",
                    "SignatureVersion": "1", "Signature": "x", "SigningCertUrl": "x", "UnsubscribeUrl": "x",
                    "Message": a.to_string(), "MessageAttributes": b}}]}),
        2 => json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "eventTime": "2026-11-23T06:02:12.000Z",
            "s3": {"bucket": {"name": "b"}, "object": a}}], "extra": b}),
        3 => json!({"version": "0", "id": "e", "detail-type": "EC2 Image Builder Image State Change",
            "source": "aws.imagebuilder", "time": "2026-11-23T06:02:11Z", "region": "us-east-1", "resources": a, "detail": b}),
        _ => json!({"scheduler": a, "action": b}),
    })
}

/// Parses twice: never a panic (proptest reports one as a failure), and the same answer both times.
fn holds<R: Request + std::fmt::Debug>(payload: &Value) -> Result<(), TestCaseError> {
    let first = parse::<R>(payload.clone()).map(|t| t.event_id());
    let second = parse::<R>(payload.clone()).map(|t| t.event_id());
    prop_assert_eq!(&first, &second);
    if let Ok(id) = first {
        prop_assert!(!id.is_empty(), "an accepted trigger has an event id");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn given_any_json_when_parsed_by_each_function_then_no_panic_and_the_same_answer_twice(payload in payload()) {
        holds::<start_idle_image_builders::config::Request>(&payload)?;
        holds::<rotate_key_group::config::Request>(&payload)?;
        holds::<update_distribution_regions::config::Request>(&payload)?;
        holds::<update_image_lifecycle::config::Request>(&payload)?;
    }
}
