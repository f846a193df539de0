//! The backends a local run or an operator command can use, chosen at run time: the embedded
//! SQLite file, or DynamoDB and SQS (deployed, or on any endpoint such as moto). Each enum only
//! forwards to the adapter it holds, so every backend keeps its adapter's tested behaviour.

use std::path::PathBuf;
use std::time::Duration;

use crate::adapters::aws::dynamodb::{DynamoRecordStore, DynamoStateStore, WriteSettings};
use crate::adapters::aws::sqs::SqsQueue;
use crate::adapters::sqlite::{QueueSettings, SqliteDb, SqliteQueue, SqliteStore};
use crate::core::record::NangoRecord;
use crate::core::state::{
    ConnectionEvent, HeldSweep, LiveCount, NangoNotes, StoredEvent, StreamState, SweepResult,
    SweepState, SyncReport,
};
use crate::core::stream::{ConnectionKey, StreamKey};
use crate::core::write::{DeleteMode, Removal};
use crate::core::write::{RejectedRecord, WriteReport};
use crate::ports::OutgoingMessage;
use crate::ports::{
    JobConsumer, JobQueue, QueueError, ReceivedMessage, RecordStore, StateStore, StoreError,
};

/// Where records and state live.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(SqliteStore),
    Dynamo {
        records: DynamoRecordStore,
        state: DynamoStateStore,
    },
}

/// Where jobs wait.
#[derive(Debug, Clone)]
pub enum Queue {
    Embedded(SqliteQueue),
    Sqs(SqsQueue),
}

/// Where a run or a command keeps records and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreTarget {
    /// The embedded SQLite file.
    Sqlite { path: PathBuf },
    /// DynamoDB tables on the SDK's endpoint.
    Dynamo {
        records_table: String,
        state_table: String,
    },
}

/// Where a run or a command queues jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueTarget {
    /// The embedded queue, in the SQLite file.
    Embedded { path: PathBuf },
    /// SQS FIFO queues on the SDK's endpoint.
    Sqs {
        queue_url: String,
        dead_letter_queue_url: Option<String>,
    },
}

impl std::fmt::Display for StoreTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite { path } => write!(f, "the SQLite file {}", path.display()),
            Self::Dynamo { records_table, .. } => write!(f, "DynamoDB table {records_table}"),
        }
    }
}

impl std::fmt::Display for QueueTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Embedded { path } => write!(f, "the embedded queue in {}", path.display()),
            Self::Sqs { queue_url, .. } => write!(f, "SQS queue {queue_url}"),
        }
    }
}

/// The store, the ingest queue and its dead-letter queue of a run.
#[derive(Debug, Clone)]
pub struct Backends {
    pub store: Store,
    pub queue: Queue,
    pub dead_letters: Option<Queue>,
}

fn sdk_for(sdk: Option<&aws_config::SdkConfig>) -> Result<&aws_config::SdkConfig, StoreError> {
    sdk.ok_or_else(|| StoreError::permanent("the AWS backends need the SDK's configuration"))
}

impl Backends {
    pub fn open(
        store: &StoreTarget,
        queue: &QueueTarget,
        sdk: Option<&aws_config::SdkConfig>,
        delete_mode: DeleteMode,
    ) -> Result<Self, StoreError> {
        let store = match store {
            StoreTarget::Sqlite { path } => {
                Store::Sqlite(SqliteStore::new(SqliteDb::open(path)?, delete_mode))
            }
            StoreTarget::Dynamo {
                records_table,
                state_table,
            } => {
                let dynamo = aws_sdk_dynamodb::Client::new(sdk_for(sdk)?);
                let write = WriteSettings {
                    delete_mode,
                    ..WriteSettings::default()
                };
                Store::Dynamo {
                    records: DynamoRecordStore::new(dynamo.clone(), records_table, write),
                    state: DynamoStateStore::new(dynamo, state_table),
                }
            }
        };
        let (queue, dead_letters) = match queue {
            QueueTarget::Embedded { path } => {
                let db = SqliteDb::open(path)?;
                let settings = QueueSettings::default();
                (
                    Queue::Embedded(SqliteQueue::ingest(db.clone(), settings.clone())),
                    Some(Queue::Embedded(SqliteQueue::dead_letters(db, settings))),
                )
            }
            QueueTarget::Sqs {
                queue_url,
                dead_letter_queue_url,
            } => {
                let sqs = aws_sdk_sqs::Client::new(sdk_for(sdk)?);
                (
                    Queue::Sqs(SqsQueue::new(sqs.clone(), queue_url)),
                    dead_letter_queue_url
                        .as_ref()
                        .map(|url| Queue::Sqs(SqsQueue::new(sqs, url))),
                )
            }
        };
        Ok(Self {
            store,
            queue,
            dead_letters,
        })
    }
}

