//! The in-process idempotency store for local runs and tests: the same condition as DynamoDB, under a mutex.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{IdempotencyStore, Lock, Now, Record, Status, StoreError};

#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<HashMap<String, Record>>,
    /// Marks: id → (value, expiration in epoch seconds).
    marks: Mutex<HashMap<String, (String, i64)>>,
}

impl MemoryStore {
    /// A copy of a record, for tests.
    pub fn get(&self, id: &str) -> Option<Record> {
        self.lock().ok()?.get(id).cloned()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Record>>, StoreError> {
        self.records.lock().map_err(|_| StoreError("memory store poisoned by a panic".into()))
    }
}

/// The lock condition of the DynamoDB store, evaluated in process.
pub(super) fn is_free(existing: Option<&Record>, now: Now) -> bool {
    match existing {
        None => true,
        Some(r) => {
            r.expiration < now.seconds
                || (r.status == Status::InProgress && r.in_progress_expiration.is_some_and(|t| t < now.millis))
        }
    }
}

#[async_trait]
impl IdempotencyStore for MemoryStore {
    async fn put_in_progress(&self, record: &Record, now: Now) -> Result<Lock, StoreError> {
        let mut records = self.lock()?;
        let existing = records.get(&record.id);
        if is_free(existing, now) {
            records.insert(record.id.clone(), record.clone());
            Ok(Lock::Acquired)
        } else {
            Ok(Lock::Held(existing.cloned().ok_or_else(|| StoreError("record vanished".into()))?))
        }
    }

    async fn complete(&self, record: &Record) -> Result<bool, StoreError> {
        let mut records = self.lock()?;
        let held = records.get(&record.id).is_some_and(|r| r.owner.is_some() && r.owner == record.owner);
        if held {
            records.insert(record.id.clone(), record.clone());
        }
        Ok(held)
    }

    async fn delete(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        let mut records = self.lock()?;
        let held = records.get(id).is_some_and(|r| r.owner.as_deref() == Some(owner));
        if held {
            records.remove(id);
        }
        Ok(held)
    }

    async fn get_mark(&self, id: &str) -> Result<Option<String>, StoreError> {
        let marks = self.marks.lock().map_err(|_| StoreError("memory store poisoned by a panic".into()))?;
        let now = Now::at(std::time::SystemTime::now()).seconds;
        Ok(marks.get(id).filter(|(_, expiration)| *expiration >= now).map(|(value, _)| value.clone()))
    }

    async fn put_mark(&self, id: &str, value: &str, expiration: i64) -> Result<(), StoreError> {
        let mut marks = self.marks.lock().map_err(|_| StoreError("memory store poisoned by a panic".into()))?;
        marks.insert(id.to_string(), (value.to_string(), expiration));
        Ok(())
    }
}
