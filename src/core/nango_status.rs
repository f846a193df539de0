//! What Nango's `GET /sync/status` says of a stream's sync (nango-contract.md §6), and the streams
//! found by listing Nango's connections.

use serde::{Deserialize, Serialize};

use crate::core::stream::StreamKey;

/// A stream Nango knows of, found without a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredStream {
    pub stream: StreamKey,
    pub sync_name: String,
    /// What `/sync/status` says of the stream's sync.
    pub sync: NangoSync,
}

/// What Nango's `GET /sync/status` says of one stream's sync (contract §6).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NangoSync {
    /// `recordCount` for the model, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_count: Option<u64>,
    /// `status`: the sync as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
    /// `latestExecutionStatus`, when reported: how the latest run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_execution: Option<RunStatus>,
    /// `finishedAt`: when the latest run ended (successful or not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Whether `checkpoint` is set (a checkpointed pass under way); `None` when not reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<bool>,
}

/// A sync's (or a run's) status as `/sync/status` writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    Running,
    Success,
    Error,
    Paused,
    Stopped,
    #[serde(other)]
    Other,
}

impl RunStatus {
    pub fn parse(text: &str) -> Self {
        match text {
            "RUNNING" => Self::Running,
            "SUCCESS" => Self::Success,
            "ERROR" => Self::Error,
            "PAUSED" => Self::Paused,
            "STOPPED" => Self::Stopped,
            _ => Self::Other,
        }
    }
}
