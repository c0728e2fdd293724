//! Finds the Python-packaged tools the tests run (moto_server, cargo-lambda): `$<NAME>` (upper-cased, `-` → `_`),
//! the workspace's `.venv`, then PATH; installs the pinned package into `.venv` from requirements-dev.txt when none is
//! there, so plain `cargo test --workspace` works on a fresh clone too.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()))
}

/// Serialises installs across the tests of a binary.
static INSTALL: Mutex<()> = Mutex::new(());

/// The path of `binary`, installing the requirement line that starts with `package` when it is missing.
pub fn venv_tool(binary: &str, package: &str) -> Result<PathBuf, String> {
    let variable = binary.to_ascii_uppercase().replace('-', "_");
    if let Some(explicit) = std::env::var_os(&variable) {
        return Ok(PathBuf::from(explicit));
    }
    let venv = workspace_root().join(".venv");
    let local = venv.join("bin").join(binary);
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if local.is_file() {
        return Ok(local);
    }
    if let Some(found) = on_path(binary) {
        return Ok(found);
    }
    let requirement = std::fs::read_to_string(workspace_root().join("requirements-dev.txt"))
        .ok()
        .and_then(|text| text.lines().find(|l| l.starts_with(package)).map(str::to_string))
        .unwrap_or_else(|| package.to_string());
    eprintln!("{binary} not found: installing {requirement} into {}", venv.display());
    let run = |cmd: &mut Command| -> Result<(), String> {
        let status = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
        status.success().then_some(()).ok_or_else(|| format!("{cmd:?} exited with {status}"))
    };
    if !venv.join("bin").join("pip").is_file() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(venv.join("bin").join("pip")).args(["install", "--quiet", &requirement]))?;
    local.is_file().then_some(local).ok_or_else(|| format!("pip installed {requirement} but no {binary} appeared"))
}
