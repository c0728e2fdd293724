//! Retry classification (each error code named in the wire facts), backoff, and the read-modify-write loop.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::interceptors::context::{Error, Input, InterceptorContext};
use aws_smithy_runtime_api::client::orchestrator::OrchestratorError;
use aws_smithy_runtime_api::client::retries::classifiers::RetryReason;
use aws_smithy_runtime_api::http::{Response, StatusCode};
use aws_smithy_types::body::SdkBody;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;

fn settings(backoff_ms: u64, attempts: u32) -> Settings {
    Settings { retry_initial_backoff: Duration::from_millis(backoff_ms), max_attempts: attempts, ..Settings::default() }
}

fn cbor_error(code: &str) -> Vec<u8> {
    let value = ciborium::Value::Map(vec![
        (ciborium::Value::Text("__type".into()), ciborium::Value::Text(code.into())),
        (ciborium::Value::Text("Message".into()), ciborium::Value::Text("try later".into())),
    ]);
    let mut out = Vec::new();
    ciborium::into_writer(&value, &mut out).unwrap();
    out
}

#[test]
fn given_each_code_named_in_the_wire_facts_when_judged_then_keeper_verdict() {
    assert_eq!(verdict("CallRateLimitExceededException"), Some(Verdict::Throttled));
    assert_eq!(verdict("ConcurrentModificationException"), Some(Verdict::Contention));
    assert_eq!(verdict("ResourceInUseException"), Some(Verdict::Contention));
    assert_eq!(verdict("LimitExceededException"), Some(Verdict::Quota));
    // Left to the SDK: CloudFront's PreconditionFailed needs a fresh read, not a resend; the rest is the SDK's call.
    for code in ["PreconditionFailed", "ThrottlingException", "InvalidRequestException", "ResourceNotFoundException"] {
        assert_eq!(verdict(code), None, "{code}");
    }
}

#[test]
fn given_verdicts_when_turned_into_actions_then_throttle_contention_with_longer_wait_and_quota_forbidden() {
    let classifier = KeeperRetryClassifier::new(&settings(100, 5));
    assert_eq!(classifier.action(Verdict::Throttled, 0.5), RetryAction::throttling_error());
    assert_eq!(classifier.action(Verdict::Quota, 0.5), RetryAction::RetryForbidden);
    for (random, expected_ms) in [(0.0, 400), (0.5, 600), (0.999, 799)] {
        let RetryAction::RetryIndicated(RetryReason::RetryableError { kind, retry_after }) =
            classifier.action(Verdict::Contention, random)
        else {
            panic!("contention must be retried")
        };
        assert_eq!(kind, ErrorKind::TransientError);
        assert_eq!(retry_after.unwrap().as_millis(), expected_ms);
    }
}

#[test]
fn given_raw_error_responses_of_each_protocol_when_read_then_code_found_and_cleaned() {
    // restJson1 / awsJson1_1: the header wins and is cleaned like the SDK does.
    assert_eq!(
        error_code(
            Some("CallRateLimitExceededException:http://internal.amazon.com/coral/"),
            Some("application/json"),
            b"{}"
        ),
        Some("CallRateLimitExceededException".into())
    );
    // awsJson: `__type` with a namespace, or `code`.
    assert_eq!(
        error_code(
            None,
            Some("application/x-amz-json-1.1"),
            br#"{"__type":"com.amazonaws.appstream#ConcurrentModificationException","Message":"x"}"#
        ),
        Some("ConcurrentModificationException".into())
    );
    assert_eq!(
        error_code(None, Some("application/json"), br#"{"code":"ResourceInUseException"}"#),
        Some("ResourceInUseException".into())
    );
    // RPC v2 CBOR: only the body's `__type`.
    assert_eq!(
        error_code(None, Some("application/cbor"), &cbor_error("LimitExceededException")),
        Some("LimitExceededException".into())
    );
    // Nothing recognisable.
    assert_eq!(error_code(None, Some("application/cbor"), b"\xff\x00garbage"), None);
    assert_eq!(error_code(None, Some("text/xml"), b"<ErrorResponse/>"), None);
    assert_eq!(error_code(Some("  "), None, b""), None);
}

#[derive(Debug)]
struct OpaqueOperationError;
impl std::fmt::Display for OpaqueOperationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("operation error")
    }
}
impl std::error::Error for OpaqueOperationError {}

