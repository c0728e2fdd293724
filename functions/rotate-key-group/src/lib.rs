//! rotate-key-group: adds a public key to a CloudFront key group and retires old ones, ETag-safe under concurrent
//! edits, from an S3 upload of a PEM, a request (by hand or SNS), or a schedule's sweep.
//!
//! inputs → [`config::Job`]s (validated, PEMs checked) → plan with the key to create before creating it → create →
//! read-modify-write of the group (re-read on PreconditionFailed; when each added key joins and what the event
//! changes recorded before each update) → delete retired, unused keys → this deployment's orphans.
//!
//! As the rotation function of a key group's secret (managed signing keys), each Secrets Manager step is
//! [`managed`]'s, on the same read-modify-write.

pub mod aws;
pub mod config;
pub mod error;
pub mod keypair;
pub mod managed;
pub mod marks;
pub mod plan;
pub mod secrets;

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_types::SdkConfig;
use shared::answer::Caller;
use shared::classify::Classify;
use shared::error::InvalidInput;
use shared::hash::sha256_hex;
use shared::host::{Context, Function, Permit, Withheld};
use shared::idempotency::client_token;
use shared::report::Verb as _;
use shared::report::{Action, Outcome, Report};
use shared::retry::{RmwPolicy, read_modify_write};
use shared::telemetry::Metrics;
use shared::trigger::{Input, S3Object};

pub use crate::error::Error;

use crate::aws::Maker;
use crate::config::{Job, NewKey, Request, Settings, comment, key_name, made_by, owner_tag};
use crate::plan::{Change, Intent, Key, Kind, Plan, Sweep, Verb};

pub struct RotateKeyGroup {
    settings: Settings,
    /// `keeper:<KEEPER_STACK>`: how the comment of every key this deployment makes starts.
    tag: String,
    /// `KEEPER_STACK`: the deployment whose secrets (tagged `keeper:stack`) it rotates.
    stack: String,
    cloudfront: aws_sdk_cloudfront::Client,
    s3: aws_sdk_s3::Client,
    secretsmanager: aws_sdk_secretsmanager::Client,
}

const NAME: &str = "rotate-key-group";

impl Function for RotateKeyGroup {
    type Verb = Verb;
    const NAME: &'static str = NAME;
    type Request = Request;
    type Settings = Settings;
    type Error = Error;

    fn new(sdk_config: &SdkConfig, shared: &shared::config::Settings, settings: Settings) -> Self {
        RotateKeyGroup {
            settings,
            tag: owner_tag(&shared.stack),
            stack: shared.stack.clone(),
            cloudfront: shared::service_client!(aws_sdk_cloudfront, sdk_config, shared),
            s3: shared::s3::client(sdk_config, shared),
            secretsmanager: shared::service_client!(aws_sdk_secretsmanager, sdk_config, shared),
        }
    }

    fn counters(report: &Report, metrics: &mut Metrics) {
        metrics.count_verbs::<Verb>(report);
        // What the sweep's listing showed; nothing when it did not run or failed (no count is better than a made-up 0).
        if let Some((public_keys, orphans)) = census_of(report) {
            metrics.add("publicKeys", public_keys);
            metrics.add("orphans", orphans);
        }
    }

