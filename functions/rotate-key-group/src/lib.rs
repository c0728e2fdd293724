//! rotate-key-group: adds a public key to a CloudFront key group and retires old ones, ETag-safe under concurrent
//! edits, from an S3 upload of a PEM, a request (by hand or SNS), or a schedule's sweep.
//!
//! payload → trigger → [`config::Job`]s (validated, PEMs checked) → plan with the new key before creating it →
//! create → read-modify-write of the group (re-read on PreconditionFailed) → delete retired, unused keys → report.

pub mod aws;
pub mod config;
pub mod plan;

use std::time::{SystemTime, UNIX_EPOCH};

use aws_types::SdkConfig;
use lambda_runtime::Diagnostic;
use serde_json::Value;
use shared::config::{ConfigError, Lookup};
use shared::idempotency::{IdempotencyStore, client_token};
use shared::invocation::{Context, Runtime};
use shared::report::{Action, Classify, ErrorType, Outcome, Report};
use shared::retry::{RmwPolicy, read_modify_write};
use shared::telemetry::Metrics;
use shared::trigger::{SnsMessage, Trigger, sha256_hex};

pub use shared::error::Error;

use crate::config::{Config, Job, NewKey, Request, key_name};
use crate::plan::{Key, Plan, Rotation};

pub const FUNCTION: &str = "rotate-key-group";

pub struct Deps {
    pub runtime: Runtime,
    pub config: Config,
    pub cloudfront: aws_sdk_cloudfront::Client,
    pub s3: aws_sdk_s3::Client,
}

fn clients(
    sdk_config: &SdkConfig,
    settings: &shared::config::Settings,
) -> (aws_sdk_cloudfront::Client, aws_sdk_s3::Client) {
    let s3_config = aws_sdk_s3::config::Builder::from(sdk_config)
        // Path-style requests work against any endpoint, the emulator's included; AWS accepts them for GetObject.
        .force_path_style(sdk_config.endpoint_url().is_some())
        .retry_classifier(shared::retry::KeeperRetryClassifier::new(settings))
        .build();
    (shared::service_client!(aws_sdk_cloudfront, sdk_config, settings), aws_sdk_s3::Client::from_conf(s3_config))
}

impl Deps {
    pub fn from_lookup(sdk_config: &SdkConfig, lookup: &Lookup<'_>) -> Result<Deps, ConfigError> {
        let config = Config::from_lookup(lookup)?;
        let runtime = Runtime::from_settings(FUNCTION, config.shared.clone(), sdk_config).with_counters(counters);
        let (cloudfront, s3) = clients(sdk_config, &config.shared);
        Ok(Deps { runtime, config, cloudfront, s3 })
    }

    pub fn with_store(sdk_config: &SdkConfig, config: Config, store: std::sync::Arc<dyn IdempotencyStore>) -> Deps {
        let runtime = Runtime::new(FUNCTION, config.shared.clone(), store).with_counters(counters);
        let (cloudfront, s3) = clients(sdk_config, &config.shared);
        Deps { runtime, config, cloudfront, s3 }
    }

    pub async fn run(&self, payload: Value, deadline: Option<SystemTime>) -> Result<Report, Diagnostic> {
        self.runtime.handle(payload, deadline, |trigger, ctx| handle(trigger, ctx, self)).await
    }
}

fn counters(report: &Report, metrics: &mut Metrics) {
    for (verb, metric) in
        [("create-key", "created"), ("add-key", "added"), ("retire-key", "retired"), ("delete-key", "deleted")]
    {
        metrics.add(metric, report.count_of(verb, Outcome::Applied) as u64);
    }
}

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

async fn jobs(trigger: Trigger<Request>, ctx: &Context, deps: &Deps) -> Result<Vec<Job>, Error> {
    let config = &deps.config;
    let token = |pem: &str| client_token(FUNCTION, &[&ctx.event_id, "pem", &sha256_hex(pem.trim().as_bytes())]);
    match trigger {
        Trigger::Manual(m) => Ok(vec![Job::from_request(m.request, config, token)?]),
        Trigger::Sns(records) => records
            .into_iter()
            .map(|r| match r.message {
                SnsMessage::Request(req) => Job::from_request(req, config, token),
                SnsMessage::Notification(_) => Err(Error::invalid("Message", "is not a request")),
            })
            .collect(),
        Trigger::Schedule(s) => match s.request {
            Some(r) if r.key_group_id.is_some() => Ok(vec![Job::from_request(r, config, token)?]),
            _ if config.key_group_ids.is_empty() => {
                Err(Error::invalid("KEY_GROUP_IDS", "must name the key groups a schedule sweeps"))
            }
            _ => Ok(config.key_group_ids.iter().map(|g| Job::sweep(g, config)).collect()),
        },
        Trigger::S3(objects) => {
            let mut out = Vec::new();
            for o in objects {
                let (group, stem) = Job::upload_target(config, &o.key)?;
                let pem = aws::read_pem(&deps.s3, &o.bucket, &o.key, o.version_id.as_deref()).await?;
                shared::public_key::inspect(&pem)
                    .map_err(|e| Error::invalid(format!("s3://{}/{}", o.bucket, o.key), e.to_string()))?;
                let upload =
                    o.version_id.clone().or_else(|| o.etag.clone()).or_else(|| o.sequencer.clone()).unwrap_or_default();
                let caller_reference = client_token(FUNCTION, &[&o.bucket, &o.key, &upload]);
                let mut job = Job::sweep(group, config);
                job.new_key = Some(NewKey {
                    name: key_name(stem, &caller_reference),
                    comment: format!("keeper: from s3://{}/{}", o.bucket, o.key).chars().take(128).collect(),
                    caller_reference,
                    pem,
                });
                out.push(job);
            }
            Ok(out)
        }
        Trigger::Event(n) => {
            Err(Error::invalid("event", format!("`{}` events are not a trigger of this function", n.detail_type)))
        }
    }
}

