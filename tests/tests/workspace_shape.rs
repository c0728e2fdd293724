//! The workspace keeps its shape: the emulator judges the functions and depends on none of them (nor on `shared`,
//! whose code the functions run), test support depends on no function, and no package depends on itself through
//! dev-dependencies. Read from `cargo metadata`, the graph cargo itself builds.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

const FUNCTIONS: [&str; 4] =
    ["start-idle-image-builders", "rotate-key-group", "update-distribution-regions", "update-image-lifecycle"];

/// Each workspace package and the workspace packages it depends on, of any kind (normal, dev, build).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(testbed::tools::workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
    let packages = metadata["packages"].as_array().expect("packages");
    let names: BTreeSet<String> = packages.iter().filter_map(|p| p["name"].as_str()).map(String::from).collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["name"].as_str())
                .filter(|d| names.contains(*d))
                .map(String::from)
                .collect();
            (p["name"].as_str().unwrap_or_default().to_string(), deps)
        })
        .collect()
}

#[test]
fn given_the_workspace_when_its_graph_is_read_then_the_emulator_and_test_support_depend_on_no_function() {
    let graph = graph();
    // THEN the emulator depends on no keeper package at all, dev-dependencies included
    assert_eq!(graph["local"], BTreeSet::new(), "local must stand apart from the code it judges");
    // THEN test support, which every function's tests use, builds no function
    for package in ["testbed", "shared"] {
        let functions: Vec<&String> = graph[package].iter().filter(|d| FUNCTIONS.contains(&d.as_str())).collect();
        assert!(functions.is_empty(), "{package} depends on {functions:?}");
    }
    // THEN each function's own tests build only that function
    for function in FUNCTIONS {
        let others: Vec<&String> = graph[function].iter().filter(|d| FUNCTIONS.contains(&d.as_str())).collect();
        assert!(others.is_empty(), "{function} depends on {others:?}");
    }
}

#[test]
fn given_the_workspace_when_its_graph_is_walked_then_no_package_reaches_itself() {
    let graph = graph();
    for start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = graph[start].iter().collect();
        while let Some(next) = todo.pop() {
            assert_ne!(next, start, "{start} depends on itself through {seen:?}");
            if seen.insert(next.clone()) {
                todo.extend(graph.get(next).into_iter().flatten());
            }
        }
    }
}
