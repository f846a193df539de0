//! What a sweep compares: the version of a record Nango served ([`Seen`]) and of the one the
//! copy holds ([`Stored`]). See `core::drift::sweep` for the two passes that use them.

use std::collections::HashMap;

use crate::core::record::NangoRecord;

/// A record's version as a sweep compares it. Nango moves a record's cursor on every change of
/// the record (its `updated_at`), deletes and undeletes included, so the cursor, with whether
/// the record is deleted, names what the copy holds. Pruning is left out: it does not move the
/// cursor, so a sync never hears of it, and the copy keeps the payload anyway. Kept as a 64-bit
/// FNV-1a digest: stable across builds, small in the sweep's notes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version(pub u64);

impl Version {
    pub fn of(cursor: &str, deleted: bool) -> Self {
        Self(fnv1a(cursor.as_bytes().iter().chain(&[u8::from(deleted)])))
    }

    /// The version Nango serves `record` at.
    pub fn of_record(record: &NangoRecord) -> Self {
        let meta = &record.metadata;
        Self::of(&meta.cursor, meta.deleted_at.is_some())
    }
}

/// A record id as a sweep's second pass keys it in memory: 8 bytes instead of the id. Two ids
/// that share a key (about one chance in 400,000 for a stream of 10M records) only make that
/// pass fetch one of them again or keep it; they never make it delete anything.
pub fn id_key(id: &str) -> u64 {
    fnv1a(id.as_bytes())
}

/// 64-bit FNV-1a: stable across builds and platforms.
fn fnv1a<'a>(bytes: impl IntoIterator<Item = &'a u8>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    bytes
        .into_iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// What a sweep's page served of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub id: String,
    pub version: Version,
    /// Served deleted: a hard-delete mode keeps nothing of it.
    pub deleted: bool,
}

impl Seen {
    /// Its length in [`encode_notes`]'s bytes.
    pub fn encoded_len(&self) -> usize {
        4 + self.id.len() + 8 + 1
    }
}

/// What a sweep notes of a page: one entry per id, the page's last occurrence of it.
pub fn seen_on_page(records: &[NangoRecord]) -> Vec<Seen> {
    let mut at: HashMap<&str, usize> = HashMap::with_capacity(records.len());
    let mut seen: Vec<Seen> = Vec::with_capacity(records.len());
    for record in records {
        let entry = Seen {
            id: record.id.clone(),
            version: Version::of_record(record),
            deleted: record.metadata.deleted_at.is_some(),
        };
        match at.get(record.id.as_str()) {
            Some(&i) => seen[i] = entry,
            None => {
                at.insert(&record.id, seen.len());
                seen.push(entry);
            }
        }
    }
    seen
}

/// A page's notes as the stores keep them, packed: for each record its id's length (4 bytes,
/// little-endian), the id, its version (8 bytes, little-endian) and 1 if deleted, else 0. About
/// 13 bytes besides the id: a sweep's notes cost about 1% of the write units of the records.
pub fn encode_notes(seen: &[Seen]) -> Vec<u8> {
    let size = seen.iter().map(Seen::encoded_len).sum();
    let mut out = Vec::with_capacity(size);
    for s in seen {
        let len = u32::try_from(s.id.len()).expect("a record id is far shorter than 4 GB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(s.id.as_bytes());
        out.extend_from_slice(&s.version.0.to_le_bytes());
        out.push(u8::from(s.deleted));
    }
    out
}

/// [`encode_notes`]'s bytes back as notes; an error when they are not such bytes.
pub fn decode_notes(mut bytes: &[u8]) -> Result<Vec<Seen>, String> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Result<&'a [u8], String> {
        if bytes.len() < n {
            return Err(format!(
                "a sweep's notes end {} bytes short",
                n - bytes.len()
            ));
        }
        let (head, rest) = bytes.split_at(n);
        *bytes = rest;
        Ok(head)
    }
    let mut seen = Vec::new();
    while !bytes.is_empty() {
        let len = u32::from_le_bytes(take(&mut bytes, 4)?.try_into().expect("4 bytes"));
        let id = std::str::from_utf8(take(&mut bytes, len as usize)?)
            .map_err(|e| format!("a sweep's notes hold an id that is not UTF-8: {e}"))?;
        let version = u64::from_le_bytes(take(&mut bytes, 8)?.try_into().expect("8 bytes"));
        let deleted = take(&mut bytes, 1)?[0] != 0;
        seen.push(Seen {
            id: id.to_owned(),
            version: Version(version),
            deleted,
        });
    }
    Ok(seen)
}

/// One stored record as a sweep compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub id: String,
    pub version: Version,
    /// Not deleted: counted as Nango's `recordCount` counts.
    pub live: bool,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn record(id: &str, cursor: &str, deleted: bool) -> NangoRecord {
        let deleted_at = deleted.then_some("2026-12-07T00:00:02+00:00");
        let object = json!({"id": id, "_nango_metadata": {"first_seen_at": "2026-12-07T00:00:00+00:00",
            "last_modified_at": "2026-12-07T00:00:01+00:00",
            "last_action": if deleted { "DELETED" } else { "ADDED" },
            "deleted_at": deleted_at, "pruned_at": null, "cursor": cursor}});
        NangoRecord::from_object(object.as_object().unwrap().clone()).unwrap()
    }

    #[test]
    fn a_version_moves_with_the_cursor_and_deletion_and_nothing_else() {
        let base = Version::of("c1", false);
        assert_eq!(base, Version::of("c1", false));
        assert_ne!(base, Version::of("c2", false));
        assert_ne!(base, Version::of("c1", true));
        // Stable across builds: the notes of a sweep outlive the binary that wrote them.
        assert_eq!(Version::of("", false), Version(0xaf63_bd4c_8601_b7df));
    }

    #[test]
    fn a_page_notes_each_id_once_at_its_last_occurrence() {
        let page = [
            record("a", "c1", false),
            record("b", "c2", false),
            record("a", "c3", true),
        ];
        let seen = seen_on_page(&page);
        assert_eq!(
            seen,
            [
                Seen {
                    id: "a".into(),
                    version: Version::of("c3", true),
                    deleted: true
                },
                Seen {
                    id: "b".into(),
                    version: Version::of("c2", false),
                    deleted: false
                },
            ]
        );
        assert_eq!(decode_notes(&encode_notes(&seen)).unwrap(), seen);
        let version = Version::of("c2", false).0.to_le_bytes();
        let packed = [&[1, 0, 0, 0, b'b'][..], &version, &[0]].concat();
        assert_eq!(encode_notes(&seen[1..]), packed);
        assert!(
            decode_notes(&packed[..packed.len() - 1]).is_err(),
            "cut short"
        );
        assert!(decode_notes(&[1, 0, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert_eq!(decode_notes(&[]).unwrap(), []);
    }
}
