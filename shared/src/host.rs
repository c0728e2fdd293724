//! The one Lambda host every keeper function runs in. A function supplies its name, request, settings, clients,
//! counters and pipeline ([`Function`]); the host owns everything they share: settings read once, the event guard,
//! the effective dry-run flag, the report header, the rule that turns per-target outcomes into Lambda's answer, and
//! the EMF line.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_types::SdkConfig;
use futures_util::FutureExt;
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use serde_json::Value;

use crate::answer::{Caller, into_lambda_result};
use crate::classify::{Classify, ErrorType};
use crate::config::{ConfigError, FromLookup, Lookup, Settings};
use crate::idempotency::{GuardError, Idempotency, IdempotencyStore, LeaseError, Leases, store_for};
use crate::report::{Action, Incomplete, Outcome, Report};
use crate::telemetry::Metrics;
use crate::trigger::{self, Input, Request, SCHEDULER_KEY, Trigger, TriggerError};

/// One keeper function, as the host runs it.
pub trait Function: Send + Sync + Sized + 'static {
    /// The package, binary and Lambda name; the `function` of every report and metric.
    const NAME: &'static str;
    type Request: Request + Send;
    /// The function's own settings; the shared ones ([`Settings`]) belong to the host.
    type Settings: FromLookup + Send + Sync;
    type Error: Classify + Send + 'static;

    /// Reads the function's settings once, at start; an error names the variable.
    fn settings(lookup: &Lookup<'_>) -> Result<Self::Settings, ConfigError> {
        Self::Settings::from_lookup(lookup)
    }

    /// Builds the function (its SDK clients) from the process's one AWS configuration.
    fn new(sdk_config: &SdkConfig, shared: &Settings, settings: Self::Settings) -> Self;

    /// The verbs of the function's report lines, which name its counters.
    type Verb: crate::report::Verb;

    /// Adds the function's own counters (started, rotated, ...) to the EMF line of a report: by default, each verb's
    /// applied lines.
    fn counters(report: &Report, metrics: &mut Metrics) {
        metrics.count_verbs::<Self::Verb>(report);
    }

    /// The pipeline: observe, plan and, unless `ctx.dry_run`, apply; one action per target goes into `report`. A
    /// target that fails is reported as a failed action; an error ends the whole invocation.
    fn run(
        &self,
        inputs: Vec<Input<Self::Request>>,
        ctx: &Context,
        report: &mut Report,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// What the pipeline knows about the invocation besides the trigger.
#[derive(Debug, Clone)]
pub struct Context {
    pub function: &'static str,
    pub event_id: String,
    /// What every client token of this delivery is derived from: the event id and Lambda's request id (except for a
    /// request named with a `requestId`, see [`token_seed`]). Lambda's retry of the delivery keeps its request id, so
    /// its calls replay at AWS; sending the event again, an hour or days later (from the dead-letter queue, or the
    /// same request by hand), gets new tokens, so AWS (which remembers a token for a day or more) does the work again
    /// instead of answering the first sending's result.
    pub token_seed: String,
    /// The Lambda deadline; loops that wait (polling, read-modify-write) stop before it.
    pub deadline: Option<SystemTime>,
    /// The effective dry run, decided once by the host: `DRY_RUN`, or a request that asks for one (a request can
    /// turn dry run on, never off). When set, the pipeline makes no mutating call.
    pub dry_run: bool,
    /// Exclusive holds on resources, shared with every instance of the function through its idempotency store.
    pub leases: Leases,
    /// No mutating work starts with less than this left before the deadline (`DEADLINE_MARGIN_MS`).
    pub deadline_margin: Duration,
    /// Who sent the event: a request by hand whose every target failed is answered with its failure.
    pub caller: Caller,
    /// The time of the invocation, by the host's clock: what a decision that depends on the time (a schedule) is
    /// made on. A run delayed or retried decides on the time it runs, not the time its event was sent.
    pub now: SystemTime,
}

impl Context {
    /// The time left before the deadline, if there is one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline.map(|d| d.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
    }

    /// Leave for one target's mutating work, which every mutating call in a function's `aws.rs` takes: withheld in
    /// a dry run (the target is reported as planned), and when the margin or less is left before the deadline, so
    /// the Lambda timeout never cuts a target off halfway. A target refused for time is reported failed with
    /// `Retryable.OutOfTime`, which makes the invocation retryable; the retry re-observes and does what is left.
    /// This is the only way to get a [`Permit`], so the two rules cannot be skipped by a forgotten `if`.
    pub fn may_mutate(&self) -> Result<Permit, Withheld> {
        if self.dry_run {
            return Err(Withheld::DryRun);
        }
        match self.remaining() {
            Some(left) if left <= self.deadline_margin => {
                Err(Withheld::OutOfTime(OutOfTime { left, margin: self.deadline_margin }))
            }
            _ => Ok(Permit { _minted_by_the_host: () }),
        }
    }

    /// The deadline as a monotonic instant, for [`crate::retry::read_modify_write`].
    pub fn deadline_instant(&self) -> Option<Instant> {
        self.remaining().map(|left| Instant::now() + left)
    }

    /// Does `work` holding the lease on `resource`, so that no other instance of the function works on it
    /// meanwhile, and releases the lease whatever `work` came to. The lease is held until the deadline at most, and
    /// waited for while another invocation holds it until `margin` before the deadline (a minute when there is none);
    /// one not had by then is `work`'s error, and `work` is not begun.
    pub async fn under_lease<T, E: From<LeaseError>>(
        &self,
        resource: &str,
        margin: Duration,
        work: impl AsyncFnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let until = self.deadline.unwrap_or_else(|| SystemTime::now() + Duration::from_secs(15 * 60));
        let give_up = match self.remaining() {
            Some(left) => Instant::now() + left.saturating_sub(margin),
            None => Instant::now() + Duration::from_secs(60),
        };
        let lease = self.leases.acquire(resource, until, give_up).await?;
        let done = work().await;
        self.leases.release(lease).await;
        done
    }
}

