//! Observe and apply: the AppStream calls, one small function each, returning the plan's types, and the read of a
//! schedules document kept in S3. Errors are classified here, on the SDK's typed variants.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_appstream::Client;
use aws_sdk_appstream::types::ImageBuilder;
use shared::aws_error::AwsError;
use shared::classify::Classify;
use shared::clients::PerRegion;
use shared::error::InvalidInput;
use shared::host::{Context, Permit, Withheld};
use shared::lost_answer::AnswerWatch;
use shared::paging::Pages;
use shared::report::Verb as _;
use shared::report::{Action as ReportAction, Outcome};
use shared::retry::full_jitter_delay;
use shared::s3::ReadError;
use tokio::sync::Semaphore;

use crate::config::schedules::Schedules;
use crate::config::{InForce, Job, Selector};
use crate::error::Error;
use crate::plan::{self, Builder, Observed, Planned, State, Step, Verb};

/// How many names one DescribeImageBuilders call asks for.
const NAMES_PER_CALL: usize = 25;
/// The longest wait for STOPPED when no deadline is known (a run by hand).
const MAX_WAIT_WITHOUT_DEADLINE: Duration = Duration::from_secs(14 * 60);

fn to_builder(region: &str, b: &ImageBuilder) -> Builder {
    Builder {
        region: region.to_string(),
        name: b.name.clone().unwrap_or_default(),
        arn: b.arn.clone().unwrap_or_default(),
        state: b.state.as_ref().map(|s| State::parse(s.as_str())).unwrap_or_else(|| State::Other("UNKNOWN".into())),
        reason: b.state_change_reason.as_ref().map(|r| {
            let code = r.code.as_ref().map(|c| c.as_str().to_string()).unwrap_or_default();
            let message = r.message.clone().unwrap_or_default();
            if code.is_empty() { message } else { format!("{code}: {message}") }
        }),
        tags: None,
    }
}

fn permit_error(_: tokio::sync::AcquireError) -> Error {
    Error::Internal("the concurrency limit was closed while calls were waiting for it".into())
}

/// Reads every region at once: the builders, then the tags the plan needs (`limit` reads in flight per region). A
/// region that cannot be read is returned with its error, and the others are still read.
pub async fn observe(job: &Job, clients: &PerRegion<Client>, limit: usize) -> (Observed, Vec<(String, Error)>) {
    let per_region = futures_util::future::join_all(
        job.regions.iter().map(|region| observe_region(job, clients.get(region), region, limit)),
    )
    .await;
    let mut observed = Observed::default();
    let mut failed = Vec::new();
    for (region, result) in job.regions.iter().zip(per_region) {
        match result {
            Ok(r) => {
                observed.builders.extend(r.builders);
                observed.missing.extend(r.missing);
            }
            Err(e) => failed.push((region.clone(), e)),
        }
    }
    (observed, failed)
}

async fn observe_region(job: &Job, client: Client, region: &str, limit: usize) -> Result<Observed, Error> {
    let (mut builders, missing) = match &job.selector {
        Selector::Names(names) => describe_named(&client, region, names).await?,
        Selector::Matching { .. } => (describe(&client, region, None).await?.unwrap_or_default(), Vec::new()),
    };
    let limit = Semaphore::new(limit);
    let reads = builders.iter().enumerate().filter(|(_, b)| plan::needs_tags(job, b)).map(|(i, b)| {
        let (client, limit) = (&client, &limit);
        async move {
            let _permit = limit.acquire().await.map_err(permit_error)?;
            tags(client, region, &b.arn).await.map(|tags| (i, tags))
        }
    });
    for (i, tags) in futures_util::future::try_join_all(reads).await? {
        builders[i].tags = Some(tags);
    }
    let missing = missing.into_iter().map(|name| (region.to_string(), name)).collect();
    Ok(Observed { builders, missing, ..Observed::default() })
}

