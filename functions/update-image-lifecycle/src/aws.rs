//! Observe and apply: list an account's (or one image's) build versions, and start the planned resource-state
//! updates. Errors are classified here, on the SDK's typed variants.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_imagebuilder::Client;
use aws_sdk_imagebuilder::operation::start_resource_state_update::StartResourceStateUpdateError;
use aws_sdk_imagebuilder::primitives::DateTime;
use aws_sdk_imagebuilder::primitives::DateTimeFormat;
use aws_sdk_imagebuilder::types::{
    ImageSummary, ImageType, LifecyclePolicyDetailExclusionRulesAmis,
    LifecyclePolicyDetailExclusionRulesAmisLastLaunched, LifecyclePolicyTimeUnit, Ownership, ResourceState,
    ResourceStateUpdateExclusionRules, ResourceStateUpdateIncludeResources, ResourceStatus,
};
use futures_util::StreamExt;
use shared::aws_error::AwsError;
use shared::host::{Context, Permit, Withheld};
use shared::idempotency::client_token;
use shared::report::Verb as _;
use shared::report::{Action, Outcome};
use tokio::sync::Semaphore;

use crate::config::ExclusionRules;
use crate::error::Error;
use crate::plan::{Build, BuildStatus, Decision, Step, Update};

fn to_build(s: &ImageSummary) -> Option<Build> {
    let arn = s.arn.clone()?;
    let mut parts = arn.split(":image/").nth(1)?.split('/').skip(1);
    let version = parts.next()?.split('.').map(|p| p.parse().ok()).collect::<Option<Vec<u64>>>()?;
    let build = parts.next()?.parse().ok()?;
    Some(Build {
        version,
        build,
        status: BuildStatus::parse(
            s.state.as_ref().and_then(|st| st.status.as_ref()).map(|st| st.as_str()).unwrap_or(""),
        ),
        created: s
            .date_created
            .as_deref()
            .and_then(|d| DateTime::from_str(d, DateTimeFormat::DateTime).ok())
            .map(|d| d.as_secs_f64()),
        tags: s.tags.clone().unwrap_or_default().into_iter().collect(),
        container: s.r#type == Some(ImageType::Docker),
        arn,
    })
}

/// The builds of one image, or why they could not all be read.
pub type ImageBuilds = Result<Vec<Build>, Error>;

/// Every build version of the account's images, by image name (`only`: just that image). Listing the images fails
/// the whole call; listing one image's builds fails that image alone, and the others are still read: an image whose
/// builds were read only in part must not be planned at all (its newest build could be among the missing ones).
/// The build listings run `limit` at a time: one per image version, so an account with thousands of versions would
/// otherwise spend most of a Lambda timeout reading them one after another (`make bench-scale`).
pub async fn builds(
    client: &Client,
    region: &str,
    only: Option<&str>,
    limit: usize,
) -> Result<BTreeMap<String, ImageBuilds>, Error> {
    let mut versions = Vec::new();
    let mut pages = client.list_images().owner(Ownership::SelfValue).include_deprecated(true).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::new(region, "ListImages", &e))?;
        for v in page.image_version_list.unwrap_or_default() {
            if only.is_none_or(|name| v.name.as_deref() == Some(name))
                && let Some(arn) = v.arn
            {
                versions.push((v.name.unwrap_or_default(), arn));
            }
        }
    }
    // `buffered` keeps the listing order, so the plan sees the builds in the same order however the calls interleave.
    let listed: Vec<(String, ImageBuilds)> = futures_util::stream::iter(versions)
        .map(|(name, version_arn)| async move {
            let mut builds = Vec::new();
            let mut pages = client.list_image_build_versions().image_version_arn(&version_arn).into_paginator().send();
            while let Some(page) = pages.next().await {
                match page {
                    Ok(page) => builds.extend(page.image_summary_list.unwrap_or_default().iter().filter_map(to_build)),
                    Err(e) => {
                        return (name, Err(AwsError::new(version_arn.clone(), "ListImageBuildVersions", &e).into()));
                    }
                }
            }
            (name, Ok(builds))
        })
        .buffered(limit.max(1))
        .collect()
        .await;
    let mut out: BTreeMap<String, ImageBuilds> = BTreeMap::new();
    for (name, listed) in listed {
        match (out.entry(name).or_insert_with(|| Ok(Vec::new())), listed) {
            (Err(_), _) => {}
            (Ok(builds), Ok(more)) => builds.extend(more),
            (image, Err(e)) => *image = Err(e),
        }
    }
    Ok(out)
}

