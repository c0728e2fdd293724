//! CloudFront conformance: the real aws-sdk-cloudfront against the emulator — public keys, key groups, ETags,
//! CallerReference conflicts (and replays when a seed asks), quotas, paging, and every modeled error the functions handle as a typed variant.

use crate::support;

use aws_sdk_cloudfront::Client;
use aws_sdk_cloudfront::operation::create_key_group::CreateKeyGroupError;
use aws_sdk_cloudfront::operation::create_public_key::CreatePublicKeyError;
use aws_sdk_cloudfront::operation::delete_public_key::DeletePublicKeyError;
use aws_sdk_cloudfront::operation::get_key_group::GetKeyGroupError;
use aws_sdk_cloudfront::operation::update_key_group::UpdateKeyGroupError;
use aws_sdk_cloudfront::types::{KeyGroupConfig, PublicKeyConfig};
use serde_json::json;
use support::*;

fn pem(name: &str) -> String {
    let path = format!("{}/../shared/tests/fixtures/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).expect(&path)
}

async fn client(running: &local::Running) -> Client {
    Client::new(&sdk(running, "us-east-1").await)
}

fn key_config(reference: &str, name: &str, pem_file: &str) -> PublicKeyConfig {
    PublicKeyConfig::builder()
        .caller_reference(reference)
        .name(name)
        .encoded_key(pem(pem_file))
        .comment("from tests")
        .build()
        .unwrap()
}

async fn create_key(client: &Client, reference: &str, name: &str, pem_file: &str) -> String {
    client
        .create_public_key()
        .public_key_config(key_config(reference, name, pem_file))
        .send()
        .await
        .unwrap()
        .public_key
        .unwrap()
        .id
}

fn group_config(name: &str, items: &[&str]) -> KeyGroupConfig {
    let mut b = KeyGroupConfig::builder().name(name).comment("signed URLs for /private");
    for i in items {
        b = b.items(*i);
    }
    b.build().unwrap()
}

#[tokio::test]
async fn given_public_key_when_created_then_read_back_with_etag_and_a_repeated_caller_reference_is_refused() {
    let running = emulator(json!({})).await;
    let client = client(&running).await;
    let created = client
        .create_public_key()
        .public_key_config(key_config("ref-1", "web-2026", "rsa-2048.pem"))
        .send()
        .await
        .unwrap();
    let key = created.public_key.clone().unwrap();
    assert!(created.e_tag.is_some());
    assert!(created.location.unwrap().ends_with(&key.id));
    let got = client.get_public_key().id(&key.id).send().await.unwrap();
    assert_eq!(got.public_key, Some(key.clone()), "every member, CreatedTime included, round-trips");
    assert_eq!(got.e_tag, created.e_tag);
    // The same request again, and the same reference with other content: both PublicKeyAlreadyExists, as the API
    // reference documents (it promises no replay).
    for (name, file) in [("web-2026", "rsa-2048.pem"), ("web-2027", "ec-p256.pem")] {
        let err = client
            .create_public_key()
            .public_key_config(key_config("ref-1", name, file))
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        assert!(matches!(err, CreatePublicKeyError::PublicKeyAlreadyExists(_)), "{err:?}");
    }
    let listed = client.list_public_keys().send().await.unwrap().public_key_list.unwrap();
    assert_eq!(listed.quantity, 1);
    assert_eq!(listed.items.unwrap()[0].name, "web-2026");
}

#[tokio::test]
async fn given_a_seed_that_asks_for_replays_when_the_same_request_is_repeated_then_the_original_key_comes_back() {
    let running = emulator(json!({"cloudfront": {"replayCallerReference": true}})).await;
    let client = client(&running).await;
    let first = create_key(&client, "ref-1", "web-2026", "rsa-2048.pem").await;
    let again = create_key(&client, "ref-1", "web-2026", "rsa-2048.pem").await;
    assert_eq!(again, first, "the same key, not a second one");
    let err = client
        .create_public_key()
        .public_key_config(key_config("ref-1", "web-2027", "ec-p256.pem"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(
        matches!(err, CreatePublicKeyError::PublicKeyAlreadyExists(_)),
        "other content is still a conflict: {err:?}"
    );
}

#[tokio::test]
async fn given_keys_cloudfront_refuses_when_created_then_invalid_argument_naming_what_was_found_and_nothing_stored() {
    let running = emulator(json!({})).await;
    let client = client(&running).await;
    for (file, found) in
        [("rsa-1024.pem", "RSA 1024-bit"), ("ec-p384.pem", "P-384"), ("garbage.pem", "not a PEM public key")]
    {
        let err = client
            .create_public_key()
            .public_key_config(key_config(file, "k", file))
            .send()
            .await
            .unwrap_err()
            .into_service_error();
        let CreatePublicKeyError::InvalidArgument(e) = &err else { panic!("{file}: {err:?}") };
        assert!(e.message().unwrap_or_default().contains(found), "{file}: {:?}", e.message());
    }
    assert!(running.emulator.world().cloudfront.public_keys.is_empty());
}

#[tokio::test]
async fn given_key_group_when_updated_then_etag_guards_every_change() {
    let running = emulator(json!({})).await;
    let client = client(&running).await;
    let k1 = create_key(&client, "r1", "k1", "rsa-2048.pem").await;
    let k2 = create_key(&client, "r2", "k2", "ec-p256.pem").await;
    let created = client.create_key_group().key_group_config(group_config("site", &[&k1])).send().await.unwrap();
    let group = created.key_group.unwrap();
    let etag1 = created.e_tag.unwrap();
    let config = client.get_key_group_config().id(&group.id).send().await.unwrap();
    assert_eq!(config.key_group_config.as_ref(), Some(&group_config("site", &[&k1])));
    assert_eq!(config.e_tag.as_deref(), Some(etag1.as_str()));
    // WHEN updated with the current ETag THEN a new ETag and the new items
    let updated = client
        .update_key_group()
        .id(&group.id)
        .if_match(&etag1)
        .key_group_config(group_config("site", &[&k1, &k2]))
        .send()
        .await
        .unwrap();
    let etag2 = updated.e_tag.unwrap();
    assert_ne!(etag2, etag1);
    assert_eq!(updated.key_group.unwrap().key_group_config.unwrap().items, vec![k1.clone(), k2.clone()]);
    // WHEN updated with the old ETag THEN PreconditionFailed and nothing changes
    let err = client
        .update_key_group()
        .id(&group.id)
        .if_match(&etag1)
        .key_group_config(group_config("site", &[&k2]))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, UpdateKeyGroupError::PreconditionFailed(_)), "{err:?}");
    // WHEN updated without If-Match THEN InvalidIfMatchVersion
    let err = client
        .update_key_group()
        .id(&group.id)
        .key_group_config(group_config("site", &[&k2]))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, UpdateKeyGroupError::InvalidIfMatchVersion(_)), "{err:?}");
    // WHEN it names an unknown key, or six keys, or is empty THEN typed errors
    let err = client
        .update_key_group()
        .id(&group.id)
        .if_match(&etag2)
        .key_group_config(group_config("site", &["KNOSUCHKEY"]))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, UpdateKeyGroupError::InvalidArgument(_)), "{err:?}");
    let many: Vec<String> = (0..6).map(|i| format!("K{i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let err = client
        .update_key_group()
        .id(&group.id)
        .if_match(&etag2)
        .key_group_config(group_config("site", &refs))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, UpdateKeyGroupError::TooManyPublicKeysInKeyGroup(_)), "{err:?}");
    let err = client
        .update_key_group()
        .id("no-such-group")
        .if_match(&etag2)
        .key_group_config(group_config("site", &[&k1]))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, UpdateKeyGroupError::NoSuchResource(_)), "{err:?}");
    let current = client.get_key_group().id(&group.id).send().await.unwrap();
    assert_eq!(current.e_tag.as_deref(), Some(etag2.as_str()), "failed updates leave the ETag");
    assert_eq!(
        current.key_group.unwrap().key_group_config.unwrap().comment.as_deref(),
        Some("signed URLs for /private")
    );
    let err = client.get_key_group().id("no-such-group").send().await.unwrap_err().into_service_error();
    assert!(matches!(err, GetKeyGroupError::NoSuchResource(_)), "{err:?}");
}

