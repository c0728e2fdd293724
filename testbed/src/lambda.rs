//! The Lambda path: a function's real bootstrap polling the Lambda runtime API that `cargo lambda watch` serves,
//! invoked with `cargo lambda invoke`, reading its settings from the environment and talking to the emulated AWS
//! through AWS_ENDPOINT_URL, exactly as it would in Lambda.
//!
//! Watch runs with `--only-lambda-apis` and the test starts the bootstrap that cargo built for it: a watch that builds
//! would wait forever for the build-directory lock that the running `cargo test` holds.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::tools::{venv_tool, workspace_root};

/// A child process that ends with the test. SIGKILL to the child alone: neither child starts processes of its own
/// (watch runs with --only-lambda-apis), and a SIGTERM lets cargo-lambda's shutdown signal more than its own.
pub(crate) struct Reaped(pub(crate) Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where watch listens and invoke sends: one address, the one the free port was found on (by default watch binds
/// `::` and invoke sends to `::1`, another address than the check's).
const LOOPBACK: &str = "127.0.0.1";

fn free_port() -> u16 {
    TcpListener::bind((LOOPBACK, 0)).and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// The runtime API of `cargo lambda watch` on a free port, and the bootstraps started against it.
pub struct LambdaPath {
    tool: PathBuf,
    port: u16,
    // Dropped in order: the bootstraps, then watch.
    bootstraps: Vec<Reaped>,
    _watch: Reaped,
}

impl LambdaPath {
    /// Starts `cargo lambda watch --only-lambda-apis` on 127.0.0.1 and waits until it listens. A free port can be
    /// taken by another test between the check and watch's bind: watch then exits, while whatever took the port
    /// answers the readiness check. So the check also needs watch alive a moment after, or it starts again on
    /// another port.
    pub async fn watch() -> LambdaPath {
        let tool = venv_tool("cargo-lambda", "cargo-lambda")
            .unwrap_or_else(|e| panic!("cargo-lambda is needed for the Lambda-path test: {e}. Run `make test`."));
        for _ in 0..5 {
            let port = free_port();
            let watch = Command::new(&tool)
                .args(["lambda", "watch", "--only-lambda-apis", "--invoke-address", LOOPBACK])
                .args(["--invoke-port", &port.to_string()])
                .current_dir(workspace_root())
                // No terminal for it: a process in another group touching it can stop or confuse the caller's shell.
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("cargo lambda watch starts");
            let mut watch = Reaped(watch);
            let started = Instant::now();
            let mut exited = false;
            while TcpStream::connect((LOOPBACK, port)).is_err() {
                assert!(started.elapsed() < Duration::from_secs(60), "cargo lambda watch did not listen within 60 s");
                if watch.0.try_wait().ok().flatten().is_some() {
                    exited = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            if !exited && watch.0.try_wait().ok().flatten().is_none() {
                return LambdaPath { tool, port, bootstraps: Vec::new(), _watch: watch };
            }
        }
        panic!("cargo lambda watch exited five times on a port that was free a moment before");
    }

    /// Starts a function's bootstrap configured as Lambda configures it, aimed at the emulator at `endpoint` with
    /// its documented credentials; `settings` are the function's own environment variables.
    pub fn start_bootstrap(&mut self, bootstrap: &str, endpoint: &str, settings: &[(&str, &str)]) {
        // `_` is the name watch gives a function it did not start.
        let runtime_api = format!("http://{LOOPBACK}:{}/.rt", self.port);
        let child = bootstrap_command(bootstrap, &runtime_api, "_", endpoint, settings)
            .spawn()
            .unwrap_or_else(|e| panic!("the bootstrap {bootstrap} starts: {e}"));
        self.bootstraps.push(Reaped(child));
    }

    /// One invocation through `cargo lambda invoke`; the response, which must be JSON.
    pub async fn invoke(&self, event: &Value) -> Value {
        let (tool, port, event) = (self.tool.clone(), self.port, event.clone());
        tokio::task::spawn_blocking(move || {
            let file = std::env::temp_dir().join(format!(
                "keeper-lambda-path-{}-{port}-{}.json",
                std::process::id(),
                unique_suffix()
            ));
            std::fs::write(&file, event.to_string()).expect("the event file is written");
            let out = Command::new(&tool)
                .args(["lambda", "invoke", "--invoke-address", LOOPBACK, "--invoke-port", &port.to_string()])
                .arg("--data-file")
                .arg(&file)
                .current_dir(workspace_root())
                .stdin(Stdio::null())
                .output()
                .expect("cargo lambda invoke runs");
            let _ = std::fs::remove_file(&file);
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "invoke failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
            serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("the response is JSON ({e}): {stdout}"))
        })
        .await
        .expect("the invoke thread ends")
    }
}

/// A function's bootstrap as Lambda starts it: an empty environment but for what Lambda sets (the runtime API,
/// the function's name, JSON logs), the emulator at `endpoint` with its documented credentials, and `settings`.
pub fn bootstrap_command(
    bootstrap: &str,
    runtime_api: &str,
    function_name: &str,
    endpoint: &str,
    settings: &[(&str, &str)],
) -> Command {
    let mut command = Command::new(bootstrap);
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs([
            ("AWS_LAMBDA_RUNTIME_API", runtime_api),
            ("AWS_LAMBDA_FUNCTION_NAME", function_name),
            ("AWS_LAMBDA_FUNCTION_VERSION", "1"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
            ("AWS_ENDPOINT_URL", endpoint),
            ("AWS_ACCESS_KEY_ID", local::client::ACCESS_KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", local::client::SECRET_ACCESS_KEY),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ])
        .envs(settings.iter().copied())
        // No terminal for it: a process in another group touching it can stop or confuse the caller's shell.
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Distinguishes the event files of invocations in flight at once.
fn unique_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
}

/// What [`dry_run_then_real`] saw: both answers and the emulator that served them.
pub struct DryRunThenReal {
    pub dry: Value,
    pub real: Value,
    pub running: local::Running,
}

/// A function's bootstrap under the Lambda path, on the demo account, invoked with one of its samples first as a dry
/// run, then for real (`requestId` "lambda-path-1"). Asserts what holds for every function: both answers are its
/// reports, the dry run applied nothing and made none of the `mutating` calls, and the real run applied something.
pub async fn dry_run_then_real(
    function: &str,
    bootstrap: &str,
    sample: &str,
    settings: &[(&str, &str)],
    mutating: &[&str],
) -> DryRunThenReal {
    let running = crate::emulator::start(crate::samples::demo_account()).await;
    let mut lambda = LambdaPath::watch().await;
    let mut env = vec![("RETRY_INITIAL_BACKOFF_MS", "1")];
    env.extend_from_slice(settings);
    lambda.start_bootstrap(bootstrap, &running.url, &env);
    let mut event = crate::samples::sample(function, sample);
    let mut dry_event = event.clone();
    dry_event["dryRun"] = Value::Bool(true);
    let dry = lambda.invoke(&dry_event).await;
    let dry_mutations: usize = mutating.iter().map(|op| crate::emulator::calls(&running, op).len()).sum();
    event["requestId"] = Value::String("lambda-path-1".into());
    let real = lambda.invoke(&event).await;
    assert_eq!(dry["function"], function);
    assert_eq!(dry["dryRun"], true);
    assert!(dry["actions"].as_array().is_some_and(|a| a.iter().all(|x| x["outcome"] != "applied")), "{dry}");
    assert_eq!(dry_mutations, 0, "a dry run makes no mutating call");
    assert_eq!(real["eventId"], "manual:lambda-path-1");
    assert!(real["actions"].as_array().is_some_and(|a| a.iter().any(|x| x["outcome"] == "applied")), "{real}");
    DryRunThenReal { dry, real, running }
}
