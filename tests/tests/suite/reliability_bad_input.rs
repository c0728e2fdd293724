//! Reliability: every payload of the bad-input corpus (tests/corpus/bad-input/<function>/*.json, each with why it is
//! bad and what the refusal must say) is refused with its error type and a message naming the field, and makes no
//! call that changes the account. A refusal that names nothing, or a mutating call before it, is a defect.

// Four functions' pipelines in one async test nest deeper than the default limit.

use rotate_key_group::RotateKeyGroup;
use serde_json::Value;
use shared::host::Function;
use shared::report::{Outcome, Report};
use shared::trigger::parse_slice;
use start_idle_image_builders::StartIdleImageBuilders;
use testbed::emulator::{host, mutating, start};
use testbed::samples::{DEMO_SETTINGS, demo_account};
use testbed::tools::workspace_root;
use update_distribution_regions::UpdateDistributionRegions;
use update_image_lifecycle::UpdateImageLifecycle;

/// Every failure an answer carries: Lambda's error, the report's error, or failed targets.
fn failures<E: std::fmt::Debug>(answer: &Result<Report, E>) -> Vec<(String, String)> {
    match answer {
        // Lambda's Diagnostic, read through its Debug form: keeper-tests does not depend on lambda_runtime.
        Err(d) => vec![("error".to_string(), format!("{d:?}"))],
        Ok(report) => report
            .error
            .iter()
            .map(|f| (f.error_type.clone(), f.error_message.clone()))
            .chain(
                report
                    .actions
                    .iter()
                    .filter(|a| a.outcome == Outcome::Failed)
                    .map(|a| (a.error_type.clone().unwrap_or_default(), a.detail.clone())),
            )
            .collect(),
    }
}

/// Runs `F` on each case of its corpus folder; returns one line per case that did not hold.
async fn corpus<F: Function>() -> (usize, Vec<String>) {
    let dir = workspace_root().join("tests/corpus/bad-input").join(F::NAME);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("an entry").path())
        .collect();
    files.sort();
    let mut wrong = Vec::new();
    for path in &files {
        let name = format!("{}/{}", F::NAME, path.file_name().unwrap().to_string_lossy());
        let case: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("a corpus case is JSON");
        let (error_type, names) = (&case["expect"]["errorType"], &case["expect"]["names"]);
        let (error_type, names) = (error_type.as_str().expect("errorType"), names.as_str().expect("names"));
        // GIVEN the payload: text the runtime would be handed, or JSON (padded past the limit where asked)
        let (failures, calls) = if let Some(text) = case["payloadText"].as_str() {
            let Err(refused) = parse_slice::<F::Request>(text.as_bytes()) else {
                panic!("{name}: bytes that are not JSON were accepted")
            };
            (vec![("Permanent.InvalidInput".to_string(), refused.to_string())], Vec::new())
        } else {
            let mut payload = case["payload"].clone();
            if let Some(size) = case["padToBytes"].as_u64() {
                payload["padding"] = Value::String("x".repeat(size as usize));
            }
            // WHEN the function handles it against the demo account
            let running = start(demo_account()).await;
            let host = host::<F>(&running, 1, &DEMO_SETTINGS).await;
            let answer = host.handle(payload, None).await;
            (failures(&answer), running.emulator.calls())
        };
        // THEN it is refused with the expected type and a message naming the field, and nothing changed
        let holds = |(t, m): &(String, String)| {
            m.contains(names) && (t == error_type || m.contains(&format!("error_type: \"{error_type}\"")))
        };
        if !failures.iter().any(holds) {
            wrong.push(format!("{name}: expected {error_type} naming `{names}`, got {failures:?}"));
        }
        let changed: Vec<&str> =
            calls.iter().filter(|c| mutating(&c.operation)).map(|c| c.operation.as_str()).collect();
        if !changed.is_empty() {
            wrong.push(format!("{name}: mutating calls {changed:?}"));
        }
    }
    (files.len(), wrong)
}

#[tokio::test]
async fn given_the_bad_input_corpus_when_each_payload_is_handled_then_a_clear_refusal_and_no_mutating_call() {
    let runs = [
        corpus::<StartIdleImageBuilders>().await,
        corpus::<RotateKeyGroup>().await,
        corpus::<UpdateDistributionRegions>().await,
        corpus::<UpdateImageLifecycle>().await,
    ];
    let cases: usize = runs.iter().map(|(n, _)| n).sum();
    let wrong: Vec<&String> = runs.iter().flat_map(|(_, w)| w).collect();
    assert!(cases >= 60, "the corpus holds {cases} cases; the issue asks for at least 60");
    assert!(
        wrong.is_empty(),
        "{} of {cases} cases did not hold:\n{}",
        wrong.len(),
        wrong.iter().map(|w| format!("  {w}")).collect::<Vec<_>>().join("\n")
    );
}
