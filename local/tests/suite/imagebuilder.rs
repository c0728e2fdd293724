//! Image Builder conformance: the real aws-sdk-imagebuilder against the emulator. Success shapes round-trip every
//! member; modeled errors arrive as the SDK's typed variants; bad input changes nothing.

use crate::support;

use aws_sdk_imagebuilder::Client;
use aws_sdk_imagebuilder::operation::start_resource_state_update::StartResourceStateUpdateError;
use aws_sdk_imagebuilder::operation::update_distribution_configuration::UpdateDistributionConfigurationError;
use aws_sdk_imagebuilder::primitives::DateTime;
use aws_sdk_imagebuilder::types::*;
use serde_json::json;
use support::*;

const ACCOUNT: &str = "123456789012";
const DIST_ARN: &str = "arn:aws:imagebuilder:us-east-1:123456789012:distribution-configuration/web";

fn image_arn(version: &str, build: u32) -> String {
    format!("arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/web/{version}/{build}")
}

/// A distribution with every member of the pinned SDK set.
fn maximal_distribution(region: &str) -> Distribution {
    Distribution::builder()
        .region(region)
        .ami_distribution_configuration(
            AmiDistributionConfiguration::builder()
                .name("web-{{ imagebuilder:buildDate }}")
                .description("golden web image")
                .target_account_ids("210987654321")
                .ami_tags("team", "web")
                .kms_key_id("arn:aws:kms:us-east-1:123456789012:key/abcd")
                .launch_permission(
                    LaunchPermissionConfiguration::builder()
                        .user_ids("111122223333")
                        .user_groups("all")
                        .organization_arns("arn:aws:organizations::123456789012:organization/o-abcdefghij")
                        .organizational_unit_arns(
                            "arn:aws:organizations::123456789012:ou/o-abcdefghij/ou-ab12-cdefgh34",
                        )
                        .build(),
                )
                .build(),
        )
        .container_distribution_configuration(
            ContainerDistributionConfiguration::builder()
                .description("web container")
                .container_tags("latest")
                .target_repository(
                    TargetContainerRepository::builder()
                        .service(ContainerRepositoryService::Ecr)
                        .repository_name("web")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .license_configuration_arns(
            "arn:aws:license-manager:us-east-1:123456789012:license-configuration:lic-0123456789abcdef0123456789abcdef",
        )
        .launch_template_configurations(
            LaunchTemplateConfiguration::builder()
                .launch_template_id("lt-0123456789abcdef0")
                .account_id(ACCOUNT)
                .set_default_version(true)
                .build()
                .unwrap(),
        )
        .s3_export_configuration(
            S3ExportConfiguration::builder()
                .role_name("vmimport")
                .disk_image_format(DiskImageFormat::Vmdk)
                .s3_bucket("exports")
                .s3_prefix("web/")
                .build()
                .unwrap(),
        )
        .fast_launch_configurations(
            FastLaunchConfiguration::builder()
                .enabled(true)
                .snapshot_configuration(FastLaunchSnapshotConfiguration::builder().target_resource_count(5).build())
                .max_parallel_launches(6)
                .launch_template(
                    FastLaunchLaunchTemplateSpecification::builder()
                        .launch_template_id("lt-0123456789abcdef0")
                        .launch_template_version("3")
                        .build(),
                )
                .account_id(ACCOUNT)
                .build(),
        )
        .ssm_parameter_configurations(
            SsmParameterConfiguration::builder()
                .ami_account_id(ACCOUNT)
                .parameter_name("/golden/web")
                .data_type(SsmParameterDataType::AwsEc2Image)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

async fn client(running: &local::Running) -> Client {
    Client::new(&sdk(running, "us-east-1").await)
}

async fn create_web(client: &Client, distributions: Vec<Distribution>) -> String {
    client
        .create_distribution_configuration()
        .name("web")
        .description("web images")
        .set_distributions(Some(distributions))
        .tags("env", "prod")
        .client_token("create-web-1")
        .send()
        .await
        .expect("create")
        .distribution_configuration_arn
        .expect("arn")
}

#[tokio::test]
async fn given_maximal_distributions_when_created_and_read_then_every_member_round_trips() {
    let running = emulator(json!({})).await;
    let client = client(&running).await;
    let sent = vec![maximal_distribution("us-east-1"), maximal_distribution("eu-west-1")];
    let arn = create_web(&client, sent.clone()).await;
    assert_eq!(arn, DIST_ARN);
    let got = client.get_distribution_configuration().distribution_configuration_arn(&arn).send().await.unwrap();
    assert!(got.request_id.is_some(), "requestId is in every Image Builder response");
    let config = got.distribution_configuration.unwrap();
    assert_eq!(config.distributions.as_deref(), Some(sent.as_slice()));
    assert_eq!(config.description.as_deref(), Some("web images"));
    assert_eq!(config.name.as_deref(), Some("web"));
    assert_eq!(config.timeout_minutes, 720);
    assert!(config.date_created.is_some());
    assert_eq!(config.tags.unwrap().get("env").map(String::as_str), Some("prod"));
}

#[tokio::test]
async fn given_configuration_when_updated_then_distributions_replaced_description_as_sent_and_date_updated() {
    let running = emulator(json!({})).await;
    let client = client(&running).await;
    let arn = create_web(&client, vec![maximal_distribution("us-east-1")]).await;
    let new = vec![maximal_distribution("us-east-1"), Distribution::builder().region("ap-south-1").build().unwrap()];
    let out = client
        .update_distribution_configuration()
        .distribution_configuration_arn(&arn)
        .set_distributions(Some(new.clone()))
        .client_token("update-1")
        .send()
        .await
        .unwrap();
    assert_eq!(out.distribution_configuration_arn.as_deref(), Some(arn.as_str()));
    assert_eq!(out.client_token.as_deref(), Some("update-1"));
    let config = client
        .get_distribution_configuration()
        .distribution_configuration_arn(&arn)
        .send()
        .await
        .unwrap()
        .distribution_configuration
        .unwrap();
    assert_eq!(config.distributions.as_deref(), Some(new.as_slice()));
    assert_eq!(config.description, None, "an update without a description removes it");
    assert!(config.date_updated.is_some());
}

#[tokio::test]
async fn given_client_token_when_resent_then_replayed_without_second_effect_and_other_parameters_are_a_mismatch() {
    let running = emulator(json!({})).await;
    let client = client(&running).await;
    let arn = create_web(&client, vec![maximal_distribution("us-east-1")]).await;
    let update = |region: &'static str| {
        client
            .update_distribution_configuration()
            .distribution_configuration_arn(&arn)
            .description("v2")
            .distributions(Distribution::builder().region(region).build().unwrap())
            .client_token("token-1")
            .send()
    };
    update("us-east-1").await.unwrap();
    let after_first = running.emulator.dump();
    update("us-east-1").await.expect("same token, same parameters: the original response");
    assert_eq!(running.emulator.dump(), after_first, "a replay changes nothing, not even dateUpdated");
    let err = update("eu-west-1").await.unwrap_err().into_service_error();
    assert!(matches!(err, UpdateDistributionConfigurationError::IdempotentParameterMismatchException(_)), "{err:?}");
    assert_eq!(running.emulator.dump(), after_first);
}

#[tokio::test]
async fn given_invalid_updates_when_sent_then_typed_errors_naming_the_member_and_no_change() {
    let running = emulator(json!({})).await;
    let client = client(&running).await;
    let arn = create_web(&client, vec![maximal_distribution("us-east-1")]).await;
    let before = running.emulator.dump();
    let base =
        || client.update_distribution_configuration().distribution_configuration_arn(&arn).client_token(uuid_token());
    let region = |r: &str| Distribution::builder().region(r).build().unwrap();
    let cases = vec![
        (
            "bad ARN",
            client
                .update_distribution_configuration()
                .distribution_configuration_arn("arn:aws:imagebuilder:us-east-1:123:distribution-configuration/WEB")
                .distributions(region("us-east-1"))
                .client_token("t1"),
            "distributionConfigurationArn",
        ),
        (
            "description too long",
            base().description("x".repeat(1025)).distributions(region("us-east-1")),
            "at 'description'",
        ),
        ("distributions missing", base(), "at 'distributions' failed to satisfy constraint: Member must not be null"),
        (
            "unknown enum",
            base().distributions(
                Distribution::builder()
                    .region("us-east-1")
                    .s3_export_configuration(
                        S3ExportConfiguration::builder()
                            .role_name("r")
                            .disk_image_format(DiskImageFormat::from("ISO"))
                            .s3_bucket("b")
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            ),
            "Value 'ISO' at",
        ),
        (
            "launch template id",
            base().distributions(
                Distribution::builder()
                    .region("us-east-1")
                    .launch_template_configurations(
                        LaunchTemplateConfiguration::builder().launch_template_id("lt-short").build().unwrap(),
                    )
                    .build()
                    .unwrap(),
            ),
            "launchTemplateConfigurations.1.launchTemplateId",
        ),
        (
            "token too long",
            client
                .update_distribution_configuration()
                .distribution_configuration_arn(&arn)
                .distributions(region("us-east-1"))
                .client_token("t".repeat(65)),
            "clientToken",
        ),
    ];
    for (what, request, expected) in cases {
        let err = request.send().await.unwrap_err().into_service_error();
        let UpdateDistributionConfigurationError::InvalidRequestException(e) = &err else { panic!("{what}: {err:?}") };
        assert!(e.message().unwrap_or_default().contains(expected), "{what}: {:?}", e.message());
    }
    let err = base()
        .distributions(region("us-east-1"))
        .distributions(region("us-east-1"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, UpdateDistributionConfigurationError::InvalidParameterCombinationException(_)), "{err:?}");
    let err = client
        .update_distribution_configuration()
        .distribution_configuration_arn("arn:aws:imagebuilder:us-east-1:123456789012:distribution-configuration/none")
        .distributions(region("us-east-1"))
        .client_token("t9")
        .send()
        .await
        .unwrap_err();
    assert_eq!(aws_sdk_imagebuilder::error::ProvideErrorMetadata::code(&err), Some("ResourceNotFoundException"));
    assert_eq!(running.emulator.dump(), before, "no invalid request changed anything");
}

fn uuid_token() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[tokio::test]
async fn given_many_configurations_when_listed_then_pages_cover_all_once() {
    let running = emulator(json!({})).await;
    let client = client(&running).await;
    for i in 0..7 {
        client
            .create_distribution_configuration()
            .name(format!("cfg-{i}"))
            .distributions(Distribution::builder().region("us-east-1").build().unwrap())
            .client_token(format!("c{i}"))
            .send()
            .await
            .unwrap();
    }
    let mut names = Vec::new();
    let mut pages = client.list_distribution_configurations().max_results(3).into_paginator().send();
    let mut count = 0;
    while let Some(page) = pages.next().await {
        count += 1;
        for s in page.unwrap().distribution_configuration_summary_list.unwrap_or_default() {
            assert_eq!(s.regions.as_deref(), Some(&["us-east-1".to_string()][..]));
            names.push(s.name.unwrap());
        }
    }
    assert_eq!(count, 3);
    assert_eq!(names, (0..7).map(|i| format!("cfg-{i}")).collect::<Vec<_>>());
}

/// Longer than image_seed's executions take: a sleep lasts at least this long, however loaded the machine.
const EXECUTION_DONE: std::time::Duration = std::time::Duration::from_millis(1100);

fn image_seed() -> serde_json::Value {
    let mut images = serde_json::Map::new();
    for (version, build, status) in [
        ("1.0.0", 1, "DEPRECATED"),
        ("1.0.0", 2, "AVAILABLE"),
        ("1.2.0", 3, "AVAILABLE"),
        ("1.2.0", 4, "AVAILABLE"),
        ("1.10.0", 1, "FAILED"),
    ] {
        images.insert(
            image_arn(version, build),
            json!({"state": {"status": status}, "dateCreated": "2026-01-01T00:00:00.000Z"}),
        );
    }
    // Executions run a second: long enough that a loaded machine still reads IN_PROGRESS right after a start,
    // short enough to wait out (EXECUTION_DONE) when a test needs the result.
    json!({"timing": {"lifecycleMillis": 1000}, "regions": {"us-east-1": {"images": images}}})
}

#[tokio::test]
async fn given_seeded_images_when_listed_then_versions_and_build_versions_in_semantic_order() {
    let running = emulator(image_seed()).await;
    let client = client(&running).await;
    let versions = client
        .list_images()
        .owner(Ownership::SelfValue)
        .include_deprecated(true)
        .send()
        .await
        .unwrap()
        .image_version_list
        .unwrap();
    let arns: Vec<String> = versions.iter().map(|v| v.arn.clone().unwrap()).collect();
    let base = format!("arn:aws:imagebuilder:us-east-1:{ACCOUNT}:image/web");
    assert_eq!(arns, vec![format!("{base}/1.0.0"), format!("{base}/1.2.0"), format!("{base}/1.10.0")]);
    let builds = client
        .list_image_build_versions()
        .image_version_arn(format!("{base}/1.2.0"))
        .max_results(1)
        .into_paginator()
        .items()
        .send()
        .collect::<Vec<_>>()
        .await;
    let builds: Vec<ImageSummary> = builds.into_iter().map(Result::unwrap).collect();
    assert_eq!(builds.iter().map(|b| b.version.clone().unwrap()).collect::<Vec<_>>(), vec!["1.2.0/3", "1.2.0/4"]);
    assert_eq!(builds[0].state.as_ref().and_then(|s| s.status.clone()), Some(ImageStatus::Available));
    assert_eq!(builds[0].r#type, Some(ImageType::Ami));
    let unknown = client.list_image_build_versions().image_version_arn(format!("{base}/9.9.9")).send().await.unwrap();
    assert!(unknown.image_summary_list.unwrap_or_default().is_empty());
    let image = client.get_image().image_build_version_arn(image_arn("1.10.0", 1)).send().await.unwrap().image.unwrap();
    assert_eq!(image.state.unwrap().status, Some(ImageStatus::Failed));
    let err = client.get_image().image_build_version_arn(image_arn("7.0.0", 1)).send().await.unwrap_err();
    assert_eq!(aws_sdk_imagebuilder::error::ProvideErrorMetadata::code(&err), Some("ResourceNotFoundException"));
}

#[tokio::test]
async fn given_a_deprecation_scheduled_far_ahead_when_started_then_an_execution_runs_and_the_record_waits_for_update_at()
 {
    let running = emulator(image_seed()).await;
    let client = client(&running).await;
    let arn = image_arn("1.2.0", 3);
    let at = DateTime::from_secs(4_102_444_800); // 2100-01-01
    let start = || {
        client
            .start_resource_state_update()
            .resource_arn(&arn)
            .state(ResourceState::builder().status(ResourceStatus::Deprecated).build())
            .update_at(at)
            .client_token("dep-1")
            .send()
    };
    let out = start().await.unwrap();
    let id = out.lifecycle_execution_id.unwrap();
    assert!(regex_lite_match(&id), "{id}");
    assert_eq!(out.resource_arn.as_deref(), Some(arn.as_str()));
    assert_eq!(start().await.unwrap().lifecycle_execution_id.as_deref(), Some(id.as_str()), "the same token replays");
    let err = client
        .start_resource_state_update()
        .resource_arn(&arn)
        .state(ResourceState::builder().status(ResourceStatus::Disabled).build())
        .client_token("dis-1")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, StartResourceStateUpdateError::ResourceInUseException(_)), "{err:?}");
    let execution =
        client.get_lifecycle_execution().lifecycle_execution_id(&id).send().await.unwrap().lifecycle_execution.unwrap();
    assert_eq!(execution.state.unwrap().status, Some(LifecycleExecutionStatus::InProgress));
    tokio::time::sleep(EXECUTION_DONE).await;
    let listed =
        client.list_lifecycle_executions().resource_arn(&arn).send().await.unwrap().lifecycle_executions.unwrap();
    assert_eq!(listed.len(), 1, "one execution, whatever the replays");
    assert_eq!(listed[0].state.as_ref().unwrap().status, Some(LifecycleExecutionStatus::Success));
    let image = client.get_image().image_build_version_arn(&arn).send().await.unwrap().image.unwrap();
    // The AMIs carry their deprecation time at once; the image record becomes DEPRECATED at updateAt, in 2100.
    assert_eq!(image.state.unwrap().status, Some(ImageStatus::Available));
    assert_eq!(image.deprecation_time, Some(at));
    assert_eq!(image.lifecycle_execution_id.as_deref(), Some(id.as_str()));
}

#[tokio::test]
async fn given_a_deprecation_scheduled_shortly_when_update_at_passes_then_the_record_is_deprecated() {
    let running = emulator(image_seed()).await;
    let client = client(&running).await;
    let arn = image_arn("1.2.0", 3);
    // After the execution's second (image_seed): the record changes at updateAt, once the execution has run.
    let at_ms = local::clock::now_ms() + 1500;
    let at = DateTime::from_millis(at_ms);
    client
        .start_resource_state_update()
        .resource_arn(&arn)
        .state(ResourceState::builder().status(ResourceStatus::Deprecated).build())
        .update_at(at)
        .client_token("dep-soon")
        .send()
        .await
        .unwrap();
    let status = || async {
        client.get_image().image_build_version_arn(&arn).send().await.unwrap().image.unwrap().state.unwrap().status
    };
    assert_eq!(status().await, Some(ImageStatus::Available), "not before updateAt");
    while local::clock::now_ms() <= at_ms + 50 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status().await, Some(ImageStatus::Deprecated), "at updateAt");
}

#[tokio::test]
async fn given_a_change_without_resources_or_schedule_when_started_then_it_applies_at_once_without_an_execution() {
    let running = emulator(image_seed()).await;
    let client = client(&running).await;
    let arn = image_arn("1.2.0", 3);
    let out = client
        .start_resource_state_update()
        .resource_arn(&arn)
        .state(ResourceState::builder().status(ResourceStatus::Disabled).build())
        .client_token("dis-now")
        .send()
        .await
        .unwrap();
    assert_eq!(out.lifecycle_execution_id, None, "no execution runs for a change of the record alone");
    let image = client.get_image().image_build_version_arn(&arn).send().await.unwrap().image.unwrap();
    assert_eq!(image.state.unwrap().status, Some(ImageStatus::Disabled));
    let listed = client.list_lifecycle_executions().resource_arn(&arn).send().await.unwrap();
    assert!(listed.lifecycle_executions.unwrap_or_default().is_empty());
    // The next change is not refused as in use: nothing is running.
    client
        .start_resource_state_update()
        .resource_arn(&arn)
        .state(ResourceState::builder().status(ResourceStatus::Available).build())
        .client_token("restore-now")
        .send()
        .await
        .expect("no execution in progress");
}

#[tokio::test]
async fn given_deletions_when_started_then_resources_are_required_and_exclusions_keep_the_record() {
    let running = emulator(image_seed()).await;
    let client = client(&running).await;
    let delete = |arn: String, token: &str| {
        client
            .start_resource_state_update()
            .resource_arn(arn)
            .state(ResourceState::builder().status(ResourceStatus::Deleted).build())
            .client_token(token)
    };
    let err = delete(image_arn("1.0.0", 1), "del-0").send().await.unwrap_err().into_service_error();
    let StartResourceStateUpdateError::InvalidRequestException(e) = &err else { panic!("{err:?}") };
    assert!(e.message().unwrap_or_default().contains("includeResources"), "{:?}", e.message());
    let role = "arn:aws:iam::123456789012:role/lifecycle";
    let amis = ResourceStateUpdateIncludeResources::builder().amis(true).build();
    delete(image_arn("1.0.0", 1), "del-1").execution_role(role).include_resources(amis.clone()).send().await.unwrap();
    let public = ResourceStateUpdateExclusionRules::builder()
        .amis(LifecyclePolicyDetailExclusionRulesAmis::builder().is_public(true).build())
        .build();
    delete(image_arn("1.2.0", 4), "del-2")
        .execution_role(role)
        .include_resources(amis)
        .exclusion_rules(public)
        .send()
        .await
        .unwrap();
    tokio::time::sleep(EXECUTION_DONE).await;
    let status = |arn: String| async {
        client.get_image().image_build_version_arn(arn).send().await.unwrap().image.unwrap().state.unwrap().status
    };
    assert_eq!(status(image_arn("1.0.0", 1)).await, Some(ImageStatus::Deleted));
    assert_eq!(status(image_arn("1.2.0", 4)).await, Some(ImageStatus::Available), "an excluded AMI keeps the record");
}

fn regex_lite_match(id: &str) -> bool {
    id.len() == 40 && id.starts_with("lce-") && uuid::Uuid::parse_str(&id[4..]).is_ok()
}

#[tokio::test]
async fn given_documented_rule_violations_when_updating_state_then_invalid_request_and_no_execution() {
    let running = emulator(image_seed()).await;
    let client = client(&running).await;
    let before = running.emulator.dump();
    let status = |s: ResourceStatus| ResourceState::builder().status(s).build();
    let past = DateTime::from_secs(1_000_000_000);
    let future = DateTime::from_secs(4_102_444_800);
    let role = "arn:aws:iam::123456789012:role/lifecycle";
    let amis_only = ResourceStateUpdateIncludeResources::builder().amis(true).build();
    let with_snapshots = ResourceStateUpdateIncludeResources::builder().amis(true).snapshots(true).build();
    let no_amis = ResourceStateUpdateIncludeResources::builder().snapshots(true).build();
    let rules = |value: i32| {
        ResourceStateUpdateExclusionRules::builder()
            .amis(
                LifecyclePolicyDetailExclusionRulesAmis::builder()
                    .last_launched(
                        LifecyclePolicyDetailExclusionRulesAmisLastLaunched::builder()
                            .unit(LifecyclePolicyTimeUnit::Days)
                            .value(value)
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .build()
    };
    let req = |arn: String| client.start_resource_state_update().resource_arn(arn).client_token(uuid_token());
    let cases = vec![
        (
            "FAILED only to DELETED",
            req(image_arn("1.10.0", 1)).state(status(ResourceStatus::Deprecated)),
            "can only be DELETED",
        ),
        (
            "updateAt only with DEPRECATED",
            req(image_arn("1.2.0", 3)).state(status(ResourceStatus::Disabled)).update_at(future),
            "updateAt is only valid with state DEPRECATED",
        ),
        (
            "updateAt in the future",
            req(image_arn("1.2.0", 3)).state(status(ResourceStatus::Deprecated)).update_at(past),
            "updateAt must be in the future",
        ),
        (
            "role without resources",
            req(image_arn("1.2.0", 3)).state(status(ResourceStatus::Deleted)).execution_role(role),
            "given together",
        ),
        (
            "resources without role",
            req(image_arn("1.2.0", 3)).state(status(ResourceStatus::Deleted)).include_resources(amis_only.clone()),
            "given together",
        ),
        (
            "snapshots only with DELETED",
            req(image_arn("1.2.0", 3))
                .state(status(ResourceStatus::Disabled))
                .execution_role(role)
                .include_resources(with_snapshots),
            "only valid with state DELETED",
        ),
        (
            "exclusions need amis",
            req(image_arn("1.2.0", 3))
                .state(status(ResourceStatus::Deleted))
                .execution_role(role)
                .include_resources(no_amis)
                .exclusion_rules(rules(30)),
            "only when includeResources.amis",
        ),
        (
            "lastLaunched 1-365",
            req(image_arn("1.2.0", 3))
                .state(status(ResourceStatus::Deleted))
                .execution_role(role)
                .include_resources(amis_only.clone())
                .exclusion_rules(rules(400)),
            "lastLaunched.value",
        ),
        (
            "unknown status",
            req(image_arn("1.2.0", 3)).state(status(ResourceStatus::from("ARCHIVED"))),
            "Value 'ARCHIVED' at 'state.status'",
        ),
        (
            "bad ARN",
            req("arn:aws:imagebuilder:us-east-1:123456789012:image/web/1.2.0".into())
                .state(status(ResourceStatus::Deprecated)),
            "resourceArn",
        ),
    ];
    for (what, request, expected) in cases {
        let err = request.send().await.unwrap_err().into_service_error();
        let StartResourceStateUpdateError::InvalidRequestException(e) = &err else { panic!("{what}: {err:?}") };
        assert!(e.message().unwrap_or_default().contains(expected), "{what}: {:?}", e.message());
    }
    let err = req(image_arn("5.0.0", 1))
        .state(status(ResourceStatus::Deprecated))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, StartResourceStateUpdateError::ResourceNotFoundException(_)), "{err:?}");
    assert_eq!(running.emulator.dump(), before);
    assert!(calls_of(&running, "StartResourceStateUpdate").iter().all(|c| !c.ok()));
}

#[tokio::test]
async fn given_rate_limit_fault_when_called_then_429_arrives_typed() {
    let running = emulator(image_seed()).await;
    running.emulator.add_fault(local::FaultRule {
        service: Some("imagebuilder".into()),
        count: Some(2),
        ..local::FaultRule::error("GetImage", "CallRateLimitExceededException")
    });
    let plain = client(&running).await;
    let err = plain.get_image().image_build_version_arn(image_arn("1.2.0", 3)).send().await.unwrap_err();
    let raw = err.raw_response().map(|r| r.status().as_u16());
    assert_eq!(raw, Some(429));
    assert!(matches!(
        err.into_service_error(),
        aws_sdk_imagebuilder::operation::get_image::GetImageError::CallRateLimitExceededException(_)
    ));
    let err = plain.get_image().image_build_version_arn(image_arn("1.2.0", 3)).send().await.unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(429), "the second injected fault");
    plain.get_image().image_build_version_arn(image_arn("1.2.0", 3)).send().await.expect("the faults are spent");
    let outcomes: Vec<String> = calls_of(&running, "GetImage").into_iter().map(|c| c.outcome).collect();
    assert_eq!(outcomes, vec!["CallRateLimitExceededException", "CallRateLimitExceededException", "ok"]);
}

#[tokio::test]
async fn given_unknown_route_when_called_then_unknown_operation_error_not_a_panic() {
    let running = emulator(json!({})).await;
    // Signed like the SDK, to a route Image Builder does not have.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(running.addr).await.unwrap();
    let request = "POST /DeleteEverything HTTP/1.1\r\nhost: x\r\nauthorization: AWS4-HMAC-SHA256 Credential=AKIDKEEPERLOCAL/20261121/us-east-1/imagebuilder/aws4_request, SignedHeaders=host, Signature=x\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    assert!(response.to_ascii_lowercase().contains("x-amzn-errortype: unknownoperationexception"), "{response}");
    assert!(response.to_ascii_lowercase().contains("x-amzn-requestid"), "{response}");
}

#[tokio::test]
async fn given_list_filters_when_listed_then_applied_and_an_undocumented_filter_name_is_refused() {
    let mut seed = image_seed();
    seed["regions"]["us-east-1"]["images"]
        .as_object_mut()
        .unwrap()
        .insert("arn:aws:imagebuilder:us-east-1:123456789012:image/api/2.0.0/1".into(), json!({}));
    let running = emulator(seed).await;
    let client = client(&running).await;
    let filter = |name: &str, value: &str| Filter::builder().name(name).values(value).build();
    // WHEN filtered by name and by semantic version THEN only those builds come back.
    let api = client.list_image_build_versions().filters(filter("name", "api")).send().await.unwrap();
    let names: Vec<String> = api.image_summary_list.unwrap().iter().map(|s| s.name.clone().unwrap()).collect();
    assert_eq!(names, vec!["api"]);
    let builds = client.list_image_build_versions().filters(filter("version", "1.2.0")).send().await.unwrap();
    let versions: Vec<String> = builds.image_summary_list.unwrap().iter().map(|s| s.version.clone().unwrap()).collect();
    assert_eq!(versions, vec!["1.2.0/3", "1.2.0/4"]);
    let listed = client.list_images().filters(filter("name", "web")).include_deprecated(true).send().await.unwrap();
    assert_eq!(listed.image_version_list.unwrap().len(), 3, "the three web versions, not api");
    // WHEN a filter name the operation does not document is sent THEN InvalidRequestException names it.
    let err = client.list_images().filters(filter("colour", "blue")).send().await.unwrap_err().into_service_error();
    assert!(err.meta().message().unwrap_or_default().contains("filters.1.name `colour`"), "{err:?}");
    // AND the model's own bounds hold: more than 10 values is refused before any filtering.
    let many = (0..11).fold(Filter::builder().name("name"), |b, i| b.values(format!("v{i}"))).build();
    let err = client.list_images().filters(many).send().await.unwrap_err().into_service_error();
    assert!(err.meta().message().unwrap_or_default().contains("at 'filters.1.values'"), "{err:?}");
    let created = client
        .create_distribution_configuration()
        .name("other")
        .distributions(Distribution::builder().region("us-east-1").build().unwrap())
        .client_token("t-other")
        .send()
        .await;
    created.unwrap();
    create_web(&client, vec![Distribution::builder().region("us-east-1").build().unwrap()]).await;
    let configs = client.list_distribution_configurations().filters(filter("name", "web")).send().await.unwrap();
    let names: Vec<String> =
        configs.distribution_configuration_summary_list.unwrap().iter().map(|c| c.name.clone().unwrap()).collect();
    assert_eq!(names, vec!["web"]);
}

#[tokio::test]
async fn given_dry_run_when_creating_a_configuration_then_dry_run_error_and_nothing_created() {
    let running = emulator(json!({})).await;
    let client = client(&running).await;
    let before = running.emulator.dump();
    let err = client
        .create_distribution_configuration()
        .name("web")
        .distributions(Distribution::builder().region("us-east-1").build().unwrap())
        .client_token("t-dry")
        .dry_run(true)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(err.is_dry_run_operation_exception(), "{err:?}");
    let after = running.emulator.dump();
    assert!(
        after["regions"]["us-east-1"]["distributionConfigurations"].is_null(),
        "a dry run creates nothing: {after}"
    );
    assert_eq!(before["cloudfront"], after["cloudfront"]);
    // AND the same token without the dry run creates it: the dry run did not consume the token.
    client
        .create_distribution_configuration()
        .name("web")
        .distributions(Distribution::builder().region("us-east-1").build().unwrap())
        .client_token("t-dry")
        .send()
        .await
        .unwrap();
    assert_eq!(
        client
            .list_distribution_configurations()
            .send()
            .await
            .unwrap()
            .distribution_configuration_summary_list
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn given_a_state_without_status_when_updating_then_accepted_as_the_model_allows_and_nothing_moves() {
    let running = emulator(image_seed()).await;
    let client = client(&running).await;
    let before = running.emulator.dump();
    let out = client
        .start_resource_state_update()
        .resource_arn(image_arn("1.2.0", 3))
        .state(ResourceState::builder().build())
        .client_token("t-empty")
        .send()
        .await
        .unwrap();
    assert_eq!(out.lifecycle_execution_id, None);
    let mut after = running.emulator.dump();
    after.as_object_mut().unwrap().remove("lifecycleExecutions");
    assert_eq!(after, before, "no execution, no state change");
}
