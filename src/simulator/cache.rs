//! The records cache: one row per (stream, record id) with only the latest payload, paged in
//! Nango's order, with the mutations a sync run makes (save, delete, prune, purge) and what
//! `/sync/status` reports of each stream.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::generate::{sample_payload, RecordShape};
use super::wire::{decode_cursor, encode_cursor, pg_timestamp, record_uuid, Micros, SimError};
use crate::core::nango_status::{NangoSync, RunStatus};
use crate::core::stream::{ConnectionKey, StreamKey, BASE_VARIANT};

#[derive(Debug, Clone)]
struct SimRecord {
    uuid: String,
    payload: Map<String, Value>,
    created_at: Micros,
    updated_at: Micros,
    deleted_at: Option<Micros>,
    pruned_at: Option<Micros>,
}

#[derive(Debug, Default)]
struct StreamData {
    records: HashMap<String, SimRecord>,
    /// (updated_at, uuid) → id: the order the API pages in.
    order: BTreeMap<(Micros, String), String>,
}

/// How a stream's sync last ran, as `/sync/status` reports it. Times are wall-clock RFC 3339
/// (the worker judges them against its own clock); `None` serves the current time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRun {
    pub status: RunStatus,
    pub latest_execution: RunStatus,
    pub finished_at: Option<String>,
    /// The checkpoint a checkpointed pass under way keeps (`None`: no pass under way).
    pub checkpoint: Option<Value>,
}

impl Default for SyncRun {
    fn default() -> Self {
        Self {
            status: RunStatus::Success,
            latest_execution: RunStatus::Success,
            finished_at: None,
            checkpoint: None,
        }
    }
}

#[derive(Debug)]
struct Inner {
    now: Micros,
    /// The sync that feeds each stream, as `/sync/status` reports it.
    sync_names: BTreeMap<StreamKey, String>,
    runs: BTreeMap<StreamKey, SyncRun>,
    /// Streams whose sync `/sync/status` no longer lists (a disabled or deleted sync).
    unlisted: BTreeSet<StreamKey>,
    /// Report `recordCount` 0 for every non-base variant, as Nango did until 2026-09.
    variant_count_bug: bool,
    /// Nango's byte budget per records response (`RECORDS_MAX_RESPONSE_SIZE_BYTES`; 0, the
    /// default, disables it as in OSS).
    max_response_bytes: usize,
    connections: BTreeSet<ConnectionKey>,
    streams: BTreeMap<StreamKey, StreamData>,
}

/// The simulated records cache. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Simulator {
    inner: Mutex<Inner>,
}

/// Counts of what a mutation did, for tests to compute the expected truth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Changes {
    pub added: u64,
    pub updated: u64,
    pub deleted: u64,
}

impl Default for Simulator {
    fn default() -> Self {
        Self::new()
    }
}

impl Simulator {
    /// Starts the clock at 2026-11-27T00:00:00Z.
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                now: 1_795_737_600_000_000,
                sync_names: BTreeMap::new(),
                runs: BTreeMap::new(),
                unlisted: BTreeSet::new(),
                variant_count_bug: false,
                max_response_bytes: 0,
                connections: BTreeSet::new(),
                streams: BTreeMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Cuts each records page at `bytes` of records, as Nango's cloud does
    /// (`RECORDS_MAX_RESPONSE_SIZE_BYTES`): a page holds fewer than its limit while more exist,
    /// and at least one record (contract §4.3). 0 turns it off.
    pub fn set_max_response_bytes(&self, bytes: usize) {
        self.lock().max_response_bytes = bytes;
    }

    /// Moves the clock on: writes in one tick share their `last_modified_at`, as the rows of one
    /// Postgres transaction do.
    pub fn tick(&self) {
        self.lock().now += 1_001;
    }

    pub fn add_connection(&self, connection: ConnectionKey) {
        self.lock().connections.insert(connection);
    }

    pub fn streams(&self) -> Vec<StreamKey> {
        self.lock().streams.keys().cloned().collect()
    }

    pub fn connections(&self) -> Vec<ConnectionKey> {
        self.lock().connections.iter().cloned().collect()
    }