    /// Every job is validated first; then each key group is rotated on its own, so one that fails (gone, refused,
    /// throttled) is one failed line and the others still rotate; then this deployment's orphaned keys are cleaned
    /// up and counted.
    async fn run(&self, inputs: Vec<Input<Request>>, ctx: &Context, report: &mut Report) -> Result<(), Error> {
        // A rotation step is the whole invocation (Secrets Manager sends one at a time), without the sweep: a step is
        // answered as soon as its part is done, and a sweep's failure must not fail the step.
        if let Some(Input::Rotation(_)) = inputs.first() {
            let Some(Input::Rotation(rotation)) = inputs.into_iter().next() else { return Ok(()) };
            return self.rotation_step(rotation, ctx, report).await;
        }
        let by_hand = ctx.caller == Caller::ByHand;
        let jobs = self.jobs(inputs, ctx, report).await?;
        let mut reported = Vec::new();
        for job in &jobs {
            // A second job for a group reads the event's record of it: what the first reported must be in it.
            for said in reported.iter().filter(|r: &&Reported| r.group_id == job.key_group_id) {
                self.remember(ctx, said).await;
            }
            reported.retain(|r| r.group_id != job.key_group_id);
            // A group is rotated whole or not started: its create, update and deletes are never cut off halfway.
            let may = match ctx.may_mutate() {
                Ok(may) => Some(may),
                Err(Withheld::DryRun) => None,
                Err(Withheld::OutOfTime(e)) => {
                    report.push(Action::failed(&job.key_group_id, Verb::Rotate.as_str(), &e));
                    continue;
                }
            };
            if let Err(e) = self.rotate(job, may.as_ref(), ctx, report, &mut reported).await {
                report.push(Action::failed(&job.key_group_id, Verb::Rotate.as_str(), &e));
            }
        }
        // A request sent by hand whose every target failed is answered with its failure (the host's rule), which the
        // sweep's lines would turn into a report: the sweep waits for the next run.
        let failed_whole =
            by_hand && report.count(Outcome::Failed) == report.actions.len() && !report.actions.is_empty();
        if !failed_whole {
            // A request may turn deletion off for itself, never on: its retired keys are not deleted by this run.
            let delete = self.settings.delete_retired_keys && jobs.iter().all(|j| j.delete_retired);
            match ctx.may_mutate() {
                Ok(may) => self.orphans(ctx, delete, &may, report).await,
                Err(Withheld::DryRun) => {}
                Err(Withheld::OutOfTime(e)) => {
                    report.push(Action::failed("orphaned keys", Verb::FindOrphans.as_str(), &e))
                }
            }
        }
        // Last, after every call of every job and the sweep: a run killed before this never got its report out, so
        // its retry must say, and count, these changes again.
        for said in &reported {
            self.remember(ctx, said).await;
        }
        Ok(())
    }
}

/// The action of the line that says what the orphan sweep's listing showed, which the `publicKeys` and `orphans`
/// counters are read from.
const CENSUS: Verb = Verb::CountKeys;

/// The census line: how many public keys the account has, and how many are this deployment's orphans.
fn census_line(public_keys: usize, orphans: usize, tag: &str) -> Action {
    Action::new(
        "public keys",
        CENSUS.as_str(),
        Outcome::Skipped,
        format!(
            "{public_keys} in the account; {orphans} of them orphans: made by this deployment ({tag}) more than 20 minutes ago, or retired by it, and in no key group"
        ),
    )
}

/// `(public keys, orphans)` from a report's census line.
fn census_of(report: &Report) -> Option<(u64, u64)> {
    let line = report.actions.iter().find(|a| a.action == CENSUS.as_str())?;
    let mut numbers = line.detail.split(|c: char| !c.is_ascii_digit()).filter(|n| !n.is_empty());
    Some((numbers.next()?.parse().ok()?, numbers.next()?.parse().ok()?))
}

/// What a run's report says of an event's changes in one group (`intent`), and what the store holds (`persisted`).
struct Reported {
    group_id: String,
    intent: Intent,
    persisted: Intent,
}

/// What the rounds of one rotation share: the event's intent as it grows, as last written, and the earlier updates
/// of the event that a round's read recognised.
struct Rounds {
    intent: Intent,
    persisted: Intent,
    recognised: Vec<Change>,
}

/// The report line of one of the event's changes.
fn change_line(group_id: &str, change: &Change, outcome: Outcome, detail: &str) -> Action {
    let detail = if change.why.is_empty() { detail.to_string() } else { format!("{}; {detail}", change.why) };
    Action::new(format!("{group_id}/{}", change.id), change.verb.action().as_str(), outcome, detail)
}

/// The line of a change an earlier run of the event made: `applied` (or planned, in a dry run) when that run's
/// update was answered, else skipped as maybe that update, maybe another writer's.
fn earlier_line(group_id: &str, change: &Change, applied: Outcome) -> Action {
    match change.applied {
        true => {
            change_line(group_id, change, applied, "applied by this event's earlier run, which failed after its update")
        }
        false => change_line(
            group_id,
            change,
            Outcome::Skipped,
            "already so when re-read: this event's earlier update (its answer lost) or another writer did it",
        ),
    }
}

/// Confirms the retire marks of keys whose update was answered or recognised: from now on the sweep may delete them
/// once no group lists them. Worth a warning when it fails (the key then waits for a later run), not a failure.
async fn confirm_retired<'a>(ctx: &Context, job: &Job, keys: impl Iterator<Item = &'a String>) {
    let retired = plan::Retired { group: job.key_group_id.clone(), deletable: job.delete_retired, confirmed: true };
    for id in keys {
        if let Err(e) = marks::put_retired(&ctx.leases, id, &retired).await {
            tracing::warn!(key = %id, error = %e, "could not confirm that this deployment retired the key");
        }
    }
}

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

