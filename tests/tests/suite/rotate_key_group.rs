//! rotate-key-group end to end: the handler, through the real CloudFront and S3 SDKs, against the emulated account.

use rotate_key_group::RotateKeyGroup;
use serde_json::{Value, json};
use shared::config::Lookup;
use shared::host::Host;
use shared::report::Outcome;
use testbed::emulator::{calls, fast_settings, sdk_config, start};
use testbed::guard::Guarded;

mod managed_keys;

const GROUP: &str = "5f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f";
const BUCKET: &str = "keeper-keys-123456789012-us-east-1";

fn pem(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../shared/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn hours_ago(hours: i64) -> String {
    local::clock::iso8601(local::clock::now_ms() - hours * 3_600_000)
}

fn seed(items: &[&str], uploads: &[(&str, &str)]) -> Value {
    let uploads: serde_json::Map<String, Value> =
        uploads.iter().map(|(key, file)| (key.to_string(), json!(pem(file)))).collect();
    json!({
        "cloudfront": {
            "publicKeys": {
                "K1OLD": {"callerReference": "old", "name": "site-old", "encodedKey": pem("rsa-2048.pem"), "createdTime": hours_ago(500)},
                "K2MID": {"callerReference": "mid", "name": "site-mid", "encodedKey": pem("ec-p256.pem"), "createdTime": hours_ago(300)}
            },
            "keyGroups": {GROUP: {"name": "site-signed-urls", "items": items, "comment": "signed URLs for /private/*"}}
        },
        "s3": {BUCKET: uploads}
    })
}

async fn function(running: &local::Running, extra: &[(&str, &str)]) -> Guarded<RotateKeyGroup> {
    let mut pairs = vec![
        ("MAX_ATTEMPTS", "5"),
        ("RETRY_INITIAL_BACKOFF_MS", "1"),
        ("MAX_KEYS", "2"),
        ("GRACE_HOURS", "24"),
        ("KEY_GROUP_IDS", GROUP),
    ];
    pairs.extend_from_slice(extra);
    let sdk = sdk_config(running, "us-east-1", &fast_settings(5)).await;
    testbed::guard::host(&sdk, &Lookup::from_pairs(&pairs)).await
}

fn upload(key: &str, version: &str) -> Value {
    json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventTime": "2026-11-23T10:20:00.000Z",
        "eventName": "ObjectCreated:Put", "userIdentity": {"principalId": "x"}, "requestParameters": {"sourceIPAddress": "x"}, "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "c", "bucket": {"name": BUCKET, "ownerIdentity": {"principalId": "x"}, "arn": format!("arn:aws:s3:::{BUCKET}")},
               "object": {"key": key, "size": 451, "versionId": version, "eTag": "e", "sequencer": "01"}}}]})
}

/// The version id of an uploaded object, as its S3 notification names it.
fn current(running: &local::Running, key: &str) -> String {
    running.emulator.objects().version(BUCKET, key).expect("the object was uploaded")
}

fn items(running: &local::Running) -> Vec<String> {
    running.emulator.world().cloudfront.key_groups[GROUP].items.clone()
}

const MUTATING: [&str; 3] = ["CreatePublicKey", "UpdateKeyGroup", "DeletePublicKey"];

fn mutating(running: &local::Running) -> usize {
    running.emulator.calls().iter().filter(|c| MUTATING.contains(&c.operation.as_str())).count()
}

#[tokio::test]
async fn given_a_pem_upload_when_handled_then_the_new_key_joins_and_the_oldest_past_grace_key_is_retired_and_deleted() {
    let key = format!("keys/{GROUP}/site 2026-11.pem");
    let running = start(seed(&["K1OLD", "K2MID"], &[(&key, "rsa-2048-second.pem")])).await;
    let deps = function(&running, &[("DELETE_RETIRED_KEYS", "true")]).await;
    let etag_read = running.emulator.world().cloudfront.key_groups[GROUP].etag.clone();
    let report = deps.handle(upload(&key.replace(' ', "+"), &current(&running, &key)), None).await.expect("a report");
    let group = items(&running);
    assert_eq!(group.len(), 2);
    assert_eq!(group[0], "K2MID");
    let new_id = &group[1];
    let world = running.emulator.world();
    let new_key = &world.cloudfront.public_keys[new_id];
    assert!(new_key.name.starts_with("site-2026-11-"), "{}", new_key.name);
    assert_eq!(new_key.comment.as_deref(), Some(format!("keeper:keeper from s3://{BUCKET}/{key}").as_str()));
    assert!(!world.cloudfront.public_keys.contains_key("K1OLD"), "retired and no longer used: deleted");
    drop(world);
    let verbs: Vec<(&str, Outcome)> = report.actions.iter().map(|a| (a.action.as_str(), a.outcome)).collect();
    assert_eq!(
        verbs,
        vec![
            ("create-key", Outcome::Applied),
            ("add-key", Outcome::Applied),
            ("retire-key", Outcome::Applied),
            ("delete-key", Outcome::Applied),
            ("count-keys", Outcome::Skipped)
        ]
    );
    assert!(!etag_read.is_empty());
    assert_eq!(calls(&running, "UpdateKeyGroup")[0].params["IfMatch"], etag_read, "the update quoted the ETag it read");
}

#[tokio::test]
async fn given_the_same_upload_twice_when_handled_then_one_public_key_is_created() {
    let key = format!("keys/{GROUP}/site-2026-11.pem");
    let running = start(seed(&["K1OLD", "K2MID"], &[(&key, "rsa-2048-second.pem")])).await;
    let deps = function(&running, &[]).await;
    deps.handle(upload(&key, &current(&running, &key)), None).await.unwrap();
    assert!(deps.handle(upload(&key, &current(&running, &key)), None).await.unwrap().replayed);
    // Another instance: the same CallerReference gets the same key back, and the group already has it.
    let again = function(&running, &[]).await.handle(upload(&key, &current(&running, &key)), None).await.unwrap();
    let update = again.actions.iter().find(|a| a.target == GROUP).map(|a| a.detail.as_str());
    assert_eq!(update, Some("already as desired"), "{again:?}");
    assert_eq!(running.emulator.world().cloudfront.public_keys.len(), 3);
}

