//! The timeline simulation's engine: a seeded history of deliveries, Lambda's retries, re-sends days later, other
//! writers and faults, run against the emulator through the real host, with each function's invariants checked after
//! every step and once every delivery has been handled or dead-lettered.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use serde_json::Value;
use shared::config::Lookup;
use shared::host::{Function, Host};
use shared::idempotency::{IdempotencyStore, Lock, MemoryStore, Now, Record, StoreError};
use shared::report::{Outcome, Report};
use shared::telemetry::{Metrics, emf_level_for, lambda_keeps};
use testbed::emulator::{fast_settings, mutating, sdk_config, start};

/// How a fault meets the next call of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Rate limited (retried by the SDK, then retryable).
    Throttled,
    /// The service failed (5xx).
    Unavailable,
    /// The call takes effect and its answer is lost: the connection is reset.
    AnswerLost,
    /// A permanent refusal (access denied).
    Refused,
}

/// One step of a history. `E` is the function's kind of event, `W` its other writers.
#[derive(Debug, Clone)]
pub enum Step<E, W> {
    /// A new event, delivered once (`dry_run` asks a hand request for a dry run).
    Deliver { event: E, dry_run: bool },
    /// A new event, delivered twice at the same moment (to two instances).
    DeliverTwiceAtOnce { event: E },
    /// Lambda's retry (after about 1 or 3 minutes) of an earlier delivery that failed retryably: same payload,
    /// same request id. `pick` chooses among the deliveries waiting for a retry.
    LambdaRetry { pick: usize },
    /// An earlier delivery sent again days later (from the dead-letter queue, by hand): the guard has forgotten it,
    /// and Lambda gives it a new request id. `pick` chooses among every earlier delivery.
    ResendDaysLater { pick: usize },
    /// The next call of `operation` (an index into the model's operations) meets `fault`.
    Fault { operation: usize, fault: Fault },
    /// Someone else changes the account.
    Other { writer: W },
}

/// What a function brings to the simulation.
#[async_trait]
pub trait Model: Send + Sync + 'static {
    type F: Function;
    type Event: Clone + Debug + Send + Sync + 'static;
    type Writer: Clone + Debug + Send + Sync + 'static;

    /// The account every history starts from.
    fn seed(&self) -> Value;
    /// The function's settings.
    fn settings(&self) -> Vec<(&'static str, String)>;
    fn events(&self) -> BoxedStrategy<Self::Event>;
    fn writers(&self) -> BoxedStrategy<Self::Writer>;
    /// The operations a fault may hit, with each fault's code for this service.
    fn operations(&self) -> &'static [(&'static str, &'static str, &'static str, &'static str)];
    /// The payload of the `n`-th new event of a history (unique ids come from `n`); may change the account first
    /// (an upload).
    fn payload(&self, event: &Self::Event, n: usize, world: &World) -> Value;
    /// Another writer acts.
    fn write(&self, writer: &Self::Writer, world: &World);
    /// What must hold after every step (the account, the reports so far).
    fn always(&self, world: &World, log: &[Delivered]) -> Result<(), String>;
    /// What must hold once every delivery was handled or dead-lettered, after a final calm delivery of
    /// [`Model::settle`] when the model has one.
    fn quiescent(&self, world: &World, log: &[Delivered]) -> Result<(), String>;
    /// The same event in its other envelope, when it has one (a build announced by EventBridge and by SNS): what a
    /// twin delivery at the same moment carries.
    fn twin(&self, event: &Self::Event) -> Self::Event {
        event.clone()
    }
    /// The event that brings the account to its desired state at quiescence (a drift repair, a sweep), if any.
    fn settle(&self) -> Option<Self::Event> {
        None
    }
}

/// The account under test.
pub struct World {
    pub running: local::Running,
    /// The step that just ran was a delivery (nothing has happened since).
    fresh: std::sync::atomic::AtomicBool,
    /// Where in the call log another writer acted.
    others: Mutex<Vec<usize>>,
}