    /// Names the sync that feeds a stream (default: the model's name in lower case, plus `s`).
    pub fn set_sync_name(&self, stream: &StreamKey, name: &str) {
        self.lock()
            .sync_names
            .insert(stream.clone(), name.to_owned());
    }

    /// The sync that feeds a stream.
    pub fn sync_name(&self, stream: &StreamKey) -> String {
        self.lock()
            .sync_names
            .get(stream)
            .cloned()
            .unwrap_or_else(|| format!("{}s", stream.model.to_lowercase()))
    }

    /// What `/sync/status` says of a connection's syncs: each stream with its sync's name and
    /// state. `recordCount` counts live records, pruned ones included (nango-2026.md).
    pub fn sync_status(&self, connection: &ConnectionKey) -> Vec<(StreamKey, String, NangoSync)> {
        let inner = self.lock();
        inner
            .streams
            .iter()
            .filter(|(s, _)| s.connection() == *connection && !inner.unlisted.contains(*s))
            .map(|(s, data)| {
                let name = inner
                    .sync_names
                    .get(s)
                    .cloned()
                    .unwrap_or_else(|| format!("{}s", s.model.to_lowercase()));
                let live = data
                    .records
                    .values()
                    .filter(|r| r.deleted_at.is_none())
                    .count() as u64;
                let miscounted = inner.variant_count_bug && s.variant != BASE_VARIANT;
                let run = inner.runs.get(s).cloned().unwrap_or_default();
                let sync = NangoSync {
                    record_count: Some(if miscounted { 0 } else { live }),
                    status: Some(run.status),
                    latest_execution: Some(run.latest_execution),
                    finished_at: Some(
                        run.finished_at
                            .unwrap_or_else(crate::core::job::now_rfc3339),
                    ),
                    checkpoint: Some(run.checkpoint.is_some()),
                };
                (s.clone(), name, sync)
            })
            .collect()
    }

    /// Sets how the stream's sync last ran (`/sync/status`).
    pub fn set_run(&self, stream: &StreamKey, run: SyncRun) {
        self.lock().runs.insert(stream.clone(), run);
    }

    pub fn run(&self, stream: &StreamKey) -> SyncRun {
        self.lock().runs.get(stream).cloned().unwrap_or_default()
    }

    /// A checkpointed pass begins (or goes on): `/sync/status` shows its checkpoint.
    pub fn set_checkpoint(&self, stream: &StreamKey, checkpoint: Option<Value>) {
        self.lock()
            .runs
            .entry(stream.clone())
            .or_default()
            .checkpoint = checkpoint;
    }

    /// Reports `recordCount` 0 for every non-base variant, as Nango did until 2026-09.
    pub fn set_variant_count_bug(&self, on: bool) {
        self.lock().variant_count_bug = on;
    }

    /// Nango's retention: the sync has had no successful run for `days` days (it is paused after
    /// its last success), so its records are hard-deleted: no tombstones, recordCount 0.
    pub fn purge_for_retention(&self, stream: &StreamKey, days: i64) {
        let last_success = OffsetDateTime::now_utc() - time::Duration::days(days);
        self.set_run(
            stream,
            SyncRun {
                status: RunStatus::Paused,
                latest_execution: RunStatus::Success,
                finished_at: last_success.format(&Rfc3339).ok(),
                checkpoint: None,
            },
        );
        self.clear(stream);
    }

    /// The sync is disabled or deleted: `/sync/status` no longer lists it and, as Nango does a
    /// day later, its records are hard-deleted.
    pub fn drop_sync(&self, stream: &StreamKey) {
        self.lock().unlisted.insert(stream.clone());
        self.clear(stream);
    }

    /// The connection is deleted in Nango: its records API answers `unknown_connection` and
    /// `/connections` no longer lists it.
    pub fn delete_connection(&self, connection: &ConnectionKey) {
        let mut inner = self.lock();
        inner.connections.remove(connection);
        inner.streams.retain(|s, _| s.connection() != *connection);
    }

    /// Hard-deletes records (retention, emptyCache): gone, with no tombstone served.
    pub fn hard_delete(&self, stream: &StreamKey, ids: &[&str]) -> u64 {
        let mut inner = self.lock();
        let Some(data) = inner.streams.get_mut(stream) else {
            return 0;
        };
        let mut count = 0;
        for id in ids {
            if let Some(r) = data.records.remove(*id) {
                data.order.remove(&(r.updated_at, r.uuid));
                count += 1;
            }
        }
        count
    }