#[tokio::test]
async fn given_a_concurrent_edit_on_the_first_update_when_rotating_then_it_rereads_once_and_converges() {
    let running = start(seed(&["K1OLD", "K2MID"], &[])).await;
    running.emulator.add_fault(fault("UpdateKeyGroup", "PreconditionFailed", 1));
    let deps = function(&running, &[]).await;
    let report = deps
        .handle(json!({"keyGroupId": GROUP, "addPublicKeyPem": pem("rsa-2048-second.pem")}), None)
        .await
        .expect("converges");
    let outcomes: Vec<String> = calls(&running, "UpdateKeyGroup").into_iter().map(|c| c.outcome).collect();
    assert_eq!(outcomes, vec!["PreconditionFailed", "ok"]);
    assert_eq!(
        calls(&running, "GetKeyGroup").len(),
        2,
        "the first read serves the first round; the conflict, one more"
    );
    assert_eq!(report.count_of("add-key", Outcome::Applied), 1);
    assert_eq!(items(&running).len(), 2);
}

#[tokio::test]
async fn given_eight_concurrent_rotations_of_one_group_when_they_race_then_no_update_is_lost() {
    let running = start(seed(&["K1OLD"], &[])).await;
    let deps = function(&running, &[("MAX_KEYS", "5"), ("GRACE_HOURS", "0")]).await;
    let runs = (0..8).map(|i| deps.handle(json!({"requestId": format!("add-{i}"), "keyGroupId": GROUP, "addPublicKeyPem": pem("rsa-2048-second.pem")}), None));
    let results = futures_util::future::join_all(runs).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let group = items(&running);
    // Nine keys passed through a group of at most five with no grace: exactly five remain, the seeded oldest gone,
    // none twice. A run that wrote from a stale read would have dropped others' keys and left fewer.
    assert_eq!(group.len(), 5, "{group:?}");
    assert!(!group.contains(&"K1OLD".to_string()), "{group:?}");
    let distinct: std::collections::BTreeSet<&String> = group.iter().collect();
    assert_eq!(distinct.len(), 5, "no key twice: {group:?}");
    // Every key that left the group left through a run's retire-key action: nothing vanished unreported.
    let retired: std::collections::BTreeSet<String> = results
        .iter()
        .flat_map(|r| r.as_ref().unwrap().actions.iter())
        .filter(|a| a.action == "retire-key" && a.outcome == Outcome::Applied)
        .map(|a| a.target.rsplit('/').next().unwrap_or_default().to_string())
        .collect();
    // (K2MID is a seeded public key that was never in this group.)
    let all: Vec<String> =
        running.emulator.world().cloudfront.public_keys.keys().filter(|id| *id != "K2MID").cloned().collect();
    assert_eq!(all.len(), 9, "K1OLD and the eight created keys");
    for id in &all {
        assert!(group.contains(id) || retired.contains(id), "{id} left the group unreported: {group:?} {retired:?}");
    }
    let world = running.emulator.world();
    let created = world.cloudfront.public_keys.keys().filter(|id| *id != "K1OLD" && *id != "K2MID").count();
    assert_eq!(created, 8, "every run created its own key");
    // The newest signer is the key the last update added (a key joins when its update lands, whatever its creation
    // time): it is never retired. The last update is the one whose ETag the group has now.
    let last = format!("ETag {}", world.cloudfront.key_groups[GROUP].etag);
    drop(world);
    let newest: Vec<String> = results
        .iter()
        .flat_map(|r| r.as_ref().unwrap().actions.iter())
        .filter(|a| a.action == "add-key" && a.detail == last)
        .map(|a| a.target.rsplit('/').next().unwrap_or_default().to_string())
        .collect();
    assert_eq!(newest.len(), 1, "one run made the last update: {newest:?}");
    assert!(group.contains(&newest[0]), "the newest key is never retired: {group:?}, newest {newest:?}");
    let updates = calls(&running, "UpdateKeyGroup");
    assert_eq!(updates.iter().filter(|c| c.ok()).count(), 8, "each run's change landed once");
    assert!(updates.iter().all(|c| c.ok() || c.outcome == "PreconditionFailed"), "losers re-read, never overwrote");
}

#[tokio::test]
async fn given_dry_run_when_rotating_then_the_plan_is_reported_and_nothing_changes() {
    let running = start(seed(&["K1OLD", "K2MID"], &[])).await;
    let deps = function(&running, &[]).await;
    let report = deps
        .handle(json!({"keyGroupId": GROUP, "addPublicKeyPem": pem("ec-p256.pem"), "dryRun": true}), None)
        .await
        .unwrap();
    assert!(report.dry_run);
    let verbs: Vec<(&str, Outcome)> = report.actions.iter().map(|a| (a.action.as_str(), a.outcome)).collect();
    assert_eq!(verbs, vec![("add-key", Outcome::Planned), ("retire-key", Outcome::Planned)]);
    assert_eq!(mutating(&running), 0);
}

#[tokio::test]
async fn given_a_key_cloudfront_refuses_when_uploaded_then_a_clear_error_and_no_mutating_call() {
    let key = format!("keys/{GROUP}/weak.pem");
    let running = start(seed(&["K1OLD", "K2MID"], &[(&key, "rsa-1024.pem")])).await;
    let deps = function(&running, &[]).await;
    let report =
        deps.handle(upload(&key, &current(&running, &key)), None).await.expect("an event source gets a report");
    let failure = report.error.expect("the failure is in the report");
    assert_eq!(failure.error_type, "Permanent.InvalidInput");
    assert!(failure.error_message.contains("an RSA 1024-bit key"), "{}", failure.error_message);
    assert_eq!(mutating(&running), 0);
}

