//! update-distribution-regions: adds, removes or sets the regions of Image Builder distribution configurations
//! without losing a field, by hand, by SNS, from a desired-state document in S3, or on a schedule (drift repair).
//!
//! inputs → [`config::Change`]s (all validated) → observe ([`aws::get`]) and [`plan::plan`] every one → apply
//! ([`aws::update`], unless a dry run). A configuration that cannot be planned on its current state is one failed line.

pub mod aws;
pub mod config;
pub mod error;
pub mod plan;

use std::time::Duration;

use aws_sdk_imagebuilder::types::Distribution as SdkDistribution;
use aws_types::SdkConfig;
use shared::clients::PerRegion;
use shared::error::InvalidInput;
use shared::host::{Context, Function, Permit, Withheld};
use shared::idempotency::client_token;
use shared::report::Verb as _;
use shared::report::{Action, Outcome, Report};
use shared::trigger::Input;

pub use crate::error::Error;

use crate::config::{Change, Request, Settings};
use crate::plan::{Plan, Verb};

const NAME: &str = "update-distribution-regions";

pub struct UpdateDistributionRegions {
    settings: Settings,
    /// A configuration lives in the region of its ARN.
    imagebuilder: PerRegion<aws_sdk_imagebuilder::Client>,
    s3: aws_sdk_s3::Client,
}

impl Function for UpdateDistributionRegions {
    type Verb = Verb;
    const NAME: &'static str = NAME;
    type Request = Request;
    type Settings = Settings;
    type Error = Error;

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

    /// Validate every change, observe and plan every one, then apply each under its configuration's lease. A
    /// request that is wrong in itself (a typo, a region listed twice) refuses the whole invocation before any
    /// write; a configuration that cannot be read, planned on what it is now (a plan that would empty it, a
    /// template region it no longer has) or written is one failed line, and the others still go ahead.
    async fn run(&self, inputs: Vec<Input<Request>>, ctx: &Context, report: &mut Report) -> Result<(), Error> {
        let mut changes = Vec::new();
        for (request, source) in self.requests(inputs, report).await? {
            let change = Change::new(request)?;
            self.settings.admits(&change)?;
            changes.push((change, source));
        }
        for (i, (change, _)) in changes.iter().enumerate() {
            if changes[..i].iter().any(|(c, _)| c.arn == change.arn) {
                return Err(InvalidInput::new(
                    "distributionConfigurationArn",
                    format!("`{}` is listed twice in one invocation (a document or an SNS batch): one change per configuration", change.arn),
                )
                .into());
            }
        }
        let mut planned = Vec::new();
        for (change, source) in &changes {
            let client = self.imagebuilder.get(&change.arn_region);
            // What the configuration is now decides whether a change can be planned (a template region someone
            // removed, a change that would leave no region): that is this configuration's failed line, and the
            // others are still repaired. Only what the request alone shows refuses the invocation (above).
            match aws::get(&client, &change.arn).await {
                Ok(read) => match plan::plan(change, &read.distributions) {
                    Ok(plan) => planned.push(Planned { change, source: source.as_ref(), client, read, plan }),
                    Err(e) => report.push(Action::failed(&change.arn, Verb::Plan.as_str(), &Error::from(e))),
                },
                Err(e) => report.push(Action::failed(&change.arn, Verb::Read.as_str(), &e)),
            }
        }
        for planned in planned {
            let change = planned.change;
            if !planned.plan.changes() {
                report_plan(report, change, &planned.plan, None);
                continue;
            }
            match ctx.may_mutate() {
                Err(Withheld::DryRun) => report_plan(report, change, &planned.plan, Some(Outcome::Planned)),
                Err(Withheld::OutOfTime(e)) => report.push(Action::failed(&change.arn, Verb::Update.as_str(), &e)),
                // Under the configuration's lease, so no other keeper invocation writes it meanwhile.
                Ok(permit) => match ctx
                    .under_lease(&change.arn, LEASE_MARGIN, async || self.apply(planned, ctx, &permit).await)
                    .await
                {
                    Ok(Applied::Updated(plan)) => report_plan(report, change, &plan, Some(Outcome::Applied)),
                    Ok(Applied::AlreadyDone(plan)) => report_plan(report, change, &plan, None),
                    Ok(Applied::Superseded(why)) => {
                        report.push(Action::new(&change.arn, Verb::Update.as_str(), Outcome::Skipped, why))
                    }
                    Err(e) => report.push(Action::failed(&change.arn, Verb::Update.as_str(), &e)),
                },
            }
        }
        Ok(())
    }
}