/// The status of one image build version, read from its version's listing (the permission the sweep already
/// has); `None` when the listing does not show it (gone, or not an image build version).
pub async fn status_of(client: &Client, build_arn: &str) -> Result<Option<BuildStatus>, Error> {
    let Some((version_arn, _)) = build_arn.rsplit_once('/') else { return Ok(None) };
    let mut pages = client.list_image_build_versions().image_version_arn(version_arn).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| AwsError::new(build_arn, "ListImageBuildVersions", &e))?;
        if let Some(found) =
            page.image_summary_list.unwrap_or_default().iter().find(|s| s.arn.as_deref() == Some(build_arn))
        {
            return Ok(to_build(found).map(|b| b.status));
        }
    }
    Ok(None)
}

fn exclusions(rules: &ExclusionRules) -> Result<ResourceStateUpdateExclusionRules, Error> {
    let amis = match &rules.amis {
        None => None,
        Some(a) => {
            let last = match &a.last_launched {
                None => None,
                Some(l) => Some(
                    LifecyclePolicyDetailExclusionRulesAmisLastLaunched::builder()
                        .unit(LifecyclePolicyTimeUnit::from(l.unit.as_str()))
                        .value(l.value as i32)
                        .build()
                        .map_err(|e| Error::Internal(format!("exclusionRules.amis.lastLaunched: {e}")))?,
                ),
            };
            Some(
                LifecyclePolicyDetailExclusionRulesAmis::builder()
                    .is_public(a.is_public)
                    .set_regions(a.regions.clone())
                    .set_shared_accounts(a.shared_accounts.clone())
                    .set_last_launched(last)
                    .set_tag_map(
                        a.tag_map
                            .as_ref()
                            .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<HashMap<_, _>>()),
                    )
                    .build(),
            )
        }
    };
    Ok(ResourceStateUpdateExclusionRules::builder().set_amis(amis).build())
}

/// Starts one update with `token` as its client token; returns the lifecycle execution id, or `None` when the
/// change applied at once (no resources and no schedule: no execution runs). A build version deleted since the
/// read is [`Error::Gone`]; one on which an execution already runs is [`Error::InUse`].
pub async fn start(client: &Client, u: &Update, token: &str, _: &Permit) -> Result<Option<String>, Error> {
    let include = u.include_resources.as_ref().map(|i| {
        ResourceStateUpdateIncludeResources::builder()
            .set_amis(i.amis)
            .set_snapshots(i.snapshots)
            .set_containers(i.containers)
            .build()
    });
    let update_at =
        u.update_at.map(|at| DateTime::from_nanos(at.unix_timestamp_nanos())).transpose().map_err(|e| {
            Error::Internal(format!("updateAt {:?} is outside what the SDK can send: {e}", u.update_at))
        })?;
    match client
        .start_resource_state_update()
        .resource_arn(&u.arn)
        .state(ResourceState::builder().status(ResourceStatus::from(u.status.as_str())).build())
        .set_update_at(update_at)
        .set_include_resources(include)
        .set_exclusion_rules(u.exclusion_rules.as_ref().map(exclusions).transpose()?)
        .set_execution_role(u.execution_role.clone())
        .client_token(token)
        .send()
        .await
    {
        Ok(out) => Ok(out.lifecycle_execution_id.filter(|id| !id.is_empty())),
        Err(e) => match e.as_service_error() {
            Some(StartResourceStateUpdateError::ResourceNotFoundException(_)) => {
                Err(Error::Gone { arn: u.arn.clone() })
            }
            Some(StartResourceStateUpdateError::ResourceInUseException(_)) => Err(Error::InUse { arn: u.arn.clone() }),
            _ => Err(AwsError::new(&u.arn, "StartResourceStateUpdate", &e).into()),
        },
    }
}

