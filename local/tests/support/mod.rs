//! What the emulator's conformance tests share: an emulator on a free port, SDK configurations aimed at it, and a
//! raw HTTP client for the admin API.
#![allow(dead_code)]

use aws_types::SdkConfig;
use local::{Running, World};
use serde_json::Value;
use shared::config::Settings;
use std::time::Duration;

pub async fn emulator(seed: Value) -> Running {
    let world = World::from_seed(seed, local::world::now_ms()).expect("valid seed");
    local::start(world, "127.0.0.1:0").await.expect("emulator starts")
}

/// One attempt per call: conformance tests see the emulator's answer, not a retry of it.
pub async fn sdk(running: &Running, region: &str) -> SdkConfig {
    sdk_with(running, region, 1).await
}

/// `attempts` per call with a 1 ms backoff, for tests of keeper's retry classifier against injected faults.
pub async fn sdk_with(running: &Running, region: &str, attempts: u32) -> SdkConfig {
    let settings =
        Settings { max_attempts: attempts, retry_initial_backoff: Duration::from_millis(1), ..Settings::default() };
    shared::clients::local_sdk_config(&running.url, region, &settings).await
}

pub fn settings(attempts: u32) -> Settings {
    Settings { max_attempts: attempts, retry_initial_backoff: Duration::from_millis(1), ..Settings::default() }
}

/// A plain HTTP/1.1 request to the admin API; returns the status and the JSON body.
pub async fn admin(running: &Running, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(running.addr).await.expect("connect");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        running.addr,
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        // Only the admin API is read this way, and it answers with one chunk.
        body.split_once("\r\n")
            .map(|(_, rest)| rest.rsplit_once("\r\n0\r\n").map(|(b, _)| b).unwrap_or(rest))
            .unwrap_or(body)
    } else {
        body
    };
    (status, serde_json::from_str(body.trim()).unwrap_or(Value::Null))
}

/// The operations the emulator answered, in order, as `Service.Operation` with the named parameter.
pub fn calls_of(running: &Running, operation: &str) -> Vec<local::Call> {
    running.emulator.calls().into_iter().filter(|c| c.operation == operation).collect()
}