/// A change planned on the configuration as read: what applying it starts from.
struct Planned<'a> {
    change: &'a Change,
    source: Option<&'a Source>,
    /// The client of the configuration's region.
    client: aws_sdk_imagebuilder::Client,
    read: aws::Current,
    plan: Plan<SdkDistribution>,
}

/// Where a change came from when a desired-state document carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Source {
    bucket: String,
    key: String,
    /// The version the event names, or the one the schedule read as current (pinned when it read it); `None` only
    /// in an unversioned bucket, where no newer upload can be told from this one.
    version: Option<String>,
}

impl Source {
    /// Why this document version no longer decides, when a newer one was uploaded since.
    async fn superseded(&self, s3: &aws_sdk_s3::Client) -> Result<Option<String>, Error> {
        let Some(version) = &self.version else { return Ok(None) };
        let current = aws::current_version(s3, &self.bucket, &self.key).await?;
        Ok((current.as_deref() != Some(version.as_str())).then(|| {
            format!(
                "s3://{}/{} version {version} is no longer the current version ({}): the newer document decides",
                self.bucket,
                self.key,
                current.as_deref().unwrap_or("none")
            )
        }))
    }
}

/// What applying one planned change came to.
enum Applied {
    Updated(Plan<SdkDistribution>),
    /// Another invocation made the same change first.
    AlreadyDone(Plan<SdkDistribution>),
    /// A newer version of the document was uploaded meanwhile: it decides, not this one.
    Superseded(String),
}

/// Time kept before the deadline when waiting for another invocation's lease.
const LEASE_MARGIN: Duration = Duration::from_secs(10);

impl UpdateDistributionRegions {
    /// The requests an invocation carries: its own, an SNS message's, or the entries of the desired-state document
    /// (only `DESIRED_STATE_S3_URI`'s object is one, and only its current version).
    async fn requests(
        &self,
        inputs: Vec<Input<Request>>,
        report: &mut Report,
    ) -> Result<Vec<(Request, Option<Source>)>, Error> {
        let mut out = Vec::new();
        for input in inputs {
            let source = match input {
                Input::Request(r) => {
                    out.push((r, None));
                    continue;
                }
                Input::Schedule(Some(r)) if r.distribution_configuration_arn.is_some() => {
                    out.push((r, None));
                    continue;
                }
                Input::Schedule(_) => {
                    let (bucket, key) = self.settings.desired_state.clone().ok_or_else(|| {
                        InvalidInput::new("DESIRED_STATE_S3_URI", "must be set for a schedule to reconcile from")
                    })?;
                    Source { bucket, key, version: None }
                }
                Input::Object(o) => {
                    let uri = format!("s3://{}/{}", o.bucket, o.key);
                    match &self.settings.desired_state {
                        Some((bucket, key)) if *bucket == o.bucket && *key == o.key => {}
                        Some((bucket, key)) => {
                            return Err(InvalidInput::new(
                                "object key",
                                format!("`{uri}` is not the desired-state document (DESIRED_STATE_S3_URI = s3://{bucket}/{key})"),
                            )
                            .into());
                        }
                        None => {
                            return Err(InvalidInput::new(
                                "object key",
                                format!(
                                    "`{uri}` is refused: DESIRED_STATE_S3_URI is not set, so no upload is desired state"
                                ),
                            )
                            .into());
                        }
                    }
                    Source { bucket: o.bucket, key: o.key, version: o.version_id }
                }
                other @ (Input::Notification(_) | Input::Rotation(_)) => {
                    return Err(InvalidInput::not_a_trigger(other.kind(), NAME).into());
                }
            };
            // A retried event of an older version must not undo a newer document: it is skipped whole.
            if let Some(why) = source.superseded(&self.s3).await? {
                report.push(Action::new(
                    format!("s3://{}/{}", source.bucket, source.key),
                    Verb::Reconcile.as_str(),
                    Outcome::Skipped,
                    why,
                ));
                continue;
            }
            let (document, read) =
                aws::read_document(&self.s3, &source.bucket, &source.key, source.version.as_deref()).await?;
            // The schedule read "the current document": the version it read is pinned, so that a newer upload
            // (whose own event applies it) wins over this repair under the lease, as it does over an older event.
            let source = Source { version: read, ..source };
            out.extend(
                document.distribution_configurations.into_iter().map(|d| (Request::from(d), Some(source.clone()))),
            );
        }
        Ok(out)
    }

