//! S3 through the real aws-sdk-s3 (objects for uploaded keys and documents), and the admin API: state, calls, faults.

use crate::support;

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::primitives::ByteStream;
use serde_json::json;
use support::*;

async fn s3(running: &local::Running) -> Client {
    let config = aws_sdk_s3::config::Builder::from(&sdk(running, "us-east-1").await).force_path_style(true).build();
    Client::from_conf(config)
}

#[tokio::test]
async fn given_seeded_bucket_when_objects_put_and_read_then_bodies_and_metadata_round_trip() {
    let running =
        emulator(json!({"s3": {"keeper-keys": {"desired/state.json": "{\"distributionConfigurations\":[]}"}}})).await;
    let client = s3(&running).await;
    let seeded = client.get_object().bucket("keeper-keys").key("desired/state.json").send().await.unwrap();
    assert_eq!(seeded.body.collect().await.unwrap().into_bytes().as_ref(), b"{\"distributionConfigurations\":[]}");
    let pem = "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----\n";
    let put = client
        .put_object()
        .bucket("keeper-keys")
        .key("keys/K2/new key.pem")
        .body(ByteStream::from_static(pem.as_bytes()))
        .send()
        .await
        .unwrap();
    assert!(put.e_tag.is_some());
    assert!(put.version_id.is_some());
    let head = client.head_object().bucket("keeper-keys").key("keys/K2/new key.pem").send().await.unwrap();
    assert_eq!(head.content_length, Some(pem.len() as i64));
    assert_eq!(head.e_tag, put.e_tag);
    let got = client.get_object().bucket("keeper-keys").key("keys/K2/new key.pem").send().await.unwrap();
    assert_eq!(got.body.collect().await.unwrap().into_bytes().as_ref(), pem.as_bytes());
    let listed = client.list_objects_v2().bucket("keeper-keys").prefix("keys/").send().await.unwrap();
    assert_eq!(
        listed.contents.unwrap().iter().map(|o| o.key.clone().unwrap()).collect::<Vec<_>>(),
        vec!["keys/K2/new key.pem"]
    );
    let err = client.get_object().bucket("keeper-keys").key("nope").send().await.unwrap_err().into_service_error();
    assert!(matches!(err, GetObjectError::NoSuchKey(_)), "{err:?}");
    let puts = calls_of(&running, "PutObject");
    assert_eq!(puts.len(), 1);
    assert_eq!(puts[0].params.get("Key").map(String::as_str), Some("keys/K2/new key.pem"));
    assert_eq!(running.emulator.objects().get("keeper-keys", "keys/K2/new key.pem").as_deref(), Some(pem.as_bytes()));
}

#[tokio::test]
async fn given_an_object_put_twice_when_read_by_version_then_each_version_and_the_current_one_are_returned() {
    let running = emulator(json!({"s3": {"docs": {}}})).await;
    let client = s3(&running).await;
    let put = |body: &'static str| {
        client.put_object().bucket("docs").key("regions.json").body(ByteStream::from_static(body.as_bytes())).send()
    };
    let v1 = put("one").await.unwrap().version_id.unwrap();
    let v2 = put("two").await.unwrap().version_id.unwrap();
    assert_ne!(v1, v2);
    let read = |version: Option<String>| async {
        let out = client.get_object().bucket("docs").key("regions.json").set_version_id(version).send().await.unwrap();
        (out.version_id.clone(), out.body.collect().await.unwrap().into_bytes())
    };
    assert_eq!(read(Some(v1.clone())).await, (Some(v1), bytes::Bytes::from_static(b"one")));
    assert_eq!(read(None).await, (Some(v2.clone()), bytes::Bytes::from_static(b"two")), "the current version");
    let head = client.head_object().bucket("docs").key("regions.json").send().await.unwrap();
    assert_eq!(head.version_id, Some(v2));
    let err = client.get_object().bucket("docs").key("regions.json").version_id("nope").send().await.unwrap_err();
    assert_eq!(aws_sdk_s3::error::ProvideErrorMetadata::code(&err), Some("NoSuchVersion"));
}

