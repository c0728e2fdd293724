//! start-idle-image-builders: starts the STOPPED AppStream image builders a selector picks (or stops RUNNING ones),
//! in one or more regions, never twice for one event, and reports what it did to each.
//!
//! payload → trigger → [`config::Job`] (validated) → observe ([`aws`]) → [`plan::plan`] → apply → report.

pub mod aws;
pub mod config;
pub mod plan;

use std::time::{Duration, SystemTime};

use aws_sdk_appstream::Client;
use aws_types::SdkConfig;
use lambda_runtime::Diagnostic;
use serde_json::Value;
use shared::aws_error::AwsFailure;
use shared::clients::PerRegion;
use shared::config::{ConfigError, Lookup};
use shared::idempotency::IdempotencyStore;
use shared::invocation::{Context, Runtime};
use shared::report::{Action as ReportAction, Classify, ErrorType, Outcome, Report};
use shared::retry::full_jitter_delay;
use shared::telemetry::Metrics;
use shared::trigger::{SnsMessage, Trigger};
use tokio::sync::Semaphore;

use crate::config::{Config, Job, Request, Selector};
use crate::plan::{Observed, Planned, Step};

pub const FUNCTION: &str = "start-idle-image-builders";

/// Time kept free before the Lambda deadline when waiting for a STOPPING builder.
const DEADLINE_MARGIN: Duration = Duration::from_secs(3);
/// The longest wait for STOPPED when no deadline is known (a run by hand).
const MAX_WAIT_WITHOUT_DEADLINE: Duration = Duration::from_secs(14 * 60);

pub use shared::error::Error;

/// What the function keeps across invocations.
pub struct Deps {
    pub runtime: Runtime,
    pub config: Config,
    /// One AppStream client per region.
    pub clients: PerRegion<Client>,
}

fn clients(sdk_config: &SdkConfig, settings: &shared::config::Settings) -> PerRegion<Client> {
    let settings = settings.clone();
    PerRegion::new(sdk_config, move |config| shared::service_client!(aws_sdk_appstream, config, &settings))
}

impl Deps {
    /// The deployed function: settings from `lookup`, the idempotency store they name.
    pub fn from_lookup(sdk_config: &SdkConfig, lookup: &Lookup<'_>) -> Result<Deps, ConfigError> {
        let config = Config::from_lookup(lookup)?;
        let runtime = Runtime::from_settings(FUNCTION, config.shared.clone(), sdk_config).with_counters(counters);
        Ok(Deps { clients: clients(sdk_config, &config.shared), runtime, config })
    }

    /// Local runs and tests: a given store (memory or a test's DynamoDB).
    pub fn with_store(sdk_config: &SdkConfig, config: Config, store: std::sync::Arc<dyn IdempotencyStore>) -> Deps {
        let runtime = Runtime::new(FUNCTION, config.shared.clone(), store).with_counters(counters);
        Deps { clients: clients(sdk_config, &config.shared), runtime, config }
    }

    /// One invocation, as Lambda calls it.
    pub async fn run(&self, payload: Value, deadline: Option<SystemTime>) -> Result<Report, Diagnostic> {
        self.runtime.handle(payload, deadline, |trigger, ctx| handle(trigger, ctx, self)).await
    }
}

/// The EMF counters of a run: started, stopped, skipped, failed.
fn counters(report: &Report, metrics: &mut Metrics) {
    let started = report.count_of("start", Outcome::Applied) + report.count_of("wait-and-start", Outcome::Applied);
    metrics.add("started", started as u64);
    metrics.add("stopped", report.count_of("stop", Outcome::Applied) as u64);
}