    fn clear(&self, stream: &StreamKey) {
        if let Some(data) = self.lock().streams.get_mut(stream) {
            *data = StreamData::default();
        }
    }

    /// Saves records (new, changed or undeleted) as a sync function's batchSave would.
    pub fn save(
        &self,
        stream: &StreamKey,
        records: impl IntoIterator<Item = (String, Map<String, Value>)>,
    ) -> Changes {
        let mut inner = self.lock();
        let now = inner.now;
        inner.connections.insert(stream.connection());
        let data = inner.streams.entry(stream.clone()).or_default();
        let mut changes = Changes::default();
        for (id, payload) in records {
            let uuid = record_uuid(stream, &id);
            match data.records.get_mut(&id) {
                Some(existing)
                    if existing.deleted_at.is_none()
                        && existing.payload == payload
                        && existing.pruned_at.is_none() => {}
                Some(existing) => {
                    data.order
                        .remove(&(existing.updated_at, existing.uuid.clone()));
                    if existing.deleted_at.is_some() {
                        // Undelete: the trigger resets created_at and updated_at.
                        existing.created_at = now;
                        existing.deleted_at = None;
                        changes.added += 1;
                    } else {
                        changes.updated += 1;
                    }
                    existing.payload = payload;
                    existing.pruned_at = None;
                    existing.updated_at = now;
                    data.order.insert((now, uuid), id);
                }
                None => {
                    data.records.insert(
                        id.clone(),
                        SimRecord {
                            uuid: uuid.clone(),
                            payload,
                            created_at: now,
                            updated_at: now,
                            deleted_at: None,
                            pruned_at: None,
                        },
                    );
                    data.order.insert((now, uuid), id);
                    changes.added += 1;
                }
            }
        }
        changes
    }

    /// Soft-deletes records: the payload stays, last_modified_at moves to now.
    pub fn delete(&self, stream: &StreamKey, ids: &[&str]) -> u64 {
        self.mutate(stream, ids, Moves::ToNow, |r, now| {
            if r.deleted_at.is_some() {
                return false;
            }
            r.deleted_at = Some(now);
            true
        })
    }

    /// Prunes records as Nango's retention does: the payload is emptied, `pruned_at` set, and
    /// `updated_at` left as it was, so the cursor does not move (nango-2026.md, deleteRecords'
    /// prune mode): a read by cursor never serves a prune, a read from the start does.
    pub fn prune(&self, stream: &StreamKey, ids: &[&str]) -> u64 {
        self.mutate(stream, ids, Moves::Stays, |r, now| {
            r.payload.clear();
            r.pruned_at = Some(now);
            true
        })
    }

    fn mutate(
        &self,
        stream: &StreamKey,
        ids: &[&str],
        moves: Moves,
        change: impl Fn(&mut SimRecord, Micros) -> bool,
    ) -> u64 {
        let mut inner = self.lock();
        let now = inner.now;
        let Some(data) = inner.streams.get_mut(stream) else {
            return 0;
        };
        let mut count = 0;
        for id in ids {
            if let Some(r) = data.records.get_mut(*id) {
                let old = (r.updated_at, r.uuid.clone());
                if change(r, now) {
                    if moves == Moves::ToNow {
                        data.order.remove(&old);
                        r.updated_at = now;
                        data.order.insert((now, r.uuid.clone()), (*id).to_owned());
                    }
                    count += 1;
                }
            }
        }
        count
    }

