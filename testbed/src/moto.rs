//! Starts moto's server (a real DynamoDB API, from PyPI) on a free loopback port, and stops it when dropped.
//!
//! The binary comes from [`crate::tools::venv_tool`]: `.venv` (where `make test` installs it), PATH, or a fresh
//! install of the pinned moto; if none works the test fails and says why. Never a silent skip.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
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

impl Moto {
    /// Starts moto and waits until it answers; panics with the reason when it cannot.
    pub fn start() -> Moto {
        let binary = crate::tools::venv_tool("moto_server", "moto").unwrap_or_else(|e| {
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
