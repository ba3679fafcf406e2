//! Streaming parse of a `/v2/siem/all` answer: count records, never hold them. Memory stays
//! flat in the size of the answer: one record at a time, plus the identities of the records
//! that count (16 bytes each).

use std::collections::HashSet;
use std::fmt;
use std::io::Read;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// What one SIEM window contributes to the KRIs: identities of the records that count.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WindowCounts {
    /// `messagesDelivered` records.
    pub delivered: HashSet<u128>,
    /// `clicksPermitted` records.
    pub clicks_permitted: HashSet<u128>,
    /// Delivered + blocked messages with an `impostor` classification (any case).
    pub impostor: HashSet<u128>,
    /// Records seen in all arrays (before de-duplication).
    pub records: u64,
}

/// Parse a whole answer from `reader`. Only a complete answer counts: an empty body, a body cut
/// short, or a JSON object that is not a SIEM answer (none of `queryEndTime`,
/// `messagesDelivered`, `messagesBlocked`, `clicksPermitted`, `clicksBlocked`) is an error, never
/// an empty window. (An HTTP 204 is an empty window; the caller knows the status, not this.)
pub fn parse<R: Read>(reader: R) -> Result<WindowCounts, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_reader(reader);
    let mut counts = WindowCounts::default();
    (&mut de).deserialize_map(Answer(&mut counts))?;
    de.end()?;
    Ok(counts)
}

#[derive(Clone, Copy)]
enum Array {
    Delivered,
    Blocked,
    ClicksPermitted,
}

struct Answer<'a>(&'a mut WindowCounts);

impl<'de> Visitor<'de> for Answer<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a SIEM answer object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut recognised = false;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            let array = match key.as_ref() {
                "messagesDelivered" => Array::Delivered,
                "messagesBlocked" => Array::Blocked,
                "clicksPermitted" => Array::ClicksPermitted,
                other => {
                    recognised |= matches!(other, "queryEndTime" | "clicksBlocked");
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            recognised = true;
            map.next_value_seed(Records { counts: self.0, array })?;
        }
        if recognised {
            Ok(())
        } else {
            Err(de::Error::custom(
                "the answer is not a SIEM answer (no queryEndTime and none of the record arrays)",
            ))
        }
    }
}

struct Records<'a> {
    counts: &'a mut WindowCounts,
    array: Array,
}

impl<'de> DeserializeSeed<'de> for Records<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Records<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of SIEM records, or null")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            self.counts.records += 1;
            let record: Record = serde_json::from_str(raw.get()).map_err(de::Error::custom)?;
            let id = identity(&record, &raw);
            match self.array {
                Array::Delivered => {
                    self.counts.delivered.insert(id);
                    if record.is_impostor() {
                        self.counts.impostor.insert(id);
                    }
                }
                Array::Blocked => {
                    if record.is_impostor() {
                        self.counts.impostor.insert(id);
                    }
                }
                Array::ClicksPermitted => {
                    self.counts.clicks_permitted.insert(id);
                }
            }
        }
        Ok(())
    }
}

/// The fields counting needs; everything else is skipped. Every field may be null or missing.
#[derive(Debug, Deserialize)]
struct Record<'a> {
    #[serde(default, borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, rename = "GUID", borrow)]
    guid: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    recipient: Option<Recipient>,
    #[serde(default, rename = "threatsInfoMap")]
    threats: Option<Vec<ThreatInfo>>,
}

/// An array on messages, a string on clicks.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Recipient {
    One(String),
    Many(Vec<Option<String>>),
    Other(IgnoredAny),
}

#[derive(Debug, Deserialize)]
struct ThreatInfo {
    #[serde(default)]
    classification: Option<String>,
}

impl Record<'_> {
    fn is_impostor(&self) -> bool {
        self.threats.iter().flatten().any(|t| {
            t.classification
                .as_deref()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case("impostor"))
        })
    }
}

/// Record identity: `id` + `GUID` + recipient when there is an `id` (a message to N recipients
/// is N records sharing a GUID); otherwise a hash of the canonical record (keys sorted), which is
/// the same however the server orders its keys.
fn identity(record: &Record<'_>, raw: &RawValue) -> u128 {
    let mut h = Fnv128::new();
    match &record.id {
        Some(id) if !id.is_empty() => {
            h.write(b"id\0");
            h.write(id.as_bytes());
            h.write(b"\0");
            h.write(record.guid.as_deref().unwrap_or("").as_bytes());
            h.write(b"\0");
            match &record.recipient {
                Some(Recipient::One(r)) => h.write(r.as_bytes()),
                Some(Recipient::Many(rs)) => {
                    for r in rs.iter().flatten() {
                        h.write(r.as_bytes());
                        h.write(b",");
                    }
                }
                _ => {}
            }
        }
        _ => {
            h.write(b"raw\0");
            match serde_json::from_str::<serde_json::Value>(raw.get()) {
                Ok(v) => canonical(&v, &mut h),
                Err(_) => h.write(raw.get().as_bytes()),
            }
        }
    }
    h.finish()
}

