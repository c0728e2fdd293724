//! update-distribution-regions: adds, removes or sets the regions of Image Builder distribution configurations
//! without losing a field, by hand, by SNS, from a desired-state document in S3, or on a schedule (drift repair).
//!
//! payload → trigger → [`config::Change`]s (all validated) → observe and plan every one → apply → report. A plan
//! that would empty a configuration stops the run before the first update.

pub mod aws;
pub mod config;
pub mod plan;

use std::time::SystemTime;

use aws_sdk_imagebuilder::types::Distribution as SdkDistribution;
use aws_types::SdkConfig;
use lambda_runtime::Diagnostic;
use serde_json::Value;
use shared::clients::PerRegion;
use shared::config::{ConfigError, Lookup};
use shared::idempotency::{IdempotencyStore, client_token};
use shared::invocation::{Context, Runtime};
use shared::report::{Action, Outcome, Report};
use shared::telemetry::Metrics;
use shared::trigger::{SnsMessage, Trigger};

use crate::config::{Change, Config, Request};
use crate::plan::Plan;

pub const FUNCTION: &str = "update-distribution-regions";

pub use shared::error::Error;

/// Image Builder clients per region (a configuration lives in the region of its ARN), and the S3 client.
pub struct Clients {
    pub imagebuilder: PerRegion<aws_sdk_imagebuilder::Client>,
    pub s3: aws_sdk_s3::Client,
}

impl Clients {
    pub fn new(sdk_config: &SdkConfig, settings: &shared::config::Settings) -> Clients {
        let s3_config = aws_sdk_s3::config::Builder::from(sdk_config)
            // Path-style requests work against any endpoint, the emulator's included; AWS accepts them for GetObject.
            .force_path_style(sdk_config.endpoint_url().is_some())
            .retry_classifier(shared::retry::KeeperRetryClassifier::new(settings))
            .build();
        let settings = settings.clone();
        Clients {
            imagebuilder: PerRegion::new(sdk_config, move |config| {
                shared::service_client!(aws_sdk_imagebuilder, config, &settings)
            }),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
        }
    }
}

pub struct Deps {
    pub runtime: Runtime,
    pub config: Config,
    pub clients: Clients,
}

impl Deps {
    pub fn from_lookup(sdk_config: &SdkConfig, lookup: &Lookup<'_>) -> Result<Deps, ConfigError> {
        let config = Config::from_lookup(lookup)?;
        let runtime = Runtime::from_settings(FUNCTION, config.shared.clone(), sdk_config).with_counters(counters);
        Ok(Deps { clients: Clients::new(sdk_config, &config.shared), runtime, config })
    }

    pub fn with_store(sdk_config: &SdkConfig, config: Config, store: std::sync::Arc<dyn IdempotencyStore>) -> Deps {
        let runtime = Runtime::new(FUNCTION, config.shared.clone(), store).with_counters(counters);
        Deps { clients: Clients::new(sdk_config, &config.shared), runtime, config }
    }

    pub async fn run(&self, payload: Value, deadline: Option<SystemTime>) -> Result<Report, Diagnostic> {
        self.runtime.handle(payload, deadline, |trigger, ctx| handle(trigger, ctx, self)).await
    }
}

fn counters(report: &Report, metrics: &mut Metrics) {
    metrics.add("regionsAdded", report.count_of("add-region", Outcome::Applied) as u64);
    metrics.add("regionsRemoved", report.count_of("remove-region", Outcome::Applied) as u64);
}

