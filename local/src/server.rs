//! The one HTTP server of the emulated AWS: routes each request by the service in its SigV4 scope, applies injected
//! faults, logs the call, and serves the admin API under `/_keeper/`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::clock::now_ms;
use crate::faults::{Call, FaultRule};
use crate::wire::{ApiError, ApiRequest, Body, Encoded};
use crate::world::World;
use crate::{appstream, auth, cloudfront, imagebuilder, s3, secretsmanager};

/// The largest request body accepted (CloudFront and Image Builder bodies are far smaller).
const MAX_BODY: usize = 10 * 1024 * 1024;

/// The emulated AWS: its state, its call log, and the S3 service mounted beside it.
pub struct Emulator {
    world: Mutex<World>,
    calls: Mutex<Vec<Call>>,
    seq: AtomicU64,
    s3: s3s::service::S3Service,
    objects: Arc<s3::Store>,
    dice: Mutex<fastrand::Rng>,
    credentials: auth::Mode,
    /// Calls whose answers wait for a test to let them go.
    holds: Mutex<Vec<Hold>>,
}

/// One hold not yet reached: the operation, how many of its calls pass first, who is told when it is reached, and
/// the release it then waits for.
type Hold = (String, usize, oneshot::Sender<()>, oneshot::Receiver<()>);

/// A call held after it took effect, before its answer leaves: the caller is between its read (or write) and its
/// next step for as long as the test wants, so another writer can act exactly there.
pub struct Held {
    /// Fires when the call has taken effect and waits.
    pub reached: oneshot::Receiver<()>,
    release: oneshot::Sender<()>,
}

impl Held {
    /// Lets the held call answer (dropping the hold does the same).
    pub fn release(self) {
        let _ = self.release.send(());
    }
}

impl Emulator {
    pub fn new(world: World) -> Arc<Emulator> {
        let objects = Arc::new(s3::Store::from_seed(&world.s3));
        let dice = Mutex::new(world.random_seed.map(fastrand::Rng::with_seed).unwrap_or_default());
        let credentials = if world.verify_signatures { auth::Mode::Verify } else { auth::Mode::AnyKey };
        Arc::new(Emulator {
            credentials,
            dice,
            world: Mutex::new(world),
            calls: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
            s3: s3::service(objects.clone()),
            objects,
            holds: Mutex::new(Vec::new()),
        })
    }

    /// Holds the next call of `operation` (any service) once it has taken effect, until the [`Held`] is released
    /// or dropped.
    pub fn hold(&self, operation: &str) -> Held {
        self.hold_after(operation, 0)
    }

    /// [`Emulator::hold`] for the call of `operation` after the next `passing` ones, which answer as usual (the
    /// second update of a run, say).
    pub fn hold_after(&self, operation: &str, passing: usize) -> Held {
        let (reached_tx, reached) = oneshot::channel();
        let (release, release_rx) = oneshot::channel();
        let hold = (operation.into(), passing, reached_tx, release_rx);
        self.holds.lock().unwrap_or_else(|e| e.into_inner()).push(hold);
        Held { reached, release }
    }

    /// Forgets every hold no call has reached.
    pub fn clear_holds(&self) {
        self.holds.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Waits here, holding no lock, when a test holds this call.
    async fn wait_if_held(&self, operation: &str) {
        let held = {
            let mut holds = self.holds.lock().unwrap_or_else(|e| e.into_inner());
            match holds.iter().position(|(op, ..)| op == operation) {
                Some(at) if holds[at].1 > 0 => {
                    holds[at].1 -= 1;
                    None
                }
                Some(at) => Some(holds.remove(at)),
                None => None,
            }
        };
        if let Some((_, _, reached, release)) = held {
            let _ = reached.send(());
            let _ = release.await;
        }
    }

    /// The state, locked: tests read and change it directly.
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether signatures are checked (decided once, from the world it started with).
    pub fn verifies_signatures(&self) -> bool {
        self.credentials == auth::Mode::Verify
    }

    /// Every call answered so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn clear_calls(&self) {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub fn add_fault(&self, rule: FaultRule) {
        self.world().add_faults([rule]);
    }

    /// The whole state as of now as JSON (the seed format), S3 objects included.
    pub fn dump(&self) -> Value {
        let mut world = {
            let mut live = self.world();
            live.tick(now_ms());
            live.clone()
        };
        world.s3 = self.objects.snapshot();
        serde_json::to_value(&world).unwrap_or(Value::Null)
    }

    /// S3 objects as they are now (bucket → key → body as UTF-8, lossy).
    pub fn objects(&self) -> &s3::Store {
        &self.objects
    }

