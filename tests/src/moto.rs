//! Starts moto's server (a real DynamoDB API, from PyPI) on a free loopback port, and stops it when dropped.
//!
//! The binary is found at `$MOTO_SERVER`, then in the workspace's `.venv` (where `make test` installs it), then on
//! PATH. When none exists the harness installs the pinned moto into `.venv` from requirements-dev.txt, so plain
//! `cargo test --workspace` works on a fresh clone too; if that fails the test fails and says why. Never a silent skip.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A running moto server; killed on drop.
pub struct Moto {
    child: Child,
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()))
}

/// Serialises the one-time install across the tests of a binary.
static INSTALL: Mutex<()> = Mutex::new(());

fn moto_binary() -> Result<PathBuf, String> {
    if let Some(explicit) = std::env::var_os("MOTO_SERVER") {
        return Ok(PathBuf::from(explicit));
    }
    let venv = workspace_root().join(".venv");
    let local = venv.join("bin").join("moto_server");
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if local.is_file() {
        return Ok(local);
    }
    if let Some(found) = on_path("moto_server") {
        return Ok(found);
    }
    eprintln!("moto_server not found: installing moto into {} (requirements-dev.txt)", venv.display());
    let requirement = std::fs::read_to_string(workspace_root().join("requirements-dev.txt"))
        .ok()
        .and_then(|text| text.lines().find(|l| l.starts_with("moto")).map(str::to_string))
        .unwrap_or_else(|| "moto[server]".into());
    let run = |cmd: &mut Command| -> Result<(), String> {
        let status = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
        status.success().then_some(()).ok_or_else(|| format!("{cmd:?} exited with {status}"))
    };
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    run(Command::new(venv.join("bin").join("pip")).args(["install", "--quiet", &requirement]))?;
    local.is_file().then_some(local).ok_or_else(|| "pip installed moto but no moto_server appeared".into())
}

impl Moto {
    /// Starts moto and waits until it answers; panics with the reason when it cannot.
    pub fn start() -> Moto {
        let binary = moto_binary().unwrap_or_else(|e| {
            panic!("cannot start moto for the DynamoDB tests: {e}. Run `make test` (it installs moto into .venv) or set MOTO_SERVER.")
        });
        let port =
            TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
        let child = Command::new(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let moto = Moto { child, url: format!("http://127.0.0.1:{port}") };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "moto did not listen on port {port} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
    }
}