impl Queue {
    /// The jobs in the queue, waiting or in flight (approximate on SQS).
    pub async fn depth(&self) -> Result<u64, QueueError> {
        match self {
            Self::Embedded(q) => q.depth().await,
            Self::Sqs(q) => q.approximate_depth().await,
        }
    }
}

impl Store {
    /// Every stored record of a stream, by id.
    pub async fn read_stream(
        &self,
        stream: &StreamKey,
    ) -> Result<
        std::collections::BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
        StoreError,
    > {
        match self {
            Self::Sqlite(s) => s.read_stream(stream).await,
            Self::Dynamo { records, .. } => records.read_stream(stream).await,
        }
    }
}

impl RecordStore for Store {
    async fn write_page(
        &self,
        stream: &StreamKey,
        records: &[NangoRecord],
        seen_in: Option<&str>,
    ) -> Result<WriteReport, StoreError> {
        match self {
            Self::Sqlite(s) => s.write_page(stream, records, seen_in).await,
            Self::Dynamo { records: r, .. } => r.write_page(stream, records, seen_in).await,
        }
    }

    async fn count_live(&self, stream: &StreamKey) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(s) => s.count_live(stream).await,
            Self::Dynamo { records, .. } => records.count_live(stream).await,
        }
    }

    async fn count_live_until(
        &self,
        stream: &StreamKey,
        from: Option<(&str, u64)>,
        until: Option<std::time::Instant>,
    ) -> Result<LiveCount, StoreError> {
        match self {
            Self::Sqlite(s) => s.count_live_until(stream, from, until).await,
            Self::Dynamo { records, .. } => records.count_live_until(stream, from, until).await,
        }
    }

    async fn count_unseen(&self, stream: &StreamKey, sweep_id: &str) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(s) => s.count_unseen(stream, sweep_id).await,
            Self::Dynamo { records, .. } => records.count_unseen(stream, sweep_id).await,
        }
    }

    async fn tombstone_unseen(
        &self,
        stream: &StreamKey,
        sweep_id: &str,
        at: &str,
    ) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(s) => s.tombstone_unseen(stream, sweep_id, at).await,
            Self::Dynamo { records, .. } => records.tombstone_unseen(stream, sweep_id, at).await,
        }
    }

    async fn remove_stream(
        &self,
        stream: &StreamKey,
        removal: Removal<'_>,
    ) -> Result<u64, StoreError> {
        match self {
            Self::Sqlite(s) => s.remove_stream(stream, removal).await,
            Self::Dynamo { records, .. } => records.remove_stream(stream, removal).await,
        }
    }
}

impl StateStore for Store {
    async fn get_stream(&self, stream: &StreamKey) -> Result<Option<StreamState>, StoreError> {
        match self {
            Self::Sqlite(s) => s.get_stream(stream).await,
            Self::Dynamo { state, .. } => state.get_stream(stream).await,
        }
    }

