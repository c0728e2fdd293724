//! update-image-lifecycle: starts Image Builder resource-state updates, explicitly (one build, every field of
//! StartResourceStateUpdate) or by policy (an image's builds when Image Builder announces a finished build, or every
//! image on a schedule).
//!
//! inputs → explicit update ([`plan::explicit`]) or policy run (observe [`aws::builds`], [`plan::plan`]) →
//! [`aws::apply`] (unless a dry run).

pub mod aws;
pub mod config;
pub mod error;
pub mod plan;

use std::time::{SystemTime, UNIX_EPOCH};

use aws_types::SdkConfig;
use serde_json::Value;
use shared::clients::PerRegion;
use shared::error::InvalidInput;
use shared::host::{Context, Function};
use shared::report::Verb as _;
use shared::report::{Action, Report};
use shared::retry::KeeperRetryClassifier;
use shared::trigger::Input;

pub use crate::error::Error;

use crate::config::{Explicit, Notification, Request, Settings};
use crate::plan::Verb;

const NAME: &str = "update-image-lifecycle";

pub struct UpdateImageLifecycle {
    settings: Settings,
    clients: PerRegion<aws_sdk_imagebuilder::Client>,
}

/// What one input asks for.
enum Work {
    Explicit(Explicit),
    /// The policy over the builds of one image (`Some(name)`, with the build that triggered it) or of all images.
    Policy {
        region: String,
        image: Option<String>,
        trigger: Option<String>,
    },
}

impl Function for UpdateImageLifecycle {
    type Verb = Verb;
    const NAME: &'static str = NAME;
    type Request = Request;
    type Settings = Settings;
    type Error = Error;

    fn new(sdk_config: &SdkConfig, shared: &shared::config::Settings, settings: Settings) -> Self {
        // ResourceInUse on StartResourceStateUpdate means an execution runs for minutes or hours: the build is
        // skipped with that reason instead of retried within seconds and then failed.
        let classifier = KeeperRetryClassifier::new(shared).never_retrying(&["ResourceInUseException"]);
        let clients = PerRegion::new(sdk_config, move |c| {
            let config = aws_sdk_imagebuilder::config::Builder::from(c).retry_classifier(classifier.clone()).build();
            aws_sdk_imagebuilder::Client::from_conf(config)
        });
        UpdateImageLifecycle { settings, clients }
    }

    async fn run(&self, inputs: Vec<Input<Request>>, ctx: &Context, report: &mut Report) -> Result<(), Error> {
        let mut works = Vec::new();
        for input in inputs {
            works.extend(self.work(input)?);
        }
        let limit = self.settings.max_concurrency;
        for work in works {
            let (region, decisions, in_use) = match work {
                Work::Explicit(e) => {
                    // Read first, so that the report and the client token name the status it changes from.
                    let mut decision = plan::explicit(&e);
                    match aws::status_of(&self.clients.get(&e.region), &e.resource_arn).await {
                        // A change of the record alone to the status it has is done (a retry after it applied).
                        // Not a restore: restoring an AVAILABLE build also cancels a scheduled deprecation.
                        Ok(Some(from))
                            if from == plan::BuildStatus::Lifecycle(e.status)
                                && e.status != plan::Status::Available
                                && e.include_resources.is_none()
                                && e.update_at.is_none() =>
                        {
                            decision.step = plan::Step::Skip(format!("already {from}"));
                            decision.from = Some(from);
                        }
                        Ok(from) => decision.from = from,
                        Err(err) => {
                            report.push(Action::failed(&e.resource_arn, e.status.verb().as_str(), &err));
                            continue;
                        }
                    }
                    (e.region.clone(), vec![decision], aws::WhenInUse::Retry)
                }
                Work::Policy { region, image, trigger } => {
                    // A region (or image) whose builds cannot be listed is its own failed line: the other regions
                    // of a sweep, and the other records of a batch, are still handled.
                    let images = match aws::builds(&self.clients.get(&region), &region, image.as_deref(), limit).await {
                        Ok(images) => images,
                        Err(e) => {
                            report.push(Action::failed(
                                format!("{region}/{}", image.as_deref().unwrap_or("*")),
                                Verb::List.as_str(),
                                &e,
                            ));
                            continue;
                        }
                    };
                    let mut decisions = Vec::new();
                    for builds in images.values() {
                        match builds {
                            Ok(builds) => decisions.extend(plan::plan(
                                &self.settings.policy,
                                builds,
                                now_secs(),
                                trigger.as_deref(),
                            )),
                            Err(e) => report.push(Action::failed(target_of(e), Verb::Plan.as_str(), e)),
                        }
                    }
                    tracing::info!(images = images.len(), decisions = decisions.len(), "policy planned");
                    (region, decisions, aws::WhenInUse::Skip)
                }
            };
            if ctx.dry_run {
                report.actions.extend(decisions.iter().map(plan::planned));
            } else {
                report.actions.extend(aws::apply(&self.clients.get(&region), &decisions, ctx, limit, in_use).await);
            }
        }
        Ok(())
    }
}

/// The resource an error is about, for its report line.
fn target_of(e: &Error) -> String {
    match e {
        Error::Aws(e) => e.target.clone(),
        Error::Gone { arn } | Error::InUse { arn } => arn.clone(),
        Error::Invalid(_) | Error::Internal(_) => NAME.to_string(),
    }
}

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl UpdateImageLifecycle {
    fn work(&self, input: Input<Request>) -> Result<Vec<Work>, Error> {
        match input {
            Input::Request(r) | Input::Schedule(Some(r)) => self.request(r),
            Input::Schedule(None) => self.request(Request::default()),
            Input::Notification(document) => Ok(vec![from_notification(&document)?]),
            other @ (Input::Object(_) | Input::Rotation(_)) => {
                Err(InvalidInput::not_a_trigger(other.kind(), NAME).into())
            }
        }
    }

    /// An explicit update when the request names a build; otherwise a sweep of every region in `REGIONS` (the
    /// function's own region when it is not set).
    fn request(&self, r: Request) -> Result<Vec<Work>, Error> {
        if r.resource_arn.is_some() {
            return Ok(vec![Work::Explicit(Explicit::new(r, now_secs())?)]);
        }
        if r.state.is_some()
            || r.include_resources.is_some()
            || r.exclusion_rules.is_some()
            || r.execution_role.is_some()
            || r.update_at.is_some()
        {
            return Err(InvalidInput::new(
                "resourceArn",
                "is required for an explicit update (without it, the request runs the policy)",
            )
            .into());
        }
        let regions = match self.settings.regions.is_empty() {
            false => self.settings.regions.clone(),
            true => vec![
                self.clients
                    .default_region()
                    .ok_or_else(|| InvalidInput::new("AWS_REGION", "is needed for a sweep of the account"))?,
            ],
        };
        Ok(regions.into_iter().map(|region| Work::Policy { region, image: None, trigger: None }).collect())
    }
}

/// The policy over the image of a finished build, in the build's region.
fn from_notification(document: &Value) -> Result<Work, InvalidInput> {
    let n = Notification::from_document(document).ok_or_else(|| {
        InvalidInput::new("event", "is not an Image Builder build notification or image state change")
    })?;
    let region =
        config::BUILD_ARN.captures(&n.arn).and_then(|c| c.get(1)).map(|m| m.as_str().to_string()).unwrap_or_default();
    Ok(Work::Policy { region, image: Some(n.image_name().to_string()), trigger: Some(n.arn) })
}
