//! Nango as the worker reads it: a stream's records page by page, and the streams it syncs.

use std::future::Future;

use crate::core::nango_status::{DiscoveredStream, NangoSync};
use crate::core::record::RecordsPage;
use crate::core::stream::StreamKey;

/// Why records could not be fetched. [`SourceError::is_retryable`] is the one place that decides
/// whether a job is tried again or its stream is marked in error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// 429s, 5xx, timeouts, resets or truncated bodies outlasted the retries.
    #[error("Nango records API unavailable after {attempts} attempts: {message}")]
    Transient { attempts: u32, message: String },
    /// The next attempt (after a 429's wait, or a backoff) would start after the deadline: the
    /// job continues in a later invocation rather than waiting out the clock.
    #[error("Nango asked to wait {wait:?}, past this invocation's deadline")]
    Deferred { wait: std::time::Duration },
    /// Retrying cannot help; the message says what to do.
    #[error("{reason}: {message}")]
    Permanent {
        reason: PermanentReason,
        message: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermanentReason {
    /// 400 unknown_connection: the connection is gone from Nango.
    UnknownConnection,
    /// 401: the API key is wrong.
    Unauthorized,
    /// 403: the API key lacks `environment:records:read`.
    Forbidden,
    /// Nango keeps failing on the stored cursor (it answers 500 for an undecodable one).
    CursorRejected,
    /// Any other 4xx: the request itself is wrong.
    BadRequest,
}

impl std::fmt::Display for PermanentReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::UnknownConnection => "connection unknown to Nango",
            Self::Unauthorized => "Nango API key refused",
            Self::Forbidden => "Nango API key lacks the records scope",
            Self::CursorRejected => "stored cursor rejected by Nango",
            Self::BadRequest => "request refused by Nango",
        })
    }
}

/// The most ids [`RecordSource::fetch_ids`] takes at once: what Nango's records API accepts in
/// one request (contract §4.2; more is a 400).
pub const MAX_IDS: usize = 100;

impl SourceError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient { .. } | Self::Deferred { .. })
    }

    /// Refuses `count` ids past [`MAX_IDS`] before any request: Nango would answer 400, and no
    /// retry can help, so the error is permanent and says what to do instead.
    pub fn check_id_count(count: usize) -> Result<(), Self> {
        if count <= MAX_IDS {
            return Ok(());
        }
        Err(Self::Permanent {
            reason: PermanentReason::BadRequest,
            message: format!("{count} ids asked at once; ask in batches of at most {MAX_IDS}"),
        })
    }
}

/// Reads a stream's records page by page.
pub trait RecordSource: Send + Sync {
    /// The page after `cursor` (from the start when `None`). No wait between attempts runs past
    /// `until`: [`SourceError::Deferred`] instead.
    fn fetch_page(
        &self,
        stream: &StreamKey,
        cursor: Option<&str>,
        until: Option<std::time::Instant>,
    ) -> impl Future<Output = Result<RecordsPage, SourceError>> + Send;

    /// The stream's current records among `ids` (at most [`MAX_IDS`]; more is a permanent
    /// error, before any request), deleted ones included, in one page: Nango answers them in its
    /// usual cursor order. Ids Nango does not have are simply absent, so a record missing from
    /// the page is one Nango does not hold. For reading chosen records without paging the whole
    /// stream.
    ///
    /// Nango's byte budget per response can cut the page short (contract §4.3): `next_cursor` is
    /// then set, and the ids not in the page are to be asked again. Errors, and `until` with
    /// [`SourceError::Deferred`], are as [`RecordSource::fetch_page`]'s.
    fn fetch_ids(
        &self,
        stream: &StreamKey,
        ids: &[&str],
        until: Option<std::time::Instant>,
    ) -> impl Future<Output = Result<RecordsPage, SourceError>> + Send;
}

/// Lists every stream Nango syncs (its connections, then each connection's syncs and models).
pub trait StreamDiscovery: Send + Sync {
    fn discover(&self) -> impl Future<Output = Result<Vec<DiscoveredStream>, SourceError>> + Send;

    /// What `/sync/status` says now of one stream's sync; `None` when the connection's syncs no
    /// longer include the stream.
    fn sync_of(
        &self,
        stream: &StreamKey,
    ) -> impl Future<Output = Result<Option<NangoSync>, SourceError>> + Send;
}