    fn log(
        &self,
        service: &str,
        operation: &str,
        region: &str,
        params: BTreeMap<String, String>,
        outcome: &Result<(), String>,
        injected: bool,
    ) {
        let call = Call {
            seq: self.seq.fetch_add(1, Ordering::SeqCst) + 1,
            service: service.into(),
            operation: operation.into(),
            region: region.into(),
            params,
            outcome: match outcome {
                Ok(()) => "ok".into(),
                Err(code) => code.clone(),
            },
            injected,
        };
        tracing::debug!(service, operation, region, outcome = %call.outcome, "call");
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).push(call);
    }
}

/// An emulator listening on a port; stops when dropped.
pub struct Running {
    pub url: String,
    pub addr: SocketAddr,
    pub emulator: Arc<Emulator>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts the emulator on `addr` (`127.0.0.1:0` picks a free port) in the current Tokio runtime.
pub async fn start(world: World, addr: &str) -> std::io::Result<Running> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let emulator = Emulator::new(world);
    let (tx, rx) = oneshot::channel();
    tokio::spawn(serve(listener, emulator.clone(), rx));
    Ok(Running { url: format!("http://{addr}"), addr, emulator, shutdown: Some(tx) })
}

async fn serve(listener: TcpListener, emulator: Arc<Emulator>, mut shutdown: oneshot::Receiver<()>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut shutdown => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let emulator = emulator.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let emulator = emulator.clone();
                async move {
                    let response = handle(emulator, req).await;
                    // Failing the service closes the connection without writing the response: the answer is lost.
                    match response.extensions().get::<LostAnswer>() {
                        Some(_) => Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "answer lost (fault)")),
                        None => Ok(response),
                    }
                }
            });
            if let Err(e) =
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await
            {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// The status of an answer that is never sent: [`respond`] marks it, and the connection is closed instead.
const LOST_ANSWER: u16 = 0;

/// Marks a response that must not reach the client (a `loseAnswer` fault).
#[derive(Debug, Clone, Copy)]
struct LostAnswer;

fn respond(encoded: Encoded, request_id: &str) -> Response<Body> {
    if encoded.status == LOST_ANSWER {
        let mut lost = Response::new(full(""));
        lost.extensions_mut().insert(LostAnswer);
        return lost;
    }
    let mut builder = Response::builder().status(encoded.status).header("x-amzn-RequestId", request_id);
    for (k, v) in &encoded.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder.body(full(encoded.body)).unwrap_or_else(|_| Response::new(full("bad response")))
}

fn json_response(status: u16, value: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(full(value.to_string()))
        .unwrap_or_else(|_| Response::new(full("")))
}

async fn handle(emulator: Arc<Emulator>, req: Request<Incoming>) -> Response<Body> {
    if req.uri().path().starts_with("/_keeper/") {
        return admin(&emulator, req).await;
    }
    let request_id = uuid::Uuid::new_v4().to_string();
    let authorization = req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let scope = match authorization.map(auth::parse) {
        Some(Ok(scope)) => scope,
        Some(Err(e)) => return refuse(&req, None, e, &request_id),
        None => {
            let e = ApiError::new(
                "MissingAuthenticationToken",
                403,
                "requests must be signed with SigV4; the service is read from the credential scope",
            );
            return refuse(&req, None, e, &request_id);
        }
    };
    if scope.service == "s3" {
        let mut req = req;
        match auth::check(emulator.credentials, &scope, req.method(), req.uri(), req.headers(), None) {
            Err(e) => return refuse(&req, Some("s3"), e, &request_id),
            // Any key: s3s checks signatures itself, so the request goes on signed with the documented pair.
            Ok(Some(signature)) => {
                if let Ok(value) = auth::resigned(&scope, &signature).parse() {
                    req.headers_mut().insert(http::header::AUTHORIZATION, value);
                }
            }
            Ok(None) => {}
        }
        let (operation, _, _) = s3::operation(req.method(), req.uri());
        let response = s3::handle(&emulator.s3, req, &scope.region, |op, params, outcome| {
            emulator.log("s3", op, &scope.region, params, outcome, false)
        })
        .await;
        emulator.wait_if_held(operation).await;
        return response;
    }
    let (parts, body) = req.into_parts();
    let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return json_response(413, &json!({"message": "request body too large or unreadable"})),
    };
    let checked = auth::check(emulator.credentials, &scope, &parts.method, &parts.uri, &parts.headers, Some(&body));
    if let Err(e) = checked {
        let req = Request::from_parts(parts, ());
        return refuse(&req, Some(&scope.service), e, &request_id);
    }
    let request = ApiRequest {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts
            .uri
            .query()
            .map(|q| {
                q.split('&')
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        (percent_decode(k), percent_decode(v))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        headers: parts.headers,
        body,
        region: scope.region.clone(),
        now_ms: now_ms(),
    };
    let encoded = match scope.service.as_str() {
        "imagebuilder" => call(&emulator, request, "imagebuilder", imagebuilder::route, imagebuilder::status_of, imagebuilder::validate, |world, request, op| {
            let (timing, account) = (world.timing.clone(), world.account_id.clone());
            let state = &mut world.region(&request.region).imagebuilder;
            imagebuilder::execute(state, &imagebuilder::Call { account: &account, region_name: &request.region, timing: &timing, req: request }, op)
        })
        .await
        .map(|r| imagebuilder::encode(r, &request_id)),
        "appstream" => {
            let protocol = appstream::Protocol::of(&request);
            call(&emulator, request, "appstream", appstream::route, appstream::status_of, appstream::validate, |world, request, op| {
                let account = world.account_id.clone();
                let pace = (world.timing.transition_millis, world.paging.describe_image_builders);
                appstream::execute(&mut world.region(&request.region).image_builders, &account, pace, request, op)
            })
            .await
            .map(|r| appstream::encode(protocol, r))
        }
        "cloudfront" => call(&emulator, request, "cloudfront", cloudfront::route, cloudfront::status_of, cloudfront::validate, |world, request, op| {
            cloudfront::execute(&mut world.cloudfront, request, op, request.now_ms)
        })
        .await
        .map(|r| cloudfront::encode(r, &request_id)),
        "secretsmanager" => call(&emulator, request, "secretsmanager", secretsmanager::route, secretsmanager::status_of, secretsmanager::validate, |world, request, op| {
            let account = world.account_id.clone();
            secretsmanager::execute(&mut world.region(&request.region).secretsmanager, &account, request, op)
        })
        .await
        .map(secretsmanager::encode),
        other => Err(Encoded {
            status: 400,
            headers: vec![("content-type".into(), "application/json".into())],
            body: json!({"message": format!("service `{other}` is not emulated; served: appstream, imagebuilder, cloudfront, secretsmanager, s3")}).to_string().into(),
        }),
    };
    match encoded {
        Ok(e) | Err(e) => respond(e, &request_id),
    }
}

/// Routes, validates against the service model, injects faults, executes and logs one call; returns the protocol's result for encoding. The latency of a
/// fault is awaited before the state is touched, holding no lock and blocking no worker, so concurrent calls wait
/// side by side as they would at AWS; the request's clock is read again afterwards. An injected error never changes
/// the state.
#[allow(clippy::type_complexity)]
async fn call<R>(
    emulator: &Emulator,
    mut request: ApiRequest,
    service: &str,
    route: fn(&ApiRequest) -> Result<(&'static str, BTreeMap<String, String>), ApiError>,
    status_of: fn(&str) -> u16,
    validate: fn(&ApiRequest, &str) -> Result<(), ApiError>,
    execute: impl FnOnce(&mut World, &ApiRequest, &str) -> Result<R, ApiError>,
) -> Result<Result<R, ApiError>, Encoded> {
    let (operation, params) = match route(&request) {
        Ok(found) => found,
        Err(e) => {
            emulator.log(service, "(unknown)", &request.region, BTreeMap::new(), &Err(e.code.clone()), false);
            return Ok(Err(e));
        }
    };
    // The model's constraints come before any fault or service logic, and outside the state's lock.
    if let Err(e) = validate(&request, operation) {
        emulator.log(service, operation, &request.region, params, &Err(e.code.clone()), false);
        return Ok(Err(e));
    }
    let injection = {
        let mut world = emulator.world();
        let mut dice = emulator.dice.lock().unwrap_or_else(|e| e.into_inner());
        world.faults.inject(service, operation, &request.region, &params, || dice.f64(), status_of)
    };
    if injection.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(injection.latency_ms)).await;
        request.now_ms = now_ms();
    }
    if let Some(error) = injection.error {
        emulator.log(service, operation, &request.region, params, &Err(error.code.clone()), true);
        return Ok(Err(error));
    }
    let result = execute(&mut emulator.world(), &request, operation);
    let outcome = result.as_ref().map(|_| ()).map_err(|e| e.code.clone());
    emulator.log(service, operation, &request.region, params, &outcome, injection.lose_answer);
    emulator.wait_if_held(operation).await;
    if injection.latency_after_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(injection.latency_after_ms)).await;
    }
    if injection.lose_answer {
        return Err(Encoded { status: LOST_ANSWER, headers: Vec::new(), body: Bytes::new() });
    }
    Ok(result)
}

