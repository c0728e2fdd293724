//! Managed signing keys end to end: rotations driven exactly as Secrets Manager drives them (RotateSecret makes the
//! pending version, then the four steps with its token), through the real Secrets Manager and CloudFront SDKs,
//! against the emulated account; every step repeated, crashed at each of its calls and answered lost.

use std::time::{Duration, SystemTime};

use aws_sdk_secretsmanager::types::{RotationRulesType, Tag};
use rotate_key_group::RotateKeyGroup;
use rotate_key_group::keypair;
use rotate_key_group::secrets::SigningKey;
use serde_json::{Value, json};
use shared::config::Lookup;
use shared::host::Host;
use shared::report::{Outcome, Report};
use testbed::emulator::{fast_settings, sdk_config, start};

use super::{GROUP, Logs, answer_lost, host_on, hours_ago, pem};

const NAME: &str = "keeper/signing-key/5f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f";
const LAMBDA: &str = "arn:aws:lambda:us-east-1:123456789012:function:keeper-RotateKeyGroupFunction";
const STEPS: [&str; 4] = ["createSecret", "setSecret", "testSecret", "finishSecret"];
/// What the steps may change in the account; every other call they make reads.
const WRITES: [&str; 5] =
    ["CreatePublicKey", "PutSecretValue", "UpdateKeyGroup", "UpdateSecretVersionStage", "DeletePublicKey"];

/// The group signed by K0HAND, a key made by hand long ago.
fn seed() -> Value {
    json!({"cloudfront": {
        "publicKeys": {"K0HAND": {"callerReference": "hand", "name": "site-hand", "encodedKey": pem("rsa-2048.pem"), "createdTime": hours_ago(500)}},
        "keyGroups": {GROUP: {"name": "site-signed-urls", "items": ["K0HAND"], "comment": "signed URLs"}}
    }})
}

async fn secrets_client(running: &local::Running) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&sdk_config(running, "us-east-1", &fast_settings(3)).await)
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// The secret as the template makes it: a placeholder value, tagged with the stack and the key group.
async fn managed_secret(sm: &aws_sdk_secretsmanager::Client, tags: &[(&str, &str)]) -> String {
    let mut create = sm.create_secret().name(NAME).secret_string("{}");
    for (k, v) in tags {
        create = create.tags(tag(k, v));
    }
    create.send().await.expect("CreateSecret").arn.expect("an ARN")
}

const OURS: [(&str, &str); 2] = [("keeper:stack", "keeper"), ("keeper:key-group", GROUP)];

/// RotateSecret, as the rotation schedule calls it: the pending version's token.
async fn start_rotation(sm: &aws_sdk_secretsmanager::Client, arn: &str) -> String {
    let rules = RotationRulesType::builder().automatically_after_days(30).build();
    let out = sm.rotate_secret().secret_id(arn).rotation_lambda_arn(LAMBDA).rotation_rules(rules).send().await;
    out.expect("RotateSecret").version_id.expect("the rotation's version")
}

fn event(arn: &str, token: &str, step: &str) -> Value {
    json!({"SecretId": arn, "ClientRequestToken": token, "Step": step})
}

/// One whole rotation: RotateSecret, then the four steps in order, each answered; their reports.
async fn rotate(host: &Host<RotateKeyGroup>, sm: &aws_sdk_secretsmanager::Client, arn: &str) -> (String, Vec<Report>) {
    let token = start_rotation(sm, arn).await;
    let mut reports = Vec::new();
    for step in STEPS {
        reports.push(host.handle(event(arn, &token, step), None).await.unwrap_or_else(|d| panic!("{step}: {d:?}")));
    }
    (token, reports)
}

/// The signing key a signer reads: the secret's AWSCURRENT.
async fn current(sm: &aws_sdk_secretsmanager::Client, arn: &str) -> (String, SigningKey) {
    let out = sm.get_secret_value().secret_id(arn).send().await.expect("AWSCURRENT");
    let key = SigningKey::parse(out.secret_string().unwrap_or_default()).expect("a signing key");
    (out.version_id.expect("a version"), key)
}

