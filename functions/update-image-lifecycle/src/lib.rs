//! update-image-lifecycle: starts Image Builder resource-state updates, explicitly (one build, every field of
//! StartResourceStateUpdate) or by policy (an image's builds when Image Builder announces a finished build, or every
//! image on a schedule).
//!
//! payload → trigger → explicit update or policy run → observe ([`aws::builds`]) → [`plan::plan`] → apply → report.

pub mod aws;
pub mod config;
pub mod plan;

use std::time::{SystemTime, UNIX_EPOCH};

use aws_types::SdkConfig;
use lambda_runtime::Diagnostic;
use serde_json::Value;
use shared::clients::PerRegion;
use shared::config::{ConfigError, Lookup};
use shared::idempotency::{IdempotencyStore, client_token};
use shared::invocation::{Context, Runtime};
use shared::report::{Action, Classify, ErrorType, Outcome, Report};
use shared::telemetry::Metrics;
use shared::trigger::{SnsMessage, Trigger};
use tokio::sync::Semaphore;

pub use shared::error::Error;

use crate::config::{Config, Explicit, IncludeResources, Notification, Request};
use crate::plan::{Decision, Step, verb};

pub const FUNCTION: &str = "update-image-lifecycle";

pub struct Deps {
    pub runtime: Runtime,
    pub config: Config,
    pub clients: PerRegion<aws_sdk_imagebuilder::Client>,
}

fn clients(sdk_config: &SdkConfig, settings: &shared::config::Settings) -> PerRegion<aws_sdk_imagebuilder::Client> {
    let settings = settings.clone();
    PerRegion::new(sdk_config, move |config| shared::service_client!(aws_sdk_imagebuilder, config, &settings))
}

impl Deps {
    pub fn from_lookup(sdk_config: &SdkConfig, lookup: &Lookup<'_>) -> Result<Deps, ConfigError> {
        let config = Config::from_lookup(lookup)?;
        let runtime = Runtime::from_settings(FUNCTION, config.shared.clone(), sdk_config).with_counters(counters);
        Ok(Deps { clients: clients(sdk_config, &config.shared), runtime, config })
    }

    pub fn with_store(sdk_config: &SdkConfig, config: Config, store: std::sync::Arc<dyn IdempotencyStore>) -> Deps {
        let runtime = Runtime::new(FUNCTION, config.shared.clone(), store).with_counters(counters);
        Deps { clients: clients(sdk_config, &config.shared), runtime, config }
    }

    pub async fn run(&self, payload: Value, deadline: Option<SystemTime>) -> Result<Report, Diagnostic> {
        self.runtime.handle(payload, deadline, |trigger, ctx| handle(trigger, ctx, self)).await
    }
}

fn counters(report: &Report, metrics: &mut Metrics) {
    for (verb, metric) in
        [("deprecate", "deprecated"), ("disable", "disabled"), ("delete", "deleted"), ("restore", "restored")]
    {
        metrics.add(metric, report.count_of(verb, Outcome::Applied) as u64);
    }
}

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// What one invocation does.
enum Work {
    Explicit(Explicit),
    /// The policy over the builds of one image (`Some(name)`, with the build that triggered it) or of all images.
    Policy {
        region: String,
        image: Option<String>,
        trigger: Option<String>,
        dry_run: bool,
    },
}

fn work(trigger: Trigger<Request>, deps: &Deps) -> Result<Vec<Work>, Error> {
    let dry = deps.config.shared.dry_run;
    let own_region = deps.clients.default_region();
    let from_request = |r: Request| -> Result<Work, Error> {
        if r.resource_arn.is_some() {
            return Ok(Work::Explicit(Explicit::new(r, now_secs(), dry)?));
        }
        if r.state.is_some()
            || r.include_resources.is_some()
            || r.exclusion_rules.is_some()
            || r.execution_role.is_some()
            || r.update_at.is_some()
        {
            return Err(Error::invalid(
                "resourceArn",
                "is required for an explicit update (without it, the request runs the policy)",
            ));
        }
        let region =
            own_region.clone().ok_or_else(|| Error::invalid("AWS_REGION", "is needed for a sweep of the account"))?;
        Ok(Work::Policy { region, image: None, trigger: None, dry_run: dry || r.dry_run.unwrap_or(false) })
    };
    let from_notification = |n: Notification| -> Result<Work, Error> {
        let region = config::BUILD_ARN
            .captures(&n.arn)
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        Ok(Work::Policy { region, image: Some(n.image_name().to_string()), trigger: Some(n.arn), dry_run: dry })
    };
    match trigger {
        Trigger::Manual(m) => Ok(vec![from_request(m.request)?]),
        Trigger::Schedule(s) => Ok(vec![from_request(s.request.unwrap_or_default())?]),
        Trigger::Sns(records) => records
            .into_iter()
            .map(|r| match r.message {
                SnsMessage::Request(req) => from_request(req),
                SnsMessage::Notification(doc) => from_notification(
                    Notification::from_document(&doc)
                        .ok_or_else(|| Error::invalid("Message", "is not an Image Builder notification"))?,
                ),
            })
            .collect(),
        Trigger::Event(n) => Ok(vec![from_notification(
            Notification::from_document(&n.document)
                .ok_or_else(|| Error::invalid("event", "is not an Image Builder image state change"))?,
        )?]),
        Trigger::S3(_) => Err(Error::invalid("event", "S3 events are not a trigger of this function")),
    }
}

