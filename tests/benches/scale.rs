//! Each function at scale against the emulator with 20 ms injected on every call, against the floor that latency
//! sets: how much of a run is waiting on AWS and how much is keeper. A benchmark, not a test: it prints a table and
//! writes JSON (`target/bench/scale.json`); it asserts nothing.
//!
//! `make bench-scale`, or `cargo bench -p keeper-tests --bench scale [-- start-idle rotation regions lifecycle]`.

// Four functions' pipelines in one async program nest deeper than the default limit.
#![recursion_limit = "256"]

use std::collections::BTreeMap;
use std::time::Instant;

use rotate_key_group::RotateKeyGroup;
use serde_json::{Value, json};
use shared::host::Function;
use start_idle_image_builders::StartIdleImageBuilders;
use testbed::emulator::{host, start};
use testbed::samples::{DEMO_SETTINGS, demo_account, sample};
use update_distribution_regions::UpdateDistributionRegions;
use update_image_lifecycle::UpdateImageLifecycle;

const LATENCY_MS: u64 = 20;
const BUILDERS: usize = 1000;
const PAGE: usize = 25;
const BUILDS: usize = 2000;

/// Every call of `operations` waits `LATENCY_MS` before it takes effect.
fn latency(operations: &[&str]) -> Value {
    let rules: Vec<Value> = operations.iter().map(|op| json!({"operation": op, "latencyMs": LATENCY_MS})).collect();
    json!({"rules": rules})
}