#[tokio::test]
async fn given_five_young_keys_when_adding_a_sixth_then_quota_refusal_and_no_key_created() {
    let running = start(seed(&["K1OLD"], &[])).await;
    let deps = function(&running, &[("MAX_KEYS", "5"), ("GRACE_HOURS", "1000")]).await;
    for i in 0..4 {
        deps.handle(
            json!({"requestId": format!("fill-{i}"), "keyGroupId": GROUP, "addPublicKeyPem": pem("ec-p256.pem")}),
            None,
        )
        .await
        .unwrap();
    }
    assert_eq!(items(&running).len(), 5);
    let before = mutating(&running);
    let diag =
        deps.handle(json!({"keyGroupId": GROUP, "addPublicKeyPem": pem("ec-p256.pem")}), None).await.unwrap_err();
    assert_eq!(diag.error_type, "Permanent.QuotaWouldBeExceeded");
    assert!(diag.error_message.contains("next key becomes retirable at"), "{}", diag.error_message);
    assert_eq!(mutating(&running), before, "no key was created for a rotation that cannot happen");
}

fn fault(operation: &str, error: &str, count: u32) -> local::FaultRule {
    local::FaultRule { count: Some(count), ..local::FaultRule::error(operation, error) }
}

/// A public key as an earlier delivery (or someone else) left it.
fn earlier_key(
    running: &local::Running,
    id: &str,
    reference: &str,
    name: &str,
    encoded: &str,
    comment: Option<String>,
) {
    let key = local::cloudfront::PublicKey {
        caller_reference: reference.into(),
        name: name.into(),
        encoded_key: encoded.into(),
        comment,
        created_time: hours_ago(0),
        etag: "E1EARLIER".into(),
    };
    running.emulator.world().cloudfront.public_keys.insert(id.into(), key);
}

/// The name and CallerReference keeper gives the key of an upload.
fn keeper_key_of(key: &str, version: &str) -> (String, String) {
    let reference = shared::idempotency::client_token("rotate-key-group", &[BUCKET, key, version]);
    let stem = key.rsplit('/').next().unwrap().trim_end_matches(".pem");
    (rotate_key_group::config::key_name(stem, &reference), reference)
}

#[tokio::test]
async fn given_key_group_ids_that_do_not_name_the_group_when_a_key_is_uploaded_or_requested_then_refused_without_a_call()
 {
    let key = format!("keys/{GROUP}/site.pem");
    let running = start(seed(&["K1OLD", "K2MID"], &[(&key, "rsa-2048-second.pem")])).await;
    for allowed in ["", "0b1c2d3e-0000-0000-0000-000000000000"] {
        let deps = function(&running, &[("KEY_GROUP_IDS", allowed)]).await;
        // WHEN someone who can write under keys/ uploads a key for a group the function was not given
        let report = deps.handle(upload(&key, &format!("v-{allowed}")), None).await.expect("a report");
        // THEN refused, naming the setting, and nothing is created or changed
        let failure = report.error.expect("refused");
        assert_eq!(failure.error_type, "Permanent.InvalidInput");
        assert!(failure.error_message.contains("KEY_GROUP_IDS"), "{}", failure.error_message);
        let diag = deps
            .handle(json!({"keyGroupId": GROUP, "retirePublicKeyIds": ["K1OLD"]}), None)
            .await
            .expect_err("a request by hand is refused too");
        assert!(diag.error_message.contains("KEY_GROUP_IDS"), "{}", diag.error_message);
    }
    assert_eq!(mutating(&running), 0);
}

#[tokio::test]
async fn given_the_key_already_created_by_an_earlier_delivery_when_cloudfront_answers_already_exists_then_that_key_is_used()
 {
    // GIVEN the key an earlier delivery of this upload created, and a CloudFront that does not replay the reference
    let key = format!("keys/{GROUP}/site-2026-11.pem");
    let running = start(seed(&["K1OLD", "K2MID"], &[(&key, "rsa-2048-second.pem")])).await;
    let (name, reference) = keeper_key_of(&key, &current(&running, &key));
    let comment = Some(format!("keeper:keeper from s3://{BUCKET}/{key}"));
    earlier_key(&running, "K3EARLIER", &reference, &name, &pem("rsa-2048-second.pem"), comment);
    running.emulator.add_fault(fault("CreatePublicKey", "PublicKeyAlreadyExists", 1));
    let deps = function(&running, &[]).await;
    // WHEN the upload is handled again
    let report = deps.handle(upload(&key, &current(&running, &key)), None).await.expect("a report");
    // THEN the key made earlier joins the group, and no second key exists
    assert!(items(&running).contains(&"K3EARLIER".to_string()), "{:?}", items(&running));
    assert_eq!(running.emulator.world().cloudfront.public_keys.len(), 3);
    let create = report.actions.iter().find(|a| a.action == "create-key").expect("a create-key line");
    assert_eq!(create.outcome, Outcome::Skipped);
    assert!(create.detail.contains("K3EARLIER"), "{}", create.detail);
}

#[tokio::test]
async fn given_another_key_under_keepers_name_when_cloudfront_answers_already_exists_then_a_clear_permanent_failure() {
    let key = format!("keys/{GROUP}/site-2026-11.pem");
    let running = start(seed(&["K1OLD", "K2MID"], &[(&key, "rsa-2048-second.pem")])).await;
    let (name, reference) = keeper_key_of(&key, &current(&running, &key));
    earlier_key(&running, "KOTHER", &reference, &name, &pem("ec-p256.pem"), None);
    running.emulator.add_fault(fault("CreatePublicKey", "PublicKeyAlreadyExists", 1));
    let report =
        function(&running, &[]).await.handle(upload(&key, &current(&running, &key)), None).await.expect("a report");
    let failed = report.actions.iter().find(|a| a.outcome == Outcome::Failed).expect("a failed action");
    assert_eq!(failed.error_type.as_deref(), Some("Permanent.KeyNameTaken"));
    assert!(failed.detail.contains("KOTHER") && failed.detail.contains("different key"), "{}", failed.detail);
    assert_eq!(items(&running), vec!["K1OLD", "K2MID"], "nothing was added");
}

