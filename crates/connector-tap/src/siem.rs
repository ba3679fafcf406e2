//! Streaming parse of a `/v2/siem/all` answer: count records, never hold them. Memory stays
//! flat in the size of the answer: the bytes of one record at a time (plus one network chunk),
//! and the identities of the records that count (16 bytes each).
//!
//! The answer arrives in chunks. A small scanner walks the top-level object and its arrays,
//! finding where each record starts and ends (strings and escapes respected, chunk boundaries
//! anywhere), and each record is deserialized from its own borrowed slice with
//! `serde_json::from_slice`: the scan runs at memory speed (memchr inside strings) and serde only
//! sees the records, never a byte-at-a-time reader.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::io::Read;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};

/// What one SIEM window contributes to the KRIs: identities of the records that count.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WindowCounts {
    /// `messagesDelivered` records.
    pub delivered: HashSet<u128>,
    /// `clicksPermitted` records.
    pub clicks_permitted: HashSet<u128>,
    /// Delivered + blocked messages with an `impostor` classification (any case).
    pub impostor: HashSet<u128>,
    /// Records seen in the three counted arrays (before de-duplication), read or not.
    pub records: u64,
    /// Of those, records that are JSON but not a record kri can read (an object as `id`, a
    /// string as a record): skipped, counted here, never failing the window.
    pub unreadable: u64,
    /// Why the first unreadable record could not be read, and where.
    pub first_unreadable: Option<String>,
}

/// Why an answer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("the answer is not valid JSON at byte {offset}: {what}")]
    Syntax { offset: u64, what: String },
    #[error("the answer ended before it was complete (after {bytes} bytes)")]
    Truncated { bytes: u64 },
    #[error("the answer is not a SIEM answer (no queryEndTime and none of the record arrays)")]
    NotSiem,
    #[error("reading the answer failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Parse a whole answer from `reader` (tests, tools). Only a complete answer counts: an empty
/// body, a body cut short, or a JSON value that is not a SIEM answer is an error, never an empty
/// window. (An HTTP 204 is an empty window; the caller knows the status, not this.)
pub fn parse<R: Read>(mut reader: R) -> Result<WindowCounts, ParseError> {
    let mut parser = Parser::default();
    let mut chunk = vec![0u8; 256 * 1024];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => return parser.finish(),
            Ok(n) => parser.feed(&chunk[..n])?,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// [`parse`] of bytes already in memory, read in place.
pub fn parse_slice(bytes: &[u8]) -> Result<WindowCounts, ParseError> {
    Parser::with_batch(0).whole(bytes)
}

/// Which array of the answer a record is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Delivered,
    Blocked,
    ClicksPermitted,
    /// An array (or value) that does not count: skipped element by element, still checked.
    Other,
}

/// Where the parser is in the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening `{`.
    Start,
    /// After `{` or `,` at the top level: a key, or (after `{`) the closing `}`.
    Key { first: bool },
    /// After a key: `:`.
    Colon(Section),
    /// After `:`: the value (an array is read element by element).
    Value(Section),
    /// After a top-level value: `,` or `}`.
    AfterValue,
    /// After `[` (or `,` in the array): an element, or (when `first`) the closing `]`.
    Element { section: Section, first: bool },
    /// After an element: `,` or `]`.
    AfterElement(Section),
    /// After the closing `}`: only whitespace.
    Done,
}

/// Bytes gathered before parsing (a record cut by a chunk boundary is parsed again once whole;
/// gathering first keeps that rare).
const BATCH: usize = 256 * 1024;

/// The incremental parser: [`Parser::feed`] chunks as they arrive, then [`Parser::finish`].
///
/// The parser walks the top-level object and its arrays itself (a few punctuation bytes) and
/// hands every value to serde_json as a slice of the buffer: a record is deserialized straight
/// into [`Record`] (one pass over its bytes, the uncounted fields skipped), anything else is
/// checked with `IgnoredAny`. A value cut by the end of the buffer is parsed again when the
/// next chunk has arrived. Memory: one batch plus the record in progress.
#[derive(Debug)]
pub struct Parser {
    buf: Vec<u8>,
    /// Everything before this in `buf` is consumed.
    pos: usize,
    /// Bytes dropped from the front of `buf` so far (for offsets in errors).
    dropped: u64,
    state: State,
    recognised: bool,
    counts: WindowCounts,
    /// Bytes to gather before parsing.
    batch: usize,
    /// Bytes past `pos` to gather before parsing again: `batch`, or twice a value still cut
    /// by the end of the buffer, so a record of N bytes arriving in small chunks is parsed
    /// again O(log N) times, not once a chunk (a 20 MB record in 1 KB chunks took 40 s).
    need: usize,
    /// Passes over the buffer so far (a test counts them).
    passes: usize,
}