impl RotateKeyGroup {
    /// Every job of the invocation, validated (uploaded PEMs read and checked) before any mutating call. Bad input
    /// refuses the whole invocation; an upload that cannot be read (gone, throttled) is one failed line, and the
    /// other uploads still rotate.
    async fn jobs(&self, inputs: Vec<Input<Request>>, ctx: &Context, report: &mut Report) -> Result<Vec<Job>, Error> {
        let settings = &self.settings;
        let tag = self.tag.as_str();
        let token = |pem: &str| client_token(NAME, &[&ctx.event_id, "pem", &sha256_hex(pem.trim().as_bytes())]);
        let mut jobs = Vec::new();
        for input in inputs {
            match input {
                Input::Request(r) => jobs.push(Job::from_request(r, settings, tag, token)?),
                Input::Schedule(Some(r)) if r.key_group_id.is_some() => {
                    jobs.push(Job::from_request(r, settings, tag, token)?)
                }
                Input::Schedule(_) if settings.key_group_ids.is_empty() => {
                    return Err(InvalidInput::new("KEY_GROUP_IDS", "must name the key groups a schedule sweeps").into());
                }
                Input::Schedule(_) => jobs.extend(settings.key_group_ids.iter().map(|g| Job::sweep(g, settings))),
                Input::Object(object) => match self.upload(&object).await {
                    Ok(job) => jobs.push(job),
                    Err(Error::Upload(unread)) if !matches!(unread, shared::s3::ReadError::TooLarge { .. }) => {
                        let target = format!("s3://{}/{}", object.bucket, object.key);
                        report.push(Action::failed(target, Verb::ReadKey.as_str(), &unread));
                    }
                    Err(refused) => return Err(refused),
                },
                other @ (Input::Notification(_) | Input::Rotation(_)) => {
                    return Err(InvalidInput::not_a_trigger(other.kind(), NAME).into());
                }
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
            comment: comment(&self.tag, &format!("from s3://{}/{}", o.bucket, o.key)),
            caller_reference,
            pem,
            upload: o.version_id.clone().map(|v| (o.bucket.clone(), o.key.clone(), v)),
        });
        Ok(job)
    }

    /// The group, and when every key in it joined: keeper's mark of the moment it added the key, else the key's
    /// creation time (a key added outside keeper). Keys being added join now whatever their times say.
    async fn observe(
        &self,
        ctx: &Context,
        group_id: &str,
        add: &[String],
    ) -> Result<(aws::Group, Vec<Key<String>>), Error> {
        let group = aws::group(&self.cloudfront, group_id).await?;
        let mut keys = Vec::new();
        for id in group.items.iter().chain(add.iter().filter(|a| !group.items.contains(a))) {
            let created = aws::created(&self.cloudfront, id).await?;
            let joined = match group.items.contains(id) {
                true => marks::joined(&ctx.leases, group_id, id).await?.unwrap_or(created),
                false => created,
            };
            keys.push(Key { id: id.clone(), joined });
        }
        Ok((group, keys))
    }