#[tokio::test]
async fn given_key_in_a_group_when_deleted_then_in_use_until_removed() {
    let running = emulator(json!({})).await;
    let client = client(&running).await;
    let k1 = create_key(&client, "r1", "k1", "rsa-2048.pem").await;
    let k2 = create_key(&client, "r2", "k2", "rsa-2048-second.pem").await;
    let group = client.create_key_group().key_group_config(group_config("site", &[&k1, &k2])).send().await.unwrap();
    let key_etag = client.get_public_key().id(&k1).send().await.unwrap().e_tag.unwrap();
    let err = client.delete_public_key().id(&k1).if_match(&key_etag).send().await.unwrap_err().into_service_error();
    assert!(matches!(err, DeletePublicKeyError::PublicKeyInUse(_)), "{err:?}");
    client
        .update_key_group()
        .id(&group.key_group.unwrap().id)
        .if_match(group.e_tag.unwrap())
        .key_group_config(group_config("site", &[&k2]))
        .send()
        .await
        .unwrap();
    let err = client.delete_public_key().id(&k1).if_match("EWRONG").send().await.unwrap_err().into_service_error();
    assert!(matches!(err, DeletePublicKeyError::PreconditionFailed(_)), "{err:?}");
    client.delete_public_key().id(&k1).if_match(&key_etag).send().await.expect("deleted once unreferenced");
    let err = client.delete_public_key().id(&k1).if_match(&key_etag).send().await.unwrap_err().into_service_error();
    assert!(matches!(err, DeletePublicKeyError::NoSuchPublicKey(_)), "{err:?}");
}