/// Whether anything will ask for a decision again when a build is busy with another lifecycle execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenInUse {
    /// The policy: the next sweep or build plans the build again, so it is skipped with the reason.
    Skip,
    /// An explicit request: nothing plans it again, so it fails as retryable (Lambda retries it, then the
    /// dead-letter queue keeps it) rather than being answered as done.
    Retry,
}

/// Starts the planned updates, `limit` at a time; each carries `client_token(event id, ARN, target status)`, so a
/// retried event replays at Image Builder instead of starting a second execution.
pub async fn apply(
    client: &Client,
    decisions: &[Decision],
    ctx: &Context,
    limit: usize,
    in_use: WhenInUse,
) -> Vec<Action> {
    let limit = Semaphore::new(limit);
    let work = decisions.iter().map(|d| {
        let limit = &limit;
        async move {
            let u = match &d.step {
                Step::Skip(why) => return crate::plan::kept(d, why),
                Step::Update(u) => u,
            };
            let (verb, change) = (u.status.verb().as_str(), d.change(u.status));
            // The time is part of the request: a deprecation now (a retry after updateAt passed) is not the one
            // scheduled, and must not meet the scheduled one's token at Image Builder as a parameter mismatch.
            let at = u.update_at.map(|t| t.unix_timestamp().to_string()).unwrap_or_default();
            // Not the status it changes from: Lambda's retry of a delivery whose first attempt applied reads another
            // status, and must still replay (a second execution, a delete reported gone). An answer from an earlier
            // attempt that was undone since is caught by the read-back below instead.
            let token = client_token(ctx.function, &[&ctx.token_seed, &u.arn, u.status.as_str(), &at]);
            let turn = limit.acquire().await;
            // Asked once the turn is had: with a low limit, a build may wait long for it.
            let may = match ctx.may_mutate() {
                Ok(may) => may,
                Err(Withheld::OutOfTime(e)) => return Action::failed(&d.arn, verb, &e),
                Err(Withheld::DryRun) => return crate::plan::planned(d),
            };
            let started = match turn {
                Ok(_turn) => start(client, u, &token, &may).await,
                Err(_) => Err(Error::Internal("the concurrency limit was closed while updates waited".into())),
            };
            // A request's change applied at once is read back: Image Builder answers a token it has seen from the
            // first update, and when that was undone since (a policy disabled what the request restored) the build
            // reads exactly as it did before this update. Then, and only then, it is sent once more under a token
            // of its own (a status someone else set in between is not fought).
            let mut again = false;
            let started = match started {
                Ok(None) if in_use == WhenInUse::Retry && u.update_at.is_none() => {
                    match status_of(client, &u.arn).await {
                        Ok(Some(now)) if Some(&now) == d.from.as_ref() && now != BuildStatus::Lifecycle(u.status) => {
                            tracing::info!(arn = %u.arn, found = %now, "answered from an earlier update that was undone; sent again");
                            again = true;
                            start(client, u, &client_token(ctx.function, &[&token, "again"]), &may).await
                        }
                        _ => Ok(None),
                    }
                }
                other => other,
            };
            let change = match again {
                true => format!("{change}; Image Builder answered from an earlier attempt whose change was undone since, so sent again"),
                false => change,
            };
            match started {
                Ok(Some(id)) => {
                    Action::new(&d.arn, verb, Outcome::Applied, format!("{change}; lifecycle execution {id}"))
                }
                Ok(None) => Action::new(
                    &d.arn,
                    verb,
                    Outcome::Applied,
                    format!("{change}; applied at once (no lifecycle execution)"),
                ),
                Err(Error::Gone { .. }) => Action::new(&d.arn, verb, Outcome::Skipped, "no such image build version"),
                Err(e @ Error::InUse { .. }) if in_use == WhenInUse::Skip => Action::new(
                    &d.arn,
                    verb,
                    Outcome::Skipped,
                    format!("{e}; the next run plans it again once that execution has ended"),
                ),
                Err(e) => Action::failed(&d.arn, verb, &e),
            }
        }
    });
    futures_util::future::join_all(work).await
}