/// Whether CloudFront would accept a signed URL: its key pair is in the group and the signature verifies with the
/// public key CloudFront holds for it.
fn accepted(running: &local::Running, url: &str) -> bool {
    let id = url.split("Key-Pair-Id=").nth(1).and_then(|rest| rest.split('&').next()).unwrap_or_default().to_string();
    let world = running.emulator.world();
    let in_group = world.cloudfront.key_groups[GROUP].items.contains(&id);
    let stored = world.cloudfront.public_keys.get(&id).map(|k| k.encoded_key.clone());
    in_group && stored.is_some_and(|pem| keypair::verify_url(url, &pem).is_ok_and(|named| named == id))
}

fn signed_by(key: &SigningKey, path: &str) -> String {
    let url = format!("https://d111111abcdef8.cloudfront.net/{path}");
    keypair::sign_url(&url, 4_000_000_000, &key.key_pair_id, key.algorithm, &key.private_key).unwrap()
}

fn items(running: &local::Running) -> Vec<String> {
    running.emulator.world().cloudfront.key_groups[GROUP].items.clone()
}

fn writes(running: &local::Running) -> Vec<String> {
    let calls = running.emulator.calls();
    calls
        .iter()
        .filter(|c| WRITES.contains(&c.operation.as_str()) && c.outcome == "ok")
        .map(|c| c.operation.clone())
        .collect()
}

fn lines(report: &Report) -> Vec<(&str, Outcome)> {
    report.actions.iter().map(|a| (a.action.as_str(), a.outcome)).collect()
}

/// The public keys keeper made (every key but the seeded one).
fn made(running: &local::Running) -> Vec<String> {
    running.emulator.world().cloudfront.public_keys.keys().filter(|id| *id != "K0HAND").cloned().collect()
}