/// The named builders, in chunks; a chunk that names a builder that does not exist fails whole, so its names are
/// then asked one by one to tell which are missing.
pub async fn describe_named(
    client: &Client,
    region: &str,
    names: &[String],
) -> Result<(Vec<Builder>, Vec<String>), Error> {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for chunk in names.chunks(NAMES_PER_CALL) {
        match describe(client, region, Some(chunk)).await? {
            Some(builders) => found.extend(builders),
            None => {
                for name in chunk {
                    match describe(client, region, Some(std::slice::from_ref(name))).await? {
                        Some(builders) => found.extend(builders),
                        None => missing.push(name.clone()),
                    }
                }
            }
        }
    }
    Ok((found, missing))
}

/// The named builders (every builder of the region when `names` is `None`), page by page: the SDK has no paginator
/// for this call, and a named chunk may span pages too. `None` when AppStream answers that a named builder does
/// not exist.
async fn describe(client: &Client, region: &str, names: Option<&[String]>) -> Result<Option<Vec<Builder>>, Error> {
    let mut out = Vec::new();
    let mut pages = Pages::new(format!("{region} DescribeImageBuilders"));
    let mut token: Option<String> = None;
    loop {
        let page = match client
            .describe_image_builders()
            .set_names(names.map(<[String]>::to_vec))
            .set_next_token(token.take())
            .send()
            .await
        {
            Ok(page) => page,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => return Ok(None),
            Err(e) => return Err(AwsError::new(region, "DescribeImageBuilders", &e).into()),
        };
        out.extend(page.image_builders.unwrap_or_default().iter().map(|b| to_builder(region, b)));
        match pages.next(page.next_token)? {
            Some(next) => token = Some(next),
            None => return Ok(Some(out)),
        }
    }
}

/// The current state of one builder; `None` when it no longer exists.
pub async fn state_of(client: &Client, region: &str, name: &str) -> Result<Option<State>, Error> {
    let builders = describe(client, region, Some(&[name.to_string()])).await?;
    Ok(builders.and_then(|b| b.into_iter().next()).map(|b| b.state))
}

pub async fn tags(client: &Client, region: &str, arn: &str) -> Result<BTreeMap<String, String>, Error> {
    let out = client
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(|e| AwsError::new(format!("{region}/{arn}"), "ListTagsForResource", &e))?;
    Ok(out.tags.unwrap_or_default().into_iter().collect())
}

/// Starts a builder; returns its state afterwards. A builder deleted since the read is [`Error::Gone`]. `watch` sees
/// whether an attempt's answer was lost (see [`shared::lost_answer`]).
pub async fn start(
    client: &Client,
    p: &Planned,
    agent_version: Option<&str>,
    watch: &AnswerWatch,
    _: &Permit,
) -> Result<State, Error> {
    match client
        .start_image_builder()
        .name(&p.name)
        .set_appstream_agent_version(agent_version.map(String::from))
        .customize()
        .interceptor(watch.clone())
        .send()
        .await
    {
        Ok(out) => Ok(state_after(out.image_builder)),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
            Err(Error::Gone { target: p.target() })
        }
        Err(e) => Err(AwsError::new(p.target(), "StartImageBuilder", &e).into()),
    }
}

/// Stops a builder; returns its state afterwards. A builder deleted since the read is [`Error::Gone`].
pub async fn stop(client: &Client, p: &Planned, watch: &AnswerWatch, _: &Permit) -> Result<State, Error> {
    match client.stop_image_builder().name(&p.name).customize().interceptor(watch.clone()).send().await {
        Ok(out) => Ok(state_after(out.image_builder)),
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
            Err(Error::Gone { target: p.target() })
        }
        Err(e) => Err(AwsError::new(p.target(), "StopImageBuilder", &e).into()),
    }
}

fn state_after(builder: Option<ImageBuilder>) -> State {
    builder.and_then(|b| b.state).map(|s| State::parse(s.as_str())).unwrap_or_else(|| State::Other(String::new()))
}

