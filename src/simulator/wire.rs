//! Nango's wire format for the cache: Postgres timestamps, cursors (base64 of
//! `<timestamptz>||<uuid>`), record uuids, and the errors the API answers with.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::core::stream::StreamKey;

/// Microseconds since the Unix epoch: Postgres' timestamp resolution.
pub type Micros = i64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("unknown connection")]
    UnknownConnection,
    #[error("cursor cannot be decoded")]
    BadCursor,
}

/// A stable uuid-shaped id per (stream, record id), as Nango derives a UUIDv5.
pub(super) fn record_uuid(stream: &StreamKey, id: &str) -> String {
    let h = hex::encode(Sha256::digest(
        format!("{}\n{id}", stream.encode()).as_bytes(),
    ));
    format!(
        "{}-{}-5{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// Postgres' JSON form of a timestamptz: microseconds with trailing zeros dropped, `+00:00`.
pub fn pg_timestamp(micros: Micros) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let fraction = format!("{:06}", t.microsecond());
    let fraction = fraction.trim_end_matches('0');
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{}{}+00:00",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        if fraction.is_empty() { "" } else { "." },
        fraction
    )
}

pub fn encode_cursor(updated_at: Micros, uuid: &str) -> String {
    BASE64.encode(format!("{}||{uuid}", pg_timestamp(updated_at)))
}

/// A cursor's position in the stream's order: (last_modified_at in microseconds, uuid).
pub fn decode_cursor(cursor: &str) -> Result<(Micros, String), SimError> {
    let bytes = BASE64.decode(cursor).map_err(|_| SimError::BadCursor)?;
    let text = String::from_utf8(bytes).map_err(|_| SimError::BadCursor)?;
    let (ts, uuid) = text.split_once("||").ok_or(SimError::BadCursor)?;
    let t = OffsetDateTime::parse(ts, &Rfc3339).map_err(|_| SimError::BadCursor)?;
    let valid_uuid = uuid.len() == 36 && uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    if !valid_uuid {
        return Err(SimError::BadCursor);
    }
    let micros =
        i64::try_from(t.unix_timestamp_nanos() / 1_000).map_err(|_| SimError::BadCursor)?;
    Ok((micros, uuid.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_cursors_follow_postgres_format() {
        assert_eq!(
            pg_timestamp(1_795_737_600_123_400),
            "2026-11-27T00:00:00.1234+00:00"
        );
        assert_eq!(
            pg_timestamp(1_795_737_600_000_000),
            "2026-11-27T00:00:00+00:00"
        );
        let docs = "MjAyNC0wMy0wNFQwNjo1OTo1MS40NzE0NDEtMDU6MDB8fDE1Y2NjODA1LTY0ZDUtNDk0MC1hN2UwLTQ1ZmM3MDQ5OTdhMQ==";
        let (micros, uuid) = decode_cursor(docs).unwrap();
        assert_eq!(uuid, "15ccc805-64d5-4940-a7e0-45fc704997a1");
        assert_eq!(pg_timestamp(micros), "2024-03-04T11:59:51.471441+00:00");
        assert_eq!(decode_cursor("not a cursor"), Err(SimError::BadCursor));
    }
}
