//! The transactional outbox: an application that keeps its data in DynamoDB puts its write
//! request in an outbox table in the same transaction as its own change (one item: `id`, the
//! write's id, and `request`, the request's JSON text); the table's stream feeds each new item to
//! the ingest queue, the path every write takes. So the write goes out if and only if the
//! application's change was kept.

use crate::core::job::{JobMessage, MAX_MESSAGE_BYTES};
use crate::core::stream::digest_hex;
use crate::ports::OutgoingMessage;

/// The queue message for one outbox item: the request as the application put it, in the write's
/// FIFO group (the record's, so writes to one record stay in order), deduplicated by the item's
/// id (a stream batch retried within SQS's 5 minutes is sent once; past them, the write's state
/// item answers the duplicate). A request that does not read goes on as it is, in a group of its
/// own: the worker refuses it with the reason, and the queue keeps it, body and all, in its
/// dead-letter queue. Nothing the application put is dropped.
pub fn message_for(item_id: &str, request: &str) -> OutgoingMessage {
    let own_group = || format!("w-{}", digest_hex(item_id.as_bytes()));
    let group_id = match JobMessage::decode(request) {
        Ok(message) => message.group_id(&digest_hex(request.as_bytes())),
        Err(_) => own_group(),
    };
    OutgoingMessage {
        group_id,
        dedup_id: digest_hex(format!("outbox\n{item_id}").as_bytes()),
        body: request.to_owned(),
    }
}

/// Why SQS could never take `body` as a message, if it could not: past its size, or holding a
/// character it refuses (controls but tab and line ends, U+FFFE, U+FFFF). Such an item would
/// block the stream behind it until its records expire: it is left in the outbox table instead.
pub fn uncarriable(body: &str) -> Option<String> {
    if body.len() > MAX_MESSAGE_BYTES {
        return Some(format!(
            "{} bytes, more than a queue message's {MAX_MESSAGE_BYTES}",
            body.len()
        ));
    }
    let refused = |c: char| {
        (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{fffe}' | '\u{ffff}')
    };
    body.chars().find(|c| refused(*c)).map(|c| {
        format!(
            "holds U+{:04X}, which a queue message may not",
            u32::from(c)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outbox_item_goes_on_in_its_writes_group_and_a_bad_one_goes_on_too() {
        let request = include_str!("../../../events/write-request.json");
        let message = message_for("order-42-close-deal", request);
        let direct = JobMessage::decode(request).unwrap();
        assert_eq!(message.group_id, direct.group_id(""));
        assert_eq!(message.body, request);
        assert!(message.dedup_id.len() <= 128);
        assert_eq!(
            message.dedup_id,
            message_for("order-42-close-deal", "{}").dedup_id,
            "deduplicated by the item, whatever it holds"
        );
        let bad = message_for("w-bad", "{\"v\":1,\"run\":7}");
        assert_eq!(bad.body, "{\"v\":1,\"run\":7}");
        assert!(bad.group_id.starts_with("w-") && bad.group_id != message.group_id);
        assert!(JobMessage::decode(&bad.body).is_err());
    }

    #[test]
    fn what_a_queue_message_cannot_carry_is_told() {
        assert_eq!(uncarriable("{\"a\":\"tab\tand\nlines\r\"}"), None);
        assert_eq!(uncarriable("é漢😀"), None);
        assert!(uncarriable("a\u{1}b").unwrap().contains("U+0001"));
        assert!(uncarriable("\u{ffff}").unwrap().contains("U+FFFF"));
        assert!(uncarriable(&"x".repeat(MAX_MESSAGE_BYTES + 1))
            .unwrap()
            .contains("more than"));
    }
}