/// Leave to make one target's mutating calls, minted only by [`Context::may_mutate`]: a function that has none
/// cannot call what changes AWS, so "a dry run changes nothing" and "no work starts inside the deadline margin" are
/// compile errors to break. Neither `Clone` nor `Copy`: each target asks for its own, at the moment its work starts.
#[derive(Debug)]
pub struct Permit {
    _minted_by_the_host: (),
}

/// Why [`Context::may_mutate`] gave no permit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Withheld {
    /// The run only plans: its targets are reported as planned.
    DryRun,
    /// Too little time is left: the target is reported failed, and Lambda's retry does it.
    OutOfTime(OutOfTime),
}

/// Why a target's work was not started: too little time was left before the Lambda deadline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not started: {} ms left before the Lambda deadline, under the {} ms margin (DEADLINE_MARGIN_MS); Lambda's retry does it",
    left.as_millis(),
    margin.as_millis()
)]
pub struct OutOfTime {
    pub left: Duration,
    pub margin: Duration,
}

impl Classify for OutOfTime {
    fn error_type(&self) -> ErrorType {
        ErrorType::OUT_OF_TIME
    }
}

/// A function with what the host keeps for all its invocations.
pub struct Host<F: Function> {
    function: F,
    settings: Settings,
    guard: Idempotency,
    leases: Leases,
    clock: Arc<dyn Fn() -> SystemTime + Send + Sync>,
}

impl<F: Function> Host<F> {
    /// A deployed function: settings from `lookup` (each read once), the AWS configuration they imply, and the
    /// DynamoDB guard when `IDEMPOTENCY_TABLE` is set (memory otherwise).
    pub async fn from_lookup(lookup: &Lookup<'_>) -> Result<Self, ConfigError> {
        let started = Instant::now();
        let settings = Settings::from_lookup(lookup)?;
        let own = F::settings(lookup)?;
        let read = started.elapsed();
        let sdk_config = crate::clients::sdk_config(&settings).await;
        let loaded = started.elapsed();
        let store = store_for(settings.idempotency_table.as_deref(), &sdk_config, &settings);
        let host = Host::assemble(&sdk_config, settings, own, store);
        // Where a cold start goes, in the function's own log: its settings, the AWS configuration (the default HTTPS
        // client reads the system trust store here) and its clients.
        tracing::info!(
            function = F::NAME,
            settings_us = read.as_micros() as u64,
            aws_config_us = (loaded - read).as_micros() as u64,
            clients_us = (started.elapsed() - loaded).as_micros() as u64,
            "initialized"
        );
        Ok(host)
    }

