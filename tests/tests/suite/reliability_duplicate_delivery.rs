//! Reliability: the same event delivered ten times at once, to ten instances of each function that share one
//! idempotency store (memory, and DynamoDB on a real moto server), must have exactly the effect of one delivery.
//! Lambda does this: an SNS or S3 event is delivered at least once, and a retry can overlap the first attempt.

// Four functions' pipelines in one async test nest deeper than the default limit.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::join_all;
use rotate_key_group::RotateKeyGroup;
use serde_json::Value;
use shared::config::Lookup;
use shared::host::{Function, Host};
use shared::idempotency::{IdempotencyStore, MemoryStore};
use start_idle_image_builders::StartIdleImageBuilders;
use testbed::emulator::{effects, fast_settings, host, sdk_config, start};
use testbed::moto::Moto;
use testbed::samples::{DEMO_SETTINGS, demo_account, sample};
use update_distribution_regions::UpdateDistributionRegions;
use update_image_lifecycle::UpdateImageLifecycle;

const DELIVERIES: usize = 10;

/// One delivery of `event` to a fresh account: the effect the ten must equal.
async fn one_delivery<F: Function>(event: &Value) -> BTreeMap<String, usize> {
    let running = start(demo_account()).await;
    let report = host::<F>(&running, 3, &DEMO_SETTINGS)
        .await
        .handle(event.clone(), None)
        .await
        .unwrap_or_else(|e| panic!("{}: {e:?}", F::NAME));
    assert!(report.error.is_none(), "{}: {report:?}", F::NAME);
    effects(&running.emulator.calls())
}

/// Ten instances sharing `store` receive `event` at once, then Lambda's retries of those that were refused while the
/// first ran; returns the effects and how many deliveries ran the pipeline (not replayed, not refused).
async fn ten_deliveries<F: Function>(
    event: &Value,
    store: Arc<dyn IdempotencyStore>,
) -> (BTreeMap<String, usize>, usize) {
    let running = start(demo_account()).await;
    let sdk = sdk_config(&running, "us-east-1", &fast_settings(3)).await;
    let hosts: Vec<Host<F>> = (0..DELIVERIES)
        .map(|_| {
            Host::<F>::with_store(&sdk, &Lookup::from_pairs(&DEMO_SETTINGS), store.clone()).expect("valid settings")
        })
        .collect();
    let answers = join_all(hosts.iter().map(|h| h.handle(event.clone(), None))).await;
    let mut ran = 0;
    let mut refused = 0;
    for answer in &answers {
        match answer {
            Ok(report) if !report.replayed => ran += 1,
            Ok(_) => {}
            // The only acceptable refusal: the event is in progress elsewhere, which Lambda retries.
            Err(e) if e.error_type == "Retryable.InProgress" => refused += 1,
            Err(e) => panic!("{}: a delivery failed: {e:?}", F::NAME),
        }
    }
    // Lambda's retries of the refused deliveries, after the first finished: each is answered from the record.
    for host in hosts.iter().take(refused) {
        let report = host.handle(event.clone(), None).await.unwrap_or_else(|e| panic!("{}: retry: {e:?}", F::NAME));
        assert!(report.replayed, "{}: a retry after the first finished is a replay", F::NAME);
    }
    (effects(&running.emulator.calls()), ran)
}

async fn check<F: Function>(sample_name: &str) {
    let event = sample(F::NAME, sample_name);
    // GIVEN the effect of one delivery (which must change something, or nothing is proven)
    let once = one_delivery::<F>(&event).await;
    assert!(!once.is_empty(), "{} {sample_name}: one delivery changes nothing", F::NAME);
    for guard in ["memory", "dynamodb"] {
        let (store, _moto): (Arc<dyn IdempotencyStore>, Option<Moto>) = match guard {
            "memory" => (Arc::new(MemoryStore::default()), None),
            _ => {
                let moto = tokio::task::spawn_blocking(Moto::start).await.expect("moto start");
                (Arc::new(moto.idempotency_store().await), Some(moto))
            }
        };
        // WHEN it is delivered ten times at once, and the refused deliveries are retried
        let (effects, ran) = ten_deliveries::<F>(&event, store).await;
        // THEN exactly one delivery ran, and the account saw exactly one delivery's effect: no call twice
        assert_eq!(ran, 1, "{} {sample_name} ({guard} guard): deliveries that ran the pipeline", F::NAME);
        assert_eq!(effects, once, "{} {sample_name} ({guard} guard): effects of ten deliveries", F::NAME);
    }
}

#[tokio::test]
async fn given_a_start_request_delivered_ten_times_at_once_when_handled_then_each_builder_starts_once() {
    check::<StartIdleImageBuilders>("manual-start.json").await;
}

#[tokio::test]
async fn given_a_key_upload_delivered_ten_times_at_once_when_handled_then_one_key_is_created_and_the_group_updated_once()
 {
    check::<RotateKeyGroup>("s3-put.json").await;
}

#[tokio::test]
async fn given_a_region_change_delivered_ten_times_at_once_when_handled_then_the_configuration_is_updated_once() {
    check::<UpdateDistributionRegions>("manual-add.json").await;
}

#[tokio::test]
async fn given_a_deprecation_delivered_ten_times_at_once_when_handled_then_one_state_update() {
    check::<UpdateImageLifecycle>("explicit-deprecate.json").await;
}
