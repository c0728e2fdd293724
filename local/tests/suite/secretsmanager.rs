//! Secrets Manager conformance: the real aws-sdk-secretsmanager against the emulator, over awsJson1_1: versions and
//! their staging labels, idempotent puts, rotation requests a driver runs, and the typed errors AWS answers with.

use crate::support;

use std::collections::HashMap;

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::operation::create_secret::CreateSecretError;
use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
use aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueError;
use aws_sdk_secretsmanager::operation::rotate_secret::RotateSecretError;
use aws_sdk_secretsmanager::operation::update_secret_version_stage::UpdateSecretVersionStageError;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::{RotationRulesType, Tag};
use local::FaultRule;
use serde_json::json;
use support::*;

const LAMBDA: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotate-db";
const TOKEN_2: &str = "22222222-2222-4222-8222-222222222222";
const TOKEN_3: &str = "33333333-3333-4333-8333-333333333333";

async fn client(running: &local::Running) -> Client {
    Client::new(&sdk(running, "us-east-1").await)
}

/// Creates `name` holding `value` and returns its ARN and first version id.
async fn created(client: &Client, name: &str, value: &str) -> (String, String) {
    let out = client.create_secret().name(name).secret_string(value).send().await.unwrap();
    (out.arn.unwrap(), out.version_id.unwrap())
}

/// The secret value a staging label points at.
async fn value_at(client: &Client, name: &str, stage: &str) -> String {
    let out = client.get_secret_value().secret_id(name).version_stage(stage).send().await.unwrap();
    out.secret_string.unwrap()
}

/// DescribeSecret's VersionIdsToStages, labels sorted.
async fn stages_described(client: &Client, name: &str) -> HashMap<String, Vec<String>> {
    let described = client.describe_secret().secret_id(name).send().await.unwrap();
    let mut stages = described.version_ids_to_stages.unwrap_or_default();
    for labels in stages.values_mut() {
        labels.sort();
    }
    stages
}

