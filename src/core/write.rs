//! What a page write did: the counts every store reports, and the records it could not keep.

use serde::{Deserialize, Serialize};

/// A record that could not be stored as-is or compressed: reported, never dropped silently.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedRecord {
    pub id: String,
    pub reason: String,
}

/// What one page write did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    pub upserted: u64,
    pub deleted: u64,
    pub compressed: u64,
    pub pruned: u64,
    pub rejected: Vec<RejectedRecord>,
}

impl WriteReport {
    pub fn written(&self) -> u64 {
        self.upserted + self.deleted + self.pruned
    }
}