#[tokio::test]
async fn given_many_groups_when_listed_by_marker_then_every_group_once() {
    let running = emulator(json!({})).await;
    let client = client(&running).await;
    let k = create_key(&client, "r", "k", "ec-p256.pem").await;
    for i in 0..4 {
        client.create_key_group().key_group_config(group_config(&format!("g{i}"), &[&k])).send().await.unwrap();
    }
    let err = client
        .create_key_group()
        .key_group_config(group_config("g0", &[&k]))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, CreateKeyGroupError::KeyGroupAlreadyExists(_)), "{err:?}");
    let mut names = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let list = client
            .list_key_groups()
            .max_items(3)
            .set_marker(marker.clone())
            .send()
            .await
            .unwrap()
            .key_group_list
            .unwrap();
        names.extend(
            list.items.unwrap_or_default().into_iter().map(|s| s.key_group.unwrap().key_group_config.unwrap().name),
        );
        marker = list.next_marker;
        if marker.is_none() {
            break;
        }
    }
    names.sort();
    assert_eq!(names, vec!["g0", "g1", "g2", "g3"]);
}

#[tokio::test]
async fn given_account_quota_when_exceeded_then_too_many_public_keys_and_key_groups() {
    let running = emulator(json!({"cloudfront": {"maxPublicKeys": 2}})).await;
    let client = client(&running).await;
    let k = create_key(&client, "r1", "k1", "rsa-2048.pem").await;
    create_key(&client, "r2", "k2", "ec-p256.pem").await;
    let err = client
        .create_public_key()
        .public_key_config(key_config("r3", "k3", "rsa-2048-second.pem"))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, CreatePublicKeyError::TooManyPublicKeys(_)), "{err:?}");
    for i in 0..local::cloudfront::MAX_KEY_GROUPS {
        client.create_key_group().key_group_config(group_config(&format!("g{i}"), &[&k])).send().await.unwrap();
    }
    let err = client
        .create_key_group()
        .key_group_config(group_config("one-more", &[&k]))
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, CreateKeyGroupError::TooManyKeyGroups(_)), "{err:?}");
}