#[tokio::test]
async fn given_a_retired_keeper_key_whose_deletion_failed_when_lambda_retries_then_the_retry_deletes_it() {
    // GIVEN K1OLD, a key keeper made, retired by an upload whose DeletePublicKey fails past the SDK's retries
    let key = format!("keys/{GROUP}/site.pem");
    let mut seeded = seed(&["K1OLD", "K2MID"], &[(&key, "rsa-2048-second.pem")]);
    seeded["cloudfront"]["publicKeys"]["K1OLD"]["comment"] = json!("keeper:keeper from s3://keeper-keys/keys/old.pem");
    let running = start(seeded).await;
    running.emulator.add_fault(fault("DeletePublicKey", "ServiceUnavailable", 5));
    let deps = function(&running, &[("DELETE_RETIRED_KEYS", "true")]).await;
    let first = deps
        .handle(upload(&key, &current(&running, &key)), None)
        .await
        .expect_err("a deletion that may pass is retried");
    assert_eq!(first.error_type, "Retryable.ServiceUnavailable");
    assert!(!items(&running).contains(&"K1OLD".to_string()), "retired from the group");
    assert!(running.emulator.world().cloudfront.public_keys.contains_key("K1OLD"));
    // WHEN Lambda retries the event (the group is already as desired)
    let retry = deps.handle(upload(&key, &current(&running, &key)), None).await.expect("the retry completes");
    // THEN the retry finishes the deletion
    assert!(!running.emulator.world().cloudfront.public_keys.contains_key("K1OLD"), "{retry:?}");
    let deleted = retry.actions.iter().find(|a| a.action == "delete-key").expect("a delete-key line");
    assert!(deleted.target.ends_with("K1OLD") && deleted.outcome == Outcome::Applied, "{deleted:?}");
}

#[tokio::test]
async fn given_a_key_created_just_before_a_permanent_failure_when_reported_then_the_create_line_stays_and_the_key_does_not_leak()
 {
    for delete in [true, false] {
        // GIVEN an upload whose group update fails for good after its key was created
        let key = format!("keys/{GROUP}/site.pem");
        let running = start(seed(&["K1OLD", "K2MID"], &[(&key, "rsa-2048-second.pem")])).await;
        running.emulator.add_fault(fault("UpdateKeyGroup", "TooManyPublicKeysInKeyGroup", 1));
        let deps = function(&running, &[("DELETE_RETIRED_KEYS", if delete { "true" } else { "false" })]).await;
        // WHEN it is handled
        let report =
            deps.handle(upload(&key, &current(&running, &key)), None).await.expect("an event source gets a report");
        // THEN the report still says the key was created, and the failure
        let created = report.actions.iter().find(|a| a.action == "create-key").expect("the create-key line");
        assert_eq!(created.outcome, Outcome::Applied);
        let new_id = created.target.rsplit('/').next().unwrap().to_string();
        let failed = report.actions.iter().find(|a| a.outcome == Outcome::Failed).expect("the failure");
        assert_eq!(failed.error_type.as_deref(), Some("Permanent.QuotaExceeded"));
        let exists = running.emulator.world().cloudfront.public_keys.contains_key(&new_id);
        if delete {
            // THEN with deletion allowed, the key nothing uses is deleted at once
            assert!(!exists, "{report:?}");
            assert!(report.actions.iter().any(|a| a.action == "delete-key" && a.outcome == Outcome::Applied));
        } else {
            // THEN without it, the key stays and the report names it as an orphan
            assert!(exists);
            let orphan = report.actions.iter().find(|a| a.action == "orphan-key").expect("an orphan line");
            assert!(orphan.detail.contains("DELETE_RETIRED_KEYS"), "{}", orphan.detail);
        }
        assert_eq!(items(&running), vec!["K1OLD", "K2MID"], "the group is unchanged");
    }
}

#[tokio::test]
async fn given_orphans_when_the_sweep_runs_then_keepers_old_orphans_are_deleted_and_others_are_left_alone() {
    // GIVEN an old keeper key in no group, a fresh keeper key in no group (maybe a rotation in flight), and an old
    // key someone else made that no group lists
    let mut seeded = seed(&["K1OLD", "K2MID"], &[]);
    let keys = &mut seeded["cloudfront"]["publicKeys"];
    keys["KORPHAN"] = json!({"callerReference": "a", "name": "site-a", "encodedKey": pem("rsa-2048.pem"),
        "comment": "keeper:keeper from s3://keeper-keys/keys/a.pem", "createdTime": hours_ago(48)});
    keys["KFRESH"] = json!({"callerReference": "b", "name": "site-b", "encodedKey": pem("rsa-2048.pem"),
        "comment": "keeper:keeper from s3://keeper-keys/keys/b.pem", "createdTime": hours_ago(0)});
    keys["KTHEIRS"] = json!({"callerReference": "c", "name": "theirs", "encodedKey": pem("rsa-2048.pem"),
        "comment": "field-level encryption", "createdTime": hours_ago(48)});
    let running = start(seeded).await;
    let deps = function(&running, &[("DELETE_RETIRED_KEYS", "true")]).await;
    // WHEN the schedule sweeps
    let report = deps.handle(schedule("sweep-1"), None).await.expect("a report");
    // THEN only keeper's old orphan is deleted
    let world = running.emulator.world();
    assert!(!world.cloudfront.public_keys.contains_key("KORPHAN"), "{report:?}");
    assert!(world.cloudfront.public_keys.contains_key("KFRESH"));
    assert!(world.cloudfront.public_keys.contains_key("KTHEIRS"));
    drop(world);
    let deletes: Vec<String> = calls(&running, "DeletePublicKey").iter().map(|c| c.params["Id"].clone()).collect();
    assert_eq!(deletes, vec!["KORPHAN"]);
}

#[tokio::test]
async fn given_a_sweep_over_a_missing_group_and_a_real_one_when_it_runs_then_the_real_one_is_rotated_and_the_missing_one_reported()
 {
    // GIVEN KEY_GROUP_IDS naming a group that no longer exists, then the real one, which holds a retirable key
    let running = start(seed(&["K1OLD", "K2MID"], &[])).await;
    let missing = "0b1c2d3e-0000-0000-0000-000000000000";
    let allowed = format!("{missing},{GROUP}");
    let deps = function(&running, &[("KEY_GROUP_IDS", allowed.as_str()), ("MAX_KEYS", "1")]).await;
    // WHEN the schedule sweeps
    let report =
        deps.handle(schedule("sweep-2"), None).await.expect("a report: a missing group cannot be fixed by retrying");
    // THEN the missing group is one failed line, and the real group was still rotated
    let failed = report.actions.iter().find(|a| a.outcome == Outcome::Failed).expect("the missing group's line");
    assert_eq!((failed.target.as_str(), failed.error_type.as_deref()), (missing, Some("Permanent.NotFound")));
    assert_eq!(items(&running), vec!["K2MID"], "K1OLD retired from the real group");
    assert_eq!(report.count_of("retire-key", Outcome::Applied), 1);
}