    /// Changes about `fraction` of a stream's records, as a sync run would: half of them updated,
    /// a quarter soft-deleted, and as many new records added as a quarter. Returns what changed.
    pub fn churn(&self, stream: &StreamKey, fraction: f64, rng: &mut fastrand::Rng) -> Changes {
        let mut live: Vec<String> = {
            let inner = self.lock();
            let Some(data) = inner.streams.get(stream) else {
                return Changes::default();
            };
            data.records
                .iter()
                .filter(|(_, r)| r.deleted_at.is_none())
                .map(|(id, _)| id.clone())
                .collect()
        };
        live.sort();
        rng.shuffle(&mut live);
        let n = ((live.len() as f64) * fraction.clamp(0.0, 1.0)).round() as usize;
        let (updates, deletes) = (n / 2, n / 4);
        let adds = n - updates - deletes;
        let version = rng.u32(2..1_000_000);
        let mut changes = self.save(
            stream,
            live.iter().take(updates).enumerate().map(|(i, id)| {
                let mut payload = sample_payload(i);
                payload.insert("version".into(), json!(version));
                (id.clone(), payload)
            }),
        );
        let doomed: Vec<&str> = live
            .iter()
            .skip(updates)
            .take(deletes)
            .map(String::as_str)
            .collect();
        changes.deleted += self.delete(stream, &doomed);
        let prefix = format!("{}-new-{version}", stream.model.to_lowercase());
        let added = self.save(
            stream,
            (0..adds).map(|i| (format!("{prefix}-{i}"), sample_payload(i))),
        );
        changes.added += added.added;
        changes
    }

    /// Empties the cache of a stream, as a full resync with `emptyCache` does at the start of its
    /// pass (no deletes reported; the records come back ADDED as the pass re-reads them).
    pub fn wipe(&self, stream: &StreamKey) {
        self.clear(stream);
    }

    /// Fills `connections` × `models` streams of integration `provider_config_key` with `records`
    /// generated records each (ids `<model>-<n>`), and returns the streams.
    pub fn populate(
        &self,
        provider_config_key: &str,
        connections: usize,
        models: &[&str],
        records: usize,
    ) -> Vec<StreamKey> {
        self.populate_shaped(
            provider_config_key,
            connections,
            models,
            records,
            &RecordShape::default(),
        )
    }

    /// [`Simulator::populate`] with records of a given size.
    pub fn populate_shaped(
        &self,
        provider_config_key: &str,
        connections: usize,
        models: &[&str],
        records: usize,
        shape: &RecordShape,
    ) -> Vec<StreamKey> {
        let ids: Vec<String> = (0..connections).map(|c| format!("conn-{c}")).collect();
        self.populate_connections(provider_config_key, &ids, models, records, shape)
    }

    /// [`Simulator::populate_shaped`] with the connections' ids given.
    pub fn populate_connections(
        &self,
        provider_config_key: &str,
        connection_ids: &[String],
        models: &[&str],
        records: usize,
        shape: &RecordShape,
    ) -> Vec<StreamKey> {
        let mut streams = Vec::new();
        for connection in connection_ids {
            for model in models {
                let stream =
                    StreamKey::new(provider_config_key, connection.as_str(), *model, "base");
                self.save(
                    &stream,
                    (0..records)
                        .map(|i| (format!("{}-{i}", model.to_lowercase()), shape.payload(i))),
                );
                streams.push(stream);
            }
        }
        streams
    }

    /// The truth for a stream: every record as the API would return it, by id.
    pub fn snapshot(&self, stream: &StreamKey) -> BTreeMap<String, Value> {
        let inner = self.lock();
        let Some(data) = inner.streams.get(stream) else {
            return BTreeMap::new();
        };
        data.records
            .iter()
            .map(|(id, r)| (id.clone(), record_json(id, r)))
            .collect()
    }

    /// The stream's live records without their id and metadata, as a sync function saves them
    /// (for re-adding them, in tests of emptyCache and cache wipes).
    pub fn live_payloads(&self, stream: &StreamKey) -> Vec<(String, Map<String, Value>)> {
        let inner = self.lock();
        let Some(data) = inner.streams.get(stream) else {
            return Vec::new();
        };
        let mut live: Vec<_> = data
            .records
            .iter()
            .filter(|(_, r)| r.deleted_at.is_none())
            .map(|(id, r)| (id.clone(), r.payload.clone()))
            .collect();
        live.sort_by(|a, b| a.0.cmp(&b.0));
        live
    }

    /// The cursor of the last record of a stream, as a consumer that read everything stores it.
    pub fn last_cursor(&self, stream: &StreamKey) -> Option<String> {
        let inner = self.lock();
        let data = inner.streams.get(stream)?;
        let ((updated_at, uuid), _) = data.order.iter().next_back()?;
        Some(encode_cursor(*updated_at, uuid))
    }

