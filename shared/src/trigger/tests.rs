//! Trigger parsing against AWS's published sample events and broken variants of them.

use serde::Deserialize;
use serde_json::{Value, json};

use super::*;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Req {
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    dry_run: bool,
}

impl Request for Req {
    fn is_notification(document: &Value) -> bool {
        document.get("source").and_then(Value::as_str) == Some("aws.ec2") || document.get("versionlessArn").is_some()
    }
}

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/aws/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).expect(&path)).expect(&path)
}

#[test]
fn given_eventbridge_scheduled_event_when_parsed_then_schedule_without_request_keyed_by_event_id() {
    let trigger = parse::<Req>(fixture("eventbridge-scheduled-event.json")).unwrap();
    let Trigger::Schedule(schedule) = &trigger else { panic!("{trigger:?}") };
    assert_eq!(schedule.event_id, "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa");
    assert_eq!(schedule.time.as_deref(), Some("2015-10-08T16:53:06+00:00"));
    assert_eq!(schedule.resources, vec!["arn:aws:events:us-east-1:123456789012:rule/my-scheduled-rule"]);
    assert_eq!(schedule.request, None);
    assert_eq!(trigger.event_id(), "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa");
    assert_eq!(trigger.caller(), Caller::EventSource);
}

const START_SCHEDULE: &str = "arn:aws:scheduler:us-east-1:123456789012:schedule/default/start";

#[test]
fn given_scheduler_input_with_context_attributes_when_parsed_then_the_firing_is_the_event_id() {
    let payload = json!({
        "names": ["b1"],
        "scheduler": {"executionId": "a1b2c3-exec", "scheduledTime": "2026-11-23T07:00:00Z", "scheduleArn": START_SCHEDULE}
    });
    let trigger = parse::<Req>(payload).unwrap();
    let Trigger::Schedule(schedule) = &trigger else { panic!("{trigger:?}") };
    assert_eq!(trigger.event_id(), format!("scheduler:{START_SCHEDULE}@2026-11-23T07:00:00Z"));
    assert_eq!(schedule.time.as_deref(), Some("2026-11-23T07:00:00Z"));
    assert_eq!(schedule.request, Some(Req { names: vec!["b1".into()], dry_run: false }));
}

#[test]
fn given_two_attempts_of_one_firing_when_parsed_then_one_event_id_and_two_firings_get_two() {
    // EventBridge Scheduler gives every attempt its own execution id: a retried firing must still be one event.
    let firing = |exec: &str, time: &str| json!({"scheduler": {"executionId": exec, "scheduledTime": time, "scheduleArn": START_SCHEDULE}});
    let first_attempt = parse::<Req>(firing("exec-1", "2026-11-23T07:00:00Z")).unwrap().event_id();
    let retry = parse::<Req>(firing("exec-2", "2026-11-23T07:00:00Z")).unwrap().event_id();
    let next_day = parse::<Req>(firing("exec-3", "2026-11-24T07:00:00Z")).unwrap().event_id();
    assert_eq!(first_attempt, retry);
    assert_ne!(first_attempt, next_day);
    let other_schedule = json!({"scheduler": {"executionId": "exec-4", "scheduledTime": "2026-11-23T07:00:00Z",
        "scheduleArn": "arn:aws:scheduler:us-east-1:123456789012:schedule/default/stop"}});
    assert_ne!(first_attempt, parse::<Req>(other_schedule).unwrap().event_id());
}

#[test]
fn given_scheduler_input_without_schedule_or_time_when_parsed_then_the_execution_id_keys_it() {
    let without_time = json!({"scheduler": {"executionId": "exec-1", "scheduleArn": START_SCHEDULE}});
    assert_eq!(parse::<Req>(without_time).unwrap().event_id(), "scheduler:exec-1");
    let unfilled = json!({"scheduler": {"executionId": "exec-2", "scheduledTime": "<aws.scheduler.scheduled-time>",
        "scheduleArn": START_SCHEDULE}});
    assert_eq!(parse::<Req>(unfilled).unwrap().event_id(), "scheduler:exec-2");
}

#[test]
fn given_scheduler_block_with_unfilled_placeholder_or_unknown_key_when_parsed_then_error_names_the_field() {
    let err = parse::<Req>(json!({"scheduler": {"executionId": "<aws.scheduler.execution-id>"}})).unwrap_err();
    assert!(err.to_string().contains("scheduler.executionId"), "{err}");
    let err = parse::<Req>(json!({"scheduler": {"executionId": "x", "attempt": "1"}})).unwrap_err();
    assert!(err.to_string().contains("unknown field `attempt`"), "{err}");
    assert!(err.to_string().contains("scheduler."), "{err}");
}