/// Applies the plan with at most `limit` start/stop calls in flight; every builder gets its own outcome, with
/// whether the record of its `respect-manual` stretch is to be undone (written before a call that surely did not
/// happen).
pub async fn apply(
    job: &Job,
    planned: &[Planned],
    ctx: &Context,
    clients: &PerRegion<Client>,
    limit: usize,
    poll: Duration,
) -> Vec<(ReportAction, bool)> {
    let limit = Semaphore::new(limit);
    // Ready builders take the limit's permits first (tokio's semaphore is fair): a STOPPING builder holds its permit
    // while it waits, and MAX_CONCURRENCY of them ahead in the list would hold back every STOPPED one until they
    // stop, perhaps past the deadline margin. Each builder keeps its report line, in plan order.
    let mut order: Vec<usize> = (0..planned.len()).collect();
    order.sort_by_key(|i| planned[*i].step == Step::WaitThenStart);
    let planned_in_order: Vec<&Planned> = order.iter().map(|i| &planned[*i]).collect();
    let work = planned_in_order.iter().copied().map(|p| {
        let limit = &limit;
        let verb = p.verb();
        async move {
            if let Step::Skip(why) = &p.step {
                let line = ReportAction::new(p.target(), verb.as_str(), Outcome::Skipped, format!("{}: {why}", p.context()));
                return (line, false);
            }
            let client = clients.get(&p.region);
            // The permit covers a STOPPING builder's polling too: MAX_CONCURRENCY bounds the calls in flight, so N
            // STOPPING builders are never N pollers at once.
            let permit = match limit.acquire().await.map_err(permit_error) {
                Ok(permit) => permit,
                Err(e) => return (failed(p, verb, &e), false),
            };
            // Asked once the turn is had: with a low limit, a builder may wait long for it. A wait that could not
            // end before the margin is not begun either: the retry waits and starts it.
            let may = match ctx.may_mutate() {
                Ok(may) => may,
                Err(Withheld::OutOfTime(e)) => return (ReportAction::failed(p.target(), verb.as_str(), &e), false),
                Err(Withheld::DryRun) => return (p.as_planned(), false),
            };
            if p.step == Step::WaitThenStart {
                match wait_until_stopped(&client, p, ctx, poll).await {
                    Ok(None) => {}
                    Ok(Some(skip)) => return (skip, false),
                    Err(e) => return (failed(p, verb, &e), false),
                }
            }
            // A respect-manual stretch is recorded just before the call, its turn had and any wait over: killed
            // after the call, the run leaves a record, and no later run acts on the builder again in the stretch.
            // Without a record there is no call.
            if let Some(mark) = &p.mark
                && let Err(e) = ctx.leases.put_mark(mark, plan::MARK_ACTED, plan::STRETCH_KEPT).await
            {
                return (failed(p, verb, &Error::from(e)), false);
            }
            let watch = AnswerWatch::new();
            let result = match p.step {
                Step::Stop => stop(&client, p, &watch, &may).await,
                _ => start(&client, p, job.appstream_agent_version.as_deref(), &watch, &may).await,
            };
            drop(permit);
            // The record is undone only when the call surely did not happen: failed, no attempt's answer lost.
            let undo = p.mark.is_some() && !watch.lost();
            let line = match result {
                Ok(state) => {
                    let agent = job
                        .appstream_agent_version
                        .as_deref()
                        .filter(|_| p.step != Step::Stop)
                        .map(|v| format!(" (agent {v})"))
                        .unwrap_or_default();
                    ReportAction::new(
                        p.target(),
                        verb.as_str(),
                        Outcome::Applied,
                        format!("{} → {state}{agent}", p.context()),
                    )
                }
                Err(Error::Gone { .. }) => {
                    ReportAction::new(p.target(), verb.as_str(), Outcome::Skipped, "deleted meanwhile")
                }
                // AppStream refuses a start of a builder another run has just started (ConcurrentModification while
                // it is PENDING, ResourceNotAvailable once RUNNING): what was wanted is true, so it is not a failure.
                // When an attempt of this call was sent and its answer lost, what the retry met is this call's own
                // work: that is applied, not "someone else's".
                Err(e) => match state_of(&client, &p.region, &p.name).await {
                    Ok(Some(now)) if plan::done_meanwhile(p.action, &now) && watch.lost() => ReportAction::new(
                        p.target(),
                        verb.as_str(),
                        Outcome::Applied,
                        format!(
                            "{} → {now}: an attempt's answer was lost after it was sent, and its retry found the builder {now} ({e})",
                            p.before()
                        ),
                    ),
                    Ok(Some(now)) if plan::done_meanwhile(p.action, &now) => ReportAction::new(
                        p.target(),
                        verb.as_str(),
                        Outcome::Skipped,
                        format!("{} → {now} meanwhile, not by this run; left as it is ({e})", p.before()),
                    ),
                    _ => failed(p, verb, &e),
                },
            };
            let undo = undo && line.outcome == Outcome::Failed;
            (line, undo)
        }
    });
    let done = futures_util::future::join_all(work).await;
    let mut lines: Vec<(usize, (ReportAction, bool))> = order.into_iter().zip(done).collect();
    lines.sort_by_key(|(i, _)| *i);
    lines.into_iter().map(|(_, line)| line).collect()
}