/// A request refused before any service saw it (credentials), answered in the error format of the protocol it came
/// in: the service named in its scope, or, when it has none, the one its path and headers show.
fn refuse<B>(req: &Request<B>, service: Option<&str>, e: ApiError, request_id: &str) -> Response<Body> {
    let path = req.uri().path();
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let service = service.unwrap_or(if path.starts_with("/2020-05-31/") {
        "cloudfront"
    } else if header("x-amz-target").is_some_and(|t| t.starts_with("secretsmanager.")) {
        "secretsmanager"
    } else if header("x-amz-target").is_some() || path.starts_with("/service/") {
        "appstream"
    } else if header("x-amz-content-sha256").is_some() {
        "s3"
    } else {
        "imagebuilder"
    });
    let xml_code = e.code.trim_end_matches("Exception").to_string();
    let json_code =
        if e.code == "MissingAuthenticationToken" { format!("{}Exception", e.code) } else { e.code.clone() };
    let encoded = match service {
        "cloudfront" => cloudfront::encode(Err(ApiError { code: xml_code, ..e }), request_id),
        "s3" => Encoded {
            status: e.status,
            headers: vec![("content-type".into(), "application/xml".into())],
            body: format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>{}</Code><Message>{}</Message><RequestId>{request_id}</RequestId></Error>"#,
                crate::wire::xml_escape(&xml_code),
                crate::wire::xml_escape(&e.message)
            )
            .into(),
        },
        "appstream" => {
            let cbor = path.starts_with("/service/") || header("smithy-protocol") == Some("rpc-v2-cbor");
            let protocol = if cbor { appstream::Protocol::Cbor } else { appstream::Protocol::Json };
            appstream::encode(protocol, Err(ApiError { code: json_code, ..e }))
        }
        "secretsmanager" => secretsmanager::encode(Err(ApiError { code: json_code, ..e })),
        _ => imagebuilder::encode(Err(ApiError { code: json_code, ..e }), request_id),
    };
    respond(encoded, request_id)
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned()
}

