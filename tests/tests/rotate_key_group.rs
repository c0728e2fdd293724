//! rotate-key-group end to end: the handler, through the real CloudFront and S3 SDKs, against the emulated account.

use std::sync::Arc;

use rotate_key_group::RotateKeyGroup;
use serde_json::{Value, json};
use shared::config::Lookup;
use shared::host::Host;
use shared::idempotency::MemoryStore;
use shared::report::Outcome;
use testbed::emulator::{calls, fast_settings, sdk_config, start};

const GROUP: &str = "5f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f";
const BUCKET: &str = "keeper-keys-123456789012";

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

async fn function(running: &local::Running, extra: &[(&str, &str)]) -> Host<RotateKeyGroup> {
    let mut pairs =
        vec![("MAX_ATTEMPTS", "5"), ("RETRY_INITIAL_BACKOFF_MS", "1"), ("MAX_KEYS", "2"), ("GRACE_HOURS", "24")];
    pairs.extend_from_slice(extra);
    let sdk = sdk_config(running, "us-east-1", &fast_settings(5)).await;
    Host::with_store(&sdk, &Lookup::from_pairs(&pairs), Arc::new(MemoryStore::default())).expect("valid settings")
}

fn upload(key: &str, version: &str) -> Value {
    json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventTime": "2026-11-23T10:20:00.000Z",
        "eventName": "ObjectCreated:Put", "userIdentity": {"principalId": "x"}, "requestParameters": {"sourceIPAddress": "x"}, "responseElements": {},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "c", "bucket": {"name": BUCKET, "ownerIdentity": {"principalId": "x"}, "arn": format!("arn:aws:s3:::{BUCKET}")},
               "object": {"key": key, "size": 451, "versionId": version, "eTag": "e", "sequencer": "01"}}}]})
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
    let report = deps.handle(upload(&key.replace(' ', "+"), "v1"), None).await.expect("a report");
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
    assert_eq!(calls(&running, "UpdateKeyGroup")[0].params["IfMatch"].len(), 14, "the update quoted the ETag");
}

#[tokio::test]
async fn given_the_same_upload_twice_when_handled_then_one_public_key_is_created() {
    let key = format!("keys/{GROUP}/site-2026-11.pem");
    let running = start(seed(&["K1OLD", "K2MID"], &[(&key, "rsa-2048-second.pem")])).await;
    let deps = function(&running, &[]).await;
    deps.handle(upload(&key, "v1"), None).await.unwrap();
    assert!(deps.handle(upload(&key, "v1"), None).await.unwrap().replayed);
    // Another instance: the same CallerReference gets the same key back, and the group already has it.
    let again = function(&running, &[]).await.handle(upload(&key, "v1"), None).await.unwrap();
    assert_eq!(again.actions.last().map(|a| a.detail.as_str()), Some("already as desired"));
    assert_eq!(running.emulator.world().cloudfront.public_keys.len(), 3);
}

#[tokio::test]
async fn given_a_concurrent_edit_on_the_first_update_when_rotating_then_it_rereads_once_and_converges() {
    let running = start(seed(&["K1OLD", "K2MID"], &[])).await;
    running.emulator.add_fault(local::FaultRule {
        service: None,
        operation: "UpdateKeyGroup".into(),
        when: Default::default(),
        error: Some("PreconditionFailed".into()),
        status: None,
        message: None,
        probability: None,
        count: Some(1),
        latency_ms: None,
        region: None,
        after: None,
    });
    let deps = function(&running, &[]).await;
    let report = deps
        .handle(json!({"keyGroupId": GROUP, "addPublicKeyPem": pem("rsa-2048-second.pem")}), None)
        .await
        .expect("converges");
    let outcomes: Vec<String> = calls(&running, "UpdateKeyGroup").into_iter().map(|c| c.outcome).collect();
    assert_eq!(outcomes, vec!["PreconditionFailed", "ok"]);
    assert_eq!(calls(&running, "GetKeyGroup").len(), 3, "the plan-first read, then one read per round: one extra");
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
    assert!(!group.is_empty() && group.len() <= 5, "{group:?}");
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
    let report = deps.handle(upload(&key, "v1"), None).await.expect("an event source gets a report");
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
