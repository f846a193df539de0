//! In-memory adapters for tests and benchmarks: they record calls and can be told to fail.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use serde_json::{Map, Value};

use crate::core::record::{mark_deleted, NangoRecord, METADATA_FIELD};
use crate::core::seen::{Seen, Stored, Version};
use crate::core::state::{
    ConnectionEvent, HeldSweep, LastSyncStatus, NangoNotes, StoredEvent, StreamState, SweepResult,
    SweepState, SyncReport,
};
use crate::core::stream::{ConnectionKey, StreamKey};
use crate::core::write::{
    plan_page, with_stored_payload, DeleteMode, RecordWrite, RejectedRecord, Removal, WriteReport,
};
use crate::core::writes::request::WriteRequest;
use crate::core::writes::state::WriteState;
use crate::core::writes::stored::{oldest_first, Accept, Move, PendingWrite, StoredWrite};
use crate::ports::OutgoingMessage;
use crate::ports::{JobQueue, QueueError, RecordStore, StateStore, StoreError, WriteStore};

/// A queue that keeps what it was sent, and fails every send while `fail` is set.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    sent: Mutex<Vec<OutgoingMessage>>,
    fail: AtomicBool,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_failing(&self, fail: bool) {
        self.fail.store(fail, Ordering::SeqCst);
    }

    pub fn sent(&self) -> Vec<OutgoingMessage> {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn clear(&self) {
        self.sent.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl JobQueue for MemoryQueue {
    async fn send(&self, messages: &[OutgoingMessage]) -> Result<(), QueueError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(QueueError("memory queue set to fail".into()));
        }
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(messages);
        Ok(())
    }
}

/// Records and state kept in maps, for tests: behaves as the DynamoDB adapters do.
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Mutex<MemoryStoreInner>,
    fail_writes: AtomicBool,
    delete_mode: DeleteMode,
}

#[derive(Debug, Default)]
struct MemoryStoreInner {
    records: BTreeMap<(String, String), Map<String, Value>>,
    streams: BTreeMap<StreamKey, StreamState>,
    connections: BTreeMap<ConnectionKey, ConnectionEvent>,
    events: BTreeMap<String, StoredEvent>,
    cursor_history: Vec<(StreamKey, String)>,
    /// Each record's cursor, as the other stores keep it beside the record (a pruned record's
    /// stored object keeps its older metadata).
    bookkeeping: BTreeMap<(String, String), String>,
    /// Each record's content digest when it was last written whole, as the other stores keep it.
    digests: BTreeMap<(String, String), u64>,
    /// The write shown on a record, as the other stores keep it beside the record.
    pending: BTreeMap<(String, String), PendingWrite>,
    /// What each sweep's pages served: (stream, sweep id, page) → its notes.
    seen: BTreeMap<(String, String, String), Vec<Seen>>,
    /// Writes to the provider, by id.
    writes: BTreeMap<String, StoredWrite>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_hard_delete() -> Self {
        Self::with_delete_mode(DeleteMode::Hard)
    }

