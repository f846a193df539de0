//! The backends a local run or an operator command can use, chosen at run time: the embedded
//! SQLite file, or DynamoDB and SQS (deployed, or on any endpoint such as moto). Each enum only
//! forwards to the adapter it holds, so every backend keeps its adapter's tested behaviour.

use std::path::PathBuf;

use crate::adapters::aws::dynamodb::{DynamoRecordStore, DynamoStateStore, WriteSettings};
use crate::adapters::aws::sqs::SqsQueue;
use crate::adapters::sqlite::{
    QueueSettings, SqliteDb, SqliteQueue, SqliteRecordStore, SqliteStateStore,
};
use crate::core::stream::StreamKey;
use crate::core::write::DeleteMode;
use crate::ports::{forward_queue, forward_record_store, forward_state_store, forward_write_store};
use crate::ports::{QueueError, StoreError};

/// Where records and state live.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite {
        records: SqliteRecordStore,
        state: SqliteStateStore,
    },
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
            StoreTarget::Sqlite { path } => Store::sqlite(SqliteDb::open(path)?, delete_mode),
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
    /// Records and state in one SQLite file.
    pub fn sqlite(db: SqliteDb, delete_mode: DeleteMode) -> Self {
        Self::Sqlite {
            records: SqliteRecordStore::new(db.clone(), delete_mode),
            state: SqliteStateStore::new(db),
        }
    }

    /// Every stored record of a stream, by id.
    pub async fn read_stream(
        &self,
        stream: &StreamKey,
    ) -> Result<
        std::collections::BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
        StoreError,
    > {
        match self {
            Self::Sqlite { records, .. } => records.read_stream(stream).await,
            Self::Dynamo { records, .. } => records.read_stream(stream).await,
        }
    }

    /// The write shown on the stored record `id` of the stream, if any.
    pub async fn pending_write(
        &self,
        stream: &StreamKey,
        id: &str,
    ) -> Result<Option<crate::core::writes::stored::PendingWrite>, StoreError> {
        match self {
            Self::Sqlite { records, .. } => records.pending_write(stream, id).await,
            Self::Dynamo { records, .. } => records.pending_write(stream, id).await,
        }
    }
}

forward_record_store!(Store {
    Store::Sqlite { records, .. } => records,
    Store::Dynamo { records, .. } => records,
});

forward_state_store!(Store {
    Store::Sqlite { state, .. } => state,
    Store::Dynamo { state, .. } => state,
});

forward_write_store!(Store {
    Store::Sqlite { state, .. } => state,
    Store::Dynamo { state, .. } => state,
});

forward_queue!(Queue {
    Queue::Embedded(queue) => queue,
    Queue::Sqs(queue) => queue,
});