fn failed(p: &Planned, verb: Verb, error: &Error) -> ReportAction {
    tracing::warn!(target = %p.target(), error = %error, error_type = %error.error_type(), "builder failed");
    ReportAction::failed(p.target(), verb.as_str(), error)
}

/// Polls a STOPPING builder until it is STOPPED, with growing jittered delays, within the deadline. `Ok(None)`:
/// stopped, go on; `Ok(Some(action))`: it went elsewhere, here is its outcome.
async fn wait_until_stopped(
    client: &Client,
    p: &Planned,
    ctx: &Context,
    poll: Duration,
) -> Result<Option<ReportAction>, Error> {
    let started = Instant::now();
    let budget = ctx.remaining().map(|r| r.saturating_sub(ctx.deadline_margin)).unwrap_or(MAX_WAIT_WITHOUT_DEADLINE);
    let skipped =
        |detail: String| Ok(Some(ReportAction::new(p.target(), Verb::WaitAndStart.as_str(), Outcome::Skipped, detail)));
    let mut attempt = 0u32;
    loop {
        let delay = full_jitter_delay(attempt, poll, poll * 8, fastrand::f64()).max(poll / 4);
        if started.elapsed() + delay >= budget {
            return Err(Error::StillStopping { target: p.target(), waited_secs: started.elapsed().as_secs() });
        }
        tokio::time::sleep(delay).await;
        match state_of(client, &p.region, &p.name).await? {
            Some(State::Stopped) => return Ok(None),
            Some(State::Stopping) => attempt += 1,
            Some(state) => return skipped(format!("STOPPING → {state} while waiting; left alone")),
            None => return skipped("deleted meanwhile".into()),
        }
    }
}

/// How many versions before a bad current one are read, at most, looking for the last good one.
const FALLBACK_READS: usize = 10;

/// What `SCHEDULES_S3_URI` holds at this run.
#[derive(Debug)]
pub struct Kept {
    /// The document the run decides on: the current version when it is valid, or else the newest valid version
    /// before it (the last good one stays in force); why there is none, otherwise.
    pub in_force: InForce,
    /// What is wrong with what is kept there (a bad current version, an object that cannot be read), for the
    /// report's failed line, whether or not an older version stands in.
    pub refused: Option<InvalidInput>,
}

impl Kept {
    /// No document in force, for this reason (the rule of `SCHEDULES_S3_URI`), which is also the failed line.
    fn none(why: String) -> Kept {
        let why = InvalidInput::new(SETTING, why);
        Kept { in_force: InForce { setting: SETTING, document: Err(why.clone()) }, refused: Some(why) }
    }

    /// `document` in force, and what was refused on the way to it (a bad current version), if anything.
    fn valid(document: std::sync::Arc<Schedules>, refused: Option<String>) -> Kept {
        let refused = refused.map(|why| InvalidInput::new(SETTING, why));
        Kept { in_force: InForce { setting: SETTING, document: Ok(document) }, refused }
    }
}