/// The pipeline of one invocation: every request is validated before the first AWS call.
pub async fn handle(trigger: Trigger<Request>, ctx: Context, deps: &Deps) -> Result<Report, Error> {
    let requests = match trigger {
        Trigger::Schedule(schedule) => vec![schedule.request.unwrap_or_default()],
        Trigger::Manual(manual) => vec![manual.request],
        Trigger::Sns(records) => records
            .into_iter()
            .map(|r| match r.message {
                SnsMessage::Request(request) => Ok(request),
                SnsMessage::Notification(_) => {
                    Err(Error::InvalidInput { field: "Message".into(), rule: "is not a request".into() })
                }
            })
            .collect::<Result<_, _>>()?,
        Trigger::S3(_) | Trigger::Event(_) => {
            return Err(Error::InvalidInput {
                field: "event".into(),
                rule: format!(
                    "from {} does not start image builders; send a request by hand, by SNS or on a schedule",
                    trigger.kind()
                ),
            });
        }
    };
    let default_region = deps.clients.default_region();
    let jobs: Vec<Job> =
        requests.into_iter().map(|r| Job::new(r, &deps.config, default_region.as_deref())).collect::<Result<_, _>>()?;
    let mut report = Report::new(FUNCTION, ctx.event_id.clone(), jobs.iter().any(|j| j.dry_run));
    for job in &jobs {
        let observed = observe(job, deps).await?;
        let planned = plan::plan(job, &observed);
        tracing::info!(action = ?job.action, selected = planned.len(), dry_run = job.dry_run, "planned");
        if job.dry_run {
            report.actions.extend(planned.iter().map(|p| as_planned(job, p)));
            continue;
        }
        report.actions.extend(apply(job, &planned, &ctx, deps).await);
    }
    if let Some(incomplete) = report.incomplete() {
        // The per-builder outcomes go to the log before Lambda sees the error and retries.
        tracing::warn!(report = %serde_json::to_string(&report).unwrap_or_default(), "incomplete run");
        return Err(incomplete.into());
    }
    Ok(report)
}

/// Reads every region at once: the builders, then the tags the plan needs (bounded).
async fn observe(job: &Job, deps: &Deps) -> Result<Observed, Error> {
    let per_region =
        futures_util::future::try_join_all(job.regions.iter().map(|region| observe_region(job, deps, region))).await?;
    let mut observed = Observed::default();
    for region in per_region {
        observed.builders.extend(region.builders);
        observed.missing.extend(region.missing);
    }
    Ok(observed)
}

async fn observe_region(job: &Job, deps: &Deps, region: &str) -> Result<Observed, Error> {
    let client = deps.clients.get(region);
    let (mut builders, missing) = match &job.selector {
        Selector::Names(names) => aws::describe_named(&client, region, names).await?,
        Selector::Matching { .. } => (aws::describe_all(&client, region).await?, Vec::new()),
    };
    let limit = Semaphore::new(deps.config.max_concurrency);
    let reads = builders.iter().enumerate().filter(|(_, b)| plan::needs_tags(job, b)).map(|(i, b)| {
        let (client, limit) = (&client, &limit);
        async move {
            let _permit = limit
                .acquire()
                .await
                .map_err(|_| Error::InvalidInput { field: "concurrency".into(), rule: "closed".into() })?;
            aws::tags(client, region, &b.arn).await.map(|tags| (i, tags))
        }
    });
    for (i, tags) in futures_util::future::try_join_all(reads).await? {
        builders[i].tags = Some(tags);
    }
    Ok(Observed { builders, missing: missing.into_iter().map(|name| (region.to_string(), name)).collect() })
}

fn as_planned(job: &Job, p: &Planned) -> ReportAction {
    match &p.step {
        Step::Skip(why) => {
            ReportAction::new(p.target(), p.verb(job.action), Outcome::Skipped, format!("{}: {why}", p.state_before))
        }
        _ => ReportAction::new(
            p.target(),
            p.verb(job.action),
            Outcome::Planned,
            format!("{}: would {}", p.state_before, p.verb(job.action)),
        ),
    }
}

