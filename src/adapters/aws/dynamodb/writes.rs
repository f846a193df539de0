//! Writes to the provider in the state table, one item per write id (`write#<id>`, `state`):
//! a PutItem that leaves a kept id alone, and UpdateItems conditional on the write's position.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure,
};

use super::item::{attr, Item};
use super::state::state_keys::{write_pk, RUNNING_ACTIONS_PK, STATE_SK, WRITE_PREFIX};
use super::state::DynamoStateStore;
use super::{get_n, get_s, n, s, store_error};
use crate::core::writes::request::WriteRequest;
use crate::core::writes::state::WriteState;
use crate::core::writes::stored::{bounded, oldest_first, Accept, Move, StoredWrite};
use crate::ports::{StoreError, WriteStore};

const REQUEST: &str = "request";
const STATE: &str = "state";
const ATTEMPTS: &str = "attempts";
const ACCEPTED_AT: &str = "accepted_at";
const CHANGED_AT: &str = "changed_at";
const OUTCOME: &str = "outcome";
const MAYBE_REACHED: &str = "maybe_reached";
const ACTION_ID: &str = "action_id";
/// The running-actions index's attributes: the action's id after it, the write's as the value.
const ACTION_PREFIX: &str = "a#";
/// A random mark of the call that last moved the write.
const MOVER: &str = "moved_by";

fn key(id: &str) -> Item {
    HashMap::from([
        (attr::PK.to_owned(), s(write_pk(id))),
        (attr::SK.to_owned(), s(STATE_SK)),
    ])
}

/// The running-actions index: one item whose attributes are `a#<action id>` = the write's id.
/// One item, so that a reconcile reads it with one GetItem rather than a Query.
fn index_key() -> Item {
    HashMap::from([
        (attr::PK.to_owned(), s(RUNNING_ACTIONS_PK)),
        (attr::SK.to_owned(), s(STATE_SK)),
    ])
}

fn action_attribute(action_id: &str) -> String {
    format!("{ACTION_PREFIX}{action_id}")
}

fn stored(item: &Item) -> Result<StoredWrite, StoreError> {
    let text = |name: &str| get_s(item, name).unwrap_or_default();
    StoredWrite::from_kept(
        &text(REQUEST),
        &text(STATE),
        get_n(item, ATTEMPTS),
        text(ACCEPTED_AT),
        text(CHANGED_AT),
        get_s(item, OUTCOME),
        item.get(MAYBE_REACHED)
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
    )
    .map(|write| write.with_action(get_s(item, ACTION_ID)))
    .map_err(StoreError::permanent)
}

/// Whether `item` is where this very call (its `token`) moved the write.
fn moved_by(item: &Item, change: &Move<'_>, token: &str) -> bool {
    get_s(item, MOVER).as_deref() == Some(token)
        && get_s(item, STATE).as_deref() == Some(change.to.state.as_str())
        && get_n::<u32>(item, ATTEMPTS) == change.to.attempts
}

fn is_condition_failure(code: Option<&str>) -> bool {
    code == Some("ConditionalCheckFailedException")
}

impl WriteStore for DynamoStateStore {
    async fn accept_write(&self, request: &WriteRequest, at: &str) -> Result<Accept, StoreError> {
        let write = StoredWrite::accepted(request.clone(), at);
        let mut item = key(&request.id);
        item.extend([
            (REQUEST.to_owned(), s(StoredWrite::request_text(request))),
            (STATE.to_owned(), s(write.position.state.as_str())),
            (ATTEMPTS.to_owned(), n(write.position.attempts)),
            (ACCEPTED_AT.to_owned(), s(at)),
            (CHANGED_AT.to_owned(), s(at)),
        ]);
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", attr::PK)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await;
        match put {
            Ok(out) => {
                self.meter.write(out.consumed_capacity.as_slice());
                Ok(Accept::New)
            }
            Err(e) if is_condition_failure(e.code()) => match self.get_write(&request.id).await? {
                Some(kept) => Ok(Accept::Duplicate(Box::new(kept))),
                // Kept a moment ago and gone now: nothing deletes writes, so this is a store
                // that changed under us; let the caller try again.
                None => Err(StoreError::transient("write vanished while being accepted")),
            },
            Err(e) => Err(store_error(e)),
        }
    }

    async fn get_write(&self, id: &str) -> Result<Option<StoredWrite>, StoreError> {
        let item = self.get_consistent(key(id)).await?;
        item.as_ref().map(stored).transpose()
    }