#[tokio::test]
async fn given_verification_and_a_wrong_secret_when_calling_s3_then_signature_refused() {
    let running = emulator(json!({"verifySignatures": true, "s3": {"keeper-docs": {}}})).await;
    let config = aws_sdk_s3::config::Builder::from(&sdk(&running, "us-east-1").await)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            local::client::ACCESS_KEY_ID,
            "wrong",
            None,
            None,
            "test",
        ))
        .build();
    let err = Client::from_conf(config).get_object().bucket("keeper-docs").key("k").send().await.unwrap_err();
    assert_eq!(aws_sdk_s3::error::ProvideErrorMetadata::code(&err), Some("SignatureDoesNotMatch"));
}

#[tokio::test]
async fn given_admin_api_when_used_then_state_calls_and_faults_are_read_and_set() {
    let running = emulator(json!({"regions": {"eu-west-1": {"imageBuilders": {"b1": {"State": "STOPPED"}}}}})).await;
    let (status, state) = admin(&running, "GET", "/_keeper/state", None).await;
    assert_eq!(status, 200);
    assert_eq!(state["regions"]["eu-west-1"]["imageBuilders"]["b1"]["State"], "STOPPED");
    let (status, added) = admin(
        &running,
        "POST",
        "/_keeper/faults",
        Some(&json!([
            {"operation": "StartImageBuilder", "error": "IncompatibleImageException", "when": {"Name": "b1"}},
            {"operation": "DescribeImageBuilders", "latencyMs": 1}
        ])),
    )
    .await;
    assert_eq!((status, added["added"].clone()), (200, json!(2)));
    let (status, bad) =
        admin(&running, "POST", "/_keeper/faults", Some(&json!({"operation": "X", "errr": "typo"}))).await;
    assert_eq!(status, 400);
    assert!(bad["message"].as_str().unwrap().contains("errr"), "{bad}");
    let client = aws_sdk_appstream::Client::new(&sdk(&running, "eu-west-1").await);
    let err = client.start_image_builder().name("b1").send().await.unwrap_err().into_service_error();
    assert!(err.is_incompatible_image_exception(), "{err:?}");
    client.describe_image_builders().send().await.unwrap();
    let (_, calls) = admin(&running, "GET", "/_keeper/calls", None).await;
    let ops: Vec<(&str, &str, &str)> = calls
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["operation"].as_str().unwrap(), c["region"].as_str().unwrap(), c["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        ops,
        vec![
            ("StartImageBuilder", "eu-west-1", "IncompatibleImageException"),
            ("DescribeImageBuilders", "eu-west-1", "ok")
        ]
    );
    assert_eq!(admin(&running, "DELETE", "/_keeper/calls", None).await.0, 200);
    assert!(running.emulator.calls().is_empty());
    assert_eq!(admin(&running, "DELETE", "/_keeper/faults", None).await.0, 200);
    client.start_image_builder().name("b1").send().await.expect("fault removed");
    let (status, _) = admin(&running, "GET", "/_keeper/nothing", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn given_unsigned_or_unknown_service_request_when_sent_then_clear_error() {
    let running = emulator(json!({})).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for (auth, expected) in [
        ("", "403"),
        (
            "authorization: AWS4-HMAC-SHA256 Credential=A/20261121/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=x\r\n",
            "400",
        ),
    ] {
        let mut stream = tokio::net::TcpStream::connect(running.addr).await.unwrap();
        let request = format!("POST / HTTP/1.1\r\nhost: x\r\n{auth}content-length: 0\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with(&format!("HTTP/1.1 {expected}")), "{response}");
        if expected == "400" {
            assert!(response.contains("service `sqs` is not emulated"), "{response}");
        }
    }
}

#[test]
fn given_demo_account_seed_when_loaded_then_every_service_has_state() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/local-account.json");
    let seed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let world = local::World::from_seed(seed, 0).expect("the demo seed is valid");
    assert!(world.regions["us-east-1"].image_builders.len() >= 5);
    assert!(!world.regions["eu-west-1"].image_builders.is_empty());
    assert!(!world.regions["us-east-1"].imagebuilder.distribution_configurations.is_empty());
    assert!(world.regions["us-east-1"].imagebuilder.images.len() >= 6);
    assert_eq!(world.cloudfront.key_groups.len(), 1);
    for key in world.cloudfront.public_keys.values() {
        local::cloudfront::accepted_key(&key.encoded_key).expect("demo keys are keys CloudFront accepts");
    }
    assert_eq!(world.s3.len(), 2);
}
