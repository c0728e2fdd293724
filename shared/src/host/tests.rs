//! The host around a small test function: what every keeper function gets from it without writing it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::Deserialize;
use serde_json::json;

use super::*;
use crate::idempotency::MemoryStore;
use crate::report::{Action, Outcome};
use crate::trigger::Input;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Req {
    names: Vec<String>,
    #[allow(dead_code, reason = "declared so that the request type checks it; the trigger reads it for the host")]
    dry_run: Option<bool>,
    /// How the pipeline should end: `throttled` / `not-found` (the whole run), `target-throttled` /
    /// `target-not-found` (one target).
    fail: Option<String>,
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

/// Starts the named "builders"; remembers how often it ran and which dry-run flag it was given.
#[derive(Default)]
struct Starter {
    runs: AtomicU32,
    dry_runs: Mutex<Vec<bool>>,
}

impl Function for Starter {
    type Verb = crate::report::NoVerbs;
    const NAME: &'static str = "test-fn";
    type Request = Req;
    type Settings = ();
    type Error = PipelineError;

    fn new(_sdk_config: &SdkConfig, _shared: &Settings, _settings: ()) -> Self {
        Starter::default()
    }

    fn counters(report: &Report, metrics: &mut Metrics) {
        metrics.add("started", report.count_of("start", Outcome::Applied) as u64);
    }

    async fn run(&self, inputs: Vec<Input<Req>>, ctx: &Context, report: &mut Report) -> Result<(), PipelineError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.dry_runs.lock().unwrap().push(ctx.dry_run);
        let request = match inputs.into_iter().next() {
            Some(Input::Request(r)) => r,
            _ => return Err(PipelineError::NotFound),
        };
        match request.fail.as_deref() {
            Some("panic") => panic!("a bug in the pipeline"),
            Some("applied-then-throttled") => {
                report.push(Action::new("b0", "start", Outcome::Applied, ""));
                return Err(PipelineError::Throttled);
            }
            Some("throttled") => return Err(PipelineError::Throttled),
            Some("not-found") => return Err(PipelineError::NotFound),
            Some("target-throttled") => report.push(Action::failed("b0", "start", &PipelineError::Throttled)),
            Some("target-not-found") => report.push(Action::failed("b0", "start", &PipelineError::NotFound)),
            _ => {}
        }
        let outcome = if ctx.dry_run { Outcome::Planned } else { Outcome::Applied };
        for name in request.names {
            report.push(Action::new(name, "start", outcome, ""));
        }
        Ok(())
    }
}

fn host(pairs: &[(&str, &str)]) -> Host<Starter> {
    host_on(pairs, Arc::new(MemoryStore::default()))
}

/// A host on a given store: two hosts on one store are two processes sharing the idempotency table.
fn host_on(pairs: &[(&str, &str)], store: Arc<MemoryStore>) -> Host<Starter> {
    Host::with_store(&SdkConfig::builder().build(), &Lookup::from_pairs(pairs), store).expect("valid settings")
}

fn runs(host: &Host<Starter>) -> u32 {
    host.function().runs.load(Ordering::SeqCst)
}

#[tokio::test]
async fn given_manual_request_when_handled_twice_then_second_is_a_replay_and_pipeline_ran_once() {
    let host = host(&[]);
    let payload = json!({"names": ["b1", "b2"]});
    let (first, metrics) = host.answer(payload.clone(), None).await;
    let first = first.unwrap();
    assert_eq!(metrics.get("started"), 2, "the function's own counters are added");
    assert_eq!(first.actions.len(), 2);
    assert!(!first.replayed);
    assert_eq!((first.function.as_str(), first.dry_run), ("test-fn", false), "the host writes the header");
    let (second, metrics) = host.answer(payload, None).await;
    let second = second.unwrap();
    assert_eq!(metrics.get("replayed"), 1);
    assert!(second.replayed);
    assert_eq!(second.actions, first.actions);
    assert_eq!(runs(&host), 1);
}

#[tokio::test]
async fn given_bad_manual_request_when_handled_then_function_error_naming_field_and_pipeline_not_run() {
    let host = host(&[]);
    let diag = host.handle(json!({"names": "b1"}), None).await.unwrap_err();
    assert_eq!(diag.error_type, "Permanent.InvalidInput");
    assert!(diag.error_message.contains("`names`"), "{}", diag.error_message);
    assert_eq!(runs(&host), 0);
}

