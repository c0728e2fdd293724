//! update-distribution-regions: adds, removes or sets the regions of Image Builder distribution configurations
//! without losing a field, by hand, by SNS, from a desired-state document in S3, or on a schedule (drift repair).
//!
//! inputs → [`config::Change`]s (all validated) → observe ([`aws::get`]) and [`plan::plan`] every one → apply
//! ([`aws::update`], unless a dry run). A plan that would empty a configuration stops the run before the first update.

pub mod aws;
pub mod config;
pub mod error;
pub mod plan;

use aws_sdk_imagebuilder::types::Distribution as SdkDistribution;
use aws_types::SdkConfig;
use shared::clients::PerRegion;
use shared::config::{ConfigError, Lookup};
use shared::error::InvalidInput;
use shared::host::{Context, Function};
use shared::idempotency::client_token;
use shared::report::{Action, Outcome, Report};
use shared::telemetry::Metrics;
use shared::trigger::{Input, Trigger};

pub use crate::error::Error;

use crate::config::{Change, Request, Settings};
use crate::plan::Plan;

const NAME: &str = "update-distribution-regions";

pub struct UpdateDistributionRegions {
    settings: Settings,
    /// A configuration lives in the region of its ARN.
    imagebuilder: PerRegion<aws_sdk_imagebuilder::Client>,
    s3: aws_sdk_s3::Client,
}

impl Function for UpdateDistributionRegions {
    const NAME: &'static str = NAME;
    type Request = Request;
    type Settings = Settings;
    type Error = Error;

    fn settings(lookup: &Lookup<'_>) -> Result<Settings, ConfigError> {
        Settings::from_lookup(lookup)
    }

    fn new(sdk_config: &SdkConfig, shared: &shared::config::Settings, settings: Settings) -> Self {
        let retries = shared.clone();
        UpdateDistributionRegions {
            settings,
            imagebuilder: PerRegion::new(sdk_config, move |c| {
                shared::service_client!(aws_sdk_imagebuilder, c, &retries)
            }),
            s3: shared::s3::client(sdk_config, shared),
        }
    }

    fn counters(report: &Report, metrics: &mut Metrics) {
        metrics.add("regionsAdded", report.count_of("add-region", Outcome::Applied) as u64);
        metrics.add("regionsRemoved", report.count_of("remove-region", Outcome::Applied) as u64);
    }

    /// Validate every change, observe and plan every one, then apply.
    async fn run(&self, trigger: Trigger<Request>, ctx: &Context, report: &mut Report) -> Result<(), Error> {
        let changes: Vec<Change> =
            self.requests(trigger).await?.into_iter().map(Change::new).collect::<Result<_, _>>()?;
        let mut planned = Vec::new();
        for change in &changes {
            let client = self.imagebuilder.get(&change.arn_region);
            let current = aws::get(&client, &change.arn).await?;
            let plan = plan::plan(change, &current.distributions)?;
            planned.push((change, client, current, plan));
        }
        for (change, client, current, plan) in planned {
            let outcome = if !plan.changes() {
                None
            } else if ctx.dry_run {
                Some(Outcome::Planned)
            } else {
                let token = client_token(NAME, &[&ctx.event_id, &change.arn, &aws::fingerprint(&plan.distributions)]);
                let description = current.description.as_deref();
                match aws::update(&client, &change.arn, description, plan.distributions.clone(), &token).await {
                    Ok(()) => Some(Outcome::Applied),
                    Err(e) => {
                        tracing::warn!(arn = %change.arn, error = %e, "update failed");
                        report.push(Action::failed(change.arn.clone(), "update", &e));
                        continue;
                    }
                }
            };
            report_plan(report, change, &plan, outcome);
        }
        Ok(())
    }
}

impl UpdateDistributionRegions {
    /// The requests an invocation carries: its own, an SNS message's, or a desired-state document's entries.
    async fn requests(&self, trigger: Trigger<Request>) -> Result<Vec<Request>, Error> {
        let mut out = Vec::new();
        for input in trigger.into_inputs() {
            let document = match input {
                Input::Request(r) => {
                    out.push(r);
                    continue;
                }
                Input::Schedule(Some(r)) if r.distribution_configuration_arn.is_some() => {
                    out.push(r);
                    continue;
                }
                Input::Schedule(_) => {
                    let (bucket, key) = self.settings.desired_state.as_ref().ok_or_else(|| {
                        InvalidInput::new("DESIRED_STATE_S3_URI", "must be set for a schedule to reconcile from")
                    })?;
                    aws::read_document(&self.s3, bucket, key, None).await?
                }
                Input::Object(o) => aws::read_document(&self.s3, &o.bucket, &o.key, o.version_id.as_deref()).await?,
                other @ Input::Notification(_) => return Err(InvalidInput::not_a_trigger(other.kind(), NAME).into()),
            };
            out.extend(document.distribution_configurations.into_iter().map(Request::from));
        }
        Ok(out)
    }
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