    /// Rotates one group: observe; an upload a newer one replaced stops here; plan with the key to create before
    /// creating it (a rotation that cannot happen creates nothing); create it; write the group
    /// ([`Self::write_group`]); say what the event changed; delete what it retired. Without a permit (a dry run) the
    /// plan is the report. What the report now says of the event's changes is added to `reported`, for
    /// [`Self::run`] to record once nothing is left to call.
    async fn rotate(
        &self,
        job: &Job,
        may: Option<&Permit>,
        ctx: &Context,
        report: &mut Report,
        reported: &mut Vec<Reported>,
    ) -> Result<(), Error> {
        let group_id = &job.key_group_id;
        let (group, mut keys) = self.observe(ctx, group_id, &job.add).await?;
        // What earlier runs of this event changed here, if one got as far as an update: its retry finishes it.
        let intent = marks::intent(&ctx.leases, &ctx.event_id, group_id).await?;
        // The key this event created and an earlier run of it added: in the group already, so the retry plans it as
        // a member, not as a key to create (which would count it twice against the five a group may hold). (A key
        // a request adds by id may be in the group by someone else's hand: not one the event created.)
        let joined = intent
            .changes
            .iter()
            .find(|c| c.verb == Kind::Add && !job.add.contains(&c.id) && group.items.contains(&c.id))
            .map(|c| c.id.clone());
        // An upload a newer upload of the same object replaced (Lambda's retry, a re-send days later) adds no key:
        // it would join as the newest and push out the key the signer now uses. Unless this event's key is in the
        // group (its update applied): then the retry finishes and reports it.
        if joined.is_none()
            && let Some(why) = self.superseded(job).await?
        {
            self.skip_superseded(job, may, ctx, &group.items, intent, why, report, reported).await;
            return Ok(());
        }
        let first = plan::with_new_key(job, &group.items, &keys, joined.as_deref(), now_secs())?;
        let Some(may) = may else {
            for id in &first.added {
                report.push(Action::new(format!("{group_id}/{id}"), Verb::AddKey.as_str(), Outcome::Planned, ""));
            }
            for (id, why) in &first.retired {
                let target = format!("{group_id}/{id}");
                report.push(Action::new(target, Verb::RetireKey.as_str(), Outcome::Planned, why.clone()));
            }
            return Ok(());
        };
        let mut add = job.add.clone();
        let made = match (&job.new_key, &joined) {
            (Some(new_key), Some(id)) => {
                // Nothing to create: an earlier run of this event made the key and added it.
                let detail = format!("{} was created and added by an earlier run of this event: {id}", new_key.name);
                let target = format!("{group_id}/{id}");
                report.push(Action::new(target, Verb::CreateKey.as_str(), Outcome::Skipped, detail));
                Some(id.clone())
            }
            (Some(new_key), None) => {
                let id = self.create_key(job, new_key, may, report).await?;
                if !keys.iter().any(|k| k.id == id) {
                    // A key this rotation adds joins now: its own creation time does not enter the plan.
                    keys.push(Key { id: id.clone(), joined: now_secs() });
                }
                Some(id)
            }
            (None, _) => None,
        };
        add.extend(made.clone());
        // Checked again just before the key joins: a newer upload whose own event rotated while this one read and
        // created must win, or this older key would join after it as the newest.
        if let Some(id) = made.as_ref().filter(|_| joined.is_none())
            && let Some(why) = self.superseded(job).await?
        {
            report.push(Action::new(group_id.clone(), Verb::Rotate.as_str(), Outcome::Skipped, why));
            report.push(self.abandon(job, id, may).await);
            return Ok(());
        }
        let (written, rounds) = self.write_group(job, ctx, may, &add, (group, keys), intent).await;
        let Rounds { mut intent, persisted, recognised } = rounds;
        // An update of this event that applied although its answer was lost: the SDK's retry of it (or a later round
        // or run) found the group exactly as that update left it.
        for change in &recognised {
            let detail = "applied by this event's update, whose answer was lost; the re-read found it";
            report.push(change_line(group_id, change, Outcome::Applied, detail));
        }
        let retired = recognised.iter().filter(|c| c.verb == Kind::Retire).map(|c| &c.id);
        confirm_retired(ctx, job, retired).await;
        let (plan, etag) = match written {
            Ok(done) => done,
            Err(e) => {
                // A failure that may pass keeps the key: Lambda's retry finds it again and adds it. One that cannot
                // leaves a key that no group will list: delete it now, or say it is left behind.
                if let Some(id) = made.filter(|_| !e.error_type().is_retryable()) {
                    report.push(self.abandon(job, &id, may).await);
                }
                reported.push(Reported { group_id: group_id.clone(), intent, persisted });
                return Err(e);
            }
        };
        // The group as it is now: what the last update wrote, or the last read, which needed no update.
        let items = &plan.items;
        let mut said = !recognised.is_empty();
        if let Some(etag) = &etag {
            for id in &plan.added {
                intent.report(Kind::Add, id);
                let (target, detail) = (format!("{group_id}/{id}"), format!("ETag {etag}"));
                report.push(Action::new(target, Verb::AddKey.as_str(), Outcome::Applied, detail));
            }
            for (id, why) in &plan.retired {
                intent.report(Kind::Retire, id);
                let target = format!("{group_id}/{id}");
                report.push(Action::new(target, Verb::RetireKey.as_str(), Outcome::Applied, why.clone()));
            }
            said = true;
        }
        for change in intent.done_otherwise(items) {
            report.push(earlier_line(group_id, &change, Outcome::Applied));
            said = true;
        }
        if !said {
            report.push(Action::new(group_id.clone(), Verb::Update.as_str(), Outcome::Skipped, "already as desired"));
        }
        if job.delete_retired {
            // What this event retired, in this run or an earlier one, and no group lists: a deletion that failed or
            // never started (a lost answer, a crash) is finished by the event's retry.
            let retired: Vec<String> = plan.retired.iter().map(|(id, _)| id.clone()).collect();
            self.finish_deletes(ctx, group_id, &retired, intent.retired_gone(items), may, report).await;
        }
        reported.push(Reported { group_id: group_id.clone(), intent, persisted });
        Ok(())
    }

