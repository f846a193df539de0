//! A FIFO job queue in the SQLite file, with SQS FIFO's semantics.

use std::time::Duration;

use rusqlite::params;

use super::db::{now_ms, SqliteDb};
use crate::ports::OutgoingMessage;
use crate::ports::{JobConsumer, JobQueue, QueueError, ReceivedMessage, StoreError};

/// How the embedded queue delivers, as the deployed FIFO queue does.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    /// A received message is hidden this long; not deleted by then, it is delivered again.
    pub visibility_timeout: Duration,
    /// A released (failed) message waits this long times its receive count.
    pub retry_delay: Duration,
    /// Receives before a message goes to the dead-letter queue (template.yaml's default is 5).
    pub max_receive_count: u32,
    /// SQS FIFO's deduplication window.
    pub dedup_window: Duration,
}

impl Default for QueueSettings {
    fn default() -> Self {
        Self {
            visibility_timeout: Duration::from_secs(1800),
            retry_delay: Duration::from_secs(2),
            max_receive_count: crate::ports::DEFAULT_MAX_RECEIVE_COUNT,
            dedup_window: Duration::from_secs(300),
        }
    }
}

/// A FIFO job queue in the SQLite file: `ingest`, or its dead-letter queue `dead`.
#[derive(Debug, Clone)]
pub struct SqliteQueue {
    db: SqliteDb,
    name: &'static str,
    settings: QueueSettings,
}

fn queue_error(e: StoreError) -> QueueError {
    QueueError(Box::new(e))
}

impl SqliteQueue {
    pub fn ingest(db: SqliteDb, settings: QueueSettings) -> Self {
        Self {
            db,
            name: "ingest",
            settings,
        }
    }

    pub fn dead_letters(db: SqliteDb, settings: QueueSettings) -> Self {
        Self {
            db,
            name: "dead",
            settings,
        }
    }

    /// Messages waiting or in flight.
    pub async fn depth(&self) -> Result<u64, QueueError> {
        let name = self.name;
        self.db
            .call(move |c| {
                c.query_row("SELECT COUNT(*) FROM jobs WHERE queue = ?1", [name], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .await
            .map(|n| n as u64)
            .map_err(queue_error)
    }

    /// One receive attempt: the visible heads of the groups not in flight, in order.
    async fn take(&self, max: usize) -> Result<Vec<ReceivedMessage>, QueueError> {
        let (name, settings) = (self.name, self.settings.clone());
        self.db
            .call(move |c| {
                let now = now_ms();
                let tx = c.transaction()?;
                // As SQS does: past maxReceiveCount, a message moves to the dead-letter queue.
                if name == "ingest" {
                    tx.execute(
                        "UPDATE jobs SET queue = 'dead', receive_count = 0, receipt = NULL,
                           visible_at_ms = 0
                         WHERE queue = 'ingest' AND visible_at_ms <= ?1 AND receive_count >= ?2",
                        params![now, settings.max_receive_count],
                    )?;
                }
                let candidates: Vec<(i64, String, i64, String)> = {
                    let mut q = tx.prepare(
                        "SELECT seq, group_id, visible_at_ms, body FROM jobs WHERE queue = ?1
                         ORDER BY seq LIMIT 10000",
                    )?;
                    let rows = q
                        .query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    rows
                };
                let mut blocked = std::collections::HashSet::new();
                let mut taken = Vec::new();
                for (seq, group, visible_at, body) in candidates {
                    if taken.len() >= max {
                        break;
                    }
                    // A group's later messages wait behind its earliest, whatever its state.
                    if blocked.contains(&group) {
                        continue;
                    }
                    if visible_at > now {
                        blocked.insert(group);
                        continue;
                    }
                    let receipt = format!("{seq}-{now}-{}", fastrand::u64(..));
                    tx.execute(
                        "UPDATE jobs SET receive_count = receive_count + 1, visible_at_ms = ?2,
                           receipt = ?3 WHERE seq = ?1",
                        params![
                            seq,
                            now + settings.visibility_timeout.as_millis() as i64,
                            receipt
                        ],
                    )?;
                    taken.push(ReceivedMessage {
                        message_id: seq.to_string(),
                        receipt_handle: receipt,
                        body,
                        group_id: Some(group),
                    });
                }
                tx.commit()?;
                Ok(taken)
            })
            .await
            .map_err(queue_error)
    }
}

impl JobQueue for SqliteQueue {
    async fn send(&self, messages: &[OutgoingMessage]) -> Result<(), QueueError> {
        let (name, window) = (self.name, self.settings.dedup_window.as_millis() as i64);
        let messages = messages.to_vec();
        self.db
            .call(move |c| {
                let now = now_ms();
                let tx = c.transaction()?;
                tx.execute(
                    "DELETE FROM sent_dedup_ids WHERE sent_at_ms < ?1",
                    [now - window],
                )?;
                for m in &messages {
                    // A deduplication id seen within the window is accepted and dropped, as SQS does.
                    let fresh = tx.execute(
                        "INSERT INTO sent_dedup_ids (queue, dedup_id, sent_at_ms) VALUES (?1, ?2, ?3)
                         ON CONFLICT (queue, dedup_id) DO NOTHING",
                        params![name, m.dedup_id, now],
                    )? == 1;
                    if fresh {
                        tx.execute(
                            "INSERT INTO jobs (queue, group_id, dedup_id, body, visible_at_ms)
                             VALUES (?1, ?2, ?3, ?4, 0)",
                            params![name, m.group_id, m.dedup_id, m.body],
                        )?;
                    }
                }
                tx.commit()
            })
            .await
            .map_err(queue_error)
    }
}

impl JobConsumer for SqliteQueue {
    async fn receive(
        &self,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<ReceivedMessage>, QueueError> {
        let until = tokio::time::Instant::now() + wait;
        loop {
            let taken = self.take(max.clamp(1, 10)).await?;
            if !taken.is_empty() || tokio::time::Instant::now() >= until {
                return Ok(taken);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn delete(&self, receipt_handle: &str) -> Result<(), QueueError> {
        let receipt = receipt_handle.to_owned();
        self.db
            .call(move |c| c.execute("DELETE FROM jobs WHERE receipt = ?1", [receipt]))
            .await
            .map(|_| ())
            .map_err(queue_error)
    }

    async fn release(&self, receipt_handle: &str) -> Result<(), QueueError> {
        let receipt = receipt_handle.to_owned();
        let delay = self.settings.retry_delay.as_millis() as i64;
        self.db
            .call(move |c| {
                c.execute(
                    "UPDATE jobs SET receipt = NULL, visible_at_ms = ?2 + ?3 * receive_count
                     WHERE receipt = ?1",
                    params![receipt, now_ms(), delay],
                )
            })
            .await
            .map(|_| ())
            .map_err(queue_error)
    }
}
