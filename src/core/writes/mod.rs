//! Two-way sync (issue "Two-way sync"): an application's writes to the provider, through Nango's
//! tools, legacy actions or proxy, never run twice unless safe to repeat, every outcome known.
//!
//! This module is the model, pure: the write request an application sends ([`request`]), the
//! states a write goes through and the at-most-once rules that move it ([`state`]), and a write
//! as the stores keep it ([`stored`]); and the use case, one request taken through one attempt
//! ([`take`]), an async action's end learned from Nango ([`finish`]), an operator's decision on
//! an unknown write ([`resolve`]), the sync that reads a write back ([`follow`]), and the
//! queue message an outbox item becomes ([`outbox`]). Nango's
//! side of the contract is ../shared/nango-writeback.md.

pub mod finish;
pub mod follow;
pub mod outbox;
pub mod request;
pub mod resolve;
pub mod state;
pub mod stored;
pub mod take;