    /// Local runs and tests: a given AWS configuration (the emulator's) and store (memory or a test's DynamoDB).
    pub fn with_store(
        sdk_config: &SdkConfig,
        lookup: &Lookup<'_>,
        store: Arc<dyn IdempotencyStore>,
    ) -> Result<Self, ConfigError> {
        Ok(Host::assemble(sdk_config, Settings::from_lookup(lookup)?, F::settings(lookup)?, store))
    }

    fn assemble(
        sdk_config: &SdkConfig,
        settings: Settings,
        own: F::Settings,
        store: Arc<dyn IdempotencyStore>,
    ) -> Self {
        let function = F::new(sdk_config, &settings, own);
        let guard = Idempotency::new(store.clone(), F::NAME, settings.idempotency_ttl);
        Host { function, settings, guard, leases: Leases::new(store, F::NAME), clock: Arc::new(SystemTime::now) }
    }

    /// Replaces the clock that gives each invocation its [`Context::now`]: tests that move time (a schedule across
    /// a DST change). The deadline, leases and records keep the system's clock.
    pub fn with_clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    pub fn function(&self) -> &F {
        &self.function
    }

    /// Handles one payload: the whole invocation, answered as Lambda expects (see
    /// [`crate::answer::into_lambda_result`]), with one EMF line written.
    pub async fn handle(&self, payload: Value, deadline: Option<SystemTime>) -> Result<Report, Diagnostic> {
        self.handle_invocation(payload, deadline, None).await
    }

    /// [`Host::handle`] with Lambda's request id of the invocation, which Lambda keeps for its own retries of an
    /// asynchronous event and which is new for every other invocation.
    pub async fn handle_invocation(
        &self,
        payload: Value,
        deadline: Option<SystemTime>,
        request_id: Option<&str>,
    ) -> Result<Report, Diagnostic> {
        let (answer, metrics) = self.answer_invocation(payload, deadline, request_id).await;
        metrics.emit();
        answer
    }

    /// Lambda's answer to one payload, and the metrics of the invocation (not written).
    pub async fn answer(&self, payload: Value, deadline: Option<SystemTime>) -> (Result<Report, Diagnostic>, Metrics) {
        self.answer_invocation(payload, deadline, None).await
    }

    /// [`Host::answer`] with Lambda's request id (see [`Host::handle_invocation`]).
    pub async fn answer_invocation(
        &self,
        payload: Value,
        deadline: Option<SystemTime>,
        request_id: Option<&str>,
    ) -> (Result<Report, Diagnostic>, Metrics) {
        let (answer, metrics, _) = self.answer_invocation_in_full(payload, deadline, request_id).await;
        (answer, metrics)
    }

    /// [`Host::answer_invocation`] with the report of a run that failed part way (what it did before it failed,
    /// which Lambda's answer cannot carry and the log does), for a caller that holds it to the account.
    pub async fn answer_invocation_in_full(
        &self,
        payload: Value,
        deadline: Option<SystemTime>,
        request_id: Option<&str>,
    ) -> (Result<Report, Diagnostic>, Metrics, Option<Report>) {
        let (result, caller, header) = self.invoke(payload, deadline, request_id).await;
        // A run that failed still did what its report says: the metrics count it.
        let partial = match &result {
            Err(Failed::Guard(GuardError::Handler(run))) => Some(run.report().clone()),
            _ => None,
        };
        let answer = into_lambda_result(result, caller, header);
        let metrics = self.metrics(&answer, partial.as_ref());
        (answer, metrics, partial)
    }

