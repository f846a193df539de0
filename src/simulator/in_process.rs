//! The simulator as an in-process source, without HTTP: for tests of the sync loop and the
//! reconcile.

use std::sync::Arc;

use super::cache::Simulator;
use super::wire::SimError;
use crate::core::nango_status::{DiscoveredStream, NangoSync};
use crate::core::record::RecordsPage;
use crate::core::stream::StreamKey;
use crate::ports::{PermanentReason, RecordSource, SourceError, StreamDiscovery, MAX_IDS};

/// The simulator as an in-process [`RecordSource`], without HTTP:
/// for unit tests of the sync loop.
#[derive(Debug, Clone)]
pub struct InProcessSource {
    pub sim: Arc<Simulator>,
    pub limit: usize,
}

impl StreamDiscovery for InProcessSource {
    async fn discover(&self) -> Result<Vec<DiscoveredStream>, SourceError> {
        let mut found = Vec::new();
        for connection in self.sim.connections() {
            for (stream, sync_name, sync) in self.sim.sync_status(&connection) {
                found.push(DiscoveredStream {
                    stream,
                    sync_name,
                    sync,
                });
            }
        }
        Ok(found)
    }

    async fn sync_of(&self, stream: &StreamKey) -> Result<Option<NangoSync>, SourceError> {
        Ok(self
            .sim
            .sync_status(&stream.connection())
            .into_iter()
            .find(|(s, _, _)| s == stream)
            .map(|(_, _, sync)| sync))
    }
}

impl RecordSource for InProcessSource {
    async fn fetch_page(
        &self,
        stream: &StreamKey,
        cursor: Option<&str>,
        _until: Option<std::time::Instant>,
    ) -> Result<RecordsPage, SourceError> {
        as_page(self.sim.page(stream, cursor, self.limit))
    }

    /// As [`crate::adapters::nango::NangoClient`] asks: one page with room for every id.
    async fn fetch_ids(
        &self,
        stream: &StreamKey,
        ids: &[&str],
        _until: Option<std::time::Instant>,
    ) -> Result<RecordsPage, SourceError> {
        SourceError::check_id_count(ids.len())?;
        as_page(self.sim.page_among(stream, None, MAX_IDS, ids))
    }
}

/// A page the cache served, read as the client reads Nango's answer.
fn as_page(page: Result<serde_json::Value, SimError>) -> Result<RecordsPage, SourceError> {
    let page = page.map_err(|e| SourceError::Permanent {
        reason: PermanentReason::BadRequest,
        message: e.to_string(),
    })?;
    let bytes = serde_json::to_vec(&page).expect("a JSON value serializes");
    RecordsPage::parse(&bytes).map_err(|e| SourceError::Transient {
        attempts: 1,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fetch_ids_serves_the_records_among_them_in_one_page() {
        let sim = Arc::new(Simulator::new());
        let s = StreamKey::new("hubspot", "c1", "Contact", "base");
        sim.save(
            &s,
            (0..300).map(|i| (format!("r{i}"), crate::simulator::sample_payload(i))),
        );
        sim.tick();
        sim.delete(&s, &["r250"]);
        // A page limit smaller than the ids: fetch_ids still answers them in one page.
        let source = InProcessSource { sim, limit: 1 };
        let page = source
            .fetch_ids(&s, &["r250", "r9", "gone", "r7"], None)
            .await
            .unwrap();
        let mut ids: Vec<&str> = page.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids.pop(), Some("r250"), "the delete is the latest change");
        ids.sort_unstable();
        assert_eq!(ids, ["r7", "r9"]);
        assert!(page.records[2].is_deleted());
        assert_eq!(page.next_cursor(), None);
        let many: Vec<String> = (0..=MAX_IDS).map(|i| format!("r{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(!source
            .fetch_ids(&s, &many, None)
            .await
            .unwrap_err()
            .is_retryable());
    }
}
