//! Starts moto's server (a real DynamoDB API, from PyPI) on a free loopback port, one request at a time
//! (`testbed/moto_atomic.py`), and stops it when dropped.
//!
//! The binary comes from [`crate::tools::venv_tool`]: `.venv` (where `make test` installs it), PATH, or a fresh
//! install of the pinned moto; if none works the test fails and says why. Never a silent skip.

use std::net::TcpListener;
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
    /// Starts moto and waits until it answers; panics with the reason when it cannot.
    pub fn start() -> Moto {
        let binary = crate::tools::venv_tool("moto_server", "moto").unwrap_or_else(|e| {
            panic!("cannot start moto for the DynamoDB tests: {e}. Run `make test` (it installs moto into .venv) or set MOTO_SERVER.")
        });
        let port =
            TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port");
        // moto's own server checks a condition and writes without a lock; moto_atomic.py applies one request at a
        // time, as DynamoDB applies a conditional write (the guard's tests depend on it). Its python is moto's.
        let python = binary.parent().map(|bin| bin.join("python")).filter(|p| p.is_file());
        let python = python.unwrap_or_else(|| "python3".into());
        let script = crate::tools::workspace_root().join("testbed/moto_atomic.py");
        let child = Command::new(&python)
            .arg(&script)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} {}: {e}", python.display(), script.display()));
        let moto = Moto { child, url: format!("http://127.0.0.1:{port}") };
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "moto did not listen on port {port} within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        moto
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