/// `/_keeper/state` (GET), `/_keeper/calls` (GET, DELETE), `/_keeper/faults` (GET, POST a rule or a list, DELETE),
/// `/_keeper/rotations` (GET the Secrets Manager rotations no driver has run; DELETE takes them, answering them).
async fn admin(emulator: &Emulator, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = http_body_util::Limited::new(body, MAX_BODY).collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    match (parts.method.as_str(), parts.uri.path()) {
        ("GET", "/_keeper/state") => json_response(200, &emulator.dump()),
        ("GET", "/_keeper/calls") => json_response(200, &serde_json::to_value(emulator.calls()).unwrap_or_default()),
        ("DELETE", "/_keeper/calls") => {
            emulator.clear_calls();
            json_response(200, &json!({"cleared": true}))
        }
        ("GET", "/_keeper/faults") => {
            json_response(200, &serde_json::to_value(&emulator.world().faults.rules).unwrap_or_default())
        }
        ("POST", "/_keeper/faults") => {
            let rules: Result<Vec<FaultRule>, _> = serde_json::from_slice::<Value>(&body).and_then(|v| match v {
                Value::Array(_) => serde_json::from_value(v),
                other => serde_json::from_value(other).map(|r| vec![r]),
            });
            match rules {
                Ok(rules) => {
                    let n = rules.len();
                    emulator.world().add_faults(rules);
                    json_response(200, &json!({"added": n}))
                }
                Err(e) => json_response(400, &json!({"message": format!("not a fault rule: {e}")})),
            }
        }
        ("DELETE", "/_keeper/faults") => {
            emulator.world().faults.rules.clear();
            json_response(200, &json!({"cleared": true}))
        }
        ("GET", "/_keeper/rotations") => {
            json_response(200, &serde_json::to_value(emulator.world().rotation_requests()).unwrap_or_default())
        }
        ("DELETE", "/_keeper/rotations") => {
            json_response(200, &serde_json::to_value(emulator.world().take_rotation_requests()).unwrap_or_default())
        }
        (method, path) => json_response(
            404,
            &json!({"message": format!("no admin route {method} {path}; try GET /_keeper/state, /_keeper/calls, /_keeper/faults, /_keeper/rotations")}),
        ),
    }
}