impl World {
    /// Whether the last delivery of the log is the step that just ran, so its report can be held to the account.
    pub fn fresh(&self) -> bool {
        self.fresh.load(std::sync::atomic::Ordering::SeqCst)
    }
    /// Whether another writer acted between calls `from` and `to` of the log.
    pub fn other_writer_between(&self, from: usize, to: usize) -> bool {
        self.others.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|at| (from..=to).contains(at))
    }
    pub fn calls(&self) -> Vec<local::Call> {
        self.running.emulator.calls()
    }
    pub fn dump(&self) -> Value {
        self.running.emulator.dump()
    }
}

/// One delivery and what came of it.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub payload: Value,
    pub request_id: String,
    /// The report, or the Lambda error `(type, message)`.
    pub answer: Result<Report, (String, String)>,
    pub metrics: Metrics,
    /// The emulator's calls made while it ran (concurrent deliveries share a window).
    pub calls: std::ops::Range<usize>,
    pub dry_run: bool,
    /// Another writer acted since the previous delivery.
    pub after_other_writer: bool,
    /// Delivered at the same moment as another delivery of the same event.
    pub concurrent: bool,
}

impl Delivered {
    pub fn report(&self) -> Option<&Report> {
        self.answer.as_ref().ok()
    }
    pub fn retryable(&self) -> bool {
        matches!(&self.answer, Err((t, _)) if t.starts_with("Retryable."))
    }
}

/// The guard's records (forgotten when days pass) apart from the marks a function keeps for later runs, which live
/// as long as their own expiry.
#[derive(Default)]
struct SimStore {
    records: Mutex<Arc<MemoryStore>>,
    marks: MemoryStore,
}

