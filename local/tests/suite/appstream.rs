//! AppStream conformance: the real aws-sdk-appstream against the emulator, every test in both protocols the SDK can
//! speak (its default RPC v2 CBOR, and awsJson1_1 selected at run time).

use crate::support;

use std::time::Duration;

use aws_sdk_appstream::Client;
use aws_sdk_appstream::error::ProvideErrorMetadata;
use aws_sdk_appstream::operation::describe_image_builders::DescribeImageBuildersError;
use aws_sdk_appstream::operation::start_image_builder::StartImageBuilderError;
use aws_sdk_appstream::operation::tag_resource::TagResourceError;
use aws_sdk_appstream::types::*;
use aws_smithy_json::protocol::aws_json_rpc::AwsJsonRpcProtocol;
use serde_json::json;
use support::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    Json,
    Cbor,
}

impl Wire {
    fn logged(self) -> &'static str {
        match self {
            Wire::Json => "awsJson1_1",
            Wire::Cbor => "rpcv2Cbor",
        }
    }
}

async fn client(running: &local::Running, wire: Wire) -> Client {
    let mut builder = aws_sdk_appstream::config::Builder::from(&sdk(running, "us-east-1").await);
    if wire == Wire::Json {
        builder = builder.protocol(AwsJsonRpcProtocol::aws_json_1_1());
    }
    Client::from_conf(builder.build())
}

/// Every call went over `wire`.
fn assert_wire(running: &local::Running, wire: Wire) {
    let calls = running.emulator.calls();
    assert!(!calls.is_empty());
    for call in calls.iter().filter(|c| c.service == "appstream") {
        assert_eq!(call.params.get("protocol").map(String::as_str), Some(wire.logged()), "{call:?}");
    }
}

fn seed(builders: serde_json::Value, transition_ms: u64) -> serde_json::Value {
    json!({"timing": {"transitionMillis": transition_ms}, "regions": {"us-east-1": {"imageBuilders": builders}}})
}

async fn created_builder_round_trips(wire: Wire) {
    // GIVEN an empty account WHEN a builder is created with every input member
    let running = emulator(seed(json!({}), 60_000)).await;
    let client = client(&running, wire).await;
    let created = client
        .create_image_builder()
        .name("team-web")
        .instance_type("stream.standard.large")
        .image_name("AppStream-WinServer2022-01-01-2026")
        .description("web team builder")
        .display_name("Web")
        .vpc_config(VpcConfig::builder().subnet_ids("subnet-1").security_group_ids("sg-1").build())
        .iam_role_arn("arn:aws:iam::123456789012:role/builder")
        .enable_default_internet_access(false)
        .domain_join_info(
            DomainJoinInfo::builder()
                .directory_name("corp.example.com")
                .organizational_unit_distinguished_name("OU=x")
                .build(),
        )
        .appstream_agent_version("1.1.1300")
        .access_endpoints(
            AccessEndpoint::builder().endpoint_type(AccessEndpointType::Streaming).vpce_id("vpce-1").build(),
        )
        .tags("keeper:schedule", "office-hours")
        .send()
        .await
        .unwrap()
        .image_builder
        .unwrap();
    // THEN Describe returns the same document, every member intact, timestamps included
    let described = client.describe_image_builders().names("team-web").send().await.unwrap().image_builders.unwrap();
    assert_eq!(described, vec![created.clone()]);
    assert_eq!(created.state, Some(ImageBuilderState::Pending));
    assert_eq!(created.arn.as_deref(), Some("arn:aws:appstream:us-east-1:123456789012:image-builder/team-web"));
    assert_eq!(created.vpc_config.unwrap().subnet_ids.unwrap(), vec!["subnet-1"]);
    assert_eq!(created.domain_join_info.unwrap().directory_name.as_deref(), Some("corp.example.com"));
    assert_eq!(created.access_endpoints.unwrap()[0].endpoint_type, Some(AccessEndpointType::Streaming));
    assert_eq!(created.enable_default_internet_access, Some(false));
    assert_eq!(created.appstream_agent_version.as_deref(), Some("1.1.1300"));
    let created_secs = created.created_time.unwrap().secs();
    let now = local::clock::now_ms() / 1000;
    assert!((now - created_secs).abs() <= 5, "CreatedTime {created_secs} is now ({now})");
    let tags = client
        .list_tags_for_resource()
        .resource_arn("arn:aws:appstream:us-east-1:123456789012:image-builder/team-web")
        .send()
        .await
        .unwrap()
        .tags
        .unwrap();
    assert_eq!(tags.get("keeper:schedule").map(String::as_str), Some("office-hours"));
    assert_wire(&running, wire);
}

