//! The timeline simulation's engine: a seeded history of deliveries, Lambda's retries, re-sends days later, other
//! writers and faults, run against the emulator through the real host, with each function's invariants checked after
//! every step and once every delivery has been handled or dead-lettered.

use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard};
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
pub(crate) enum Fault {
    /// Rate limited (retried by the SDK, then retryable).
    Throttled,
    /// The service failed (5xx).
    Unavailable,
    /// The call takes effect and its answer is lost: the connection is reset.
    AnswerLost,
    /// A permanent refusal (access denied).
    Refused,
    /// Every attempt the SDK makes takes effect and loses its answer: the delivery fails, and its retry meets the
    /// state the lost calls made.
    AnswersLost,
    /// The service fails (5xx) on every attempt the SDK makes: the delivery fails retryably.
    Outage,
    /// The operation fails (5xx) on every call until the clock moves on: Lambda's retries fail too, and the
    /// delivery is dead-lettered with whatever it did before that call.
    LongOutage,
}

/// The attempts the simulation's SDK clients make (`MAX_ATTEMPTS`): a fault on every one of them outlasts the SDK.
const ATTEMPTS: u32 = 3;
/// How far the clock moves in a [`Step::TimePasses`] (hours), and with a re-send days later.
pub(crate) const HOURS: [u32; 4] = [2, 20, 30, 240];
const RESENT_AFTER_HOURS: i64 = 72;

/// One step of a history. `E` is the function's kind of event, `W` its other writers.
#[derive(Debug, Clone)]
pub(crate) enum Step<E, W> {
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
    /// `first` is delivered; when its call of `operation` (an index into the model's holds) has taken effect and before its answer arrives, `second`
    /// is delivered to another instance and handled whole; then `first` goes on (if `first` never makes that call,
    /// `second` follows it). Another keeper invocation acts between one's read and its write.
    Interleaved { first: E, operation: usize, second: E },
    /// The clock moves `hours` on: Lambda's pending retries are delivered first (they come within minutes), the
    /// guard forgets every event (its records' TTL is an hour), and every time the account and the marks hold is
    /// that much older.
    TimePasses { hours: u32 },
    /// `event` is delivered and the bootstrap is killed once its call of `operation` (an index into the model's
    /// holds) has taken effect, before the answer arrives: no report, no metrics, the guard's record and any lease
    /// left INPROGRESS until the invocation's deadline. Lambda retries it; the first retry (about a minute later)
    /// meets the record still locked, the second comes after the deadline and runs.
    /// `nth` counts the calls of `operation` that answer first (0: the first call is the one killed).
    Crash { event: E, operation: usize, nth: usize },
    /// The operator changes the function's settings between runs: `variant` picks one of [`settings_variants`]
    /// (as deployed, the model's variants, `DRY_RUN` on); a dry run is turned off again before quiescence.
    Settings { variant: usize },
}

/// A lock that a panicked history (a failed invariant) left poisoned still holds what the next one needs.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a function brings to the simulation.
#[async_trait]
pub(crate) trait Model: Send + Sync + 'static {
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
    /// The calls an interleaving may hold between effect and answer: the operations faults hit, unless the model
    /// names others (a read of S3, which the emulator's faults do not reach).
    fn holds(&self) -> Vec<&'static str> {
        self.operations().iter().map(|(op, ..)| *op).collect()
    }
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
    /// Settings an operator may change between runs (each replaces those it names in [`Model::settings`]).
    fn variants(&self) -> Vec<Vec<(&'static str, String)>> {
        Vec::new()
    }
    /// The clock moved `ms` on: every time the account holds (and the model keeps) becomes that much older.
    fn time_passes(&self, _world: &World, _ms: i64) {}
    /// A mark's value after the clock moved `ms` on (the same, unless it holds a time).
    fn backdate_mark(&self, _name: &str, value: &str, _ms: i64) -> String {
        value.to_string()
    }
    /// When the function decides on the time (a schedule): the instant histories begin at. Its hosts' clock then
    /// reads that plus the time the history let pass, instead of the system's.
    fn clock(&self) -> Option<std::time::SystemTime> {
        None
    }
}

