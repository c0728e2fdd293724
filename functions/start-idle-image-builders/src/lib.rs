//! start-idle-image-builders: starts the STOPPED AppStream image builders a selector picks (or stops RUNNING ones),
//! in one or more regions, never twice for one event, and reports what it did to each.
//!
//! inputs → [`config::Job`]s (validated) → [`aws::observe`] → [`plan::plan`] → [`aws::apply`] (unless a dry run).

pub mod aws;
pub mod config;
pub mod error;
pub mod plan;

use std::collections::BTreeSet;

use aws_sdk_appstream::Client;
use aws_types::SdkConfig;
use shared::clients::PerRegion;
use shared::error::InvalidInput;
use shared::host::{Context, Function};
use shared::report::Verb as _;
use shared::report::{Action as ReportAction, Report};
use shared::trigger::Input;

pub use crate::error::Error;

use crate::config::{InForce, Job, Reconcile, Request, SchedulesSource, Settings};
use crate::plan::{Observed, Planned, Scheduled, Verb};

pub struct StartIdleImageBuilders {
    settings: Settings,
    /// One AppStream client per region.
    clients: PerRegion<Client>,
    /// For a schedules document kept in S3 (`SCHEDULES_S3_URI`).
    s3: aws_sdk_s3::Client,
}

impl Function for StartIdleImageBuilders {
    type Verb = Verb;
    const NAME: &'static str = "start-idle-image-builders";
    type Request = Request;
    type Settings = Settings;
    type Error = Error;

    fn new(sdk_config: &SdkConfig, shared: &shared::config::Settings, settings: Settings) -> Self {
        let s3 = shared::s3::client(sdk_config, shared);
        let shared = shared.clone();
        let clients = PerRegion::new(sdk_config, move |c| shared::service_client!(aws_sdk_appstream, c, &shared));
        StartIdleImageBuilders { settings, clients, s3 }
    }

    /// Every request is validated before the first AWS call (the schedules document's read, when it is in S3).
    async fn run(&self, inputs: Vec<Input<Request>>, ctx: &Context, report: &mut Report) -> Result<(), Error> {
        let region = self.clients.default_region();
        let now = jiff::Timestamp::try_from(ctx.now).map_err(|e| Error::Internal(format!("the clock: {e}")))?;
        let mut checked = Vec::new();
        for input in inputs {
            let request = match input {
                Input::Request(r) | Input::Schedule(Some(r)) => r,
                Input::Schedule(None) => Request::default(),
                other => return Err(InvalidInput::not_a_trigger(other.kind(), Self::NAME).into()),
            };
            checked.push(Job::check(request, &self.settings, region.as_deref(), now, ctx.dry_run)?);
        }
        // Every request checked, the document they are decided on is read (from S3, when it is kept there).
        let schedules = self.schedules(report).await?;
        let mut jobs = Vec::new();
        for request in checked {
            jobs.push(request.decide_on(&self.settings, schedules.as_ref())?);
        }
        let limit = self.settings.max_concurrency;
        for job in &jobs {
            let (mut observed, unread) = aws::observe(job, &self.clients, limit).await;
            // A region that cannot be read is one failed line; the others are still handled.
            for (region, e) in &unread {
                report.push(ReportAction::failed(region, Verb::of(job.action).as_str(), e));
            }
            if let Some(reconcile) = &job.reconcile {
                (observed.acted, observed.unreadable) = self.acted(ctx, reconcile, &observed, report).await;
            }
            let planned = plan::plan(job, &observed);
            tracing::info!(action = ?job.action, selected = planned.len(), dry_run = ctx.dry_run, "planned");
            if ctx.dry_run {
                report.actions.extend(planned.iter().map(Planned::as_planned));
            } else {
                let poll = self.settings.poll_interval;
                let applied = aws::apply(job, &planned, ctx, &self.clients, limit, poll).await;
                let lines = self.settle(ctx, &planned, applied).await;
                report.actions.extend(lines);
            }
        }
        Ok(())
    }
}