async fn state_machine_moves_on_a_timer(wire: Wire) {
    // GIVEN builders in several states and 100 ms transitions
    let running = emulator(seed(
        json!({
            "stopped": {"State": "STOPPED"},
            "old-agent": {"State": "STOPPED", "AppstreamAgentVersion": "1.0.0"},
            "running": {"State": "RUNNING"},
            "pending": {"State": "PENDING"},
            "failed": {"State": "FAILED", "StateChangeReason": {"Code": "INTERNAL_ERROR", "Message": "boom"}},
        }),
        100,
    ))
    .await;
    let client = client(&running, wire).await;
    let state = |name: &'static str| {
        let client = client.clone();
        async move {
            client.describe_image_builders().names(name).send().await.unwrap().image_builders.unwrap()[0]
                .state
                .clone()
                .unwrap()
        }
    };
    // WHEN a STOPPED builder is started THEN PENDING, then RUNNING after the transition
    let started = client.start_image_builder().name("stopped").send().await.unwrap().image_builder.unwrap();
    assert_eq!(started.state, Some(ImageBuilderState::Pending));
    // WHEN the agent version changes THEN UPDATING_AGENT first
    let updating = client
        .start_image_builder()
        .name("old-agent")
        .appstream_agent_version("[LATEST]")
        .send()
        .await
        .unwrap()
        .image_builder
        .unwrap();
    assert_eq!(updating.state, Some(ImageBuilderState::UpdatingAgent));
    assert_eq!(updating.appstream_agent_version.as_deref(), Some("[LATEST]"));
    // WHEN a RUNNING or a busy builder is started THEN typed errors
    let err = client.start_image_builder().name("running").send().await.unwrap_err().into_service_error();
    assert!(matches!(err, StartImageBuilderError::ResourceNotAvailableException(_)), "{err:?}");
    let err = client.start_image_builder().name("pending").send().await.unwrap_err().into_service_error();
    assert!(matches!(err, StartImageBuilderError::ConcurrentModificationException(_)), "{err:?}");
    let err = client.start_image_builder().name("nobody").send().await.unwrap_err().into_service_error();
    assert!(matches!(err, StartImageBuilderError::ResourceNotFoundException(_)), "{err:?}");
    // WHEN a RUNNING builder is stopped THEN STOPPING, then STOPPED
    let stopping = client.stop_image_builder().name("running").send().await.unwrap().image_builder.unwrap();
    assert_eq!(stopping.state, Some(ImageBuilderState::Stopping));
    let failed =
        client.describe_image_builders().names("failed").send().await.unwrap().image_builders.unwrap().remove(0);
    assert_eq!(failed.state_change_reason.unwrap().message.as_deref(), Some("boom"));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(state("stopped").await, ImageBuilderState::Running);
    assert_eq!(state("old-agent").await, ImageBuilderState::Running);
    assert_eq!(state("running").await, ImageBuilderState::Stopped);
    assert_eq!(state("pending").await, ImageBuilderState::Pending, "a seeded state without a transition stays");
    // WHEN a builder is deleted THEN DELETING, then gone
    assert_eq!(
        client.delete_image_builder().name("stopped").send().await.unwrap().image_builder.unwrap().state,
        Some(ImageBuilderState::Deleting)
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    let err = client.describe_image_builders().names("stopped").send().await.unwrap_err().into_service_error();
    assert!(matches!(err, DescribeImageBuildersError::ResourceNotFoundException(_)), "{err:?}");
    assert_wire(&running, wire);
}

