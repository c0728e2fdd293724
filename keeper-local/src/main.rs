//! `keeper-local`: the emulated AWS alone (`serve`), one function run on an event against it (`invoke`), or what
//! a schedules document does (`schedule`).
#![recursion_limit = "256"]

mod schedule;

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;

use aws_types::SdkConfig;
use lambda_runtime::Diagnostic;
use local::World;
use rotate_key_group::RotateKeyGroup;
use serde_json::Value;
use shared::config::{Lookup, Settings};
use shared::host::{Function, Host};
use shared::idempotency::MemoryStore;
use shared::report::Report;
use shared::telemetry::Metrics;
use start_idle_image_builders::StartIdleImageBuilders;
use update_distribution_regions::UpdateDistributionRegions;
use update_image_lifecycle::UpdateImageLifecycle;

const USAGE: &str = "usage:
  keeper-local serve [--port N] [--host ADDR] [--seed FILE] [--verify-signatures]
      the emulated AWS (AppStream, Image Builder, CloudFront, Secrets Manager, S3) on one port; point any AWS client
      at it with AWS_ENDPOINT_URL=http://ADDR:N and any credentials; with --verify-signatures only the documented pair
      AWS_ACCESS_KEY_ID=AKIDKEEPERLOCAL AWS_SECRET_ACCESS_KEY=keeper-local-secret is accepted, signatures checked
      admin: GET /_keeper/state, GET|DELETE /_keeper/calls, GET|POST|DELETE /_keeper/faults,
      GET|DELETE /_keeper/rotations (the rotation Lambda invocations RotateSecret asked for; DELETE takes them)
  keeper-local invoke <function> <event.json> [--seed FILE]
      runs the function's handler on the event against an in-process emulator seeded with FILE
      (default events/local-account.json) and prints its report, its calls, its metrics and what changed in the
      account on stdout; the logs and the EMF line go to stderr. A Secrets Manager rotation event whose Step is
      createSecret runs the whole rotation, as Secrets Manager does: the four steps in turn, with its token
  keeper-local schedule <schedules.json> [--name N] (--from DATE --to DATE | --at TIME)
      what a schedules document does (start-idle-image-builders' reconcile): each schedule's running stretches
      from the start of DATE to the end of the other, in its local time and in UTC, or its state at an RFC 3339
      TIME, with the period or holiday that decides

exit status: 0 when the command did its work; 1 when the invocation failed (Lambda would record an error: the
  report says which, and whether a retry may pass); 2 when it could not run (usage, a file, a setting)";

/// What the invocations return: for each, the function's answer and its metrics (they stop at the first that
/// failed); or why they could not be run (a bad setting).
type Answer<'a> = Pin<Box<dyn Future<Output = Result<Vec<(Result<Report, Diagnostic>, Metrics)>, String>> + 'a>>;

/// One function `invoke` can run: its name, and its handler on the shared host.
struct Entry {
    name: &'static str,
    invoke: for<'a> fn(&'a SdkConfig, &'a Lookup<'a>, Vec<Value>) -> Answer<'a>,
}

const fn entry<F: Function>() -> Entry {
    Entry { name: F::NAME, invoke: invoke_with::<F> }
}

/// The functions `invoke` can run.
const FUNCTIONS: [Entry; 4] = [
    entry::<StartIdleImageBuilders>(),
    entry::<RotateKeyGroup>(),
    entry::<UpdateDistributionRegions>(),
    entry::<UpdateImageLifecycle>(),
];

/// Runs one function's real handler on the payloads in turn, on the same host as in Lambda (one instance, one
/// in-memory guard and store), until one fails.
fn invoke_with<'a, F: Function>(sdk_config: &'a SdkConfig, lookup: &'a Lookup<'a>, payloads: Vec<Value>) -> Answer<'a> {
    Box::pin(async move {
        let host =
            Host::<F>::with_store(sdk_config, lookup, Arc::new(MemoryStore::default())).map_err(|e| e.to_string())?;
        let mut answers = Vec::new();
        for payload in payloads {
            let answer = host.answer(payload, None).await;
            let failed = answer.0.is_err();
            answers.push(answer);
            if failed {
                break;
            }
        }
        Ok(answers)
    })
}

