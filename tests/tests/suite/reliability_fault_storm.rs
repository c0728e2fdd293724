//! Reliability: a storm of transient failures. 30% of every call a function makes fails with that service's
//! transient errors (throttling, 503, ConcurrentModification, ResourceInUse, PreconditionFailed), under a fixed random
//! seed. With the SDK's retries and Lambda's (the event handled again, up to two more times, on a retryable answer),
//! every run must converge and leave exactly the effect of a run without faults: nothing missing, nothing twice.

// Four functions' pipelines in one async test nest deeper than the default limit.

use std::collections::BTreeSet;

use rotate_key_group::RotateKeyGroup;
use serde_json::{Value, json};
use shared::host::Function;
use start_idle_image_builders::StartIdleImageBuilders;
use testbed::emulator::{effects, host, mutating, start};
use testbed::samples::{DEMO_SETTINGS, demo_account, sample};
use update_distribution_regions::UpdateDistributionRegions;
use update_image_lifecycle::UpdateImageLifecycle;

/// Lambda's asynchronous invocation: the first attempt and two retries.
const LAMBDA_ATTEMPTS: usize = 3;
const STORM: f64 = 0.3;
/// Fixed seeds: each storm is reproducible, and eight of them hit different calls.
const SEEDS: [u64; 8] = [20261123, 7, 42, 1000003, 99991, 1, 2, 3];

/// The transient error a call of `operation` gets in the storm: the one that operation really meets under contention,
/// else the service's throttling or unavailability.
fn transient(service: &str, operation: &str) -> &'static str {
    match (service, operation) {
        ("appstream", "StartImageBuilder" | "StopImageBuilder") => "ConcurrentModificationException",
        ("appstream", _) => "ThrottlingException",
        ("cloudfront", "UpdateKeyGroup") => "PreconditionFailed",
        ("cloudfront", _) => "Throttling",
        ("imagebuilder", "StartResourceStateUpdate") => "ResourceInUseException",
        ("imagebuilder", "UpdateDistributionConfiguration") => "CallRateLimitExceededException",
        ("imagebuilder", _) => "ServiceUnavailableException",
        _ => "SlowDown",
    }
}

/// The function's settings for the storm: the demo's, with more SDK attempts (5), as a deployment would set them.
fn settings() -> Vec<(&'static str, &'static str)> {
    let mut pairs: Vec<(&str, &str)> = DEMO_SETTINGS.iter().filter(|(k, _)| *k != "MAX_ATTEMPTS").copied().collect();
    pairs.push(("MAX_ATTEMPTS", "5"));
    pairs
}

/// Runs the event as Lambda would (a retryable answer is handled again), against `seed`; returns the calls and how
/// many invocations it took.
async fn run<F: Function>(seed: Value, event: &Value) -> (Vec<local::Call>, usize) {
    let running = start(seed).await;
    let host = host::<F>(&running, 5, &settings()).await;
    for attempt in 1..=LAMBDA_ATTEMPTS {
        match host.handle(event.clone(), None).await {
            Ok(report) => {
                assert!(report.error.is_none(), "{}: {report:?}", F::NAME);
                return (running.emulator.calls(), attempt);
            }
            Err(e) if e.error_type.starts_with("Retryable.") => continue,
            Err(e) => panic!("{}: a permanent failure in the storm: {e:?}", F::NAME),
        }
    }
    panic!("{}: did not converge within {LAMBDA_ATTEMPTS} Lambda attempts", F::NAME)
}

async fn check<F: Function>(sample_name: &str) {
    let event = sample(F::NAME, sample_name);
    // GIVEN the run without faults, which must change something, and every call it makes
    let (calm_calls, _) = run::<F>(demo_account(), &event).await;
    let calm = effects(&calm_calls);
    assert!(!calm.is_empty(), "{} {sample_name}: the calm run changes nothing", F::NAME);
    // WHEN 30% of each of those calls fails with its transient error, seeded
    let operations: BTreeSet<(String, String)> =
        calm_calls.iter().map(|c| (c.service.clone(), c.operation.clone())).collect();
    let rules: Vec<Value> = operations
        .iter()
        .map(|(service, operation)| {
            json!({"service": service, "operation": operation, "error": transient(service, operation), "probability": STORM})
        })
        .collect();
    let (mut injected, mut failed_writes) = (0, 0);
    for seed in SEEDS {
        let mut stormy = demo_account();
        stormy["randomSeed"] = json!(seed);
        stormy["faults"] = json!({"rules": rules});
        let (storm_calls, invocations) = run::<F>(stormy, &event).await;
        // THEN each storm converged, and its effect is the calm run's
        let failed: Vec<&local::Call> = storm_calls.iter().filter(|c| c.outcome != "ok").collect();
        let writes = failed.iter().filter(|c| mutating(&c.operation)).count();
        eprintln!(
            "{} {sample_name} seed {seed}: {} calls, {} failed ({writes} writes), {invocations} invocation(s)",
            F::NAME,
            storm_calls.len(),
            failed.len()
        );
        assert_eq!(effects(&storm_calls), calm, "{} {sample_name} seed {seed}: effects in the storm", F::NAME);
        injected += failed.len();
        failed_writes += writes;
    }
    // AND the storms really hit, writes included: otherwise nothing was proven
    assert!(
        injected > 0 && failed_writes > 0,
        "{} {sample_name}: {injected} faults, {failed_writes} on writes",
        F::NAME
    );
}

#[tokio::test]
async fn given_a_storm_of_transient_failures_when_builders_are_started_then_each_starts_once() {
    check::<StartIdleImageBuilders>("manual-start.json").await;
}

#[tokio::test]
async fn given_a_storm_of_transient_failures_when_a_key_is_rotated_then_the_rotation_lands_once() {
    check::<RotateKeyGroup>("s3-put.json").await;
}

#[tokio::test]
async fn given_a_storm_of_transient_failures_when_a_region_is_added_then_the_configuration_is_updated_once() {
    check::<UpdateDistributionRegions>("manual-add.json").await;
}

#[tokio::test]
async fn given_a_storm_of_transient_failures_when_a_build_is_deprecated_then_one_state_update() {
    check::<UpdateImageLifecycle>("explicit-deprecate.json").await;
}