fn schedule(id: &str) -> Value {
    json!({"version": "0", "id": id, "detail-type": "Scheduled Event", "source": "aws.events", "account": "123456789012",
        "time": "2026-11-23T03:00:00Z", "region": "us-east-1", "resources": ["arn:aws:events:us-east-1:123456789012:rule/sweep"], "detail": {}})
}

/// A host behind the guard store `store` (kept by the test, so that it can read and age what the function records
/// there), with the suite's settings and `extra`.
async fn host_on(
    running: &local::Running,
    store: &testbed::guard::Store,
    extra: &[(&str, &str)],
) -> Host<RotateKeyGroup> {
    let mut pairs = vec![
        ("MAX_ATTEMPTS", "5"),
        ("RETRY_INITIAL_BACKOFF_MS", "1"),
        ("MAX_KEYS", "2"),
        ("GRACE_HOURS", "24"),
        ("KEY_GROUP_IDS", GROUP),
    ];
    pairs.extend_from_slice(extra);
    let sdk = sdk_config(running, "us-east-1", &fast_settings(5)).await;
    Host::with_store(&sdk, &Lookup::from_pairs(&pairs), store.store.clone()).expect("valid settings")
}

/// The public keys of the account other than the seeded ones, oldest id first.
fn made_keys(running: &local::Running) -> Vec<String> {
    let seeded = ["K1OLD", "K2MID"];
    running
        .emulator
        .world()
        .cloudfront
        .public_keys
        .keys()
        .filter(|id| !seeded.contains(&id.as_str()))
        .cloned()
        .collect()
}

/// The next call of `operation` applies, and its answer is lost (the connection closes): the SDK retries it.
fn answer_lost(operation: &str) -> local::FaultRule {
    local::FaultRule { error: None, lose_answer: true, count: Some(1), ..local::FaultRule::error(operation, "") }
}

#[tokio::test]
async fn given_a_key_that_joins_its_group_days_after_it_was_created_when_the_next_key_comes_then_its_predecessor_keeps_the_full_grace()
 {
    // GIVEN K2MID signing alone (MAX_KEYS=1, 24 h grace), and an upload of KA whose group update fails past the SDK's
    // retries: KA is created but does not join, and the event ends in the dead-letter queue
    let first = format!("keys/{GROUP}/a.pem");
    let second = format!("keys/{GROUP}/b.pem");
    let running = start(seed(&["K2MID"], &[(&first, "rsa-2048-second.pem"), (&second, "rsa-2048.pem")])).await;
    let store = testbed::guard::store().await;
    let deps = host_on(&running, &store, &[("MAX_KEYS", "1")]).await;
    running.emulator.add_fault(fault("UpdateKeyGroup", "ServiceUnavailable", 5));
    let event = upload(&first, &current(&running, &first));
    deps.handle(event.clone(), None).await.expect_err("a failure that may pass");
    let made = made_keys(&running);
    assert_eq!(made.len(), 1, "KA was created: {made:?}");
    let ka = made[0].clone();
    assert_eq!(items(&running), vec!["K2MID"], "KA did not join");
    // AND three days pass: KA was created then, and so was everything the failed run recorded
    running.emulator.world().cloudfront.public_keys.get_mut(&ka).unwrap().created_time = hours_ago(72);
    let mark = format!("rotate-key-group#{}", rotate_key_group::marks::joined_name(GROUP, &ka));
    let recorded = store.store.get_mark(&mark).await.unwrap().expect("the failed update was preceded by the mark");
    let three_days_ago = local::clock::now_ms() - 72 * 3_600_000;
    assert!(recorded.parse::<i64>().unwrap() <= local::clock::now_ms());
    let kept = local::clock::now_ms() / 1000 + 400 * 86_400;
    store.store.put_mark(&mark, &three_days_ago.to_string(), kept).await.unwrap();
    // WHEN the event is sent again from the dead-letter queue, and KA joins now
    let resent_at = local::clock::now_ms();
    deps.handle(event, None).await.expect("the re-sent event completes");
    assert_eq!(items(&running), vec!["K2MID".to_string(), ka.clone()]);
    let joined: i64 = store.store.get_mark(&mark).await.unwrap().unwrap().parse().unwrap();
    assert!(joined >= resent_at, "the join is dated when it happened, not when it was first tried");
    // AND the next key is uploaded minutes later
    let report = deps.handle(upload(&second, &current(&running, &second)), None).await.expect("a report");
    // THEN K2MID stays: it signed until KA joined minutes ago, so its URLs are valid for 24 h from then
    assert!(
        items(&running).contains(&"K2MID".to_string()),
        "K2MID left inside its grace: {:?} {report:?}",
        items(&running)
    );
    assert_eq!(report.count_of("retire-key", Outcome::Applied), 0, "{report:?}");
    assert_eq!(items(&running).len(), 3);
}

#[tokio::test]
async fn given_keys_of_another_stack_and_of_an_earlier_release_when_the_sweep_runs_then_only_this_stacks_orphans_are_deleted()
 {
    // GIVEN, in no key group and all old: this stack's key, another stack's, one whose stack name starts with this
    // one's, and one with the comment of an earlier release, which names no stack
    let mut seeded = seed(&["K1OLD", "K2MID"], &[]);
    let keys = &mut seeded["cloudfront"]["publicKeys"];
    for (id, comment) in [
        ("KMINE", "keeper:site-a from s3://keeper-keys-a/keys/a.pem"),
        ("KOTHER", "keeper:site-b from s3://keeper-keys-b/keys/b.pem"),
        ("KLONGER", "keeper:site-ab from s3://keeper-keys-ab/keys/c.pem"),
        ("KEARLIER", "keeper: from s3://keeper-keys/keys/d.pem"),
    ] {
        keys[id] = json!({"callerReference": id, "name": id, "encodedKey": pem("rsa-2048.pem"), "comment": comment,
            "createdTime": hours_ago(48)});
    }
    let running = start(seeded).await;
    let deps = function(&running, &[("DELETE_RETIRED_KEYS", "true"), ("KEEPER_STACK", "site-a")]).await;
    // WHEN the schedule sweeps
    let report = deps.handle(schedule("sweep-stacks"), None).await.expect("a report");
    // THEN only this stack's orphan is deleted
    let deletes: Vec<String> = calls(&running, "DeletePublicKey").iter().map(|c| c.params["Id"].clone()).collect();
    assert_eq!(deletes, vec!["KMINE"], "{report:?}");
    let world = running.emulator.world();
    for kept in ["KOTHER", "KLONGER", "KEARLIER"] {
        assert!(world.cloudfront.public_keys.contains_key(kept), "{kept}");
    }
}