/// The invocations of an event: itself, or, for a Secrets Manager rotation's first step (createSecret), the whole
/// rotation as Secrets Manager drives it: the four steps in order with the same token, each once the one before it
/// was answered.
fn invocations(payload: Value) -> Vec<Value> {
    if payload.get("Step").and_then(Value::as_str) != Some("createSecret") || payload.get("SecretId").is_none() {
        return vec![payload];
    }
    ["createSecret", "setSecret", "testSecret", "finishSecret"]
        .iter()
        .map(|step| {
            let mut one = payload.clone();
            one["Step"] = Value::String(step.to_string());
            one
        })
        .collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keeper-local: cannot start the async runtime: {e}");
            return cannot_run();
        }
    };
    let result = match args.first().map(String::as_str) {
        Some("serve") => runtime.block_on(serve(&args[1..])).map(|()| Ran::Done),
        Some("invoke") => runtime.block_on(invoke(&args[1..])),
        Some("schedule") => show_schedule(&args[1..]),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(Ran::Done)
        }
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(Ran::Done) => ExitCode::SUCCESS,
        // The report is printed; the status tells a script or CI what Lambda would have recorded.
        Ok(Ran::InvocationFailed(error_type)) => {
            eprintln!("keeper-local: the invocation failed: {error_type}");
            ExitCode::from(1)
        }
        Err(message) => {
            eprintln!("keeper-local: {message}");
            cannot_run()
        }
    }
}

/// The status of a command that could not run (usage, a file, a setting, the machine): never 1, which says the
/// invocation ran and failed.
fn cannot_run() -> ExitCode {
    ExitCode::from(2)
}

/// What a command that could run came to.
enum Ran {
    Done,
    /// The function answered with an error (its type): Lambda records the invocation as failed.
    InvocationFailed(String),
}

/// The value of `--name`, and the arguments without it.
fn option(args: &[String], name: &str) -> Result<(Option<String>, Vec<String>), String> {
    let mut rest = Vec::new();
    let mut value = None;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == name {
            value = Some(iter.next().ok_or_else(|| format!("{name} needs a value"))?.clone());
        } else {
            rest.push(arg.clone());
        }
    }
    Ok((value, rest))
}

fn load_seed(path: Option<&str>) -> Result<World, String> {
    let default = "events/local-account.json";
    let path = path.unwrap_or(default);
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read seed {path}: {e}"))?;
    let seed: Value = serde_json::from_str(&text).map_err(|e| format!("seed {path} is not JSON: {e}"))?;
    World::from_seed(seed, local::clock::now_ms()).map_err(|e| format!("{path}: {e}"))
}