fn labels(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[tokio::test]
async fn given_a_secret_created_with_a_value_when_read_then_awscurrent_holds_it_by_name_and_by_arn() {
    let running = emulator(json!({})).await;
    let client = client(&running).await;
    // GIVEN a secret created with a string, tags and a description
    let out = client
        .create_secret()
        .name("db-password")
        .secret_string("hunter2")
        .description("the web database")
        .tags(Tag::builder().key("team").value("web").build())
        .send()
        .await
        .unwrap();
    let arn = out.arn.unwrap();
    let version = out.version_id.unwrap();
    let prefix = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-password-";
    assert!(arn.starts_with(prefix) && arn.len() == prefix.len() + 6, "{arn}");
    // WHEN it is read by name, by ARN and by the ARN without its suffix THEN the first version, staged AWSCURRENT
    for id in [String::from("db-password"), arn.clone(), arn[..arn.len() - 7].to_string()] {
        let got = client.get_secret_value().secret_id(&id).send().await.unwrap();
        assert_eq!(got.secret_string.as_deref(), Some("hunter2"), "{id}");
        assert_eq!(got.version_id.as_deref(), Some(version.as_str()));
        assert_eq!(got.version_stages.unwrap_or_default(), labels(&["AWSCURRENT"]));
        assert_eq!((got.arn.as_deref(), got.name.as_deref()), (Some(arn.as_str()), Some("db-password")));
        assert!(got.created_date.is_some());
    }
    let described = client.describe_secret().secret_id(&arn).send().await.unwrap();
    assert_eq!(described.description.as_deref(), Some("the web database"));
    let tags = described.tags.unwrap_or_default();
    assert_eq!(tags.len(), 1);
    assert_eq!((tags[0].key.as_deref(), tags[0].value.as_deref()), (Some("team"), Some("web")));
    assert_eq!(described.rotation_enabled, None, "never configured for rotation");
    // WHEN the same name is created again THEN ResourceExistsException
    let err = client.create_secret().name("db-password").secret_string("other").send().await.unwrap_err();
    assert!(matches!(err.into_service_error(), CreateSecretError::ResourceExistsException(_)));
    // AND a binary secret comes back as the bytes it was given
    let bytes = vec![0u8, 1, 2, 254, 255];
    client.create_secret().name("signing-key").secret_binary(Blob::new(bytes.clone())).send().await.unwrap();
    let got = client.get_secret_value().secret_id("signing-key").send().await.unwrap();
    assert_eq!(got.secret_binary.map(|b| b.into_inner()), Some(bytes));
    assert_eq!(got.secret_string, None);
}

#[tokio::test]
async fn given_a_pending_version_when_awscurrent_moves_to_it_then_awsprevious_follows_and_the_old_version_keeps_only_awsprevious()
 {
    let running = emulator(json!({})).await;
    let client = client(&running).await;
    let (_, first) = created(&client, "db", "v1").await;
    // GIVEN a second version staged AWSPENDING
    let put = client
        .put_secret_value()
        .secret_id("db")
        .client_request_token(TOKEN_2)
        .secret_string("v2")
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    assert_eq!(put.version_id.as_deref(), Some(TOKEN_2));
    assert_eq!(put.version_stages.unwrap_or_default(), labels(&["AWSPENDING"]));
    assert_eq!(value_at(&client, "db", "AWSCURRENT").await, "v1", "a pending version is not current");
    assert_eq!(value_at(&client, "db", "AWSPENDING").await, "v2");
    // WHEN AWSCURRENT moves onto it, naming the version it leaves
    client
        .update_secret_version_stage()
        .secret_id("db")
        .version_stage("AWSCURRENT")
        .move_to_version_id(TOKEN_2)
        .remove_from_version_id(&first)
        .send()
        .await
        .unwrap();
    // THEN the new version is current (still pending too), and the old one keeps only AWSPREVIOUS
    let stages = stages_described(&client, "db").await;
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert_eq!(stages[TOKEN_2], labels(&["AWSCURRENT", "AWSPENDING"]));
    assert_eq!(stages[&first], labels(&["AWSPREVIOUS"]));
    assert_eq!(value_at(&client, "db", "AWSCURRENT").await, "v2");
    assert_eq!(value_at(&client, "db", "AWSPREVIOUS").await, "v1");
    // WHEN AWSCURRENT moves back THEN the labels swap again
    client
        .update_secret_version_stage()
        .secret_id("db")
        .version_stage("AWSCURRENT")
        .move_to_version_id(&first)
        .remove_from_version_id(TOKEN_2)
        .send()
        .await
        .unwrap();
    let stages = stages_described(&client, "db").await;
    assert_eq!(stages[&first], labels(&["AWSCURRENT"]));
    assert_eq!(stages[TOKEN_2], labels(&["AWSPENDING", "AWSPREVIOUS"]));
}

#[tokio::test]
async fn given_awscurrent_on_another_version_when_moved_without_remove_from_version_id_then_invalid_parameter_and_nothing_changes()
 {
    let running = emulator(json!({})).await;
    let client = client(&running).await;
    let (_, first) = created(&client, "db", "v1").await;
    client
        .put_secret_value()
        .secret_id("db")
        .client_request_token(TOKEN_2)
        .secret_string("v2")
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    let before = running.emulator.dump();
    // WHEN AWSCURRENT is moved without naming the version that holds it
    let err = client
        .update_secret_version_stage()
        .secret_id("db")
        .version_stage("AWSCURRENT")
        .move_to_version_id(TOKEN_2)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    // THEN InvalidParameterException naming that version, and the labels as they were
    assert!(matches!(err, UpdateSecretVersionStageError::InvalidParameterException(_)), "{err:?}");
    let message = err.message().unwrap_or_default().to_string();
    assert!(message.contains("RemoveFromVersionId can't be empty") && message.contains(&first), "{message}");
    // WHEN RemoveFromVersionId names a version that does not hold the label THEN refused the same way
    let err = client
        .update_secret_version_stage()
        .secret_id("db")
        .version_stage("AWSCURRENT")
        .move_to_version_id(TOKEN_2)
        .remove_from_version_id(TOKEN_2)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, UpdateSecretVersionStageError::InvalidParameterException(_)), "{err:?}");
    // WHEN the version to move to does not exist THEN ResourceNotFoundException
    let err = client
        .update_secret_version_stage()
        .secret_id("db")
        .version_stage("AWSCURRENT")
        .move_to_version_id(TOKEN_3)
        .remove_from_version_id(&first)
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert!(matches!(err, UpdateSecretVersionStageError::ResourceNotFoundException(_)), "{err:?}");
    assert_eq!(running.emulator.dump(), before, "a refused move changes nothing");
    assert_eq!(value_at(&client, "db", "AWSCURRENT").await, "v1");
    // WHEN the label is moved onto the version that already holds it THEN nothing to do, and no error
    client
        .update_secret_version_stage()
        .secret_id("db")
        .version_stage("AWSCURRENT")
        .move_to_version_id(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(stages_described(&client, "db").await[&first], labels(&["AWSCURRENT"]));
}