    pub fn with_delete_mode(delete_mode: DeleteMode) -> Self {
        Self {
            delete_mode,
            ..Self::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryStoreInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_failing(&self, fail: bool) {
        self.fail_writes.store(fail, Ordering::SeqCst);
    }

    /// The stored records of a stream, by id.
    pub fn records(&self, stream: &StreamKey) -> BTreeMap<String, Map<String, Value>> {
        let key = stream.encode();
        self.lock()
            .records
            .iter()
            .filter(|((s, _), _)| *s == key)
            .map(|((_, id), r)| (id.clone(), r.clone()))
            .collect()
    }

    pub fn stream(&self, stream: &StreamKey) -> Option<StreamState> {
        self.lock().streams.get(stream).cloned()
    }

    pub fn connection(&self, connection: &ConnectionKey) -> Option<ConnectionEvent> {
        self.lock().connections.get(connection).cloned()
    }

    pub fn events(&self) -> Vec<StoredEvent> {
        self.lock().events.values().cloned().collect()
    }

    /// Every cursor value each stream was moved to, in order.
    pub fn cursor_history(&self, stream: &StreamKey) -> Vec<String> {
        self.lock()
            .cursor_history
            .iter()
            .filter(|(s, _)| s == stream)
            .map(|(_, c)| c.clone())
            .collect()
    }

    fn check_failing(&self) -> Result<(), StoreError> {
        if self.fail_writes.load(Ordering::SeqCst) {
            Err(StoreError::transient("memory store set to fail"))
        } else {
            Ok(())
        }
    }
}

impl MemoryStore {
    /// The write shown on the stored record `id` of the stream, if any.
    pub fn pending_write(&self, stream: &StreamKey, id: &str) -> Option<PendingWrite> {
        let slot = (stream.encode(), id.to_owned());
        self.lock().pending.get(&slot).cloned()
    }
}

impl RecordStore for MemoryStore {
    async fn write_page(
        &self,
        stream: &StreamKey,
        records: &[NangoRecord],
    ) -> Result<WriteReport, StoreError> {
        self.check_failing()?;
        let plan = plan_page(records, self.delete_mode);
        let key = stream.encode();
        let mut inner = self.lock();
        let mut no_longer_live = BTreeSet::new();
        let deletes = plan.deletes_to_report();
        for write in plan.writes() {
            let slot = (key.clone(), write.record().id.clone());
            let was_live = inner.records.get(&slot).is_some_and(|r| !is_deleted(r));
            if deletes.contains(slot.1.as_str()) && was_live {
                no_longer_live.insert(slot.1.clone());
            }
            let meta = &write.record().metadata;
            inner.bookkeeping.insert(slot.clone(), meta.cursor.clone());
            // A pruned record on a live one: its stored payload (and the metadata in it) stays,
            // only the bookkeeping above moves on, as the other stores' cursor and pruned_at
            // columns do, and it keeps its pending write. Any other write is whole.
            let bookkeeping_only = matches!(write, RecordWrite::KeepPayload(_)) && was_live;
            if !bookkeeping_only {
                inner.pending.remove(&slot);
            }
            match write {
                _ if bookkeeping_only => {}
                RecordWrite::Upsert(record) | RecordWrite::Tombstone(record) => {
                    inner.digests.insert(slot.clone(), record.content_digest());
                    inner.records.insert(slot, record.object());
                }
                // Stored deleted (Nango serves it live again) or not stored: as below.
                RecordWrite::KeepPayload(record) | RecordWrite::TombstoneKeepingPayload(record) => {
                    let merged = match inner.records.get(&slot) {
                        Some(stored) => with_stored_payload(stored, record),
                        None => (*record).clone(),
                    };
                    inner.digests.insert(slot.clone(), merged.content_digest());
                    inner.records.insert(slot, merged.object());
                }
                RecordWrite::Remove(_) => {
                    inner.digests.remove(&slot);
                    inner.records.remove(&slot);
                }
            }
        }
        Ok(WriteReport {
            no_longer_live,
            ..plan.report(Vec::new(), 0)
        })
    }

    async fn mark_pending_write(
        &self,
        stream: &StreamKey,
        id: &str,
        mark: &PendingWrite,
    ) -> Result<bool, StoreError> {
        self.check_failing()?;
        let slot = (stream.encode(), id.to_owned());
        let mut inner = self.lock();
        if !inner.records.contains_key(&slot) {
            return Ok(false);
        }
        inner.pending.insert(slot, mark.clone());
        Ok(true)
    }

    async fn count_live(&self, stream: &StreamKey) -> Result<u64, StoreError> {
        let key = stream.encode();
        let inner = self.lock();
        let live = inner
            .records
            .iter()
            .filter(|((s, _), r)| *s == key && !is_deleted(r))
            .count();
        Ok(live as u64)
    }

    async fn stored_versions(
        &self,
        stream: &StreamKey,
        each: &mut (dyn FnMut(Stored) + Send),
    ) -> Result<(), StoreError> {
        let key = stream.encode();
        let inner = self.lock();
        let stored: Vec<Stored> = inner
            .records
            .iter()
            .filter(|((s, _), _)| *s == key)
            .map(|(slot, record)| {
                let digest = inner.digests.get(slot).copied();
                stored_version(&slot.1, record, inner.bookkeeping.get(slot), digest)
            })
            .collect();
        drop(inner);
        stored.into_iter().for_each(each);
        Ok(())
    }

    async fn stored_versions_of(
        &self,
        stream: &StreamKey,
        ids: &[&str],
    ) -> Result<Vec<Stored>, StoreError> {
        let inner = self.lock();
        let found = ids.iter().filter_map(|id| {
            let slot = (stream.encode(), (*id).to_owned());
            let record = inner.records.get(&slot)?;
            let digest = inner.digests.get(&slot).copied();
            Some(stored_version(
                id,
                record,
                inner.bookkeeping.get(&slot),
                digest,
            ))
        });
        Ok(found.collect())
    }

    async fn remove_unseen(
        &self,
        stream: &StreamKey,
        ids: &[String],
        at: &str,
    ) -> Result<u64, StoreError> {
        self.check_failing()?;
        let removal = self.delete_mode.sweep_removal(at);
        let key = stream.encode();
        let ids: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
        let chosen = |slot: &(String, String), record: &Map<String, Value>| {
            slot.0 == key && ids.contains(slot.1.as_str()) && !is_deleted(record)
        };
        Ok(remove(&mut self.lock(), chosen, removal))
    }

    async fn remove_stream(
        &self,
        stream: &StreamKey,
        removal: Removal<'_>,
    ) -> Result<u64, StoreError> {
        self.check_failing()?;
        let key = stream.encode();
        let mut inner = self.lock();
        let chosen = |slot: &(String, String), record: &Map<String, Value>| {
            slot.0 == key && (removal == Removal::Purge || !is_deleted(record))
        };
        Ok(remove(&mut inner, chosen, removal))
    }
}

/// A stored object as a sweep compares it, with its cursor and content digest.
fn stored_version(
    id: &str,
    record: &Map<String, Value>,
    cursor: Option<&String>,
    digest: Option<u64>,
) -> Stored {
    let deleted = is_deleted(record);
    Stored {
        id: id.to_owned(),
        version: Version::of(cursor.map_or("", String::as_str), deleted),
        content: digest.map(Version),
        live: !deleted,
    }
}

/// Applies `removal` to the records `chosen` picks; returns how many.
/// A record marked deleted this way loses its content digest, as in the other stores.
fn remove(
    inner: &mut MemoryStoreInner,
    chosen: impl Fn(&(String, String), &Map<String, Value>) -> bool,
    removal: Removal<'_>,
) -> u64 {
    let mut count = 0;
    let (records, digests) = (&mut inner.records, &mut inner.digests);
    match removal {
        Removal::Tombstone { at, .. } => {
            for (slot, record) in records.iter_mut() {
                if chosen(slot, record) {
                    mark_deleted(record, at);
                    digests.remove(slot);
                    count += 1;
                }
            }
        }
        Removal::Purge => {
            records.retain(|slot, record| {
                let doomed = chosen(slot, record);
                count += u64::from(doomed);
                !doomed
            });
            digests.retain(|slot, _| records.contains_key(slot));
        }
    }
    count
}

fn is_deleted(object: &Map<String, Value>) -> bool {
    object
        .get(METADATA_FIELD)
        .and_then(|m| m.get("deleted_at"))
        .is_some_and(|d| !d.is_null())
}

impl StateStore for MemoryStore {
    async fn get_stream(&self, stream: &StreamKey) -> Result<Option<StreamState>, StoreError> {
        Ok(self.lock().streams.get(stream).cloned())
    }

    async fn advance_cursor(
        &self,
        stream: &StreamKey,
        from: Option<&str>,
        to: &str,
        written: u64,
        rejected: &[RejectedRecord],
        live_change: Option<i64>,
    ) -> Result<(), StoreError> {
        self.check_failing()?;
        let mut inner = self.lock();
        let state = inner.streams.entry(stream.clone()).or_default();
        if state.cursor.as_deref() != from {
            return Err(StoreError::CursorConflict {
                stream: stream.encode(),
                expected: from.map(str::to_owned),
            });
        }
        state.cursor = Some(to.to_owned());
        state.records_written += written;
        state.records_rejected += rejected.len() as u64;
        state.live_change.add(live_change);
        inner.cursor_history.push((stream.clone(), to.to_owned()));
        Ok(())
    }

    async fn report_sync(&self, stream: &StreamKey, report: &SyncReport) -> Result<(), StoreError> {
        self.check_failing()?;
        let mut inner = self.lock();
        let state = inner.streams.entry(stream.clone()).or_default();
        state.sync_name = Some(report.sync_name.clone());
        match &report.error {
            None => {
                state.outcome = LastSyncStatus::Ok;
                state.error = None;
                state.last_sync_at = Some(report.at.clone());
            }
            Some(message) => {
                state.outcome = LastSyncStatus::Error;
                state.error = Some(message.clone());
            }
        }
        if report.webhook_at.is_some() {
            state.last_webhook_at = report.webhook_at.clone();
        }
        Ok(())
    }

    async fn list_streams(&self) -> Result<Vec<(StreamKey, StreamState)>, StoreError> {
        Ok(self
            .lock()
            .streams
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    async fn begin_sweep(&self, stream: &StreamKey, sweep: &SweepState) -> Result<(), StoreError> {
        self.check_failing()?;
        let mut inner = self.lock();
        let state = inner.streams.entry(stream.clone()).or_default();
        state.sweep = Some(SweepState {
            cursor: None,
            ..sweep.clone()
        });
        Ok(())
    }

    async fn advance_sweep(
        &self,
        stream: &StreamKey,
        id: &str,
        from: Option<&str>,
        to: &str,
    ) -> Result<(), StoreError> {
        self.check_failing()?;
        let mut inner = self.lock();
        let sweep = inner
            .streams
            .get_mut(stream)
            .and_then(|s| s.sweep.as_mut())
            .filter(|s| s.id == id && s.cursor.as_deref() == from);
        match sweep {
            Some(sweep) => {
                sweep.cursor = Some(to.to_owned());
                Ok(())
            }
            None => Err(StoreError::CursorConflict {
                stream: stream.encode(),
                expected: from.map(str::to_owned),
            }),
        }
    }

    async fn end_sweep(
        &self,
        stream: &StreamKey,
        id: &str,
        result: &SweepResult,
    ) -> Result<(), StoreError> {
        self.check_failing()?;
        let mut inner = self.lock();
        let state = inner.streams.entry(stream.clone()).or_default();
        if state.sweep.as_ref().is_some_and(|s| s.id == id) {
            state.sweep = None;
            state.last_sweep = Some(result.clone());
            state.live_change.add(None);
        }
        Ok(())
    }

    async fn note_seen(
        &self,
        stream: &StreamKey,
        sweep_id: &str,
        page: &str,
        seen: &[Seen],
    ) -> Result<(), StoreError> {
        self.check_failing()?;
        let slot = (stream.encode(), sweep_id.to_owned(), page.to_owned());
        self.lock().seen.insert(slot, seen.to_vec());
        Ok(())
    }

    async fn seen_in_sweep(
        &self,
        stream: &StreamKey,
        sweep_id: &str,
        each: &mut (dyn FnMut(Seen) + Send),
    ) -> Result<(), StoreError> {
        let key = stream.encode();
        let noted: Vec<Seen> = self
            .lock()
            .seen
            .iter()
            .filter(|((s, id, _), _)| *s == key && id == sweep_id)
            .flat_map(|(_, seen)| seen.iter().cloned())
            .collect();
        noted.into_iter().for_each(each);
        Ok(())
    }

    async fn forget_seen(&self, stream: &StreamKey, sweep_id: &str) -> Result<(), StoreError> {
        let key = stream.encode();
        self.lock()
            .seen
            .retain(|(s, id, _), _| !(*s == key && id == sweep_id));
        Ok(())
    }

    async fn mark_up_to_date(&self, stream: &StreamKey, cursor: &str) -> Result<(), StoreError> {
        self.check_failing()?;
        if let Some(state) = self.lock().streams.get_mut(stream) {
            if state.cursor.as_deref() == Some(cursor) {
                state.live_from = Some(cursor.to_owned());
            }
        }
        Ok(())
    }

    async fn reset_cursor(&self, stream: &StreamKey) -> Result<(), StoreError> {
        if let Some(state) = self.lock().streams.get_mut(stream) {
            state.cursor = None;
        }
        Ok(())
    }

    async fn set_nango_notes(
        &self,
        stream: &StreamKey,
        notes: &NangoNotes,
    ) -> Result<(), StoreError> {
        self.check_failing()?;
        self.lock().streams.entry(stream.clone()).or_default().nango = notes.clone();
        Ok(())
    }

    async fn hold_sweep(&self, stream: &StreamKey, held: &HeldSweep) -> Result<(), StoreError> {
        self.check_failing()?;
        self.lock().streams.entry(stream.clone()).or_default().held = Some(held.clone());
        Ok(())
    }

    async fn release_hold(
        &self,
        stream: &StreamKey,
        sweep_id: &str,
        result: &SweepResult,
    ) -> Result<bool, StoreError> {
        self.check_failing()?;
        let mut inner = self.lock();
        let Some(state) = inner.streams.get_mut(stream) else {
            return Ok(false);
        };
        if state.held.as_ref().map(|h| h.sweep_id.as_str()) != Some(sweep_id) {
            return Ok(false);
        }
        state.held = None;
        state.last_sweep = Some(result.clone());
        state.live_change.add(None);
        Ok(true)
    }

    async fn set_connection_deleted(
        &self,
        stream: &StreamKey,
        at: Option<&str>,
    ) -> Result<(), StoreError> {
        self.check_failing()?;
        let mut inner = self.lock();
        let state = inner.streams.entry(stream.clone()).or_default();
        state.connection_deleted_at = at.map(str::to_owned);
        if at.is_some() {
            state.live_change.add(None);
        }
        Ok(())
    }

    async fn upsert_connection(
        &self,
        connection: &ConnectionKey,
        event: &ConnectionEvent,
    ) -> Result<(), StoreError> {
        self.check_failing()?;
        self.lock()
            .connections
            .insert(connection.clone(), event.clone());
        Ok(())
    }

    async fn store_event(&self, event: &StoredEvent) -> Result<(), StoreError> {
        self.check_failing()?;
        self.lock().events.insert(event.id.clone(), event.clone());
        Ok(())
    }
}

impl WriteStore for MemoryStore {
    async fn accept_write(&self, request: &WriteRequest, at: &str) -> Result<Accept, StoreError> {
        self.check_failing()?;
        let mut inner = self.lock();
        if let Some(kept) = inner.writes.get(&request.id) {
            return Ok(Accept::Duplicate(Box::new(kept.clone())));
        }
        let write = StoredWrite::accepted(request.clone(), at);
        inner.writes.insert(request.id.clone(), write);
        Ok(Accept::New)
    }

    async fn get_write(&self, id: &str) -> Result<Option<StoredWrite>, StoreError> {
        Ok(self.lock().writes.get(id).cloned())
    }

    async fn move_write(&self, id: &str, change: &Move<'_>) -> Result<bool, StoreError> {
        self.check_failing()?;
        let mut inner = self.lock();
        match inner.writes.remove(id) {
            Some(write) if write.position == change.from => {
                inner.writes.insert(id.to_owned(), write.moved(change));
                Ok(true)
            }
            Some(write) => {
                inner.writes.insert(id.to_owned(), write);
                Ok(false)
            }
            None => Ok(false),
        }
    }

    async fn list_writes(&self) -> Result<Vec<StoredWrite>, StoreError> {
        let mut writes: Vec<StoredWrite> = self.lock().writes.values().cloned().collect();
        oldest_first(&mut writes);
        Ok(writes)
    }

    async fn write_for_action(&self, action_id: &str) -> Result<Option<StoredWrite>, StoreError> {
        self.check_failing()?;
        let inner = self.lock();
        let found = inner
            .writes
            .values()
            .find(|w| w.action_id.as_deref() == Some(action_id));
        Ok(found.cloned())
    }

    async fn running_writes(&self) -> Result<Vec<StoredWrite>, StoreError> {
        self.check_failing()?;
        let mut writes = self.list_writes().await?;
        writes.retain(|w| w.position.state == WriteState::Running);
        Ok(writes)
    }
}