#[tokio::test]
async fn given_bad_message_from_sns_when_handled_then_report_carries_the_error_so_lambda_does_not_retry() {
    let event = json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:x",
        "Sns": {"Type": "Notification", "MessageId": "m-1", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
                "Message": "{\"nmes\":[]}", "Timestamp": "2026-01-01T00:00:00Z", "SignatureVersion": "1",
                "Signature": "", "SigningCertUrl": "", "UnsubscribeUrl": ""}}]});
    let host = host(&[]);
    let report = host.handle(event, None).await.unwrap();
    let failure = report.error.expect("failure in the report");
    assert_eq!(failure.error_type, "Permanent.InvalidInput");
    assert!(failure.error_message.contains("unknown field `nmes`"), "{}", failure.error_message);
    assert_eq!(runs(&host), 0);
}

#[tokio::test]
async fn given_retryable_pipeline_failure_when_handled_then_lambda_error_and_a_retry_runs_again() {
    let host = host(&[]);
    let diag = host.handle(json!({"names": ["b1"], "fail": "throttled", "requestId": "r1"}), None).await.unwrap_err();
    assert_eq!(diag.error_type, "Retryable.Throttled");
    let retry = host.handle(json!({"names": ["b1"], "fail": "throttled", "requestId": "r1"}), None).await;
    assert_eq!(retry.unwrap_err().error_type, "Retryable.Throttled");
    assert_eq!(runs(&host), 2, "a failed run must not be replayed: the retry ran again");
}

#[tokio::test]
async fn given_permanent_pipeline_failure_from_a_schedule_when_handled_then_report_with_error() {
    let schedule = json!({"version": "0", "id": "sched-1", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "us-east-1", "resources": [], "detail": {}});
    let report = host(&[]).handle(schedule, None).await.unwrap();
    assert_eq!(report.event_id, "sched-1");
    assert_eq!(report.error.unwrap().error_type, "Permanent.NotFound");
}

#[tokio::test]
async fn given_dry_run_in_settings_or_request_when_handled_then_the_pipeline_gets_it_once_and_a_request_cannot_turn_it_off()
 {
    // GIVEN DRY_RUN unset and set, and requests that ask for a dry run, say nothing, or ask for none
    let cases = [
        (&[][..], json!({"names": ["b1"]}), false),
        (&[][..], json!({"names": ["b1"], "dryRun": true}), true),
        (&[("DRY_RUN", "true")][..], json!({"names": ["b1"]}), true),
        (&[("DRY_RUN", "true")][..], json!({"names": ["b1"], "dryRun": false}), true),
    ];
    for (settings, payload, expected) in cases {
        let host = host(settings);
        // WHEN handled
        let report = host.handle(payload.clone(), None).await.unwrap();
        // THEN the context and the report header carry the one effective flag
        assert_eq!(*host.function().dry_runs.lock().unwrap(), vec![expected], "{settings:?} {payload}");
        assert_eq!(report.dry_run, expected, "{settings:?} {payload}");
        let outcome = if expected { Outcome::Planned } else { Outcome::Applied };
        assert_eq!(report.actions[0].outcome, outcome);
    }
}

#[tokio::test]
async fn given_one_target_failing_for_a_reason_that_may_pass_when_handled_then_lambda_retries_and_the_retry_runs() {
    let host = host(&[]);
    let payload = json!({"names": ["b1"], "fail": "target-throttled"});
    // WHEN one target of the run fails retryably
    let diag = host.handle(payload.clone(), None).await.unwrap_err();
    // THEN the invocation fails Retryable (so Lambda retries) and the guard lets the retry run
    assert_eq!(diag.error_type, "Retryable.Throttled");
    assert!(diag.error_message.contains("1 target(s)"), "{}", diag.error_message);
    host.handle(payload, None).await.unwrap_err();
    assert_eq!(runs(&host), 2);
}

#[tokio::test]
async fn given_one_target_failing_permanently_when_handled_then_the_report_names_it_and_is_stored() {
    let host = host(&[]);
    let payload = json!({"names": ["b1"], "fail": "target-not-found"});
    let report = host.handle(payload.clone(), None).await.unwrap();
    assert_eq!(report.count(Outcome::Failed), 1);
    assert_eq!(report.actions[0].error_type.as_deref(), Some("Permanent.NotFound"));
    assert!(host.handle(payload, None).await.unwrap().replayed, "nothing a retry could change: stored");
    assert_eq!(runs(&host), 1);
}