    async fn advance_cursor(
        &self,
        stream: &StreamKey,
        from: Option<&str>,
        to: &str,
        written: u64,
        rejected: &[RejectedRecord],
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.advance_cursor(stream, from, to, written, rejected).await,
            Self::Dynamo { state, .. } => {
                state
                    .advance_cursor(stream, from, to, written, rejected)
                    .await
            }
        }
    }

    async fn report_sync(&self, stream: &StreamKey, report: &SyncReport) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.report_sync(stream, report).await,
            Self::Dynamo { state, .. } => state.report_sync(stream, report).await,
        }
    }

    async fn list_streams(&self) -> Result<Vec<(StreamKey, StreamState)>, StoreError> {
        match self {
            Self::Sqlite(s) => s.list_streams().await,
            Self::Dynamo { state, .. } => state.list_streams().await,
        }
    }

    async fn begin_sweep(&self, stream: &StreamKey, sweep: &SweepState) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.begin_sweep(stream, sweep).await,
            Self::Dynamo { state, .. } => state.begin_sweep(stream, sweep).await,
        }
    }

    async fn advance_sweep(
        &self,
        stream: &StreamKey,
        id: &str,
        from: Option<&str>,
        to: &str,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.advance_sweep(stream, id, from, to).await,
            Self::Dynamo { state, .. } => state.advance_sweep(stream, id, from, to).await,
        }
    }

    async fn end_sweep(
        &self,
        stream: &StreamKey,
        id: &str,
        result: &SweepResult,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.end_sweep(stream, id, result).await,
            Self::Dynamo { state, .. } => state.end_sweep(stream, id, result).await,
        }
    }

    async fn reset_cursor(&self, stream: &StreamKey) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.reset_cursor(stream).await,
            Self::Dynamo { state, .. } => state.reset_cursor(stream).await,
        }
    }

    async fn set_nango_notes(
        &self,
        stream: &StreamKey,
        notes: &NangoNotes,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.set_nango_notes(stream, notes).await,
            Self::Dynamo { state, .. } => state.set_nango_notes(stream, notes).await,
        }
    }

    async fn hold_sweep(&self, stream: &StreamKey, held: &HeldSweep) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.hold_sweep(stream, held).await,
            Self::Dynamo { state, .. } => state.hold_sweep(stream, held).await,
        }
    }

    async fn release_hold(
        &self,
        stream: &StreamKey,
        sweep_id: &str,
        result: &SweepResult,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Sqlite(s) => s.release_hold(stream, sweep_id, result).await,
            Self::Dynamo { state, .. } => state.release_hold(stream, sweep_id, result).await,
        }
    }

    async fn set_connection_deleted(
        &self,
        stream: &StreamKey,
        at: Option<&str>,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.set_connection_deleted(stream, at).await,
            Self::Dynamo { state, .. } => state.set_connection_deleted(stream, at).await,
        }
    }

    async fn upsert_connection(
        &self,
        connection: &ConnectionKey,
        event: &ConnectionEvent,
    ) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.upsert_connection(connection, event).await,
            Self::Dynamo { state, .. } => state.upsert_connection(connection, event).await,
        }
    }

    async fn store_event(&self, event: &StoredEvent) -> Result<(), StoreError> {
        match self {
            Self::Sqlite(s) => s.store_event(event).await,
            Self::Dynamo { state, .. } => state.store_event(event).await,
        }
    }
}

impl JobQueue for Queue {
    async fn send(&self, messages: &[OutgoingMessage]) -> Result<(), QueueError> {
        match self {
            Self::Embedded(q) => q.send(messages).await,
            Self::Sqs(q) => q.send(messages).await,
        }
    }
}

impl JobConsumer for Queue {
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        match self {
            Self::Embedded(q) => q.receive(max, wait).await,
            Self::Sqs(q) => q.receive(max, wait).await,
        }
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        match self {
            Self::Embedded(q) => q.delete(receipt_handle).await,
            Self::Sqs(q) => q.delete(receipt_handle).await,
        }
    }

    async fn release(&self, receipt_handle: &str) -> Result<(), QueueError> {
        match self {
            Self::Embedded(q) => q.release(receipt_handle).await,
            Self::Sqs(q) => q.release(receipt_handle).await,
        }
    }
}