#[tokio::test]
async fn given_injected_precondition_failure_when_updating_then_typed_412_and_state_unchanged() {
    let running = emulator(json!({})).await;
    let client = client(&running).await;
    let k = create_key(&client, "r", "k", "rsa-2048.pem").await;
    let group = client.create_key_group().key_group_config(group_config("site", &[&k])).send().await.unwrap();
    let (id, etag) = (group.key_group.unwrap().id, group.e_tag.unwrap());
    let (status, _) = admin(
        &running,
        "POST",
        "/_keeper/faults",
        Some(&json!({"operation": "UpdateKeyGroup", "error": "PreconditionFailed", "count": 1})),
    )
    .await;
    assert_eq!(status, 200);
    let before = running.emulator.dump()["cloudfront"].clone();
    let err = client
        .update_key_group()
        .id(&id)
        .if_match(&etag)
        .key_group_config(group_config("site", &[&k]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(412));
    assert!(matches!(err.into_service_error(), UpdateKeyGroupError::PreconditionFailed(_)));
    assert_eq!(running.emulator.dump()["cloudfront"], before, "an injected fault changes nothing");
    assert!(running.emulator.world().faults.rules.is_empty(), "a count-1 fault retires after firing");
    client
        .update_key_group()
        .id(&id)
        .if_match(&etag)
        .key_group_config(group_config("site", &[&k]))
        .send()
        .await
        .expect("the fault fired once");
    let (_, calls) = admin(&running, "GET", "/_keeper/calls", None).await;
    let updates: Vec<&serde_json::Value> =
        calls.as_array().unwrap().iter().filter(|c| c["operation"] == "UpdateKeyGroup").collect();
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0]["outcome"], "PreconditionFailed");
    assert_eq!(updates[0]["injected"], true);
    assert_eq!(updates[0]["params"]["Id"], id.as_str());
    assert_eq!(updates[1]["outcome"], "ok");
}

#[tokio::test]
async fn given_bad_inputs_when_sent_then_invalid_argument_and_key_group_deleted_only_with_current_etag() {
    let running = emulator(json!({})).await;
    let client = client(&running).await;
    let k = create_key(&client, "r", "k", "rsa-2048.pem").await;
    let long = PublicKeyConfig::builder()
        .caller_reference("r2")
        .name("k2")
        .encoded_key(pem("ec-p256.pem"))
        .comment("c".repeat(129))
        .build()
        .unwrap();
    let err = client.create_public_key().public_key_config(long).send().await.unwrap_err().into_service_error();
    assert!(matches!(err, CreatePublicKeyError::InvalidArgument(_)), "{err:?}");
    let bad_name = KeyGroupConfig::builder().name("has space").items(&k).build().unwrap();
    let err = client.create_key_group().key_group_config(bad_name).send().await.unwrap_err().into_service_error();
    assert!(matches!(err, CreateKeyGroupError::InvalidArgument(_)), "{err:?}");
    let err = client.list_key_groups().max_items(0).send().await.unwrap_err();
    assert_eq!(aws_sdk_cloudfront::error::ProvideErrorMetadata::code(&err), Some("InvalidArgument"));
    let group = client.create_key_group().key_group_config(group_config("site", &[&k])).send().await.unwrap();
    let id = group.key_group.unwrap().id;
    let err = client.delete_key_group().id(&id).if_match("ESTALE").send().await.unwrap_err().into_service_error();
    assert!(err.is_precondition_failed(), "{err:?}");
    let err = client.delete_key_group().id(&id).send().await.unwrap_err().into_service_error();
    assert!(err.is_invalid_if_match_version(), "{err:?}");
    client
        .delete_key_group()
        .id(&id)
        .if_match(group.e_tag.unwrap())
        .send()
        .await
        .expect("deleted with the current ETag");
    assert!(running.emulator.world().cloudfront.key_groups.is_empty());
    let err = client.delete_key_group().id(&id).if_match("E").send().await.unwrap_err().into_service_error();
    assert!(err.is_no_such_resource(), "{err:?}");
}
