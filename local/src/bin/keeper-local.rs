//! `keeper-local`: the emulated AWS alone (`serve`), or one function run on an event against it (`invoke`).

use std::process::ExitCode;

use std::sync::Arc;

use lambda_runtime::Diagnostic;
use local::World;
use serde_json::Value;
use shared::config::{Lookup, Settings};
use shared::idempotency::MemoryStore;
use shared::report::Report;

const USAGE: &str = "usage:
  keeper-local serve [--port N] [--host ADDR] [--seed FILE]
      the emulated AWS (AppStream, Image Builder, CloudFront, S3) on one port; point any AWS client at it with
      AWS_ENDPOINT_URL=http://ADDR:N AWS_ACCESS_KEY_ID=AKIDKEEPERLOCAL AWS_SECRET_ACCESS_KEY=keeper-local-secret
      admin: GET /_keeper/state, GET|DELETE /_keeper/calls, GET|POST|DELETE /_keeper/faults
  keeper-local invoke <function> <event.json> [--seed FILE]
      runs the function's handler on the event against an in-process emulator seeded with FILE
      (default events/local-account.json) and prints its report and what changed in the account";

/// The functions `invoke` can run; each function's issue adds its entry (and an arm in `run_function`).
const FUNCTIONS: &[&str] = &[
    start_idle_image_builders::FUNCTION,
    rotate_key_group::FUNCTION,
    update_distribution_regions::FUNCTION,
    update_image_lifecycle::FUNCTION,
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("keeper-local: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.first().map(String::as_str) {
        Some("serve") => runtime.block_on(serve(&args[1..])),
        Some("invoke") => runtime.block_on(invoke(&args[1..])),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("keeper-local: {message}");
            ExitCode::FAILURE
        }
    }
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
    World::from_seed(seed, local::world::now_ms()).map_err(|e| format!("{path}: {e}"))
}

async fn serve(args: &[String]) -> Result<(), String> {
    let (port, args) = option(args, "--port")?;
    let (host, args) = option(&args, "--host")?;
    let (seed, args) = option(&args, "--seed")?;
    if let Some(extra) = args.first() {
        return Err(format!("unexpected argument `{extra}`\n{USAGE}"));
    }
    let port: u16 =
        port.as_deref().unwrap_or("4566").parse().map_err(|_| "--port must be a number from 0 to 65535".to_string())?;
    let world = match seed {
        Some(path) => load_seed(Some(&path))?,
        None => World::default(),
    };
    let addr = format!("{}:{port}", host.as_deref().unwrap_or("127.0.0.1"));
    let running = local::start(world, &addr).await.map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    println!("keeper-local: emulated AWS on {}", running.url);
    println!(
        "  export AWS_ENDPOINT_URL={} AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_REGION=us-east-1",
        running.url,
        shared::clients::LOCAL_ACCESS_KEY_ID,
        shared::clients::LOCAL_SECRET_ACCESS_KEY
    );
    println!(
        "  state: curl {}/_keeper/state    calls: curl {}/_keeper/calls    stop: Ctrl-C",
        running.url, running.url
    );
    tokio::signal::ctrl_c().await.map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    Ok(())
}

async fn invoke(args: &[String]) -> Result<(), String> {
    let (seed, args) = option(args, "--seed")?;
    let [function, event] = args.as_slice() else {
        return Err(format!("invoke needs a function and an event file\n{USAGE}"));
    };
    if !FUNCTIONS.contains(&function.as_str()) {
        return Err(format!("no function `{function}`; functions: {}", FUNCTIONS.join(", ")));
    }
    let text = std::fs::read_to_string(event).map_err(|e| format!("cannot read event {event}: {e}"))?;
    let payload: Value = serde_json::from_str(&text).map_err(|e| format!("event {event} is not JSON: {e}"))?;
    let lookup = Lookup::env();
    shared::telemetry::init(&lookup);
    let running = local::start(load_seed(seed.as_deref())?, "127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot start the emulator: {e}"))?;
    let before = running.emulator.dump();
    let settings = Settings::from_lookup(&lookup).map_err(|e| e.to_string())?;
    let region = lookup.string("AWS_REGION").unwrap_or_else(|| "us-east-1".into());
    let sdk_config = shared::clients::local_sdk_config(&running.url, &region, &settings).await;
    let answer = run_function(function, &sdk_config, &lookup, payload).await?;
    println!("== report");
    match &answer {
        Ok(report) => println!("{}", serde_json::to_string_pretty(report).unwrap_or_default()),
        Err(diagnostic) => println!("{}: {}", diagnostic.error_type, diagnostic.error_message),
    }
    println!("== calls to the emulated account");
    for call in running.emulator.calls() {
        let params: Vec<String> =
            call.params.iter().filter(|(k, _)| *k != "protocol").map(|(k, v)| format!("{k}={v}")).collect();
        println!("  {:<10} {:<28} {:<12} {}", call.region, call.operation, call.outcome, params.join(" "));
    }
    println!("== changes in the emulated account");
    let changes = local::diff::changes(&before, &running.emulator.dump());
    if changes.is_empty() {
        println!("  (none)");
    }
    for change in changes {
        println!("  {change}");
    }
    Ok(())
}

/// Runs one function's real handler on the payload, with an in-memory idempotency guard.
async fn run_function(
    function: &str,
    sdk_config: &aws_types::SdkConfig,
    lookup: &Lookup<'_>,
    payload: Value,
) -> Result<Result<Report, Diagnostic>, String> {
    let store = Arc::new(MemoryStore::default());
    match function {
        start_idle_image_builders::FUNCTION => {
            let config = start_idle_image_builders::config::Config::from_lookup(lookup).map_err(|e| e.to_string())?;
            Ok(start_idle_image_builders::Deps::with_store(sdk_config, config, store).run(payload, None).await)
        }
        update_distribution_regions::FUNCTION => {
            let config = update_distribution_regions::config::Config::from_lookup(lookup).map_err(|e| e.to_string())?;
            Ok(update_distribution_regions::Deps::with_store(sdk_config, config, store).run(payload, None).await)
        }
        update_image_lifecycle::FUNCTION => {
            let config = update_image_lifecycle::config::Config::from_lookup(lookup).map_err(|e| e.to_string())?;
            Ok(update_image_lifecycle::Deps::with_store(sdk_config, config, store).run(payload, None).await)
        }
        rotate_key_group::FUNCTION => {
            let config = rotate_key_group::config::Config::from_lookup(lookup).map_err(|e| e.to_string())?;
            Ok(rotate_key_group::Deps::with_store(sdk_config, config, store).run(payload, None).await)
        }
        other => Err(format!("no function `{other}`")),
    }
}
