//! The sync loop: read a stream's records after its stored cursor, page by page, write each page,
//! then move the cursor to the page's last record. Fetching runs ahead of writing by a few pages;
//! memory stays bounded by those pages, whatever the stream's size.
//!
//! The cursor only moves forward, from the value this run read, and only after every record
//! before it is written (or reported rejected). A crash anywhere re-reads from the stored cursor,
//! and writes are idempotent upserts keyed by (stream, record id).

use std::time::Instant;

use crate::core::live_change::{page_live_change, Joined};
use crate::core::outcome::{SyncEnd, SyncSummary};
use crate::core::record::{LastAction, NangoRecord, RecordsPage};
use crate::core::reread::Reread;
use crate::core::seen::seen_on_page;
use crate::core::stream::StreamKey;
use crate::core::write::WriteReport;
use crate::ports::{RecordSource, RecordStore, SourceError, StateStore, StoreError};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SyncError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Source(e) => e.is_retryable(),
            Self::Store(e) => e.is_retryable(),
        }
    }
}

/// Pages the fetcher may hold ready beyond the one being written: enough to absorb the jitter of
/// either side, few enough that memory stays a handful of pages whatever the stream's size.
const PAGES_AHEAD: usize = 2;

/// What the fetcher hands the writer.
enum Fetched {
    Page(RecordsPage),
    /// More pages exist, but the deadline came before fetching them.
    Deadline,
}

/// Which cursor a run reads from and moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track<'a> {
    /// The stream's cursor: the normal sync.
    Main,
    /// The cursor of sweep `id`, whose pages note what Nango served and write no record.
    Sweep(&'a str),
}

