//! The Lambda runtime API (version 2018-06-01) on loopback, under the test's control: it hands a bootstrap one
//! event at a time with the deadline the test chooses, and records the answer. `cargo lambda watch` serves the same
//! API for the Lambda-path tests, but sends its timeout where Lambda sends a date and cannot be told a deadline;
//! a test that kills a bootstrap mid-run and redelivers as Lambda would needs both.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// How the bootstrap answered one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// `/response`: the function's result.
    Response(Value),
    /// `/error`: `{errorType, errorMessage}`.
    Error(Value),
}

struct Invocation {
    id: String,
    event: Value,
    deadline_ms: u128,
}

struct Shared {
    queue: tokio::sync::Mutex<mpsc::UnboundedReceiver<Invocation>>,
    waiting: Mutex<HashMap<String, oneshot::Sender<Answer>>>,
}

/// A runtime API on a free loopback port; it stops with the test's runtime.
pub struct RuntimeApi {
    /// What `AWS_LAMBDA_RUNTIME_API` is set to: `127.0.0.1:port`.
    pub address: String,
    queue: mpsc::UnboundedSender<Invocation>,
    shared: Arc<Shared>,
}

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let address = listener.local_addr().expect("its address").to_string();
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared { queue: tokio::sync::Mutex::new(rx), waiting: Mutex::new(HashMap::new()) });
        let serving = shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                    });
                    // A bootstrap killed while it waits for an event ends its connection: nothing to report.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        RuntimeApi { address, queue: tx, shared }
    }

    /// Queues one invocation with `deadline`; the receiver gets the bootstrap's answer, and never resolves when the
    /// bootstrap dies before answering (as a Lambda invocation whose process was killed gets no answer from it).
    pub fn invoke(&self, id: &str, event: &Value, deadline: SystemTime) -> oneshot::Receiver<Answer> {
        let (tx, rx) = oneshot::channel();
        self.shared.waiting.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), tx);
        let deadline_ms = deadline.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
        let invocation = Invocation { id: id.to_string(), event: event.clone(), deadline_ms };
        self.queue.send(invocation).expect("the runtime API is serving");
        rx
    }
}

fn reply(status: u16, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    Response::builder().status(status).body(Full::new(body.into())).unwrap_or_else(|_| Response::new(Full::default()))
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else { return reply(404, "not the runtime API") };
    if req.method() == Method::GET && rest == "invocation/next" {
        // One waiting bootstrap takes the next event; a second one waits behind it, as in one execution environment.
        let next = shared.queue.lock().await.recv().await;
        let Some(invocation) = next else { return reply(500, "no more invocations") };
        return Response::builder()
            .status(200)
            .header("lambda-runtime-aws-request-id", &invocation.id)
            .header("lambda-runtime-deadline-ms", invocation.deadline_ms.to_string())
            .header("lambda-runtime-invoked-function-arn", "arn:aws:lambda:us-east-1:123456789012:function:keeper")
            .header("lambda-runtime-trace-id", "Root=1-00000000-000000000000000000000000;Sampled=0")
            .body(Full::new(Bytes::from(invocation.event.to_string())))
            .unwrap_or_else(|_| reply(500, "bad event"));
    }
    if req.method() != Method::POST {
        return reply(405, "GET next, or POST an answer");
    }
    let answer = |body: Value| {
        if rest.ends_with("/response") {
            Some(Answer::Response(body))
        } else if rest.ends_with("/error") {
            Some(Answer::Error(body))
        } else {
            None
        }
    };
    let id = rest.strip_prefix("invocation/").and_then(|r| r.split('/').next()).unwrap_or_default().to_string();
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let body: Value =
        serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    if let Some(answer) = answer(body)
        && let Some(waiting) = shared.waiting.lock().unwrap_or_else(|e| e.into_inner()).remove(&id)
    {
        let _ = waiting.send(answer);
    }
    reply(202, "{\"status\":\"OK\"}")
}