impl SimStore {
    fn records(&self) -> Arc<MemoryStore> {
        self.records.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// Days pass: every event record and lease is past its TTL.
    fn forget_events(&self) {
        *self.records.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(MemoryStore::default());
    }
}

#[async_trait]
impl IdempotencyStore for SimStore {
    async fn put_in_progress(&self, record: &Record, now: Now) -> Result<Lock, StoreError> {
        self.records().put_in_progress(record, now).await
    }
    async fn complete(&self, record: &Record) -> Result<bool, StoreError> {
        self.records().complete(record).await
    }
    async fn delete(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        self.records().delete(id, owner).await
    }
    async fn get_mark(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.marks.get_mark(id).await
    }
    async fn put_mark(&self, id: &str, value: &str, expiration: i64) -> Result<(), StoreError> {
        self.marks.put_mark(id, value, expiration).await
    }
}

/// A history's strategy: 1 to `max_steps` steps of the model's vocabulary.
pub fn history<M: Model>(model: &M, max_steps: usize) -> impl Strategy<Value = Vec<Step<M::Event, M::Writer>>> {
    let operations = model.operations().len();
    let fault =
        prop_oneof![Just(Fault::Throttled), Just(Fault::Unavailable), Just(Fault::AnswerLost), Just(Fault::Refused)];
    let step = prop_oneof![
        4 => (model.events(), proptest::bool::weighted(0.1)).prop_map(|(event, dry_run)| Step::Deliver { event, dry_run }),
        1 => model.events().prop_map(|event| Step::DeliverTwiceAtOnce { event }),
        2 => (0usize..8).prop_map(|pick| Step::LambdaRetry { pick }),
        1 => (0usize..8).prop_map(|pick| Step::ResendDaysLater { pick }),
        3 => (0..operations, fault).prop_map(|(operation, fault)| Step::Fault { operation, fault }),
        2 => model.writers().prop_map(|writer| Step::Other { writer }),
    ];
    proptest::collection::vec(step, 1..=max_steps)
}

/// The hosts of one history: two Lambda instances sharing one store.
struct Instances<F: Function> {
    one: Host<F>,
    two: Host<F>,
    store: Arc<SimStore>,
}

async fn instances<M: Model>(model: &M, world: &World, dry_run_setting: bool) -> Instances<M::F> {
    let store = Arc::new(SimStore::default());
    let mut settings = model.settings();
    settings.extend([("MAX_ATTEMPTS", "3".to_string()), ("RETRY_INITIAL_BACKOFF_MS", "1".to_string())]);
    if dry_run_setting {
        settings.push(("DRY_RUN", "true".into()));
    }
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let lookup = Lookup::from_pairs(&pairs);
    let sdk = sdk_config(&world.running, "us-east-1", &fast_settings(3)).await;
    let host = || Host::<M::F>::with_store(&sdk, &lookup, store.clone()).expect("the model's settings are valid");
    Instances { one: host(), two: host(), store }
}

fn with_dry_run(mut payload: Value) -> Value {
    let enveloped = ["Records", "detail-type", "scheduler"].iter().any(|k| payload.get(*k).is_some());
    if let (false, Some(o)) = (enveloped, payload.as_object_mut()) {
        o.insert("dryRun".into(), Value::Bool(true));
    }
    payload
}

fn answer_of(answer: Result<Report, lambda_runtime::Diagnostic>) -> Result<Report, (String, String)> {
    answer.map_err(|d| (d.error_type, d.error_message))
}

/// Runs one history and checks the model's invariants; `Err` names the broken one and the step.
pub async fn run<M: Model>(model: &M, steps: &[Step<M::Event, M::Writer>]) -> Result<(), String> {
    let world = World { running: start(model.seed()).await, fresh: Default::default(), others: Default::default() };
    let hosts = instances(model, &world, false).await;
    let mut log: Vec<Delivered> = Vec::new();
    let mut events = 0usize;
    let mut other_since = false;
    // Deliveries that failed retryably, waiting for Lambda's retry: (index in log, retries so far).
    let mut waiting: Vec<(usize, u32)> = Vec::new();
    let mut dead_lettered: Vec<usize> = Vec::new();
    for (at, step) in steps.iter().enumerate() {
        let before = world.calls().len();
        let delivers = matches!(
            step,
            Step::Deliver { .. }
                | Step::DeliverTwiceAtOnce { .. }
                | Step::LambdaRetry { .. }
                | Step::ResendDaysLater { .. }
        );
        world.fresh.store(delivers, std::sync::atomic::Ordering::SeqCst);
        match step {
            Step::Deliver { event, dry_run } => {
                let payload = model.payload(event, events, &world);
                let payload = if *dry_run { with_dry_run(payload) } else { payload };
                // Only a request by hand carries the flag (an envelope's payload is the event source's).
                let asked = payload.get("dryRun") == Some(&Value::Bool(true));
                let request_id = format!("req-{at}");
                let (answer, metrics) = hosts.one.answer_invocation(payload.clone(), None, Some(&request_id)).await;
                let d = Delivered {
                    payload,
                    request_id,
                    answer: answer_of(answer),
                    metrics,
                    calls: before..world.calls().len(),
                    dry_run: asked,
                    after_other_writer: std::mem::take(&mut other_since),
                    concurrent: false,
                };
                events += 1;
                if d.retryable() {
                    waiting.push((log.len(), 0));
                }
                log.push(d);
            }
            Step::DeliverTwiceAtOnce { event } => {
                let payload = model.payload(event, events, &world);
                let twin = model.payload(&model.twin(event), events, &world);
                // Two deliveries of one payload are one delivery twice (Lambda gave them one request id); a twin
                // in another envelope is another delivery.
                let (request_id, twin_id) = (format!("req-{at}"), format!("req-{at}-twin"));
                let twin_id = if twin == payload { request_id.clone() } else { twin_id };
                let ((a, ma), (b, mb)) = tokio::join!(
                    hosts.one.answer_invocation(payload.clone(), None, Some(&request_id)),
                    hosts.two.answer_invocation(twin.clone(), None, Some(&twin_id)),
                );
                let window = before..world.calls().len();
                let after_other_writer = std::mem::take(&mut other_since);
                let same = twin == payload;
                for ((answer, metrics), payload, request_id) in [(a, ma, payload, request_id), (b, mb, twin, twin_id)]
                    .into_iter()
                    .map(|(a, m, p, r)| ((a, m), p, r))
                {
                    let d = Delivered {
                        payload,
                        request_id,
                        answer: answer_of(answer),
                        metrics,
                        calls: window.clone(),
                        dry_run: false,
                        after_other_writer,
                        concurrent: same,
                    };
                    if d.retryable() {
                        waiting.push((log.len(), 0));
                    }
                    log.push(d);
                }
                events += 1;
            }
            Step::LambdaRetry { pick } => {
                if waiting.is_empty() {
                    continue;
                }
                let (index, retries) = waiting.remove(pick % waiting.len());
                retry(&hosts, &world, &mut log, index, retries, &mut waiting, &mut dead_lettered, &mut other_since)
                    .await;
            }
            Step::ResendDaysLater { pick } => {
                if log.is_empty() {
                    continue;
                }
                let original = log[pick % log.len()].clone();
                // Lambda's own retries come within minutes, before days pass and the guard forgets (with the
                // default IDEMPOTENCY_TTL_SECONDS of an hour): they are delivered first.
                while let Some((index, retries)) = waiting.pop() {
                    retry(&hosts, &world, &mut log, index, retries, &mut waiting, &mut dead_lettered, &mut other_since)
                        .await;
                }
                hosts.store.forget_events();
                let resent_from = world.calls().len();
                let request_id = format!("req-{at}-resent");
                let (answer, metrics) =
                    hosts.two.answer_invocation(original.payload.clone(), None, Some(&request_id)).await;
                let d = Delivered {
                    request_id,
                    answer: answer_of(answer),
                    metrics,
                    calls: resent_from..world.calls().len(),
                    after_other_writer: std::mem::take(&mut other_since),
                    concurrent: false,
                    ..original
                };
                if d.retryable() {
                    waiting.push((log.len(), 0));
                }
                log.push(d);
            }
            Step::Fault { operation, fault } => {
                let (op, throttled, unavailable, refused) = model.operations()[*operation];
                let mut rule = local::FaultRule { count: Some(1), ..local::FaultRule::error(op, "") };
                match fault {
                    Fault::Throttled => rule.error = Some(throttled.into()),
                    Fault::Unavailable => {
                        rule.error = Some(unavailable.into());
                        rule.status = Some(500);
                    }
                    Fault::Refused => rule.error = Some(refused.into()),
                    Fault::AnswerLost => {
                        rule.error = None;
                        rule.lose_answer = true;
                    }
                }
                world.running.emulator.add_fault(rule);
            }
            Step::Other { writer } => {
                world.others.lock().unwrap_or_else(|e| e.into_inner()).push(before);
                model.write(writer, &world);
                other_since = true;
            }
        }
        common_invariants(&world, &log).map_err(|e| format!("after step {at} ({step:?}): {e}"))?;
        model.always(&world, &log).map_err(|e| format!("after step {at} ({step:?}): {e}"))?;
    }
    // Quiescence: no more faults; every waiting delivery is retried as Lambda would (twice), then dead-lettered.
    world.running.emulator.world().faults.rules.clear();
    while let Some((index, retries)) = waiting.pop() {
        retry(&hosts, &world, &mut log, index, retries, &mut waiting, &mut dead_lettered, &mut other_since).await;
    }
    world.fresh.store(true, std::sync::atomic::Ordering::SeqCst);
    if let Some(event) = model.settle() {
        let before = world.calls().len();
        let payload = model.payload(&event, events, &world);
        let (answer, metrics) = hosts.one.answer_invocation(payload.clone(), None, Some("req-settle")).await;
        log.push(Delivered {
            payload,
            request_id: "req-settle".into(),
            answer: answer_of(answer),
            metrics,
            calls: before..world.calls().len(),
            dry_run: false,
            after_other_writer: other_since,
            concurrent: false,
        });
    }
    common_invariants(&world, &log).map_err(|e| format!("at quiescence: {e}"))?;
    model.quiescent(&world, &log).map_err(|e| format!("at quiescence: {e}"))
}

/// Lambda's retry of `log[index]`, which had `retries` retries: a third failure is dead-lettered.
#[allow(clippy::too_many_arguments)]
async fn retry<F: Function>(
    hosts: &Instances<F>,
    world: &World,
    log: &mut Vec<Delivered>,
    index: usize,
    retries: u32,
    waiting: &mut Vec<(usize, u32)>,
    dead_lettered: &mut Vec<usize>,
    other_since: &mut bool,
) {
    let original = log[index].clone();
    let before = world.calls().len();
    let (answer, metrics) =
        hosts.one.answer_invocation(original.payload.clone(), None, Some(&original.request_id)).await;
    let d = Delivered {
        answer: answer_of(answer),
        metrics,
        calls: before..world.calls().len(),
        after_other_writer: std::mem::take(other_since),
        concurrent: false,
        ..original
    };
    let retryable = d.retryable();
    log.push(d);
    match (retryable, retries + 1 < 2) {
        (true, true) => waiting.push((log.len() - 1, retries + 1)),
        (true, false) => dead_lettered.push(log.len() - 1),
        _ => {}
    }
}

/// What every function promises whatever happened: a failed target is in the metrics at every log level the
/// template allows, and a dry run makes no mutating call.
fn common_invariants(world: &World, log: &[Delivered]) -> Result<(), String> {
    let calls = world.calls();
    for d in log {
        // A replay answers with the first run's report; its failures were counted when they happened.
        let failed_lines = d.report().filter(|r| !r.replayed).map(|r| r.count(Outcome::Failed)).unwrap_or(0) as u64;
        let failed = d.metrics.get("failed");
        if failed < failed_lines || (d.answer.is_err() && failed == 0) {
            return Err(format!("failed metric {failed} for {failed_lines} failed lines of {:?}", d.answer));
        }
        for level in shared::telemetry::LAMBDA_LEVELS {
            let line = d.metrics.emf_line_at(0, emf_level_for(level));
            if !lambda_keeps(&line.replace("1970-01-01T00:00:00.000Z", "2026-12-02T00:00:00.000Z"), level) {
                return Err(format!("the EMF line is dropped at {level}: {line}"));
            }
        }
        // A failure that may pass needs a cause: a fault met in its run, another writer, or a twin delivery. One
        // without is keeper's own doing (a token reused, a stale read), and would repeat on every retry.
        let faulted = calls[d.calls.clone()].iter().any(|c| c.injected);
        if d.retryable() && !faulted && !d.after_other_writer && !d.concurrent {
            return Err(format!(
                "a delivery failed retryably with no fault, no other writer and no twin: {:?}",
                d.answer
            ));
        }
        if d.dry_run {
            if d.report().is_some_and(|r| !r.dry_run) {
                return Err(format!("a request asked for a dry run and the report is not one: {:?}", d.answer));
            }
            let writes: Vec<&local::Call> =
                calls[d.calls.clone()].iter().filter(|c| mutating(&c.operation) && c.service != "s3").collect();
            if !writes.is_empty() {
                return Err(format!("a dry run made mutating calls: {writes:?}"));
            }
        }
    }
    Ok(())
}

/// Runs `cases` seeded histories of `model` (`SIM_CASES` overrides, `SIM_SEED` picks the seed); a failure is shrunk
/// to a short history and printed as a test to paste into the suite.
pub fn simulate<M: Model>(name: &str, model: M, cases: u32, max_steps: usize) {
    let cases = std::env::var("SIM_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(cases);
    let seed: u64 = std::env::var("SIM_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x6b65_6570);
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    bytes[8..8 + name.len().min(24)].copy_from_slice(&name.as_bytes()[..name.len().min(24)]);
    let config = Config { cases, failure_persistence: None, max_shrink_iters: 2048, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
    let started = Instant::now();
    let histories = Arc::new(Mutex::new(0u64));
    let counted = histories.clone();
    let result = runner.run(&history(&model, max_steps), |steps| {
        *counted.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        runtime.block_on(run(&model, &steps)).map_err(TestCaseError::fail)
    });
    let ran = *histories.lock().unwrap_or_else(|e| e.into_inner());
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "simulation {name}: {cases} histories (seed {seed}), {ran} runs with shrinking, {:.1} s, {:.1} histories/s",
        secs,
        ran as f64 / secs.max(1e-9)
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, steps)) => panic!(
            "simulation {name} (SIM_SEED={seed}) broke an invariant: {why}\n\nshrunk to {} steps; paste into {name}_regressions in tests/tests/simulation.rs:\n\n#[tokio::test(flavor = \"multi_thread\", worker_threads = 2)]\nasync fn regression_{name}_seed_{seed}() {{\n    replay(vec!{steps:#?}).await;\n}}\n",
            steps.len()
        ),
        Err(e) => panic!("simulation {name}: {e}"),
    }
}