    /// The group of an upload a newer upload replaced: nothing is added, but what an earlier run of this event did,
    /// whose answer was its failure, is still this event's to say, and what it retired still its to delete. A dry
    /// run only says so: it counts nothing and records nothing for the real run's retry.
    #[allow(clippy::too_many_arguments)]
    async fn skip_superseded(
        &self,
        job: &Job,
        may: Option<&Permit>,
        ctx: &Context,
        items: &[String],
        intent: Intent,
        why: String,
        report: &mut Report,
        reported: &mut Vec<Reported>,
    ) {
        let group_id = &job.key_group_id;
        let mut said = intent.clone();
        let applied = if may.is_some() { Outcome::Applied } else { Outcome::Planned };
        for change in said.changes.iter_mut().filter(|c| c.applied && !c.reported) {
            change.reported = true;
            report.push(earlier_line(group_id, change, applied));
        }
        for change in said.done_otherwise(items) {
            report.push(earlier_line(group_id, &change, applied));
        }
        report.push(Action::new(group_id.clone(), Verb::Rotate.as_str(), Outcome::Skipped, why));
        let Some(may) = may else { return };
        // A deletion that failed (or whose answer was lost) finishes on this retry, as it would had nothing been
        // uploaded since.
        if job.delete_retired {
            self.finish_deletes(ctx, group_id, &[], intent.retired_gone(items), may, report).await;
        }
        reported.push(Reported { group_id: group_id.clone(), intent: said, persisted: intent });
    }

    /// Creates the job's new key and says so; the key's id. An earlier delivery's key of the same upload is used.
    async fn create_key(
        &self,
        job: &Job,
        new_key: &NewKey,
        may: &Permit,
        report: &mut Report,
    ) -> Result<String, Error> {
        let key = aws::create(&self.cloudfront, new_key, may).await?;
        let target = format!("{}/{}", job.key_group_id, key.id);
        let made = format!("{} ({})", new_key.name, new_key.comment);
        report.push(match key.by {
            Maker::ThisRun => Action::new(target, Verb::CreateKey.as_str(), Outcome::Applied, made),
            Maker::ThisRunAnswerLost => Action::new(
                target,
                Verb::CreateKey.as_str(),
                Outcome::Applied,
                format!("{made}; CloudFront's answer was lost, and the SDK's retry found the key"),
            ),
            Maker::EarlierDelivery => Action::new(
                target,
                Verb::CreateKey.as_str(),
                Outcome::Skipped,
                format!(
                    "{} already exists with this key (created by an earlier delivery): using {}",
                    new_key.name, key.id
                ),
            ),
        });
        Ok(key.id)
    }

