//! Writes to the provider: where they are kept ([`WriteStore`]: one item per write id, moved only
//! conditionally, so that a write is taken once and sent by one worker at a time) and what sends
//! them ([`WriteSender`]: Nango's tools, actions and proxy). The rules are `core::writes`.

use std::future::Future;

use super::StoreError;
use crate::core::stream::StreamKey;
use crate::core::writes::request::WriteRequest;
use crate::core::writes::state::ActionResult;
use crate::core::writes::state::Sent;
use crate::core::writes::stored::{Accept, Move, StoredWrite};

pub trait WriteStore: Send + Sync {
    /// Keeps `request` as accepted at `at`, unless a write with its id is kept already: that one
    /// is left as it is and comes back ([`Accept::Duplicate`]).
    fn accept_write(
        &self,
        request: &WriteRequest,
        at: &str,
    ) -> impl Future<Output = Result<Accept, StoreError>> + Send;

    /// The kept write with this id, read consistently.
    fn get_write(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<StoredWrite>, StoreError>> + Send;

    /// Moves the write with this id, only if it is still at `change.from`. `false`: it is not
    /// (another worker moved it, or no such write is kept), and nothing changed.
    fn move_write(
        &self,
        id: &str,
        change: &Move<'_>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Every kept write, oldest accepted first (then by id).
    fn list_writes(&self) -> impl Future<Output = Result<Vec<StoredWrite>, StoreError>> + Send;

    /// The write that went `running` on the async action Nango gave this id, if one did.
    fn write_for_action(
        &self,
        action_id: &str,
    ) -> impl Future<Output = Result<Option<StoredWrite>, StoreError>> + Send;

    /// Every write `running` (an async action awaited), read without scanning other writes.
    fn running_writes(&self) -> impl Future<Output = Result<Vec<StoredWrite>, StoreError>> + Send;
}

/// Sends one write to the provider through Nango, once: no retry of its own (a retry is the
/// at-most-once rules' decision), and every answer classified ([`Sent`]), never an error.
pub trait WriteSender: Send + Sync {
    fn send(&self, request: &WriteRequest) -> impl Future<Output = Sent> + Send;

    /// The result of the async action `request` started, Nango's id `action_id`
    /// (`GET /action/{id}`), classified as [`Self::send`] classifies a synchronous answer.
    fn action_result(
        &self,
        request: &WriteRequest,
        action_id: &str,
    ) -> impl Future<Output = ActionResult> + Send;

    /// Asks Nango to run `sync_name` for `stream` now (`POST /sync/trigger`), so that a write the
    /// provider applied reaches Nango's records (read your writes). Once, no retry: `Err` says
    /// why it was not taken.
    fn trigger_sync(
        &self,
        stream: &StreamKey,
        sync_name: &str,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// Implements [`WriteStore`] for an enum of stores, as `forward_record_store` does.
#[cfg(feature = "local")]
macro_rules! forward_write_store {
    ($ty:ty { $($variant:pat => $inner:ident),+ $(,)? }) => {
        impl $crate::ports::WriteStore for $ty {
            async fn accept_write(
                &self,
                request: &$crate::core::writes::request::WriteRequest,
                at: &str,
            ) -> Result<$crate::core::writes::stored::Accept, $crate::ports::StoreError> {
                match self { $($variant => $inner.accept_write(request, at).await),+ }
            }

            async fn get_write(
                &self,
                id: &str,
            ) -> Result<Option<$crate::core::writes::stored::StoredWrite>, $crate::ports::StoreError>
            {
                match self { $($variant => $inner.get_write(id).await),+ }
            }

            async fn move_write(
                &self,
                id: &str,
                change: &$crate::core::writes::stored::Move<'_>,
            ) -> Result<bool, $crate::ports::StoreError> {
                match self { $($variant => $inner.move_write(id, change).await),+ }
            }

            async fn list_writes(
                &self,
            ) -> Result<Vec<$crate::core::writes::stored::StoredWrite>, $crate::ports::StoreError>
            {
                match self { $($variant => $inner.list_writes().await),+ }
            }

            async fn write_for_action(
                &self,
                action_id: &str,
            ) -> Result<Option<$crate::core::writes::stored::StoredWrite>, $crate::ports::StoreError>
            {
                match self { $($variant => $inner.write_for_action(action_id).await),+ }
            }

            async fn running_writes(
                &self,
            ) -> Result<Vec<$crate::core::writes::stored::StoredWrite>, $crate::ports::StoreError>
            {
                match self { $($variant => $inner.running_writes().await),+ }
            }
        }
    };
}
#[cfg(feature = "local")]
pub(crate) use forward_write_store;
