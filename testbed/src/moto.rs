//! Starts moto's server (a real DynamoDB API, from PyPI) on a free loopback port, one request at a time
//! (`testbed/moto_atomic.py`), and stops it when dropped.
//!
//! The binary comes from [`crate::tools::venv_tool`]: `.venv` (where `make test` installs it), PATH, or a fresh
//! install of the pinned moto; if none works the test fails and says why. Never a silent skip.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType};
use shared::config::Settings;
use shared::idempotency::DynamoDbStore;

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
    /// Starts moto and waits until it answers HTTP; panics with the reason when it cannot.
    pub fn start() -> Moto {
        let binary = crate::tools::venv_tool("moto_server", "moto").unwrap_or_else(|e| {
            panic!("cannot start moto for the DynamoDB tests: {e}. Run `make test` (it installs moto into .venv) or set MOTO_SERVER.")
        });
        // moto's own server checks a condition and writes without a lock; moto_atomic.py applies one request at a
        // time, as DynamoDB applies a conditional write (the guard's tests depend on it). Its python is moto's.
        let python = binary.parent().map(|bin| bin.join("python")).filter(|p| p.is_file());
        let python = python.unwrap_or_else(|| "python3".into());
        let script = crate::tools::workspace_root().join("testbed/moto_atomic.py");
        // A free port can be taken between choosing it and moto binding it (an emulator of another test, or an
        // outgoing connection's local port): moto then exits, and a fresh port is tried.
        let mut last = String::new();
        for _ in 0..5 {
            match Moto::try_start(&python, &script) {
                Ok(moto) => return moto,
                Err(e) => last = e,
            }
        }
        panic!("moto did not start in 5 attempts: {last}")
    }

    fn try_start(python: &Path, script: &Path) -> Result<Moto, String> {
        let port =
            TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
        let child = Command::new(python)
            .arg(script)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} {}: {e}", python.display(), script.display()));
        let mut moto = Moto { child, url: format!("http://127.0.0.1:{port}") };
        let started = Instant::now();
        // Ready when moto itself answers HTTP: a bare TCP connect can succeed against something else on the port.
        while !answers_http(port) {
            if let Ok(Some(status)) = moto.child.try_wait() {
                return Err(format!("moto exited ({status}) before listening on port {port}"));
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err(format!("moto did not answer on port {port} within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if let Ok(Some(status)) = moto.child.try_wait() {
            return Err(format!("moto exited ({status}) while something else answered on port {port}"));
        }
        Ok(moto)
    }

    /// The idempotency table as template.yaml defines it (key `id`, on demand), created in this server, and the
    /// store keeper's guard uses on it.
    pub async fn idempotency_store(&self) -> DynamoDbStore {
        let settings = Settings { retry_initial_backoff: Duration::from_millis(5), ..Settings::default() };
        let sdk = local::client::sdk_config(&self.url, "us-east-1", shared::retry::retry_config(&settings)).await;
        let client = shared::clients::dynamodb(&sdk, &settings);
        let attribute = AttributeDefinition::builder().attribute_name("id").attribute_type(ScalarAttributeType::S);
        client
            .create_table()
            .table_name("keeper-idempotency")
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attribute.build().expect("a complete attribute"))
            .key_schema(KeySchemaElement::builder().attribute_name("id").key_type(KeyType::Hash).build().unwrap())
            .send()
            .await
            .expect("create the idempotency table in moto");
        DynamoDbStore::new(client, "keeper-idempotency")
    }
}

/// Whether an HTTP server answers on the port.
fn answers_http(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}