/// Brings `stream` up to date, or as far as `stop_at` allows (checked before each new fetch).
///
/// The fetcher runs ahead of the writer by up to [`PAGES_AHEAD`] pages; the writer writes pages in
/// order and moves the cursor after each.
pub async fn sync_stream<S, R, T>(
    source: &S,
    records: &R,
    state: &T,
    stream: &StreamKey,
    track: Track<'_>,
    stop_at: Option<Instant>,
) -> Result<SyncSummary, SyncError>
where
    S: RecordSource,
    R: RecordStore,
    T: StateStore,
{
    let stored = state.get_stream(stream).await?.unwrap_or_default();
    // The live-change sum follows a main run that starts where the last one ended up to date.
    let up_to_date_at = stored.live_from.clone();
    let records_written = stored.records_written;
    let live_from = up_to_date_at
        .clone()
        .filter(|at| track == Track::Main && stored.cursor.as_ref() == Some(at));
    let start_cursor = match track {
        Track::Main => stored.cursor,
        Track::Sweep(_) => stored.sweep.and_then(|s| s.cursor),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Fetched, SourceError>>(PAGES_AHEAD);

    // Each side owns its end of the channel, so that either one finishing (or failing) ends the other.
    let mut next = start_cursor.clone();
    let fetcher = async move {
        loop {
            if deadline_passed(stop_at) {
                let _ = tx.send(Ok(Fetched::Deadline)).await;
                return;
            }
            let result = match source.fetch_page(stream, next.as_deref(), stop_at).await {
                // Nango asks for a wait the deadline does not leave: continue later.
                Err(SourceError::Deferred { .. }) => {
                    let _ = tx.send(Ok(Fetched::Deadline)).await;
                    return;
                }
                other => other,
            };
            let more = match &result {
                Ok(page) => page
                    .next_cursor()
                    .filter(|_| !page.is_empty())
                    .map(str::to_owned),
                Err(_) => None,
            };
            // The writer hung up (it failed): stop fetching.
            if tx.send(result.map(Fetched::Page)).await.is_err() || more.is_none() {
                return;
            }
            next = more;
        }
    };

    let writer = async move {
        let mut reread = Reread::new(live_from.is_none(), records_written);
        let mut cursor = start_cursor;
        let mut joined = Joined::default();
        let mut summary = SyncSummary {
            end: SyncEnd::UpToDate,
            pages: 0,
            written: 0,
            added: 0,
            updated: 0,
            deleted: 0,
            pruned: 0,
            rejected: 0,
            unchanged: 0,
            cursor: cursor.clone(),
            cursor_before: cursor.clone(),
            cursor_moved: false,
            newest_modified_at: None,
            sweep: None,
            sweep_outcome: None,
        };
        while let Some(fetched) = rx.recv().await {
            let page = match fetched? {
                Fetched::Page(page) => page,
                Fetched::Deadline => {
                    summary.end = SyncEnd::DeadlineReached;
                    break;
                }
            };
            summary.pages += 1;
            let report = match track {
                Track::Main => {
                    let (report, unchanged) =
                        write_changed(records, stream, &page.records, &mut reread).await?;
                    summary.unchanged += unchanged;
                    report
                }
                // A sweep's first pass writes no record: it notes what Nango served, and
                // compares once it has read the whole stream (`core::drift::sweep`).
                Track::Sweep(id) => {
                    let page_key = cursor.as_deref().unwrap_or_default();
                    let seen = seen_on_page(&page.records);
                    state.note_seen(stream, id, page_key, &seen).await?;
                    WriteReport::default()
                }
            };
            // What the sync applied, by Nango's word (a sweep's first pass applies nothing).
            let applied = match track {
                Track::Main => page.records.as_slice(),
                Track::Sweep(_) => &[],
            };
            for record in applied {
                if record.is_deleted() || record.is_pruned() {
                    continue;
                }
                match record.metadata.last_action {
                    LastAction::Added => summary.added += 1,
                    LastAction::Updated => summary.updated += 1,
                    LastAction::Deleted => {}
                }
            }
            if let Some(last) = page.records.last() {
                summary.newest_modified_at = Some(last.metadata.last_modified_at.clone());
            }
            if let Some(last) = page.last_cursor() {
                match track {
                    Track::Main => {
                        // What the page did to the live count, when known: a run that did not
                        // start where the last one ended up to date (a first sync, a reset, a
                        // continuation), or a page with records the store rejected, leaves a
                        // gap instead.
                        let live_change = live_from
                            .as_deref()
                            .filter(|_| report.rejected.is_empty())
                            .and_then(|from| {
                                page_live_change(
                                    &page.records,
                                    from,
                                    &report.no_longer_live,
                                    &mut joined,
                                )
                            });
                        state
                            .advance_cursor(
                                stream,
                                cursor.as_deref(),
                                last,
                                report.written(),
                                &report.rejected,
                                live_change,
                            )
                            .await?
                    }
                    Track::Sweep(id) => {
                        state
                            .advance_sweep(stream, id, cursor.as_deref(), last)
                            .await?
                    }
                }
                summary.cursor_moved |= cursor.as_deref() != Some(last);
                cursor = Some(last.to_owned());
            }
            summary.written += report.written();
            summary.deleted += report.deleted;
            summary.pruned += report.pruned;
            summary.rejected += report.rejected.len() as u64;
            summary.cursor = cursor.clone();
            for rejected in &report.rejected {
                tracing::warn!(stream = %stream.encode(), id = %rejected.id, reason = %rejected.reason, "record could not be stored; reported on the stream");
            }
        }
        Ok::<_, SyncError>(summary)
    };

    let ((), result) = tokio::join!(fetcher, writer);
    let summary = result?;
    if let (Track::Main, SyncEnd::UpToDate, Some(cursor)) = (track, summary.end, &summary.cursor) {
        if up_to_date_at.as_ref() != Some(cursor) {
            state.mark_up_to_date(stream, cursor).await?;
        }
    }
    Ok(summary)
}

/// Writes the page, or, in a re-read, only its records the copy does not hold as served.
/// Returns the write's report and how many records were left alone.
async fn write_changed<R: RecordStore>(
    records: &R,
    stream: &StreamKey,
    page: &[NangoRecord],
    reread: &mut Reread,
) -> Result<(WriteReport, u64), StoreError> {
    let Some(unchanged) = reread.unchanged(records, stream, page).await? else {
        return Ok((records.write_page(stream, page).await?, 0));
    };
    let changed: Vec<NangoRecord> = page
        .iter()
        .zip(&unchanged)
        .filter(|(_, &unchanged)| !unchanged)
        .map(|(record, _)| record.clone())
        .collect();
    let left_alone = (page.len() - changed.len()) as u64;
    if changed.is_empty() {
        return Ok((WriteReport::default(), left_alone));
    }
    let report = records.write_page(stream, &changed).await?;
    let rejected = report.rejected.iter().map(|r| r.id.as_str()).collect();
    reread.wrote(&changed, &rejected);
    Ok((report, left_alone))
}

fn deadline_passed(stop_at: Option<Instant>) -> bool {
    stop_at.is_some_and(|t| Instant::now() >= t)
}
