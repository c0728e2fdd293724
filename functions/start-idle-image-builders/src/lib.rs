//! start-idle-image-builders: starts the STOPPED AppStream image builders a selector picks (or stops RUNNING ones),
//! in one or more regions, never twice for one event, and reports what it did to each.
//!
//! inputs → [`config::Job`]s (validated) → [`aws::observe`] → [`plan::plan`] → [`aws::apply`] (unless a dry run).

pub mod aws;
pub mod config;
pub mod error;
pub mod plan;

use aws_sdk_appstream::Client;
use aws_types::SdkConfig;
use shared::clients::PerRegion;
use shared::error::InvalidInput;
use shared::host::{Context, Function};
use shared::report::Verb as _;
use shared::report::{Action as ReportAction, Report};
use shared::trigger::Input;

pub use crate::error::Error;

use crate::config::{Action, Job, Request, Settings};
use crate::plan::Verb;

pub struct StartIdleImageBuilders {
    settings: Settings,
    /// One AppStream client per region.
    clients: PerRegion<Client>,
}

impl Function for StartIdleImageBuilders {
    type Verb = Verb;
    const NAME: &'static str = "start-idle-image-builders";
    type Request = Request;
    type Settings = Settings;
    type Error = Error;

    fn new(sdk_config: &SdkConfig, shared: &shared::config::Settings, settings: Settings) -> Self {
        let shared = shared.clone();
        let clients = PerRegion::new(sdk_config, move |c| shared::service_client!(aws_sdk_appstream, c, &shared));
        StartIdleImageBuilders { settings, clients }
    }

    /// Every request is validated before the first AWS call.
    async fn run(&self, inputs: Vec<Input<Request>>, ctx: &Context, report: &mut Report) -> Result<(), Error> {
        let region = self.clients.default_region();
        let mut jobs = Vec::new();
        for input in inputs {
            let request = match input {
                Input::Request(r) | Input::Schedule(Some(r)) => r,
                Input::Schedule(None) => Request::default(),
                other => return Err(InvalidInput::not_a_trigger(other.kind(), Self::NAME).into()),
            };
            jobs.push(Job::new(request, &self.settings, region.as_deref())?);
        }
        let limit = self.settings.max_concurrency;
        for job in &jobs {
            let (observed, unread) = aws::observe(job, &self.clients, limit).await;
            // A region that cannot be read is one failed line; the others are still handled.
            for (region, e) in &unread {
                let verb = match job.action {
                    Action::Start => Verb::Start,
                    Action::Stop => Verb::Stop,
                };
                report.push(ReportAction::failed(region, verb.as_str(), e));
            }
            let planned = plan::plan(job, &observed);
            tracing::info!(action = ?job.action, selected = planned.len(), dry_run = ctx.dry_run, "planned");
            if ctx.dry_run {
                report.actions.extend(planned.iter().map(|p| p.as_planned(job.action)));
            } else {
                let poll = self.settings.poll_interval;
                report.actions.extend(aws::apply(job, &planned, ctx, &self.clients, limit, poll).await);
            }
        }
        Ok(())
    }
}