/// Peak resident set of this process so far (the emulator included), in MB.
fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().trim_end_matches(" kB").to_string()))
        })
        .and_then(|kb| kb.trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

struct Row {
    scenario: String,
    wall_ms: f64,
    calls: usize,
    floor_ms: Option<f64>,
    report_bytes: usize,
    outcome: String,
    by_operation: BTreeMap<String, usize>,
}

/// One handled event: wall time, calls by operation, report size and outcome.
struct Ran {
    wall_ms: f64,
    by_operation: BTreeMap<String, usize>,
    report_bytes: usize,
    outcome: String,
}

impl Ran {
    fn count(&self, operation: &str) -> usize {
        self.by_operation.get(operation).copied().unwrap_or(0)
    }

    /// Its row, against the floor of `rounds` calls made one after another.
    fn row(self, scenario: String, rounds: usize) -> Row {
        Row {
            scenario,
            wall_ms: self.wall_ms,
            calls: self.by_operation.values().sum(),
            floor_ms: Some(rounds as f64 * LATENCY_MS as f64),
            report_bytes: self.report_bytes,
            outcome: self.outcome,
            by_operation: self.by_operation,
        }
    }
}

async fn run<F: Function>(seed: Value, event: Value, settings: &[(&str, &str)]) -> Ran {
    let running = start(seed).await;
    let host = host::<F>(&running, 3, settings).await;
    let started = Instant::now();
    // `answer`, not `handle`: the same run without its EMF line on stdout, which would break up the table.
    let (answer, _metrics) = host.answer(event, None).await;
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut by_operation = BTreeMap::new();
    for call in running.emulator.calls() {
        *by_operation.entry(call.operation).or_insert(0) += 1;
    }
    let (report_bytes, outcome) = match answer {
        Ok(report) => {
            let bytes = serde_json::to_string(&report).map(|s| s.len()).unwrap_or(0);
            let applied = report.count(shared::report::Outcome::Applied);
            let failed = report.count(shared::report::Outcome::Failed);
            (bytes, format!("{applied} applied, {failed} failed"))
        }
        Err(e) => (0, format!("error {}", e.error_type)),
    };
    Ran { wall_ms, by_operation, report_bytes, outcome }
}

async fn start_idle(rows: &mut Vec<Row>) {
    let builders: serde_json::Map<String, Value> =
        (0..BUILDERS).map(|i| (format!("b{i:04}"), json!({"State": "STOPPED"}))).collect();
    let pages = BUILDERS.div_ceil(PAGE);
    for concurrency in [1usize, 8, 32] {
        let seed = json!({
            "timing": {"transitionMillis": 600000},
            "paging": {"describeImageBuilders": PAGE},
            "regions": {"us-east-1": {"imageBuilders": builders}},
            "faults": latency(&["DescribeImageBuilders", "StartImageBuilder"]),
        });
        let limit = concurrency.to_string();
        let settings = [("OPT_OUT_TAG", ""), ("MAX_CONCURRENCY", limit.as_str()), ("RETRY_INITIAL_BACKOFF_MS", "1")];
        let event = json!({"action": "start", "regions": ["us-east-1"]});
        let ran = run::<StartIdleImageBuilders>(seed, event, &settings).await;
        let scenario = format!("start-idle: {BUILDERS} builders, {pages} pages, MAX_CONCURRENCY {concurrency}");
        rows.push(ran.row(scenario, pages + BUILDERS.div_ceil(concurrency)));
    }
}

async fn rotation(rows: &mut Vec<Row>) {
    let mut seed = demo_account();
    seed["faults"] = latency(&[
        "GetKeyGroup",
        "GetPublicKey",
        "CreatePublicKey",
        "UpdateKeyGroup",
        "ListPublicKeys",
        "ListKeyGroups",
        "DeletePublicKey",
        "GetObject",
        "HeadObject",
    ]);
    let event = sample(RotateKeyGroup::NAME, "s3-put.json");
    let ran = run::<RotateKeyGroup>(seed, event, &DEMO_SETTINGS).await;
    let calls = ran.by_operation.values().sum();
    rows.push(ran.row("rotate-key-group: one uploaded key, no contention".into(), calls));
}

async fn regions(rows: &mut Vec<Row>) {
    let mut seed = demo_account();
    seed["faults"] = latency(&["GetDistributionConfiguration", "UpdateDistributionConfiguration"]);
    let wanted: Vec<&str> = shared::regions::KNOWN
        .iter()
        .copied()
        .filter(|r| !r.starts_with("cn-") && !r.starts_with("us-gov-") && !r.starts_with("eusc-"))
        .take(30)
        .collect();
    let event = json!({
        "distributionConfigurationArn": "arn:aws:imagebuilder:us-east-1:123456789012:distribution-configuration/web-golden",
        "setRegions": wanted,
        "templateRegion": "us-east-1",
    });
    let ran = run::<UpdateDistributionRegions>(seed, event, &DEMO_SETTINGS).await;
    let calls = ran.by_operation.values().sum();
    rows.push(ran.row(format!("update-distribution-regions: set {} regions", wanted.len()), calls));
}

async fn lifecycle(rows: &mut Vec<Row>) {
    let base = "arn:aws:imagebuilder:us-east-1:123456789012:image";
    let now_ms = local::clock::now_ms();
    let mut images = serde_json::Map::new();
    for i in 0..BUILDS {
        let (image, version) = (i % 20, i / 20);
        let age_days = (BUILDS - i) as i64 / 5;
        images.insert(
            format!("{base}/app-{image:02}/1.0.{version}/1"),
            json!({"state": {"status": "AVAILABLE"}, "dateCreated": local::clock::iso8601(now_ms - age_days * 86_400_000)}),
        );
    }
    let seed = json!({
        "timing": {"lifecycleMillis": 600000},
        "regions": {"us-east-1": {"images": images}},
        "faults": latency(&["ListImages", "ListImageBuildVersions", "StartResourceStateUpdate", "GetImage"]),
    });
    let event = sample(UpdateImageLifecycle::NAME, "schedule-sweep.json");
    let mut settings = DEMO_SETTINGS.to_vec();
    settings.extend([("KEEP_AVAILABLE", "3"), ("DEPRECATE_AFTER_DAYS", "30"), ("MAX_CONCURRENCY", "8")]);
    let ran = run::<UpdateImageLifecycle>(seed, event, &settings).await;
    // Image pages one after another; build listings, then updates, eight at a time.
    let rounds = ran.count("ListImages")
        + ran.count("ListImageBuildVersions").div_ceil(8)
        + ran.count("StartResourceStateUpdate").div_ceil(8);
    rows.push(ran.row(format!("update-image-lifecycle: sweep of {BUILDS} builds, MAX_CONCURRENCY 8"), rounds));
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let mut rows = Vec::new();
    // `cargo bench -p keeper-tests --bench scale -- lifecycle` runs the scenarios named (start-idle, rotation,
    // regions, lifecycle); none named runs all.
    let named: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wanted = |name: &str| named.is_empty() || named.iter().any(|n| n == name);
    runtime.block_on(async {
        if wanted("start-idle") {
            start_idle(&mut rows).await;
        }
        if wanted("rotation") {
            rotation(&mut rows).await;
        }
        if wanted("regions") {
            regions(&mut rows).await;
        }
        if wanted("lifecycle") {
            lifecycle(&mut rows).await;
        }
    });
    println!("keeper at scale: {LATENCY_MS} ms injected per call, emulator in process");
    println!("| scenario | wall ms | calls | floor ms | × floor | report bytes | outcome |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    for r in &rows {
        let (floor, ratio) = match r.floor_ms {
            Some(f) => (format!("{f:.0}"), format!("{:.2}", r.wall_ms / f)),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {} | {:.0} | {} | {floor} | {ratio} | {} | {} |",
            r.scenario, r.wall_ms, r.calls, r.report_bytes, r.outcome
        );
    }
    for r in &rows {
        let ops: Vec<String> = r.by_operation.iter().map(|(op, n)| format!("{op} {n}")).collect();
        println!("{}: {}", r.scenario, ops.join(", "));
    }
    let rss = peak_rss_mb();
    println!("peak RSS of the bench process, the emulator and its accounts included: {rss:.1} MB");
    let json = json!({
        "latencyMs": LATENCY_MS,
        "peakRssMb": rss,
        "rows": rows.iter().map(|r| json!({
            "scenario": r.scenario, "wallMs": r.wall_ms, "calls": r.calls, "floorMs": r.floor_ms,
            "reportBytes": r.report_bytes, "outcome": r.outcome, "callsByOperation": r.by_operation,
        })).collect::<Vec<_>>(),
    });
    let dir = testbed::tools::workspace_root().join("target/bench");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("scale.json");
    match std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap_or_default()) {
        Ok(()) => println!("written: {}", path.display()),
        Err(e) => println!("not written ({}): {e}", path.display()),
    }
}