    /// The read-modify-write of the group: rounds of read, plan, record, conditional update, until an update is
    /// accepted or none is needed. Each round records its plan (what the event changes, when each added key joins,
    /// which keys it retires) before its update, so a crash or a lost answer after the update still leaves them;
    /// recognises on its read an earlier update of the event whose answer was lost; and re-reads and re-plans when
    /// the ETag is stale. The first round writes on `first_read`, made before the key was created: creating a key
    /// leaves the group as it was, and the update is conditional on that read's ETag. Returns the last plan with
    /// the new ETag (`None`: no update was needed), and what the rounds learnt of the event's changes.
    async fn write_group(
        &self,
        job: &Job,
        ctx: &Context,
        may: &Permit,
        add: &[String],
        first_read: (aws::Group, Vec<Key<String>>),
        intent: Intent,
    ) -> (Result<(Plan<String>, Option<String>), Error>, Rounds) {
        let group_id = &job.key_group_id;
        let mut first_read = Some(first_read);
        let state = Mutex::new(Rounds { persisted: intent.clone(), intent, recognised: Vec::new() });
        // Concurrent rotations of one group each need a round; ten bounds the worst case well inside a Lambda timeout.
        let policy = RmwPolicy { max_attempts: 10, base_delay: Duration::from_millis(50), ..RmwPolicy::default() };
        let is_conflict = |e: &Error| matches!(e, Error::GroupChanged { .. });
        let written = read_modify_write(&policy, ctx.deadline_instant(), is_conflict, |attempt| {
            let seen = first_read.take();
            let state = &state;
            async move {
                if attempt > 0 {
                    tracing::info!(attempt, group = %group_id, "ETag changed under us; re-read and re-planned");
                }
                let (group, keys) = match seen {
                    Some(seen) => seen,
                    None => self.observe(ctx, group_id, add).await?,
                };
                let rotation = plan::rotation(job, add.to_vec(), job.retire.clone());
                let plan = plan::plan(&group.items, &keys, &rotation, now_secs())?;
                let recorded = {
                    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                    let found = state.intent.recognise(&group.items);
                    state.recognised.extend(found);
                    if !plan.changes() {
                        return Ok((plan, None));
                    }
                    state.intent.record(&plan);
                    state.persisted = state.intent.clone();
                    state.intent.clone()
                };
                marks::put_intent(&ctx.leases, &ctx.event_id, group_id, &recorded).await?;
                // A managed rotation's key joins without signing: the key it replaces keeps signing, and its grace
                // period starts, only when finishSecret makes the key's version AWSCURRENT.
                let joins = if job.pending_signer { f64::INFINITY } else { now_secs() };
                for id in &plan.added {
                    marks::put_joined(&ctx.leases, group_id, id, joins).await?;
                }
                // Pending until the update is answered (or recognised): a refused update leaves no mark the sweep
                // acts on.
                let pending =
                    plan::Retired { group: group_id.clone(), deletable: job.delete_retired, confirmed: false };
                for (id, _) in &plan.retired {
                    marks::put_retired(&ctx.leases, id, &pending).await?;
                }
                let etag = aws::update(&self.cloudfront, group_id, &group, plan.items.clone(), may).await?;
                // Answered: the change is this event's for certain, even if the run fails later (a delete) and the
                // group changes before its retry, which then still reports it applied.
                let answered = {
                    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                    state.intent.answered(&plan);
                    state.persisted = state.intent.clone();
                    state.intent.clone()
                };
                confirm_retired(ctx, job, plan.retired.iter().map(|(id, _)| id)).await;
                if let Err(e) = marks::put_intent(&ctx.leases, &ctx.event_id, group_id, &answered).await {
                    tracing::warn!(group = %group_id, error = %e, "could not record that this event's update was answered");
                }
                Ok((plan, Some(etag)))
            }
        })
        .await;
        (written, state.into_inner().unwrap_or_else(|e| e.into_inner()))
    }

    /// Deletes the keys this run retired (`retired`) and those an earlier run of the event retired that no group
    /// lists now (`earlier`), except a key an earlier run retired with deletion off: its mark keeps it (the sweep
    /// counts it), even when deletion is on again for this retry.
    async fn finish_deletes(
        &self,
        ctx: &Context,
        group_id: &str,
        retired: &[String],
        earlier: Vec<String>,
        may: &Permit,
        report: &mut Report,
    ) {
        for id in retired {
            report.push(aws::delete_if_unused(&self.cloudfront, group_id, id, may).await);
        }
        for id in earlier.iter().filter(|id| !retired.contains(id)) {
            match marks::retired(&ctx.leases, id).await {
                Ok(Some(mark)) if !mark.deletable => continue,
                Ok(_) => report.push(aws::delete_if_unused(&self.cloudfront, group_id, id, may).await),
                // Not deleted on a guess: the sweep reads the mark again, and says what it finds.
                Err(e) => tracing::warn!(key = %id, error = %e, "could not read the retire mark; the key waits"),
            }
        }
    }

    /// Why the job's upload no longer decides, when a newer upload of the same object replaced its version.
    async fn superseded(&self, job: &Job) -> Result<Option<String>, Error> {
        let Some((bucket, object, version)) = job.new_key.as_ref().and_then(|k| k.upload.as_ref()) else {
            return Ok(None);
        };
        let current = shared::s3::current_version(&self.s3, bucket, object).await?;
        Ok((current.as_deref() != Some(version.as_str())).then(|| {
            format!(
                "s3://{bucket}/{object} version {version} is no longer the current version ({}): the newer upload decides",
                current.as_deref().unwrap_or("none")
            )
        }))
    }

