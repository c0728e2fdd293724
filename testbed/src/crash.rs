//! Crash mid-run: a function's run ended in the middle, after some mutating calls and before others, then the event
//! delivered again as Lambda would. Two ways to end it: the real bootstrap process killed with SIGKILL (Lambda's
//! timeout, an out-of-memory kill, a host failure), and a panic in the handler. Either way the redelivery must
//! complete the run with nothing done twice and nothing left half-done.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use shared::config::{ConfigError, Lookup};
use shared::host::{Context, Function};
use shared::report::Report;
use shared::telemetry::Metrics;
use shared::trigger::Input;

use crate::emulator::{effects_at_aws, host, mutating, start};
use crate::lambda::{Reaped, bootstrap_command};
use crate::moto::Moto;
use crate::runtime_api::{Answer, RuntimeApi};

/// One function's crash scenario.
pub struct Case {
    pub function: &'static str,
    pub seed: Value,
    pub event: Value,
    /// The function's settings (deadline margin, concurrency, policy, ...).
    pub settings: Vec<(&'static str, String)>,
    /// The emulator fault rule that holds the run in the middle (latency on a later mutating call), so that the end
    /// lands after the calls [`Case::ends_after`] waits for and before the rest.
    pub hold: Value,
    /// True once the run has made the calls it must make before it is ended.
    pub ends_after: fn(&[local::Call]) -> bool,
    /// Whether the end must leave work undone. False where the held call is the only mutating one: it may have
    /// reached the service or not, and the redelivery must converge either way.
    pub leaves_work: bool,
}

impl Case {
    /// A case on the demo account (`events/local-account.json`) under the demo settings and `extra`, with work
    /// allowed to start until half a second before the deadline (the first invocation's is 8 s away).
    pub fn on_demo(
        function: &'static str,
        event: Value,
        extra: &[(&'static str, &str)],
        hold: Value,
        ends_after: fn(&[local::Call]) -> bool,
        leaves_work: bool,
    ) -> Case {
        let demo = crate::samples::DEMO_SETTINGS.iter().chain(extra).chain(&[("DEADLINE_MARGIN_MS", "500")]);
        let settings = demo.map(|(k, v)| (*k, v.to_string())).collect();
        Case { function, seed: crate::samples::demo_account(), event, settings, hold, ends_after, leaves_work }
    }

    fn settings(&self) -> Vec<(&str, &str)> {
        self.settings.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    fn held_seed(&self) -> Value {
        let mut seed = self.seed.clone();
        seed["faults"] = json!({"rules": [self.hold]});
        seed
    }

    /// What one calm run did to the account: it must change something.
    fn check_calm(&self, calm: &BTreeMap<String, usize>) {
        assert!(!calm.is_empty(), "{}: the calm run changes nothing, so nothing would be proven", self.function);
    }

    /// What the ended run did: only what the calm run does, and (when it must) not all of it.
    fn check_ended(&self, calm: &BTreeMap<String, usize>, ended: &BTreeMap<String, usize>) {
        for (effect, n) in ended {
            assert!(calm.get(effect).is_some_and(|c| n <= c), "{}: {effect} ×{n} is not in {calm:?}", self.function);
        }
        if self.leaves_work {
            assert!(!ended.is_empty(), "{}: the run was ended before its first mutating call", self.function);
            assert_ne!(ended, calm, "{}: the run was ended after all its work", self.function);
        }
    }
}

async fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "{what} did not happen within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn spawn(bootstrap: &str, api: &RuntimeApi, endpoint: &str, settings: &[(&str, &str)]) -> Reaped {
    let child = bootstrap_command(bootstrap, &api.address, "keeper", endpoint, settings)
        .spawn()
        .unwrap_or_else(|e| panic!("the bootstrap {bootstrap} starts: {e}"));
    Reaped(child)
}

async fn answer(rx: tokio::sync::oneshot::Receiver<Answer>, function: &str) -> Answer {
    tokio::time::timeout(Duration::from_secs(60), rx)
        .await
        .unwrap_or_else(|_| panic!("{function}: no answer within 60 s"))
        .unwrap_or_else(|_| panic!("{function}: the runtime API dropped the invocation"))
}

/// The real bootstrap, guarded by DynamoDB (moto) as deployed, is SIGKILLed in the middle of an invocation; a
/// redelivery before the dead run's deadline is refused as in progress, and one after it completes the run.
pub async fn sigkill_mid_run(bootstrap: &str, case: Case) {
    let function = case.function;
    let api = RuntimeApi::start().await;
    let far = || SystemTime::now() + Duration::from_secs(300);
    // GIVEN what one calm run does (its own account, the memory guard)
    let calm = {
        let running = start(case.seed.clone()).await;
        let _process = spawn(bootstrap, &api, &running.url, &case.settings());
        let calm = answer(api.invoke("calm", &case.event, far()), function).await;
        assert!(matches!(&calm, Answer::Response(r) if r["error"].is_null()), "{function}: calm run: {calm:?}");
        effects_at_aws(&running.emulator.calls())
    };
    case.check_calm(&calm);
    // AND the deployed shape: the DynamoDB guard (moto), an account that holds the run in the middle
    let moto = tokio::task::spawn_blocking(Moto::start).await.expect("moto starts");
    moto.idempotency_store().await;
    let running = start(case.held_seed()).await;
    let mut settings = case.settings();
    settings.extend([("IDEMPOTENCY_TABLE", "keeper-idempotency"), ("AWS_ENDPOINT_URL_DYNAMODB", moto.url.as_str())]);
    // WHEN the bootstrap is SIGKILLed once the run is in the middle
    let deadline = SystemTime::now() + Duration::from_secs(8);
    let mut first = spawn(bootstrap, &api, &running.url, &settings);
    let mut unanswered = api.invoke("first", &case.event, deadline);
    wait_for("the calls before the kill", Duration::from_secs(4), || (case.ends_after)(&running.emulator.calls()))
        .await;
    first.0.kill().expect("SIGKILL");
    first.0.wait().expect("the killed bootstrap is reaped");
    // THEN it answered nothing, and (once a held call that was in flight has landed or not) did part of the calm
    // run's work at most
    assert!(unanswered.try_recv().is_err(), "{function}: a killed bootstrap answered");
    let held = Duration::from_millis(case.hold["latencyMs"].as_u64().unwrap_or(0));
    tokio::time::sleep(held + Duration::from_millis(300)).await;
    let ended = effects_at_aws(&running.emulator.calls());
    case.check_ended(&calm, &ended);
    // WHEN Lambda redelivers before the dead run's deadline, to a new execution environment
    let _second = spawn(bootstrap, &api, &running.url, &settings);
    let early = answer(api.invoke("early", &case.event, far()), function).await;
    // THEN the event is still held by the dead run: refused as retryable, with no mutating call
    let Answer::Error(refused) = &early else { panic!("{function}: an early redelivery ran: {early:?}") };
    assert_eq!(refused["errorType"], "Retryable.InProgress", "{function}: {refused}");
    assert_eq!(effects_at_aws(&running.emulator.calls()), ended, "{function}: the refused redelivery changed nothing");
    // WHEN Lambda redelivers after that deadline
    let wait = deadline.duration_since(SystemTime::now()).unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(100)).await;
    let late = answer(api.invoke("late", &case.event, far()), function).await;
    // THEN the run completes, and with the killed run it did exactly the calm run's work: nothing twice or missing
    let Answer::Response(report) = &late else { panic!("{function}: the redelivery after the deadline: {late:?}") };
    assert!(report["error"].is_null() && report["replayed"].is_null(), "{function}: {report}");
    assert_eq!(effects_at_aws(&running.emulator.calls()), calm, "{function}: killed run + redelivery");
    // AND a further delivery is answered from the guard
    let again = answer(api.invoke("again", &case.event, far()), function).await;
    assert!(matches!(&again, Answer::Response(r) if r["replayed"] == true), "{function}: {again:?}");
    assert_eq!(effects_at_aws(&running.emulator.calls()), calm, "{function}: the replay changed nothing");
}

/// A function whose run panics once a condition holds: checked each time the run resumes (after each call's answer),
/// so the panic lands between two calls of the real pipeline, as a bug in the handler would.
pub struct PanicsMidRun<F> {
    inner: F,
    tripwire: OnceLock<Box<dyn Fn() -> bool + Send + Sync>>,
}

impl<F> PanicsMidRun<F> {
    /// Makes the run panic at its first resumption where `when` holds.
    pub fn arm(&self, when: impl Fn() -> bool + Send + Sync + 'static) {
        let _ = self.tripwire.set(Box::new(when));
    }
}

impl<F: Function> Function for PanicsMidRun<F> {
    const NAME: &'static str = F::NAME;
    type Request = F::Request;
    type Settings = F::Settings;
    type Error = F::Error;
    type Verb = F::Verb;