#[tokio::test]
async fn given_a_request_that_would_widen_a_setting_when_handled_then_refused_naming_the_field_and_the_bound_without_a_mutating_call()
 {
    // GIVEN the operator's bounds: no deletion, 24 h of grace, 2 keys
    let running = start(seed(&["K1OLD", "K2MID"], &[])).await;
    let deps = function(&running, &[]).await;
    for (field, value, bound) in [
        ("deleteRetiredKeys", json!(true), "DELETE_RETIRED_KEYS"),
        ("graceHours", json!(0), "GRACE_HOURS (24)"),
        ("maxKeys", json!(5), "MAX_KEYS (2)"),
    ] {
        // WHEN a request asks for more than they allow
        let mut request = json!({"keyGroupId": GROUP, "addPublicKeyPem": pem("rsa-2048-second.pem")});
        request[field] = value;
        let diag = deps.handle(request, None).await.expect_err("refused");
        // THEN it is refused, naming the field and the setting that bounds it
        assert_eq!(diag.error_type, "Permanent.InvalidInput", "{field}");
        assert!(diag.error_message.contains(&format!("`{field}`")), "{}", diag.error_message);
        assert!(diag.error_message.contains(bound), "{}", diag.error_message);
    }
    // AND nothing was created, changed or deleted
    assert_eq!(mutating(&running), 0);
    // WHEN a request narrows them instead (longer grace, fewer keys, no deletion) THEN it runs
    let narrower = json!({"keyGroupId": GROUP, "addPublicKeyPem": pem("rsa-2048-second.pem"), "graceHours": 48,
        "maxKeys": 1, "deleteRetiredKeys": false});
    let report = deps.handle(narrower, None).await.expect("a narrower request runs");
    assert_eq!(report.count_of("add-key", Outcome::Applied), 1, "{report:?}");
}

#[tokio::test]
async fn given_an_update_that_applied_but_whose_answer_was_lost_when_the_run_goes_on_then_it_reports_the_change_and_deletes_what_it_retired()
 {
    // GIVEN K1OLD, a key someone else made, past its grace; deletion on; and an upload whose UpdateKeyGroup applies
    // but whose answer never arrives (the SDK's retry then finds the ETag changed)
    let key = format!("keys/{GROUP}/site.pem");
    let running = start(seed(&["K1OLD", "K2MID"], &[(&key, "rsa-2048-second.pem")])).await;
    let store = testbed::guard::store().await;
    let deps = host_on(&running, &store, &[("DELETE_RETIRED_KEYS", "true")]).await;
    running.emulator.add_fault(answer_lost("UpdateKeyGroup"));
    // WHEN the upload is handled
    let report = deps.handle(upload(&key, &current(&running, &key)), None).await.expect("a report");
    // THEN the update happened once
    let updates: Vec<String> = calls(&running, "UpdateKeyGroup").into_iter().map(|c| c.outcome).collect();
    assert_eq!(updates[0], "ok", "{updates:?}");
    assert!(!items(&running).contains(&"K1OLD".to_string()));
    // AND the report says what this run did, and the key it retired is deleted
    let verbs: Vec<(&str, Outcome)> = report.actions.iter().map(|a| (a.action.as_str(), a.outcome)).collect();
    assert_eq!(
        verbs,
        vec![
            ("create-key", Outcome::Applied),
            ("add-key", Outcome::Applied),
            ("retire-key", Outcome::Applied),
            ("delete-key", Outcome::Applied),
            ("count-keys", Outcome::Skipped)
        ],
        "{report:?}"
    );
    assert!(!running.emulator.world().cloudfront.public_keys.contains_key("K1OLD"), "K1OLD leaked");
}

#[tokio::test]
async fn given_an_update_that_applied_but_every_answer_was_lost_when_lambda_retries_then_the_retry_reports_the_change_and_deletes_what_it_retired()
 {
    // GIVEN an upload whose UpdateKeyGroup applies, its answer lost, and the SDK's retries all fail: the run ends
    // with a failure that may pass, not knowing its update applied
    let key = format!("keys/{GROUP}/site.pem");
    let running = start(seed(&["K1OLD", "K2MID"], &[(&key, "rsa-2048-second.pem")])).await;
    let store = testbed::guard::store().await;
    let deps = host_on(&running, &store, &[("DELETE_RETIRED_KEYS", "true")]).await;
    running.emulator.add_fault(answer_lost("UpdateKeyGroup"));
    running.emulator.add_fault(local::FaultRule {
        after: Some(1),
        count: Some(4),
        ..local::FaultRule::error("UpdateKeyGroup", "ServiceUnavailable")
    });
    let event = upload(&key, &current(&running, &key));
    deps.handle(event.clone(), None).await.expect_err("a failure that may pass");
    assert!(!items(&running).contains(&"K1OLD".to_string()), "the update applied");
    // WHEN Lambda retries the event
    let retry = deps.handle(event, None).await.expect("the retry completes");
    // THEN the retry says what the event did, and deletes the key it retired, which nobody uses
    assert_eq!(retry.count_of("add-key", Outcome::Applied), 1, "{retry:?}");
    assert_eq!(retry.count_of("retire-key", Outcome::Applied), 1, "{retry:?}");
    assert!(!running.emulator.world().cloudfront.public_keys.contains_key("K1OLD"), "K1OLD leaked: {retry:?}");
    let updates = calls(&running, "UpdateKeyGroup").into_iter().filter(|c| c.ok()).count();
    assert_eq!(updates, 1, "the retry did not update the group again");
}

