//! The sample events of one function (`events/<function>/*.json`), sorted by file name, for the tests that keep
//! them true.

use serde_json::Value;

pub fn samples(function: &str) -> Vec<(String, Value)> {
    let dir = crate::tools::workspace_root().join("events").join(function);
    let mut out: Vec<(String, Value)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", p.display()));
            (name, value)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// One sample event of `function` by file name.
pub fn sample(function: &str, name: &str) -> Value {
    samples(function)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("events/{function}/{name}"))
}

/// The demo account (`events/local-account.json`) as an emulator seed: what `make demo` and the samples run on.
pub fn demo_account() -> Value {
    let path = crate::tools::workspace_root().join("events/local-account.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

/// The demo account's distribution configurations, which update-distribution-regions may change.
pub const DEMO_DISTRIBUTION_CONFIGURATIONS: &str =
    "arn:aws:imagebuilder:us-east-1:123456789012:distribution-configuration/web-golden";

/// The settings under which every sample of every function runs against the demo account: the Makefile's demo
/// settings (its key group and desired-state document), a lifecycle execution role, and fast retries.
pub const DEMO_SETTINGS: [(&str, &str); 9] = [
    ("MAX_ATTEMPTS", "3"),
    // The demo account's builders are in two regions: the samples name both, inside these bounds.
    ("REGIONS", "us-east-1,eu-west-1"),
    ("APPSTREAM_AGENT_VERSION", "[LATEST]"),
    ("DISTRIBUTION_CONFIGURATION_ARNS", DEMO_DISTRIBUTION_CONFIGURATIONS),
    ("RETRY_INITIAL_BACKOFF_MS", "1"),
    ("POLL_INTERVAL_MS", "20"),
    ("KEY_GROUP_IDS", "5f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f"),
    ("DESIRED_STATE_S3_URI", "s3://keeper-desired-state-123456789012-us-east-1/distribution-regions.json"),
    ("EXECUTION_ROLE", "arn:aws:iam::123456789012:role/keeper-image-lifecycle"),
];
