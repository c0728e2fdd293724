//! Credentials as other local AWS emulators treat them: any access key by default for every service; with
//! `verifySignatures` (`keeper-local serve --verify-signatures`) only the documented pair with a valid SigV4
//! signature, and AWS's own codes in each protocol's error format otherwise.

use crate::support;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_credential_types::Credentials;
use aws_sdk_imagebuilder::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_types::SdkConfig;
use aws_types::region::Region;
use serde_json::json;
use support::*;

/// What [`one_call_each`] reads.
fn seed(verify_signatures: bool) -> serde_json::Value {
    json!({"verifySignatures": verify_signatures, "s3": {"keys": {}}, "regions": {"us-east-1": {"secrets": {"db": {}}}}})
}

async fn config(running: &local::Running, key: &str, secret: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&running.url)
        .credentials_provider(Credentials::new(key, secret, None, None, "test"))
        .retry_config(RetryConfig::standard().with_max_attempts(1))
        .load()
        .await
}

/// One call to each service (an S3 put and read included); the error code of each, or "ok". The account needs the
/// `keys` bucket and the secret `db` in us-east-1 ([`seed`]).
async fn one_call_each(config: &SdkConfig) -> Vec<String> {
    let code = |r: Result<(), String>| r.err().unwrap_or_else(|| "ok".into());
    let appstream = aws_sdk_appstream::Client::new(config);
    let imagebuilder = aws_sdk_imagebuilder::Client::new(config);
    let cloudfront = aws_sdk_cloudfront::Client::new(config);
    let secretsmanager = aws_sdk_secretsmanager::Client::new(config);
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(true).build());
    let err = |e: &dyn ProvideErrorMetadata| e.code().unwrap_or("(no code)").to_string();
    vec![
        code(appstream.describe_image_builders().send().await.map(|_| ()).map_err(|e| err(&e))),
        code(imagebuilder.list_distribution_configurations().send().await.map(|_| ()).map_err(|e| err(&e))),
        code(cloudfront.list_key_groups().send().await.map(|_| ()).map_err(|e| err(&e))),
        code(secretsmanager.describe_secret().secret_id("db").send().await.map(|_| ()).map_err(|e| err(&e))),
        code(
            s3.put_object()
                .bucket("keys")
                .key("keys/a b+c.pem")
                .body(ByteStream::from_static(b"pem"))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| err(&e)),
        ),
        code(s3.get_object().bucket("keys").key("keys/a b+c.pem").send().await.map(|_| ()).map_err(|e| err(&e))),
    ]
}

#[tokio::test]
async fn given_the_default_when_any_access_key_calls_each_service_then_every_call_is_served() {
    let running = emulator(seed(false)).await;
    let anyone = config(&running, "AKIAANYONE", "whatever-secret").await;
    assert_eq!(one_call_each(&anyone).await, vec!["ok"; 6]);
    let stored = running.emulator.objects().get("keys", "keys/a b+c.pem").expect("the put landed");
    assert_eq!(stored.as_ref(), b"pem");
}

#[tokio::test]
async fn given_verification_when_the_documented_pair_signs_then_served_and_otherwise_aws_codes_per_service() {
    let running = emulator(seed(true)).await;
    let documented = config(&running, local::client::ACCESS_KEY_ID, local::client::SECRET_ACCESS_KEY).await;
    assert_eq!(one_call_each(&documented).await, vec!["ok"; 6], "the documented pair signs every protocol right");
    let stranger = config(&running, "AKIASTRANGER", local::client::SECRET_ACCESS_KEY).await;
    assert_eq!(one_call_each(&stranger).await, vec!["InvalidAccessKeyId"; 6]);
    let wrong_secret = config(&running, local::client::ACCESS_KEY_ID, "not-the-secret").await;
    assert_eq!(one_call_each(&wrong_secret).await, vec!["SignatureDoesNotMatch"; 6]);
    // THEN none of the refused calls reached a service: the log shows only the documented pair's calls.
    assert_eq!(running.emulator.calls().len(), 6);
}

#[tokio::test]
async fn given_unsigned_or_half_signed_requests_when_sent_then_refused_in_the_protocol_of_the_service() {
    let running = emulator(json!({})).await;
    // CloudFront without a signature: an XML error, as restXml clients read.
    let (status, body) = raw(&running, "GET /2020-05-31/key-group HTTP/1.1\r\n").await;
    assert_eq!(status, 403);
    assert!(body.contains("<Code>MissingAuthenticationToken</Code>"), "{body}");
    // AppStream with a broken Authorization header: IncompleteSignature as awsJson1_1.
    let (status, body) = raw(
        &running,
        "POST / HTTP/1.1\r\nx-amz-target: PhotonAdminProxyService.DescribeImageBuilders\r\nauthorization: AWS4-HMAC-SHA256 Credential=AK/x\r\n",
    )
    .await;
    assert_eq!(status, 403);
    assert!(body.contains(r#""__type":"IncompleteSignature""#), "{body}");
    assert!(running.emulator.calls().is_empty(), "nothing reached a service");
}

async fn raw(running: &local::Running, head: &str) -> (u16, String) {
    let (status, _, body) = local::testing::exchange(running, head, b"{}").await;
    (status, String::from_utf8_lossy(&body).into_owned())
}