impl StartIdleImageBuilders {
    /// The schedules document in force for this run: `SCHEDULES`, or what `SCHEDULES_S3_URI` holds now. Read for
    /// every action, since a fixed start or stop leaves the scheduled builders to the reconcile only while a valid
    /// document is in force. What is wrong with a document kept in S3 is a failed line, so alarms see a bad upload
    /// even while the last good version stands in.
    async fn schedules(&self, report: &mut Report) -> Result<Option<InForce>, Error> {
        let Some(SchedulesSource::S3 { bucket, key }) = &self.settings.schedules else {
            return Ok(self.settings.inline_schedules());
        };
        let kept = aws::schedules_in_s3(&self.s3, bucket, key).await?;
        if let Some(refused) = kept.refused {
            report.push(ReportAction::failed(
                format!("s3://{bucket}/{key}"),
                Verb::Reconcile.as_str(),
                &Error::from(refused),
            ));
        }
        Ok(Some(kept.in_force))
    }

    /// The stretch marks of a reconcile's `respect-manual` builders that keeper's records hold: those already acted
    /// on in the stretch their schedule is in. One that cannot be read counts as acted on (the builder is left as
    /// people set it, never fought on a guess) and is a failed line, so the run is retried.
    async fn acted(
        &self,
        ctx: &Context,
        reconcile: &Reconcile,
        observed: &Observed,
        report: &mut Report,
    ) -> (BTreeSet<String>, BTreeSet<String>) {
        let (mut acted, mut unreadable) = (BTreeSet::new(), BTreeSet::new());
        let none = BTreeSet::new();
        for builder in &observed.builders {
            let Scheduled::Want { stretch: Some(mark), .. } = plan::scheduled(reconcile, builder, &none, &none) else {
                continue;
            };
            match ctx.leases.mark(&mark).await {
                Ok(None) => {}
                Ok(Some(value)) if value == plan::MARK_UNDONE => {}
                Ok(Some(_)) => {
                    acted.insert(mark);
                }
                Err(e) => {
                    let target = format!("{}/{}", builder.region, builder.name);
                    report.push(ReportAction::failed(target, Verb::Reconcile.as_str(), &Error::from(e)));
                    unreadable.insert(mark);
                }
            }
        }
        (acted, unreadable)
    }

    /// Records the `respect-manual` stretches this run found as their schedule wants, so that the rest of each leaves
    /// the builder to the people using it (one acted on was recorded by `aws::apply`, just before the call), and
    /// undoes the record of a start or stop that surely did not happen, so that the retry acts. A record that
    /// cannot be written is a failed line, and the run is retried; an undo that cannot be written leaves the builder
    /// to people until the stretch ends, and its line says so.
    async fn settle(
        &self,
        ctx: &Context,
        planned: &[Planned],
        applied: Vec<(ReportAction, bool)>,
    ) -> Vec<ReportAction> {
        let (mut lines, mut failed) = (Vec::with_capacity(applied.len()), Vec::new());
        for (p, (line, undo)) in planned.iter().zip(applied) {
            if let Some(mark) = &p.mark {
                let found_as_wanted = matches!(p.step, plan::Step::Skip(_)) && p.settles_stretch(line.outcome);
                let value = match (found_as_wanted, undo) {
                    (true, _) => Some(plan::MARK_ACTED),
                    (false, true) => Some(plan::MARK_UNDONE),
                    // Acted on (recorded before the call), a skip keeper did not act for, or a call that may have
                    // happened: the record stands.
                    (false, false) => None,
                };
                if let Some(value) = value
                    && let Err(e) = ctx.leases.put_mark(mark, value, plan::STRETCH_KEPT).await
                {
                    let e = Error::from(e);
                    let mut failure = ReportAction::failed(p.target(), Verb::Reconcile.as_str(), &e);
                    if undo {
                        failure.detail.push_str(
                            "; the record of the failed call could not be undone, so the builder is left to people until the stretch ends",
                        );
                    }
                    failed.push(failure);
                }
            }
            lines.push(line);
        }
        lines.extend(failed);
        lines
    }
}