async fn describe_pages_through_many_builders(wire: Wire) {
    // GIVEN 120 builders WHEN described 50 at a time THEN three pages hold each once
    let builders: serde_json::Map<String, serde_json::Value> =
        (0..120).map(|i| (format!("b{i:03}"), json!({"State": "STOPPED"}))).collect();
    let running = emulator(seed(json!(builders), 1000)).await;
    let client = client(&running, wire).await;
    let mut names = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = client.describe_image_builders().max_results(50).set_next_token(token).send().await.unwrap();
        pages += 1;
        names.extend(page.image_builders.unwrap_or_default().into_iter().map(|b| b.name.unwrap()));
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, (0..120).map(|i| format!("b{i:03}")).collect::<Vec<_>>());
    let two =
        client.describe_image_builders().names("b007").names("b100").send().await.unwrap().image_builders.unwrap();
    assert_eq!(two.iter().map(|b| b.name.clone().unwrap()).collect::<Vec<_>>(), vec!["b007", "b100"]);
    assert_wire(&running, wire);
}

async fn tags_and_validation(wire: Wire) {
    let running = emulator(seed(json!({"b1": {"State": "STOPPED", "Tags": {"team": "web"}}}), 1000)).await;
    let client = client(&running, wire).await;
    let arn = "arn:aws:appstream:us-east-1:123456789012:image-builder/b1";
    client.tag_resource().resource_arn(arn).tags("keeper:skip", "true").send().await.unwrap();
    let tags = client.list_tags_for_resource().resource_arn(arn).send().await.unwrap().tags.unwrap();
    assert_eq!(tags.len(), 2);
    let many: std::collections::HashMap<String, String> = (0..50).map(|i| (format!("k{i}"), "v".to_string())).collect();
    let err =
        client.tag_resource().resource_arn(arn).set_tags(Some(many)).send().await.unwrap_err().into_service_error();
    assert!(matches!(err, TagResourceError::LimitExceededException(_)), "{err:?}");
    // The model's TagKey pattern excludes the reserved prefix.
    let err = client.tag_resource().resource_arn(arn).tags("aws:owner", "x").send().await.unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"));
    assert!(err.message().unwrap_or_default().contains("at 'Tags.key'"), "{:?}", err.message());
    let before = running.emulator.dump();
    let err =
        client.start_image_builder().name("b1").appstream_agent_version("9".repeat(101)).send().await.unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"));
    assert!(
        err.message().unwrap_or_default().contains(
            "at 'AppstreamAgentVersion' failed to satisfy constraint: Member must have length less than or equal to 100"
        ),
        "{:?}",
        err.message()
    );
    let err = client.start_image_builder().send().await.unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"));
    assert!(
        err.message().unwrap_or_default().contains("at 'Name' failed to satisfy constraint: Member must not be null")
    );
    let err = client
        .create_image_builder()
        .name("-bad name")
        .instance_type("stream.standard.small")
        .image_name("i")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"));
    assert!(
        err.message().unwrap_or_default().contains(
            "Value '-bad name' at 'Name' failed to satisfy constraint: Member must satisfy regular expression pattern"
        ),
        "{:?}",
        err.message()
    );
    let err = client.create_image_builder().name("ok").image_name("i").send().await.unwrap_err();
    assert!(
        err.message()
            .unwrap_or_default()
            .contains("at 'InstanceType' failed to satisfy constraint: Member must not be null"),
        "{:?}",
        err.message()
    );
    let err = client.create_image_builder().name("ok").instance_type("stream.standard.small").send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterCombinationException"));
    assert_eq!(running.emulator.dump(), before, "invalid requests change nothing");
    assert_wire(&running, wire);
}

macro_rules! both_protocols {
    ($($case:ident),* $(,)?) => {
        mod rpcv2_cbor {
            $(#[tokio::test] async fn $case() { super::$case(super::Wire::Cbor).await })*
        }
        mod aws_json_1_1 {
            $(#[tokio::test] async fn $case() { super::$case(super::Wire::Json).await })*
        }
    };
}

both_protocols!(
    created_builder_round_trips,
    state_machine_moves_on_a_timer,
    describe_pages_through_many_builders,
    tags_and_validation,
);
