//! DynamoDB's JSON wire form (`{"S":"…"}`, `{"N":"…"}`, `{"M":{…}}`…), written straight from a
//! record's JSON text: one pass over the text, no object and no `AttributeValue` tree built in
//! between (building both, then the SDK's serialization of the tree, was most of the worker's
//! CPU; see BENCHMARKS.md).
//!
//! The form matches serde_dynamo's (the tests pin it): strings as S, numbers as N written as Rust
//! prints them (integers as their digits, floats in plain decimal), booleans as BOOL, null as
//! NULL, arrays as L, objects as M.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Why a text was not written in the native form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A number DynamoDB's number type cannot hold (magnitude 1e-130 to below 1e126, or zero):
    /// the record is stored compressed instead, so it is kept exactly rather than refused.
    Number,
    /// An object gives a key twice: DynamoDB would refuse the map. The object as a JSON map
    /// reads it (the last occurrence wins) writes without the duplicate.
    DuplicateKey,
    /// Not JSON: the records' texts were read as JSON when they were made, so never seen there.
    NotJson,
}

/// Writes the JSON value in `json` to `out` as a DynamoDB attribute value. On a refusal, what was
/// written of it is left in `out`: the caller truncates.
pub fn write_value(json: &str, out: &mut Vec<u8>) -> Result<(), Refusal> {
    let mut refusal = None;
    // Room for a record's keys at all depths: one allocation, where most records need no more.
    let mut keys = Vec::with_capacity(32);
    let mut de = serde_json::Deserializer::from_str(json);
    let seed = Attribute {
        out,
        refusal: &mut refusal,
        keys: &mut keys,
    };
    match seed.deserialize(&mut de).and_then(|()| de.end()) {
        Ok(()) => Ok(()),
        Err(_) => Err(refusal.unwrap_or(Refusal::NotJson)),
    }
}

/// `text` as a JSON string: quoted and escaped. Most texts written here (attribute names,
/// cursors, timestamps) hold nothing to escape, and are copied as they are.
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    // What JSON escapes, as serde_json does: the quote, the backslash, control characters.
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(out, text).expect("writing to a Vec cannot fail");
    }
}

/// A string read from a JSON text, written back as a JSON string. One the reader could borrow
/// from the text had no escapes there, and so holds nothing to escape (JSON allows no raw quote,
/// backslash or control character in a string): it is copied as it is, unscanned.
fn write_read_str(out: &mut Vec<u8>, text: &str, borrowed: bool) {
    if borrowed {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        write_str(out, text);
    }
}

/// Writes one value as an attribute value as it is read.
struct Attribute<'o, 'de> {
    out: &'o mut Vec<u8>,
    refusal: &'o mut Option<Refusal>,
    /// The keys of the objects being written, the innermost last: one stack for the whole
    /// value, so that an object does not allocate a list of its own to find a duplicate key.
    keys: &'o mut Vec<Cow<'de, str>>,
}