impl Default for Parser {
    fn default() -> Self {
        Self::with_batch(BATCH)
    }
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// One value parsed from the front of a slice: the value and how many bytes it took, or `None`
/// when the slice ends inside it (more bytes are needed).
fn one<'de, T: Deserialize<'de>>(bytes: &'de [u8], eof: bool) -> Result<Option<(T, usize)>, serde_json::Error> {
    // A number is the one value without an end of its own: it may go on in the next chunk until
    // a delimiter follows it.
    if !eof
        && matches!(bytes.first(), Some(b'-' | b'0'..=b'9'))
        && !bytes.iter().any(|b| matches!(b, b',' | b']' | b'}') || is_ws(*b))
    {
        return Ok(None);
    }
    let mut values = serde_json::Deserializer::from_slice(bytes).into_iter::<T>();
    match values.next() {
        Some(Ok(v)) => Ok(Some((v, values.byte_offset()))),
        // Cut by the end of the buffer: serde says "EOF", or, for a number cut inside a record
        // (`0.` of `0.0`), "invalid number" at the very end. Either way: wait for more bytes.
        Some(Err(e)) if !eof && (e.is_eof() || error_offset(bytes, &e) + 1 >= bytes.len()) => Ok(None),
        Some(Err(e)) => Err(e),
        None => Ok(None),
    }
}

/// Where in `bytes` serde_json reported `e` (it says line and column).
fn error_offset(bytes: &[u8], e: &serde_json::Error) -> usize {
    let line_start = if e.line() <= 1 {
        0
    } else {
        memchr::memchr_iter(b'\n', bytes)
            .nth(e.line() - 2)
            .map_or(bytes.len(), |i| i + 1)
    };
    line_start + e.column().saturating_sub(1)
}

impl Parser {
    /// A parser that parses once `batch` bytes are waiting (tests use 1 to split values at every
    /// byte; the default is [`BATCH`]).
    pub fn with_batch(batch: usize) -> Self {
        Self {
            buf: Vec::with_capacity(2 * batch.min(BATCH)),
            pos: 0,
            dropped: 0,
            state: State::Start,
            recognised: false,
            counts: WindowCounts::default(),
            batch,
            need: batch,
            passes: 0,
        }
    }

    /// Take the next chunk of the answer and count every record it completes.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), ParseError> {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.dropped += self.pos as u64;
            self.pos = 0;
        }
        self.buf.extend_from_slice(chunk);
        if self.buf.len() - self.pos < self.need {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let result = self.run(&buf, false);
        self.buf = buf;
        self.need = self.batch.max(2 * (self.buf.len() - self.pos));
        result
    }

    /// The counts, when the answer was complete and a SIEM answer.
    pub fn finish(mut self) -> Result<WindowCounts, ParseError> {
        let buf = std::mem::take(&mut self.buf);
        self.run(&buf, true)?;
        self.buf = buf;
        self.conclude()
    }

    /// The counts of a whole answer already in memory, read in place (no copy).
    fn whole(mut self, bytes: &[u8]) -> Result<WindowCounts, ParseError> {
        self.run(bytes, true)?;
        self.dropped = bytes.len() as u64;
        self.conclude()
    }

    fn conclude(self) -> Result<WindowCounts, ParseError> {
        match self.state {
            State::Done if self.recognised => Ok(self.counts),
            State::Done => Err(ParseError::NotSiem),
            _ => Err(ParseError::Truncated {
                bytes: self.dropped + self.buf.len() as u64,
            }),
        }
    }

    fn syntax(&self, at: usize, what: impl Into<String>) -> ParseError {
        ParseError::Syntax {
            offset: self.dropped + at as u64,
            what: what.into(),
        }
    }