fn ctx_with_error_response(status: u16, content_type: &str, body: Vec<u8>) -> InterceptorContext {
    let mut ctx = InterceptorContext::new(Input::doesnt_matter());
    let mut response = Response::new(StatusCode::try_from(status).unwrap(), SdkBody::from(body));
    response.headers_mut().insert("content-type", content_type.to_string());
    ctx.set_response(response);
    ctx.set_output_or_error(Err(OrchestratorError::operation(Error::erase(OpaqueOperationError))));
    ctx
}

#[test]
fn given_appstream_cbor_errors_when_classified_then_contention_retried_and_quota_forbidden() {
    let classifier = KeeperRetryClassifier::new(&settings(10, 5));
    let ctx = ctx_with_error_response(400, "application/cbor", cbor_error("ConcurrentModificationException"));
    assert!(matches!(
        classifier.classify_retry(&ctx),
        RetryAction::RetryIndicated(RetryReason::RetryableError {
            kind: ErrorKind::TransientError,
            retry_after: Some(_)
        })
    ));
    let ctx = ctx_with_error_response(400, "application/cbor", cbor_error("LimitExceededException"));
    assert_eq!(classifier.classify_retry(&ctx), RetryAction::RetryForbidden);
}

#[test]
fn given_imagebuilder_429_when_classified_then_throttling() {
    let classifier = KeeperRetryClassifier::new(&settings(10, 5));
    let mut ctx = ctx_with_error_response(429, "application/json", br#"{"message":"Rate exceeded"}"#.to_vec());
    ctx.response_mut().unwrap().headers_mut().insert("x-amzn-errortype", "CallRateLimitExceededException");
    assert_eq!(classifier.classify_retry(&ctx), RetryAction::throttling_error());
}

#[test]
fn given_success_or_unknown_code_when_classified_then_sdk_decides() {
    let classifier = KeeperRetryClassifier::new(&settings(10, 5));
    let ctx = ctx_with_error_response(400, "application/json", br#"{"__type":"ValidationException"}"#.to_vec());
    assert_eq!(classifier.classify_retry(&ctx), RetryAction::NoActionIndicated);
    let ctx = InterceptorContext::new(Input::doesnt_matter());
    assert_eq!(classifier.classify_retry(&ctx), RetryAction::NoActionIndicated);
}

#[test]
fn given_sdk_classifier_priorities_when_ours_compared_then_it_runs_last() {
    let ours = KeeperRetryClassifier::new(&Settings::default()).priority();
    assert!(ours > RetryClassifierPriority::transient_error_classifier());
    assert!(ours > RetryClassifierPriority::modeled_as_retryable_classifier());
    assert!(ours > RetryClassifierPriority::http_status_code_classifier());
}

/// A one-route HTTP server that answers each request with the next canned response and counts requests.
async fn stub_server(responses: Vec<(u16, &'static str)>) -> (String, Arc<AtomicU32>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let queue = Arc::new(Mutex::new(VecDeque::from(responses)));
    let count = Arc::new(AtomicU32::new(0));
    let counter = count.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let queue = queue.clone();
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut chunk).await else { return };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                        .unwrap_or(0);
                    if buf.len() < end + 4 + length {
                        continue;
                    }
                    buf.drain(..end + 4 + length);
                    counter.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = queue.lock().unwrap().pop_front().unwrap_or((200, "{}"));
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.0\r\nx-amzn-requestid: stub\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, count)
}

/// An SDK configuration aimed at the stub: static dummy credentials, nothing read from the environment.
async fn stub_sdk_config(url: &str, settings: &Settings) -> aws_types::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_types::region::Region::new("us-east-1"))
        .endpoint_url(url)
        .credentials_provider(aws_credential_types::Credentials::new("AKIDSTUB", "stub-secret", None, None, "stub"))
        .retry_config(retry_config(settings))
        .load()
        .await
}

