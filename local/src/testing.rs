//! What tests share that stand on the emulator (its own conformance tests and keeper's end-to-end suites): an
//! emulator per test on a free port, the call log by operation, and a raw HTTP client for the admin API.

use serde_json::Value;

use crate::faults::Call;
use crate::server::{Running, start as listen};
use crate::world::World;

/// An emulator on a free loopback port, seeded; it stops when dropped.
pub async fn start(seed: Value) -> Running {
    let world = World::from_seed(seed, crate::clock::now_ms()).expect("a valid seed");
    listen(world, "127.0.0.1:0").await.expect("the emulator starts")
}

/// The calls of one operation, in order.
pub fn calls(running: &Running, operation: &str) -> Vec<Call> {
    running.emulator.calls().into_iter().filter(|c| c.operation == operation).collect()
}

/// The value of a parameter of each call of one operation, sorted (for order-free comparisons).
pub fn called_with(running: &Running, operation: &str, param: &str) -> Vec<String> {
    let mut out: Vec<String> =
        calls(running, operation).into_iter().filter_map(|c| c.params.get(param).cloned()).collect();
    out.sort();
    out
}

/// One HTTP/1.1 exchange on a fresh connection, written by hand so that nothing between the test and the emulator
/// fixes the request up. `head` is the request line and any headers, each ending in CRLF; `host`, `content-length`
/// and `connection: close` are added. Returns the status, the headers (names lower-cased) and the body as sent.
pub async fn exchange(running: &Running, head: &str, body: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(running.addr).await.expect("connect");
    let head = format!("{head}host: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", running.addr, body.len());
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(body).await.expect("write");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read");
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("an HTTP response");
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).expect("a status");
    let headers = lines
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())))
        .collect();
    (status, headers, response[split + 4..].to_vec())
}

/// A plain HTTP/1.1 request to the admin API; returns the status and the JSON body.
pub async fn admin(running: &Running, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!("{method} {path} HTTP/1.1\r\ncontent-type: application/json\r\n");
    let (status, headers, bytes) = exchange(running, &head, body.as_bytes()).await;
    let text = String::from_utf8_lossy(&bytes);
    let chunked = headers.iter().any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        // Only the admin API is read this way, and it answers with one chunk.
        text.split_once("\r\n")
            .map(|(_, rest)| rest.rsplit_once("\r\n0\r\n").map(|(b, _)| b).unwrap_or(rest))
            .unwrap_or(&text)
    } else {
        &text
    };
    (status, serde_json::from_str(body.trim()).unwrap_or(Value::Null))
}