    /// Advance through `data` (the buffer, or a whole answer) as far as it allows (`eof`: no
    /// more bytes will come).
    fn run(&mut self, data: &[u8], eof: bool) -> Result<(), ParseError> {
        self.passes += 1;
        loop {
            while self.pos < data.len() && is_ws(data[self.pos]) {
                self.pos += 1;
            }
            let Some(&b) = data.get(self.pos) else {
                return Ok(());
            };
            let at = self.pos;
            let next = match (self.state, b) {
                (State::Start, b'{') => Some(State::Key { first: true }),
                (State::Start, _) => return Err(self.syntax(at, "the answer is not a JSON object")),
                (State::Key { first: true }, b'}') => Some(State::Done),
                (State::Key { .. }, b'"') => {
                    let Some((key, used)) = self.value::<Cow<'_, str>>(data, eof, "a key")? else {
                        return Ok(());
                    };
                    let section = match key.as_ref() {
                        "messagesDelivered" => Section::Delivered,
                        "messagesBlocked" => Section::Blocked,
                        "clicksPermitted" => Section::ClicksPermitted,
                        _ => Section::Other,
                    };
                    let known = section != Section::Other || matches!(key.as_ref(), "queryEndTime" | "clicksBlocked");
                    self.recognised |= known;
                    self.pos += used;
                    self.state = State::Colon(section);
                    None
                }
                (State::Key { .. }, _) => return Err(self.syntax(at, "expected a key")),
                (State::Colon(section), b':') => Some(State::Value(section)),
                (State::Colon(_), _) => return Err(self.syntax(at, "expected `:`")),
                (State::Value(section), b'[') => Some(State::Element { section, first: true }),
                (State::Value(section), _) => {
                    if section != Section::Other && b != b'n' {
                        return Err(self.syntax(at, "a record array is neither an array nor null"));
                    }
                    let Some((_, used)) = self.value::<IgnoredAny>(data, eof, "a value")? else {
                        return Ok(());
                    };
                    self.pos += used;
                    self.state = State::AfterValue;
                    None
                }
                (State::AfterValue, b',') => Some(State::Key { first: false }),
                (State::AfterValue, b'}') => Some(State::Done),
                (State::AfterValue, _) => return Err(self.syntax(at, "expected `,` or `}`")),
                (State::Element { first: true, .. }, b']') => Some(State::AfterValue),
                (State::Element { section, .. }, _) => {
                    let used = if section == Section::Other {
                        match self.value::<IgnoredAny>(data, eof, "a value")? {
                            Some((_, used)) => used,
                            None => return Ok(()),
                        }
                    } else {
                        match self.record(data, section, eof)? {
                            Some(used) => used,
                            None => return Ok(()),
                        }
                    };
                    self.pos += used;
                    self.state = State::AfterElement(section);
                    None
                }
                (State::AfterElement(section), b',') => Some(State::Element { section, first: false }),
                (State::AfterElement(_), b']') => Some(State::AfterValue),
                (State::AfterElement(_), _) => return Err(self.syntax(at, "expected `,` or `]`")),
                (State::Done, _) => return Err(self.syntax(at, "trailing characters after the answer")),
            };
            if let Some(next) = next {
                self.pos += 1;
                self.state = next;
            }
        }
    }

    /// The value at `pos`, and its length; `None` when it is not all in `data` yet.
    fn value<'d, T: Deserialize<'d>>(
        &self,
        data: &'d [u8],
        eof: bool,
        what: &str,
    ) -> Result<Option<(T, usize)>, ParseError> {
        one(&data[self.pos..], eof).map_err(|e| self.syntax(self.pos, format!("{what}: {e}")))
    }

    /// Count the record at `pos`; its length, or `None` when it is not all in `data` yet. A
    /// value that is JSON but no readable record is skipped and counted as unreadable; only
    /// broken JSON fails the answer.
    fn record(&mut self, data: &[u8], section: Section, eof: bool) -> Result<Option<usize>, ParseError> {
        let bytes = &data[self.pos..];
        let why = match one::<Record<'_>>(bytes, eof) {
            Ok(Some((record, used))) => {
                count(&mut self.counts, section, &record, &bytes[..used]);
                return Ok(Some(used));
            }
            Ok(None) => return Ok(None),
            Err(why) => why,
        };
        let Some((_, used)) = self.value::<IgnoredAny>(data, eof, "a record")? else {
            return Ok(None);
        };
        self.counts.records += 1;
        self.counts.unreadable += 1;
        if self.counts.first_unreadable.is_none() {
            let at = self.dropped + self.pos as u64;
            self.counts.first_unreadable = Some(format!("the record at byte {at}: {why}"));
        }
        Ok(Some(used))
    }
}