async fn get_item_attempts(responses: Vec<(u16, &'static str)>) -> (bool, u32) {
    get_item_attempts_with(responses, &[]).await
}

/// Attempts of one call by a client whose classifier never retries `final_codes`.
async fn get_item_attempts_with(
    responses: Vec<(u16, &'static str)>,
    final_codes: &'static [&'static str],
) -> (bool, u32) {
    let (url, count) = stub_server(responses).await;
    let settings = settings(1, 4);
    let sdk = stub_sdk_config(&url, &settings).await;
    let classifier = KeeperRetryClassifier::new(&settings).never_retrying(final_codes);
    let config = aws_sdk_dynamodb::config::Builder::from(&sdk).retry_classifier(classifier).build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let result = client
        .get_item()
        .table_name("t")
        .key("id", aws_sdk_dynamodb::types::AttributeValue::S("x".into()))
        .send()
        .await;
    (result.is_ok(), count.load(Ordering::SeqCst))
}

#[tokio::test]
async fn given_real_sdk_client_when_account_quota_error_then_no_retry_although_sdk_lists_it_as_throttling() {
    let (ok, attempts) = get_item_attempts(vec![(
        400,
        r#"{"__type":"com.amazonaws.dynamodb.v20120810#LimitExceededException","message":"quota"}"#,
    )])
    .await;
    assert!(!ok);
    assert_eq!(attempts, 1, "LimitExceededException must not be retried");
}

#[tokio::test]
async fn given_a_code_a_client_never_retries_when_it_answers_then_one_attempt_where_contention_would_retry() {
    let in_use = (400, r#"{"__type":"ResourceInUseException","message":"an execution is in progress"}"#);
    let (ok, attempts) = get_item_attempts(vec![in_use; 6]).await;
    assert!(!ok);
    assert_eq!(attempts, 4, "by default contention is retried to the last attempt");
    let (ok, attempts) = get_item_attempts_with(vec![in_use; 6], &["ResourceInUseException"]).await;
    assert!(!ok);
    assert_eq!(attempts, 1, "a client told never to retry it does not");
}

#[tokio::test]
async fn given_real_sdk_client_when_429_rate_limit_then_retried_until_success() {
    let throttled = (429, r#"{"__type":"CallRateLimitExceededException","message":"Rate exceeded"}"#);
    let (ok, attempts) = get_item_attempts(vec![throttled, throttled, (200, "{}")]).await;
    assert!(ok);
    assert_eq!(attempts, 3);
}

#[tokio::test]
async fn given_real_sdk_client_when_resource_in_use_then_retried_until_success() {
    let (ok, attempts) =
        get_item_attempts(vec![(400, r#"{"__type":"ResourceInUseException","message":"busy"}"#), (200, "{}")]).await;
    assert!(ok);
    assert_eq!(attempts, 2);
}

#[tokio::test]
async fn given_real_sdk_client_when_contention_persists_then_stops_at_max_attempts() {
    let busy = (400, r#"{"__type":"ConcurrentModificationException","message":"busy"}"#);
    let (ok, attempts) = get_item_attempts(vec![busy; 10]).await;
    assert!(!ok);
    assert_eq!(attempts, 4);
}

#[test]
fn given_attempts_when_delay_computed_then_exponential_capped_and_jittered() {
    let base = Duration::from_millis(100);
    let cap = Duration::from_secs(2);
    assert_eq!(full_jitter_delay(0, base, cap, 1.0), Duration::from_millis(100));
    assert_eq!(full_jitter_delay(3, base, cap, 1.0), Duration::from_millis(800));
    assert_eq!(full_jitter_delay(10, base, cap, 1.0), cap);
    assert_eq!(full_jitter_delay(u32::MAX, base, cap, 1.0), cap);
    assert_eq!(full_jitter_delay(3, base, cap, 0.5), Duration::from_millis(400));
    assert_eq!(full_jitter_delay(3, base, cap, 0.0), Duration::ZERO);
    assert_eq!(full_jitter_delay(3, base, cap, 7.0), Duration::from_millis(800), "random clamped to 1");
}

#[derive(Debug, PartialEq)]
enum RmwError {
    Conflict,
    Fatal,
}

fn fast_policy(max_attempts: u32) -> RmwPolicy {
    RmwPolicy {
        max_attempts,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        margin: Duration::ZERO,
    }
}

#[tokio::test]
async fn given_conflicts_then_success_when_looping_then_each_round_rereads_and_succeeds() {
    let rounds = AtomicU32::new(0);
    let result = read_modify_write(
        &fast_policy(5),
        None,
        |e| *e == RmwError::Conflict,
        |attempt| {
            rounds.fetch_add(1, Ordering::SeqCst);
            async move { if attempt < 2 { Err(RmwError::Conflict) } else { Ok(attempt) } }
        },
    )
    .await;
    assert_eq!(result, Ok(2));
    assert_eq!(rounds.load(Ordering::SeqCst), 3);
}

/// Runs the loop with a round that always fails with `error`; returns the result and how many rounds ran.
async fn rounds_until_given_up(
    policy: RmwPolicy,
    deadline: Option<Instant>,
    error: fn() -> RmwError,
) -> (Result<(), RmwError>, u32) {
    let rounds = AtomicU32::new(0);
    let result = read_modify_write(
        &policy,
        deadline,
        |e| *e == RmwError::Conflict,
        |_| {
            rounds.fetch_add(1, Ordering::SeqCst);
            async move { Err(error()) }
        },
    )
    .await;
    (result, rounds.load(Ordering::SeqCst))
}

#[tokio::test]
async fn given_non_conflict_error_when_looping_then_no_second_round() {
    assert_eq!(rounds_until_given_up(fast_policy(5), None, || RmwError::Fatal).await, (Err(RmwError::Fatal), 1));
}

#[tokio::test]
async fn given_endless_conflict_when_looping_then_bounded_by_attempts() {
    assert_eq!(rounds_until_given_up(fast_policy(4), None, || RmwError::Conflict).await, (Err(RmwError::Conflict), 4));
}

#[tokio::test]
async fn given_deadline_inside_the_margin_when_conflicting_then_gives_up_without_sleeping_past_it() {
    // No second round may start when it could not finish before the deadline minus the margin.
    let policy = RmwPolicy { margin: Duration::from_secs(5), ..fast_policy(100) };
    let deadline = Instant::now() + Duration::from_secs(2);
    assert_eq!(
        rounds_until_given_up(policy, Some(deadline), || RmwError::Conflict).await,
        (Err(RmwError::Conflict), 1)
    );
}

#[tokio::test]
async fn given_sdk_client_without_keeper_classifier_when_account_quota_error_then_sdk_retries_it() {
    // The gap the classifier exists for: without it the SDK spends every attempt on an account quota.
    let (url, count) = stub_server(vec![(400, r#"{"__type":"LimitExceededException","message":"quota"}"#); 10]).await;
    let settings = settings(1, 4);
    let sdk = stub_sdk_config(&url, &settings).await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let result = client
        .get_item()
        .table_name("t")
        .key("id", aws_sdk_dynamodb::types::AttributeValue::S("x".into()))
        .send()
        .await;
    assert!(result.is_err());
    assert_eq!(count.load(Ordering::SeqCst), 4);
}