/// The account under test.
pub(crate) struct World {
    pub running: local::Running,
    /// The step that just ran was a delivery (nothing has happened since).
    fresh: std::sync::atomic::AtomicBool,
    /// Where in the call log another writer acted.
    others: Mutex<Vec<usize>>,
    /// The settings in force: the model's, changed by [`Step::Settings`].
    settings: Mutex<Vec<(&'static str, String)>>,
    /// The time the history let pass so far (ms): what a model's [`Model::clock`] is moved on by.
    elapsed_ms: Arc<std::sync::atomic::AtomicI64>,
}

impl World {
    /// The time the history let pass so far (ms).
    pub(crate) fn elapsed_ms(&self) -> i64 {
        self.elapsed_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
    /// A setting in force now (the step that just ran ran under it).
    pub(crate) fn setting(&self, name: &str) -> Option<String> {
        let settings = lock(&self.settings);
        settings.iter().rev().find(|(k, _)| *k == name).map(|(_, v)| v.clone())
    }
    /// Whether the last delivery of the log is the step that just ran, so its report can be held to the account.
    pub(crate) fn fresh(&self) -> bool {
        self.fresh.load(std::sync::atomic::Ordering::SeqCst)
    }
    /// Whether another writer acted between calls `from` and `to` of the log.
    pub(crate) fn other_writer_between(&self, from: usize, to: usize) -> bool {
        lock(&self.others).iter().any(|at| (from..=to).contains(at))
    }
    pub(crate) fn calls(&self) -> Vec<local::Call> {
        self.running.emulator.calls()
    }
    pub(crate) fn dump(&self) -> Value {
        self.running.emulator.dump()
    }
}

/// One delivery and what came of it.
#[derive(Debug, Clone)]
pub(crate) struct Delivered {
    pub payload: Value,
    pub request_id: String,
    /// The report, or the Lambda error `(type, message)`.
    pub answer: Result<Report, (String, String)>,
    /// What a run that failed part way did before it failed (its report, logged, not answered).
    pub failed_run: Option<Report>,
    pub metrics: Metrics,
    /// The emulator's calls made while it ran (concurrent deliveries share a window).
    pub calls: std::ops::Range<usize>,
    pub dry_run: bool,
    /// Another writer acted since the previous delivery.
    pub after_other_writer: bool,
    /// Delivered while another delivery ran (the same event twice at once, or interleaved with another).
    pub concurrent: bool,
    /// The step of the history that delivered it.
    pub step: usize,
    /// The call during which the bootstrap was killed ([`Step::Crash`]), having taken effect: the run answered
    /// nothing and wrote no metrics.
    pub crashed: Option<&'static str>,
    /// The time the history had let pass when it was delivered (ms, [`World::elapsed_ms`]).
    pub at_ms: i64,
}

impl Delivered {
    pub(crate) fn report(&self) -> Option<&Report> {
        self.answer.as_ref().ok()
    }
    /// The report of what the run did: answered, or of a run that failed part way.
    pub(crate) fn run_report(&self) -> Option<&Report> {
        self.report().or(self.failed_run.as_ref())
    }
    pub(crate) fn retryable(&self) -> bool {
        matches!(&self.answer, Err((t, _)) if t.starts_with("Retryable."))
    }
}

/// The guard's records (forgotten when days pass) apart from the marks a function keeps for later runs, which live
/// as long as their own expiry.
#[derive(Default)]
struct SimStore {
    records: Mutex<Arc<MemoryStore>>,
    /// Marks: id → (value, expiration in epoch seconds).
    marks: Mutex<std::collections::HashMap<String, (String, i64)>>,
    /// Records and leases taken and not yet completed or given back: id → owner.
    open: Mutex<std::collections::BTreeMap<String, String>>,
    /// Records and leases still open when the guard forgot every event.
    leaked: Mutex<Vec<String>>,
}

impl SimStore {
    fn records(&self) -> Arc<MemoryStore> {
        lock(&self.records).clone()
    }
    /// Days pass: every event record and lease is past its TTL.
    fn forget_events(&self) {
        *lock(&self.records) = Arc::new(MemoryStore::default());
        // What a run left open is found after the step, even if the same id is taken again meanwhile.
        let open = std::mem::take(&mut *lock(&self.open));
        lock(&self.leaked).extend(open.into_keys());
    }
    /// The records and leases left INPROGRESS.
    fn open(&self) -> Vec<String> {
        lock(&self.open).keys().chain(lock(&self.leaked).iter()).cloned().collect()
    }
    /// The deadline of a killed invocation passed: what it held is free (as its expiry frees it at AWS).
    async fn expire_open(&self) {
        let open = std::mem::take(&mut *lock(&self.open));
        for (id, owner) in open {
            let _ = self.records().delete(&id, &owner).await;
        }
    }
    /// The clock moved `ms` on: marks expire sooner, and a time a mark holds is older.
    fn backdate_marks(&self, ms: i64, value: impl Fn(&str, &str) -> String) {
        let now = Now::at(std::time::SystemTime::now()).seconds;
        let mut marks = lock(&self.marks);
        marks.retain(|_, (_, expiration)| *expiration - ms / 1000 >= now);
        for (name, (v, expiration)) in marks.iter_mut() {
            *v = value(name, v);
            *expiration -= ms / 1000;
        }
    }
}

#[async_trait]
impl IdempotencyStore for SimStore {
    async fn put_in_progress(&self, record: &Record, now: Now) -> Result<Lock, StoreError> {
        let taken = self.records().put_in_progress(record, now).await?;
        if taken == Lock::Acquired {
            let owner = record.owner.clone().unwrap_or_default();
            lock(&self.open).insert(record.id.clone(), owner);
        }
        Ok(taken)
    }
    async fn complete(&self, record: &Record) -> Result<bool, StoreError> {
        let done = self.records().complete(record).await?;
        if done {
            lock(&self.open).remove(&record.id);
        }
        Ok(done)
    }
    async fn delete(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        let done = self.records().delete(id, owner).await?;
        if done {
            lock(&self.open).remove(id);
        }
        Ok(done)
    }
    async fn get_mark(&self, id: &str) -> Result<Option<String>, StoreError> {
        let now = Now::at(std::time::SystemTime::now()).seconds;
        let marks = lock(&self.marks);
        Ok(marks.get(id).filter(|(_, expiration)| *expiration >= now).map(|(value, _)| value.clone()))
    }
    async fn put_mark(&self, id: &str, value: &str, expiration: i64) -> Result<(), StoreError> {
        lock(&self.marks).insert(id.into(), (value.into(), expiration));
        Ok(())
    }
}

/// A history's strategy: 1 to `max_steps` steps of the model's vocabulary.
pub(crate) fn history<M: Model>(model: &M, max_steps: usize) -> impl Strategy<Value = Vec<Step<M::Event, M::Writer>>> {
    let operations = model.operations().len();
    let fault = prop_oneof![
        Just(Fault::Throttled),
        Just(Fault::Unavailable),
        Just(Fault::AnswerLost),
        Just(Fault::Refused),
        Just(Fault::AnswersLost),
        Just(Fault::Outage),
        Just(Fault::LongOutage),
    ];
    let step = prop_oneof![
        4 => (model.events(), proptest::bool::weighted(0.1)).prop_map(|(event, dry_run)| Step::Deliver { event, dry_run }),
        1 => model.events().prop_map(|event| Step::DeliverTwiceAtOnce { event }),
        2 => (0usize..8).prop_map(|pick| Step::LambdaRetry { pick }),
        1 => (0usize..8).prop_map(|pick| Step::ResendDaysLater { pick }),
        3 => (0..operations, fault).prop_map(|(operation, fault)| Step::Fault { operation, fault }),
        2 => model.writers().prop_map(|writer| Step::Other { writer }),
        1 => (model.events(), 0..model.holds().len(), model.events())
            .prop_map(|(first, operation, second)| Step::Interleaved { first, operation, second }),
        1 => proptest::sample::select(&HOURS[..]).prop_map(|hours| Step::TimePasses { hours }),
        1 => (model.events(), 0..model.holds().len(), 0..3usize)
            .prop_map(|(event, operation, nth)| Step::Crash { event, operation, nth }),
        1 => (0..settings_variants(model).len()).prop_map(|variant| Step::Settings { variant }),
    ];
    proptest::collection::vec(step, 1..=max_steps)
}

/// The hosts of one history: two Lambda instances sharing one store.
struct Instances<F: Function> {
    one: Host<F>,
    two: Host<F>,
    store: Arc<SimStore>,
}

/// The settings an operator may switch to: the model's own (as deployed), its variants, then `DRY_RUN` on.
pub(crate) fn settings_variants<M: Model>(model: &M) -> Vec<Vec<(&'static str, String)>> {
    let mut variants = vec![Vec::new()];
    variants.extend(model.variants());
    variants.push(vec![("DRY_RUN", "true".into())]);
    variants
}

/// Two instances of the function with `changed` over the model's settings, sharing `store` (the table outlives a
/// deployment's change of settings).
async fn instances<M: Model>(
    model: &M,
    world: &World,
    changed: &[(&'static str, String)],
    store: Arc<SimStore>,
) -> Instances<M::F> {
    let mut settings = model.settings();
    settings.extend([("MAX_ATTEMPTS", "3".to_string()), ("RETRY_INITIAL_BACKOFF_MS", "1".to_string())]);
    settings.retain(|(k, _)| !changed.iter().any(|(c, _)| c == k));
    settings.extend(changed.iter().cloned());
    let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let lookup = Lookup::from_pairs(&pairs);
    let sdk = sdk_config(&world.running, "us-east-1", &fast_settings(3)).await;
    let host = || {
        let host = Host::<M::F>::with_store(&sdk, &lookup, store.clone()).expect("the model's settings are valid");
        match model.clock() {
            Some(base) => {
                let elapsed = world.elapsed_ms.clone();
                host.with_clock(move || {
                    let ms = elapsed.load(std::sync::atomic::Ordering::SeqCst);
                    base + std::time::Duration::from_millis(ms.max(0) as u64)
                })
            }
            None => host,
        }
    };
    *lock(&world.settings) = settings.clone();
    Instances { one: host(), two: host(), store }
}

fn with_dry_run(mut payload: Value) -> Value {
    let enveloped = ["Records", "detail-type", "scheduler"].iter().any(|k| payload.get(*k).is_some());
    if let (false, Some(o)) = (enveloped, payload.as_object_mut()) {
        o.insert("dryRun".into(), Value::Bool(true));
    }
    payload
}

/// Whether a payload asks for a dry run: only a request by hand carries the flag (an envelope's payload is the
/// event source's).
fn asked_for_dry_run(payload: &Value) -> bool {
    payload.get("dryRun") == Some(&Value::Bool(true))
}

/// A host's answer, its metrics, and a failed run's report.
type Answered = (Result<Report, lambda_runtime::Diagnostic>, Metrics, Option<Report>);

fn answer_of(answer: Result<Report, lambda_runtime::Diagnostic>) -> Result<Report, (String, String)> {
    answer.map_err(|d| (d.error_type, d.error_message))
}

/// What a history's run keeps between steps.
struct Timeline<'a, M: Model> {
    model: &'a M,
    world: &'a World,
    hosts: Arc<Instances<M::F>>,
    log: Vec<Delivered>,
    /// New events so far (their ids and object versions come from it).
    events: usize,
    /// Another writer acted since the last delivery.
    other_since: bool,
    /// Deliveries that failed retryably, waiting for Lambda's retry: (index in log, retries so far).
    waiting: Vec<(usize, u32)>,
    /// The step being run.
    step: usize,
    /// The step's last report may be stale: another delivery wrote after its own writes landed.
    stale: bool,
}

impl<M: Model> Timeline<'_, M> {
    /// Delivers `payload` to instance one (or two) and logs what came of it.
    async fn deliver(&mut self, payload: Value, request_id: String, two: bool, dry_run: bool) -> usize {
        let before = self.world.calls().len();
        let hosts = self.hosts.clone();
        let host = if two { &hosts.two } else { &hosts.one };
        let answered = host.answer_invocation_in_full(payload.clone(), None, Some(&request_id)).await;
        self.logged(payload, request_id, answered, before, dry_run, false)
    }

    fn logged(
        &mut self,
        payload: Value,
        request_id: String,
        (answer, metrics, failed_run): Answered,
        from: usize,
        dry_run: bool,
        concurrent: bool,
    ) -> usize {
        let dry_run = dry_run || self.world.setting("DRY_RUN").as_deref() == Some("true");
        self.log.push(Delivered {
            payload,
            request_id,
            answer: answer_of(answer),
            failed_run,
            metrics,
            calls: from..self.world.calls().len(),
            dry_run,
            after_other_writer: std::mem::take(&mut self.other_since),
            concurrent,
            step: self.step,
            crashed: None,
            at_ms: self.world.elapsed_ms(),
        });
        self.log.len() - 1
    }

    /// A new delivery that failed retryably waits for Lambda's retry.
    fn track(&mut self, at: usize) {
        if self.log[at].crashed.is_some() {
            // The first retry met the record still locked (Retryable.InProgress): one is left.
            self.waiting.push((at, 1));
            return;
        }
        if self.log[at].retryable() {
            self.waiting.push((at, 0));
        }
    }

    /// Lambda's retry of `log[index]`, which had `retries` retries: same payload, same request id; a third failure
    /// is dead-lettered.
    async fn retry(&mut self, index: usize, retries: u32) {
        let original = self.log[index].clone();
        let asked = asked_for_dry_run(&original.payload);
        let at = self.deliver(original.payload, original.request_id, false, asked).await;
        // A third failure is dead-lettered: nothing retries it again.
        if self.log[at].retryable() && retries + 1 < 2 {
            self.waiting.push((at, retries + 1));
        }
    }

    /// Lambda's retries come within minutes: every pending one is delivered before hours pass.
    async fn retry_all(&mut self) {
        while let Some((index, retries)) = self.waiting.pop() {
            self.retry(index, retries).await;
        }
    }

    /// The clock moves `hours` on.
    async fn time_passes(&mut self, hours: i64) {
        self.retry_all().await;
        // A long outage is over once hours have passed (it is the only rule without a count).
        self.world.running.emulator.world().faults.rules.retain(|r| r.count.is_some());
        self.hosts.store.forget_events();
        let ms = hours * 3_600_000;
        self.world.elapsed_ms.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
        self.hosts.store.backdate_marks(ms, |name, value| self.model.backdate_mark(name, value, ms));
        self.model.time_passes(self.world, ms);
    }

    /// A new event's payload (`dry_run` asks a hand request for a dry run), and whether it asked.
    fn new_event(&mut self, event: &M::Event, dry_run: bool) -> (Value, bool) {
        let payload = self.model.payload(event, self.events, self.world);
        self.events += 1;
        let payload = if dry_run { with_dry_run(payload) } else { payload };
        let asked = asked_for_dry_run(&payload);
        (payload, asked)
    }

    async fn run_step(&mut self, step: &Step<M::Event, M::Writer>) {
        let at = self.step;
        match step {
            Step::Deliver { event, dry_run } => {
                let (payload, asked) = self.new_event(event, *dry_run);
                let done = self.deliver(payload, format!("req-{at}"), false, asked).await;
                self.track(done);
            }
            Step::DeliverTwiceAtOnce { event } => {
                let before = self.world.calls().len();
                let payload = self.model.payload(event, self.events, self.world);
                let twin = self.model.payload(&self.model.twin(event), self.events, self.world);
                self.events += 1;
                // Two deliveries of one payload are one delivery twice (Lambda gave them one request id); a twin
                // in another envelope is another delivery.
                let same = twin == payload;
                let (request_id, twin_id) = (format!("req-{at}"), format!("req-{at}-twin"));
                let twin_id = if same { request_id.clone() } else { twin_id };
                let hosts = self.hosts.clone();
                let (a, b) = tokio::join!(
                    hosts.one.answer_invocation_in_full(payload.clone(), None, Some(&request_id)),
                    hosts.two.answer_invocation_in_full(twin.clone(), None, Some(&twin_id)),
                );
                let other_since = self.other_since;
                let one = self.logged(payload, request_id, a, before, false, same);
                self.other_since = other_since;
                let two = self.logged(twin, twin_id, b, before, false, same);
                self.track(one);
                self.track(two);
            }
            Step::LambdaRetry { pick } => {
                if !self.waiting.is_empty() {
                    let (index, retries) = self.waiting.remove(pick % self.waiting.len());
                    self.retry(index, retries).await;
                }
            }
            Step::ResendDaysLater { pick } => {
                if !self.log.is_empty() {
                    let original = self.log[pick % self.log.len()].clone();
                    self.time_passes(RESENT_AFTER_HOURS).await;
                    let asked = asked_for_dry_run(&original.payload);
                    let done = self.deliver(original.payload, format!("req-{at}-resent"), true, asked).await;
                    self.track(done);
                }
            }
            Step::Fault { operation, fault } => {
                let (op, throttled, unavailable, refused) = self.model.operations()[*operation];
                let mut rule = local::FaultRule { count: Some(1), ..local::FaultRule::error(op, "") };
                match fault {
                    Fault::Throttled => rule.error = Some(throttled.into()),
                    Fault::Unavailable | Fault::Outage | Fault::LongOutage => {
                        rule.error = Some(unavailable.into());
                        rule.status = Some(500);
                    }
                    Fault::Refused => rule.error = Some(refused.into()),
                    Fault::AnswerLost | Fault::AnswersLost => {
                        rule.error = None;
                        rule.lose_answer = true;
                    }
                }
                match fault {
                    Fault::AnswersLost | Fault::Outage => rule.count = Some(ATTEMPTS),
                    Fault::LongOutage => rule.count = None,
                    _ => {}
                }
                self.world.running.emulator.add_fault(rule);
            }
            Step::Other { writer } => {
                lock(&self.world.others).push(self.world.calls().len());
                self.model.write(writer, self.world);
                self.other_since = true;
            }
            Step::Interleaved { first, operation, second } => self.interleaved(first, *operation, second).await,
            Step::TimePasses { hours } => self.time_passes(i64::from(*hours)).await,
            Step::Crash { event, operation, nth } => self.crash(event, *operation, *nth).await,
            Step::Settings { variant } => {
                let variants = settings_variants(self.model);
                self.settings(&variants[variant % variants.len()]).await;
            }
        }
    }

    /// The operator deploys `changed` over the model's settings.
    async fn settings(&mut self, changed: &[(&'static str, String)]) {
        let store = self.hosts.store.clone();
        self.hosts = Arc::new(instances(self.model, self.world, changed, store).await);
    }

    /// [`Step::Crash`]: the bootstrap is killed once `event`'s `nth` call of `operation` has taken effect.
    async fn crash(&mut self, event: &M::Event, operation: usize, nth: usize) {
        let emulator = self.world.running.emulator.clone();
        let mut held = emulator.hold_after(self.model.holds()[operation], nth);
        let before = self.world.calls().len();
        let (payload, asked) = self.new_event(event, false);
        let request_id = format!("req-{}", self.step);
        let hosts = self.hosts.clone();
        let mut run = Box::pin(hosts.one.answer_invocation_in_full(payload.clone(), None, Some(&request_id)));
        let finished = tokio::select! {
            done = &mut run => Some(done),
            Ok(()) = &mut held.reached => None,
        };
        let at = match finished {
            // It never made the call: it ran whole.
            Some(answered) => {
                emulator.clear_holds();
                self.logged(payload, request_id.clone(), answered, before, asked, false)
            }
            None => {
                // Killed: nothing after the held call runs, not even the guard's own clean-up. Calls already sent
                // may still take effect (as at AWS): they are the killed run's, so wait until they have landed.
                drop(run);
                held.release();
                emulator.clear_holds();
                let mut seen = self.world.calls().len();
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    let now = self.world.calls().len();
                    if now == seen {
                        break;
                    }
                    seen = now;
                }
                let killed = Err(lambda_runtime::Diagnostic {
                    error_type: "Runtime.ExitError".into(),
                    error_message: format!("the bootstrap was killed during {}", self.model.holds()[operation]),
                });
                let at = self.logged(
                    payload,
                    request_id.clone(),
                    (killed, Metrics::new("", ""), None),
                    before,
                    asked,
                    false,
                );
                self.log[at].crashed = Some(self.model.holds()[operation]);
                // By the time Lambda's second retry comes, the invocation's deadline has passed.
                self.hosts.store.expire_open().await;
                at
            }
        };
        self.track(at);
    }

    /// [`Step::Interleaved`]: `second` runs whole while `first`'s call of `operation` waits for its answer.
    async fn interleaved(&mut self, first: &M::Event, operation: usize, second: &M::Event) {
        let at = self.step;
        let emulator = self.world.running.emulator.clone();
        let mut held = emulator.hold(self.model.holds()[operation]);
        let before = self.world.calls().len();
        let (payload, _) = self.new_event(first, false);
        let (request_id, during_id) = (format!("req-{at}"), format!("req-{at}-during"));
        let hosts = self.hosts.clone();
        let run = hosts.one.answer_invocation_in_full(payload.clone(), None, Some(&request_id));
        tokio::pin!(run);
        let finished = tokio::select! {
            done = &mut run => Some(done),
            Ok(()) = &mut held.reached => None,
        };
        let other_since = self.other_since;
        let (first_at, second_at) = match finished {
            // The first never made the call: the second follows it.
            Some(answered) => {
                emulator.clear_holds();
                let first_at = self.logged(payload, request_id.clone(), answered, before, false, false);
                let (second, _) = self.new_event(second, false);
                (first_at, self.deliver(second, during_id, true, false).await)
            }
            None => {
                let from = self.world.calls().len();
                let (second, _) = self.new_event(second, false);
                let during = hosts.two.answer_invocation_in_full(second.clone(), None, Some(&during_id));
                tokio::pin!(during);
                // The second may wait for something the first holds (a lease): then the first goes on after a
                // while, as it would at AWS, and both finish side by side.
                let mut second_end = None;
                let (first_answered, second_answered) = tokio::select! {
                    done = &mut during => {
                        second_end = Some(self.world.calls().len());
                        held.release();
                        (run.await, done)
                    }
                    () = tokio::time::sleep(std::time::Duration::from_millis(400)) => {
                        held.release();
                        tokio::join!(&mut run, &mut during)
                    }
                };
                let calls = self.world.calls();
                let wrote =
                    |calls: &[local::Call]| calls.iter().any(|c| c.ok() && mutating(&c.operation) && c.service != "s3");
                // The first's writes landed before the second's: its report may say what the second undid.
                let second_end = second_end.unwrap_or(calls.len());
                self.stale = wrote(&calls[before..from]) && wrote(&calls[from..second_end]);
                let second_at = self.logged(second, during_id.clone(), second_answered, from, false, true);
                self.log[second_at].calls.end = second_end;
                self.other_since = other_since;
                (self.logged(payload, request_id.clone(), first_answered, before, false, true), second_at)
            }
        };
        self.track(second_at.min(first_at));
        self.track(second_at.max(first_at));
    }
}

/// What a step did, for `SIM_TRACE=1` (reading a shrunk history).
fn trace(world: &World, at: usize, step: &impl Debug, delivered: &[Delivered]) {
    eprintln!("step {at}: {step:?}");
    let calls = world.calls();
    for d in delivered {
        match &d.answer {
            Ok(report) => {
                for a in &report.actions {
                    eprintln!("  {} {} {:?} {}: {}", d.request_id, a.action, a.outcome, a.target, a.detail);
                }
            }
            Err((kind, message)) => eprintln!("  {} failed {kind}: {message}", d.request_id),
        }
        for c in &calls[d.calls.clone()] {
            eprintln!(
                "    {} {} {:?}{}",
                c.operation,
                c.outcome,
                c.params,
                if c.injected { " (injected)" } else { "" }
            );
        }
    }
}

/// Runs one history and checks the model's invariants; `Err` names the broken one and the step.
pub(crate) async fn run<M: Model>(model: &M, steps: &[Step<M::Event, M::Writer>]) -> Result<(), String> {
    let world = World {
        running: start(model.seed()).await,
        fresh: Default::default(),
        others: Default::default(),
        settings: Default::default(),
        elapsed_ms: Default::default(),
    };
    let hosts = Arc::new(instances(model, &world, &[], Arc::new(SimStore::default())).await);
    let mut t = Timeline {
        model,
        world: &world,
        hosts,
        log: Vec::new(),
        events: 0,
        other_since: false,
        waiting: Vec::new(),
        step: 0,
        stale: false,
    };
    for (at, step) in steps.iter().enumerate() {
        t.step = at;
        t.stale = false;
        let delivered = t.log.len();
        t.run_step(step).await;
        if std::env::var_os("SIM_TRACE").is_some() {
            trace(&world, at, step, &t.log[delivered..]);
        }
        // The report of the delivery that just ran can be held to the account (nothing has happened since).
        let fresh = t.log.len() > delivered && !t.stale && !matches!(step, Step::TimePasses { .. });
        world.fresh.store(fresh, std::sync::atomic::Ordering::SeqCst);
        common_invariants(&world, &t.log).map_err(|e| format!("after step {at} ({step:?}): {e}"))?;
        nothing_in_progress(&t.hosts.store).map_err(|e| format!("after step {at} ({step:?}): {e}"))?;
        model.always(&world, &t.log).map_err(|e| format!("after step {at} ({step:?}): {e}"))?;
    }
    // Quiescence: no more faults, no dry run; every waiting delivery is retried as Lambda would (twice), then
    // dead-lettered.
    world.running.emulator.world().faults.rules.clear();
    if world.setting("DRY_RUN").as_deref() == Some("true") {
        // The dry-run variant replaced every other: back to the settings as deployed.
        t.settings(&[]).await;
    }
    t.step = steps.len();
    let delivered = t.log.len();
    t.retry_all().await;
    world.fresh.store(true, std::sync::atomic::Ordering::SeqCst);
    if let Some(event) = model.settle() {
        let payload = model.payload(&event, t.events, &world);
        let other_since = t.other_since;
        t.deliver(payload, "req-settle".into(), false, false).await;
        t.other_since = other_since;
    }
    if std::env::var_os("SIM_TRACE").is_some() {
        trace(&world, steps.len(), &"quiescence: Lambda's retries, then the settling delivery", &t.log[delivered..]);
    }
    common_invariants(&world, &t.log).map_err(|e| format!("at quiescence: {e}"))?;
    nothing_in_progress(&t.hosts.store).map_err(|e| format!("at quiescence: {e}"))?;
    model.quiescent(&world, &t.log).map_err(|e| format!("at quiescence: {e}"))
}

/// Between steps no invocation runs (a killed one's deadline has passed): a record or lease still INPROGRESS was
/// left by a run that ended without completing or giving it back, and blocks its event, or resource, until expiry.
fn nothing_in_progress(store: &SimStore) -> Result<(), String> {
    match store.open() {
        open if open.is_empty() => Ok(()),
        open => Err(format!("left INPROGRESS with no invocation running: {open:?}")),
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
        // A killed process writes nothing: Lambda's own Errors metric counts it.
        if d.crashed.is_none() && (failed < failed_lines || (d.answer.is_err() && failed == 0)) {
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
pub(crate) fn simulate<M: Model>(name: &str, model: M, cases: u32, max_steps: usize) {
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
        *lock(&counted) += 1;
        runtime.block_on(run(&model, &steps)).map_err(TestCaseError::fail)
    });
    let ran = *lock(&histories);
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "simulation {name}: {cases} histories (seed {seed}), {ran} runs with shrinking, {:.1} s, {:.1} histories/s",
        secs,
        ran as f64 / secs.max(1e-9)
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, steps)) => panic!(
            "simulation {name} (SIM_SEED={seed}) broke an invariant: {why}\n\nshrunk to {} steps; paste into {name}_regressions in tests/tests/suite/simulation.rs:\n\n#[tokio::test(flavor = \"multi_thread\", worker_threads = 2)]\nasync fn regression_{name}_seed_{seed}() {{\n    replay(vec!{steps:#?}).await;\n}}\n",
            steps.len()
        ),
        Err(e) => panic!("simulation {name}: {e}"),
    }
}