pub async fn handle(trigger: Trigger<Request>, ctx: Context, deps: &Deps) -> Result<Report, Error> {
    let works = work(trigger, deps)?;
    let dry_run = works.iter().any(|w| match w {
        Work::Explicit(e) => e.dry_run,
        Work::Policy { dry_run, .. } => *dry_run,
    });
    let mut report = Report::new(FUNCTION, ctx.event_id.clone(), dry_run);
    for w in works {
        match w {
            Work::Explicit(e) => report.push(explicit(&e, &ctx, deps).await),
            Work::Policy { region, image, trigger, dry_run } => {
                let client = deps.clients.get(&region);
                let builds = aws::builds(&client, &region, image.as_deref()).await?;
                let decisions: Vec<Decision> = builds
                    .values()
                    .flat_map(|b| plan::plan(&deps.config.policy, b, now_secs(), trigger.as_deref()))
                    .collect();
                tracing::info!(images = builds.len(), decisions = decisions.len(), "policy planned");
                report.actions.extend(apply(&client, &decisions, dry_run, &ctx, deps).await);
            }
        }
    }
    if let Some(incomplete) = report.incomplete() {
        tracing::warn!(report = %serde_json::to_string(&report).unwrap_or_default(), "incomplete run");
        return Err(incomplete.into());
    }
    Ok(report)
}

fn outcome_of(arn: &str, verb: &str, from: &str, result: Result<String, Error>) -> Action {
    match result {
        Ok(id) => Action::new(arn, verb, Outcome::Applied, format!("{from}; lifecycle execution {id}")),
        Err(e) if e.error_type() == ErrorType::NOT_FOUND => {
            Action::new(arn, verb, Outcome::Skipped, "no such image build version")
        }
        Err(e) => Action::failed(arn, verb, &e),
    }
}

async fn explicit(e: &Explicit, ctx: &Context, deps: &Deps) -> Action {
    let verb = verb(&e.status);
    if e.dry_run {
        return Action::new(&e.resource_arn, verb, Outcome::Planned, format!("would set {}", e.status));
    }
    let token = client_token(FUNCTION, &[&ctx.event_id, &e.resource_arn, &e.status]);
    let update = aws::Update {
        arn: &e.resource_arn,
        status: &e.status,
        update_at: e.update_at,
        include: e.include_resources.as_ref(),
        exclusions: e.exclusion_rules.as_ref(),
        execution_role: e.execution_role.as_deref(),
        token: &token,
    };
    let client = deps.clients.get(&e.region);
    outcome_of(&e.resource_arn, verb, &format!("→ {}", e.status), aws::start(&client, &update).await)
}

/// Starts the policy's updates, `MAX_CONCURRENCY` at a time; deletions take the AMIs (and snapshots when set).
async fn apply(
    client: &aws_sdk_imagebuilder::Client,
    decisions: &[Decision],
    dry_run: bool,
    ctx: &Context,
    deps: &Deps,
) -> Vec<Action> {
    let limit = Semaphore::new(deps.config.max_concurrency);
    let policy = &deps.config.policy;
    let work = decisions.iter().map(|d| {
        let limit = &limit;
        async move {
            let target = match &d.step {
                Step::Skip(why) => return Action::new(&d.arn, "keep", Outcome::Skipped, format!("{}: {why}", d.from)),
                Step::To(target) => *target,
            };
            let verb = verb(target);
            let change = format!("{} → {target}", d.from);
            if dry_run {
                return Action::new(&d.arn, verb, Outcome::Planned, change);
            }
            let Ok(_permit) = limit.acquire().await else {
                return Action::new(&d.arn, verb, Outcome::Skipped, "shutting down");
            };
            let token = client_token(FUNCTION, &[&ctx.event_id, &d.arn, target]);
            let deleting = target == "DELETED";
            let include =
                IncludeResources { amis: Some(true), snapshots: Some(policy.include_snapshots), containers: None };
            let update = aws::Update {
                arn: &d.arn,
                status: target,
                include: deleting.then_some(&include),
                execution_role: if deleting { policy.execution_role.as_deref() } else { None },
                token: &token,
                ..aws::Update::default()
            };
            outcome_of(&d.arn, verb, &change, aws::start(client, &update).await)
        }
    });
    futures_util::future::join_all(work).await
}
