//! What a sweep compares: the version of a record Nango served ([`Seen`]) and of the one the
//! copy holds ([`Stored`]). See `core::drift::sweep` for the two passes that use them.

use std::collections::HashMap;

use crate::core::record::NangoRecord;

/// A record's version as a sweep and a re-read compare it: what the record says, its
/// [`NangoRecord::content_digest`] (its payload and whether it is deleted), so that a record
/// served again unchanged under new cursors (emptyCache re-adds every record, `reset` re-reads
/// the stream) matches the copy. A pruned record has no payload left to tell: its version is its
/// cursor with whether it is deleted ([`Version::of`]), which pruning does not move, and which a
/// stored record is also known by ([`Stored::holds`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version(pub u64);

impl Version {
    pub fn of(cursor: &str, deleted: bool) -> Self {
        Self(fnv1a(cursor.as_bytes().iter().chain(&[u8::from(deleted)])))
    }

    /// The version Nango serves `record` at.
    pub fn of_record(record: &NangoRecord) -> Self {
        if record.is_pruned() {
            Self::of_cursor(record)
        } else {
            Self(record.content_digest())
        }
    }

    /// `record`'s cursor and whether it is deleted ([`Version::of`]).
    fn of_cursor(record: &NangoRecord) -> Self {
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

/// One stored record as a sweep or a re-read compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub id: String,
    /// Its cursor and whether it is deleted ([`Version::of`]).
    pub version: Version,
    /// The content digest it was last written whole with; `None` for an item written before
    /// digests were kept.
    pub content: Option<Version>,
    /// Not deleted: counted as Nango's `recordCount` counts.
    pub live: bool,
}

impl Stored {
    /// Whether the copy holds the record at `version` (as [`Version::of_record`] gives it).
    pub fn holds(&self, version: Version) -> bool {
        self.held().holds(version)
    }

    pub fn held(&self) -> Held {
        Held {
            version: self.version,
            content: self.content,
        }
    }
}

/// A stored record's versions without its id: what a re-read keeps of each in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub version: Version,
    pub content: Option<Version>,
}

impl Held {
    /// The versions a record is stored at once `record` is written (a pruned one keeps the
    /// content it had, unknown here).
    pub fn after_writing(record: &NangoRecord) -> Self {
        Self {
            version: Version::of_cursor(record),
            content: (!record.is_pruned()).then(|| Version(record.content_digest())),
        }
    }

    /// Whether this is the record at `version`: the same content, or the same cursor and
    /// deletion.
    pub fn holds(&self, version: Version) -> bool {
        self.content == Some(version) || self.version == version
    }
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

    /// A record's version is its content: served again under a new cursor it is the same; a
    /// pruned record, with no content left, goes by its cursor, which the copy also keeps.
    #[test]
    fn a_version_is_the_content_unless_pruned() {
        let a = record("a", "c1", false);
        assert_eq!(
            Version::of_record(&a),
            Version::of_record(&record("a", "c9", false))
        );
        assert_ne!(
            Version::of_record(&a),
            Version::of_record(&record("a", "c1", true))
        );
        let mut pruned = a.object();
        pruned["_nango_metadata"]["pruned_at"] = json!("2026-12-07T00:00:03+00:00");
        let pruned = NangoRecord::from_object(pruned).unwrap();
        assert_eq!(Version::of_record(&pruned), Version::of("c1", false));
        let stored = Stored {
            id: "a".into(),
            version: Version::of("c1", false),
            content: Some(Version::of_record(&a)),
            live: true,
        };
        assert!(stored.holds(Version::of_record(&a)) && stored.holds(Version::of_record(&pruned)));
        assert!(!stored.holds(Version::of_record(&record("a", "c1", true))));
        let before_digests = Stored {
            content: None,
            ..stored
        };
        assert!(before_digests.holds(Version::of_record(&pruned)));
        assert!(
            !before_digests.holds(Version::of_record(&a)),
            "told by content only"
        );
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
                    version: Version::of_record(&page[2]),
                    deleted: true
                },
                Seen {
                    id: "b".into(),
                    version: Version::of_record(&page[1]),
                    deleted: false
                },
            ]
        );
        assert_eq!(decode_notes(&encode_notes(&seen)).unwrap(), seen);
        let version = Version::of_record(&page[1]).0.to_le_bytes();
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