    async fn invoke(
        &self,
        payload: Value,
        deadline: Option<SystemTime>,
        request_id: Option<&str>,
    ) -> (Result<Report, Failed<F::Error>>, Caller, Report) {
        let trigger: Trigger<F::Request> = match trigger::parse(payload.clone()) {
            Ok(t) => t,
            Err(e) => {
                let header = Report::new(F::NAME, "", self.settings.dry_run);
                return (Err(Failed::Trigger(e)), caller_of(&payload), header);
            }
        };
        let event_id = trigger.event_id();
        let ctx = Context {
            function: F::NAME,
            token_seed: token_seed(&trigger, &event_id, request_id),
            event_id,
            deadline,
            dry_run: self.settings.dry_run || trigger.asks_for_dry_run(),
            leases: self.leases.clone(),
            deadline_margin: self.settings.deadline_margin,
            caller: trigger.caller(),
            now: (self.clock)(),
        };
        let caller = ctx.caller;
        if let Some(left) = ctx.remaining().filter(|left| *left <= ctx.deadline_margin && !ctx.dry_run) {
            // Lambda does not tell a process its timeout, so this is the first moment the margin can be checked
            // against it: an invocation that starts inside the margin can start no target, nor can any other.
            tracing::error!(
                left_ms = left.as_millis() as u64,
                margin_ms = ctx.deadline_margin.as_millis() as u64,
                "DEADLINE_MARGIN_MS is at or above the time this invocation has: no target can start; lower it or raise the function's timeout"
            );
        }
        let header = Report::new(F::NAME, ctx.event_id.clone(), ctx.dry_run);
        tracing::info!(
            function = F::NAME,
            event_id = ctx.event_id,
            trigger = trigger.kind(),
            dry_run = ctx.dry_run,
            "invocation"
        );
        // A dry run is its own record: its report must never answer the same event once DRY_RUN is off.
        let record = if ctx.dry_run { format!("{}#dry-run", ctx.event_id) } else { ctx.event_id.clone() };
        let announced = trigger.announced();
        let delivery = announced.is_some().then(|| trigger.delivery_id());
        let validated = announced.unwrap_or(payload);
        let result = self
            .guard
            .run_delivery(&record, delivery.as_deref(), &validated, deadline, || {
                self.pipeline(trigger, &ctx, header.clone(), caller)
            })
            .await
            .map(|guarded| Report { replayed: guarded.replayed, ..guarded.value });
        let result = match result {
            // The other delivery's run does the work (and its retries finish it): this one is a duplicate, not an
            // error that would page the on-call for every ordinary build.
            Err(GuardError::AnnouncedAgain { event_id }) => {
                let mut report = header.clone();
                report.replayed = true;
                report.push(Action::new(
                    event_id,
                    "handle",
                    Outcome::Skipped,
                    "announced again while another delivery of it is being handled; that run does it",
                ));
                Ok(report)
            }
            other => other.map_err(Failed::Guard),
        };
        (result, caller, header)
    }

    /// The function's pipeline, then the per-target rule: a target that failed for a reason that may pass makes the
    /// run incomplete, so Lambda retries it (the retry re-observes and skips what already changed); targets that
    /// failed for good are reported, each on its line, except that a request sent by hand in which EVERY target
    /// failed is answered with the failure, so the person who sent it sees it at once. A panic is caught here, so the
    /// guard releases the event and Lambda's retry runs instead of finding it in progress.
    async fn pipeline(
        &self,
        trigger: Trigger<F::Request>,
        ctx: &Context,
        mut report: Report,
        caller: Caller,
    ) -> Result<Report, Run<F::Error>> {
        let outcome = AssertUnwindSafe(self.function.run(trigger.into_inputs(), ctx, &mut report)).catch_unwind().await;
        log_failed_targets(&report);
        let failure = match outcome {
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into());
                Run::Panicked { message, report }
            }
            Ok(Err(error)) => Run::Pipeline { error, report },
            Ok(Ok(())) => match (report.incomplete(), AllFailed::of(&report, caller)) {
                (Some(incomplete), _) => Run::Incomplete { incomplete, report },
                (None, Some(all_failed)) => Run::AllFailed { all_failed, report },
                (None, None) => return Ok(report),
            },
        };
        if !failure.report().actions.is_empty() {
            // Lambda keeps only the error: what was done before it goes to the log, so no outcome is lost.
            log_report(failure.report());
        }
        Err(failure)
    }

    fn metrics(&self, answer: &Result<Report, Diagnostic>, partial: Option<&Report>) -> Metrics {
        let (namespace, stack) = (&self.settings.metrics_namespace, &self.settings.stack);
        let counted = |report: &Report| {
            let mut m = Metrics::from_report(namespace.clone(), report).with_stack(stack);
            F::counters(report, &mut m);
            m
        };
        let uncounted = || Metrics::new(namespace.clone(), F::NAME).with_stack(stack);
        match answer {
            Ok(report) if report.replayed => {
                let mut m = uncounted();
                m.add("replayed", 1);
                m
            }
            Ok(report) => counted(report),
            Err(_) => {
                let mut m = partial.map(counted).unwrap_or_else(uncounted);
                // The invocation failed: at least one failure, whether or not a target carries it.
                if m.get("failed") == 0 {
                    m.add("failed", 1);
                }
                m
            }
        }
    }
}