    /// Records which of the event's changes this run reported, unless the store already says so: without it, the
    /// event's retry would report (and count) them again. Worth a warning when it fails, not a failure.
    async fn remember(&self, ctx: &Context, Reported { group_id, intent, persisted }: &Reported) {
        if intent == persisted {
            return;
        }
        if let Err(e) = marks::put_intent(&ctx.leases, &ctx.event_id, group_id, intent).await {
            tracing::warn!(group = %group_id, error = %e, "could not record that this event's change was reported");
        }
    }

    /// A key this job made that its group will not list, after a failure a retry cannot fix.
    async fn abandon(&self, job: &Job, id: &str, may: &Permit) -> Action {
        if job.delete_retired {
            return aws::delete_if_unused(&self.cloudfront, &job.key_group_id, id, may).await;
        }
        let detail = format!(
            "created for {}, which it could not join; no key group lists it; set DELETE_RETIRED_KEYS to delete such keys",
            job.key_group_id
        );
        Action::new(id, Verb::OrphanKey.as_str(), Outcome::Skipped, detail)
    }

    /// Keys this deployment made or retired that no key group lists, left by a deletion that failed, a run that
    /// failed after creating one, or an event that died between its update and its delete: deleted when deletion is
    /// allowed, else reported and counted (`orphans`, beside `publicKeys`), so that they never pile up unseen until
    /// CloudFront's quota of public keys is reached. Which keys those are is [`plan::orphan`]'s rule; other stacks'
    /// keys and keys made by hand that this deployment never retired are never looked at.
    async fn orphans(&self, ctx: &Context, delete: bool, may: &Permit, report: &mut Report) {
        // Taken before the listings: a key created while they are read is younger than this, never an orphan.
        let now = now_secs();
        let (keys, listed) = match aws::census(&self.cloudfront).await {
            Ok(census) => census,
            Err(e) => return report.push(Action::failed("orphaned keys", Verb::FindOrphans.as_str(), &e)),
        };
        let public_keys = keys.len();
        let mut seen: Vec<(aws::KeySummary, plan::Seen)> = keys
            .into_iter()
            .map(|key| {
                let seen = plan::Seen {
                    name: key.name.clone(),
                    created: key.created,
                    listed: listed.contains(&key.id),
                    made_here: made_by(key.comment.as_deref(), &self.tag),
                };
                (key, seen)
            })
            .collect();
        // The keys this deployment made first, then those it only retired, each in listing order.
        seen.sort_by_key(|(_, s)| !s.made_here);
        let mut orphans = Vec::new();
        for (key, seen) in seen {
            if !seen.unlisted(now) {
                continue;
            }
            let mark = match marks::retired(&ctx.leases, &key.id).await {
                Ok(mark) => Ok(mark),
                Err(e) => {
                    report.push(Action::failed(&key.id, Verb::FindOrphans.as_str(), &e));
                    Err(())
                }
            };
            match plan::orphan(&seen, mark.as_ref().map(Option::as_ref).map_err(|_| ()), delete) {
                Sweep::NotOurs => {}
                sweep => orphans.push((key.id, sweep)),
            }
        }
        report.push(census_line(public_keys, orphans.len(), &self.tag));
        // A key this run already tried to delete keeps that line: a failure there is what Lambda's retry is for.
        let tried: Vec<String> = report
            .actions
            .iter()
            .filter(|a| a.action == Verb::DeleteKey.as_str())
            .filter_map(|a| a.target.rsplit('/').next().map(String::from))
            .collect();
        for (id, sweep) in orphans.into_iter().filter(|(id, _)| !tried.contains(id)) {
            report.push(match sweep {
                Sweep::Delete { why } => aws::delete(&self.cloudfront, &id, &id, &why, may).await,
                Sweep::Keep { detail } => Action::new(&id, Verb::OrphanKey.as_str(), Outcome::Skipped, detail),
                Sweep::NotOurs => continue,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_census_line_when_counted_then_the_numbers_it_says() {
        let mut report = Report::new(NAME, "e", false);
        assert_eq!(census_of(&report), None, "no sweep, no count");
        report.push(census_line(12, 3, "keeper:site-2026"));
        assert_eq!(census_of(&report), Some((12, 3)));
    }
}