    async fn move_write(&self, id: &str, change: &Move<'_>) -> Result<bool, StoreError> {
        if let Some(action_id) = change.action_id {
            // Indexed before the write moves to it: a write running an action is always found
            // by it (an entry whose move then fails is dropped by `running_writes`).
            self.index_action(action_id, Some(id)).await?;
        }
        // This call's own mark: an SDK retry of it carries the same one, another mover's never.
        let token = format!("{:016x}", fastrand::u64(..));
        let mut set =
            "#state = :to, #attempts = :to_attempts, #changed_at = :at, #mover = :token".to_owned();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(id)))
            .condition_expression("#state = :from AND #attempts = :from_attempts")
            .expression_attribute_names("#state", STATE)
            .expression_attribute_names("#attempts", ATTEMPTS)
            .expression_attribute_names("#changed_at", CHANGED_AT)
            .expression_attribute_values(":from", s(change.from.state.as_str()))
            .expression_attribute_values(":from_attempts", n(change.from.attempts))
            .expression_attribute_values(":to", s(change.to.state.as_str()))
            .expression_attribute_values(":to_attempts", n(change.to.attempts))
            .expression_attribute_values(":at", s(change.at))
            .expression_attribute_names("#mover", MOVER)
            .expression_attribute_values(":token", s(&token))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(reached) = change.reached {
            set.push_str(", #maybe_reached = :maybe_reached");
            update = update
                .expression_attribute_names("#maybe_reached", MAYBE_REACHED)
                .expression_attribute_values(":maybe_reached", AttributeValue::Bool(reached));
        }
        if let Some(action_id) = change.action_id {
            set.push_str(", #action_id = :action_id");
            update = update
                .expression_attribute_names("#action_id", ACTION_ID)
                .expression_attribute_values(":action_id", s(action_id));
        }
        if let Some(outcome) = change.outcome {
            set.push_str(", #outcome = :outcome");
            update = update
                .expression_attribute_names("#outcome", OUTCOME)
                .expression_attribute_values(":outcome", s(bounded(outcome)));
        }
        match update.update_expression(format!("SET {set}")).send().await {
            Ok(out) => {
                self.meter.write(out.consumed_capacity.as_slice());
                Ok(true)
            }
            // The SDK may have sent the update again after a first one that applied but whose
            // answer was lost: the item then already is where this move put it.
            Err(e) if is_condition_failure(e.code()) => Ok(match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => failed
                    .item
                    .as_ref()
                    .is_some_and(|item| moved_by(item, change, &token)),
                _ => false,
            }),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn list_writes(&self) -> Result<Vec<StoredWrite>, StoreError> {
        let mut writes = Vec::new();
        self.scan_prefix(WRITE_PREFIX, |item| {
            writes.push(stored(&item)?);
            Ok(())
        })
        .await?;
        oldest_first(&mut writes);
        Ok(writes)
    }

    async fn write_for_action(&self, action_id: &str) -> Result<Option<StoredWrite>, StoreError> {
        let index = self.get_consistent(index_key()).await?.unwrap_or_default();
        let Some(write_id) = get_s(&index, &action_attribute(action_id)) else {
            return Ok(None);
        };
        let write = self.get_write(&write_id).await?;
        Ok(write.filter(|w| w.action_id.as_deref() == Some(action_id)))
    }

    async fn running_writes(&self) -> Result<Vec<StoredWrite>, StoreError> {
        let index = self.get_consistent(index_key()).await?.unwrap_or_default();
        let mut running = Vec::new();
        for (name, value) in &index {
            let (Some(action_id), AttributeValue::S(write_id)) =
                (name.strip_prefix(ACTION_PREFIX), value)
            else {
                continue;
            };
            match self.get_write(write_id).await? {
                Some(w)
                    if w.position.state == WriteState::Running
                        && w.action_id.as_deref() == Some(action_id) =>
                {
                    running.push(w)
                }
                // Sending: it may be about to move to running with this action.
                Some(w) if w.position.state == WriteState::Sending => {}
                // Ended, or on another action: the entry has served.
                _ => self.index_action(action_id, None).await?,
            }
        }
        oldest_first(&mut running);
        Ok(running)
    }
}

impl DynamoStateStore {
    /// Sets the index's entry for `action_id` to `write_id`, or removes it (`None`).
    async fn index_action(
        &self,
        action_id: &str,
        write_id: Option<&str>,
    ) -> Result<(), StoreError> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(index_key()))
            .expression_attribute_names("#entry", action_attribute(action_id))
            .return_consumed_capacity(ReturnConsumedCapacity::Total);
        let update = match write_id {
            Some(id) => update
                .update_expression("SET #entry = :write")
                .expression_attribute_values(":write", s(id)),
            None => update.update_expression("REMOVE #entry"),
        };
        let out = update.send().await.map_err(store_error)?;
        self.meter.write(out.consumed_capacity.as_slice());
        Ok(())
    }
}