/// Reads the schedules document from S3: the current version, validated as a whole; when it is not valid, the
/// versions before it, newest first, back to the object's last deletion and at most [`FALLBACK_READS`] of them. A
/// failure that may pass (throttling, a dropped connection) is an error, so the run is retried rather than decided
/// on a guess; one that will not (no such object, access denied) leaves no document in force.
pub async fn schedules_in_s3(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Kept, ReadError> {
    let uri = format!("s3://{bucket}/{key}");
    let limit = crate::config::schedules::MAX_SCHEDULES_BYTES;
    let (current, version) = match shared::s3::read_bounded_version(s3, bucket, key, None, limit).await {
        Ok((body, version)) => (validate(&body), version),
        // Too large is a bad version like any other: the one before it may stand in.
        Err(ReadError::TooLarge { error, version }) => (Err(InvalidInput::new("schedules", error.rule)), version),
        Err(e) if e.error_type().is_retryable() => return Err(e),
        // Without s3:ListBucket, S3 answers a missing key (or a deleted one) with AccessDenied, not NoSuchKey.
        Err(e) => {
            return Ok(Kept::none(format!(
                "{uri} is missing or cannot be read, so no schedules document is in force: {e}"
            )));
        }
    };
    let bad = match current {
        Ok(document) => return Ok(Kept::valid(document, None)),
        Err(bad) => bad,
    };
    let named = version.as_deref().map(|v| format!("version {v} of {uri}")).unwrap_or_else(|| uri.clone());
    tracing::error!(document = %named, field = %bad.field, rule = %bad.rule, "the schedules document is not valid");
    let refused = format!("{named} is refused: {}: {}", bad.field, bad.rule);
    let Some(version) = version else {
        return Ok(Kept::none(format!("{refused}; the bucket keeps no versions, so no older one can stand in")));
    };
    let history = match shared::s3::history(s3, bucket, key).await {
        Ok(history) => history,
        Err(e) if e.error_type().is_retryable() => return Err(e),
        Err(e) => return Ok(Kept::none(format!("{refused}; its older versions could not be listed: {e}"))),
    };
    let older = shared::s3::older_than(&history, &version);
    let (mut invalid, mut unreadable) = (0, Vec::new());
    for old in older.iter().take(FALLBACK_READS) {
        let body = match shared::s3::read_bounded(s3, bucket, key, Some(old), limit).await {
            Ok(body) => body,
            Err(e) if e.error_type().is_retryable() => return Err(e),
            Err(ReadError::TooLarge { .. }) => {
                invalid += 1;
                continue;
            }
            // Gone since it was listed, or not readable (s3:GetObjectVersion): the next older one may do.
            Err(e) => {
                unreadable.push(format!("version {old}: {e}"));
                continue;
            }
        };
        match validate(&body) {
            Ok(document) => {
                tracing::warn!(document = %uri, version = %old, "the last good version of the schedules document stays in force");
                let why = format!("{refused}; version {old}, the last good one, stays in force");
                return Ok(Kept::valid(document, Some(why)));
            }
            Err(_) => invalid += 1,
        }
    }
    let mut why = format!("{refused}; no version before it is valid ({invalid} read and not valid");
    if !unreadable.is_empty() {
        why.push_str(&format!(", {} not readable: {}", unreadable.len(), unreadable.join("; ")));
    }
    if older.len() > FALLBACK_READS {
        why.push_str(&format!(", {} older ones not tried", older.len() - FALLBACK_READS));
    }
    why.push_str("), so no schedules document is in force");
    Ok(Kept::none(why))
}

/// The setting a document kept in S3 is named by.
const SETTING: &str = "SCHEDULES_S3_URI";

/// One version's body as a schedules document, validated as a whole.
fn validate(body: &[u8]) -> Result<std::sync::Arc<Schedules>, InvalidInput> {
    let text = std::str::from_utf8(body).map_err(|_| InvalidInput::new("schedules", "the document is not UTF-8"))?;
    crate::config::schedules::parse(text).map(std::sync::Arc::new)
}