/// Applies the plan with at most `MAX_CONCURRENCY` calls in flight; every builder gets its own outcome.
async fn apply(job: &Job, planned: &[Planned], ctx: &Context, deps: &Deps) -> Vec<ReportAction> {
    let limit = Semaphore::new(deps.config.max_concurrency);
    let work = planned.iter().map(|p| {
        let limit = &limit;
        async move {
            if let Step::Skip(why) = &p.step {
                return ReportAction::new(
                    p.target(),
                    p.verb(job.action),
                    Outcome::Skipped,
                    format!("{}: {why}", p.state_before),
                );
            }
            let client = deps.clients.get(&p.region);
            if p.step == Step::WaitThenStart {
                match wait_until_stopped(&client, p, ctx, deps.config.poll_interval).await {
                    Ok(None) => {}
                    Ok(Some(skip)) => return skip,
                    Err(e) => return failed(job, p, &e),
                }
            }
            let Ok(_permit) = limit.acquire().await else {
                return failed(job, p, &Error::InvalidInput { field: "concurrency".into(), rule: "closed".into() });
            };
            let result = match p.step {
                Step::Stop => aws::stop(&client, &p.region, &p.name).await,
                _ => aws::start(&client, &p.region, &p.name, job.appstream_agent_version.as_deref()).await,
            };
            match result {
                Ok(state) => {
                    let agent = job
                        .appstream_agent_version
                        .as_deref()
                        .filter(|_| p.step != Step::Stop)
                        .map(|v| format!(" (agent {v})"))
                        .unwrap_or_default();
                    ReportAction::new(
                        p.target(),
                        p.verb(job.action),
                        Outcome::Applied,
                        format!("{} → {state}{agent}", p.state_before),
                    )
                }
                Err(e) if aws::is_gone(&e) => {
                    ReportAction::new(p.target(), p.verb(job.action), Outcome::Skipped, "deleted meanwhile")
                }
                Err(e) => failed(job, p, &e),
            }
        }
    });
    futures_util::future::join_all(work).await
}

fn failed(job: &Job, p: &Planned, error: &Error) -> ReportAction {
    tracing::warn!(target = %p.target(), error = %error, error_type = %error.error_type(), "builder failed");
    ReportAction::failed(p.target(), p.verb(job.action), error)
}

/// Polls a STOPPING builder until it is STOPPED, with growing jittered delays, within the deadline. `Ok(None)`:
/// stopped, go on; `Ok(Some(action))`: it went elsewhere, here is its outcome.
async fn wait_until_stopped(
    client: &Client,
    p: &Planned,
    ctx: &Context,
    poll: Duration,
) -> Result<Option<ReportAction>, Error> {
    let started = std::time::Instant::now();
    let budget = ctx.remaining().map(|r| r.saturating_sub(DEADLINE_MARGIN)).unwrap_or(MAX_WAIT_WITHOUT_DEADLINE);
    let mut attempt = 0u32;
    loop {
        let delay = full_jitter_delay(attempt, poll, poll * 8, fastrand::f64()).max(poll / 4);
        if started.elapsed() + delay >= budget {
            return Err(Error::Aws {
                target: p.target(),
                failure: AwsFailure {
                    operation: "DescribeImageBuilders",
                    code: None,
                    message: format!(
                        "still STOPPING after {} s; the retry starts it once it has stopped",
                        started.elapsed().as_secs()
                    ),
                    error_type: ErrorType::TIMEOUT,
                },
            });
        }
        tokio::time::sleep(delay).await;
        match aws::state_of(client, &p.region, &p.name).await? {
            Some(state) if state == "STOPPED" => return Ok(None),
            Some(state) if state == "STOPPING" => attempt += 1,
            Some(state) => {
                return Ok(Some(ReportAction::new(
                    p.target(),
                    "wait-and-start",
                    Outcome::Skipped,
                    format!("STOPPING → {state} while waiting; left alone"),
                )));
            }
            None => {
                return Ok(Some(ReportAction::new(
                    p.target(),
                    "wait-and-start",
                    Outcome::Skipped,
                    "deleted meanwhile",
                )));
            }
        }
    }
}