#[tokio::test]
async fn given_a_retired_key_someone_else_made_whose_deletion_failed_once_when_lambda_retries_then_the_retry_deletes_it()
 {
    // GIVEN K1OLD, a key someone else made (no keeper comment), retired by an upload whose DeletePublicKey fails past
    // the SDK's retries
    let key = format!("keys/{GROUP}/site.pem");
    let running = start(seed(&["K1OLD", "K2MID"], &[(&key, "rsa-2048-second.pem")])).await;
    running.emulator.add_fault(fault("DeletePublicKey", "ServiceUnavailable", 5));
    let store = testbed::guard::store().await;
    let deps = host_on(&running, &store, &[("DELETE_RETIRED_KEYS", "true")]).await;
    let event = upload(&key, &current(&running, &key));
    let first = deps.handle(event.clone(), None).await.expect_err("a deletion that may pass is retried");
    assert_eq!(first.error_type, "Retryable.ServiceUnavailable");
    assert!(!items(&running).contains(&"K1OLD".to_string()), "retired from the group");
    // WHEN Lambda retries the event (the group is already as desired)
    let retry = deps.handle(event, None).await.expect("the retry completes");
    // THEN the retry finishes what the event began: K1OLD is deleted
    assert!(!running.emulator.world().cloudfront.public_keys.contains_key("K1OLD"), "K1OLD leaked: {retry:?}");
    let deleted = retry.actions.iter().find(|a| a.action == "delete-key").expect("a delete-key line");
    assert_eq!((deleted.target.as_str(), deleted.outcome), (format!("{GROUP}/K1OLD").as_str(), Outcome::Applied));
    // AND it does not claim the rotation again: the first run reported it
    assert_eq!(retry.count_of("add-key", Outcome::Applied) + retry.count_of("retire-key", Outcome::Applied), 0);
}

#[tokio::test]
async fn given_a_key_made_by_hand_retired_with_deletion_off_when_sweeps_run_then_it_is_counted_and_never_deleted() {
    retired_with_deletion_off_is_counted_and_kept(None).await;
}

#[tokio::test]
async fn given_a_key_keeper_made_retired_with_deletion_off_when_sweeps_run_then_it_is_counted_and_never_deleted() {
    retired_with_deletion_off_is_counted_and_kept(Some("keeper:keeper from s3://keeper-keys/keys/old.pem")).await;
}

/// K1OLD (with `comment`: made by hand, or by this deployment) retired while deletion is off is an orphan to keep.
async fn retired_with_deletion_off_is_counted_and_kept(comment: Option<&str>) {
    // GIVEN K1OLD, retired by an upload while DELETE_RETIRED_KEYS is off
    let key = format!("keys/{GROUP}/site.pem");
    let mut seeded = seed(&["K1OLD", "K2MID"], &[(&key, "rsa-2048-second.pem")]);
    if let Some(comment) = comment {
        seeded["cloudfront"]["publicKeys"]["K1OLD"]["comment"] = json!(comment);
    }
    let running = start(seeded).await;
    let store = testbed::guard::store().await;
    let keeping = host_on(&running, &store, &[]).await;
    let rotated = keeping.handle(upload(&key, &current(&running, &key)), None).await.expect("a report");
    assert_eq!(rotated.count_of("retire-key", Outcome::Applied), 1, "{rotated:?}");
    // WHEN the sweep runs with deletion still off, and again after deletion is turned on
    let (off, off_metrics) = keeping.answer(schedule("sweep-off"), None).await;
    let deleting = host_on(&running, &store, &[("DELETE_RETIRED_KEYS", "true")]).await;
    let (on, on_metrics) = deleting.answer(schedule("sweep-on"), None).await;
    // THEN both count it as an orphan, naming it, and neither deletes it: it was retired to be kept
    for (report, metrics) in [(off.expect("a report"), off_metrics), (on.expect("a report"), on_metrics)] {
        assert_eq!(metrics.get("orphans"), 1, "{report:?}");
        let line = report.actions.iter().find(|a| a.action == "orphan-key").expect("an orphan-key line");
        assert_eq!((line.target.as_str(), line.outcome), ("K1OLD", Outcome::Skipped), "{line:?}");
        assert!(line.detail.contains("kept: it was retired with deletion off"), "{line:?}");
    }
    assert!(calls(&running, "DeletePublicKey").is_empty());
    assert!(running.emulator.world().cloudfront.public_keys.contains_key("K1OLD"));
}

#[tokio::test]
async fn given_orphans_and_deletion_off_when_the_sweep_runs_then_the_metrics_count_them_and_the_public_keys() {
    // GIVEN five public keys: two in the group, two of this stack's in no group, one of another stack's
    let mut seeded = seed(&["K1OLD", "K2MID"], &[]);
    let keys = &mut seeded["cloudfront"]["publicKeys"];
    for (id, comment) in [
        ("KMINE1", "keeper:keeper from s3://keeper-keys/keys/a.pem"),
        ("KMINE2", "keeper:keeper added to a group by request"),
        ("KOTHER", "keeper:other from s3://other-keys/keys/b.pem"),
    ] {
        keys[id] = json!({"callerReference": id, "name": id, "encodedKey": pem("rsa-2048.pem"), "comment": comment,
            "createdTime": hours_ago(48)});
    }
    let running = start(seeded).await;
    let deps = function(&running, &[]).await;
    // WHEN the schedule sweeps, deletion off
    let (answer, metrics) = deps.answer(schedule("sweep-count"), None).await;
    let report = answer.expect("a report");
    // THEN the EMF line counts this stack's orphans and every public key of the account, as the listing showed them
    assert_eq!(metrics.get("orphans"), 2, "{report:?}");
    assert_eq!(metrics.get("publicKeys"), 5, "{report:?}");
    assert_eq!(report.count_of("orphan-key", Outcome::Skipped), 2, "{report:?}");
    assert!(calls(&running, "DeletePublicKey").is_empty());
}

