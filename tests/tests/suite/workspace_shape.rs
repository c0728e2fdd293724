//! The workspace keeps its shape: the emulator judges the functions and depends on none of them (nor on `shared`,
//! whose code the functions run), test support depends on no function, and no package depends on itself through
//! dev-dependencies (read from `cargo metadata`, the graph cargo itself builds); and inside the crates, the layers of
//! `shared` and the dependency rule of every function (read from the sources: `crate::` paths).

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

/// The modules of `src` (a file `x.rs` or a folder `x/`) and the crate modules each one's code names (`crate::x`),
/// read from the source: comments and the `#[cfg(test)]` part left out, since a test may reach wider.
fn modules(src: &std::path::Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(src).expect("a source folder").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).expect("a module folder").flatten().map(|e| e.path()));
        }
        files.push(path);
    }
    for path in files.into_iter().filter(|p| p.extension().is_some_and(|e| e == "rs")) {
        let relative = path.strip_prefix(src).expect("under src");
        let module = relative.components().next().expect("a name").as_os_str().to_string_lossy();
        let module = module.trim_end_matches(".rs").to_string();
        let text = std::fs::read_to_string(&path).expect("a source file");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let names = graph.entry(module.clone()).or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (at, _) in line.match_indices("crate::") {
                let name: String =
                    line[at + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if name != module && !name.is_empty() {
                    names.insert(name);
                }
            }
        }
    }
    graph
}

/// A cycle in `graph`, if it has one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(graph, next, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(graph, node, &mut Vec::new(), &mut done))
}

/// What breaks the layers of `shared` (its source in `src`), each with the reason of the rule.
fn shared_layer_violations(src: &std::path::Path) -> Vec<String> {
    let graph = modules(src);
    let mut broken = Vec::new();
    if let Some(cycle) = cycle(&graph) {
        broken
            .push(format!("{cycle:?} import each other in a circle: none of them can be read, tested or moved alone"));
    }
    for leaf in ["classify", "hash", "lost_answer", "regions"] {
        if let Some(deps) = graph.get(leaf).filter(|d| !d.is_empty()) {
            broken.push(format!("shared::{leaf} names {deps:?}: it is a leaf, the vocabulary every layer uses"));
        }
    }
    for (module, never) in
        [("report", "idempotency"), ("report", "answer"), ("classify", "report"), ("config", "report")]
    {
        if graph.get(module).is_some_and(|d| d.contains(never)) {
            broken
                .push(format!("shared::{module} names shared::{never}: a lower layer must not know the one above it"));
        }
    }
    broken
}

/// What breaks the dependency rule of a function (its source in `src`), each with the reason of the rule.
fn function_layer_violations(src: &std::path::Path) -> Vec<String> {
    let graph = modules(src);
    let known: BTreeSet<&String> = graph.keys().collect();
    let mut broken = Vec::new();
    if let Some(deps) = graph.get("config").filter(|d| !d.is_empty()) {
        broken.push(format!("config.rs names {deps:?}: it is the leaf, read before anything else"));
    }
    if let Some(deps) = graph.get("plan").filter(|d| d.iter().any(|d| d != "config")) {
        broken.push(format!("plan.rs names {deps:?}: a plan imports config.rs only, and is testable without AWS"));
    }
    let plan = std::fs::read_to_string(src.join("plan.rs")).unwrap_or_default();
    let plan = plan.split("#[cfg(test)]").next().unwrap_or_default();
    for impure in ["aws_sdk_", "async fn", ".await", "tokio::"] {
        if plan.contains(impure) {
            broken.push(format!("plan.rs has `{impure}`: a plan takes what was read, and decides"));
        }
    }
    for (module, deps) in &graph {
        for dep in deps.iter().filter(|d| !known.contains(d)) {
            broken.push(format!("{module}.rs names crate::{dep}, an item of lib.rs: import it from its module"));
        }
    }
    if let Some(cycle) = cycle(&graph) {
        broken.push(format!("{cycle:?} import each other in a circle"));
    }
    broken
}

#[test]
fn given_the_shared_crate_when_its_modules_are_read_then_they_form_layers_without_a_cycle() {
    // GIVEN the modules of `shared` and what each names of the others
    let src = testbed::tools::workspace_root().join("shared/src");
    // THEN no rule of the layers is broken
    assert_eq!(shared_layer_violations(&src), Vec::<String>::new());
}

#[test]
fn given_each_function_when_its_modules_are_read_then_config_is_the_leaf_plan_is_pure_and_nothing_imports_lib() {
    for function in FUNCTIONS {
        // GIVEN the function's modules and what each names of the others
        let src = testbed::tools::workspace_root().join("functions").join(function).join("src");
        // THEN config.rs is the leaf, plan.rs names config.rs only and nothing async, nothing reaches into lib.rs
        assert_eq!(function_layer_violations(&src), Vec::<String>::new(), "{function}");
    }
}

#[test]
fn given_sources_that_break_each_rule_when_checked_then_each_break_is_named() {
    // GIVEN a function whose config names its plan, whose plan awaits and names aws, and whose aws names lib.rs's
    // Error; and a shared crate whose report names idempotency, which names report back
    let root = std::env::temp_dir().join(format!("keeper-layers-{}", std::process::id()));
    let (function, shared) = (root.join("function"), root.join("shared"));
    for (dir, files) in [
        (
            &function,
            vec![
                ("lib.rs", "pub mod aws; pub mod config; pub mod plan;"),
                ("config.rs", "use crate::plan::Status;"),
                ("plan.rs", "use crate::aws::get;\npub async fn decide() { get().await }"),
                ("aws.rs", "use crate::Error;\n#[cfg(test)]\nmod tests { use crate::lib; }"),
            ],
        ),
        (
            &shared,
            vec![
                ("report.rs", "// crate::answer in a comment is not an import\nuse crate::idempotency::Storable;"),
                ("idempotency.rs", "use crate::report::Report;"),
                ("classify.rs", ""),
            ],
        ),
    ] {
        std::fs::create_dir_all(dir).expect("a temporary folder");
        for (name, text) in files {
            std::fs::write(dir.join(name), text).expect("a source file");
        }
    }
    // WHEN each is checked
    let function_broken = function_layer_violations(&function);
    let shared_broken = shared_layer_violations(&shared);
    let _ = std::fs::remove_dir_all(&root);
    // THEN every break is named once, and neither the comment nor the test module counts
    let named = |broken: &[String], what: &str| broken.iter().filter(|b| b.contains(what)).count();
    assert_eq!(named(&function_broken, "config.rs names"), 1, "{function_broken:#?}");
    assert_eq!(named(&function_broken, "plan.rs names"), 1, "{function_broken:#?}");
    assert_eq!(named(&function_broken, "plan.rs has `async fn`"), 1, "{function_broken:#?}");
    assert_eq!(named(&function_broken, "aws.rs names crate::Error"), 1, "{function_broken:#?}");
    assert_eq!(named(&function_broken, "crate::lib"), 0, "{function_broken:#?}");
    assert_eq!(named(&shared_broken, "in a circle"), 1, "{shared_broken:#?}");
    assert_eq!(named(&shared_broken, "shared::report names shared::idempotency"), 1, "{shared_broken:#?}");
    assert_eq!(named(&shared_broken, "names shared::answer"), 0, "{shared_broken:#?}");
}
