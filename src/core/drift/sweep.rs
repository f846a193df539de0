//! A sweep in two passes, so that re-reading an unchanged stream writes (almost) nothing.
//!
//! - **Pass 1** reads the stream from Nango's first page to its last and writes no record: for
//!   each page it notes, in the state store, what Nango served ([`Seen`]: each record's id, its
//!   [`Version`], whether it is deleted).
//! - **Pass 2** ([`compare`]), once Nango has no page left, reads the stored records once and
//!   holds them against what was served. A record stored at the version Nango served is left
//!   alone. One served at another version, or served and not stored, is fetched again by id and
//!   written ([`heal`]): the copy had missed a change. A live one Nango did not serve is what the
//!   sweep would mark deleted, under the guard.
//!
//! Before, a sweep wrote every record it read, with its id stamped on the record: a write unit
//! per KB of every item for a stream that had not changed, and a change-feed event per record.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use crate::core::seen::{id_key, Seen, Stored, Version};
use crate::core::stream::StreamKey;
use crate::core::sync::SyncError;
use crate::ports::{RecordSource, RecordStore, SourceError, StateStore, StoreError, MAX_IDS};

/// What pass 2 found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Comparison {
    /// The stream's stored live records, before anything below is applied.
    pub live: u64,
    /// Stored at the version Nango served: nothing to write.
    pub unchanged: u64,
    /// Served at another version than stored, or served and not stored: to fetch again and
    /// write. Each with whether it is stored live now.
    pub to_fetch: Vec<(String, bool)>,
    /// Stored live and not served: what the sweep would mark deleted.
    pub unseen: Vec<String>,
}

/// What Nango served of an id, as pass 2 matches it: keyed by [`id_key`], about 30 bytes a
/// record with the map's overhead, so about 300 MB for a stream of 10M records.
struct Served {
    version: Version,
    deleted: bool,
    /// Served at two versions (the record changed while the sweep read): fetched again.
    conflicting: bool,
    stored: bool,
}

/// Pass 2's comparison of what sweep `sweep_id` noted with what the stream stores. Reads the
/// notes twice: once into memory by [`id_key`], once more for the ids of records served and not
/// stored (only their keys are held).
pub async fn compare<R: RecordStore, T: StateStore>(
    records: &R,
    state: &T,
    stream: &StreamKey,
    sweep_id: &str,
) -> Result<Comparison, StoreError> {
    let mut served: HashMap<u64, Served> = HashMap::new();
    state
        .seen_in_sweep(
            stream,
            sweep_id,
            &mut |seen: Seen| match served.entry(id_key(&seen.id)) {
                Entry::Vacant(slot) => {
                    slot.insert(Served {
                        version: seen.version,
                        deleted: seen.deleted,
                        conflicting: false,
                        stored: false,
                    });
                }
                Entry::Occupied(mut slot) => {
                    let known = slot.get_mut();
                    known.conflicting |= known.version != seen.version;
                }
            },
        )
        .await?;
    let mut out = Comparison::default();
    records
        .stored_versions(stream, &mut |stored: Stored| {
            out.live += u64::from(stored.live);
            match served.get_mut(&id_key(&stored.id)) {
                None if stored.live => out.unseen.push(stored.id),
                None => {}
                Some(served) => {
                    served.stored = true;
                    if served.conflicting || !stored.holds(served.version) {
                        out.to_fetch.push((stored.id, stored.live));
                    } else {
                        out.unchanged += 1;
                    }
                }
            }
        })
        .await?;
    // Served live and not stored: the copy missed it. (Served deleted and never stored: the
    // copy is already right about it, and a hard-delete copy would keep nothing of it.)
    let missed = |s: &Served| !s.stored && (!s.deleted || s.conflicting);
    if served.values().any(missed) {
        state
            .seen_in_sweep(stream, sweep_id, &mut |seen: Seen| {
                if let Some(s) = served.get_mut(&id_key(&seen.id)).filter(|s| missed(s)) {
                    // Once: an id noted on two pages is fetched once.
                    s.stored = true;
                    out.to_fetch.push((seen.id, false));
                }
            })
            .await?;
    }
    Ok(out)
}

/// What [`heal`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Healed {
    pub written: u64,
    /// The change in stored live records.
    pub live_change: i64,
}

/// Fetches the records of `to_fetch` again by id (at most [`MAX_IDS`] a request) and writes
/// them. Nango serves their current state, which may be newer than the stream's cursor: writing
/// it early is harmless, the sync writes the same again when it gets there. An id Nango no
/// longer serves is left as it is stored. `None` when Nango asked for a wait past `until`.
pub async fn heal<S: RecordSource, R: RecordStore>(
    source: &S,
    records: &R,
    stream: &StreamKey,
    to_fetch: &[(String, bool)],
    until: Option<std::time::Instant>,
) -> Result<Option<Healed>, SyncError> {
    let mut healed = Healed::default();
    for chunk in to_fetch.chunks(MAX_IDS) {
        let was_live: HashMap<&str, bool> = chunk.iter().map(|(id, l)| (id.as_str(), *l)).collect();
        let mut asked: Vec<&str> = chunk.iter().map(|(id, _)| id.as_str()).collect();
        while !asked.is_empty() {
            let page = match source.fetch_ids(stream, &asked, until).await {
                Err(SourceError::Deferred { .. }) => return Ok(None),
                other => other?,
            };
            let report = records.write_page(stream, &page.records).await?;
            healed.written += report.written();
            let mut now_live: HashMap<&str, bool> = HashMap::new();
            for record in &page.records {
                now_live.insert(&record.id, record.metadata.deleted_at.is_none());
            }
            for rejected in &report.rejected {
                now_live.remove(rejected.id.as_str());
            }
            for (id, live) in &now_live {
                let before = was_live.get(id).copied().unwrap_or(false);
                healed.live_change += i64::from(*live) - i64::from(before);
            }
            // A page Nango cut short (its size cap): ask again for the ids it did not hold.
            let cut_short = page.next_cursor.is_some() && !page.records.is_empty();
            let served: std::collections::HashSet<&str> =
                page.records.iter().map(|r| r.id.as_str()).collect();
            asked = match cut_short {
                true => asked
                    .into_iter()
                    .filter(|id| !served.contains(id))
                    .collect(),
                false => Vec::new(),
            };
        }
    }
    Ok(Some(healed))
}
