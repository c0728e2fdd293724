//! update-distribution-regions end to end: the handler, through the real Image Builder and S3 SDKs, against a
//! maximal seeded configuration. The emulator's stored JSON is compared whole: nothing but the planned change may move.

use std::sync::Arc;

use serde_json::{Value, json};
use shared::config::Lookup;
use shared::report::Outcome;
use testbed::emulator::{calls, fast_settings, sdk_config, start};
use testbed::guard::Guarded;
use update_distribution_regions::UpdateDistributionRegions;

const ARN: &str = "arn:aws:imagebuilder:us-east-1:123456789012:distribution-configuration/web-golden";
const ACCOUNT: &str = "123456789012";
/// The configurations the function may change in these tests (`DISTRIBUTION_CONFIGURATION_ARNS`).
const ALLOWED: &str = "arn:aws:imagebuilder:us-east-1:123456789012:distribution-configuration/web-golden,arn:aws:imagebuilder:us-east-1:123456789012:distribution-configuration/api-golden,arn:aws:imagebuilder:us-east-1:123456789012:distribution-configuration/deleted-meanwhile";

/// A distribution with every member the pinned SDK knows, set explicitly.
fn maximal(region: &str) -> Value {
    json!({
        "region": region,
        "amiDistributionConfiguration": {
            "name": "web-{{ imagebuilder:buildDate }}", "description": format!("golden web image ({region})"),
            "targetAccountIds": ["210987654321"], "amiTags": {"team": "web", "region": region},
            "kmsKeyId": format!("arn:aws:kms:{region}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
            "launchPermission": {"userIds": ["111122223333"], "userGroups": ["all"],
                "organizationArns": [format!("arn:aws:organizations::{ACCOUNT}:organization/o-abcdefghij")],
                "organizationalUnitArns": [format!("arn:aws:organizations::{ACCOUNT}:ou/o-abcdefghij/ou-ab12-cdefgh34")]}
        },
        "containerDistributionConfiguration": {"description": "web container", "containerTags": ["latest", "golden"],
            "targetRepository": {"service": "ECR", "repositoryName": "web"}},
        "licenseConfigurationArns": [format!("arn:aws:license-manager:{region}:{ACCOUNT}:license-configuration:lic-0123456789abcdef0123456789abcdef")],
        "launchTemplateConfigurations": [{"launchTemplateId": "lt-0123456789abcdef0", "accountId": ACCOUNT, "setDefaultVersion": true}],
        "s3ExportConfiguration": {"roleName": "vmimport", "diskImageFormat": "VMDK", "s3Bucket": "exports", "s3Prefix": "web/"},
        "fastLaunchConfigurations": [{"enabled": true, "snapshotConfiguration": {"targetResourceCount": 5}, "maxParallelLaunches": 6,
            "launchTemplate": {"launchTemplateId": "lt-0fedcba9876543210", "launchTemplateName": "fast", "launchTemplateVersion": "3"},
            "accountId": ACCOUNT}],
        "ssmParameterConfigurations": [{"amiAccountId": ACCOUNT, "parameterName": "/golden/web/latest", "dataType": "aws:ec2:image"}]
    })
}

fn seed(extra: Value) -> Value {
    let mut seed = json!({
        "regions": {"us-east-1": {"distributionConfigurations": {ARN: {
            "name": "web-golden", "description": "Golden web AMI", "tags": {"team": "web"},
            "distributions": [maximal("us-east-1"), maximal("eu-west-1"), maximal("ap-south-1")]
        }}}},
        "s3": {"keeper-desired-state-123456789012-us-east-1": {"regions.json": json!({"distributionConfigurations": [
            {"arn": ARN, "regions": ["us-east-1", "eu-west-1", "eu-central-1"]}
        ]}).to_string()}}
    });
    if let (Some(s), Some(e)) = (seed.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    seed
}

async fn function(
    running: &local::Running,
    max_attempts: u32,
    extra: &[(&str, &str)],
) -> Guarded<UpdateDistributionRegions> {
    let attempts = max_attempts.to_string();
    let mut pairs = vec![
        ("MAX_ATTEMPTS", attempts.as_str()),
        ("RETRY_INITIAL_BACKOFF_MS", "1"),
        ("DISTRIBUTION_CONFIGURATION_ARNS", ALLOWED),
    ];
    pairs.extend_from_slice(extra);
    let sdk = sdk_config(running, "us-east-1", &fast_settings(max_attempts)).await;
    testbed::guard::host(&sdk, &Lookup::from_pairs(&pairs)).await
}

fn stored(running: &local::Running) -> Value {
    running.emulator.dump()["regions"]["us-east-1"]["distributionConfigurations"][ARN].clone()
}

/// The configuration without `dateUpdated`, which every real update sets.
fn without_date(mut config: Value) -> Value {
    config.as_object_mut().map(|o| o.remove("dateUpdated"));
    config
}

fn updates(running: &local::Running) -> usize {
    calls(running, "UpdateDistributionConfiguration").len()
}

#[tokio::test]
async fn given_maximal_configuration_when_a_region_is_added_then_stored_json_is_the_old_plus_exactly_the_planned_copy()
{
    let running = start(seed(json!({}))).await;
    let before = stored(&running);
    let deps = function(&running, 3, &[]).await;
    let report =
        deps.handle(json!({"distributionConfigurationArn": ARN, "addRegions": ["eu-west-2"]}), None).await.unwrap();
    // The copy: the ARN region's distribution with the region replaced and every region-bound member dropped.
    let mut copy = maximal("us-east-1");
    copy["region"] = json!("eu-west-2");
    copy["amiDistributionConfiguration"].as_object_mut().unwrap().remove("kmsKeyId");
    copy.as_object_mut().unwrap().remove("launchTemplateConfigurations");
    copy.as_object_mut().unwrap().remove("licenseConfigurationArns");
    copy["fastLaunchConfigurations"][0].as_object_mut().unwrap().remove("launchTemplate");
    let mut expected = before.clone();
    expected["distributions"].as_array_mut().unwrap().push(copy);
    assert_eq!(without_date(stored(&running)), expected);
    assert!(stored(&running)["dateUpdated"].is_string());
    assert_eq!(report.actions.len(), 1);
    let action = &report.actions[0];
    assert_eq!((action.action.as_str(), action.outcome), ("add-region", Outcome::Applied));
    assert_eq!(action.target, format!("{ARN}#eu-west-2"));
    assert!(action.detail.contains("copied from us-east-1"), "{}", action.detail);
    assert!(action.detail.contains("dropped amiDistributionConfiguration.kmsKeyId, launchTemplateConfigurations, licenseConfigurationArns, fastLaunchConfigurations[].launchTemplate"), "{}", action.detail);
    let token = &calls(&running, "UpdateDistributionConfiguration")[0].params["clientToken"];
    assert_eq!(token.len(), 36);
}

#[tokio::test]
async fn given_overrides_when_a_region_is_added_then_its_region_bound_members_come_from_them() {
    let running = start(seed(json!({}))).await;
    let deps = function(&running, 3, &[]).await;
    let kms = format!("arn:aws:kms:eu-west-2:{ACCOUNT}:key/9999abcd-12ab-34cd-56ef-1234567890ab");
    let license = format!(
        "arn:aws:license-manager:eu-west-2:{ACCOUNT}:license-configuration:lic-0123456789abcdef0123456789abcdef"
    );
    let request = json!({"distributionConfigurationArn": ARN, "addRegions": ["eu-west-2"], "templateRegion": "eu-west-1",
        "regionOverrides": {"eu-west-2": {"kmsKeyId": kms, "launchTemplateConfigurations": [{"launchTemplateId": "lt-0a1b2c3d4e5f60718", "setDefaultVersion": false}],
            "licenseConfigurationArns": [license]}}});
    let report = deps.handle(request, None).await.unwrap();
    let added = stored(&running)["distributions"][3].clone();
    assert_eq!(added["region"], "eu-west-2");
    assert_eq!(added["amiDistributionConfiguration"]["kmsKeyId"], kms.as_str());
    assert_eq!(
        added["amiDistributionConfiguration"]["description"], "golden web image (eu-west-1)",
        "copied from the chosen template"
    );
    // The SDK does not send a boolean member equal to its default (false): absent and false mean the same to AWS.
    assert_eq!(added["launchTemplateConfigurations"], json!([{"launchTemplateId": "lt-0a1b2c3d4e5f60718"}]));
    assert_eq!(added["licenseConfigurationArns"], json!([license]), "the override's value, not the template's");
    assert!(report.actions[0].detail.contains("licenseConfigurationArns"), "{}", report.actions[0].detail);
    assert!(
        report.actions[0].detail.contains(
            "from regionOverrides.eu-west-2: amiDistributionConfiguration.kmsKeyId, launchTemplateConfigurations"
        ),
        "{}",
        report.actions[0].detail
    );
}

#[tokio::test]
async fn given_maximal_configuration_when_a_region_is_removed_then_stored_json_is_the_old_minus_exactly_that_entry() {
    let running = start(seed(json!({}))).await;
    let before = stored(&running);
    let deps = function(&running, 3, &[]).await;
    deps.handle(json!({"distributionConfigurationArn": ARN, "removeRegions": ["eu-west-1"]}), None).await.unwrap();
    let mut expected = before.clone();
    expected["distributions"].as_array_mut().unwrap().remove(1);
    assert_eq!(without_date(stored(&running)), expected);
}

#[tokio::test]
async fn given_the_same_event_twice_when_run_then_one_update_and_the_second_a_replay() {
    let running = start(seed(json!({}))).await;
    let event = json!({"requestId": "change-17", "distributionConfigurationArn": ARN, "addRegions": ["eu-north-1"]});
    let deps = function(&running, 3, &[]).await;
    let first = deps.handle(event.clone(), None).await.unwrap();
    let after_first = stored(&running);
    let second = deps.handle(event.clone(), None).await.unwrap();
    assert!(second.replayed);
    assert_eq!(second.actions, first.actions);
    assert_eq!(updates(&running), 1, "the guard answered the redelivery");
    // A second Lambda instance (its guard knows nothing) re-reads: the region is already there, so it sends nothing.
    let other_instance = function(&running, 3, &[]).await;
    let third = other_instance.handle(event, None).await.unwrap();
    assert_eq!(third.actions[0].outcome, Outcome::Skipped, "it re-reads, and the region is already there");
    assert_eq!(updates(&running), 1);
    assert_eq!(stored(&running), after_first);
}

#[tokio::test]
async fn given_one_event_handled_from_the_same_state_twice_when_updated_then_the_same_client_token_and_another_event_another()
 {
    // GIVEN two accounts in the same state, as a second instance sees AWS when the first died after its update was
    // sent but before it was read back (the token is what lets Image Builder replay that update)
    let token_of = |event: serde_json::Value| async move {
        let running = start(seed(json!({}))).await;
        function(&running, 3, &[]).await.handle(event, None).await.expect("a report");
        let sent = calls(&running, "UpdateDistributionConfiguration");
        assert_eq!(sent.len(), 1);
        sent[0].params["clientToken"].clone()
    };
    let event = json!({"requestId": "change-17", "distributionConfigurationArn": ARN, "addRegions": ["eu-north-1"]});
    // WHEN fresh instances handle the same event, and another event with the same change
    let first = token_of(event.clone()).await;
    let again = token_of(event).await;
    let other =
        token_of(json!({"requestId": "change-18", "distributionConfigurationArn": ARN, "addRegions": ["eu-north-1"]}))
            .await;
    // THEN the token is a function of the event and the change, never random: equal for the same event, different
    // for another (which must not be mistaken for a replay)
    assert_eq!(first, again);
    assert_ne!(first, other);
    assert!(uuid_shaped(&first), "{first}");
}

fn uuid_shaped(token: &str) -> bool {
    let groups: Vec<usize> = token.split('-').map(str::len).collect();
    groups == [8, 4, 4, 4, 12] && token.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

#[tokio::test]
async fn given_rate_limiting_on_the_first_two_calls_when_run_then_it_converges() {
    let running = start(seed(json!({"faults": {"rules": [
        {"service": "imagebuilder", "operation": "GetDistributionConfiguration", "error": "CallRateLimitExceededException", "count": 2},
        {"service": "imagebuilder", "operation": "UpdateDistributionConfiguration", "error": "CallRateLimitExceededException", "count": 2}
    ]}}))).await;
    let deps = function(&running, 5, &[]).await;
    let report = deps
        .handle(json!({"distributionConfigurationArn": ARN, "addRegions": ["eu-west-3"]}), None)
        .await
        .expect("converges");
    assert_eq!(report.actions[0].outcome, Outcome::Applied);
    let outcomes: Vec<String> =
        calls(&running, "UpdateDistributionConfiguration").into_iter().map(|c| c.outcome).collect();
    assert_eq!(outcomes, vec!["CallRateLimitExceededException", "CallRateLimitExceededException", "ok"]);
    assert_eq!(stored(&running)["distributions"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn given_dry_run_when_run_then_the_plan_is_reported_and_nothing_is_updated() {
    let running = start(seed(json!({}))).await;
    let before = stored(&running);
    let deps = function(&running, 3, &[]).await;
    let report = deps.handle(json!({"distributionConfigurationArn": ARN, "addRegions": ["eu-west-2"], "removeRegions": ["ap-south-1"], "dryRun": true}), None).await.unwrap();
    assert!(report.dry_run);
    assert_eq!(
        report.actions.iter().map(|a| (a.action.as_str(), a.outcome)).collect::<Vec<_>>(),
        vec![("add-region", Outcome::Planned), ("remove-region", Outcome::Planned)]
    );
    assert_eq!(updates(&running), 0);
    assert_eq!(stored(&running), before);
}

#[tokio::test]
async fn given_bad_requests_when_run_then_clear_errors_and_no_update() {
    let running = start(seed(json!({}))).await;
    let deps = function(&running, 3, &[]).await;
    let diag =
        deps.handle(json!({"distributionConfigurationArn": ARN, "addRegions": ["eu-wst-1"]}), None).await.unwrap_err();
    assert_eq!(diag.error_type, "Permanent.InvalidInput");
    assert!(diag.error_message.contains("did you mean eu-west-1?"), "{}", diag.error_message);
    assert!(running.emulator.calls().is_empty(), "a typo makes no call at all");
    let diag = deps
        .handle(
            json!({"distributionConfigurationArn": ARN, "setRegions": ["us-east-1"], "templateRegion": "sa-east-1"}),
            None,
        )
        .await
        .unwrap_err();
    assert!(diag.error_message.contains("`sa-east-1` is not a region of this configuration"), "{}", diag.error_message);
    let diag = deps
        .handle(
            json!({"distributionConfigurationArn": ARN, "removeRegions": ["us-east-1", "eu-west-1", "ap-south-1"]}),
            None,
        )
        .await
        .unwrap_err();
    assert!(diag.error_message.contains("would leave the configuration without a region"), "{}", diag.error_message);
    assert_eq!(updates(&running), 0);
}

#[tokio::test]
async fn given_desired_state_in_s3_when_uploaded_or_scheduled_then_the_configuration_is_reconciled_to_it() {
    let running = start(seed(json!({}))).await;
    let deps = function(
        &running,
        3,
        &[("DESIRED_STATE_S3_URI", "s3://keeper-desired-state-123456789012-us-east-1/regions.json")],
    )
    .await;
    let schedule = json!({"version": "0", "id": "drift-1", "detail-type": "Scheduled Event", "source": "aws.events", "account": ACCOUNT,
        "time": "2026-11-23T03:00:00Z", "region": "us-east-1", "resources": [], "detail": {}});
    let report = deps.handle(schedule, None).await.unwrap();
    let regions: Vec<String> = stored(&running)["distributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["region"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(regions, vec!["us-east-1", "eu-west-1", "eu-central-1"]);
    assert_eq!(report.count_of("add-region", Outcome::Applied), 1);
    assert_eq!(report.count_of("remove-region", Outcome::Applied), 1);
    assert_eq!(calls(&running, "GetObject")[0].params["Key"], "regions.json");
    // The same document uploaded again (an S3 notification): already as desired, no update.
    let upload = json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventTime": "2026-11-23T10:20:00.000Z",
        "eventName": "ObjectCreated:Put", "userIdentity": {"principalId": "x"}, "requestParameters": {"sourceIPAddress": "x"}, "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "c", "bucket": {"name": "keeper-desired-state-123456789012-us-east-1", "ownerIdentity": {"principalId": "x"}, "arn": "arn:aws:s3:::keeper-desired-state-123456789012-us-east-1"},
               "object": {"key": "regions.json", "size": 10, "eTag": "e", "sequencer": "01"}}}]});
    let report = deps.handle(upload, None).await.unwrap();
    assert_eq!(report.actions[0].detail, "already as desired");
    assert_eq!(updates(&running), 1);
}

const BUCKET: &str = "keeper-desired-state-123456789012-us-east-1";
const DESIRED: &str = "s3://keeper-desired-state-123456789012-us-east-1/regions.json";

fn regions(config: &Value) -> Vec<String> {
    config["distributions"].as_array().unwrap().iter().map(|d| d["region"].as_str().unwrap().to_string()).collect()
}

/// Waits until the emulator has answered `n` calls of `operation` (the function is then past that call).
async fn after_calls(running: &local::Running, operation: &str, n: usize) {
    let started = std::time::Instant::now();
    while calls(running, operation).len() < n {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "no {operation} #{n}");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

/// What a person does in the console: a region of their own, and a new description.
fn console_edit(running: &local::Running) {
    let mut world = running.emulator.world();
    let config =
        world.regions.get_mut("us-east-1").unwrap().imagebuilder.distribution_configurations.get_mut(ARN).unwrap();
    config["distributions"].as_array_mut().unwrap().push(json!({"region": "sa-east-1"}));
    config["description"] = json!("edited in the console");
}

fn s3_event(key: &str, version: &str) -> Value {
    json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventTime": "2026-11-23T10:20:00.000Z",
        "eventName": "ObjectCreated:Put", "userIdentity": {"principalId": "x"}, "requestParameters": {"sourceIPAddress": "x"}, "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "c", "bucket": {"name": BUCKET, "ownerIdentity": {"principalId": "x"}, "arn": format!("arn:aws:s3:::{BUCKET}")},
               "object": {"key": key, "size": 10, "versionId": version, "eTag": "e", "sequencer": "01"}}}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_two_invocations_that_both_read_before_either_writes_when_they_add_different_regions_then_both_survive() {
    // GIVEN updates that take 300 ms to land, so that both invocations have read before either has written
    let running = start(seed(json!({"faults": {"rules": [
        {"operation": "UpdateDistributionConfiguration", "latencyMs": 300}
    ]}})))
    .await;
    let deps = function(&running, 3, &[]).await;
    // WHEN one adds eu-west-2 and the other eu-north-1 at the same time
    let (a, b) = tokio::join!(
        deps.handle(json!({"requestId": "a", "distributionConfigurationArn": ARN, "addRegions": ["eu-west-2"]}), None),
        deps.handle(json!({"requestId": "b", "distributionConfigurationArn": ARN, "addRegions": ["eu-north-1"]}), None),
    );
    // THEN both regions are there, and both reports say so truthfully
    let stored = regions(&stored(&running));
    assert!(stored.contains(&"eu-west-2".to_string()) && stored.contains(&"eu-north-1".to_string()), "{stored:?}");
    assert_eq!(stored.len(), 5);
    for report in [a.unwrap(), b.unwrap()] {
        assert_eq!(report.count_of("add-region", Outcome::Applied), 1, "{report:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_console_edit_after_the_function_read_the_configuration_when_it_writes_then_the_edit_survives() {
    // GIVEN a first read whose answer arrives 400 ms after the state was read
    let running = start(seed(json!({"faults": {"rules": [
        {"operation": "GetDistributionConfiguration", "count": 1, "latencyAfterMs": 400}
    ]}})))
    .await;
    let deps = function(&running, 3, &[]).await;
    let run = tokio::spawn(async move {
        deps.handle(json!({"distributionConfigurationArn": ARN, "addRegions": ["eu-west-2"]}), None).await
    });
    // WHEN someone edits the configuration in the console after that read
    after_calls(&running, "GetDistributionConfiguration", 1).await;
    console_edit(&running);
    let report = run.await.unwrap().expect("a report");
    // THEN the function's region and the console's edit are both there
    let config = stored(&running);
    assert_eq!(regions(&config), vec!["us-east-1", "eu-west-1", "ap-south-1", "sa-east-1", "eu-west-2"]);
    assert_eq!(config["description"], "edited in the console");
    assert_eq!(report.count_of("add-region", Outcome::Applied), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_console_edit_right_after_the_write_when_the_function_reads_back_then_it_reports_a_conflict_and_the_retry_converges()
 {
    // GIVEN an update whose answer arrives 400 ms after it took effect
    let running = start(seed(json!({"faults": {"rules": [
        {"operation": "UpdateDistributionConfiguration", "count": 1, "latencyAfterMs": 400}
    ]}})))
    .await;
    let deps = Arc::new(function(&running, 3, &[]).await);
    let request = json!({"requestId": "change-9", "distributionConfigurationArn": ARN, "addRegions": ["eu-west-2"]});
    let run = {
        let (deps, request) = (deps.clone(), request.clone());
        tokio::spawn(async move { deps.handle(request, None).await })
    };
    // WHEN someone edits the configuration between the write and the function's read-back
    after_calls(&running, "UpdateDistributionConfiguration", 1).await;
    console_edit(&running);
    // THEN the function does not claim a result it did not see: it fails retryably
    let diag = run.await.unwrap().expect_err("the read-back shows another writer");
    assert_eq!(diag.error_type, "Retryable.Conflict");
    // THEN Lambda's retry re-reads, finds both changes there, and reports it
    let retry = deps.handle(request, None).await.expect("the retry");
    assert_eq!(retry.actions[0].detail, "already as desired");
    assert_eq!(regions(&stored(&running)), vec!["us-east-1", "eu-west-1", "ap-south-1", "eu-west-2", "sa-east-1"]);
}

#[tokio::test]
async fn given_one_configuration_twice_in_a_document_when_uploaded_then_refused_before_any_image_builder_call() {
    let doc = json!({"distributionConfigurations": [{"arn": ARN, "regions": ["us-east-1"]}, {"arn": ARN, "regions": ["eu-west-1"]}]});
    let running = start(seed(json!({"s3": {BUCKET: {"regions.json": doc.to_string()}}}))).await;
    let version = running.emulator.objects().put(BUCKET, "regions.json", doc.to_string().into(), None).1;
    let deps = function(&running, 3, &[("DESIRED_STATE_S3_URI", DESIRED)]).await;
    let report = deps.handle(s3_event("regions.json", &version), None).await.expect("a report");
    let failure = report.error.expect("refused");
    assert!(failure.error_message.contains("listed twice"), "{}", failure.error_message);
    assert!(running.emulator.calls().iter().all(|c| c.service == "s3"), "no Image Builder call");
}

#[tokio::test]
async fn given_an_old_version_of_the_document_retried_after_a_newer_one_when_handled_then_it_is_skipped() {
    // GIVEN v1 (three regions) then v2 (two), and v2 already applied
    let running = start(seed(json!({}))).await;
    let doc = |regions: &[&str]| json!({"distributionConfigurations": [{"arn": ARN, "regions": regions}]}).to_string();
    let v1 = running
        .emulator
        .objects()
        .put(BUCKET, "regions.json", doc(&["us-east-1", "eu-west-1", "eu-central-1"]).into(), None)
        .1;
    let v2 = running.emulator.objects().put(BUCKET, "regions.json", doc(&["us-east-1", "eu-west-1"]).into(), None).1;
    let deps = function(&running, 3, &[("DESIRED_STATE_S3_URI", DESIRED)]).await;
    deps.handle(s3_event("regions.json", &v2), None).await.expect("v2 applied");
    assert_eq!(regions(&stored(&running)), vec!["us-east-1", "eu-west-1"]);
    // WHEN Lambda's retry of v1 arrives now
    let report = deps.handle(s3_event("regions.json", &v1), None).await.expect("a report");
    // THEN v1 changes nothing, and the report says a newer version decides
    assert_eq!(regions(&stored(&running)), vec!["us-east-1", "eu-west-1"]);
    assert_eq!(updates(&running), 1);
    let skipped = report.actions.iter().find(|a| a.outcome == Outcome::Skipped).expect("a skipped line");
    assert!(skipped.detail.contains("no longer the current version"), "{}", skipped.detail);
}

#[tokio::test]
async fn given_an_upload_that_is_not_the_desired_state_document_when_handled_then_refused_without_a_change() {
    let running = start(seed(json!({}))).await;
    let version = running.emulator.objects().put(BUCKET, "drafts/regions.json", "{}".into(), None).1;
    let deps = function(&running, 3, &[("DESIRED_STATE_S3_URI", DESIRED)]).await;
    let report = deps.handle(s3_event("drafts/regions.json", &version), None).await.expect("a report");
    let failure = report.error.expect("refused");
    assert!(failure.error_message.contains("DESIRED_STATE_S3_URI"), "{}", failure.error_message);
    assert!(running.emulator.calls().iter().all(|c| c.service != "imagebuilder"), "no Image Builder call");
}

#[tokio::test]
async fn given_drift_repair_over_a_deleted_configuration_and_a_real_one_when_run_then_the_real_one_is_repaired() {
    let gone = "arn:aws:imagebuilder:us-east-1:123456789012:distribution-configuration/deleted-meanwhile";
    let doc = json!({"distributionConfigurations": [{"arn": gone, "regions": ["us-east-1"]},
        {"arn": ARN, "regions": ["us-east-1", "eu-west-1"]}]});
    let running = start(seed(json!({"s3": {BUCKET: {"regions.json": doc.to_string()}}}))).await;
    let deps = function(&running, 3, &[("DESIRED_STATE_S3_URI", DESIRED)]).await;
    let schedule = json!({"version": "0", "id": "drift-2", "detail-type": "Scheduled Event", "source": "aws.events", "account": ACCOUNT,
        "time": "2026-11-23T03:00:00Z", "region": "us-east-1", "resources": [], "detail": {}});
    let report =
        deps.handle(schedule, None).await.expect("a report: a deleted configuration cannot be fixed by retrying");
    let failed = report.actions.iter().find(|a| a.outcome == Outcome::Failed).expect("the deleted one's line");
    assert_eq!((failed.target.as_str(), failed.error_type.as_deref()), (gone, Some("Permanent.NotFound")));
    assert_eq!(regions(&stored(&running)), vec!["us-east-1", "eu-west-1"], "the real one was repaired");
}

const OTHER: &str = "arn:aws:imagebuilder:us-east-1:123456789012:distribution-configuration/api-golden";

fn drift_schedule(id: &str) -> Value {
    json!({"version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events", "account": ACCOUNT,
        "time": "2026-11-23T03:00:00Z", "region": "us-east-1", "resources": [], "detail": {}})
}

#[tokio::test]
async fn given_one_configuration_whose_template_region_was_removed_when_drift_is_repaired_then_it_alone_fails_and_the_others_are_repaired()
 {
    // GIVEN a document naming a template region that someone removed from one configuration in the console
    let doc = json!({"distributionConfigurations": [
        {"arn": OTHER, "regions": ["us-east-1", "eu-west-2"], "templateRegion": "ap-south-1"},
        {"arn": ARN, "regions": ["us-east-1", "eu-west-1"]}]});
    let mut seeded = seed(json!({"s3": {BUCKET: {"regions.json": doc.to_string()}}}));
    seeded["regions"]["us-east-1"]["distributionConfigurations"][OTHER] =
        json!({"name": "api-golden", "distributions": [maximal("us-east-1")]});
    let running = start(seeded).await;
    let deps = function(&running, 3, &[("DESIRED_STATE_S3_URI", DESIRED)]).await;
    // WHEN the schedule repairs drift
    let report = deps.handle(drift_schedule("drift-template"), None).await.expect("a report, not a refusal");
    // THEN that configuration is one failed line naming the rule, and the other is repaired
    assert!(report.error.is_none(), "{report:?}");
    let failed = report.actions.iter().find(|a| a.outcome == Outcome::Failed).expect("its line");
    assert_eq!((failed.target.as_str(), failed.error_type.as_deref()), (OTHER, Some("Permanent.InvalidInput")));
    assert!(failed.detail.contains("ap-south-1"), "{}", failed.detail);
    assert_eq!(regions(&stored(&running)), vec!["us-east-1", "eu-west-1"], "the other one was repaired");
    let written: Vec<String> = calls(&running, "UpdateDistributionConfiguration")
        .iter()
        .map(|c| c.params.get("distributionConfigurationArn").cloned().unwrap_or_default())
        .collect();
    assert_eq!(written, vec![ARN.to_string()], "no write to the configuration that failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_drift_repair_that_read_v1_when_v2_is_uploaded_and_applied_before_it_writes_then_v2_stays() {
    // GIVEN v1 current, and a drift repair whose first read of the configuration is answered 500 ms late
    let doc = |regions: &[&str]| json!({"distributionConfigurations": [{"arn": ARN, "regions": regions}]}).to_string();
    let running = start(seed(json!({"faults": {"rules": [
        {"operation": "GetDistributionConfiguration", "count": 1, "latencyAfterMs": 500}
    ]}})))
    .await;
    running.emulator.objects().put(
        BUCKET,
        "regions.json",
        doc(&["us-east-1", "eu-west-1", "eu-central-1"]).into(),
        None,
    );
    let deps = Arc::new(function(&running, 3, &[("DESIRED_STATE_S3_URI", DESIRED)]).await);
    let repair = {
        let deps = deps.clone();
        tokio::spawn(async move { deps.handle(drift_schedule("drift-v1"), None).await })
    };
    // WHEN, after the repair read v1, an operator uploads v2 and its event is applied
    after_calls(&running, "GetDistributionConfiguration", 1).await;
    let v2 = running.emulator.objects().put(BUCKET, "regions.json", doc(&["us-east-1", "ap-south-1"]).into(), None).1;
    let applied = deps.handle(s3_event("regions.json", &v2), None).await.expect("v2's event");
    assert_eq!(applied.count_of("remove-region", Outcome::Applied), 1, "{applied:?}");
    let repair = repair.await.unwrap().expect("the repair's report");
    // THEN the repair does not write v1 over v2: it is skipped, naming the newer version
    assert_eq!(regions(&stored(&running)), vec!["us-east-1", "ap-south-1"]);
    assert_eq!(updates(&running), 1, "only v2's update: {repair:?}");
    let skipped = repair.actions.iter().find(|a| a.outcome == Outcome::Skipped).expect("a skipped line");
    assert!(skipped.detail.contains("no longer the current version"), "{}", skipped.detail);
}

#[tokio::test]
async fn given_add_remove_add_sent_by_hand_when_the_guard_has_forgotten_the_first_then_the_third_adds_the_region() {
    // GIVEN three requests sent by hand, each a new invocation; the third is the first again, after the guard's TTL
    let running = start(seed(json!({}))).await;
    let add = json!({"distributionConfigurationArn": ARN, "addRegions": ["eu-west-2"]});
    let remove = json!({"distributionConfigurationArn": ARN, "removeRegions": ["eu-west-2"]});
    let first = function(&running, 3, &[]).await;
    first.handle_invocation(add.clone(), None, Some("request-1")).await.expect("added");
    first.handle_invocation(remove, None, Some("request-2")).await.expect("removed");
    assert_eq!(regions(&stored(&running)), vec!["us-east-1", "eu-west-1", "ap-south-1"]);
    // WHEN the first request is sent again (a fresh guard: its TTL has passed)
    let later = function(&running, 3, &[]).await;
    let report = later.handle_invocation(add, None, Some("request-3")).await;
    // THEN Image Builder does it again (a new token), instead of replaying the first sending's answer and leaving the
    // read-back in Retryable.Conflict until the token expires
    let report = report.expect("added, not stuck in a conflict");
    assert_eq!(report.count_of("add-region", Outcome::Applied), 1, "{report:?}");
    assert_eq!(regions(&stored(&running)), vec!["us-east-1", "eu-west-1", "ap-south-1", "eu-west-2"]);
}

#[tokio::test]
async fn given_requests_outside_the_settings_when_handled_then_refused_naming_the_field_and_the_bound_without_a_call() {
    // GIVEN a function allowed to change web-golden only
    let running = start(seed(json!({}))).await;
    let deps = function(&running, 3, &[("DISTRIBUTION_CONFIGURATION_ARNS", ARN)]).await;
    let elsewhere = "arn:aws:imagebuilder:us-east-1:123456789012:distribution-configuration/payments";
    let kms_other_region = format!("arn:aws:kms:eu-west-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab");
    let kms_other_account = "arn:aws:kms:eu-west-2:999999999999:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    let cases = [
        // WHEN a request names a configuration the settings do not list
        (
            json!({"distributionConfigurationArn": elsewhere, "addRegions": ["eu-west-2"]}),
            "DISTRIBUTION_CONFIGURATION_ARNS",
        ),
        // WHEN a region-bound override belongs to another region or another account
        (
            json!({"distributionConfigurationArn": ARN, "addRegions": ["eu-west-2"],
            "regionOverrides": {"eu-west-2": {"kmsKeyId": kms_other_region}}}),
            "is a key of eu-west-1, not of eu-west-2",
        ),
        (
            json!({"distributionConfigurationArn": ARN, "addRegions": ["eu-west-2"],
            "regionOverrides": {"eu-west-2": {"kmsKeyId": kms_other_account}}}),
            "belongs to account 999999999999",
        ),
    ];
    for (request, rule) in cases {
        let diag = deps.handle(request, None).await.expect_err("refused");
        // THEN each is Permanent.InvalidInput naming the bound
        assert_eq!(diag.error_type, "Permanent.InvalidInput");
        assert!(diag.error_message.contains(rule), "{}", diag.error_message);
    }
    // AND nothing was called at all: bad input is refused before the first read
    assert!(running.emulator.calls().is_empty(), "{:?}", running.emulator.calls());
}
