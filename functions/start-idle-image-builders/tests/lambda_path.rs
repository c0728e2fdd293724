//! The Lambda path: the function's real bootstrap binary polling the Lambda runtime API that `cargo lambda watch`
//! serves, invoked with `cargo lambda invoke`, reading its settings from the environment and talking to the emulated
//! AWS through AWS_ENDPOINT_URL, exactly as it would in Lambda.
//!
//! Watch runs with `--only-lambda-apis` and the test starts the bootstrap that cargo built for it: a watch that builds
//! would wait forever for the build-directory lock that the running `cargo test` holds.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keeper_tests::emulator::{calls, start};
use keeper_tests::tools::{venv_tool, workspace_root};

use serde_json::{Value, json};

/// A child process that ends with the test. SIGKILL to the child alone: neither child starts processes of its own
/// (watch runs with --only-lambda-apis), and a SIGTERM lets cargo-lambda's shutdown signal more than its own.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

fn cargo_lambda() -> PathBuf {
    venv_tool("cargo-lambda", "cargo-lambda")
        .unwrap_or_else(|e| panic!("cargo-lambda is needed for the Lambda-path test: {e}. Run `make test`."))
}

fn invoke(tool: &PathBuf, port: u16, event: &Value) -> Value {
    let file = std::env::temp_dir().join(format!("keeper-lambda-path-{}-{port}.json", std::process::id()));
    std::fs::write(&file, event.to_string()).unwrap();
    let out = Command::new(tool)
        .args(["lambda", "invoke", "--invoke-port", &port.to_string(), "--data-file"])
        .arg(&file)
        .current_dir(workspace_root())
        .output()
        .expect("cargo lambda invoke runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "invoke failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("the response is a report ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_the_bootstrap_under_cargo_lambda_watch_when_invoked_then_it_reports_and_acts_through_the_emulator() {
    // GIVEN the emulated account and the function under the Lambda runtime emulator, configured by environment
    let running = start(json!({"timing": {"transitionMillis": 60000}, "regions": {"us-east-1": {"imageBuilders": {
        "team-a": {"State": "STOPPED"}, "team-b": {"State": "RUNNING"}
    }}}}))
    .await;
    let tool = cargo_lambda();
    let port = free_port();
    let watch = Command::new(&tool)
        .args(["lambda", "watch", "--only-lambda-apis", "--invoke-port", &port.to_string()])
        .current_dir(workspace_root())
        // No terminal for them: a process in another group touching it can stop or confuse the caller's shell.
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("cargo lambda watch starts");
    let _watch = Reaped(watch);
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "cargo lambda watch did not listen within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The bootstrap, configured as Lambda configures it (`_` is the name watch gives a function it did not start).
    let bootstrap = Command::new(env!("CARGO_BIN_EXE_start-idle-image-builders"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs([
            ("AWS_LAMBDA_RUNTIME_API", format!("http://127.0.0.1:{port}/.rt")),
            ("AWS_LAMBDA_FUNCTION_NAME", "_".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "1".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128".into()),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON".into()),
            ("AWS_ENDPOINT_URL", running.url.clone()),
            ("AWS_ACCESS_KEY_ID", shared::clients::LOCAL_ACCESS_KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", shared::clients::LOCAL_SECRET_ACCESS_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("RETRY_INITIAL_BACKOFF_MS", "1".into()),
            ("NAME_PREFIX", "team-".into()),
        ])
        // No terminal for them: a process in another group touching it can stop or confuse the caller's shell.
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the bootstrap starts");
    let _bootstrap = Reaped(bootstrap);
    // WHEN a dry run and then a real request are invoked
    let tool2 = tool.clone();
    let dry = tokio::task::spawn_blocking(move || invoke(&tool2, port, &json!({"dryRun": true}))).await.unwrap();
    let tool3 = tool.clone();
    let real = tokio::task::spawn_blocking(move || invoke(&tool3, port, &json!({"requestId": "lambda-path-1"})))
        .await
        .unwrap();
    // THEN both answers are reports, the dry run made no mutating call, and the real one started team-a only
    assert_eq!(dry["function"], "start-idle-image-builders");
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["actions"][0]["outcome"], "planned");
    assert_eq!(real["eventId"], "manual:lambda-path-1");
    assert_eq!(real["actions"][0]["target"], "us-east-1/team-a");
    assert_eq!(real["actions"][0]["outcome"], "applied");
    assert_eq!(real["actions"][1]["outcome"], "skipped");
    let starts = calls(&running, "StartImageBuilder");
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].params["Name"], "team-a");
}