#[tokio::test]
async fn given_a_version_token_when_put_again_then_the_same_value_is_idempotent_and_another_value_is_resource_exists() {
    let running = emulator(json!({})).await;
    let client = client(&running).await;
    let (_, first) = created(&client, "db", "v1").await;
    let put = |value: &'static str| {
        client.put_secret_value().secret_id("db").client_request_token(TOKEN_2).secret_string(value).send()
    };
    // GIVEN a version put with a token (AWSCURRENT by default, AWSPREVIOUS following)
    let out = put("v2").await.unwrap();
    assert_eq!(out.version_stages.unwrap_or_default(), labels(&["AWSCURRENT"]));
    let after_first = running.emulator.dump();
    // WHEN the same token and value come again (a retry) THEN the same version, and nothing changes
    let again = put("v2").await.unwrap();
    assert_eq!(again.version_id.as_deref(), Some(TOKEN_2));
    assert_eq!(again.version_stages.unwrap_or_default(), labels(&["AWSCURRENT"]));
    assert_eq!(running.emulator.dump(), after_first);
    // WHEN the same token comes with another value THEN ResourceExistsException: a version never changes
    let err = put("v3").await.unwrap_err().into_service_error();
    assert!(matches!(err, PutSecretValueError::ResourceExistsException(_)), "{err:?}");
    assert_eq!(running.emulator.dump(), after_first);
    assert_eq!(value_at(&client, "db", "AWSCURRENT").await, "v2");
    assert_eq!(value_at(&client, "db", "AWSPREVIOUS").await, "v1");
    let stages = stages_described(&client, "db").await;
    assert_eq!(stages[&first], labels(&["AWSPREVIOUS"]));
    // WHEN neither value is given THEN InvalidRequestException
    let err = client.put_secret_value().secret_id("db").send().await.unwrap_err().into_service_error();
    assert!(matches!(err, PutSecretValueError::InvalidRequestException(_)), "{err:?}");
}

#[tokio::test]
async fn given_a_rotation_pending_when_rotate_secret_is_called_again_then_invalid_request_until_the_rotation_finishes()
{
    let running = emulator(json!({})).await;
    let client = client(&running).await;
    let (arn, first) = created(&client, "db", "v1").await;
    // GIVEN no rotation function WHEN rotated THEN InvalidRequestException
    let err = client.rotate_secret().secret_id("db").send().await.unwrap_err().into_service_error();
    assert!(matches!(err, RotateSecretError::InvalidRequestException(_)), "{err:?}");
    // WHEN rotation is configured THEN the request a driver runs is recorded, its token the new version's id
    let rules = RotationRulesType::builder().automatically_after_days(30).build();
    let rotated =
        client.rotate_secret().secret_id("db").rotation_lambda_arn(LAMBDA).rotation_rules(rules).send().await.unwrap();
    let token = rotated.version_id.unwrap();
    assert_eq!(rotated.arn.as_deref(), Some(arn.as_str()));
    let requests = running.emulator.world().rotation_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!((requests[0].secret_arn.as_str(), requests[0].token.as_str()), (arn.as_str(), token.as_str()));
    assert_eq!(requests[0].lambda_arn, LAMBDA);
    // AND the token names a version staged AWSPENDING, still without a value: only DescribeSecret shows it
    let stages = stages_described(&client, "db").await;
    assert_eq!((stages.len(), &stages[&token]), (2, &labels(&["AWSPENDING"])), "{stages:?}");
    let listed = client.list_secret_version_ids().secret_id("db").send().await.unwrap().versions.unwrap_or_default();
    assert_eq!(listed.len(), 1, "ListSecretVersionIds lists only versions with a value: {listed:?}");
    let err = client.get_secret_value().secret_id("db").version_stage("AWSPENDING").send().await.unwrap_err();
    assert!(matches!(err.into_service_error(), GetSecretValueError::ResourceNotFoundException(_)));
    // AND another rotation is refused already: this one is under way
    let err = client.rotate_secret().secret_id("db").send().await.unwrap_err().into_service_error();
    assert!(matches!(err, RotateSecretError::InvalidRequestException(_)), "{err:?}");
    // AND the driver takes it through the admin API, once
    let (status, taken) = admin(&running, "DELETE", "/_keeper/rotations", None).await;
    assert_eq!((status, taken[0]["token"].as_str()), (200, Some(token.as_str())));
    assert_eq!(admin(&running, "GET", "/_keeper/rotations", None).await.1, json!([]));
    // WHEN the function's createSecret step puts the new value, staged AWSPENDING
    let put = client
        .put_secret_value()
        .secret_id(&arn)
        .client_request_token(&token)
        .secret_string("v2")
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    assert_eq!(put.version_id.as_deref(), Some(token.as_str()));
    assert_eq!(value_at(&client, "db", "AWSPENDING").await, "v2");
    // THEN another rotation is still refused while that one is not finished
    let err = client.rotate_secret().secret_id("db").send().await.unwrap_err().into_service_error();
    assert!(matches!(err, RotateSecretError::InvalidRequestException(_)), "{err:?}");
    assert!(err.message().unwrap_or_default().contains("A previous rotation isn't complete"), "{err:?}");
    assert!(running.emulator.world().rotation_requests().is_empty());
    // WHEN its finishSecret step moves AWSCURRENT THEN the rotation is complete and another may start
    client
        .update_secret_version_stage()
        .secret_id(&arn)
        .version_stage("AWSCURRENT")
        .move_to_version_id(&token)
        .remove_from_version_id(&first)
        .send()
        .await
        .unwrap();
    let described = client.describe_secret().secret_id("db").send().await.unwrap();
    assert_eq!(described.rotation_enabled, Some(true));
    assert_eq!(described.rotation_lambda_arn.as_deref(), Some(LAMBDA));
    assert_eq!(described.rotation_rules.and_then(|r| r.automatically_after_days), Some(30));
    assert!(described.last_rotated_date.is_some());
    let next = client.rotate_secret().secret_id("db").send().await.unwrap().version_id.unwrap();
    assert_ne!(next, token);
    assert_eq!(running.emulator.world().rotation_requests().len(), 1);
    // AND the new rotation's version took AWSPENDING off the finished one
    let stages = stages_described(&client, "db").await;
    assert_eq!((&stages[&token], &stages[&next]), (&labels(&["AWSCURRENT"]), &labels(&["AWSPENDING"])));
    // WHEN rotation is cancelled THEN it is off, the labels stay, and the Lambda is no longer asked for
    let cancelled = client.cancel_rotate_secret().secret_id("db").send().await.unwrap();
    assert_eq!(cancelled.version_id.as_deref(), Some(next.as_str()));
    assert!(running.emulator.world().rotation_requests().is_empty());
    let described = client.describe_secret().secret_id("db").send().await.unwrap();
    assert_eq!(described.rotation_enabled, Some(false));
    assert_eq!(described.last_rotated_date, None, "rotation off: no rotation date");
    assert_eq!(stages_described(&client, "db").await, stages, "cancelling leaves the labels as they are");
}