#[test]
fn given_sns_event_with_request_message_when_parsed_then_request_keyed_by_message_id() {
    let trigger = parse::<Req>(fixture("sns-request.json")).unwrap();
    let Trigger::Sns(records) = &trigger else { panic!("{trigger:?}") };
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].message_id, "82833b5c-8d5d-56d0-b0e1-7511f8253eb8");
    assert_eq!(records[0].topic_arn, "arn:aws:sns:us-east-1:246796806071:snsNetTest");
    assert_eq!(records[0].message, SnsMessage::Request(Req { names: vec!["b1".into(), "b2".into()], dry_run: true }));
    assert_eq!(trigger.event_id(), "82833b5c-8d5d-56d0-b0e1-7511f8253eb8");
}

#[test]
fn given_sns_message_that_is_a_recognised_notification_when_parsed_then_notification() {
    let mut event = fixture("sns-request.json");
    event["Records"][0]["Sns"]["Message"] = json!(
        r#"{"versionlessArn":"arn:aws:imagebuilder:us-east-1:123456789012:image/x","semver":1237940039285380274899124227}"#
    );
    let Trigger::Sns(records) = parse::<Req>(event).unwrap() else { panic!() };
    let SnsMessage::Notification(doc) = &records[0].message else { panic!("{:?}", records[0].message) };
    assert!(doc.get("semver").is_some());
}

#[test]
fn given_sns_message_that_is_plain_text_when_parsed_then_error_names_the_message() {
    let err = parse::<Req>(fixture("sns-plain-text.json")).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("Records[0].Sns.Message"), "{text}");
    assert!(text.contains("not JSON"), "{text}");
    assert_eq!(err.error_type(), ErrorType::INVALID_INPUT);
}

