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
