//! A sync that re-reads records the copy already holds writes only those that changed.
//!
//! Nango serves a whole stream again after a `reset` (the cursor cleared: the run starts from
//! no cursor) and after emptyCache (every record re-added, `ADDED` under a new cursor). Most of
//! those records are stored as served, and writing them again costs a write unit per KB of each
//! item and a change-feed event each. A normal sync serves only changed records, so it must pay
//! nothing for this check; a re-read is told from it by its first large page:
//!
//! - a page qualifies when the run does not start where the last one ended up to date (a first
//!   sync, a reset, a continuation), or when it is large and almost all `ADDED` (what emptyCache
//!   re-adds look like);
//! - on the first qualifying page, a few of its records are read from the copy (a BatchGetItem
//!   of [`PROBES`] items). If the copy holds most of them as served, the run is a re-read: the
//!   stream's stored versions are read once (one eventually consistent Query of the partition,
//!   about 70 bytes a record in memory) and every later page is held against them;
//! - otherwise (a first sync, a run of new records) nothing more is read for the rest of the run.
//!
//! A stream that may hold more than [`MAX_HELD`] records (its `records_written` says how many
//! writes it ever had) is not checked at all, so that the read stays well within an invocation;
//! and the process holds at most [`MAX_HELD`] versions at once, whatever the streams running side
//! by side. Each run (a continuation too) reads the partition again.
//!
//! A record is skipped when the copy holds it at the version its last occurrence on the page is
//! served at ([`Held::holds`]: the same content digest, or the same cursor and deletion). Those
//! written update what is held, so a record that changes and changes back within one run is
//! written both times.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::core::record::{LastAction, NangoRecord};
use crate::core::seen::{id_key, Held, Version};
use crate::core::stream::StreamKey;
use crate::ports::{RecordStore, StoreError};

/// How many of a qualifying page's records are read from the copy to tell a re-read: a
/// majority held as served makes it one (a few records new or changed on the page do not).
pub const PROBES: usize = 3;
/// A page from a cursor qualifies with at least this many records, nearly all `ADDED`: the
/// pages an emptyCache re-add serves (Nango's default page is 100).
const LARGE_PAGE: usize = 50;
/// ...of which at least this share (in percent) is `ADDED`.
const ADDED_SHARE_PERCENT: usize = 90;
/// The most stored versions held in memory, by one run and by the whole process (about 70 MB):
/// a larger stream is re-read writing every record, as before.
pub const MAX_HELD: usize = 1_000_000;

/// The versions held by the process's runs right now.
static HELD_IN_PROCESS: AtomicUsize = AtomicUsize::new(0);

/// Where a run stands on re-reading.
#[derive(Debug)]
enum Decision {
    /// No page has qualified yet.
    Undecided,
    /// Not a re-read: every record is written.
    Off,
    /// A re-read: the stream's stored versions, by [`id_key`], and the room counted for them
    /// in [`HELD_IN_PROCESS`] (given back when the run ends).
    On(HashMap<u64, Held>, usize),
}

/// One run's re-read check.
#[derive(Debug)]
pub struct Reread {
    /// The run does not start where the last one ended up to date.
    from_start: bool,
    decision: Decision,
}

impl Drop for Reread {
    fn drop(&mut self) {
        if let Decision::On(_, counted) = self.decision {
            HELD_IN_PROCESS.fetch_sub(counted, Ordering::Relaxed);
        }
    }
}

impl Reread {
    /// For a run that does not start where the last one ended up to date (`from_start`: a
    /// first sync, a reset, a continuation), or one that does, of a stream that had
    /// `records_written` writes so far (a bound on the records it holds).
    pub fn new(from_start: bool, records_written: u64) -> Self {
        let too_large = usize::try_from(records_written).map_or(true, |n| n > MAX_HELD);
        Self {
            from_start,
            decision: if too_large {
                Decision::Off
            } else {
                Decision::Undecided
            },
        }
    }

    /// Whether the run was found to be a re-read.
    pub fn is_on(&self) -> bool {
        matches!(self.decision, Decision::On(..))
    }