impl<'de> Attribute<'_, 'de> {
    /// The seed for a value inside this one.
    fn inner(&mut self) -> Attribute<'_, 'de> {
        Attribute {
            out: &mut *self.out,
            refusal: &mut *self.refusal,
            keys: &mut *self.keys,
        }
    }

    fn refuse<E: serde::de::Error>(self, why: Refusal) -> Result<(), E> {
        *self.refusal = Some(why);
        Err(E::custom("not writable as a DynamoDB attribute value"))
    }

    fn string(self, text: &str, borrowed: bool) {
        self.out.extend_from_slice(br#"{"S":"#);
        write_read_str(self.out, text, borrowed);
        self.out.push(b'}');
    }

    fn number(self, digits: &str) {
        self.out.extend_from_slice(br#"{"N":""#);
        self.out.extend_from_slice(digits.as_bytes());
        self.out.extend_from_slice(br#""}"#);
    }
}

impl<'de> DeserializeSeed<'de> for Attribute<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Attribute<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.out.extend_from_slice(br#"{"NULL":true}"#);
        Ok(())
    }

    fn visit_bool<E>(self, b: bool) -> Result<(), E> {
        self.out.extend_from_slice(if b {
            br#"{"BOOL":true}"#
        } else {
            br#"{"BOOL":false}"#
        });
        Ok(())
    }

    fn visit_u64<E>(self, n: u64) -> Result<(), E> {
        self.number(itoa::Buffer::new().format(n));
        Ok(())
    }

    fn visit_i64<E>(self, n: i64) -> Result<(), E> {
        self.number(itoa::Buffer::new().format(n));
        Ok(())
    }

    fn visit_f64<E: serde::de::Error>(self, f: f64) -> Result<(), E> {
        if f != 0.0 && !(1e-130..1e126).contains(&f.abs()) {
            return self.refuse(Refusal::Number);
        }
        self.number(&f.to_string());
        Ok(())
    }

    fn visit_borrowed_str<E>(self, text: &'de str) -> Result<(), E> {
        self.string(text, true);
        Ok(())
    }

    fn visit_str<E>(self, text: &str) -> Result<(), E> {
        self.string(text, false);
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.out.extend_from_slice(br#"{"L":["#);
        let mut first = true;
        loop {
            if !first {
                self.out.push(b',');
            }
            if seq.next_element_seed(self.inner())?.is_none() {
                break;
            }
            first = false;
        }
        // The loop wrote a comma before looking for an element that was not there.
        if !first {
            self.out.pop();
        }
        self.out.extend_from_slice(b"]}");
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.out.extend_from_slice(br#"{"M":{"#);
        // This object's keys go on the stack above its parents'; its values' own objects push
        // theirs above and take them off again before the next key.
        let base = self.keys.len();
        while let Some(key) = map.next_key_seed(Key)? {
            if self.keys.len() > base {
                self.out.push(b',');
            }
            write_read_str(self.out, &key, matches!(key, Cow::Borrowed(_)));
            self.out.push(b':');
            self.keys.push(key);
            map.next_value_seed(self.inner())?;
        }
        let keys = &mut self.keys[base..];
        keys.sort_unstable();
        let duplicate = keys.windows(2).any(|pair| pair[0] == pair[1]);
        self.keys.truncate(base);
        if duplicate {
            return self.refuse(Refusal::DuplicateKey);
        }
        self.out.extend_from_slice(b"}}");
        Ok(())
    }
}

/// An object's key, borrowed from the text unless it had escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_owned()))
    }
}

/// The item a `{"name":{"S":…},…}` text describes (or a put request's item, or a delete request's
/// key), as the SDK's types: for tests, to compare what was written with what the SDK would send.
#[cfg(any(test, feature = "test-util"))]
pub fn item_from_wire(
    json: &[u8],
) -> Result<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>, String> {
    use aws_sdk_dynamodb::types::AttributeValue;
    use serde_json::Value;
    fn attribute(value: &Value) -> Result<AttributeValue, String> {
        let Some((kind, inner)) = value.as_object().and_then(|m| m.iter().next()) else {
            return Err(format!("not an attribute value: {value}"));
        };
        let text = || inner.as_str().map(str::to_owned).ok_or("not a string");
        Ok(match kind.as_str() {
            "S" => AttributeValue::S(text()?),
            "N" => AttributeValue::N(text()?),
            "B" => {
                use base64::Engine;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text()?)
                    .map_err(|e| e.to_string())?;
                AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(bytes))
            }
            "BOOL" => AttributeValue::Bool(inner.as_bool().ok_or("not a bool")?),
            "NULL" => AttributeValue::Null(true),
            "L" => AttributeValue::L(
                inner
                    .as_array()
                    .ok_or("not a list")?
                    .iter()
                    .map(attribute)
                    .collect::<Result<_, _>>()?,
            ),
            "M" => AttributeValue::M(map(inner)?),
            other => return Err(format!("unknown attribute type {other}")),
        })
    }
    fn map(value: &Value) -> Result<std::collections::HashMap<String, AttributeValue>, String> {
        value
            .as_object()
            .ok_or("not a map")?
            .iter()
            .map(|(k, v)| Ok((k.clone(), attribute(v)?)))
            .collect()
    }
    let value: Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let item = value
        .pointer("/PutRequest/Item")
        .or_else(|| value.pointer("/DeleteRequest/Key"))
        .unwrap_or(&value);
    map(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(json: &str) -> Result<String, Refusal> {
        let mut out = Vec::new();
        write_value(json, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn writes_each_kind_of_value() {
        assert_eq!(
            wire(r#"{"s":"a\"b","n":[1,-2,1.5,0.0],"b":true,"z":null,"e":{},"l":[]}"#).unwrap(),
            r#"{"M":{"s":{"S":"a\"b"},"n":{"L":[{"N":"1"},{"N":"-2"},{"N":"1.5"},{"N":"0"}]},"b":{"BOOL":true},"z":{"NULL":true},"e":{"M":{}},"l":{"L":[]}}}"#
        );
        assert_eq!(wire(r#""\u00e9""#).unwrap(), r#"{"S":"é"}"#);
        // Unescaped on reading, escaped again on writing; plain text copied as it is.
        assert_eq!(
            wire(r#"{"a\nb":"\"q\" \u0001 \/","zoë 🚀":"zoë 🚀"}"#).unwrap(),
            r#"{"M":{"a\nb":{"S":"\"q\" \u0001 /"},"zoë 🚀":{"S":"zoë 🚀"}}}"#
        );
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for text in [
            "plain",
            "",
            "caf\u{e9} \u{1f600}",
            "a\"b",
            "back\\slash",
            "tab\tnew\nline\u{1}",
            "\u{7f}",
        ] {
            let mut out = Vec::new();
            write_str(&mut out, text);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(text).unwrap()
            );
        }
    }

    #[test]
    fn refuses_what_dynamodb_would() {
        assert_eq!(wire(r#"{"n":1e300}"#), Err(Refusal::Number));
        assert_eq!(wire(r#"[1e-131]"#), Err(Refusal::Number));
        assert_eq!(
            wire(r#"{"a":1,"b":{"k":1,"k":2}}"#),
            Err(Refusal::DuplicateKey)
        );
        assert_eq!(wire(r#"{"\u0061":1,"a":2}"#), Err(Refusal::DuplicateKey));
        assert_eq!(wire(r#"{"a":1"#), Err(Refusal::NotJson));
        assert_eq!(wire(r#"1 2"#), Err(Refusal::NotJson));
        assert_eq!(wire(r#"[{"k":1,"k":2}]"#), Err(Refusal::DuplicateKey));
        assert_eq!(
            wire(r#"{"a":{"b":1},"b":2,"a":3}"#),
            Err(Refusal::DuplicateKey),
            "a duplicate after a nested object"
        );
    }

    /// The objects of one value share a stack of keys: a key an object shares with its parent,
    /// its siblings or an object in an array is no duplicate.
    #[test]
    fn keys_in_different_objects_are_no_duplicates() {
        let json = r#"{"a":{"a":1},"b":[{"a":1},{"a":2}],"c":{"x":{"x":{}}},"d":{"x":1},"x":0}"#;
        let written = wire(json).unwrap();
        let item = item_from_wire(format!(r#"{{"v":{written}}}"#).as_bytes()).unwrap();
        let back: serde_json::Value =
            serde_dynamo::from_attribute_value(item["v"].clone()).unwrap();
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(json).unwrap()
        );
    }
}
