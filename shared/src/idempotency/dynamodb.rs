//! The production idempotency store: one DynamoDB item per event, locked by one conditional PutItem.
//!
//! Table: partition key `id` (S), TTL attribute `expiration`. Attributes as Powertools names them: `status`,
//! `expiration` (N, epoch s), `in_progress_expiration` (N, epoch ms), `data` (S), `validation` (S); and `owner` (S),
//! the run that holds the record, which completing and deleting are conditional on. A mark (a fact a function keeps
//! for its later runs) is an item of its own: `id`, `mark` (S) and `expiration`.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::{IdempotencyStore, Lock, Now, Record, Status, StoreError};

const LOCK_CONDITION: &str =
    "attribute_not_exists(#id) OR #expiry < :now OR (#status = :inprogress AND #in_progress_expiry < :now_in_millis)";

#[derive(Debug, Clone)]
pub struct DynamoDbStore {
    client: Client,
    table: String,
}

impl DynamoDbStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoDbStore { client, table: table.into() }
    }

    /// Fallback when a condition failure came back without the old item (some DynamoDB-compatible servers omit it).
    async fn read(&self, id: &str) -> Result<Option<Record>, StoreError> {
        self.get_item(id).await?.as_ref().map(from_item).transpose()
    }

    /// The item `id`, read consistently: a record or a mark just written is what the next read sees.
    async fn get_item(&self, id: &str) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError(format!("GetItem on {}: {}", self.table, DisplayErrorContext(&e))))?;
        Ok(out.item)
    }
}

fn to_item(record: &Record) -> HashMap<String, AttributeValue> {
    let mut item = HashMap::from([
        ("id".to_string(), AttributeValue::S(record.id.clone())),
        ("status".to_string(), AttributeValue::S(record.status.as_str().into())),
        ("expiration".to_string(), AttributeValue::N(record.expiration.to_string())),
    ]);
    if let Some(t) = record.in_progress_expiration {
        item.insert("in_progress_expiration".into(), AttributeValue::N(t.to_string()));
    }
    if let Some(data) = &record.data {
        item.insert("data".into(), AttributeValue::S(data.clone()));
    }
    if let Some(v) = &record.validation {
        item.insert("validation".into(), AttributeValue::S(v.clone()));
    }
    if let Some(owner) = &record.owner {
        item.insert("owner".into(), AttributeValue::S(owner.clone()));
    }
    item
}

/// Only the run that holds a record may complete or delete it.
const HOLDER_CONDITION: &str = "#owner = :owner";

fn from_item(item: &HashMap<String, AttributeValue>) -> Result<Record, StoreError> {
    let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
    let n = |k: &str| item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok());
    let bad = |what: &str| StoreError(format!("stored item has no valid `{what}`"));
    Ok(Record {
        id: s("id").ok_or_else(|| bad("id"))?,
        status: s("status").as_deref().and_then(Status::parse).ok_or_else(|| bad("status"))?,
        expiration: n("expiration").ok_or_else(|| bad("expiration"))?,
        in_progress_expiration: n("in_progress_expiration"),
        data: s("data"),
        validation: s("validation"),
        owner: s("owner"),
    })
}

#[async_trait]
impl IdempotencyStore for DynamoDbStore {
    async fn put_in_progress(&self, record: &Record, now: Now) -> Result<Lock, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)))
            .condition_expression(LOCK_CONDITION)
            .expression_attribute_names("#id", "id")
            .expression_attribute_names("#expiry", "expiration")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#in_progress_expiry", "in_progress_expiration")
            .expression_attribute_values(":now", AttributeValue::N(now.seconds.to_string()))
            .expression_attribute_values(":now_in_millis", AttributeValue::N(now.millis.to_string()))
            .expression_attribute_values(":inprogress", AttributeValue::S(Status::InProgress.as_str().into()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Lock::Acquired),
            Err(e) => match e.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(failed)) => {
                    let existing = match failed.item() {
                        Some(item) => Some(from_item(item)?),
                        None => self.read(&record.id).await?,
                    };
                    // Gone between the failed write and the read (TTL or a failed run's delete): report it as held
                    // by a run in progress, so the caller retries rather than runs unguarded.
                    Ok(Lock::Held(existing.unwrap_or_else(|| Record {
                        status: Status::InProgress,
                        validation: None,
                        ..record.clone()
                    })))
                }
                _ => Err(StoreError(format!("PutItem on {}: {}", self.table, DisplayErrorContext(&e)))),
            },
        }
    }

    async fn complete(&self, record: &Record) -> Result<bool, StoreError> {
        let owner = record.owner.clone().ok_or_else(|| StoreError("a completed record needs its owner".into()))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(to_item(record)))
            .condition_expression(HOLDER_CONDITION)
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", AttributeValue::S(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.as_service_error(), Some(PutItemError::ConditionalCheckFailedException(_))) => {
                Ok(false)
            }
            Err(e) => Err(StoreError(format!("PutItem on {}: {}", self.table, DisplayErrorContext(&e)))),
        }
    }

    async fn delete(&self, id: &str, owner: &str) -> Result<bool, StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("id", AttributeValue::S(id.into()))
            .condition_expression(HOLDER_CONDITION)
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", AttributeValue::S(owner.into()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.as_service_error(), Some(DeleteItemError::ConditionalCheckFailedException(_))) => {
                Ok(false)
            }
            Err(e) => Err(StoreError(format!("DeleteItem on {}: {}", self.table, DisplayErrorContext(&e)))),
        }
    }

    async fn get_mark(&self, id: &str) -> Result<Option<String>, StoreError> {
        let Some(item) = self.get_item(id).await? else { return Ok(None) };
        let expiration = item.get("expiration").and_then(|v| v.as_n().ok()).and_then(|v| v.parse::<i64>().ok());
        // TTL deletes an expired item within days, not at once: until then it is read as absent.
        if expiration.is_some_and(|t| t < Now::at(std::time::SystemTime::now()).seconds) {
            return Ok(None);
        }
        match item.get(MARK) {
            Some(AttributeValue::S(value)) => Ok(Some(value.clone())),
            _ => Err(StoreError(format!("item {id} in {} has no valid `{MARK}`", self.table))),
        }
    }

    async fn put_mark(&self, id: &str, value: &str, expiration: i64) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("id", AttributeValue::S(id.into()))
            .item(MARK, AttributeValue::S(value.into()))
            .item("expiration", AttributeValue::N(expiration.to_string()))
            .send()
            .await
            .map_err(|e| StoreError(format!("PutItem on {}: {}", self.table, DisplayErrorContext(&e))))?;
        Ok(())
    }
}

/// The attribute of a mark's value (a mark is `id`, `mark` and `expiration`, the TTL attribute).
const MARK: &str = "mark";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_full_record_when_stored_and_read_then_identical() {
        let record = Record {
            id: "f#abc".into(),
            status: Status::Completed,
            expiration: 1_800_000_000,
            in_progress_expiration: Some(1_800_000_000_123),
            data: Some(r#"{"a":1}"#.into()),
            validation: Some("hash".into()),
            owner: Some("run-1".into()),
        };
        assert_eq!(from_item(&to_item(&record)).unwrap(), record);
    }

    #[test]
    fn given_item_without_status_when_read_then_error_names_attribute() {
        let mut item = to_item(&Record {
            id: "x".into(),
            status: Status::InProgress,
            expiration: 1,
            in_progress_expiration: None,
            data: None,
            validation: None,
            owner: None,
        });
        item.remove("status");
        assert!(from_item(&item).unwrap_err().to_string().contains("`status`"));
    }
}