    /// Which records of `page` the copy already holds as served (`true`: leave it alone).
    /// `None` when every record is to be written.
    pub async fn unchanged<R: RecordStore>(
        &mut self,
        records: &R,
        stream: &StreamKey,
        page: &[NangoRecord],
    ) -> Result<Option<Vec<bool>>, StoreError> {
        if matches!(self.decision, Decision::Undecided) && self.qualifies(page) {
            self.decision = decide(records, stream, page).await?;
        }
        let Decision::On(held, _) = &self.decision else {
            return Ok(None);
        };
        // Each id by its last occurrence on the page, its newest state.
        let mut decided: HashMap<&str, bool> = HashMap::with_capacity(page.len());
        for record in page.iter().rev() {
            decided.entry(record.id.as_str()).or_insert_with(|| {
                held.get(&id_key(&record.id))
                    .is_some_and(|h| h.holds(Version::of_record(record)))
            });
        }
        Ok(Some(page.iter().map(|r| decided[r.id.as_str()]).collect()))
    }

    /// Notes what a re-read wrote (all but `rejected`), as the copy now holds it.
    pub fn wrote<'a>(
        &mut self,
        written: impl IntoIterator<Item = &'a NangoRecord>,
        rejected: &HashSet<&str>,
    ) {
        let Decision::On(held, _) = &mut self.decision else {
            return;
        };
        for record in written {
            let key = id_key(&record.id);
            if rejected.contains(record.id.as_str()) {
                held.remove(&key);
                continue;
            }
            let mut after = Held::after_writing(record);
            if record.is_pruned() && !record.is_deleted() {
                // Its payload stays, and with it the content it was stored with. (Deleted, it is
                // stored merged or removed: its old content no longer describes it.)
                after.content = held.get(&key).and_then(|h| h.content);
            }
            held.insert(key, after);
        }
    }

    fn qualifies(&self, page: &[NangoRecord]) -> bool {
        if page.is_empty() {
            return false;
        }
        if self.from_start {
            return true;
        }
        let added = page
            .iter()
            .filter(|r| r.metadata.last_action == LastAction::Added)
            .count();
        page.len() >= LARGE_PAGE && added * 100 >= page.len() * ADDED_SHARE_PERCENT
    }
}

/// Reads [`PROBES`] of the page's records from the copy; if it holds most of them as served,
/// reads every stored version of the stream.
async fn decide<R: RecordStore>(
    records: &R,
    stream: &StreamKey,
    page: &[NangoRecord],
) -> Result<Decision, StoreError> {
    let probes = probes(page);
    if probes.is_empty() {
        return Ok(Decision::Undecided);
    }
    let ids: Vec<&str> = probes.iter().map(|r| r.id.as_str()).collect();
    let stored = records.stored_versions_of(stream, &ids).await?;
    let held_as_served = probes
        .iter()
        .filter(|record| {
            stored
                .iter()
                .any(|s| s.id == record.id && s.holds(Version::of_record(record)))
        })
        .count();
    if held_as_served * 2 <= probes.len() {
        return Ok(Decision::Off);
    }
    let mut held: HashMap<u64, Held> = HashMap::new();
    let mut counted = 0;
    let mut too_many = false;
    records
        .stored_versions(stream, &mut |stored| {
            if too_many {
                return;
            }
            held.insert(id_key(&stored.id), stored.held());
            // Counted in the process as the map grows; past the bound, it is let go.
            if held.capacity() > counted {
                let more = held.capacity() - counted;
                counted = held.capacity();
                let before = HELD_IN_PROCESS.fetch_add(more, Ordering::Relaxed);
                too_many = before + more > MAX_HELD;
            }
        })
        .await?;
    if too_many {
        HELD_IN_PROCESS.fetch_sub(counted, Ordering::Relaxed);
        tracing::info!(stream = %stream.encode(), max = MAX_HELD, "re-read of a stream too large to hold its stored versions in memory now: every record is written");
        return Ok(Decision::Off);
    }
    tracing::info!(stream = %stream.encode(), stored = held.len(), "re-read of records the copy holds: only changed records are written");
    Ok(Decision::On(held, counted))
}

/// Up to [`PROBES`] records spread over the page (first, middle, last), each id at its last
/// occurrence and once, none pruned (a pruned record says nothing of its content).
fn probes(page: &[NangoRecord]) -> Vec<&NangoRecord> {
    let mut seen = HashSet::with_capacity(page.len());
    let mut candidates: Vec<&NangoRecord> = page
        .iter()
        .rev()
        .filter(|r| seen.insert(r.id.as_str()) && !r.is_pruned())
        .collect();
    candidates.reverse();
    let mut chosen: Vec<&NangoRecord> = Vec::with_capacity(PROBES);
    if candidates.is_empty() {
        return chosen;
    }
    for i in 0..PROBES {
        let record = candidates[i * (candidates.len() - 1) / (PROBES - 1)];
        if !chosen.iter().any(|c| c.id == record.id) {
            chosen.push(record);
        }
    }
    chosen
}