async fn serve(args: &[String]) -> Result<(), String> {
    let (port, args) = option(args, "--port")?;
    let (host, args) = option(&args, "--host")?;
    let (seed, mut args) = option(&args, "--seed")?;
    let verify = args.iter().position(|a| a == "--verify-signatures").map(|i| args.remove(i)).is_some();
    if let Some(extra) = args.first() {
        return Err(format!("unexpected argument `{extra}`\n{USAGE}"));
    }
    let port: u16 =
        port.as_deref().unwrap_or("4566").parse().map_err(|_| "--port must be a number from 0 to 65535".to_string())?;
    let mut world = match seed {
        Some(path) => load_seed(Some(&path))?,
        None => World::default(),
    };
    world.verify_signatures |= verify;
    let addr = format!("{}:{port}", host.as_deref().unwrap_or("127.0.0.1"));
    let running = local::start(world, &addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    println!("keeper-local: emulated AWS on {}", running.url);
    println!(
        "  export AWS_ENDPOINT_URL={} AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_REGION=us-east-1",
        running.url,
        local::client::ACCESS_KEY_ID,
        local::client::SECRET_ACCESS_KEY
    );
    if running.emulator.verifies_signatures() {
        println!("  signatures: verified against the pair above (--verify-signatures)");
    } else {
        println!("  credentials: any access key is accepted (--verify-signatures checks SigV4 against the pair above)");
    }
    println!(
        "  state: curl {}/_keeper/state    calls: curl {}/_keeper/calls    stop: Ctrl-C",
        running.url, running.url
    );
    tokio::signal::ctrl_c().await.map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    Ok(())
}

/// The demo account's resources, as the Makefile's `make demo` names them.
const DEMO_SETTINGS: [(&str, &str); 5] = [
    ("APPSTREAM_AGENT_VERSION", "[LATEST]"),
    ("KEY_GROUP_IDS", "5f1c2d3e-4a5b-6c7d-8e9f-0a1b2c3d4e5f"),
    ("DESIRED_STATE_S3_URI", "s3://keeper-desired-state-123456789012-us-east-1/distribution-regions.json"),
    ("REGIONS", "us-east-1,eu-west-1"),
    (
        "DISTRIBUTION_CONFIGURATION_ARNS",
        "arn:aws:imagebuilder:us-east-1:123456789012:distribution-configuration/web-golden",
    ),
];

async fn invoke(args: &[String]) -> Result<Ran, String> {
    let (seed, args) = option(args, "--seed")?;
    let [function, event] = args.as_slice() else {
        return Err(format!("invoke needs a function and an event file\n{USAGE}"));
    };
    let Some(entry) = FUNCTIONS.iter().find(|f| f.name == function) else {
        let names: Vec<&str> = FUNCTIONS.iter().map(|f| f.name).collect();
        return Err(format!("no function `{function}`; functions: {}", names.join(", ")));
    };
    let text = std::fs::read_to_string(event).map_err(|e| format!("cannot read event {event}: {e}"))?;
    let payload: Value = serde_json::from_str(&text).map_err(|e| format!("event {event} is not JSON: {e}"))?;
    // On the demo account, the settings that name its resources (the bounds requests may only narrow) default to
    // them, so `keeper-local invoke` alone runs every sample as `make demo` does; the environment still wins.
    let demo = seed.is_none();
    let lookup = Lookup::new(move |name| {
        std::env::var(name).ok().or_else(|| {
            demo.then(|| DEMO_SETTINGS.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())).flatten()
        })
    });
    shared::telemetry::init(&lookup);
    let running = local::start(load_seed(seed.as_deref())?, "127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot start the emulator: {e}"))?;
    let before = running.emulator.dump();
    let settings = Settings::from_lookup(&lookup).map_err(|e| e.to_string())?;
    let region = lookup.string("AWS_REGION").unwrap_or_else(|| "us-east-1".into());
    let retries = shared::retry::retry_config(&settings);
    let sdk_config = local::client::sdk_config(&running.url, &region, retries).await;
    let payloads = invocations(payload);
    let several = payloads.len() > 1;
    let answers = (entry.invoke)(&sdk_config, &lookup, payloads.clone()).await?;
    // What a person reads goes to stdout; the machine lines (the EMF line Lambda's log agent reads, the logs) go to
    // stderr, so `2>/dev/null` leaves the report, the calls and the changes alone.
    for ((answer, metrics), payload) in answers.iter().zip(&payloads) {
        eprintln!("{}", metrics.emf_line_now());
        match payload.get("Step").and_then(Value::as_str).filter(|_| several) {
            Some(step) => println!("== report of {step}"),
            None => println!("== report"),
        }
        match answer {
            Ok(report) => println!("{}", serde_json::to_string_pretty(report).unwrap_or_default()),
            Err(diagnostic) => println!("{}: {}", diagnostic.error_type, diagnostic.error_message),
        }
    }
    let Some((answer, metrics)) = answers.into_iter().last() else {
        return Err("no invocation ran".into());
    };
    println!("== calls to the emulated account");
    for call in running.emulator.calls() {
        let params: Vec<String> =
            call.params.iter().filter(|(k, _)| *k != "protocol").map(|(k, v)| format!("{k}={v}")).collect();
        println!("  {:<10} {:<28} {:<12} {}", call.region, call.operation, call.outcome, params.join(" "));
    }
    let counts: Vec<String> = metrics.counts().map(|(name, count)| format!("{name}={count}")).collect();
    println!("== metrics (the EMF line on stderr)\n  {}", counts.join(" "));
    println!("== changes in the emulated account");
    let changes = local::diff::changes(&before, &running.emulator.dump());
    if changes.is_empty() {
        println!("  (none)");
    }
    for change in changes {
        // A secret's value is the private key of a managed signing key: its path is shown, never its value.
        match change.find(".secretString") {
            Some(at) => println!("  {}.secretString: (a secret value, not shown)", &change[..at]),
            None => println!("  {change}"),
        }
    }
    Ok(match answer {
        Ok(_) => Ran::Done,
        Err(diagnostic) => Ran::InvocationFailed(diagnostic.error_type),
    })
}

/// `keeper-local schedule`: prints what a schedules document does.
fn show_schedule(args: &[String]) -> Result<Ran, String> {
    let (path, name, show) = schedule::parse_args(args).map_err(|e| format!("{e}\n{USAGE}"))?;
    let json = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    print!("{}", schedule::render(&json, name.as_deref(), &show)?);
    Ok(Ran::Done)
}