#[tokio::test]
async fn given_a_stage_no_version_holds_when_read_then_resource_not_found() {
    let running = emulator(json!({})).await;
    let client = client(&running).await;
    let (_, first) = created(&client, "db", "v1").await;
    // WHEN a staging label no version holds is read
    let err = client.get_secret_value().secret_id("db").version_stage("AWSPENDING").send().await.unwrap_err();
    let err = err.into_service_error();
    // THEN ResourceNotFoundException naming the label
    assert!(matches!(err, GetSecretValueError::ResourceNotFoundException(_)), "{err:?}");
    assert!(err.message().unwrap_or_default().contains("for staging label: AWSPENDING"), "{err:?}");
    // AND likewise for an unknown version id, a version id and a label that disagree, and an unknown secret
    let err = client.get_secret_value().secret_id("db").version_id(TOKEN_3).send().await.unwrap_err();
    assert!(matches!(err.into_service_error(), GetSecretValueError::ResourceNotFoundException(_)));
    let err = client
        .get_secret_value()
        .secret_id("db")
        .version_id(&first)
        .version_stage("AWSPREVIOUS")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err.into_service_error(), GetSecretValueError::ResourceNotFoundException(_)));
    let err = client.get_secret_value().secret_id("nobody").send().await.unwrap_err();
    assert!(matches!(err.into_service_error(), GetSecretValueError::ResourceNotFoundException(_)));
    // AND a secret created without a value has no current version
    client.create_secret().name("empty").send().await.unwrap();
    let err = client.get_secret_value().secret_id("empty").send().await.unwrap_err();
    assert!(matches!(err.into_service_error(), GetSecretValueError::ResourceNotFoundException(_)));
    // AND a version id and the label it holds agree
    let got = client.get_secret_value().secret_id("db").version_id(&first).version_stage("AWSCURRENT").send().await;
    assert_eq!(got.unwrap().secret_string.as_deref(), Some("v1"));
}