    /// One page of `GET /records`: the records after `cursor`, at most `limit`.
    pub fn page(
        &self,
        stream: &StreamKey,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Value, SimError> {
        self.page_where(stream, cursor, limit, None)
    }

    /// One page of `GET /records?ids=..`: the records among `ids` (deleted ones too) after
    /// `cursor`, at most `limit`, in the usual order. Nango filters first, then pages; an id it
    /// does not hold is simply absent, and one given twice counts once.
    pub fn page_among(
        &self,
        stream: &StreamKey,
        cursor: Option<&str>,
        limit: usize,
        ids: &[&str],
    ) -> Result<Value, SimError> {
        self.page_where(stream, cursor, limit, Some(ids))
    }

    /// A page of the records after `cursor`, all of them or those among `ids`.
    fn page_where(
        &self,
        stream: &StreamKey,
        cursor: Option<&str>,
        limit: usize,
        ids: Option<&[&str]>,
    ) -> Result<Value, SimError> {
        let inner = self.lock();
        if !inner.connections.contains(&stream.connection()) {
            return Err(SimError::UnknownConnection);
        }
        let after = cursor.map(decode_cursor).transpose()?;
        let Some(data) = inner.streams.get(stream) else {
            return Ok(json!({"next_cursor": null, "records": []}));
        };
        // Fetch limit + 1 to know whether another page exists, as the real store does.
        let rows = match ids {
            None => data.after(after.as_ref()).take(limit + 1).collect(),
            Some(ids) => data.among(ids, after.as_ref(), limit + 1),
        };
        let mut has_more = rows.len() > limit;
        let mut records: Vec<Value> = rows
            .iter()
            .take(limit)
            .map(|id| record_json(id, &data.records[*id]))
            .collect();
        if inner.max_response_bytes > 0 {
            let mut bytes = 0;
            let within = records
                .iter()
                .position(|r| {
                    bytes += r.to_string().len();
                    bytes > inner.max_response_bytes
                })
                .map(|at| at.max(1));
            if let Some(at) = within.filter(|&at| at < records.len()) {
                records.truncate(at);
                has_more = true;
            }
        }
        let next_cursor = if has_more {
            records
                .last()
                .map(|r| r["_nango_metadata"]["cursor"].clone())
        } else {
            None
        };
        Ok(json!({"next_cursor": next_cursor, "records": records}))
    }
}

/// Whether a change moves a record's `updated_at` (and so its cursor) to now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Moves {
    ToNow,
    Stays,
}

impl StreamData {
    /// The ids of the records strictly after `after` (every record when `None`), in order.
    fn after<'a>(&'a self, after: Option<&(Micros, String)>) -> impl Iterator<Item = &'a str> {
        let range = match after {
            Some(key) => self.order.range((
                std::ops::Bound::Excluded(key.clone()),
                std::ops::Bound::Unbounded,
            )),
            None => self.order.range(..),
        };
        range.map(|(_, id)| id.as_str())
    }

    /// The first `take` of the records among `ids` strictly after `after`, in order: looked up
    /// by id rather than scanned, so a short list costs the same on a large stream.
    fn among<'a>(
        &'a self,
        ids: &[&str],
        after: Option<&(Micros, String)>,
        take: usize,
    ) -> Vec<&'a str> {
        let mut found: Vec<((Micros, &str), &str)> = ids
            .iter()
            .filter_map(|id| self.records.get_key_value(*id))
            .map(|(id, r)| ((r.updated_at, r.uuid.as_str()), id.as_str()))
            .filter(|(key, _)| after.is_none_or(|(at, uuid)| *key > (*at, uuid.as_str())))
            .collect();
        found.sort_unstable();
        found.dedup();
        found.into_iter().take(take).map(|(_, id)| id).collect()
    }
}