#[tokio::test]
async fn given_a_managed_secret_when_secrets_manager_rotates_it_then_the_new_key_signs_for_the_group_and_the_old_keeps_signing()
 {
    for algorithm in ["RSA_2048", "ECDSA_P256"] {
        // GIVEN the template's secret for the group signed by K0HAND
        let running = start(seed()).await;
        let store = testbed::guard::store().await;
        let host = host_on(&running, &store, &[("KEY_ALGORITHM", algorithm)]).await;
        let sm = secrets_client(&running).await;
        let arn = managed_secret(&sm, &OURS).await;
        // WHEN Secrets Manager rotates it: RotateSecret, then the four steps
        let (token, reports) = rotate(&host, &sm, &arn).await;
        // THEN each step did its part, once
        let said: Vec<Vec<(&str, Outcome)>> = reports.iter().map(lines).collect();
        assert_eq!(
            said,
            vec![
                vec![("create-key", Outcome::Applied), ("store-key", Outcome::Applied)],
                vec![("add-key", Outcome::Applied)],
                vec![("test-key", Outcome::Applied)],
                vec![("make-current", Outcome::Applied)],
            ],
            "{reports:#?}"
        );
        assert_eq!(
            writes(&running),
            ["CreatePublicKey", "PutSecretValue", "UpdateKeyGroup", "UpdateSecretVersionStage"]
        );
        // AND the signer's AWSCURRENT is the new version: its key pair, in the group beside the key it replaces
        let (version, key) = current(&sm, &arn).await;
        assert_eq!(version, token);
        assert_eq!((key.key_group_id.as_str(), key.algorithm.as_str()), (GROUP, algorithm));
        assert_eq!(items(&running), vec!["K0HAND".to_string(), key.key_pair_id.clone()]);
        assert!(key.private_key.expose_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(keypair::public_key_of(key.algorithm, &key.private_key).unwrap(), key.public_key);
        assert!(accepted(&running, &signed_by(&key, "a.jpg")), "a URL signed with AWSCURRENT is accepted");
        // AND the placeholder it replaced is AWSPREVIOUS
        let previous = sm.get_secret_value().secret_id(&arn).version_stage("AWSPREVIOUS").send().await.unwrap();
        assert_eq!(previous.secret_string(), Some("{}"));
        let world = running.emulator.world();
        let comment = world.cloudfront.public_keys[&key.key_pair_id].comment.clone().unwrap_or_default();
        assert!(comment.starts_with("keeper:keeper managed by secret keeper/signing-key/"), "{comment}");
    }
}

#[tokio::test]
async fn given_each_step_done_when_secrets_manager_calls_it_again_on_another_instance_then_it_finds_it_done_and_changes_nothing()
 {
    // GIVEN a rotation whose every step is called twice, the second time by an instance that has no record of it
    let running = start(seed()).await;
    let store = testbed::guard::store().await;
    let host = host_on(&running, &store, &[("KEY_ALGORITHM", "ECDSA_P256")]).await;
    let sm = secrets_client(&running).await;
    let arn = managed_secret(&sm, &OURS).await;
    let token = start_rotation(&sm, &arn).await;
    for step in STEPS {
        host.handle(event(&arn, &token, step), None).await.unwrap_or_else(|d| panic!("{step}: {d:?}"));
        let before = writes(&running).len();
        let fresh = testbed::guard::store().await;
        let again = host_on(&running, &fresh, &[("KEY_ALGORITHM", "ECDSA_P256")]).await;
        let report =
            again.handle(event(&arn, &token, step), None).await.unwrap_or_else(|d| panic!("{step} again: {d:?}"));
        // THEN the repeat changes nothing, and says why
        assert_eq!(writes(&running).len(), before, "{step} again: {report:#?}");
        assert!(
            report.actions.iter().all(|a| a.outcome != Outcome::Applied || a.action == "test-key"),
            "{step}: {report:#?}"
        );
    }
    // AND the rotation is one key, current and in the group
    let (version, key) = current(&sm, &arn).await;
    assert_eq!((version, made(&running)), (token, vec![key.key_pair_id.clone()]));
}

#[tokio::test]
async fn given_the_answer_of_each_write_lost_when_rotating_then_the_sdks_retry_finds_it_done_and_the_rotation_is_one_key()
 {
    for write in ["CreatePublicKey", "PutSecretValue", "UpdateKeyGroup", "UpdateSecretVersionStage"] {
        // GIVEN the write's call takes effect and its answer is lost (the SDK retries it)
        let running = start(seed()).await;
        let store = testbed::guard::store().await;
        let host = host_on(&running, &store, &[("KEY_ALGORITHM", "ECDSA_P256")]).await;
        let sm = secrets_client(&running).await;
        let arn = managed_secret(&sm, &OURS).await;
        running.emulator.world().faults.rules.push(answer_lost(write));
        // WHEN Secrets Manager rotates
        let (token, reports) = rotate(&host, &sm, &arn).await;
        // THEN every step succeeded, saying it did the work (not that someone else did), and there is one new key
        let (version, key) = current(&sm, &arn).await;
        assert_eq!(version, token, "{write}");
        assert_eq!(made(&running), vec![key.key_pair_id.clone()], "{write}: one key pair, no orphan");
        assert_eq!(items(&running), vec!["K0HAND".to_string(), key.key_pair_id.clone()], "{write}");
        let applied: Vec<&str> = reports
            .iter()
            .flat_map(|r| r.actions.iter())
            .filter(|a| a.outcome == Outcome::Applied)
            .map(|a| a.action.as_str())
            .collect();
        assert_eq!(
            applied,
            ["create-key", "store-key", "add-key", "test-key", "make-current"],
            "{write}: {reports:#?}"
        );
        assert!(accepted(&running, &signed_by(&key, "lost.jpg")), "{write}");
    }
}

/// The calls one step makes, in order, with how many calls of the same operation came before each in the step.
fn calls_of(calls: &[local::Call]) -> Vec<(String, usize)> {
    let mut out: Vec<(String, usize)> = Vec::new();
    for call in calls {
        let nth = out.iter().filter(|(op, _)| *op == call.operation).count();
        out.push((call.operation.clone(), nth));
    }
    out
}

#[tokio::test]
async fn given_a_step_killed_at_any_of_its_calls_when_secrets_manager_calls_it_again_then_the_rotation_finishes_as_one_key()
 {
    // GIVEN the calls each step makes in a rotation that nothing interrupts
    let running = start(seed()).await;
    let store = testbed::guard::store().await;
    let settings = [("KEY_ALGORITHM", "ECDSA_P256"), ("DEADLINE_MARGIN_MS", "100")];
    let host = host_on(&running, &store, &settings).await;
    let sm = secrets_client(&running).await;
    let arn = managed_secret(&sm, &OURS).await;
    let token = start_rotation(&sm, &arn).await;
    let mut per_step = Vec::new();
    for step in STEPS {
        let before = running.emulator.calls().len();
        host.handle(event(&arn, &token, step), None).await.unwrap();
        per_step.push(calls_of(&running.emulator.calls()[before..]));
    }
    let mut cases = 0;
    for (s, step) in STEPS.iter().enumerate() {
        for (operation, nth) in per_step[s].clone() {
            // WHEN the step is killed once its call has taken effect (nothing after it runs, not even the guard's
            // clean-up), and Secrets Manager calls it again once the killed attempt's deadline has passed
            let running = start(seed()).await;
            let store = testbed::guard::store().await;
            let host = host_on(&running, &store, &settings).await;
            let sm = secrets_client(&running).await;
            let arn = managed_secret(&sm, &OURS).await;
            let token = start_rotation(&sm, &arn).await;
            for earlier in &STEPS[..s] {
                host.handle(event(&arn, &token, earlier), None).await.unwrap();
            }
            let mut held = running.emulator.hold_after(&operation, nth);
            let deadline = SystemTime::now() + Duration::from_millis(900);
            let payload = event(&arn, &token, step);
            let mut run = Box::pin(host.handle(payload.clone(), Some(deadline)));
            tokio::select! {
                done = &mut run => panic!("{step} ended before its call {operation}#{nth}: {done:?}"),
                Ok(()) = &mut held.reached => {}
            }
            drop(run);
            held.release();
            running.emulator.clear_holds();
            tokio::time::sleep(
                deadline.duration_since(SystemTime::now()).unwrap_or_default() + Duration::from_millis(50),
            )
            .await;
            for rest in &STEPS[s..] {
                host.handle(event(&arn, &token, rest), None)
                    .await
                    .unwrap_or_else(|d| panic!("killed in {step} at {operation}#{nth}: {rest}: {d:?}"));
            }
            // THEN the rotation is finished, with one key pair that signs for the group; a key pair made by an
            // attempt killed before it was stored belongs to no version and is in no group (the sweep's orphan)
            let case = format!("killed in {step} at {operation}#{nth}");
            let (version, key) = current(&sm, &arn).await;
            assert_eq!(version, token, "{case}");
            assert_eq!(items(&running), vec!["K0HAND".to_string(), key.key_pair_id.clone()], "{case}");
            assert!(accepted(&running, &signed_by(&key, "killed.jpg")), "{case}");
            let orphans: Vec<String> = made(&running).into_iter().filter(|id| *id != key.key_pair_id).collect();
            let killed_after_create = *step == "createSecret" && operation == "CreatePublicKey";
            assert_eq!(orphans.len(), usize::from(killed_after_create), "{case}: {orphans:?}");
            assert_eq!(writes(&running).iter().filter(|w| *w == "UpdateSecretVersionStage").count(), 1, "{case}");
            cases += 1;
        }
    }
    assert!(cases >= 15, "every call of every step was a case: {cases}");
}

#[tokio::test]
async fn given_a_console_edit_of_the_group_between_set_secrets_read_and_update_when_it_writes_then_it_rereads_and_keeps_both()
 {
    // GIVEN a rotation at setSecret, and someone adding KCONSOLE in the console once setSecret has read the group
    let running = start(seed()).await;
    let store = testbed::guard::store().await;
    let host = host_on(&running, &store, &[("KEY_ALGORITHM", "ECDSA_P256"), ("MAX_KEYS", "3")]).await;
    let sm = secrets_client(&running).await;
    let arn = managed_secret(&sm, &OURS).await;
    let token = start_rotation(&sm, &arn).await;
    host.handle(event(&arn, &token, "createSecret"), None).await.unwrap();
    let mut held = running.emulator.hold("GetKeyGroup");
    let set = host.handle(event(&arn, &token, "setSecret"), None);
    let edit = async {
        (&mut held.reached).await.expect("setSecret read the group");
        let mut world = running.emulator.world();
        let console = local::cloudfront::PublicKey {
            caller_reference: "console".into(),
            name: "console-key".into(),
            encoded_key: pem("ec-p256.pem"),
            comment: None,
            created_time: hours_ago(1),
            etag: "E1CONSOLE".into(),
        };
        world.cloudfront.public_keys.insert("KCONSOLE".into(), console);
        let group = world.cloudfront.key_groups.get_mut(GROUP).unwrap();
        group.items.push("KCONSOLE".into());
        group.etag = "E2CONSOLEEDIT".into();
        drop(world);
        held.release();
    };
    let (report, ()) = tokio::join!(set, edit);
    report.expect("setSecret");
    // WHEN the rotation finishes
    for step in ["testSecret", "finishSecret"] {
        host.handle(event(&arn, &token, step), None).await.unwrap();
    }
    // THEN its stale update was refused, it read again, and the group keeps the console's key and adds its own
    let (_, key) = current(&sm, &arn).await;
    assert_eq!(items(&running), vec!["K0HAND".to_string(), "KCONSOLE".to_string(), key.key_pair_id.clone()]);
    let updates: Vec<String> = running
        .emulator
        .calls()
        .iter()
        .filter(|c| c.operation == "UpdateKeyGroup")
        .map(|c| c.outcome.clone())
        .collect();
    assert_eq!(updates.len(), 2, "{updates:?}");
    assert_ne!(updates[0], "ok", "the update on the stale ETag was refused");
}

#[tokio::test]
async fn given_two_instances_driving_the_same_rotation_at_once_when_both_finish_then_the_rotation_is_one_key() {
    // GIVEN two instances (one table between them), each running every step of the same rotation at the same time,
    // as when Secrets Manager calls a step again while its first attempt still runs
    let running = start(seed()).await;
    let store = testbed::guard::store().await;
    let settings = [("KEY_ALGORITHM", "ECDSA_P256")];
    let (a, b) = (host_on(&running, &store, &settings).await, host_on(&running, &store, &settings).await);
    let sm = secrets_client(&running).await;
    let arn = managed_secret(&sm, &OURS).await;
    let token = start_rotation(&sm, &arn).await;
    let drive = |host: &'static Host<RotateKeyGroup>| {
        let (arn, token) = (arn.clone(), token.clone());
        async move {
            for step in STEPS {
                // A step another instance holds is answered with a retryable error; Secrets Manager calls it again.
                let mut tries = 0;
                while let Err(d) = host.handle(event(&arn, &token, step), None).await {
                    tries += 1;
                    assert!(d.error_type.starts_with("Retryable.") && tries < 50, "{step}: {d:?}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    };
    let (a, b): (&'static Host<RotateKeyGroup>, &'static Host<RotateKeyGroup>) =
        (Box::leak(Box::new(a)), Box::leak(Box::new(b)));
    tokio::join!(drive(a), drive(b));
    // THEN one key pair was made, stored, added and made current
    let (version, key) = current(&sm, &arn).await;
    assert_eq!(version, token);
    assert_eq!(made(&running), vec![key.key_pair_id.clone()]);
    assert_eq!(items(&running), vec!["K0HAND".to_string(), key.key_pair_id.clone()]);
    let w = writes(&running);
    for (write, times) in
        [("CreatePublicKey", 1), ("PutSecretValue", 1), ("UpdateKeyGroup", 1), ("UpdateSecretVersionStage", 1)]
    {
        assert_eq!(w.iter().filter(|x| *x == write).count(), times, "{write}: {w:?}");
    }
}

#[tokio::test]
async fn given_a_url_signed_before_a_rotation_when_the_next_rotates_then_it_works_through_the_grace_period_and_the_new_one_after()
 {
    // GIVEN a first rotation, and a URL signed with its key by a signer reading AWSCURRENT
    let running = start(seed()).await;
    let store = testbed::guard::store().await;
    let host = host_on(&running, &store, &[("KEY_ALGORITHM", "ECDSA_P256")]).await;
    let sm = secrets_client(&running).await;
    let arn = managed_secret(&sm, &OURS).await;
    rotate(&host, &sm, &arn).await;
    let (_, first) = current(&sm, &arn).await;
    let before = signed_by(&first, "before.jpg");
    // WHEN the next rotation runs, and then a sweep within the 24-hour grace period
    rotate(&host, &sm, &arn).await;
    let (_, second) = current(&sm, &arn).await;
    host.handle(json!({"keyGroupId": GROUP}), None).await.expect("a sweep by request");
    // THEN the old URL still works (its key is in the group, the key it replaced left because its grace ran out
    // before the first rotation), and a URL signed with the new AWSCURRENT works too
    assert_ne!(first.key_pair_id, second.key_pair_id);
    assert!(accepted(&running, &before), "signed before the rotation, inside the grace period: {:?}", items(&running));
    let after = signed_by(&second, "after.jpg");
    assert!(accepted(&running, &after));
    assert!(items(&running).contains(&first.key_pair_id));
    // AND once the grace period is over (a deployment with no grace stands in for the day passing), the old key
    // leaves and its URL stops working; the new key's URL keeps working
    let later =
        host_on(&running, &store, &[("KEY_ALGORITHM", "ECDSA_P256"), ("GRACE_HOURS", "0"), ("MAX_KEYS", "1")]).await;
    let sweep = json!({"keyGroupId": GROUP, "requestId": "sweep-after-the-grace-period"});
    let swept = later.handle(sweep, None).await.expect("a sweep after the grace period");
    assert!(!accepted(&running, &before), "{swept:#?}");
    assert!(accepted(&running, &after));
    assert_eq!(items(&running), vec![second.key_pair_id.clone()]);
}

#[tokio::test]
async fn given_a_rotation_not_finished_yet_when_a_sweep_runs_past_the_grace_period_then_the_key_signers_still_use_stays()
 {
    // GIVEN a rotation stopped after setSecret (its testSecret failing, say): the new key is in the group, signers
    // still read the old key from AWSCURRENT
    let running = start(seed()).await;
    let store = testbed::guard::store().await;
    let host = host_on(&running, &store, &[("KEY_ALGORITHM", "ECDSA_P256")]).await;
    let sm = secrets_client(&running).await;
    let arn = managed_secret(&sm, &OURS).await;
    rotate(&host, &sm, &arn).await;
    let (_, signing) = current(&sm, &arn).await;
    let token = start_rotation(&sm, &arn).await;
    for step in ["createSecret", "setSecret"] {
        host.handle(event(&arn, &token, step), None).await.unwrap();
    }
    // WHEN a sweep with no grace period and room for one key runs
    let sweep = host_on(&running, &store, &[("GRACE_HOURS", "0"), ("MAX_KEYS", "1")]).await;
    sweep.handle(json!({"keyGroupId": GROUP}), None).await.expect("a sweep");
    // THEN the key AWSCURRENT still names keeps signing: the pending key has not replaced it yet
    assert!(items(&running).contains(&signing.key_pair_id), "{:?}", items(&running));
    assert!(accepted(&running, &signed_by(&signing, "still.jpg")));
}

#[tokio::test]
async fn given_secrets_and_tokens_not_for_this_deployment_when_a_step_is_called_then_a_clear_error_and_no_write() {
    let running = start(seed()).await;
    let store = testbed::guard::store().await;
    let host = host_on(&running, &store, &[("KEY_ALGORITHM", "ECDSA_P256")]).await;
    let sm = secrets_client(&running).await;
    type Tags<'a> = &'a [(&'a str, &'a str)];
    let cases: [(Tags<'_>, &str, &str); 3] = [
        (&[("keeper:key-group", GROUP)], "createSecret", "has no keeper:stack tag"),
        (
            &[("keeper:stack", "other-stack"), ("keeper:key-group", GROUP)],
            "createSecret",
            "tagged keeper:stack=other-stack",
        ),
        (
            &[("keeper:stack", "keeper"), ("keeper:key-group", "0000-not-listed")],
            "createSecret",
            "not one of KEY_GROUP_IDS",
        ),
    ];
    for (i, (tags, step, rule)) in cases.iter().enumerate() {
        // GIVEN a secret tagged for another stack, or for a group the deployment does not change
        let name = format!("other-{i}");
        let mut create = sm.create_secret().name(&name).secret_string("{}");
        for (k, v) in tags.iter() {
            create = create.tags(tag(k, v));
        }
        let arn = create.send().await.unwrap().arn.unwrap();
        let token = start_rotation(&sm, &arn).await;
        // WHEN Secrets Manager calls a step THEN it fails as a function error naming the rule, and nothing is written
        let d = host.handle(event(&arn, &token, step), None).await.expect_err("refused");
        assert!(d.error_type == "Permanent.InvalidInput" && d.error_message.contains(rule), "{d:?}");
    }
    // GIVEN this deployment's secret WHEN a step names a token that is no version, or setSecret comes first
    let arn = managed_secret(&sm, &OURS).await;
    let d = host.handle(event(&arn, "00000000-0000-4000-8000-000000000000", "createSecret"), None).await.unwrap_err();
    assert!(d.error_message.contains("does not have rotation turned on"), "{d:?}");
    let token = start_rotation(&sm, &arn).await;
    let d = host.handle(event(&arn, "00000000-0000-4000-8000-000000000000", "createSecret"), None).await.unwrap_err();
    assert!(d.error_message.contains("is not a version of secret"), "{d:?}");
    let d = host.handle(event(&arn, &token, "setSecret"), None).await.unwrap_err();
    assert!(d.error_message.contains("createSecret has not stored its key"), "{d:?}");
    let d = host.handle(event(&arn, &token, "finishSecret"), None).await.unwrap_err();
    assert!(d.error_message.contains("createSecret has not stored its key"), "{d:?}");
    // AND a dry run is refused: Secrets Manager would take a planned step for a done one
    let dry = host_on(&running, &store, &[("DRY_RUN", "true")]).await;
    let d = dry.handle(event(&arn, &token, "createSecret"), None).await.unwrap_err();
    assert!(d.error_message.contains("DRY_RUN"), "{d:?}");
    assert_eq!(writes(&running), Vec::<String>::new(), "no refused step wrote anything");
}

#[tokio::test]
async fn given_a_group_full_within_its_grace_or_an_account_out_of_keys_when_create_secret_runs_then_refused_before_making_anything()
 {
    // GIVEN a group of five keys that all joined an hour ago
    let mut full = seed();
    let keys = ["K1", "K2", "K3", "K4", "K5"];
    for id in keys {
        full["cloudfront"]["publicKeys"][id] =
            json!({"callerReference": id, "name": id, "encodedKey": pem("ec-p256.pem"), "createdTime": hours_ago(1)});
    }
    full["cloudfront"]["keyGroups"][GROUP]["items"] = json!(keys);
    for (seed, settings, rule) in [
        (full, vec![("MAX_KEYS", "5")], "next key becomes retirable at"),
        (seed(), vec![("PUBLIC_KEY_QUOTA", "1")], "PUBLIC_KEY_QUOTA is 1"),
    ] {
        let running = start(seed).await;
        let store = testbed::guard::store().await;
        let mut settings = settings;
        settings.push(("KEY_ALGORITHM", "ECDSA_P256"));
        let host = host_on(&running, &store, &settings).await;
        let sm = secrets_client(&running).await;
        let arn = managed_secret(&sm, &OURS).await;
        let token = start_rotation(&sm, &arn).await;
        // WHEN createSecret runs THEN it is refused saying when it could fit, and no key or version was made
        let d = host.handle(event(&arn, &token, "createSecret"), None).await.unwrap_err();
        assert!(d.error_type == "Permanent.QuotaWouldBeExceeded" && d.error_message.contains(rule), "{d:?}");
        assert_eq!(writes(&running), Vec::<String>::new());
    }
}

#[tokio::test]
async fn given_a_rotation_logged_at_trace_when_its_logs_and_reports_are_read_then_no_private_key_appears() {
    // GIVEN the function's JSON logs captured at TRACE, the most that can ever be written
    let logs = Logs::default();
    let lookup = Lookup::from_pairs(&[("AWS_LAMBDA_LOG_FORMAT", "JSON"), ("AWS_LAMBDA_LOG_LEVEL", "TRACE")]);
    let _guard = tracing::subscriber::set_default(shared::telemetry::subscriber(&lookup, logs.clone(), false));
    let running = start(seed()).await;
    let store = testbed::guard::store().await;
    let host = host_on(&running, &store, &[("KEY_ALGORITHM", "ECDSA_P256")]).await;
    let sm = secrets_client(&running).await;
    let arn = managed_secret(&sm, &OURS).await;
    // WHEN a rotation runs, with a step refused on the way
    let (token, reports) = rotate(&host, &sm, &arn).await;
    let _ = host.handle(event(&arn, "00000000-0000-4000-8000-000000000000", "testSecret"), None).await;
    // THEN neither the logs nor the reports carry the private key, in part or whole
    let (_, key) = current(&sm, &arn).await;
    let written =
        String::from_utf8(logs.0.lock().unwrap().clone()).unwrap() + &serde_json::to_string(&reports).unwrap();
    assert!(written.contains(&token), "the rotation was logged");
    assert!(!written.contains("PRIVATE KEY"), "{written}");
    let body: String = key.private_key.expose_pem().lines().filter(|l| !l.starts_with("-----")).collect();
    for start in (0..body.len().saturating_sub(24)).step_by(12) {
        assert!(!written.contains(&body[start..start + 24]), "a piece of the private key is in the logs or reports");
    }
}

#[tokio::test]
async fn given_the_pending_key_removed_from_the_group_after_test_secret_when_finish_secret_runs_then_awscurrent_stays()
{
    // GIVEN a rotation tested, and then its key removed from the group in the console
    let running = start(seed()).await;
    let store = testbed::guard::store().await;
    let host = host_on(&running, &store, &[("KEY_ALGORITHM", "ECDSA_P256")]).await;
    let sm = secrets_client(&running).await;
    let arn = managed_secret(&sm, &OURS).await;
    let token = start_rotation(&sm, &arn).await;
    for step in ["createSecret", "setSecret", "testSecret"] {
        host.handle(event(&arn, &token, step), None).await.unwrap();
    }
    running.emulator.world().cloudfront.key_groups.get_mut(GROUP).unwrap().items.retain(|id| id == "K0HAND");
    // WHEN finishSecret runs THEN it fails, and signers keep reading the version whose key still signs
    let d = host.handle(event(&arn, &token, "finishSecret"), None).await.unwrap_err();
    assert!(d.error_message.contains("is no longer in key group"), "{d:?}");
    let current = sm.get_secret_value().secret_id(&arn).send().await.unwrap();
    assert_ne!(current.version_id.as_deref(), Some(token.as_str()));
    assert!(!writes(&running).contains(&"UpdateSecretVersionStage".to_string()));
}
