//! keeper's retry classifier (`shared::retry`) on real SDK clients against the emulator's injected faults: what the
//! SDK alone does not retry is retried, and an account quota is not. (The emulator's own suite only proves that the
//! faults arrive typed; whether keeper retries them is keeper's business, so it is tested here.)

use aws_sdk_appstream::operation::tag_resource::TagResourceError;
use aws_smithy_json::protocol::aws_json_rpc::AwsJsonRpcProtocol;
use local::FaultRule;
use serde_json::json;
use testbed::emulator::{calls, fast_settings, sdk_config, start};

fn fault(operation: &str, error: &str, count: u32, when: &[(&str, &str)]) -> FaultRule {
    FaultRule {
        when: when.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        count: Some(count),
        ..FaultRule::error(operation, error)
    }
}

/// AppStream through keeper's client, in the SDK's default RPC v2 CBOR or in awsJson1_1.
async fn contention_is_retried_and_a_quota_is_not(json_protocol: bool) {
    // GIVEN two ConcurrentModificationExceptions for b1's start, and a LimitExceededException for tagging
    let running = start(json!({"timing": {"transitionMillis": 1000}, "regions": {"us-east-1": {"imageBuilders": {
        "b1": {"State": "STOPPED"}}}}}))
    .await;
    running.emulator.add_fault(fault("StartImageBuilder", "ConcurrentModificationException", 2, &[("Name", "b1")]));
    running.emulator.add_fault(fault("TagResource", "LimitExceededException", 5, &[]));
    let settings = fast_settings(5);
    let mut config = aws_sdk_appstream::config::Builder::from(&sdk_config(&running, "us-east-1", &settings).await)
        .retry_classifier(shared::retry::KeeperRetryClassifier::new(&settings));
    if json_protocol {
        config = config.protocol(AwsJsonRpcProtocol::aws_json_1_1());
    }
    let keeper = aws_sdk_appstream::Client::from_conf(config.build());
    // WHEN keeper's client starts it THEN it retries through the contention and the builder starts
    keeper.start_image_builder().name("b1").send().await.expect("started after two contention errors");
    let outcomes: Vec<String> = calls(&running, "StartImageBuilder").into_iter().map(|c| c.outcome).collect();
    assert_eq!(outcomes, vec!["ConcurrentModificationException", "ConcurrentModificationException", "ok"]);
    // WHEN it tags against an exhausted quota THEN exactly one call: a quota is not retried
    let err = keeper
        .tag_resource()
        .resource_arn("arn:aws:appstream:us-east-1:123456789012:image-builder/b1")
        .tags("a", "b")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err.into_service_error(), TagResourceError::LimitExceededException(_)));
    assert_eq!(calls(&running, "TagResource").len(), 1);
    let protocol = if json_protocol { "awsJson1_1" } else { "rpcv2Cbor" };
    assert!(running.emulator.calls().iter().all(|c| c.params.get("protocol").map(String::as_str) == Some(protocol)));
}

#[tokio::test]
async fn given_appstream_contention_and_a_quota_over_rpcv2_cbor_when_called_by_keeper_then_only_contention_is_retried()
{
    contention_is_retried_and_a_quota_is_not(false).await;
}

#[tokio::test]
async fn given_appstream_contention_and_a_quota_over_aws_json_when_called_by_keeper_then_only_contention_is_retried() {
    contention_is_retried_and_a_quota_is_not(true).await;
}

#[tokio::test]
async fn given_two_image_builder_429s_when_keeper_calls_then_it_retries_past_them_although_the_sdk_would_not() {
    // GIVEN an image and two rate-limit answers for GetImage
    let arn = "arn:aws:imagebuilder:us-east-1:123456789012:image/web-golden/1.2.0/3";
    let running = start(json!({"regions": {"us-east-1": {"images": {arn: {}}}}})).await;
    running.emulator.add_fault(fault("GetImage", "CallRateLimitExceededException", 2, &[]));
    // WHEN keeper's Image Builder client reads it
    let settings = fast_settings(5);
    let keeper =
        shared::service_client!(aws_sdk_imagebuilder, &sdk_config(&running, "us-east-1", &settings).await, &settings);
    keeper.get_image().image_build_version_arn(arn).send().await.expect("retried past the second 429");
    // THEN three calls: two 429s, then the answer
    let outcomes: Vec<String> = calls(&running, "GetImage").into_iter().map(|c| c.outcome).collect();
    assert_eq!(outcomes, vec!["CallRateLimitExceededException", "CallRateLimitExceededException", "ok"]);
}
