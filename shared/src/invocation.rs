//! One invocation, end to end around a function's pipeline: parse the trigger, take the event guard, run, answer
//! Lambda, write the metrics line. Every function's handler is this plus its own observe → plan → apply.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_types::SdkConfig;
use lambda_runtime::Diagnostic;
use serde_json::Value;

use crate::config::Settings;
use crate::idempotency::{GuardError, Idempotency, IdempotencyStore, store_for};
use crate::report::{Caller, Classify, ErrorType, Report, into_lambda_result};
use crate::telemetry::Metrics;
use crate::trigger::{self, Request, SCHEDULER_KEY, Trigger, TriggerError};

/// What the pipeline knows about the invocation besides the trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub function: &'static str,
    pub event_id: String,
    /// The Lambda deadline; loops that wait (polling, read-modify-write) stop before it.
    pub deadline: Option<SystemTime>,
    /// `DRY_RUN` from the settings; a request may turn dry run on, never off.
    pub dry_run: bool,
}

impl Context {
    /// The time left before the deadline, if there is one.
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline.map(|d| d.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
    }

    /// The deadline as a monotonic instant, for [`crate::retry::read_modify_write`].
    pub fn deadline_instant(&self) -> Option<std::time::Instant> {
        self.remaining().map(|left| std::time::Instant::now() + left)
    }
}

/// Adds a function's own counters (started, rotated, ...) to the EMF line of a report.
pub type Counters = fn(&Report, &mut Metrics);

/// What one function keeps for all its invocations.
#[derive(Clone)]
pub struct Runtime {
    pub function: &'static str,
    pub settings: Settings,
    pub guard: Idempotency,
    counters: Option<Counters>,
}

impl Runtime {
    pub fn new(function: &'static str, settings: Settings, store: Arc<dyn IdempotencyStore>) -> Self {
        let guard = Idempotency::new(store, function, settings.idempotency_ttl);
        Runtime { function, settings, guard, counters: None }
    }

    /// The runtime of a deployed function: the DynamoDB guard when `IDEMPOTENCY_TABLE` is set, else memory.
    pub fn from_settings(function: &'static str, settings: Settings, sdk_config: &SdkConfig) -> Self {
        let store = store_for(settings.idempotency_table.as_deref(), sdk_config, &settings);
        Runtime::new(function, settings, store)
    }

    pub fn with_counters(mut self, counters: Counters) -> Self {
        self.counters = Some(counters);
        self
    }

    /// Handles one payload: the whole invocation, answered as Lambda expects (see
    /// [`crate::report::into_lambda_result`]), with one EMF line written.
    pub async fn handle<R, E, F, Fut>(
        &self,
        payload: Value,
        deadline: Option<SystemTime>,
        pipeline: F,
    ) -> Result<Report, Diagnostic>
    where
        R: Request,
        E: Classify,
        F: FnOnce(Trigger<R>, Context) -> Fut,
        Fut: Future<Output = Result<Report, E>>,
    {
        let (result, caller, event_id) = self.run(payload, deadline, pipeline).await;
        let header = Report::new(self.function, event_id, self.settings.dry_run);
        let answer = into_lambda_result(result, caller, header);
        self.metrics(&answer).emit();
        answer
    }

    async fn run<R, E, F, Fut>(
        &self,
        payload: Value,
        deadline: Option<SystemTime>,
        pipeline: F,
    ) -> (Result<Report, InvocationError<E>>, Caller, String)
    where
        R: Request,
        E: Classify,
        F: FnOnce(Trigger<R>, Context) -> Fut,
        Fut: Future<Output = Result<Report, E>>,
    {
        let trigger: Trigger<R> = match trigger::parse(payload.clone()) {
            Ok(t) => t,
            Err(e) => return (Err(InvocationError::Trigger(e)), caller_of(&payload), String::new()),
        };
        let (caller, event_id) = (trigger.caller(), trigger.event_id());
        tracing::info!(function = self.function, event_id, trigger = trigger.kind(), "invocation");
        let context =
            Context { function: self.function, event_id: event_id.clone(), deadline, dry_run: self.settings.dry_run };
        let result = match self.guard.run(&event_id, &payload, deadline, || pipeline(trigger, context)).await {
            Ok(guarded) => Ok(Report { replayed: guarded.replayed, ..guarded.value }),
            Err(e) => Err(InvocationError::Guard(e)),
        };
        (result, caller, event_id)
    }

    fn metrics(&self, answer: &Result<Report, Diagnostic>) -> Metrics {
        let namespace = self.settings.metrics_namespace.clone();
        match answer {
            Ok(report) if report.replayed => {
                let mut m = Metrics::new(namespace, self.function);
                m.add("replayed", 1);
                m
            }
            Ok(report) => {
                let mut m = Metrics::from_report(namespace, report);
                if let Some(counters) = self.counters {
                    counters(report, &mut m);
                }
                m
            }
            Err(_) => {
                let mut m = Metrics::new(namespace, self.function);
                m.add("failed", 1);
                m
            }
        }
    }
}

/// The Lambda deadline of an invocation (the runtime gives epoch milliseconds).
pub fn deadline_of(context: &lambda_runtime::Context) -> Option<SystemTime> {
    (context.deadline > 0).then(|| UNIX_EPOCH + Duration::from_millis(context.deadline))
}

