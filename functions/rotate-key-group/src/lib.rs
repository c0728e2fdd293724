//! rotate-key-group: adds a public key to a CloudFront key group and retires old ones, ETag-safe under concurrent
//! edits, from an S3 upload of a PEM, a request (by hand or SNS), or a schedule's sweep.
//!
//! inputs → [`config::Job`]s (validated, PEMs checked) → plan with the key to create before creating it → create →
//! read-modify-write of the group (re-read on PreconditionFailed) → delete retired, unused keys.

pub mod aws;
pub mod config;
pub mod error;
pub mod plan;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_types::SdkConfig;
use shared::config::{ConfigError, Lookup};
use shared::error::InvalidInput;
use shared::host::{Context, Function};
use shared::idempotency::client_token;
use shared::report::{Action, Classify, Outcome, Report};
use shared::retry::{RmwPolicy, read_modify_write};
use shared::telemetry::Metrics;
use shared::trigger::{Input, S3Object, Trigger, sha256_hex};

pub use crate::error::Error;

use crate::config::{Job, KEEPER_COMMENT, NewKey, Request, Settings, key_name};
use crate::plan::{Key, Member, Rotation};

pub struct RotateKeyGroup {
    settings: Settings,
    cloudfront: aws_sdk_cloudfront::Client,
    s3: aws_sdk_s3::Client,
}

const NAME: &str = "rotate-key-group";

impl Function for RotateKeyGroup {
    const NAME: &'static str = NAME;
    type Request = Request;
    type Settings = Settings;
    type Error = Error;

    fn settings(lookup: &Lookup<'_>) -> Result<Settings, ConfigError> {
        Settings::from_lookup(lookup)
    }

    fn new(sdk_config: &SdkConfig, shared: &shared::config::Settings, settings: Settings) -> Self {
        RotateKeyGroup {
            settings,
            cloudfront: shared::service_client!(aws_sdk_cloudfront, sdk_config, shared),
            s3: shared::s3::client(sdk_config, shared),
        }
    }

    fn counters(report: &Report, metrics: &mut Metrics) {
        for (verb, metric) in
            [("create-key", "created"), ("add-key", "added"), ("retire-key", "retired"), ("delete-key", "deleted")]
        {
            metrics.add(metric, report.count_of(verb, Outcome::Applied) as u64);
        }
    }

    /// Every job is validated first; then each key group is rotated on its own, so one that fails (gone, refused,
    /// throttled) is one failed line and the others still rotate; then keeper's orphaned keys are cleaned up.
    async fn run(&self, trigger: Trigger<Request>, ctx: &Context, report: &mut Report) -> Result<(), Error> {
        let jobs = self.jobs(trigger, ctx).await?;
        for job in &jobs {
            // A group is rotated whole or not started: its create, update and deletes are never cut off halfway.
            if let Err(out_of_time) = ctx.may_start() {
                report.push(Action::failed(&job.key_group_id, "rotate", &out_of_time));
                continue;
            }
            if let Err(e) = self.rotate(job, ctx, report).await {
                report.push(Action::failed(&job.key_group_id, "rotate", &e));
            }
        }
        if !ctx.dry_run {
            let delete = self.settings.delete_retired_keys || jobs.iter().any(|j| j.delete_retired);
            match ctx.may_start() {
                Ok(()) => self.orphans(delete, report).await,
                Err(out_of_time) => report.push(Action::failed("orphaned keys", "find-orphans", &out_of_time)),
            }
        }
        Ok(())
    }
}

/// A job's rotation, with the keys to add and retire named by `K`.
fn rotation<K>(job: &Job, add: Vec<K>, retire: Vec<K>) -> Rotation<K> {
    Rotation { add, retire, max_keys: job.max_keys, grace_seconds: job.grace_hours * 3600.0 }
}