#[tokio::test]
async fn given_several_versions_when_listed_page_by_page_and_described_then_both_name_the_same_labelled_versions() {
    let running = emulator(json!({})).await;
    let client = client(&running).await;
    // GIVEN three values: the first ends up with no label (deprecated)
    let (_, first) = created(&client, "db", "v1").await;
    for (token, value) in [(TOKEN_2, "v2"), (TOKEN_3, "v3")] {
        client
            .put_secret_value()
            .secret_id("db")
            .client_request_token(token)
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }
    // WHEN listed one version per page
    let mut listed = HashMap::new();
    let mut next_token = None;
    let mut pages = 0;
    loop {
        let page = client
            .list_secret_version_ids()
            .secret_id("db")
            .max_results(1)
            .set_next_token(next_token)
            .send()
            .await
            .unwrap();
        pages += 1;
        assert_eq!(page.name.as_deref(), Some("db"));
        for version in page.versions.unwrap_or_default() {
            assert!(version.created_date.is_some());
            let mut stages = version.version_stages.unwrap_or_default();
            stages.sort();
            listed.insert(version.version_id.unwrap(), stages);
        }
        next_token = page.next_token;
        if next_token.is_none() {
            break;
        }
    }
    // THEN the labelled versions, the same as DescribeSecret's VersionIdsToStages
    assert_eq!(pages, 2);
    let described = stages_described(&client, "db").await;
    assert_eq!(listed, described);
    assert_eq!(described[TOKEN_3], labels(&["AWSCURRENT"]));
    assert_eq!(described[TOKEN_2], labels(&["AWSPREVIOUS"]));
    assert!(!described.contains_key(&first));
    // AND with IncludeDeprecated the first version too, without labels
    let all = client.list_secret_version_ids().secret_id("db").include_deprecated(true).send().await.unwrap();
    let all = all.versions.unwrap_or_default();
    assert_eq!(all.len(), 3);
    let oldest = all.iter().find(|v| v.version_id.as_deref() == Some(first.as_str())).unwrap();
    assert!(oldest.version_stages.as_ref().is_none_or(|s| s.is_empty()), "{oldest:?}");
    // AND a deprecated version is still read by its id
    let got = client.get_secret_value().secret_id("db").version_id(&first).send().await.unwrap();
    assert_eq!(got.secret_string.as_deref(), Some("v1"));
}

#[tokio::test]
async fn given_tags_added_and_a_fault_on_get_secret_value_when_called_then_tags_merge_and_the_fault_answers_once() {
    let running = emulator(json!({})).await;
    let client = client(&running).await;
    client
        .create_secret()
        .name("db")
        .secret_string("v1")
        .tags(Tag::builder().key("team").value("web").build())
        .send()
        .await
        .unwrap();
    // WHEN tags are added, one replacing a value THEN the secret has both, the new value kept
    client
        .tag_resource()
        .secret_id("db")
        .tags(Tag::builder().key("team").value("data").build())
        .tags(Tag::builder().key("owner").value("ops").build())
        .send()
        .await
        .unwrap();
    let tags = client.describe_secret().secret_id("db").send().await.unwrap().tags.unwrap_or_default();
    let tags: HashMap<String, String> =
        tags.into_iter().map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default())).collect();
    assert_eq!(
        tags,
        HashMap::from([("team".to_string(), "data".to_string()), ("owner".to_string(), "ops".to_string())])
    );
    // WHEN a fault is injected on GetSecretValue THEN the next call gets it, typed, and the one after passes
    running.emulator.add_fault(FaultRule {
        service: Some("secretsmanager".into()),
        count: Some(1),
        when: [("SecretId".to_string(), "db".to_string())].into(),
        ..FaultRule::error("GetSecretValue", "InternalServiceError")
    });
    let err = client.get_secret_value().secret_id("db").send().await.unwrap_err().into_service_error();
    assert!(matches!(err, GetSecretValueError::InternalServiceError(_)), "{err:?}");
    assert_eq!(value_at(&client, "db", "AWSCURRENT").await, "v1");
    let calls = calls_of(&running, "GetSecretValue");
    assert_eq!(calls.len(), 2);
    assert!(calls[0].injected && calls[0].outcome == "InternalServiceError", "{calls:?}");
    assert!(calls[1].ok() && !calls[1].injected, "{calls:?}");
    assert!(calls.iter().all(|c| c.service == "secretsmanager"));
    // WHEN a model constraint is broken THEN ValidationException naming the member
    let err = client.get_secret_value().secret_id("db").version_id("short").send().await.unwrap_err();
    assert_eq!(err.code(), Some("ValidationException"));
    assert!(err.message().unwrap_or_default().contains("at 'VersionId'"), "{:?}", err.message());
}