fn record_json(id: &str, r: &SimRecord) -> Value {
    let mut object = r.payload.clone();
    object.insert("id".into(), Value::String(id.to_owned()));
    let action = if r.deleted_at.is_some() {
        "DELETED"
    } else if r.created_at == r.updated_at {
        "ADDED"
    } else {
        "UPDATED"
    };
    object.insert(
        "_nango_metadata".into(),
        json!({
            "first_seen_at": pg_timestamp(r.created_at),
            "last_modified_at": pg_timestamp(r.updated_at),
            "last_action": action,
            "deleted_at": r.deleted_at.map(pg_timestamp),
            "pruned_at": r.pruned_at.map(pg_timestamp),
            "cursor": encode_cursor(r.updated_at, &r.uuid),
        }),
    );
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> StreamKey {
        StreamKey::new("hubspot", "c1", "Contact", "base")
    }

    fn payload(name: &str) -> Map<String, Value> {
        json!({ "name": name }).as_object().unwrap().clone()
    }

    #[test]
    fn pages_in_order_after_the_cursor_with_ties() {
        let sim = Simulator::new();
        let s = stream();
        sim.save(&s, (0..5).map(|i| (format!("r{i}"), payload("a"))));
        let first = sim.page(&s, None, 2).unwrap();
        assert_eq!(first["records"].as_array().unwrap().len(), 2);
        let mut cursor = first["next_cursor"].as_str().map(str::to_owned);
        let mut seen = 2;
        while let Some(c) = cursor {
            let page = sim.page(&s, Some(&c), 2).unwrap();
            seen += page["records"].as_array().unwrap().len();
            cursor = page["next_cursor"].as_str().map(str::to_owned);
        }
        assert_eq!(seen, 5);
    }

    /// The ids of a page's records, in order, and whether it has a next cursor.
    fn ids_of(page: &Value) -> (Vec<&str>, bool) {
        let ids = page["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        (ids, page["next_cursor"].is_string())
    }

    #[test]
    fn pages_among_ids_only_deleted_ones_included() {
        let sim = Simulator::new();
        let s = stream();
        sim.save(&s, (0..8).map(|i| (format!("r{i}"), payload("a"))));
        sim.tick();
        sim.delete(&s, &["r2"]);
        sim.tick();
        sim.save(&s, [("r5".to_owned(), payload("b"))]);
        // Asked out of order, one twice, one unknown: served in cursor order, each once.
        let asked = ["r5", "r2", "nope", "r6", "r1", "r6"];
        let all = sim.page_among(&s, None, 10, &asked).unwrap();
        assert_eq!(ids_of(&all), (vec!["r1", "r6", "r2", "r5"], false));
        assert_eq!(
            all["records"][2]["_nango_metadata"]["last_action"],
            "DELETED"
        );
        // Paged by limit and cursor as usual, within the ids.
        let first = sim.page_among(&s, None, 2, &asked).unwrap();
        assert_eq!(ids_of(&first), (vec!["r1", "r6"], true));
        let cursor = first["next_cursor"].as_str().unwrap();
        let second = sim.page_among(&s, Some(cursor), 2, &asked).unwrap();
        assert_eq!(ids_of(&second), (vec!["r2", "r5"], false));
        assert_eq!(
            ids_of(&sim.page_among(&s, None, 10, &[]).unwrap()),
            (vec![], false)
        );
    }

    #[test]
    fn delete_undelete_prune_semantics() {
        let sim = Simulator::new();
        let s = stream();
        sim.save(&s, [("a".to_owned(), payload("x"))]);
        let c0 = sim.last_cursor(&s).unwrap();
        sim.tick();
        assert_eq!(sim.delete(&s, &["a"]), 1);
        let page = sim.page(&s, Some(&c0), 10).unwrap();
        let r = &page["records"][0];
        assert_eq!(r["_nango_metadata"]["last_action"], "DELETED");
        assert_eq!(r["name"], "x", "a deleted record keeps its last payload");
        sim.tick();
        assert_eq!(sim.save(&s, [("a".to_owned(), payload("y"))]).added, 1);
        assert_eq!(
            sim.snapshot(&s)["a"]["_nango_metadata"]["last_action"],
            "ADDED"
        );
        sim.tick();
        sim.prune(&s, &["a"]);
        let snap = sim.snapshot(&s);
        assert!(snap["a"].get("name").is_none());
        assert!(snap["a"]["_nango_metadata"]["pruned_at"].is_string());
    }
}
