//! The idempotency guard a function runs behind in the end-to-end suites: memory by default, or DynamoDB on a moto
//! server of the test's own when `KEEPER_TEST_GUARD=dynamodb` (`make test` runs the function suites both ways, so
//! every scenario holds behind the guard production uses, not only the in-process one).

use std::ops::Deref;
use std::sync::Arc;

use aws_types::SdkConfig;
use shared::config::Lookup;
use shared::host::{Function, Host};
use shared::idempotency::{IdempotencyStore, MemoryStore};

use crate::moto::Moto;

/// Whether this run's suites use DynamoDB; any other value than `dynamodb` (or none) is the memory guard.
pub fn dynamodb() -> bool {
    match std::env::var("KEEPER_TEST_GUARD").as_deref() {
        Ok("dynamodb") => true,
        Ok("memory") | Err(_) => false,
        Ok(other) => panic!("KEEPER_TEST_GUARD={other}: use memory or dynamodb"),
    }
}

/// A store for one test, and the moto server behind it when there is one (it stops when dropped).
pub struct Store {
    pub store: Arc<dyn IdempotencyStore>,
    pub moto: Option<Moto>,
}

/// The store of this run's guard, fresh: a new memory store, or a new table on a new moto server.
pub async fn store() -> Store {
    if !dynamodb() {
        return Store { store: Arc::new(MemoryStore::default()), moto: None };
    }
    let moto = tokio::task::spawn_blocking(Moto::start).await.expect("moto starts");
    Store { store: Arc::new(moto.idempotency_store().await), moto: Some(moto) }
}

/// A function's host behind this run's guard; derefs to the host, and keeps its moto server running.
pub struct Guarded<F: Function> {
    host: Host<F>,
    _moto: Option<Moto>,
}

impl<F: Function> Deref for Guarded<F> {
    type Target = Host<F>;

    fn deref(&self) -> &Host<F> {
        &self.host
    }
}

impl<F: Function> Guarded<F> {
    /// [`Host::with_clock`]: the host's invocations see this time, the emulator and the guard keep the system's.
    pub fn with_clock(self, clock: impl Fn() -> std::time::SystemTime + Send + Sync + 'static) -> Self {
        Guarded { host: self.host.with_clock(clock), _moto: self._moto }
    }
}

/// `Host::with_store` on this run's guard.
pub async fn host<F: Function>(sdk: &SdkConfig, lookup: &Lookup<'_>) -> Guarded<F> {
    let Store { store, moto } = store().await;
    Guarded { host: Host::with_store(sdk, lookup, store).expect("valid settings"), _moto: moto }
}
