//! rotate-key-group end to end: the handler, through the real CloudFront and S3 SDKs, against the emulated account.

use rotate_key_group::RotateKeyGroup;
use serde_json::{Value, json};
use shared::config::Lookup;
use shared::report::Outcome;
use testbed::emulator::{calls, fast_settings, sdk_config, start};
use testbed::guard::Guarded;

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
    assert_eq!(new_key.comment.as_deref(), Some(format!("keeper: from s3://{BUCKET}/{key}").as_str()));
    assert!(!world.cloudfront.public_keys.contains_key("K1OLD"), "retired and no longer used: deleted");
    drop(world);
    let verbs: Vec<(&str, Outcome)> = report.actions.iter().map(|a| (a.action.as_str(), a.outcome)).collect();
    assert_eq!(
        verbs,
        vec![
            ("create-key", Outcome::Applied),
            ("add-key", Outcome::Applied),
            ("retire-key", Outcome::Applied),
            ("delete-key", Outcome::Applied)
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
    assert_eq!(again.actions.last().map(|a| a.detail.as_str()), Some("already as desired"));
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
    let created: Vec<(&String, &String)> = world
        .cloudfront
        .public_keys
        .iter()
        .filter(|(id, _)| *id != "K1OLD" && *id != "K2MID")
        .map(|(id, k)| (id, &k.created_time))
        .collect();
    assert_eq!(created.len(), 8, "every run created its own key");
    // Keys created in the same millisecond are equally newest; the plan protects one of them.
    let latest = created.iter().map(|(_, t)| t.as_str()).max().unwrap();
    let newest: Vec<&str> = created.iter().filter(|(_, t)| t.as_str() == latest).map(|(id, _)| id.as_str()).collect();
    assert!(
        group.iter().any(|i| newest.contains(&i.as_str())),
        "a newest key is never retired: {group:?}, newest {newest:?}"
    );
    drop(world);
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
    let comment = Some(format!("keeper: from s3://{BUCKET}/{key}"));
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
    seeded["cloudfront"]["publicKeys"]["K1OLD"]["comment"] = json!("keeper: from s3://keeper-keys/keys/old.pem");
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
    assert_eq!((deleted.target.as_str(), deleted.outcome), ("K1OLD", Outcome::Applied));
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
        "comment": "keeper: from s3://keeper-keys/keys/a.pem", "createdTime": hours_ago(48)});
    keys["KFRESH"] = json!({"callerReference": "b", "name": "site-b", "encodedKey": pem("rsa-2048.pem"),
        "comment": "keeper: from s3://keeper-keys/keys/b.pem", "createdTime": hours_ago(0)});
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