pub async fn handle(trigger: Trigger<Request>, ctx: Context, deps: &Deps) -> Result<Report, Error> {
    let jobs = jobs(trigger, &ctx, deps).await?;
    let mut report = Report::new(FUNCTION, ctx.event_id.clone(), jobs.iter().any(|j| j.dry_run));
    for job in &jobs {
        rotate(job, &ctx, deps, &mut report).await?;
    }
    if let Some(incomplete) = report.incomplete() {
        tracing::warn!(report = %serde_json::to_string(&report).unwrap_or_default(), "incomplete run");
        return Err(incomplete.into());
    }
    Ok(report)
}

/// The creation times of the group's keys and of the keys being added (`new` is not created yet).
async fn ages(deps: &Deps, ids: impl Iterator<Item = &String>, new: Option<&str>) -> Result<Vec<Key>, Error> {
    let mut keys = Vec::new();
    for id in ids {
        let created = if Some(id.as_str()) == new { now_secs() } else { aws::created(&deps.cloudfront, id).await? };
        keys.push(Key { id: id.clone(), created });
    }
    Ok(keys)
}

async fn plan_round(job: &Job, deps: &Deps, add: &[String], new: Option<&str>) -> Result<(aws::Group, Plan), Error> {
    let group = aws::group(&deps.cloudfront, &job.key_group_id).await?;
    let keys = ages(deps, group.items.iter().chain(add.iter().filter(|a| !group.items.contains(a))), new).await?;
    let rotation = Rotation {
        add: add.to_vec(),
        retire: job.retire.clone(),
        max_keys: job.max_keys,
        grace_seconds: job.grace_hours * 3600.0,
    };
    let plan = plan::plan(&group.items, &keys, &rotation, now_secs())?;
    Ok((group, plan))
}

fn is_conflict(e: &Error) -> bool {
    matches!(e, Error::Aws { failure, .. } if failure.code.as_deref() == Some("PreconditionFailed"))
}

async fn rotate(job: &Job, ctx: &Context, deps: &Deps, report: &mut Report) -> Result<(), Error> {
    let group_id = &job.key_group_id;
    let pending = "(new key)".to_string();
    let mut add = job.add.clone();
    // Plan with the new key before creating it: a rotation that cannot happen creates nothing.
    if job.new_key.is_some() {
        add.push(pending.clone());
    }
    let (_, first) = plan_round(job, deps, &add, Some(&pending)).await?;
    if job.dry_run {
        for id in &first.added {
            report.push(Action::new(format!("{group_id}/{id}"), "add-key", Outcome::Planned, ""));
        }
        for (id, why) in &first.retired {
            report.push(Action::new(format!("{group_id}/{id}"), "retire-key", Outcome::Planned, why.clone()));
        }
        return Ok(());
    }
    add.retain(|a| *a != pending);
    if let Some(new_key) = &job.new_key {
        let id = aws::create(&deps.cloudfront, new_key).await?;
        report.push(Action::new(
            format!("{group_id}/{id}"),
            "create-key",
            Outcome::Applied,
            format!("{} ({})", new_key.name, new_key.comment),
        ));
        add.push(id);
    }
    // Concurrent rotations of one group each need a round; ten bounds the worst case well inside a Lambda timeout.
    let policy =
        RmwPolicy { max_attempts: 10, base_delay: std::time::Duration::from_millis(50), ..RmwPolicy::default() };
    let (plan, etag) = read_modify_write(&policy, ctx.deadline_instant(), is_conflict, |attempt| {
        let add = &add;
        async move {
            if attempt > 0 {
                tracing::info!(attempt, group = %group_id, "ETag changed under us; re-read and re-planned");
            }
            let (group, plan) = plan_round(job, deps, add, None).await?;
            if !plan.changes() {
                return Ok((plan, None));
            }
            let etag = aws::update(&deps.cloudfront, group_id, &group, plan.items.clone()).await?;
            Ok((plan, Some(etag)))
        }
    })
    .await?;
    let Some(etag) = etag else {
        report.push(Action::new(group_id.clone(), "update", Outcome::Skipped, "already as desired"));
        return Ok(());
    };
    for id in &plan.added {
        report.push(Action::new(format!("{group_id}/{id}"), "add-key", Outcome::Applied, format!("ETag {etag}")));
    }
    for (id, why) in &plan.retired {
        report.push(Action::new(format!("{group_id}/{id}"), "retire-key", Outcome::Applied, why.clone()));
    }
    if job.delete_retired {
        for (id, _) in &plan.retired {
            report.push(delete_if_unused(deps, group_id, id).await);
        }
    }
    Ok(())
}

async fn delete_if_unused(deps: &Deps, group_id: &str, id: &str) -> Action {
    let target = format!("{group_id}/{id}");
    match aws::in_any_group(&deps.cloudfront, id).await {
        Ok(true) => return Action::new(target, "delete-key", Outcome::Skipped, "still in a key group"),
        Ok(false) => {}
        Err(e) => return Action::failed(target, "delete-key", &e),
    }
    match aws::delete(&deps.cloudfront, id).await {
        Ok(()) => Action::new(target, "delete-key", Outcome::Applied, ""),
        Err(e) if matches!(&e, Error::Aws { failure, .. } if failure.code.as_deref() == Some("PublicKeyInUse")) => {
            Action::new(target, "delete-key", Outcome::Skipped, "in use")
        }
        Err(e) if e.error_type() == ErrorType::NOT_FOUND => {
            Action::new(target, "delete-key", Outcome::Skipped, "already deleted")
        }
        Err(e) => Action::failed(target, "delete-key", &e),
    }
}