/// Every target that failed, at ERROR with its stable type: a permanent failure from an event source is answered as
/// success (Lambda could not fix it by retrying), so the log and the `failed` metric are where it shows.
fn log_failed_targets(report: &Report) {
    for action in report.actions.iter().filter(|a| a.outcome == Outcome::Failed) {
        tracing::error!(
            target = %action.target,
            action = %action.action,
            error_type = action.error_type.as_deref().unwrap_or_default(),
            error = %action.detail,
            "target failed"
        );
    }
}

/// The most a log line of keeper's holds: CloudWatch Logs takes events of up to 1 MB, but Lambda's log path has been
/// seen to split lines at 256 KB, and a split JSON line is no longer JSON (nor filtered by its level).
pub const MAX_LOG_LINE_BYTES: usize = 64 * 1024;

/// The report of a run that ended with an error, at WARN, in as many lines as it takes to keep each under
/// [`MAX_LOG_LINE_BYTES`]: a sweep's report of thousands of actions would otherwise lose its tail.
fn log_report(report: &Report) {
    for (part, (of, actions)) in report_log_lines(report, MAX_LOG_LINE_BYTES).into_iter().enumerate() {
        tracing::warn!(event_id = %report.event_id, part = part + 1, of, actions = %actions, "run ended with an error");
    }
}

/// The actions of `report` as JSON arrays of at most `max_bytes` each (an action longer than that alone is cut to
/// fit, saying so), with how many parts there are.
pub fn report_log_lines(report: &Report, max_bytes: usize) -> Vec<(usize, String)> {
    let mut parts: Vec<String> = Vec::new();
    let mut current = String::from("[");
    for action in &report.actions {
        let mut one = serde_json::to_string(action).unwrap_or_default();
        if one.len() + 2 > max_bytes {
            let keep = one.floor_char_boundary(max_bytes.saturating_sub(64));
            one = serde_json::json!({"target": action.target, "action": action.action,
                "outcome": action.outcome, "cut": format!("{} of {} bytes", keep, one.len()),
                "head": &one[..one.floor_char_boundary(keep.min(max_bytes / 2))]})
            .to_string();
        }
        if current.len() > 1 && current.len() + one.len() + 2 > max_bytes {
            current.push(']');
            parts.push(std::mem::replace(&mut current, String::from("[")));
        }
        if current.len() > 1 {
            current.push(',');
        }
        current.push_str(&one);
    }
    current.push(']');
    parts.push(current);
    let of = parts.len();
    parts.into_iter().map(|p| (of, p)).collect()
}

/// Runs a function in Lambda: settings and clients once per process, then one [`Host::handle`] per event. Each
/// function's `main.rs` is this one call.
pub async fn serve<F: Function>() -> Result<(), lambda_runtime::Error> {
    let lookup = Lookup::env();
    crate::telemetry::init(&lookup);
    let host = Host::<F>::from_lookup(&lookup).await?;
    let host = &host;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        host.handle_invocation(event.payload, deadline_of(&event.context), Some(&event.context.request_id)).await
    }))
    .await
}

