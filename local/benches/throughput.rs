//! The emulator's throughput with N concurrent clients and L ms of injected latency per call, against the ideal N/L
//! calls per second: whether delayed calls wait side by side (as at AWS) or queue behind each other. A benchmark, not
//! a test: it prints a table and writes JSON (`target/bench/emulator-throughput.json`); it asserts nothing.
//!
//! `make bench-emulator` (release), or `cargo bench -p local --bench throughput -- [seconds]`.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One keep-alive connection's calls until `until`; returns how many were answered 200.
async fn client(addr: std::net::SocketAddr, until: Instant) -> u64 {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).ok();
    let body = r#"{"Names":["b0"]}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nhost: {addr}\r\nx-amz-target: PhotonAdminProxyService.DescribeImageBuilders\r\ncontent-type: application/x-amz-json-1.1\r\nauthorization: AWS4-HMAC-SHA256 Credential=AKIDBENCH/20261123/us-east-1/appstream/aws4_request, SignedHeaders=host, Signature=00\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut done = 0;
    let mut buffer = Vec::with_capacity(4096);
    while Instant::now() < until {
        stream.write_all(request.as_bytes()).await.expect("write");
        buffer.clear();
        // Read the head, then exactly content-length bytes of body.
        let (head_end, length) = loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "the emulator closed the connection");
            buffer.extend_from_slice(&chunk[..n]);
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap_or(0)))
                    .unwrap_or(0);
                if head.starts_with("http/1.1 200") {
                    done += 1;
                }
                break (end + 4, length);
            }
        };
        while buffer.len() < head_end + length {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "the emulator closed the connection mid-body");
            buffer.extend_from_slice(&chunk[..n]);
        }
    }
    done
}

fn main() {
    let seconds: f64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(3.0);
    // The emulator runs as in tests and `keeper-local serve`: a multi-threaded runtime with one worker per core.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut rows = Vec::new();
    println!("emulator throughput, DescribeImageBuilders over awsJson1_1, {seconds} s per row");
    println!("{:>4} {:>6} {:>10} {:>10} {:>8}", "N", "L ms", "calls/s", "ideal N/L", "ratio");
    for (n, latency) in [(1u64, 20u64), (8, 20), (32, 20), (64, 20), (32, 0)] {
        let seed = json!({
            "regions": {"us-east-1": {"imageBuilders": {"b0": {"State": "RUNNING"}}}},
            "faults": {"rules": [{"operation": "DescribeImageBuilders", "latencyMs": latency}]},
        });
        let (calls, elapsed) = runtime.block_on(async {
            let running = local::testing::start(seed).await;
            let start = Instant::now();
            let until = start + Duration::from_secs_f64(seconds);
            let tasks: Vec<_> = (0..n).map(|_| tokio::spawn(client(running.addr, until))).collect();
            let mut calls = 0;
            for t in tasks {
                calls += t.await.expect("client task");
            }
            (calls, start.elapsed().as_secs_f64())
        });
        let rate = calls as f64 / elapsed;
        let ideal = if latency == 0 { f64::NAN } else { n as f64 * 1000.0 / latency as f64 };
        let ratio = rate / ideal;
        if latency == 0 {
            println!("{n:>4} {latency:>6} {rate:>10.0} {:>10} {:>8}", "-", "-");
        } else {
            println!("{n:>4} {latency:>6} {rate:>10.0} {ideal:>10.0} {ratio:>8.2}");
        }
        rows.push(json!({"clients": n, "latencyMs": latency, "callsPerSecond": rate, "idealCallsPerSecond": if ideal.is_nan() { serde_json::Value::Null } else { json!(ideal) }, "ratio": if ratio.is_nan() { serde_json::Value::Null } else { json!(ratio) }}));
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    std::fs::create_dir_all(&dir).expect("target/bench");
    let path = dir.join("emulator-throughput.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json!({"seconds": seconds, "rows": rows})).unwrap()).unwrap();
    println!("written: {}", path.display());
}