    /// Image Builder has no ETag, so the write is guarded three ways: the document is still current, the
    /// configuration is re-read just before the update (and re-planned if it moved since it was planned), and it
    /// is read back after the update to confirm the regions written.
    async fn apply(&self, planned: Planned<'_>, ctx: &Context, permit: &Permit) -> Result<Applied, Error> {
        let Planned { change, source, client, read, plan } = planned;
        let client = &client;
        if let Some(source) = source
            && let Some(why) = source.superseded(&self.s3).await?
        {
            return Ok(Applied::Superseded(why));
        }
        let now = aws::get(client, &change.arn).await?;
        // What the configuration is just before the update: compared with the read the plan was made on, and named by
        // the token.
        let base = aws::fingerprint(&now.distributions);
        let plan = if base == aws::fingerprint(&read.distributions) {
            plan
        } else {
            tracing::info!(arn = %change.arn, "changed since it was planned; re-planned on the current configuration");
            plan::plan(change, &now.distributions)?
        };
        if !plan.changes() {
            return Ok(Applied::AlreadyDone(plan));
        }
        // The token names the state the plan was made on as well as the result: a retry of this delivery that comes
        // after someone else changed the configuration (a hand request, the console) re-plans on their change, and the
        // same result on another base is another update, which Image Builder must not answer from the first one. The
        // base names its last update as well: the same regions written back since (a drift repair undoing this
        // delivery's first, answer-lost attempt) are another base.
        let updated = now.date_updated.as_deref().unwrap_or_default();
        let result = aws::fingerprint(&plan.distributions);
        let token = client_token(NAME, &[&ctx.token_seed, &change.arn, &base, updated, &result]);
        aws::update(client, &change.arn, now.description.as_deref(), plan.distributions.clone(), &token, permit)
            .await?;
        let after = aws::get(client, &change.arn).await?;
        let (written, found) = (aws::regions(&plan.distributions), aws::regions(&after.distributions));
        if written != found {
            return Err(Error::Moved { arn: change.arn.clone(), written, found });
        }
        Ok(Applied::Updated(plan))
    }
}

fn report_plan(report: &mut Report, change: &Change, plan: &Plan<SdkDistribution>, outcome: Option<Outcome>) {
    let target = |region: &str| format!("{}#{region}", change.arn);
    let Some(outcome) = outcome else {
        report.push(Action::new(change.arn.clone(), Verb::Update.as_str(), Outcome::Skipped, "already as desired"));
        for (region, why) in &plan.already {
            report.push(Action::new(
                target(region),
                Verb::Update.as_str(),
                Outcome::Skipped,
                format!("{why} {region}"),
            ));
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
        report.push(Action::new(target(&added.region), Verb::AddRegion.as_str(), outcome, detail));
    }
    for region in &plan.removed {
        report.push(Action::new(target(region), Verb::RemoveRegion.as_str(), outcome, ""));
    }
    for (region, why) in &plan.already {
        report.push(Action::new(target(region), Verb::Update.as_str(), Outcome::Skipped, format!("{why} {region}")));
    }
}