/// The requests an invocation carries: its own, an SNS message's, or a desired-state document's entries.
async fn requests(trigger: Trigger<Request>, deps: &Deps) -> Result<Vec<Request>, Error> {
    let from_document =
        |doc: config::DesiredState| doc.distribution_configurations.into_iter().map(Request::from).collect::<Vec<_>>();
    match trigger {
        Trigger::Manual(m) => Ok(vec![m.request]),
        Trigger::Sns(records) => records
            .into_iter()
            .map(|r| match r.message {
                SnsMessage::Request(request) => Ok(request),
                SnsMessage::Notification(_) => {
                    Err(Error::InvalidInput { field: "Message".into(), rule: "is not a request".into() })
                }
            })
            .collect(),
        Trigger::Schedule(s) => match s.request {
            Some(r) if r.distribution_configuration_arn.is_some() => Ok(vec![r]),
            _ => {
                let (bucket, key) = deps.config.desired_state.clone().ok_or_else(|| Error::InvalidInput {
                    field: "DESIRED_STATE_S3_URI".into(),
                    rule: "must be set for a schedule to reconcile from".into(),
                })?;
                Ok(from_document(aws::read_document(&deps.clients.s3, &bucket, &key, None).await?))
            }
        },
        Trigger::S3(objects) => {
            let mut out = Vec::new();
            for o in objects {
                out.extend(from_document(
                    aws::read_document(&deps.clients.s3, &o.bucket, &o.key, o.version_id.as_deref()).await?,
                ));
            }
            Ok(out)
        }
        Trigger::Event(n) => Err(Error::InvalidInput {
            field: "event".into(),
            rule: format!("`{}` events are not a trigger of this function", n.detail_type),
        }),
    }
}

/// The pipeline: validate every change, observe and plan every one, then apply.
pub async fn handle(trigger: Trigger<Request>, ctx: Context, deps: &Deps) -> Result<Report, Error> {
    let changes: Vec<Change> =
        requests(trigger, deps).await?.into_iter().map(|r| Change::new(r, &deps.config)).collect::<Result<_, _>>()?;
    let mut report = Report::new(FUNCTION, ctx.event_id.clone(), changes.iter().any(|c| c.dry_run));
    let mut planned = Vec::new();
    for change in &changes {
        let client = deps.clients.imagebuilder.get(&change.arn_region);
        let current = aws::get(&client, &change.arn).await?;
        let plan = plan::plan(change, &current.distributions)?;
        planned.push((change, client, current, plan));
    }
    for (change, client, current, plan) in planned {
        let outcome = if !plan.changes() {
            None
        } else if change.dry_run {
            Some(Outcome::Planned)
        } else {
            let token = client_token(FUNCTION, &[&ctx.event_id, &change.arn, &aws::fingerprint(&plan.distributions)]);
            match aws::update(&client, &change.arn, current.description.as_deref(), plan.distributions.clone(), &token)
                .await
            {
                Ok(()) => Some(Outcome::Applied),
                Err(e) => {
                    tracing::warn!(arn = %change.arn, error = %e, "update failed");
                    report.push(Action::failed(change.arn.clone(), "update", &e));
                    continue;
                }
            }
        };
        report_plan(&mut report, change, &plan, outcome);
    }
    if let Some(incomplete) = report.incomplete() {
        tracing::warn!(report = %serde_json::to_string(&report).unwrap_or_default(), "incomplete run");
        return Err(incomplete.into());
    }
    Ok(report)
}

fn report_plan(report: &mut Report, change: &Change, plan: &Plan<SdkDistribution>, outcome: Option<Outcome>) {
    let target = |region: &str| format!("{}#{region}", change.arn);
    let Some(outcome) = outcome else {
        report.push(Action::new(change.arn.clone(), "update", Outcome::Skipped, "already as desired"));
        for (region, why) in &plan.already {
            report.push(Action::new(target(region), "update", Outcome::Skipped, format!("{why} {region}")));
        }
        return;
    };
    for added in &plan.added {
        let mut detail = format!("copied from {}", added.template);
        if !added.overridden.is_empty() {
            detail.push_str(&format!("; from regionOverrides.{}: {}", added.region, added.overridden.join(", ")));
        }
        if !added.dropped.is_empty() {
            detail.push_str(&format!(
                "; dropped {} (region-bound; give regionOverrides.{} to set them)",
                added.dropped.join(", "),
                added.region
            ));
        }
        report.push(Action::new(target(&added.region), "add-region", outcome, detail));
    }
    for region in &plan.removed {
        report.push(Action::new(target(region), "remove-region", outcome, ""));
    }
    for (region, why) in &plan.already {
        report.push(Action::new(target(region), "update", Outcome::Skipped, format!("{why} {region}")));
    }
}