/// Count one record of `section`.
fn count(counts: &mut WindowCounts, section: Section, record: &Record<'_>, raw: &[u8]) {
    counts.records += 1;
    let id = identity(record, section, raw);
    match section {
        Section::Delivered => {
            counts.delivered.insert(id);
            if record.impostor {
                counts.impostor.insert(id);
            }
        }
        Section::Blocked => {
            if record.impostor {
                counts.impostor.insert(id);
            }
        }
        Section::ClicksPermitted => {
            counts.clicks_permitted.insert(id);
        }
        Section::Other => {}
    }
}

/// The fields counting needs; everything else is skipped. Every field may be null or missing.
///
/// Read by hand rather than derived: keys are taken as bytes (no UTF-8 check, no copy when
/// there is no escape), ids and times as [`Text`] (a number where a string was expected is its
/// text), the impostor test runs while `threatsInfoMap` is read (nothing kept), and every other
/// field is skipped unread.
#[derive(Debug, Default)]
struct Record<'a> {
    id: Option<Cow<'a, [u8]>>,
    guid: Option<Cow<'a, [u8]>>,
    recipient: Option<Recipient<'a>>,
    /// `messageTime` on messages, `clickTime` on clicks.
    message_time: Option<Cow<'a, [u8]>>,
    click_time: Option<Cow<'a, [u8]>>,
    impostor: bool,
}

/// An array on messages, a string on clicks; anything else is ignored.
#[derive(Debug)]
enum Recipient<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
    Other,
}

/// The fields a record is read for.
enum Field {
    Id,
    Guid,
    Recipient,
    MessageTime,
    ClickTime,
    Threats,
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Field, E> {
                Ok(match v {
                    b"id" => Field::Id,
                    b"GUID" => Field::Guid,
                    b"recipient" => Field::Recipient,
                    b"messageTime" => Field::MessageTime,
                    b"clickTime" => Field::ClickTime,
                    b"threatsInfoMap" => Field::Threats,
                    _ => Field::Other,
                })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                self.visit_bytes(v.as_bytes())
            }
        }
        d.deserialize_bytes(V)
    }
}

/// A JSON string as its bytes, borrowed from the input when it has no escapes.
struct Bytes<'a>(Cow<'a, [u8]>);

impl<'de: 'a, 'a> Deserialize<'de> for Bytes<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Bytes<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_bytes<E: de::Error>(self, v: &'de [u8]) -> Result<Self::Value, E> {
                Ok(Bytes(Cow::Borrowed(v)))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
                Ok(Bytes(Cow::Owned(v.to_vec())))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Bytes(Cow::Borrowed(v.as_bytes())))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Bytes(Cow::Owned(v.as_bytes().to_vec())))
            }
        }
        d.deserialize_bytes(V(std::marker::PhantomData))
    }
}