#[tokio::test]
async fn given_a_create_whose_answer_was_lost_when_the_sdk_retries_then_the_key_is_reported_created_by_this_run() {
    // GIVEN an upload whose CreatePublicKey creates the key but whose answer is lost: the SDK's retry is answered
    // PublicKeyAlreadyExists
    let key = format!("keys/{GROUP}/site.pem");
    let running = start(seed(&["K1OLD", "K2MID"], &[(&key, "rsa-2048-second.pem")])).await;
    running.emulator.add_fault(answer_lost("CreatePublicKey"));
    let deps = function(&running, &[]).await;
    // WHEN it is handled
    let (answer, metrics) = deps.answer(upload(&key, &current(&running, &key)), None).await;
    let report = answer.expect("a report");
    // THEN one key exists, joined, and the report and the metrics say this run created it
    let made = made_keys(&running);
    assert_eq!(made.len(), 1, "{made:?}");
    assert!(items(&running).contains(&made[0]));
    let create = report.actions.iter().find(|a| a.action == "create-key").expect("a create-key line");
    assert_eq!(create.outcome, Outcome::Applied, "{create:?}");
    assert_eq!(metrics.get("created"), 1);
}

#[tokio::test]
async fn given_a_delete_whose_answer_was_lost_when_the_sdk_retries_then_the_key_is_reported_deleted_by_this_run() {
    // GIVEN an upload that retires K1OLD with deletion on, and a DeletePublicKey that applies but whose answer is
    // lost: the SDK's retry is answered NoSuchPublicKey
    let key = format!("keys/{GROUP}/site.pem");
    let running = start(seed(&["K1OLD", "K2MID"], &[(&key, "rsa-2048-second.pem")])).await;
    running.emulator.add_fault(answer_lost("DeletePublicKey"));
    let deps = function(&running, &[("DELETE_RETIRED_KEYS", "true")]).await;
    // WHEN it is handled
    let (answer, metrics) = deps.answer(upload(&key, &current(&running, &key)), None).await;
    let report = answer.expect("a report");
    // THEN K1OLD is gone, and the report and the metrics say this run deleted it
    assert!(!running.emulator.world().cloudfront.public_keys.contains_key("K1OLD"));
    let delete = report.actions.iter().find(|a| a.action == "delete-key").expect("a delete-key line");
    assert_eq!(delete.outcome, Outcome::Applied, "{delete:?}");
    assert_eq!(metrics.get("deleted"), 1);
}

#[tokio::test]
async fn given_two_uploads_in_one_event_and_one_object_gone_when_handled_then_the_other_still_rotates() {
    // GIVEN one S3 event naming two uploads, one of which was deleted before it could be read
    let (gone, there) = (format!("keys/{GROUP}/gone.pem"), format!("keys/{GROUP}/site.pem"));
    let running = start(seed(&["K1OLD", "K2MID"], &[(&there, "rsa-2048-second.pem")])).await;
    let mut event = upload(&gone, "v-gone");
    let second = upload(&there, &current(&running, &there))["Records"][0].clone();
    event["Records"].as_array_mut().unwrap().push(second);
    let deps = function(&running, &[]).await;
    // WHEN it is handled
    let result = deps.handle(event, None).await;
    // THEN the readable upload's key joins the group, and the gone one is one failed line naming the object
    let made = made_keys(&running);
    assert_eq!(made.len(), 1, "{result:?}");
    assert!(items(&running).contains(&made[0]), "{result:?}");
    let report = result.expect("an event source gets a report: the gone object cannot come back by retrying");
    let failed = report.actions.iter().find(|a| a.outcome == Outcome::Failed).expect("the gone upload's line");
    assert!(failed.target.ends_with("gone.pem"), "{failed:?}");
}

/// A writer the test reads back: every log line the function writes.
#[derive(Clone, Default)]
struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Logs {
    type Writer = Logs;
    fn make_writer(&'w self) -> Logs {
        self.clone()
    }
}

#[tokio::test]
async fn given_rotations_by_upload_and_by_request_when_their_logs_are_read_then_no_pem_body_appears_at_any_level() {
    // GIVEN the function's JSON logs captured at TRACE, the most that can ever be written
    let logs = Logs::default();
    let lookup = Lookup::from_pairs(&[("AWS_LAMBDA_LOG_FORMAT", "JSON"), ("AWS_LAMBDA_LOG_LEVEL", "TRACE")]);
    let _guard = tracing::subscriber::set_default(shared::telemetry::subscriber(&lookup, logs.clone(), false));
    let key = format!("keys/{GROUP}/site 2026-11.pem");
    let running = start(seed(&["K1OLD", "K2MID"], &[(&key, "rsa-2048-second.pem")])).await;
    let deps = function(&running, &[("DELETE_RETIRED_KEYS", "true")]).await;
    // WHEN a key is rotated in by upload, another by request, and a bad PEM is refused
    deps.handle(upload(&key.replace(' ', "+"), &current(&running, &key)), None).await.expect("a report");
    let by_request = json!({"keyGroupId": GROUP, "addPublicKeyPem": pem("ec-p256.pem"), "graceHours": 48});
    let _ = deps.handle(by_request, None).await;
    let bad = pem("rsa-2048.pem").replace("MII", "MIJ");
    let _ = deps.handle(json!({"keyGroupId": GROUP, "addPublicKeyPem": bad}), None).await;
    // THEN the logs hold lines, and none carries a PEM (its armour followed by a body) or any 40-character run of a
    // key's base64 body; a refusal may name the format it expects
    let written = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(written.lines().count() > 3, "the rotations were logged: {written}");
    assert!(!written.contains("-----BEGIN PUBLIC KEY-----\\n") && !written.contains("PRIVATE KEY"), "{written}");
    for file in ["rsa-2048-second.pem", "ec-p256.pem", "rsa-2048.pem"] {
        let body: String = pem(file).lines().filter(|l| !l.starts_with("-----")).collect();
        for start in (0..body.len().saturating_sub(40)).step_by(20) {
            let piece = &body[start..start + 40];
            assert!(!written.contains(piece), "{file}'s key body is in the logs: {piece}");
        }
    }
}
