//! The Image Builder calls: list an account's (or one image's) build versions, and start one resource-state update.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_imagebuilder::Client;
use aws_sdk_imagebuilder::types::{
    ImageSummary, ImageType, LifecyclePolicyDetailExclusionRulesAmis,
    LifecyclePolicyDetailExclusionRulesAmisLastLaunched, LifecyclePolicyTimeUnit, Ownership, ResourceState,
    ResourceStateUpdateExclusionRules, ResourceStateUpdateIncludeResources, ResourceStatus,
};
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use shared::aws_error::describe;
use shared::error::Error;

use crate::config::{ExclusionRules, IncludeResources};
use crate::plan::Build;

fn to_build(s: &ImageSummary) -> Option<Build> {
    let arn = s.arn.clone()?;
    let mut parts = arn.split(":image/").nth(1)?.split('/').skip(1);
    let version = parts.next()?.split('.').map(|p| p.parse().ok()).collect::<Option<Vec<u64>>>()?;
    let build = parts.next()?.parse().ok()?;
    Some(Build {
        version,
        build,
        status: s
            .state
            .as_ref()
            .and_then(|st| st.status.as_ref())
            .map(|st| st.as_str().to_string())
            .unwrap_or_default(),
        created: s
            .date_created
            .as_deref()
            .and_then(|d| DateTime::from_str(d, Format::DateTime).ok())
            .map(|d| d.as_secs_f64()),
        tags: s.tags.clone().unwrap_or_default().into_iter().collect(),
        container: s.r#type == Some(ImageType::Docker),
        arn,
    })
}

/// Every build version of the account's images, by image name (`only`: just that image).
pub async fn builds(client: &Client, region: &str, only: Option<&str>) -> Result<BTreeMap<String, Vec<Build>>, Error> {
    let mut versions = Vec::new();
    let mut pages = client.list_images().owner(Ownership::SelfValue).include_deprecated(true).into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| Error::aws(region, describe("ListImages", &e)))?;
        for v in page.image_version_list.unwrap_or_default() {
            if only.is_none_or(|name| v.name.as_deref() == Some(name))
                && let Some(arn) = v.arn
            {
                versions.push((v.name.unwrap_or_default(), arn));
            }
        }
    }
    let mut out: BTreeMap<String, Vec<Build>> = BTreeMap::new();
    for (name, version_arn) in versions {
        let mut pages = client.list_image_build_versions().image_version_arn(&version_arn).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| Error::aws(&version_arn, describe("ListImageBuildVersions", &e)))?;
            out.entry(name.clone())
                .or_default()
                .extend(page.image_summary_list.unwrap_or_default().iter().filter_map(to_build));
        }
    }
    Ok(out)
}

/// What one StartResourceStateUpdate asks for.
#[derive(Debug, Clone, Default)]
pub struct Update<'a> {
    pub arn: &'a str,
    pub status: &'a str,
    pub update_at: Option<DateTime>,
    pub include: Option<&'a IncludeResources>,
    pub exclusions: Option<&'a ExclusionRules>,
    pub execution_role: Option<&'a str>,
    pub token: &'a str,
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
                        .map_err(|e| Error::invalid("exclusionRules.amis.lastLaunched", e.to_string()))?,
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

/// Starts one update; returns the lifecycle execution id.
pub async fn start(client: &Client, u: &Update<'_>) -> Result<String, Error> {
    let include = u.include.map(|i| {
        ResourceStateUpdateIncludeResources::builder()
            .set_amis(i.amis)
            .set_snapshots(i.snapshots)
            .set_containers(i.containers)
            .build()
    });
    let out = client
        .start_resource_state_update()
        .resource_arn(u.arn)
        .state(ResourceState::builder().status(ResourceStatus::from(u.status)).build())
        .set_update_at(u.update_at)
        .set_include_resources(include)
        .set_exclusion_rules(u.exclusions.map(exclusions).transpose()?)
        .set_execution_role(u.execution_role.map(String::from))
        .client_token(u.token)
        .send()
        .await
        .map_err(|e| Error::aws(u.arn, describe("StartResourceStateUpdate", &e)))?;
    Ok(out.lifecycle_execution_id.unwrap_or_default())
}