/// A JSON string as its bytes, or a number as its text (a numeric `id` or classification is
/// read for what it says, not refused); anything else is an error (the record is unreadable).
struct Text<'a>(Cow<'a, [u8]>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v.as_bytes())))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.as_bytes().to_vec())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string().into_bytes())))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string().into_bytes())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string().into_bytes())))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Record<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Record<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a SIEM record (an object)")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut r = Record::default();
                while let Some(field) = map.next_key::<Field>()? {
                    match field {
                        Field::Id => r.id = map.next_value::<Option<Text<'a>>>()?.map(|t| t.0),
                        Field::Guid => r.guid = map.next_value::<Option<Text<'a>>>()?.map(|t| t.0),
                        Field::Recipient => r.recipient = map.next_value::<Option<Recipient<'a>>>()?,
                        Field::MessageTime => r.message_time = map.next_value::<Option<Text<'a>>>()?.map(|t| t.0),
                        Field::ClickTime => r.click_time = map.next_value::<Option<Text<'a>>>()?.map(|t| t.0),
                        Field::Threats => r.impostor = map.next_value::<Impostor>()?.0,
                        Field::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(r)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// Whether a `threatsInfoMap` (an array of threats, or null) holds a classification `impostor`
/// in any case.
struct Impostor(bool);

impl<'de> Deserialize<'de> for Impostor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Threats;
        impl<'de> Visitor<'de> for Threats {
            type Value = Impostor;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of threats, or null")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Impostor, E> {
                Ok(Impostor(false))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Impostor, A::Error> {
                let mut any = false;
                while let Some(t) = seq.next_element::<Impostor>()? {
                    any |= t.0;
                }
                Ok(Impostor(any))
            }
            // One threat: its classification.
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Impostor, A::Error> {
                let mut impostor = false;
                while let Some(key) = map.next_key::<Bytes<'_>>()? {
                    if key.0.as_ref() == b"classification" {
                        impostor = map
                            .next_value::<Option<Text<'_>>>()?
                            .is_some_and(|c| c.0.trim_ascii().eq_ignore_ascii_case(b"impostor"));
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Impostor(impostor))
            }
        }
        d.deserialize_any(Threats)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Recipient<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Recipient<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a recipient or a list of recipients")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Recipient::One(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Recipient::One(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut all = Vec::new();
                while let Some(r) = seq.next_element::<MaybeStr<'a>>()? {
                    all.extend(r.0);
                }
                Ok(Recipient::Many(all))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Recipient::Other)
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Recipient::Other)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Recipient::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Recipient::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Recipient::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Recipient::Other)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A string (borrowed from the input when it has no escapes), or nothing for any other value.
struct MaybeStr<'a>(Option<std::borrow::Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for MaybeStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = MaybeStr<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a recipient")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(std::borrow::Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(MaybeStr(Some(std::borrow::Cow::Owned(v.to_owned()))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(MaybeStr(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeStr(None))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Record identity: `id` + `GUID` + recipient when there is an `id` (a message to N recipients
/// is N records sharing a GUID). Without an `id`: `GUID` + recipient + the message's time
/// (`clickTime` for a click), so a message TAP sends again with its threat re-classified is
/// still one message. Only when those are missing too, a hash of the canonical record (keys
/// sorted), which is the same however the server orders its keys.
fn identity(record: &Record<'_>, section: Section, raw: &[u8]) -> u128 {
    fn nonempty<'b>(b: &'b Option<Cow<'_, [u8]>>) -> Option<&'b [u8]> {
        b.as_deref().filter(|b| !b.is_empty())
    }
    let time = match section {
        Section::ClicksPermitted => nonempty(&record.click_time),
        _ => nonempty(&record.message_time),
    };
    let mut h = Fnv128::new();
    match (nonempty(&record.id), nonempty(&record.guid), time) {
        (Some(id), _, _) => {
            h.write(b"id\0");
            h.write(id);
            h.write(b"\0");
            h.write(record.guid.as_deref().unwrap_or(b""));
            h.write(b"\0");
            recipients(record, &mut h);
        }
        (None, Some(guid), Some(time)) => {
            h.write(b"guid\0");
            h.write(guid);
            h.write(b"\0");
            recipients(record, &mut h);
            h.write(b"\0");
            h.write(time);
        }
        _ => {
            h.write(b"raw\0");
            match serde_json::from_slice::<serde_json::Value>(raw) {
                Ok(v) => canonical(&v, &mut h),
                Err(_) => h.write(raw),
            }
        }
    }
    h.finish()
}