/// How old a key of keeper's in no key group must be before it counts as an orphan: longer than any Lambda run, so
/// that a rotation between its create and its update is never mistaken for one.
const ORPHAN_MIN_AGE_SECS: f64 = 20.0 * 60.0;

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl RotateKeyGroup {
    /// Every job of the invocation, validated (uploaded PEMs read and checked) before any mutating call.
    async fn jobs(&self, trigger: Trigger<Request>, ctx: &Context) -> Result<Vec<Job>, Error> {
        let settings = &self.settings;
        let token = |pem: &str| client_token(NAME, &[&ctx.event_id, "pem", &sha256_hex(pem.trim().as_bytes())]);
        let mut jobs = Vec::new();
        for input in trigger.into_inputs() {
            match input {
                Input::Request(r) => jobs.push(Job::from_request(r, settings, token)?),
                Input::Schedule(Some(r)) if r.key_group_id.is_some() => {
                    jobs.push(Job::from_request(r, settings, token)?)
                }
                Input::Schedule(_) if settings.key_group_ids.is_empty() => {
                    return Err(InvalidInput::new("KEY_GROUP_IDS", "must name the key groups a schedule sweeps").into());
                }
                Input::Schedule(_) => jobs.extend(settings.key_group_ids.iter().map(|g| Job::sweep(g, settings))),
                Input::Object(object) => jobs.push(self.upload(&object).await?),
                other @ Input::Notification(_) => return Err(InvalidInput::not_a_trigger(other.kind(), NAME).into()),
            }
        }
        Ok(jobs)
    }

    /// The job of an uploaded PEM: its key group from the object key, the key checked before anything is created.
    async fn upload(&self, o: &S3Object) -> Result<Job, Error> {
        let (group, stem) = Job::upload_target(&self.settings, &o.key)?;
        let pem = aws::read_pem(&self.s3, o).await?;
        shared::public_key::inspect(&pem)
            .map_err(|e| InvalidInput::new(format!("s3://{}/{}", o.bucket, o.key), e.to_string()))?;
        let upload =
            o.version_id.clone().or_else(|| o.etag.clone()).or_else(|| o.sequencer.clone()).unwrap_or_default();
        let caller_reference = client_token(NAME, &[&o.bucket, &o.key, &upload]);
        let mut job = Job::sweep(group, &self.settings);
        job.new_key = Some(NewKey {
            name: key_name(stem, &caller_reference),
            comment: format!("{KEEPER_COMMENT} from s3://{}/{}", o.bucket, o.key).chars().take(128).collect(),
            caller_reference,
            pem,
        });
        Ok(job)
    }

    /// The group and the creation time of every key in it or being added.
    async fn observe(&self, group_id: &str, add: &[String]) -> Result<(aws::Group, Vec<Key<String>>), Error> {
        let group = aws::group(&self.cloudfront, group_id).await?;
        let mut keys = Vec::new();
        for id in group.items.iter().chain(add.iter().filter(|a| !group.items.contains(a))) {
            keys.push(Key { id: id.clone(), created: aws::created(&self.cloudfront, id).await? });
        }
        Ok((group, keys))
    }

    async fn rotate(&self, job: &Job, ctx: &Context, report: &mut Report) -> Result<(), Error> {
        let group_id = &job.key_group_id;
        // Plan with the key to create before creating it: a rotation that cannot happen creates nothing.
        let (group, mut keys) = self.observe(group_id, &job.add).await?;
        let existing = |id: &String| Member::Existing(id.clone());
        let mut members: Vec<Key<Member>> =
            keys.iter().map(|k| Key { id: existing(&k.id), created: k.created }).collect();
        let mut add: Vec<Member> = job.add.iter().map(existing).collect();
        if let Some(new_key) = &job.new_key {
            add.push(Member::ToCreate(new_key.name.clone()));
            members.push(Key { id: Member::ToCreate(new_key.name.clone()), created: now_secs() });
        }
        let current: Vec<Member> = group.items.iter().map(existing).collect();
        let retire = job.retire.iter().map(existing).collect();
        let first = plan::plan(&current, &members, &rotation(job, add, retire), now_secs())?;
        if ctx.dry_run {
            for id in &first.added {
                report.push(Action::new(format!("{group_id}/{id}"), "add-key", Outcome::Planned, ""));
            }
            for (id, why) in &first.retired {
                report.push(Action::new(format!("{group_id}/{id}"), "retire-key", Outcome::Planned, why.clone()));
            }
            return Ok(());
        }
        let mut add = job.add.clone();
        let mut made = None;
        if let Some(new_key) = &job.new_key {
            let key = aws::create(&self.cloudfront, new_key).await?;
            let target = format!("{group_id}/{}", key.id);
            report.push(match key.created {
                true => Action::new(
                    target,
                    "create-key",
                    Outcome::Applied,
                    format!("{} ({})", new_key.name, new_key.comment),
                ),
                false => Action::new(
                    target,
                    "create-key",
                    Outcome::Skipped,
                    format!(
                        "{} already exists with this key (created by an earlier delivery): using {}",
                        new_key.name, key.id
                    ),
                ),
            });
            add.push(key.id.clone());
            if !keys.iter().any(|k| k.id == key.id) {
                // A key this rotation adds joins now: its own creation time does not enter the plan.
                keys.push(Key { id: key.id.clone(), created: now_secs() });
            }
            made = Some(key.id);
        }
        // The first round writes on the read made before the key was created: creating a key leaves the group as it
        // was, and the update is conditional on that read's ETag, so a group changed meanwhile is refused and read
        // again. Reading it again first would only cost calls.
        let mut first_read = Some((group, keys));
        // Concurrent rotations of one group each need a round; ten bounds the worst case well inside a Lambda timeout.
        let policy = RmwPolicy { max_attempts: 10, base_delay: Duration::from_millis(50), ..RmwPolicy::default() };
        let is_conflict = |e: &Error| matches!(e, Error::GroupChanged { .. });
        let rounds = read_modify_write(&policy, ctx.deadline_instant(), is_conflict, |attempt| {
            let add = &add;
            let seen = first_read.take();
            async move {
                if attempt > 0 {
                    tracing::info!(attempt, group = %group_id, "ETag changed under us; re-read and re-planned");
                }
                let (group, keys) = match seen {
                    Some(seen) => seen,
                    None => self.observe(group_id, add).await?,
                };
                let plan =
                    plan::plan(&group.items, &keys, &rotation(job, add.clone(), job.retire.clone()), now_secs())?;
                if !plan.changes() {
                    return Ok((plan, None));
                }
                let etag = aws::update(&self.cloudfront, group_id, &group, plan.items.clone()).await?;
                Ok((plan, Some(etag)))
            }
        })
        .await;
        let (plan, etag) = match rounds {
            Ok(done) => done,
            Err(e) => {
                // A failure that may pass keeps the key: Lambda's retry finds it again and adds it. One that cannot
                // leaves a key that no group will list: delete it now, or say it is left behind.
                if let Some(id) = made.filter(|_| !e.error_type().is_retryable()) {
                    report.push(self.abandon(job, &id).await);
                }
                return Err(e);
            }
        };
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
                report.push(aws::delete_if_unused(&self.cloudfront, group_id, id).await);
            }
        }
        Ok(())
    }

    /// A key this job made that its group will not list, after a failure a retry cannot fix.
    async fn abandon(&self, job: &Job, id: &str) -> Action {
        if job.delete_retired {
            return aws::delete_if_unused(&self.cloudfront, &job.key_group_id, id).await;
        }
        let detail = format!(
            "created for {}, which it could not join; no key group lists it; set DELETE_RETIRED_KEYS to delete such keys",
            job.key_group_id
        );
        Action::new(id, "orphan-key", Outcome::Skipped, detail)
    }

    /// Keys keeper made that no key group lists, left by a deletion that failed or a run that failed after creating
    /// one: deleted when deletion is allowed, else reported, so that they never pile up unseen until CloudFront's
    /// quota of public keys is reached.
    async fn orphans(&self, delete: bool, report: &mut Report) {
        let orphans = match aws::orphans(&self.cloudfront, now_secs(), ORPHAN_MIN_AGE_SECS).await {
            Ok(orphans) => orphans,
            Err(e) => return report.push(Action::failed("orphaned keys", "find-orphans", &e)),
        };
        // A key this run already tried to delete keeps that line: a failure there is what Lambda's retry is for.
        let tried: Vec<&str> = report
            .actions
            .iter()
            .filter(|a| a.action == "delete-key")
            .filter_map(|a| a.target.rsplit('/').next())
            .collect();
        let orphans: Vec<_> = orphans.into_iter().filter(|k| !tried.contains(&k.id.as_str())).collect();
        for key in orphans {
            let why = format!("orphan: keeper made it ({}) and no key group lists it", key.name);
            report.push(match delete {
                true => aws::delete(&self.cloudfront, &key.id, &key.id, &why).await,
                false => Action::new(
                    &key.id,
                    "orphan-key",
                    Outcome::Skipped,
                    format!("{why}; set DELETE_RETIRED_KEYS to delete it"),
                ),
            });
        }
    }
}
