//! The sync loop: read a stream's records after its stored cursor, page by page, write each page,
//! then move the cursor to the page's last record. Fetching page n+1 overlaps writing page n;
//! at most two pages are held at once, whatever the stream's size.
//!
//! The cursor only moves forward, from the value this run read, and only after every record
//! before it is written (or reported rejected). A crash anywhere re-reads from the stored cursor,
//! and writes are idempotent upserts keyed by (stream, record id).

use std::time::Instant;

use crate::ports::{RecordSource, RecordStore, SourceError, StateStore, StoreError};
use crate::stream::StreamKey;

/// How a sync run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncEnd {
    /// Nango has no more pages after the stored cursor.
    UpToDate,
    /// The deadline came first; a continuation must pick up from the stored cursor.
    DeadlineReached,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSummary {
    pub end: SyncEnd,
    pub pages: u64,
    pub written: u64,
    pub deleted: u64,
    pub rejected: u64,
    pub cursor: Option<String>,
}

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

/// Brings `stream` up to date, or as far as `stop_at` allows (checked before each new fetch).
pub async fn sync_stream<S, R, T>(
    source: &S,
    records: &R,
    state: &T,
    stream: &StreamKey,
    stop_at: Option<Instant>,
) -> Result<SyncSummary, SyncError>
where
    S: RecordSource,
    R: RecordStore,
    T: StateStore,
{
    let mut cursor = state.get_stream(stream).await?.and_then(|s| s.cursor);
    let mut summary = SyncSummary {
        end: SyncEnd::UpToDate,
        pages: 0,
        written: 0,
        deleted: 0,
        rejected: 0,
        cursor: cursor.clone(),
    };
    if deadline_passed(stop_at) {
        summary.end = SyncEnd::DeadlineReached;
        return Ok(summary);
    }
    let mut page = source.fetch_page(stream, cursor.as_deref()).await?;
    loop {
        summary.pages += 1;
        let next_cursor = page
            .next_cursor
            .clone()
            .filter(|_| !page.records.is_empty());
        let fetch_next = next_cursor.is_some() && !deadline_passed(stop_at);
        // Write this page while the next one is on its way.
        let (written, next) = tokio::join!(records.write_page(stream, &page.records), async {
            match (&next_cursor, fetch_next) {
                (Some(next), true) => Some(source.fetch_page(stream, Some(next)).await),
                _ => None,
            }
        });
        let report = written?;
        if let Some(last) = page.last_cursor() {
            state
                .advance_cursor(
                    stream,
                    cursor.as_deref(),
                    last,
                    report.written(),
                    &report.rejected,
                )
                .await?;
            cursor = Some(last.to_owned());
        }
        summary.written += report.written();
        summary.deleted += report.deleted;
        summary.rejected += report.rejected.len() as u64;
        summary.cursor = cursor.clone();
        for rejected in &report.rejected {
            tracing::warn!(stream = %stream.encode(), id = %rejected.id, reason = %rejected.reason, "record could not be stored; reported on the stream");
        }
        match next {
            Some(next_page) => page = next_page?,
            None if next_cursor.is_some() => {
                summary.end = SyncEnd::DeadlineReached;
                return Ok(summary);
            }
            None => return Ok(summary),
        }
    }
}

fn deadline_passed(stop_at: Option<Instant>) -> bool {
    stop_at.is_some_and(|t| Instant::now() >= t)
}