    fn settings(lookup: &Lookup<'_>) -> Result<F::Settings, ConfigError> {
        F::settings(lookup)
    }

    fn new(sdk_config: &aws_types::SdkConfig, shared: &shared::config::Settings, settings: F::Settings) -> Self {
        PanicsMidRun { inner: F::new(sdk_config, shared, settings), tripwire: OnceLock::new() }
    }

    fn counters(report: &Report, metrics: &mut Metrics) {
        F::counters(report, metrics)
    }

    fn run(
        &self,
        inputs: Vec<Input<F::Request>>,
        ctx: &Context,
        report: &mut Report,
    ) -> impl Future<Output = Result<(), F::Error>> + Send {
        let tripwire = &self.tripwire;
        let inner = self.inner.run(inputs, ctx, report);
        async move {
            let mut inner = pin!(inner);
            std::future::poll_fn(move |cx| {
                if tripwire.get().is_some_and(|tripped| tripped()) {
                    panic!("injected: the handler panics in the middle of its run");
                }
                inner.as_mut().poll(cx)
            })
            .await
        }
    }
}

/// The function's handler panics in the middle of a run (in process, the memory guard); Lambda's retry of the
/// `Retryable.Panic` answer completes the run.
pub async fn panic_mid_run<F: Function>(case: Case) {
    let function = case.function;
    let settings = case.settings();
    // GIVEN what one calm run does
    let calm = {
        let running = start(case.seed.clone()).await;
        let report = host::<F>(&running, 3, &settings).await.handle(case.event.clone(), None).await;
        let report = report.unwrap_or_else(|e| panic!("{function}: the calm run: {e:?}"));
        assert!(report.error.is_none(), "{function}: {report:?}");
        effects_at_aws(&running.emulator.calls())
    };
    case.check_calm(&calm);
    // WHEN the handler panics once the run is in the middle
    let running = start(case.held_seed()).await;
    let armed = host::<PanicsMidRun<F>>(&running, 3, &settings).await;
    let emulator = running.emulator.clone();
    let ends_after = case.ends_after;
    armed.function().arm(move || ends_after(&emulator.calls()));
    let (answer, metrics) = armed.answer(case.event.clone(), None).await;
    // THEN the answer is a retryable panic, counted, and the run did part of the calm run's work at most
    let error = answer.expect_err("a panicking run cannot answer with a report");
    assert_eq!(error.error_type, "Retryable.Panic", "{function}: {error:?}");
    assert!(error.error_message.contains("injected"), "{function}: {}", error.error_message);
    assert!(metrics.get("failed") >= 1, "{function}: {metrics:?}");
    let ended = effects_at_aws(&running.emulator.calls());
    case.check_ended(&calm, &ended);
    // AND the panic released the event: the same host runs it again (and, still armed, panics at once, before any
    // call) instead of refusing it as in progress
    let mutations = || running.emulator.calls().iter().filter(|c| mutating(&c.operation)).count();
    let before = mutations();
    let again = armed.answer(case.event.clone(), None).await.0.expect_err("still armed");
    assert_eq!(again.error_type, "Retryable.Panic", "{function}: the guard was not released: {again:?}");
    assert_eq!(mutations(), before, "{function}: a run that panics at once made a mutating call");
    // WHEN Lambda's retry lands in an environment without the bug
    let retry = host::<F>(&running, 3, &settings).await;
    let report = retry.handle(case.event.clone(), None).await.unwrap_or_else(|e| panic!("{function}: {e:?}"));
    // THEN it completes, and with the panicked run did exactly the calm run's work
    assert!(report.error.is_none() && !report.replayed, "{function}: {report:?}");
    assert_eq!(effects_at_aws(&running.emulator.calls()), calm, "{function}: panicked run + retry");
}