fn recipients(record: &Record<'_>, h: &mut Fnv128) {
    match &record.recipient {
        Some(Recipient::One(r)) => h.write(r.as_bytes()),
        Some(Recipient::Many(rs)) => {
            for r in rs {
                h.write(r.as_bytes());
                h.write(b",");
            }
        }
        _ => {}
    }
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

    /// Regression: one record of N MB arriving in 1 KB chunks was parsed again from its start
    /// at every chunk (0.6 / 2.6 / 9.6 / 40 s CPU for 2 / 5 / 10 / 20 MB). Now the pending value
    /// must double before it is tried again: passes grow with log N, and the counts are exact.
    #[test]
    fn a_huge_record_in_small_chunks_is_parsed_a_few_times_not_once_a_chunk() {
        let big = "x".repeat(4 * 1024 * 1024);
        let answer = json!({
            "queryEndTime": "2026-11-23T10:00:00Z",
            "messagesDelivered": [
                {"GUID": "g1", "id": "a", "recipient": ["x@example.com"], "subject": big,
                 "threatsInfoMap": [{"classification": "phish", "threatID": "t"}]},
                {"GUID": "g2", "id": "b", "recipient": ["y@example.com"],
                 "threatsInfoMap": [{"classification": "phish", "threatID": "t"}]}
            ],
            "messagesBlocked": [], "clicksPermitted": [], "clicksBlocked": []
        })
        .to_string();
        let mut p = Parser::default();
        for c in answer.as_bytes().chunks(1024) {
            p.feed(c).unwrap();
        }
        let passes = p.passes;
        let counts = p.finish().unwrap();
        assert_eq!(counts.delivered.len(), 2);
        // 4 MB in 256 KB batches: about 16 passes for the bytes, a few for the doubling.
        assert!(passes < 40, "{passes} passes over 4,096 chunks");
    }

    /// Feed `bytes` in chunks of `size`.
    fn chunked(bytes: &[u8], size: usize) -> Result<WindowCounts, ParseError> {
        let mut p = Parser::with_batch(1);
        for c in bytes.chunks(size.max(1)) {
            p.feed(c)?;
        }
        p.finish()
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

    /// TAP sends a message again when its threat is re-classified; without an `id`, the
    /// message is GUID + recipient + time, whatever else changed.
    #[test]
    fn a_message_without_id_sent_again_reclassified_counts_once() {
        let first = json!({"GUID": "g1", "recipient": ["x@example.com"], "messageTime": "2026-11-23T09:10:00.000Z",
                           "threatsInfoMap": [{"classification": "spam", "threatStatus": "active"}]});
        let again = json!({"GUID": "g1", "recipient": ["x@example.com"], "messageTime": "2026-11-23T09:10:00.000Z",
                           "threatsInfoMap": [{"classification": "impostor", "threatStatus": "active"}],
                           "spamScore": 100});
        let other_recipient = json!({"GUID": "g1", "recipient": ["y@example.com"],
                                     "messageTime": "2026-11-23T09:10:00.000Z"});
        let c = counts(json!({"messagesDelivered": [first, again, other_recipient]}));
        assert_eq!((c.records, c.delivered.len(), c.impostor.len()), (3, 2, 1));
        // A click without id: GUID + recipient + click time; two clicks are two.
        let clicks = counts(json!({"clicksPermitted": [
            {"GUID": "g1", "recipient": "x@example.com", "clickTime": "t1", "url": "http://a", "threatStatus": "active"},
            {"GUID": "g1", "recipient": "x@example.com", "clickTime": "t1", "url": "http://a", "threatStatus": "cleared"},
            {"GUID": "g1", "recipient": "x@example.com", "clickTime": "t2", "url": "http://a"}]}));
        assert_eq!(clicks.clicks_permitted.len(), 2);
        // The bytes hashed are pinned (identities are stored across runs).
        let mut h = Fnv128::new();
        h.write(b"guid\x00g1\x00x@example.com,\x002026-11-23T09:10:00.000Z");
        assert!(c.delivered.contains(&h.finish()));
    }

    #[test]
    fn numbers_where_text_was_expected_are_read_as_text() {
        let c = counts(json!({"messagesDelivered": [
            {"id": 12345, "GUID": 678, "recipient": ["x@y"], "threatsInfoMap": [{"classification": 3}]},
            {"id": "12345", "GUID": "678", "recipient": ["x@y"]}]}));
        assert_eq!((c.records, c.unreadable, c.delivered.len()), (2, 0, 1), "{c:?}");
        let mut h = Fnv128::new();
        h.write(b"id\x0012345\x00678\x00x@y,");
        assert!(c.delivered.contains(&h.finish()));
    }

    /// A record kri cannot read is skipped and counted; the window still counts the others.
    /// Only an answer that is not JSON fails.
    #[test]
    fn an_unreadable_record_is_skipped_and_counted_not_failing_the_window() {
        let text = r#"{"queryEndTime":"x","messagesDelivered":[
            {"id":"a","GUID":"g"},
            {"id":{"nested":true},"GUID":"g"},
            "a string where a record goes",
            42,
            {"id":"b","threatsInfoMap":"impostor"},
            {"id":"c","messageTime":[1]},
            {"id":"d","threatsInfoMap":[{"classification":"impostor"}]}
        ],"clicksPermitted":[[1,2],{"id":"e"}]}"#;
        for size in [1, 7, 4096] {
            let c = chunked(text.as_bytes(), size).unwrap();
            assert_eq!(
                (
                    c.records,
                    c.unreadable,
                    c.delivered.len(),
                    c.impostor.len(),
                    c.clicks_permitted.len()
                ),
                (9, 6, 2, 1, 1),
                "chunks of {size}"
            );
            let why = c.first_unreadable.unwrap();
            assert!(
                why.starts_with("the record at byte ") && why.contains("string or a number"),
                "{why}"
            );
        }
        assert!(parse(&br#"{"messagesDelivered":[{"id":{"x":}]}"#[..]).is_err());
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

    /// Identities are stored: they must not change between versions (or the facts carry a new
    /// shape version). This pins the bytes that are hashed.
    #[test]
    fn identities_hash_id_guid_and_recipients_as_stored() {
        let c = counts(json!({"messagesDelivered": [{"recipient": ["x@y", "z@y"], "GUID": "g", "id": "a"}]}));
        let mut h = Fnv128::new();
        h.write(b"id\0a\0g\0x@y,z@y,");
        assert_eq!(c.delivered.into_iter().collect::<Vec<_>>(), vec![h.finish()]);
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

    #[test]
    fn a_number_cut_inside_a_record_waits_for_the_rest() {
        let text = r#"{"queryEndTime":"x","messagesDelivered":[{"id":"a","impostorScore":0.25,"n":-12e3}]}"#;
        for cut in 1..text.len() {
            let mut p = Parser::with_batch(1);
            p.feed(&text.as_bytes()[..cut])
                .unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            p.feed(&text.as_bytes()[cut..]).unwrap();
            assert_eq!(p.finish().unwrap().delivered.len(), 1, "cut at {cut}");
        }
    }

    /// Every chunking of an answer gives the counts of the whole: records, keys, strings and
    /// escapes split at every possible byte.
    #[test]
    fn records_split_across_chunk_boundaries_count_the_same() {
        let text = generated(40, 7);
        let whole = parse_slice(text.as_bytes()).unwrap();
        assert!(whole.records > 0 && !whole.delivered.is_empty());
        for size in [1, 2, 3, 5, 7, 11, 64, 333, 4096] {
            assert_eq!(chunked(text.as_bytes(), size).unwrap(), whole, "chunks of {size}");
        }
    }

    /// The scanner and a plain `serde_json::Value` reading agree on generated answers (nulls,
    /// escapes, braces inside strings, odd key spellings, recipients as strings, arrays, null,
    /// numbers, unknown keys and skipped arrays).
    #[test]
    fn differential_against_a_value_reference_parser() {
        for seed in 1..=60 {
            let text = generated(25, seed);
            let got = chunked(text.as_bytes(), 1 + (seed as usize * 37) % 500)
                .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{text}"));
            let want = reference(&text);
            assert_eq!(
                (
                    got.records,
                    got.unreadable,
                    got.delivered.len(),
                    got.clicks_permitted.len(),
                    got.impostor.len()
                ),
                want,
                "seed {seed}: {text}"
            );
        }
    }

    /// (records, unreadable, distinct delivered, distinct clicks permitted, distinct impostor),
    /// read the simple way: the whole answer as a `Value`, identities as strings.
    fn reference(text: &str) -> (u64, u64, usize, usize, usize) {
        use serde_json::Value;
        let v: Value = serde_json::from_str(text).unwrap();
        // A string, or a number's text; `Err` for what no record holds there.
        let text = |r: &Value, key: &str| -> Result<Option<String>, ()> {
            match r.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Number(n)) => Ok(Some(n.to_string())),
                Some(_) => Err(()),
            }
        };
        let readable = |r: &Value| {
            r.is_object()
                && ["id", "GUID", "messageTime", "clickTime"]
                    .iter()
                    .all(|k| text(r, k).is_ok())
                && match r.get("threatsInfoMap") {
                    None | Some(Value::Null) => true,
                    Some(Value::Array(ts)) => ts.iter().all(|t| t.is_object() && text(t, "classification").is_ok()),
                    Some(_) => false,
                }
        };
        let identity = |r: &Value, time_key: &str| -> String {
            let nonempty = |k: &str| text(r, k).unwrap().filter(|s| !s.is_empty());
            let recipients = match r.get("recipient") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).map(|s| format!("{s},")).collect(),
                _ => String::new(),
            };
            match (nonempty("id"), nonempty("GUID"), nonempty(time_key)) {
                (Some(id), _, _) => {
                    let guid = nonempty("GUID").unwrap_or_default();
                    format!("id\0{id}\0{guid}\0{recipients}")
                }
                (None, Some(guid), Some(time)) => format!("guid\0{guid}\0{recipients}\0{time}"),
                _ => format!("raw\0{r}"),
            }
        };
        let impostor = |r: &Value| {
            r.get("threatsInfoMap")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|t| {
                    text(t, "classification")
                        .unwrap()
                        .is_some_and(|c| c.trim().eq_ignore_ascii_case("impostor"))
                })
        };
        let (mut records, mut unreadable) = (0, 0);
        let (mut delivered, mut clicks, mut bec) = (HashSet::new(), HashSet::new(), HashSet::new());
        for (key, set) in [("messagesDelivered", 0), ("messagesBlocked", 1), ("clicksPermitted", 2)] {
            for r in v.get(key).and_then(Value::as_array).into_iter().flatten() {
                records += 1;
                if !readable(r) {
                    unreadable += 1;
                    continue;
                }
                let id = identity(r, if set == 2 { "clickTime" } else { "messageTime" });
                match set {
                    0 => {
                        if impostor(r) {
                            bec.insert(id.clone());
                        }
                        delivered.insert(id);
                    }
                    1 => {
                        if impostor(r) {
                            bec.insert(id);
                        }
                    }
                    _ => {
                        clicks.insert(id);
                    }
                }
            }
        }
        (records, unreadable, delivered.len(), clicks.len(), bec.len())
    }

    /// A deterministic answer of `n` records per array, varied by `seed`.
    fn generated(n: u64, seed: u64) -> String {
        let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut next = move |m: u64| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) % m
        };
        let ws = |k: u64| [" ", "", "\n  ", "\t"][k as usize % 4];
        let mut out = format!(
            "{{{}\"queryEndTime\"{}:{}\"2026-11-23T10:00:00Z\",",
            ws(seed),
            ws(seed + 1),
            ws(seed + 2)
        );
        out.push_str("\"unknown\": {\"nested\": [1, {\"a\": \"}]\\\"\"}], \"n\": null},");
        out.push_str("\"numbers\": [1, -22, 3.5e2, 4444, true, null],");
        for (ai, array) in [
            "messagesDelivered",
            "messagesBlocked",
            "clicksPermitted",
            "clicksBlocked",
        ]
        .iter()
        .enumerate()
        {
            if next(7) == 0 {
                out.push_str(&format!("\"{array}\": null,"));
                continue;
            }
            out.push_str(&format!("\"{array}\" : ["));
            for i in 0..n {
                if i > 0 {
                    out.push_str(&format!(",{}", ws(next(4))));
                }
                let id = match next(12) {
                    0..=2 => "null".to_owned(),
                    3 => "\"\"".to_owned(),
                    4 => format!("{}", next(n / 2 + 1)),
                    5 if next(4) == 0 => "{\"odd\": [1]}".to_owned(),
                    _ => format!("\"id-{}\"", next(n / 2 + 1)),
                };
                let time_key = if ai < 2 { "messageTime" } else { "clickTime" };
                let time = match next(4) {
                    0 => "null".to_owned(),
                    1 => "1700000000".to_owned(),
                    _ => format!("\"2026-11-23T09:{:02}:00Z\"", next(3)),
                };
                let recipient = match next(6) {
                    0 => "null".to_owned(),
                    1 => "\"solo@example.com\"".to_owned(),
                    2 => "7".to_owned(),
                    3 => "[\"a@x.com\", null, 3]".to_owned(),
                    _ => format!("[\"r{}@example.com\"]", next(3)),
                };
                let class = ["\"phish\"", "\"IMPOSTOR\"", "\"Impostor \"", "7", "\"impostor\""][next(5) as usize];
                let threat_key = if next(2) == 0 { "threatID" } else { "threatId" };
                let threats = match next(4) {
                    0 => "null".to_owned(),
                    _ => format!("[{{\"{threat_key}\": \"t\\u00e9{i}\", \"classification\": {class}}}]"),
                };
                let subject = [
                    "plain",
                    "with \\\"quotes\\\" and } braces {",
                    "back\\\\slash",
                    "\\u2603 snow",
                ][next(4) as usize];
                let fields = [
                    format!("\"id\": {id}"),
                    format!("\"GUID\": \"g{}\"", next(4)),
                    format!("\"{time_key}\": {time}"),
                    format!("\"recipient\": {recipient}"),
                    format!("\"subject\": \"{subject}\""),
                    format!("\"threatsInfoMap\": {threats}"),
                    format!("\"spamScore\": {}", next(100)),
                    format!(
                        "\"completelyRewritten\": {}",
                        ["true", "\"true\"", "null"][next(3) as usize]
                    ),
                    format!("\"messageParts\": [{{\"md5\": \"{}\", \"n\": [[], {{}}]}}]", next(1000)),
                ];
                let mut order: Vec<&String> = fields.iter().collect();
                let k = next(fields.len() as u64) as usize;
                order.rotate_left(k);
                let body: Vec<String> = order.iter().map(|f| f.to_string()).collect();
                out.push_str(&format!("{{{}{}}}", ws(next(4)), body.join(",")));
            }
            out.push(']');
            out.push_str(if ai < 3 { "," } else { "" });
        }
        if out.ends_with(',') {
            out.pop();
        }
        out.push_str(&format!("{}}}", ws(seed + 3)));
        out
    }
}