#[test]
fn given_sns_message_with_a_misspelt_field_when_parsed_then_error_names_field_and_rule() {
    let mut event = fixture("sns-request.json");
    event["Records"][0]["Sns"]["Message"] = json!(r#"{"nmes":["b1"]}"#);
    let text = parse::<Req>(event).unwrap_err().to_string();
    assert!(text.contains("unknown field `nmes`"), "{text}");
    assert!(text.contains("Records[0].Sns.Message"), "{text}");
}

#[test]
fn given_sns_event_missing_message_id_when_parsed_then_error_names_the_path() {
    let mut event = fixture("sns-request.json");
    event["Records"][0]["Sns"].as_object_mut().unwrap().remove("MessageId");
    let text = parse::<Req>(event).unwrap_err().to_string();
    assert!(text.contains("SNS event is malformed at `Records[0].Sns`"), "{text}");
    assert!(text.contains("MessageId"), "{text}");
}

#[test]
fn given_s3_put_notification_when_parsed_then_object_with_decoded_key_and_version_id() {
    let trigger = parse::<Req>(fixture("s3-put.json")).unwrap();
    let Trigger::S3(objects) = &trigger else { panic!("{trigger:?}") };
    let o = &objects[0];
    assert_eq!(o.bucket, "sourcebucket");
    assert_eq!(o.key, "Happy Face.jpg");
    assert_eq!(o.size, Some(1024));
    assert_eq!(o.version_id.as_deref(), Some("version"));
    assert_eq!(o.etag.as_deref(), Some("d41d8cd98f00b204e9800998ecf8427e"));
    assert_eq!(o.sequencer.as_deref(), Some("Happy Sequencer"));
    assert_eq!(o.event_name, "ObjectCreated:Put");
    assert_eq!(trigger.event_id(), "s3://sourcebucket/Happy Face.jpg#version=version");
}

#[test]
fn given_form_encoded_s3_key_when_parsed_then_plus_is_space_and_escapes_decoded() {
    let mut event = fixture("s3-put.json");
    event["Records"][0]["s3"]["object"]["key"] = json!("keys/K2ABC/my+new%2Bkey%C3%A9.pem");
    let Trigger::S3(objects) = parse::<Req>(event).unwrap() else { panic!() };
    assert_eq!(objects[0].key, "keys/K2ABC/my new+keyé.pem");
}

#[test]
fn given_unversioned_bucket_when_parsed_then_sequencer_distinguishes_uploads() {
    let upload = |sequencer: &str| {
        let mut event = fixture("s3-put.json");
        let object = event["Records"][0]["s3"]["object"].as_object_mut().unwrap();
        object.remove("versionId");
        object.insert("sequencer".into(), json!(sequencer));
        parse::<Req>(event).unwrap().event_id()
    };
    assert_eq!(upload("0A1"), upload("0A1"));
    assert_ne!(upload("0A1"), upload("0A2"));
    assert!(upload("0A1").ends_with("#sequencer=0A1"));
}

#[test]
fn given_s3_event_without_bucket_name_when_parsed_then_error_names_the_path() {
    let mut event = fixture("s3-put.json");
    event["Records"][0]["s3"]["bucket"].as_object_mut().unwrap().remove("name");
    let text = parse::<Req>(event).unwrap_err().to_string();
    assert!(text.contains("Records[0].s3.bucket.name"), "{text}");
}

#[test]
fn given_s3_object_created_through_eventbridge_when_parsed_then_same_object_shape_with_raw_key() {
    let trigger = parse::<Req>(fixture("s3-eventbridge-object-created.json")).unwrap();
    let Trigger::S3(objects) = &trigger else { panic!("{trigger:?}") };
    let o = &objects[0];
    assert_eq!(o.bucket, "amzn-s3-demo-bucket1");
    assert_eq!(o.key, "keys/K2ABCDEF/new key.pem");
    assert_eq!(o.version_id.as_deref(), Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"));
    assert_eq!(o.etag.as_deref(), Some("b1946ac92492d2347c6235b4d2611184"));
    assert_eq!(o.event_name, "Object Created");
    assert_eq!(o.region.as_deref(), Some("ca-central-1"));
    assert_eq!(
        trigger.event_id(),
        "s3://amzn-s3-demo-bucket1/keys/K2ABCDEF/new key.pem#version=IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"
    );
}

#[test]
fn given_eventbridge_s3_event_without_object_key_when_parsed_then_error_names_the_path() {
    let mut event = fixture("s3-eventbridge-object-created.json");
    event["detail"]["object"].as_object_mut().unwrap().remove("key");
    let text = parse::<Req>(event).unwrap_err().to_string();
    assert!(text.contains("EventBridge S3 event is malformed at `object`"), "{text}");
    assert!(text.contains("missing field `key`"), "{text}");
}

#[test]
fn given_eventbridge_event_the_function_recognises_when_parsed_then_notification() {
    let trigger = parse::<Req>(fixture("eventbridge-ec2-state-change.json")).unwrap();
    let Trigger::Event(n) = &trigger else { panic!("{trigger:?}") };
    assert_eq!(n.event_id, "7bf73129-1428-4cd3-a780-95db273d1602");
    assert_eq!(n.detail_type, "EC2 Instance State-change Notification");
    assert_eq!(n.document["detail"]["instance-id"], "i-abcd1111");
}

#[test]
fn given_eventbridge_event_the_function_does_not_accept_when_parsed_then_unknown_shape_lists_accepted_shapes() {
    let mut event = fixture("eventbridge-ec2-state-change.json");
    event["source"] = json!("aws.codebuild");
    let text = parse::<Req>(event).unwrap_err().to_string();
    assert!(text.contains("`EC2 Instance State-change Notification` event from `aws.codebuild`"), "{text}");
    assert!(text.contains("accepted: an SNS event"), "{text}");
}

#[test]
fn given_manual_request_when_parsed_then_event_id_is_a_hash_independent_of_key_order_and_spacing() {
    let a = parse_slice::<Req>(br#"{"names":["b1"],"dryRun":true}"#).unwrap();
    let b = parse_slice::<Req>(b"{ \"dryRun\" : true,\n \"names\" : [\"b1\"] }").unwrap();
    let c = parse_slice::<Req>(br#"{"names":["b2"],"dryRun":true}"#).unwrap();
    assert_eq!(a.event_id(), b.event_id());
    assert_ne!(a.event_id(), c.event_id());
    assert!(a.event_id().starts_with("manual-"));
    assert_eq!(a.caller(), Caller::ByHand);
    let Trigger::Manual(m) = a else { panic!() };
    assert_eq!(m.request, Req { names: vec!["b1".into()], dry_run: true });
}

#[test]
fn given_the_same_number_written_two_ways_when_a_manual_request_is_keyed_then_one_event_id() {
    let hours = |v: Value| parse::<Value2>(json!({"graceHours": v})).unwrap().event_id();
    assert_eq!(hours(json!(24)), hours(json!(24.0)));
    assert_eq!(hours(json!(1.5)), hours(serde_json::from_str("1.50").unwrap()));
    assert_ne!(hours(json!(24)), hours(json!(24.5)));
    assert_eq!(canonical_json(&json!({"a": [1.0, -0.0, 2e3]})), r#"{"a":[1,0,2000]}"#);
}

/// Any object is a request (for keying tests).
#[derive(Debug, Deserialize)]
struct Value2(#[allow(dead_code)] Map<String, Value>);

impl Request for Value2 {}

#[test]
fn given_manual_request_with_request_id_when_parsed_then_request_id_is_event_id_and_not_a_field_of_the_request() {
    let trigger = parse::<Req>(json!({"requestId": "change-4711", "names": ["b1"]})).unwrap();
    assert_eq!(trigger.event_id(), "manual:change-4711");
    let err = parse::<Req>(json!({"requestId": 5})).unwrap_err();
    assert!(err.to_string().contains("`requestId`"), "{err}");
}

#[test]
fn given_manual_request_with_wrong_type_when_parsed_then_error_names_the_field_path() {
    let err = parse::<Req>(json!({"names": ["b1", 7]})).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("`names[1]`"), "{text}");
    assert!(text.contains("expected a string"), "{text}");
}

#[test]
fn given_payloads_that_are_not_objects_or_not_json_when_parsed_then_clear_errors() {
    assert!(matches!(parse_slice::<Req>(b"{\"names\":"), Err(TriggerError::NotJson(_))));
    let text = parse::<Req>(json!([1, 2])).unwrap_err().to_string();
    assert!(text.contains("a JSON array"), "{text}");
    let text = parse::<Req>(json!({"Records": [{"eventSource": "aws:sqs"}]})).unwrap_err().to_string();
    assert!(text.contains("`aws:sqs`"), "{text}");
    let text = parse::<Req>(json!({"Records": []})).unwrap_err().to_string();
    assert!(text.contains("without an event source"), "{text}");
}

#[test]
fn given_payload_over_256_kib_when_parsed_then_refused_before_parsing() {
    let big = format!(r#"{{"names":["{}"]}}"#, "x".repeat(MAX_PAYLOAD_BYTES));
    let err = parse_slice::<Req>(big.as_bytes()).unwrap_err();
    assert!(matches!(err, TriggerError::TooLarge { limit: MAX_PAYLOAD_BYTES, .. }), "{err}");
    let err = parse::<Req>(serde_json::from_str(&big).unwrap()).unwrap_err();
    assert!(err.to_string().contains("larger than the 1048576-byte limit"), "{err}");
}

#[test]
fn given_multiple_sns_records_when_keyed_then_one_stable_combined_id() {
    let mut event = fixture("sns-request.json");
    let mut second = event["Records"][0].clone();
    second["Sns"]["MessageId"] = json!("second");
    event["Records"].as_array_mut().unwrap().push(second);
    let a = parse::<Req>(event.clone()).unwrap().event_id();
    assert_eq!(a, parse::<Req>(event).unwrap().event_id());
    assert!(a.starts_with("sns-"), "{a}");
}

#[test]
fn given_nested_objects_when_canonicalised_then_keys_sorted_at_every_level() {
    let v = json!({"b": {"z": 1, "a": [ {"y": true, "x": null} ]}, "a": "é\""});
    assert_eq!(canonical_json(&v), r#"{"a":"é\"","b":{"a":[{"x":null,"y":true}],"z":1}}"#);
}

#[test]
fn given_each_envelope_when_asked_for_dry_run_then_only_a_request_that_says_so_turns_it_on() {
    // GIVEN the same request in every envelope that can carry one, once with dryRun and once without
    let manual = |dry: bool| parse::<Req>(json!({"names": ["b1"], "dryRun": dry})).unwrap();
    let scheduler = |dry: bool| {
        parse::<Req>(
            json!({"dryRun": dry, "scheduler": {"executionId": "x", "scheduledTime": "t", "scheduleArn": "a"}}),
        )
        .unwrap()
    };
    let sns = |dry: bool| {
        let mut event = fixture("sns-request.json");
        event["Records"][0]["Sns"]["Message"] = json!(json!({"names": ["b1"], "dryRun": dry}).to_string());
        parse::<Req>(event).unwrap()
    };
    // WHEN / THEN: the flag follows the request; envelopes without a request never ask
    for (name, build) in
        [("manual", &manual as &dyn Fn(bool) -> Trigger<Req>), ("scheduler", &scheduler), ("sns", &sns)]
    {
        assert!(build(true).asks_for_dry_run(), "{name}");
        assert!(!build(false).asks_for_dry_run(), "{name}");
    }
    assert!(!parse::<Req>(fixture("eventbridge-scheduled-event.json")).unwrap().asks_for_dry_run());
    assert!(!parse::<Req>(fixture("s3-put.json")).unwrap().asks_for_dry_run());
}

#[test]
fn given_triggers_when_flattened_then_one_input_per_request_object_or_notification_in_order() {
    // GIVEN an SNS event with a request and a recognised notification, an S3 event, a rule's schedule
    let mut sns = fixture("sns-request.json");
    let mut second = sns["Records"][0].clone();
    second["Sns"]["MessageId"] = json!("second");
    second["Sns"]["Message"] = json!(r#"{"versionlessArn":"arn:aws:imagebuilder:us-east-1:123456789012:image/x"}"#);
    sns["Records"].as_array_mut().unwrap().push(second);
    // WHEN each is flattened
    let inputs = parse::<Req>(sns).unwrap().into_inputs();
    // THEN the envelopes are gone and the order is kept
    assert!(matches!(&inputs[0], Input::Request(r) if r.names == ["b1", "b2"]), "{inputs:?}");
    assert!(matches!(&inputs[1], Input::Notification(doc) if doc.get("versionlessArn").is_some()), "{inputs:?}");
    assert_eq!(inputs.len(), 2);
    let objects = parse::<Req>(fixture("s3-put.json")).unwrap().into_inputs();
    assert!(matches!(objects.as_slice(), [Input::Object(o)] if !o.key.is_empty()), "{objects:?}");
    let schedule = parse::<Req>(fixture("eventbridge-scheduled-event.json")).unwrap().into_inputs();
    assert_eq!(schedule, vec![Input::Schedule(None)]);
    assert_eq!(schedule[0].kind(), "a schedule");
}

const SECRET: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:keeper/signing-AbCdEf";

#[test]
fn given_a_secrets_manager_rotation_step_when_parsed_then_a_rotation_keyed_by_secret_token_and_step() {
    // GIVEN the event Secrets Manager invokes a rotation function with
    let event = |step: &str| json!({"SecretId": SECRET, "ClientRequestToken": "c2f9e0d1-1111-4222-8333-444455556666", "Step": step});
    let trigger = parse::<Req>(event("setSecret")).unwrap();
    // THEN it is a rotation step, answered as Secrets Manager needs (every failure a function error)
    let Trigger::Rotation(r) = &trigger else { panic!("{trigger:?}") };
    assert_eq!((r.secret_id.as_str(), r.step, r.rotation_token.as_deref()), (SECRET, RotationStep::SetSecret, None));
    assert_eq!(trigger.caller(), Caller::SecretsManager);
    assert!(!trigger.asks_for_dry_run());
    // AND the same step again is the same event; another step, or the same token of another secret, is not
    let again = parse::<Req>(event("setSecret")).unwrap();
    assert_eq!(trigger.event_id(), again.event_id());
    assert_ne!(trigger.event_id(), parse::<Req>(event("testSecret")).unwrap().event_id());
    let mut other = event("setSecret");
    other["SecretId"] = json!("arn:aws:secretsmanager:us-east-1:123456789012:secret:other-XyZ123");
    assert_ne!(trigger.event_id(), parse::<Req>(other).unwrap().event_id());
    assert!(matches!(&trigger.into_inputs()[..], [Input::Rotation(r)] if r.token.starts_with("c2f9")));
    // AND a RotationToken (a rotation whose function assumes a role) is kept for PutSecretValue
    let mut with_token = event("createSecret");
    with_token["RotationToken"] = json!("0c2b1f3e-aaaa-4bbb-8ccc-ddddeeeeffff");
    let Trigger::Rotation(r) = parse::<Req>(with_token).unwrap() else { panic!() };
    assert_eq!(r.rotation_token.as_deref(), Some("0c2b1f3e-aaaa-4bbb-8ccc-ddddeeeeffff"));
}

#[test]
fn given_broken_rotation_events_when_parsed_then_refused_naming_the_field() {
    let cases = [
        (json!({"SecretId": SECRET, "ClientRequestToken": "t", "Step": "rotateSecret"}), "Step"),
        (json!({"SecretId": SECRET, "ClientRequestToken": "", "Step": "createSecret"}), "ClientRequestToken"),
        (json!({"SecretId": " ", "ClientRequestToken": "t", "Step": "createSecret"}), "SecretId"),
        (json!({"SecretId": SECRET, "Step": "createSecret"}), "ClientRequestToken"),
        (json!({"SecretId": SECRET, "ClientRequestToken": "t", "Step": "createSecret", "names": []}), "names"),
    ];
    for (event, field) in cases {
        let e = parse::<Req>(event.clone()).unwrap_err();
        assert!(e.to_string().contains(field), "{event}: {e}");
        assert!(matches!(e, TriggerError::BadEnvelope { .. }), "{event}: {e:?}");
    }
}
