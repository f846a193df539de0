//! The simulator as an in-process source, without HTTP: for tests of the sync loop and the
//! reconcile.

use std::sync::Arc;

use super::cache::Simulator;
use crate::core::nango_status::{DiscoveredStream, NangoSync};
use crate::core::record::RecordsPage;
use crate::core::stream::StreamKey;
use crate::ports::{PermanentReason, RecordSource, SourceError, StreamDiscovery};

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
        let page =
            self.sim
                .page(stream, cursor, self.limit)
                .map_err(|e| SourceError::Permanent {
                    reason: PermanentReason::BadRequest,
                    message: e.to_string(),
                })?;
        let bytes = serde_json::to_vec(&page).expect("a JSON value serializes");
        RecordsPage::parse(&bytes).map_err(|e| SourceError::Transient {
            attempts: 1,
            message: e.to_string(),
        })
    }
}