/// The Lambda deadline of an invocation. Lambda gives epoch milliseconds; `cargo lambda watch` gives the timeout
/// itself (`600000`, ten minutes), which read as a date lies in 1970 and would leave no time for any work. A value
/// before 2001 (10^12 ms) cannot be a deadline of a running invocation, so it is read as the time left from now.
pub fn deadline_of(context: &lambda_runtime::Context) -> Option<SystemTime> {
    const EPOCH_MS_2001: u64 = 1_000_000_000_000;
    match context.deadline {
        0 => None,
        relative if relative < EPOCH_MS_2001 => Some(SystemTime::now() + Duration::from_millis(relative)),
        epoch => Some(UNIX_EPOCH + Duration::from_millis(epoch)),
    }
}

/// The token seed of a delivery (see [`Context::token_seed`]): the event id with Lambda's request id, except for a
/// request its sender named with a `requestId` (the name is the identity they chose). Every event source's own id is
/// not enough: an S3 or SNS event re-sent from the dead-letter queue days later has the same event id, and its first
/// delivery's token would make AWS answer that delivery's result and do nothing.
fn token_seed<R>(trigger: &Trigger<R>, event_id: &str, request_id: Option<&str>) -> String {
    match (trigger, request_id) {
        (Trigger::Manual(m), _) if m.named => event_id.to_string(),
        (_, Some(request_id)) => format!("{event_id}@{request_id}"),
        (_, None) => event_id.to_string(),
    }
}

/// Who sent a payload the trigger could not parse: a hand-made request unless it has an event source's envelope.
fn caller_of(payload: &Value) -> Caller {
    let enveloped = ["Records", "detail-type", SCHEDULER_KEY].iter().any(|k| payload.get(*k).is_some());
    if enveloped || !payload.is_object() { Caller::EventSource } else { Caller::ByHand }
}

/// Why a run inside the guard produced no report to store (the guard then frees the event for Lambda's retry),
/// with what the run did before it ended.
#[derive(Debug, thiserror::Error)]
enum Run<E> {
    #[error("{error}")]
    Pipeline { error: E, report: Report },
    #[error("{incomplete}")]
    Incomplete { incomplete: Incomplete, report: Report },
    #[error("the pipeline panicked: {message}")]
    Panicked { message: String, report: Report },
    #[error("{all_failed}")]
    AllFailed { all_failed: AllFailed, report: Report },
}

/// A request sent by hand whose every target failed for good: its answer is the failure, not a report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
struct AllFailed {
    error_type: ErrorType,
    message: String,
}

impl AllFailed {
    fn of(report: &Report, caller: Caller) -> Option<AllFailed> {
        let all_failed = !report.actions.is_empty() && report.actions.iter().all(|a| a.outcome == Outcome::Failed);
        if !caller.sees_every_failure() || !all_failed {
            return None;
        }
        let error_type = report.actions.iter().find_map(|a| a.failure)?;
        let lines: Vec<String> = report.actions.iter().map(|a| format!("{}: {}", a.target, a.detail)).collect();
        Some(AllFailed { error_type, message: lines.join("; ") })
    }
}

impl<E> Run<E> {
    fn report(&self) -> &Report {
        match self {
            Run::Pipeline { report, .. }
            | Run::Incomplete { report, .. }
            | Run::Panicked { report, .. }
            | Run::AllFailed { report, .. } => report,
        }
    }
}

impl<E: Classify> Classify for Run<E> {
    fn error_type(&self) -> ErrorType {
        match self {
            Run::Pipeline { error, .. } => error.error_type(),
            Run::Incomplete { incomplete, .. } => incomplete.error_type(),
            Run::Panicked { .. } => ErrorType::PANIC,
            Run::AllFailed { all_failed, .. } => all_failed.error_type,
        }
    }
}

/// Why an invocation did not end with the function's report.
#[derive(Debug, thiserror::Error)]
enum Failed<E> {
    #[error(transparent)]
    Trigger(TriggerError),
    #[error(transparent)]
    Guard(GuardError<Run<E>>),
}

impl<E: Classify> Classify for Failed<E> {
    fn error_type(&self) -> ErrorType {
        match self {
            Failed::Trigger(e) => e.error_type(),
            Failed::Guard(e) => e.error_type(),
        }
    }
}

#[cfg(test)]
mod tests;
