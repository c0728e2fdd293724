//! Least privilege, proven: template.yaml's policies follow the Service Authorization Reference (the data cfn-lint
//! ships), and every call each function really makes (all its sample events, run against the emulated demo account)
//! is allowed by that function's own policy, evaluated as IAM does for Action and Resource: an action without
//! resource-level permissions matches only a statement on "*".
//!
//! The template is read by `tests/iam/policies.py` with cfn-lint's decoder (CloudFormation's short tags), every
//! `Fn::If` taken both ways: the widest grant each function can get, with the parameters the samples need.

// Four functions' pipelines in one async test nest deeper than the default limit.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use rotate_key_group::RotateKeyGroup;
use serde_json::Value;
use shared::config::Lookup;
use shared::host::{Function, Host};
use shared::idempotency::MemoryStore;
use start_idle_image_builders::StartIdleImageBuilders;
use testbed::emulator::{fast_settings, sdk_config, start};
use testbed::samples::{demo_account, samples};
use testbed::tools::{venv_tool, workspace_root};
use update_distribution_regions::UpdateDistributionRegions;
use update_image_lifecycle::UpdateImageLifecycle;

/// The demo account's desired-state bucket.
const BUCKET: &str = "keeper-desired-state-123456789012-us-east-1";

/// The role the lifecycle samples pass, given as LifecycleExecutionRoleArn (the template grants iam:PassRole only then).
const LIFECYCLE_ROLE: &str = "arn:aws:iam::123456789012:role/keeper-image-lifecycle";

fn policies_py(args: &[&str]) -> std::process::Output {
    let python = venv_tool("python", "cfn-lint").expect("the venv's python (cfn-lint installed)");
    Command::new(python)
        .arg(workspace_root().join("tests/iam/policies.py"))
        .args(args)
        .output()
        .expect("tests/iam/policies.py runs")
}