/// Who sent a payload the trigger could not parse: a hand-made request unless it has an event source's envelope.
fn caller_of(payload: &Value) -> Caller {
    let enveloped = ["Records", "detail-type", SCHEDULER_KEY].iter().any(|k| payload.get(*k).is_some());
    if enveloped || !payload.is_object() { Caller::EventSource } else { Caller::ByHand }
}

#[derive(Debug, thiserror::Error)]
enum InvocationError<E> {
    #[error(transparent)]
    Trigger(TriggerError),
    #[error(transparent)]
    Guard(GuardError<E>),
}

impl<E: Classify> Classify for InvocationError<E> {
    fn error_type(&self) -> ErrorType {
        match self {
            InvocationError::Trigger(e) => e.error_type(),
            InvocationError::Guard(e) => e.error_type(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::idempotency::MemoryStore;
    use crate::report::{Action, Outcome};

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Req {
        names: Vec<String>,
    }
    impl Request for Req {}

    #[derive(Debug, thiserror::Error)]
    enum PipelineError {
        #[error("throttled")]
        Throttled,
        #[error("no such builder")]
        NotFound,
    }
    impl Classify for PipelineError {
        fn error_type(&self) -> ErrorType {
            match self {
                PipelineError::Throttled => ErrorType::THROTTLED,
                PipelineError::NotFound => ErrorType::NOT_FOUND,
            }
        }
    }

    fn runtime() -> Runtime {
        Runtime::new("test-fn", Settings::default(), Arc::new(MemoryStore::default())).with_counters(|report, m| {
            m.add("started", report.count_of("start", Outcome::Applied) as u64);
        })
    }

    async fn ok_pipeline(trigger: Trigger<Req>, ctx: Context) -> Result<Report, PipelineError> {
        let Trigger::Manual(m) = trigger else { return Err(PipelineError::NotFound) };
        let mut report = Report::new(ctx.function, ctx.event_id, ctx.dry_run);
        for name in m.request.names {
            report.push(Action::new(name, "start", Outcome::Applied, ""));
        }
        Ok(report)
    }

    #[tokio::test]
    async fn given_manual_request_when_handled_twice_then_second_is_a_replay_and_pipeline_ran_once() {
        let rt = runtime();
        let runs = AtomicU32::new(0);
        let payload = json!({"names": ["b1", "b2"]});
        let pipeline = |t, c| {
            runs.fetch_add(1, Ordering::SeqCst);
            ok_pipeline(t, c)
        };
        let first = rt.handle(payload.clone(), None, pipeline).await.unwrap();
        assert_eq!(first.actions.len(), 2);
        assert!(!first.replayed);
        assert_eq!(rt.metrics(&Ok(first.clone())).get("started"), 2);
        let second = rt.handle(payload, None, pipeline).await.unwrap();
        assert!(second.replayed);
        assert_eq!(second.actions, first.actions);
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn given_bad_manual_request_when_handled_then_function_error_naming_field_and_pipeline_not_run() {
        let runs = AtomicU32::new(0);
        let diag = runtime()
            .handle(json!({"names": "b1"}), None, |t, c| {
                runs.fetch_add(1, Ordering::SeqCst);
                ok_pipeline(t, c)
            })
            .await
            .unwrap_err();
        assert_eq!(diag.error_type, "Permanent.InvalidInput");
        assert!(diag.error_message.contains("`names`"), "{}", diag.error_message);
        assert_eq!(runs.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn given_bad_message_from_sns_when_handled_then_report_carries_the_error_so_lambda_does_not_retry() {
        let event = json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:x",
            "Sns": {"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
                    "Message": "{\"nmes\":[]}", "Timestamp": "2026-01-01T00:00:00Z", "SignatureVersion": "1",
                    "Signature": "", "SigningCertUrl": "", "UnsubscribeUrl": ""}}]});
        let report = runtime().handle(event, None, ok_pipeline).await.unwrap();
        let failure = report.error.expect("failure in the report");
        assert_eq!(failure.error_type, "Permanent.InvalidInput");
        assert!(failure.error_message.contains("unknown field `nmes`"), "{}", failure.error_message);
    }

    #[tokio::test]
    async fn given_retryable_pipeline_failure_when_handled_then_lambda_error_and_a_retry_runs_again() {
        let rt = runtime();
        let payload = json!({"names": ["b1"]});
        let diag = rt
            .handle(payload.clone(), None, |_: Trigger<Req>, _| async { Err(PipelineError::Throttled) })
            .await
            .unwrap_err();
        assert_eq!(diag.error_type, "Retryable.Throttled");
        let retry = rt.handle(payload, None, ok_pipeline).await.unwrap();
        assert!(!retry.replayed, "a failed run must not be replayed");
    }

    #[tokio::test]
    async fn given_permanent_pipeline_failure_from_a_schedule_when_handled_then_report_with_error() {
        let schedule = json!({"version": "0", "id": "sched-1", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [], "detail": {}});
        let report = runtime().handle(schedule, None, ok_pipeline).await.unwrap();
        assert_eq!(report.event_id, "sched-1");
        assert_eq!(report.error.unwrap().error_type, "Permanent.NotFound");
    }

    #[test]
    fn given_lambda_context_when_deadline_read_then_epoch_millis() {
        let mut ctx = lambda_runtime::Context::default();
        ctx.deadline = 1_800_000_000_123;
        assert_eq!(deadline_of(&ctx), Some(UNIX_EPOCH + Duration::from_millis(1_800_000_000_123)));
        ctx.deadline = 0;
        assert_eq!(deadline_of(&ctx), None);
    }
}