#[tokio::test]
async fn given_a_pipeline_that_panics_when_handled_then_the_event_is_released_and_lambdas_retry_runs_again() {
    let host = host(&[]);
    let payload = json!({"names": ["b1"], "fail": "panic", "requestId": "p1"});
    // WHEN the pipeline panics
    let diag = host.handle(payload.clone(), None).await.unwrap_err();
    // THEN the invocation fails retryably, naming the panic, so Lambda retries and finally dead-letters it
    assert_eq!(diag.error_type, "Retryable.Panic");
    assert!(diag.error_message.contains("a bug in the pipeline"), "{}", diag.error_message);
    // THEN the lock was released: the retry runs instead of being refused as in progress
    let retry = host.handle(payload, None).await.unwrap_err();
    assert_eq!(retry.error_type, "Retryable.Panic", "not Retryable.InProgress");
    assert_eq!(runs(&host), 2);
}

#[tokio::test]
async fn given_a_dry_run_when_the_same_event_comes_after_dry_run_is_turned_off_then_it_runs_for_real() {
    let store = Arc::new(MemoryStore::default());
    let payload = json!({"names": ["b1"], "requestId": "change-1"});
    // GIVEN the event handled while DRY_RUN was on
    let dry = host_on(&[("DRY_RUN", "true")], store.clone());
    assert!(dry.handle(payload.clone(), None).await.unwrap().dry_run);
    // WHEN the same event arrives after DRY_RUN was turned off
    let real = host_on(&[], store);
    let report = real.handle(payload, None).await.unwrap();
    // THEN it runs for real: the dry run's stored report is not a replay of the real one
    assert!(!report.replayed);
    assert!(!report.dry_run);
    assert_eq!(report.actions[0].outcome, Outcome::Applied);
    assert_eq!(runs(&real), 1);
}

#[tokio::test]
async fn given_a_run_that_acted_then_failed_when_counted_then_the_metrics_keep_what_it_did() {
    let host = host(&[]);
    // WHEN a run starts one builder, then fails for a reason that may pass
    let (answer, metrics) = host.answer(json!({"names": ["b1"], "fail": "applied-then-throttled"}), None).await;
    // THEN Lambda gets the error, and the metrics still count what was done before it, with the function's counters
    assert_eq!(answer.unwrap_err().error_type, "Retryable.Throttled");
    assert_eq!(metrics.get("applied"), 1, "what was applied before the failure is counted");
    assert_eq!(metrics.get("started"), 1);
    assert_eq!(metrics.get("failed"), 1);
}

#[tokio::test]
async fn given_a_permanent_failure_of_one_target_from_an_event_source_when_counted_then_failed_is_counted() {
    let host = host(&[]);
    let event = json!({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": "arn:aws:sns:x",
        "Sns": {"Type": "Notification", "MessageId": "m-2", "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
                "Message": "{\"names\":[\"b1\"],\"fail\":\"target-not-found\"}", "Timestamp": "2026-01-01T00:00:00Z",
                "SignatureVersion": "1", "Signature": "", "SigningCertUrl": "", "UnsubscribeUrl": ""}}]});
    // WHEN one target fails permanently in a run an event source started
    let (answer, metrics) = host.answer(event, None).await;
    // THEN Lambda gets a report (a retry cannot help), and the failure is counted for the alarm
    assert_eq!(answer.unwrap().count(Outcome::Failed), 1);
    assert_eq!(metrics.get("failed"), 1);
    assert_eq!(metrics.get("applied"), 1);
}

#[tokio::test]
async fn given_a_request_by_hand_whose_every_target_failed_when_answered_then_the_caller_gets_the_failure() {
    let host = host(&[]);
    // WHEN the only target fails for good
    let diag = host.handle(json!({"names": [], "fail": "target-not-found"}), None).await.unwrap_err();
    // THEN the person who sent it sees the failure at once, with the target
    assert_eq!(diag.error_type, "Permanent.NotFound");
    assert!(diag.error_message.contains("b0: no such builder"), "{}", diag.error_message);
    // WHEN some target succeeded THEN it is a report with the failed line (shown in the test above this one)
    assert!(host.handle(json!({"names": ["b1"], "fail": "target-not-found"}), None).await.is_ok());
}