#[test]
fn given_the_template_when_its_policies_are_read_against_the_service_authorization_reference_then_no_finding() {
    let out = policies_py(&["check"]);
    let findings = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "least-privilege findings:\n{findings}{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn given_a_policy_that_grants_an_action_without_resource_types_on_an_arn_when_checked_then_it_is_a_finding() {
    // The control: the rule fires on the outage the first release shipped (ListTagsForResource on builder ARNs).
    let template = std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap();
    let broken = template.replace(
        "              Action: appstream:ListTagsForResource\n              Resource: \"*\"",
        "              Action: appstream:ListTagsForResource\n              Resource: !Sub arn:${AWS::Partition}:appstream:*:${AWS::AccountId}:image-builder/*",
    );
    assert!(broken != template, "the statement this control edits is in the template");
    let path = std::env::temp_dir().join(format!("keeper-template-{}.yaml", std::process::id()));
    std::fs::write(&path, broken).unwrap();
    let out = policies_py(&["check", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    let findings = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(findings.contains("appstream:ListTagsForResource` supports no resource-level permissions"), "{findings}");
}

/// One Allow statement of a function's policy.
#[derive(Debug, serde::Deserialize)]
struct Statement {
    sid: String,
    actions: Vec<String>,
    resources: Vec<String>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Policies {
    functions: BTreeMap<String, Vec<Statement>>,
    /// Per action granted: the resource types it supports (empty: only "*").
    resource_types: BTreeMap<String, Vec<String>>,
}

fn policies() -> Policies {
    let out = policies_py(&[
        "dump",
        "",
        &format!("LifecycleExecutionRoleArn={LIFECYCLE_ROLE}"),
        "DeleteRetiredKeys=true",
        &format!("ManagedKeyGroupId={}", "5f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f"),
        &format!("BuilderSchedulesKey={SCHEDULES_KEY}"),
        &format!("DistributionConfigurationArns={}", testbed::samples::DEMO_DISTRIBUTION_CONFIGURATIONS),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("policies as JSON")
}

/// IAM's wildcard match: `*` any run, `?` one character, case-sensitive (actions are compared lower-cased).
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// The IAM authorisations one logged call needs: (action, resource ARN or "*").
fn authorisations(call: &local::Call, account: &str) -> Vec<(String, String)> {
    let p = |k: &str| call.params.get(k).cloned().unwrap_or_default();
    let (service, op, region) = (call.service.as_str(), call.operation.as_str(), call.region.as_str());
    let action = |a: &str| format!("{service}:{a}");
    match (service, op) {
        ("appstream", "StartImageBuilder" | "StopImageBuilder" | "DeleteImageBuilder") => {
            vec![(action(op), format!("arn:aws:appstream:{region}:{account}:image-builder/{}", p("Name")))]
        }
        ("appstream", "ListTagsForResource" | "TagResource") => vec![(action(op), p("ResourceArn"))],
        ("imagebuilder", "GetDistributionConfiguration" | "UpdateDistributionConfiguration") => {
            vec![(action(op), p("distributionConfigurationArn"))]
        }
        ("imagebuilder", "StartResourceStateUpdate") => {
            let mut out = vec![(action(op), p("resourceArn"))];
            if let Some(role) = call.params.get("executionRole") {
                out.push(("iam:PassRole".into(), role.clone()));
            }
            out
        }
        ("imagebuilder", "GetImage") => vec![(action(op), p("imageBuildVersionArn"))],
        ("imagebuilder", "ListImageBuildVersions") => vec![(action(op), p("imageVersionArn"))],
        ("imagebuilder", "ListLifecycleExecutions") => vec![(action(op), p("resourceArn"))],
        // The rotation steps name the secret by its ARN, as Secrets Manager sends it.
        ("secretsmanager", _) => vec![(action(op), p("SecretId"))],
        ("s3", "ListObjectVersions") => vec![("s3:ListBucketVersions".into(), format!("arn:aws:s3:::{}", p("Bucket")))],
        ("s3", "GetObject" | "HeadObject") => {
            let object = format!("arn:aws:s3:::{}/{}", p("Bucket"), p("Key"));
            let action = if call.params.contains_key("VersionId") { "s3:GetObjectVersion" } else { "s3:GetObject" };
            vec![(action.into(), object)]
        }
        // Everything else keeper calls supports no resource-level permissions (DescribeImageBuilders, the Lists,
        // CloudFront's key actions): IAM evaluates it against "*".
        _ => vec![(action(op), "*".into())],
    }
}

fn allowed(statements: &[Statement], types: &BTreeMap<String, Vec<String>>, action: &str, resource: &str) -> bool {
    let resource_level = types.get(action).is_some_and(|t| !t.is_empty()) || action == "iam:PassRole";
    statements.iter().any(|s| {
        s.actions.iter().any(|a| glob(&a.to_ascii_lowercase(), &action.to_ascii_lowercase()))
            && s.resources.iter().any(|r| if resource_level { glob(r, resource) } else { r == "*" })
    })
}

/// The schedules document's key in the demo account's desired-state bucket, as `BuilderSchedulesKey` gives it.
const SCHEDULES_KEY: &str = "schedules.json";

/// Runs every sample of `F` against the demo account, with the schedules document in S3 (`SCHEDULES_S3_URI`, its
/// current version bad, so the last good one is found) or without one; returns the calls it made.
async fn calls_of_samples<F: Function>(schedules_in_s3: bool) -> Vec<local::Call> {
    // The demo account, with the sample schedules document kept in S3: the reconcile samples read it there.
    let mut seed = demo_account();
    let schedules = std::fs::read_to_string(workspace_root().join("events/schedules.json")).expect("the sample");
    seed["s3"][BUCKET][SCHEDULES_KEY] = Value::String(schedules);
    let schedules_uri = format!("s3://{BUCKET}/{SCHEDULES_KEY}");
    let mut all = Vec::new();
    for (name, event) in samples(F::NAME) {
        let running = start(seed.clone()).await;
        if schedules_in_s3 {
            // A bad version on top of the sample: the run lists the document's history and reads the sample by
            // its version id, the last good one, so those grants are proven too.
            let bad = r#"{"schedules": [{"name": "typo", "timezone": "Mars/Olympus"}]}"#;
            running.emulator.objects().put(BUCKET, SCHEDULES_KEY, bad.into(), None);
        }
        let sdk = sdk_config(&running, "us-east-1", &fast_settings(1)).await;
        // The demo settings (the Makefile's): the demo account's key group and desired-state document.
        let mut pairs = vec![
            ("MAX_ATTEMPTS", "1"),
            ("RETRY_INITIAL_BACKOFF_MS", "1"),
            ("POLL_INTERVAL_MS", "20"),
            ("KEY_GROUP_IDS", "5f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f"),
            ("DESIRED_STATE_S3_URI", "s3://keeper-desired-state-123456789012-us-east-1/distribution-regions.json"),
            ("EXECUTION_ROLE", LIFECYCLE_ROLE),
            ("DELETE_AFTER_DAYS", "90"),
            ("DELETE_RETIRED_KEYS", "true"),
            ("DISTRIBUTION_CONFIGURATION_ARNS", testbed::samples::DEMO_DISTRIBUTION_CONFIGURATIONS),
            ("REGIONS", "us-east-1,eu-west-1"),
            ("APPSTREAM_AGENT_VERSION", "[LATEST]"),
        ];
        if schedules_in_s3 {
            pairs.push(("SCHEDULES_S3_URI", &schedules_uri));
        }
        let host = Host::<F>::with_store(&sdk, &Lookup::from_pairs(&pairs), Arc::new(MemoryStore::default()))
            .unwrap_or_else(|e| panic!("{}: settings: {e}", F::NAME));
        // A rotation's sample is its first step: the whole rotation runs, as Secrets Manager drives it, so that every
        // step's grants are proven.
        let steps = match event.get("Step") {
            Some(_) => ["createSecret", "setSecret", "testSecret", "finishSecret"]
                .iter()
                .map(|step| {
                    let mut one = event.clone();
                    one["Step"] = Value::String(step.to_string());
                    one
                })
                .collect(),
            None => vec![event],
        };
        for event in steps {
            let _ = host.handle(event, None).await;
        }
        let calls = running.emulator.calls();
        eprintln!("{} {name}: {} calls", F::NAME, calls.len());
        all.extend(calls);
    }
    all
}

#[tokio::test]
async fn given_every_sample_of_every_function_when_run_then_each_call_is_allowed_by_that_functions_policy() {
    let policies = policies();
    let runs = [
        // Without a schedules document the fixed jobs start and stop the demo's builders; with one in S3 they leave
        // them to the reconcile samples, which read it there.
        ("StartIdleImageBuildersFunction", {
            let mut calls = calls_of_samples::<StartIdleImageBuilders>(false).await;
            calls.extend(calls_of_samples::<StartIdleImageBuilders>(true).await);
            calls
        }),
        ("RotateKeyGroupFunction", calls_of_samples::<RotateKeyGroup>(false).await),
        ("UpdateDistributionRegionsFunction", calls_of_samples::<UpdateDistributionRegions>(false).await),
        ("UpdateImageLifecycleFunction", calls_of_samples::<UpdateImageLifecycle>(false).await),
    ];
    let mut denied = Vec::new();
    for (function, calls) in &runs {
        let statements = policies.functions.get(*function).unwrap_or_else(|| panic!("{function} in the template"));
        assert!(!calls.is_empty(), "{function}: the samples made no call, so nothing was proven");
        let mut checked = std::collections::BTreeSet::new();
        for call in calls {
            for (action, resource) in authorisations(call, "123456789012") {
                if checked.insert((action.clone(), resource.clone()))
                    && !allowed(statements, &policies.resource_types, &action, &resource)
                {
                    denied.push(format!("{function}: {action} on {resource} ({} {})", call.operation, call.outcome));
                }
            }
        }
        eprintln!("{function}: {} distinct (action, resource) pairs allowed", checked.len());
        let sids: Vec<&str> = statements.iter().map(|s| s.sid.as_str()).collect();
        eprintln!("  statements: {}", sids.join(", "));
    }
    assert!(denied.is_empty(), "calls the function's own policy does not allow:\n{}", denied.join("\n"));
}

/// The function directory of each logical id in the template.
const FUNCTIONS: [(&str, &str); 4] = [
    ("StartIdleImageBuildersFunction", "start-idle-image-builders"),
    ("RotateKeyGroupFunction", "rotate-key-group"),
    ("UpdateDistributionRegionsFunction", "update-distribution-regions"),
    ("UpdateImageLifecycleFunction", "update-image-lifecycle"),
];

#[test]
fn given_each_scheduler_schedule_in_the_template_when_compared_then_a_sample_holds_exactly_the_input_it_sends() {
    let out = policies_py(&["schedules"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let schedules: BTreeMap<String, BTreeMap<String, String>> = serde_json::from_slice(&out.stdout).unwrap();
    let placeholders = [
        ("executionId", "<aws.scheduler.execution-id>"),
        ("scheduledTime", "<aws.scheduler.scheduled-time>"),
        ("scheduleArn", "<aws.scheduler.schedule-arn>"),
    ];
    let mut checked = 0;
    for (logical, function) in FUNCTIONS {
        // Each scheduler-*.json sample with its substituted values put back as the placeholders Scheduler fills.
        let templated: Vec<(String, Value)> = samples(function)
            .into_iter()
            .filter(|(name, _)| name.starts_with("scheduler-"))
            .map(|(name, mut sample)| {
                for (key, placeholder) in placeholders {
                    sample["scheduler"][key] = Value::String(placeholder.into());
                }
                (name, sample)
            })
            .collect();
        for (event, input) in schedules.get(logical).unwrap_or_else(|| panic!("{logical} in the template")) {
            let input: Value = serde_json::from_str(input).unwrap_or_else(|e| panic!("{logical}.{event}: {e}"));
            let found = templated.iter().find(|(_, sample)| *sample == input);
            assert!(found.is_some(), "{logical}.{event}: no events/{function}/scheduler-*.json sends {input}");
            checked += 1;
        }
    }
    assert_eq!(checked, 6, "the template's six Scheduler schedules");
}