fn canonical(v: &serde_json::Value, h: &mut Fnv128) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            h.write(b"{");
            for k in keys {
                h.write(k.as_bytes());
                h.write(b":");
                canonical(&m[k], h);
                h.write(b",");
            }
            h.write(b"}");
        }
        Value::Array(a) => {
            h.write(b"[");
            for x in a {
                canonical(x, h);
                h.write(b",");
            }
            h.write(b"]");
        }
        other => h.write(other.to_string().as_bytes()),
    }
}

/// FNV-1a, 128 bits: stable across Rust versions and machines (unlike `DefaultHasher`), which
/// matters because identities are stored and compared across runs.
struct Fnv128(u128);

impl Fnv128 {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    fn new() -> Self {
        Self(Self::OFFSET)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u128::from(*b);
            self.0 = self.0.wrapping_mul(Self::PRIME);
        }
    }
    fn finish(&self) -> u128 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn counts(v: serde_json::Value) -> WindowCounts {
        parse(v.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn multi_recipient_messages_count_once_per_recipient_record() {
        let c = counts(json!({
            "queryEndTime": "2026-11-23T10:00:00Z",
            "messagesDelivered": [
                {"GUID": "g1", "id": "a", "recipient": ["x@example.com"], "threatsInfoMap": [{"classification": "phish", "threatID": "t"}]},
                {"GUID": "g1", "id": "b", "recipient": ["y@example.com"], "threatsInfoMap": [{"classification": "phish", "threatId": "t"}]},
                {"GUID": "g1", "id": "b", "recipient": ["y@example.com"], "threatsInfoMap": [{"classification": "phish"}]}
            ],
            "messagesBlocked": [], "clicksPermitted": [], "clicksBlocked": []
        }));
        assert_eq!(
            c.delivered.len(),
            2,
            "same GUID, two recipients; the repeated record counts once"
        );
        assert_eq!(c.records, 3);
    }

    #[test]
    fn impostor_is_any_case_in_delivered_and_blocked() {
        let c = counts(json!({
            "messagesDelivered": [{"id": "d", "threatsInfoMap": [{"classification": "IMPOSTOR"}]}],
            "messagesBlocked": [
                {"id": "b1", "threatsInfoMap": [{"classification": "malware"}, {"classification": "Impostor"}]},
                {"id": "b2", "threatsInfoMap": [{"classification": "spam"}]},
                {"id": "b3", "threatsInfoMap": null}
            ]
        }));
        assert_eq!(c.impostor.len(), 2);
        assert_eq!(c.delivered.len(), 1);
    }

    #[test]
    fn records_without_id_are_identified_by_their_canonical_content() {
        let a = counts(json!({"clicksPermitted": [{"url": "http://x", "clickTime": "t1", "GUID": null}]}));
        let b = parse(br#"{"clicksPermitted":[{"GUID":null,"clickTime":"t1","url":"http://x"}]}"#.as_slice()).unwrap();
        assert_eq!(
            a.clicks_permitted, b.clicks_permitted,
            "key order does not change the identity"
        );
        let c = counts(
            json!({"clicksPermitted": [{"url": "http://x", "clickTime": "t2"}, {"url": "http://x", "clickTime": "t1"}]}),
        );
        assert_eq!(c.clicks_permitted.len(), 2);
    }

    #[test]
    fn nulls_missing_arrays_and_odd_types_are_tolerated() {
        let c = counts(json!({"messagesDelivered": null, "clicksPermitted": [{"id": null, "recipient": 5}]}));
        assert_eq!((c.delivered.len(), c.clicks_permitted.len()), (0, 1));
        let empty = json!({"queryEndTime": "2026-11-23T10:00:00Z", "messagesDelivered": [], "messagesBlocked": [],
                           "clicksPermitted": [], "clicksBlocked": []});
        assert_eq!(counts(empty), WindowCounts::default());
    }

    #[test]
    fn an_empty_body_or_a_json_that_is_no_siem_answer_is_an_error_not_an_empty_window() {
        for bad in [
            &b""[..],
            b"   ",
            b"{}",
            br#"{"error": "upstream busy"}"#,
            b"[]",
            b"null",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_truncated_answer_is_an_error_not_a_smaller_count() {
        assert!(parse(&br#"{"messagesDelivered":[{"id":"a"},"#[..]).is_err());
        assert!(parse(&b"<html>oops</html>"[..]).is_err());
    }

    #[test]
    fn fnv128_matches_the_reference_vectors() {
        let mut h = Fnv128::new();
        h.write(b"");
        assert_eq!(h.finish(), 0x6c62272e07bb014262b821756295c58d);
        let mut h = Fnv128::new();
        h.write(b"a");
        assert_eq!(h.finish(), 0xd228cb696f1a8caf78912b704e4a8964);
    }
}