#[test]
fn given_lambda_context_when_deadline_read_then_epoch_millis() {
    let mut ctx = lambda_runtime::Context::default();
    ctx.deadline = 1_800_000_000_123;
    assert_eq!(deadline_of(&ctx), Some(UNIX_EPOCH + Duration::from_millis(1_800_000_000_123)));
    ctx.deadline = 0;
    assert_eq!(deadline_of(&ctx), None);
    // cargo lambda watch sends its timeout, not a date: ten minutes from now, not 1970
    ctx.deadline = 600_000;
    let left = deadline_of(&ctx).and_then(|d| d.duration_since(SystemTime::now()).ok()).expect("a future deadline");
    assert!(left > Duration::from_secs(590) && left <= Duration::from_secs(600), "{left:?}");
}

fn context_with(deadline: Option<SystemTime>, margin: Duration) -> Context {
    Context {
        function: "test-fn",
        event_id: "e".into(),
        token_seed: "e".into(),
        deadline,
        dry_run: false,
        leases: Leases::new(Arc::new(MemoryStore::default()), "test-fn"),
        deadline_margin: margin,
        caller: crate::answer::Caller::EventSource,
        now: SystemTime::now(),
    }
}

#[test]
fn given_the_deadline_within_the_margin_when_work_would_start_then_no_permit_and_out_of_time_is_retryable() {
    let near = context_with(Some(SystemTime::now() + Duration::from_secs(2)), Duration::from_secs(5));
    let Err(Withheld::OutOfTime(refused)) = near.may_mutate() else { panic!("2 s left is under a 5 s margin") };
    assert_eq!(refused.error_type(), ErrorType::OUT_OF_TIME);
    assert!(refused.error_type().is_retryable());
    assert!(refused.to_string().contains("DEADLINE_MARGIN_MS"), "{refused}");
    let passed = context_with(Some(SystemTime::now() - Duration::from_secs(1)), Duration::ZERO);
    assert!(
        matches!(passed.may_mutate(), Err(Withheld::OutOfTime(_))),
        "a deadline passed leaves no time, margin 0 or not"
    );
}

#[test]
fn given_a_dry_run_when_work_would_start_then_no_permit_whatever_the_time() {
    // A dry run is withheld for being one, not for time: its targets are reported planned, never out of time.
    let near = context_with(Some(SystemTime::now() + Duration::from_secs(2)), Duration::from_secs(5));
    assert_eq!(Context { dry_run: true, ..near }.may_mutate().unwrap_err(), Withheld::DryRun);
    let far = context_with(Some(SystemTime::now() + Duration::from_secs(60)), Duration::from_secs(5));
    assert_eq!(Context { dry_run: true, ..far }.may_mutate().unwrap_err(), Withheld::DryRun);
}

#[test]
fn given_time_beyond_the_margin_or_no_deadline_when_work_would_start_then_a_permit() {
    let far = context_with(Some(SystemTime::now() + Duration::from_secs(60)), Duration::from_secs(5));
    assert!(far.may_mutate().is_ok());
    assert!(context_with(None, Duration::from_secs(5)).may_mutate().is_ok(), "no deadline: a local run");
}

#[test]
fn given_a_sweep_report_of_thousands_of_actions_when_logged_then_every_line_is_under_the_limit_and_none_is_lost() {
    // GIVEN a report far larger than one log event
    let mut report = Report::new("f", "e", false);
    for i in 0..5_000 {
        report.push(Action::new(
            format!("arn:aws:imagebuilder:us-east-1:123456789012:image/a/1.0.{i}/1"),
            "deprecate",
            Outcome::Applied,
            "x".repeat(40),
        ));
    }
    report.push(Action::new("huge", "update", Outcome::Failed, "STOPPED → PENDING ".repeat(12_000)));
    // WHEN it is cut into log lines
    let lines = report_log_lines(&report, MAX_LOG_LINE_BYTES);
    // THEN each line is JSON under the limit, and every action is in one of them, in order
    assert!(lines.len() > 1);
    let mut targets = Vec::new();
    for (of, line) in &lines {
        assert_eq!(*of, lines.len());
        assert!(line.len() <= MAX_LOG_LINE_BYTES, "{} bytes", line.len());
        let actions: Vec<serde_json::Value> = serde_json::from_str(line).unwrap();
        targets.extend(actions.iter().map(|a| a["target"].as_str().unwrap().to_string()));
    }
    assert_eq!(targets.len(), 5_001);
    assert_eq!(targets.last().map(String::as_str), Some("huge"));
    assert_eq!(targets[4_999], "arn:aws:imagebuilder:us-east-1:123456789012:image/a/1.0.4999/1");
}
