//! A route's compiled plan: Avro bytes -> the destination event's JSON bytes, for a whole batch
//! in one call, with the GIL released while it works.
//!
//! The reference is `RoutePipeline.process` (streams/pipeline/transform.py). The plan produces a
//! payload only when it reproduces Python byte for byte; every other record (a rejection, a
//! filter, a value it cannot decide) is handed back and the caller runs the Python pipeline for
//! it, so rejections and filters are Python's by construction. Values the plan cannot decide but
//! that recur (a country name with diacritics, an IP address, an unusual phone format) are asked
//! of Python once per batch and remembered (`Memo`), so the record still completes natively.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::avro::Schema;
use crate::json::{self, TsFormat};
use crate::phone::{Decided, PhoneTables};
use crate::text::{self, Kind};
use crate::value::{RecordShape, Value};

// ------------------------------------------------------------------------------------ tables

/// Reference data shared by every plan of a process (`streams.native_data`).
pub struct TablesData {
    country_codes: HashMap<String, String>,
    country_names: HashMap<String, String>,
    alpha3: HashMap<String, String>,
    phones: PhoneTables,
}

#[pyclass(frozen, module = "streams._native")]
pub struct Tables {
    data: Arc<TablesData>,
}

fn str_map(d: &Bound<'_, PyDict>) -> PyResult<HashMap<String, String>> {
    let mut out = HashMap::with_capacity(d.len());
    for (k, v) in d.iter() {
        out.insert(k.extract::<String>()?, v.extract::<String>()?);
    }
    Ok(out)
}

#[pymethods]
impl Tables {
    #[new]
    fn new(country_codes: &Bound<'_, PyDict>, country_names: &Bound<'_, PyDict>, alpha3: &Bound<'_, PyDict>, phones: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(Tables {
            data: Arc::new(TablesData {
                country_codes: str_map(country_codes)?,
                country_names: str_map(country_names)?,
                alpha3: str_map(alpha3)?,
                phones: PhoneTables::from_py(phones)?,
            }),
        })
    }
}

// ------------------------------------------------------------------------------------ queries

/// What the plan asks Python for (`streams.native.query_resolver` answers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asked {
    Alpha2,
    PhoneRegion,
    Ip,
    Locale,
    Identifier(Kind),
}

impl Asked {
    fn name(self) -> &'static str {
        match self {
            Asked::Alpha2 => "country",
            Asked::PhoneRegion => "phone_region",
            Asked::Ip => "ip",
            Asked::Locale => "locale",
            Asked::Identifier(k) => k.as_str(),
        }
    }
    /// Which of the memo's maps keeps the answers.
    fn slot(self) -> usize {
        match self {
            Asked::Alpha2 => 0,
            Asked::PhoneRegion => 1,
            Asked::Ip => 2,
            Asked::Locale => 3,
            Asked::Identifier(_) => 4,
        }
    }
}

/// One value to ask Python about; `key` is its memo key (the value itself, or for identifiers
/// kind, region and value together).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Query {
    asked: Asked,
    key: String,
    value: String,
    region: Option<String>,
}

impl Query {
    fn value(asked: Asked, value: &str) -> Query {
        Query { asked, key: value.to_owned(), value: value.to_owned(), region: None }
    }
    fn identifier(kind: Kind, value: &str, region: &str) -> Query {
        Query {
            asked: Asked::Identifier(kind),
            key: identifier_key(kind, value, region),
            value: value.to_owned(),
            region: Some(region.to_owned()),
        }
    }
}

fn identifier_key(kind: Kind, value: &str, region: &str) -> String {
    format!("{}\u{1}{}\u{1}{}", kind.as_str(), region, value)
}

/// Python's answers, per kind of question, looked up by the borrowed value (no copy per record);
/// bounded: cleared when full (the same values recur, so it refills at once).
#[derive(Default)]
struct Memo {
    maps: [HashMap<String, Option<String>>; 5],
}

const MEMO_LIMIT: usize = 200_000;

impl Memo {
    fn get(&self, asked: Asked, key: &str) -> Option<Option<&str>> {
        self.maps[asked.slot()].get(key).map(|v| v.as_deref())
    }
    fn len(&self) -> usize {
        self.maps.iter().map(HashMap::len).sum()
    }
    fn clear(&mut self) {
        self.maps.iter_mut().for_each(HashMap::clear);
    }
    fn insert(&mut self, q: Query, answer: Option<String>) {
        self.maps[q.asked.slot()].insert(q.key, answer);
    }
}

#[derive(Default)]
struct State {
    memo: Memo,
    writer_ids: Vec<u32>,
    payloads: u64,
    handed_back: HashMap<&'static str, u64>,
    asked: HashMap<&'static str, u64>,
}

/// Why a record goes back to the Python pipeline (counted per reason).
#[derive(Clone, Copy, Debug)]
enum Back {
    Tombstone,
    Framing,
    Decode,
    Value,
    EventId,
    Country,
    Identifier,
    Consent,
    TooLarge,
    Unresolved,
}

impl Back {
    fn as_str(self) -> &'static str {
        match self {
            Back::Tombstone => "tombstone",
            Back::Framing => "framing",
            Back::Decode => "decode",
            Back::Value => "value",
            Back::EventId => "event_id",
            Back::Country => "no_country",
            Back::Identifier => "no_identifier",
            Back::Consent => "consent",
            Back::TooLarge => "too_large",
            Back::Unresolved => "unresolved",
        }
    }
}

enum Done {
    Payload(String, Vec<u8>),
    Back(Back),
    /// Python must answer these first; the record runs again afterwards.
    Need(Vec<Query>),
}

/// A decision that may still wait for Python's answer.
enum Ask<T> {
    Got(T),
    Need(Query),
}

/// Python's remembered answer about a value, or the question to ask it.
fn ask<'m>(memo: &'m Memo, asked: Asked, value: &str) -> Ask<Option<&'m str>> {
    match memo.get(asked, value) {
        Some(answer) => Ask::Got(answer),
        None => Ask::Need(Query::value(asked, value)),
    }
}

// ------------------------------------------------------------------------------------ spec

#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    Plain,
    Confluent,
    SingleObject,
    Auto,
}

enum Coerce {
    Str,
    Int,
    Float,
    Bool,
    Timestamp,
    Date,
    Join,
}

enum Op {
    Const { json: Vec<u8>, text: Option<String> },
    Value(Path),
    Identity(Path),
    Consent(Path),
    Coerced(Path, Coerce),
    Rest { path: Path, exclude: Vec<String>, keep_null: bool },
}

struct Field {
    section: usize,
    key: String,
    op: Op,
}

/// The destination's event (`DestinationAPI.native_shape` says which).
enum Shape {
    /// `{section: body}` for the non-empty sections (Zeotap)
    Sections,
    /// `streams.destinations.activation.Activation.payload` + `validate_event`
    Activation { customer_id: String },
    /// `streams.destinations.audiohook.Audiohook.payload` + `missing_fields` + `check_event`
    Audiohook { visitor_from: String, require_visitor_id: bool },
}

/// A slot holding a `YYYY-MM-DDTHH:MM:SS.mmmZ` string (as text, or as the JSON a coercion wrote).
fn slot_is_iso_millis_z(slot: &Slot<'_>) -> bool {
    match slot {
        Slot::Text(t) => is_iso_millis_z(t),
        Slot::Val(Value::Str(t)) => is_iso_millis_z(t),
        Slot::Owned(j) => j.len() == 26 && j[0] == b'"' && j[25] == b'"' && std::str::from_utf8(&j[1..25]).is_ok_and(is_iso_millis_z),
        _ => false,
    }
}

/// Audiohook's `_PAGE` and `_DEVICE`: section key -> event field.
const AUDIOHOOK_PAGE: [(&str, &str); 2] = [("url", "url"), ("referrer", "referrer")];
const AUDIOHOOK_DEVICE: [(&str, &str); 3] = [("ipAddress", "ip_address"), ("userAgent", "user_agent"), ("sessionId", "session_id")];

/// `SHA256_HEX.fullmatch`: 64 lower-case hex digits.
fn is_sha256_lower(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// `_DIGEST_KEY.search(key)` for an ASCII key (the caller hands non-ASCII keys to Python: the
/// pattern ignores case the Unicode way, where 'ſ' is an 's').
fn is_digest_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("sha256") || k.contains("sha-256") || k.contains("email") || k.contains("e-mail") || k.contains("phone")
}

/// Whether Audiohook's `check_event` certainly passes a string leaf: a digest key needs a digest,
/// and any '@' might be an address (Python decides those).
fn audiohook_str_ok(key: &str, s: &str) -> bool {
    if is_digest_key(key) {
        is_sha256_lower(s)
    } else {
        !s.contains('@')
    }
}

/// `check_event`'s leaf rules over a decoded value as the sections hold it (`_json_value`'d).
fn audiohook_value_ok(key: &str, v: &Value<'_>) -> bool {
    match v {
        Value::Null | Value::Bool(_) => true,
        Value::Int(_) | Value::Float(_) => !is_digest_key(key),
        Value::Str(s) | Value::Enum(s) => audiohook_str_ok(key, s),
        // hex of 32 bytes is a digest; other hex, uuids, dates and times hold no '@'
        Value::Bytes(b) => !is_digest_key(key) || b.len() == 32,
        Value::Uuid(_) | Value::Timestamp(_) | Value::Date(_) | Value::Time(_) => !is_digest_key(key),
        Value::Record(shape, values) => {
            shape.fields.iter().zip(values).all(|(k, x)| k.is_ascii() && audiohook_value_ok(k, x))
        }
        Value::Map(entries) => entries.iter().all(|(k, x)| k.is_ascii() && audiohook_value_ok(k, x)),
        Value::Array(items) => items.iter().all(|x| audiohook_value_ok(key, x)),
    }
}

fn audiohook_slot_ok(key: &str, slot: &Slot<'_>) -> bool {
    if !key.is_ascii() {
        return false;
    }
    match slot {
        Slot::Val(v) => audiohook_value_ok(key, v),
        Slot::Text(t) => audiohook_str_ok(key, t),
        Slot::Bool(_) | Slot::Gone => true,
        // a constant or a coerced value: a scalar without '@' under a key that is not a digest's
        Slot::Json(j) => !is_digest_key(key) && !j.contains(&b'@') && !matches!(j.first(), Some(b'{') | Some(b'[')),
        Slot::Owned(j) => !is_digest_key(key) && !j.contains(&b'@'),
    }
}

/// A truthy `str` in Python's eyes, the plan's way: a non-empty string (other truthy values go to Python).
fn nonempty_str<'s>(slot: Option<&'s Slot<'_>>) -> Option<&'s str> {
    slot.and_then(|v| v.as_str()).filter(|v| !v.is_empty())
}

/// The event fields that are not properties (`streams.pipeline.sections.RESERVED_EVENT_KEYS`).
const RESERVED_EVENT_KEYS: [&str; 3] = ["eventName", "eventId", "eventTimestamp"];

/// True for `YYYY-MM-DDTHH:MM:SS.mmmZ` with a real date and time: the form the plan writes, which
/// `datetime.fromisoformat` accepts (activation's `is_iso_datetime`); other forms go to Python.
fn is_iso_millis_z(t: &str) -> bool {
    let b = t.as_bytes();
    if b.len() != 24 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'.' || b[23] != b'Z' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r].iter().try_fold(0u32, |acc, &c| c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u32))
    };
    let (Some(y), Some(mo), Some(d), Some(h), Some(mi), Some(s), Some(_ms)) =
        (num(0..4), num(5..7), num(8..10), num(11..13), num(14..16), num(17..19), num(20..23))
    else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    y >= 1 && (1..=days).contains(&d) && h < 24 && mi < 60 && s < 60
}

#[pyclass(frozen, module = "streams._native")]
pub struct Plan {
    schema: Schema,
    framing: Framing,
    has_registry: bool,
    reader_fp: Vec<u8>,
    sections: Vec<String>,
    fields: Vec<Field>,
    ts: TsFormat,
    identity_targets: Vec<(String, String, Kind)>,
    id_targets: Vec<(String, String)>,
    has_identifier_names: bool,
    country_targets: Vec<(String, String)>,
    country_sources: [Option<Path>; 4],
    default_country: Option<String>,
    alpha3: bool,
    hash: bool,
    fold_gmail: bool,
    lowercase_names: bool,
    phone_digits: bool,
    enforce_consent: bool,
    require: Vec<String>,
    any_of: Vec<String>,
    forward_missing: bool,
    event_names: HashMap<String, String>,
    max_event_bytes: usize,
    shape: Shape,
    tables: Arc<TablesData>,
    resolver: Py<PyAny>,
    state: Mutex<State>,
    /// the last payload's size: the next one's buffer is allocated once
    last_len: AtomicUsize,
}

fn get<'py, T>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<T>
where
    T: for<'a> FromPyObject<'a, 'py>,
    for<'a> <T as FromPyObject<'a, 'py>>::Error: Into<PyErr>,
{
    match d.get_item(key)? {
        Some(v) => v.extract::<T>().map_err(|e| {
            let e: PyErr = e.into();
            pyo3::exceptions::PyValueError::new_err(format!("plan spec {key}: {e}"))
        }),
        None => Err(pyo3::exceptions::PyKeyError::new_err(format!("plan spec lacks {key}"))),
    }
}

fn path_of(v: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    v.extract::<Vec<String>>()
}

fn parse_ts(s: &str) -> PyResult<TsFormat> {
    Ok(match s {
        "iso" => TsFormat::Iso,
        "unix" => TsFormat::Unix,
        "unix_ms" => TsFormat::UnixMs,
        _ => return Err(pyo3::exceptions::PyValueError::new_err(format!("unknown timestamp format {s}"))),
    })
}

// ------------------------------------------------------------------------------------ values

/// One step of a mapping path, with the field index it found in the last record shape it met:
/// a record of the route's schema has the same shape every time, so the name is searched once.
/// (Only one thread runs a plan at a time: `run` holds the plan's state lock throughout.)
struct Step {
    name: String,
    shape: AtomicPtr<RecordShape>,
    index: AtomicUsize,
}

struct Path(Vec<Step>);

impl Path {
    fn new(parts: Vec<String>) -> Path {
        Path(parts.into_iter().map(|name| Step { name, shape: AtomicPtr::new(std::ptr::null_mut()), index: AtomicUsize::new(0) }).collect())
    }
}

/// `compile_path` then `rec.get(...)`: None when a step is missing (a value or null both end an
/// optional field the same way in the shapes the plan compiles).
fn lookup<'v, 'a>(root: &'v Value<'a>, path: &Path) -> Option<&'v Value<'a>> {
    let mut v = root;
    for step in &path.0 {
        v = match v {
            Value::Record(shape, values) => {
                let ptr = *shape as *const RecordShape as *mut RecordShape;
                let index = if step.shape.load(Ordering::Relaxed) == ptr {
                    step.index.load(Ordering::Relaxed)
                } else {
                    let i = shape.index(&step.name)?;
                    step.index.store(i, Ordering::Relaxed);
                    step.shape.store(ptr, Ordering::Relaxed);
                    i
                };
                values.get(index)?
            }
            // a key written twice: Python's dict keeps the last value
            Value::Map(entries) => &entries.iter().rev().find(|(k, _)| *k == step.name.as_str())?.1,
            _ => return None,
        };
    }
    Some(v)
}

/// `compile_str_getters`: the value when it is a non-empty `str` (an enum symbol is one).
fn str_at<'v>(root: &'v Value<'v>, path: &Option<Path>) -> Option<&'v str> {
    match lookup(root, path.as_ref()?)? {
        Value::Str(s) | Value::Enum(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// `consent.normalize_consent` of a string; None also for "cannot say natively" (non-ASCII).
fn consent_str(s: &str) -> Result<Option<bool>, ()> {
    const GRANTED: [&str; 13] = ["true", "yes", "y", "1", "granted", "grant", "allow", "allowed", "optin", "optedin", "on", "accepted", "accept"];
    const DENIED: [&str; 17] = [
        "false", "no", "n", "0", "denied", "deny", "declined", "decline", "rejected", "reject", "optout", "optedout", "off",
        "revoked", "revoke", "withdrawn", "withdraw",
    ];
    let look = |k: &str| {
        if GRANTED.contains(&k) {
            Some(true)
        } else if DENIED.contains(&k) {
            Some(false)
        } else {
            None
        }
    };
    if let Some(hit) = look(s) {
        return Ok(Some(hit));
    }
    if !s.is_ascii() {
        return Err(()); // Unicode lower-casing (the Kelvin sign is a 'k') stays with Python
    }
    let folded: String = text::py_strip(s).chars().filter(|c| !matches!(c, '-' | '_' | ' ')).map(|c| c.to_ascii_lowercase()).collect();
    Ok(look(&folded))
}

fn consent_value(v: &Value) -> Result<Option<bool>, ()> {
    Ok(match v {
        Value::Bool(b) => Some(*b),
        Value::Str(s) | Value::Enum(s) => return consent_str(s),
        Value::Int(1) => Some(true),
        Value::Int(0) => Some(false),
        Value::Float(f) if *f == 1.0 => Some(true),
        Value::Float(f) if *f == 0.0 => Some(false),
        _ => None,
    })
}

/// What a section holds under one key while the record is built.
enum Slot<'r> {
    Val(&'r Value<'r>),
    Json(&'r [u8]),
    /// JSON the plan rendered (a coerced value).
    Owned(Vec<u8>),
    Text(Cow<'r, str>),
    Bool(bool),
    Gone,
}

impl<'r> Slot<'r> {
    /// The value when Python would hold a `str` there.
    fn as_str(&self) -> Option<&str> {
        match self {
            Slot::Text(t) => Some(t),
            Slot::Val(Value::Str(s)) | Slot::Val(Value::Enum(s)) => Some(s),
            _ => None,
        }
    }
}

struct Section<'r> {
    name: &'r str,
    entries: Vec<(Cow<'r, str>, Slot<'r>)>,
}

impl<'r> Section<'r> {
    fn find(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|(k, s)| k == key && !matches!(s, Slot::Gone))
    }
    /// `body[key] = v`: in place when the key is there, else appended (dict order).
    fn set(&mut self, key: Cow<'r, str>, slot: Slot<'r>) {
        match self.find(&key) {
            Some(i) => self.entries[i].1 = slot,
            None => self.entries.push((key, slot)),
        }
    }
    fn live(&self) -> bool {
        self.entries.iter().any(|(_, s)| !matches!(s, Slot::Gone))
    }
}

fn section_index(sections: &[Section<'_>], name: &str) -> Option<usize> {
    sections.iter().position(|s| s.name == name)
}

/// `sections.get(name)`.
fn section_named<'s, 'r>(sections: &'s [Section<'r>], name: &str) -> Option<&'s Section<'r>> {
    sections.iter().find(|s| s.name == name)
}

/// `section.get(key)` of a section that may be absent (Gone entries are absent).
fn slot_of<'s, 'r>(section: Option<&'s Section<'r>>, key: &str) -> Option<&'s Slot<'r>> {
    section.and_then(|s| s.find(key).map(|i| &s.entries[i].1))
}

// ------------------------------------------------------------------------------------ the plan

/// A record's value as the batch holds it.
#[derive(Clone, Copy)]
enum Input<'d> {
    Bytes(&'d [u8]),
    Tombstone,
    /// not `bytes` (a bytearray, a memoryview): the Python pipeline reads it
    Other,
}

struct Ctx<'s> {
    memo: &'s Memo,
    writer_ids: &'s [u32],
}

impl Plan {
    /// The Avro body of a record, or why it goes to Python.
    fn body<'d>(&self, data: &'d [u8], ctx: &Ctx) -> Result<&'d [u8], Back> {
        let framing = match self.framing {
            Framing::Auto => {
                if data.len() >= 10 && data[0] == 0xC3 && data[1] == 0x01 {
                    Framing::SingleObject
                } else if data.len() >= 5 && data[0] == 0 && self.has_registry {
                    Framing::Confluent
                } else {
                    Framing::Plain
                }
            }
            f => f,
        };
        match framing {
            Framing::Confluent => {
                if data.len() < 5 || data[0] != 0 {
                    return Err(Back::Framing);
                }
                let id = u32::from_be_bytes([data[1], data[2], data[3], data[4]]);
                if ctx.writer_ids.contains(&id) {
                    Ok(&data[5..])
                } else {
                    Err(Back::Framing) // a writer schema the plan does not know (yet): Python decodes
                }
            }
            Framing::SingleObject => {
                if data.len() >= 10 && data[0] == 0xC3 && data[1] == 0x01 && data[2..10] == self.reader_fp[..] {
                    Ok(&data[10..])
                } else {
                    Err(Back::Framing)
                }
            }
            _ => Ok(data),
        }
    }

    fn run_one(&self, input: Input<'_>, ctx: &Ctx) -> Done {
        let data = match input {
            Input::Bytes(data) => data,
            Input::Tombstone => return Done::Back(Back::Tombstone),
            Input::Other => return Done::Back(Back::Framing),
        };
        let body = match self.body(data, ctx) {
            Ok(b) => b,
            Err(why) => return Done::Back(why),
        };
        let root = match self.schema.decode(body) {
            Ok(v) => v,
            Err(_) => return Done::Back(Back::Decode),
        };
        match self.transform(&root, ctx) {
            Ok(done) => done,
            Err(why) => Done::Back(why),
        }
    }

    fn transform<'r>(&'r self, root: &'r Value<'r>, ctx: &Ctx) -> Result<Done, Back> {
        let mut sections: Vec<Section<'r>> =
            self.sections.iter().map(|s| Section { name: s.as_str(), entries: Vec::with_capacity(8) }).collect();
        for field in &self.fields {
            self.apply(field, root, &mut sections)?;
        }
        let event = match section_index(&sections, "event") {
            Some(i) => i,
            None => {
                sections.push(Section { name: "event", entries: Vec::new() });
                sections.len() - 1
            }
        };
        let event_id = match sections[event].find("eventId").and_then(|i| sections[event].entries[i].1.as_str()) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => return Err(Back::EventId), // the deterministic id (uuid5) is Python's
        };
        if !self.event_names.is_empty() {
            if let Some(i) = sections[event].find("eventName") {
                if let Some(renamed) = sections[event].entries[i].1.as_str().and_then(|n| self.event_names.get(n)) {
                    sections[event].entries[i].1 = Slot::Text(Cow::Borrowed(renamed.as_str()));
                }
            }
        }

        // enrich: the country first (phones in national format need its region)
        let mut needs: Vec<Query> = Vec::new();
        let alpha2 = match self.resolve_country(root, ctx)? {
            Ask::Got(Some(a2)) => a2,
            Ask::Got(None) => return Err(Back::Country),
            Ask::Need(q) => return Ok(Done::Need(vec![q])),
        };
        let country: &str = if self.alpha3 {
            match self.tables.alpha3.get(alpha2) {
                Some(a3) => a3,
                None => return Err(Back::Country),
            }
        } else {
            alpha2
        };
        for (section, key) in &self.country_targets {
            let i = match section_index(&sections, section) {
                Some(i) => i,
                None => {
                    // setdefault: a section the mapping did not name is appended
                    sections.push(Section { name: section.as_str(), entries: Vec::new() });
                    sections.len() - 1
                }
            };
            sections[i].set(Cow::Borrowed(key.as_str()), Slot::Text(Cow::Owned(country.to_owned())));
        }

        // identifiers: ids trimmed, emails/phones/names normalised and hashed
        let mut present = 0usize;
        for (section, key) in &self.id_targets {
            let Some(si) = section_index(&sections, section) else { continue };
            let Some(i) = sections[si].find(key) else { continue };
            let trimmed = match &sections[si].entries[i].1 {
                Slot::Text(t) => {
                    if !text::is_latin(t) {
                        return Err(Back::Value);
                    }
                    text::py_strip(t).to_owned()
                }
                _ => return Err(Back::Value),
            };
            if trimmed.is_empty() {
                sections[si].entries[i].1 = Slot::Gone;
            } else {
                sections[si].entries[i].1 = Slot::Text(Cow::Owned(trimmed));
                present += 1;
            }
        }
        for (section, key, kind) in &self.identity_targets {
            let Some(si) = section_index(&sections, section) else { continue };
            let Some(i) = sections[si].find(key) else { continue };
            let found = match &sections[si].entries[i].1 {
                Slot::Text(t) => self.identifier(*kind, t, alpha2, ctx),
                _ => return Err(Back::Value),
            };
            match found {
                Ask::Got(None) => sections[si].entries[i].1 = Slot::Gone,
                Ask::Got(Some(v)) => {
                    sections[si].entries[i].1 = Slot::Text(Cow::Owned(v));
                    if *kind != Kind::Name {
                        present += 1;
                    }
                }
                Ask::Need(q) => needs.push(q),
            }
        }
        if !needs.is_empty() {
            return Ok(Done::Need(needs));
        }
        if present == 0 && self.has_identifier_names {
            return Err(Back::Identifier);
        }
        if self.enforce_consent && !self.consent_passes(&sections)? {
            return Err(Back::Consent);
        }

        let last = self.last_len.load(Ordering::Relaxed);
        let mut out = Vec::with_capacity(last + last / 4 + 256);
        self.write_payload(&sections, &mut out)?;
        self.last_len.store(out.len(), Ordering::Relaxed);
        if out.len() > self.max_event_bytes {
            return Err(Back::TooLarge);
        }
        Ok(Done::Payload(event_id, out))
    }

    fn apply<'r>(&'r self, field: &'r Field, root: &'r Value<'r>, sections: &mut [Section<'r>]) -> Result<(), Back> {
        let section = &mut sections[field.section];
        let key = Cow::Borrowed(field.key.as_str());
        match &field.op {
            Op::Const { json, text } => match text {
                Some(t) => section.set(key, Slot::Text(Cow::Borrowed(t.as_str()))),
                None => section.set(key, Slot::Json(json)),
            },
            Op::Value(path) => match lookup(root, path) {
                None | Some(Value::Null) => {}
                Some(v) => section.set(key, Slot::Val(v)),
            },
            Op::Identity(path) => match lookup(root, path) {
                None | Some(Value::Null) => {}
                Some(Value::Str(s)) | Some(Value::Enum(s)) => section.set(key, Slot::Text(Cow::Borrowed(s))),
                Some(Value::Uuid(s)) => section.set(key, Slot::Text(Cow::Borrowed(s.as_str()))),
                Some(Value::Int(i)) => section.set(key, Slot::Text(Cow::Owned(i.to_string()))),
                Some(_) => return Err(Back::Value), // str() of other types: Python
            },
            Op::Consent(path) => match lookup(root, path) {
                None | Some(Value::Null) => {}
                Some(v) => {
                    if let Some(b) = consent_value(v).map_err(|_| Back::Value)? {
                        section.set(key, Slot::Bool(b));
                    }
                }
            },
            Op::Coerced(path, how) => match lookup(root, path) {
                None | Some(Value::Null) => {}
                Some(v) => {
                    let slot = coerce(v, how, self.ts)?;
                    section.set(key, slot);
                }
            },
            Op::Rest { path, exclude, keep_null } => {
                // (the decoder keeps a map's repeated key once, at its first position with its last
                // value, as Python's dict does)
                let mut put = |k: &'r str, v: &'r Value<'r>| {
                    if exclude.iter().any(|e| e == k) || section.find(k).is_some() {
                        return;
                    }
                    match v {
                        Value::Null if *keep_null => section.entries.push((Cow::Borrowed(k), Slot::Json(b"null"))),
                        Value::Null => {}
                        v => section.entries.push((Cow::Borrowed(k), Slot::Val(v))),
                    }
                };
                match lookup(root, path) {
                    Some(Value::Record(shape, values)) => shape.fields.iter().zip(values.iter()).for_each(|(k, v)| put(k, v)),
                    Some(Value::Map(entries)) => entries.iter().for_each(|(k, v)| put(k, v)),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    fn resolve_country<'x>(&'x self, root: &Value, ctx: &Ctx<'x>) -> Result<Ask<Option<&'x str>>, Back> {
        let t = &*self.tables;
        let [field, phone, ip, locale] = &self.country_sources;
        if let Some(c) = str_at(root, field) {
            match text::to_alpha2(c, &t.country_codes, &t.country_names) {
                Decided::Done(Some(a2)) => return Ok(Ask::Got(Some(a2))),
                Decided::Done(None) => {}
                Decided::Python => match ask(ctx.memo, Asked::Alpha2, c) {
                    Ask::Got(None) => {}
                    got_or_need => return Ok(got_or_need),
                },
            }
        }
        if let Some(p) = str_at(root, phone) {
            let region = match t.phones.e164(p, None) {
                Decided::Done(None) => Decided::Done(None),
                Decided::Done(Some(number)) => t.phones.region_of_e164(&number),
                Decided::Python => Decided::Python,
            };
            let a2 = match region {
                Decided::Done(None) => None,
                // phonenumbers' AC/TA are SH, XK none: the alpha-2 table says
                Decided::Done(Some(r)) => match text::to_alpha2(&r, &t.country_codes, &t.country_names) {
                    Decided::Done(a2) => a2,
                    Decided::Python => return Err(Back::Value),
                },
                Decided::Python => match ask(ctx.memo, Asked::PhoneRegion, p) {
                    Ask::Got(a2) => a2,
                    need => return Ok(need),
                },
            };
            if a2.is_some() {
                return Ok(Ask::Got(a2));
            }
        }
        if let Some(addr) = str_at(root, ip) {
            match ask(ctx.memo, Asked::Ip, addr) {
                Ask::Got(None) => {}
                got_or_need => return Ok(got_or_need),
            }
        }
        if let Some(l) = str_at(root, locale) {
            match text::country_from_locale(l, &t.country_codes) {
                Decided::Done(Some(a2)) => return Ok(Ask::Got(Some(a2))),
                Decided::Done(None) => {}
                Decided::Python => match ask(ctx.memo, Asked::Locale, l) {
                    Ask::Got(None) => {}
                    got_or_need => return Ok(got_or_need),
                },
            }
        }
        // the default was resolved when the plan was built
        Ok(Ask::Got(self.default_country.as_deref()))
    }

    /// `identity._identifier(kind, value, profile, region)`.
    fn identifier(&self, kind: Kind, value: &str, region: &str, ctx: &Ctx) -> Ask<Option<String>> {
        match self.identifier_native(kind, value, region) {
            Decided::Done(v) => Ask::Got(v),
            Decided::Python => match ctx.memo.get(Asked::Identifier(kind), &identifier_key(kind, value, region)) {
                Some(answer) => Ask::Got(answer.map(str::to_owned)),
                None => Ask::Need(Query::identifier(kind, value, region)),
            },
        }
    }

    fn identifier_native(&self, kind: Kind, value: &str, region: &str) -> Decided<Option<String>> {
        if !text::is_latin(value) {
            return Decided::Python; // zero-width characters, other scripts' case rules: Python
        }
        let trimmed = text::py_strip(value);
        if text::is_sha256_hex(trimmed) {
            return Decided::Done(Some(trimmed.to_ascii_lowercase()));
        }
        let normalised = match kind {
            Kind::Email => text::email(trimmed, self.fold_gmail),
            Kind::Name => text::name(trimmed, self.lowercase_names),
            Kind::Id => (!trimmed.is_empty()).then(|| trimmed.to_owned()),
            Kind::Phone => match self.tables.phones.e164(trimmed, Some(region)) {
                Decided::Done(Some(n)) => Some(if self.phone_digits { n[1..].to_owned() } else { n }),
                Decided::Done(None) => None,
                Decided::Python => return Decided::Python,
            },
        };
        Decided::Done(normalised.map(|v| if self.hash { text::sha256_hex(&v) } else { v }))
    }

    /// `consent.evaluate(sections["consent"], policy) is None`; a denial goes to Python (which
    /// builds the filter with its reason).
    fn consent_passes(&self, sections: &[Section<'_>]) -> Result<bool, Back> {
        let consent = section_named(sections, "consent");
        let granted = |purpose: &str| -> Result<Option<bool>, Back> {
            let Some(slot) = slot_of(consent, purpose) else { return Ok(None) };
            match slot {
                Slot::Bool(b) => Ok(Some(*b)),
                Slot::Text(t) => consent_str(t).map_err(|_| Back::Value),
                Slot::Val(v) => consent_value(v).map_err(|_| Back::Value),
                Slot::Json(_) | Slot::Owned(_) => Err(Back::Value),
                Slot::Gone => Ok(None),
            }
        };
        for purpose in &self.require {
            match granted(purpose)? {
                Some(true) => continue,
                Some(false) => return Ok(false),
                None if self.forward_missing => continue,
                None => return Ok(false),
            }
        }
        if !self.any_of.is_empty() {
            for purpose in &self.any_of {
                match granted(purpose)? {
                    Some(true) => return Ok(true),
                    None if self.forward_missing => return Ok(true),
                    _ => {}
                }
            }
            return Ok(false);
        }
        Ok(true)
    }

    fn write_payload(&self, sections: &[Section<'_>], out: &mut Vec<u8>) -> Result<(), Back> {
        match &self.shape {
            Shape::Sections => {
                out.push(b'{');
                let mut first = true;
                for s in sections.iter().filter(|s| s.live()) {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    json::write_str(out, s.name);
                    out.push(b':');
                    self.write_section(s, out)?;
                }
                out.push(b'}');
            }
            Shape::Activation { customer_id } => self.write_activation(sections, customer_id, out)?,
            Shape::Audiohook { visitor_from, require_visitor_id } => {
                self.write_audiohook(sections, visitor_from, *require_visitor_id, out)?
            }
        }
        Ok(())
    }

    /// Audiohook's event, in `payload`'s key order; whatever `missing_fields` or `check_event` might
    /// refuse goes back to Python, which dead-letters it with its reason.
    fn write_audiohook<'s, 'r>(
        &'s self,
        sections: &'s [Section<'r>],
        visitor_from: &'s str,
        require_visitor: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), Back> {
        enum Piece<'s, 'r> {
            Slot(&'s Slot<'r>),
            Str(&'s str),
            Props,
        }
        let section = |name: &str| section_named(sections, name);
        let slot = slot_of;
        fn set<'a, 'b>(fields: &mut Vec<(&'a str, Piece<'a, 'b>)>, key: &'a str, piece: Piece<'a, 'b>) {
            match fields.iter().position(|(k, _)| *k == key) {
                Some(i) => fields[i].1 = piece,
                None => fields.push((key, piece)),
            }
        }
        let (event, user, page, device) = (section("event"), section("user"), section("page"), section("device"));
        let mut fields: Vec<(&'s str, Piece<'s, 'r>)> = Vec::with_capacity(16);
        // event_name and timestamp: required, non-empty strings; the timestamp in the document's form
        let name = slot(event, "eventName").ok_or(Back::Value)?;
        let ts = slot(event, "eventTimestamp").ok_or(Back::Value)?;
        if nonempty_str(Some(name)).is_none() || !slot_is_iso_millis_z(ts) {
            return Err(Back::Value);
        }
        set(&mut fields, "event_name", Piece::Slot(name));
        set(&mut fields, "timestamp", Piece::Slot(ts));
        if let Some(id) = slot(event, "eventId") {
            set(&mut fields, "event_id", Piece::Slot(id));
        }
        let visitor = match slot(user, visitor_from) {
            Some(Slot::Text(t)) if text::is_latin(t) => Some(text::py_strip(t)).filter(|v| !v.is_empty()),
            Some(Slot::Val(Value::Str(t))) if text::is_latin(t) => Some(text::py_strip(t)).filter(|v| !v.is_empty()),
            None | Some(Slot::Gone) => None,
            Some(_) => return Err(Back::Value), // str() of something else: Python
        };
        match visitor {
            Some(v) => set(&mut fields, "visitor_id", Piece::Str(v)),
            None if require_visitor => return Err(Back::Value),
            None => {}
        }
        for (section_slots, pairs) in [(page, &AUDIOHOOK_PAGE[..]), (device, &AUDIOHOOK_DEVICE[..])] {
            for (src, dst) in pairs {
                if let Some(v) = slot(section_slots, src) {
                    set(&mut fields, dst, Piece::Slot(v));
                }
            }
        }
        if let Some(v) = slot(user, "anonymousId") {
            set(&mut fields, "persistent_anonymous_user_id", Piece::Slot(v));
        }
        if let Some(u) = user {
            for (k, v) in u.entries.iter().filter(|(_, v)| !matches!(v, Slot::Gone)) {
                if k == "anonymousId" || k == visitor_from {
                    continue;
                }
                // an identifier that is not a digest: UnhashedIdentifier, Python's to raise
                if k != "country" && !v.as_str().is_some_and(is_sha256_lower) {
                    return Err(Back::Value);
                }
                set(&mut fields, k, Piece::Slot(v));
            }
        }
        let props: Vec<&'s (Cow<'r, str>, Slot<'r>)> = event
            .map(|e| e.entries.iter().filter(|(k, v)| !matches!(v, Slot::Gone) && !RESERVED_EVENT_KEYS.contains(&k.as_ref())).collect())
            .unwrap_or_default();
        if !props.is_empty() {
            set(&mut fields, "event_payload", Piece::Props);
        }
        // missing_fields: required and truthy (a non-empty string, the plan's way)
        for required in ["ip_address", "user_agent", "event_name", "timestamp"] {
            let ok = match fields.iter().find(|(k, _)| *k == required).map(|(_, p)| p) {
                // (a coerced string is JSON text: `"..."` with something inside)
                Some(Piece::Slot(Slot::Owned(j))) => j.len() > 2 && j[0] == b'"',
                Some(Piece::Slot(v)) => nonempty_str(Some(v)).is_some(),
                Some(Piece::Str(v)) => !v.is_empty(),
                _ => false,
            };
            if !ok {
                return Err(Back::Value);
            }
        }
        // check_event's leaves (user_agent at the top is taken as it is)
        for (k, piece) in &fields {
            let ok = match piece {
                _ if *k == "user_agent" => true,
                Piece::Slot(v) => audiohook_slot_ok(k, v),
                Piece::Str(v) => audiohook_str_ok(k, v),
                Piece::Props => props.iter().all(|(pk, pv)| audiohook_slot_ok(pk, pv)),
            };
            if !ok {
                return Err(Back::Value);
            }
        }
        out.push(b'{');
        for (i, (k, piece)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::write_str(out, k);
            out.push(b':');
            match piece {
                Piece::Slot(v) => self.write_slot(v, out)?,
                Piece::Str(v) => json::write_str(out, v),
                Piece::Props => self.write_object(out, props.iter().copied())?,
            }
        }
        out.push(b'}');
        Ok(())
    }

    /// Activation's event; anything `validate_event` would refuse (or the plan cannot vouch for)
    /// goes back to Python, which dead-letters it with its reason.
    fn write_activation(&self, sections: &[Section<'_>], customer_id: &str, out: &mut Vec<u8>) -> Result<(), Back> {
        let section = |name: &str| section_named(sections, name);
        let slot = slot_of;
        let (event, user) = (section("event"), section("user"));
        let name = slot(event, "eventName").and_then(|v| v.as_str()).filter(|v| !v.is_empty()).ok_or(Back::Value)?;
        let cid = slot(user, customer_id).and_then(|v| v.as_str()).filter(|v| !v.is_empty()).ok_or(Back::Value)?;
        let ts_slot = slot(event, "eventTimestamp").ok_or(Back::Value)?;
        if !slot_is_iso_millis_z(ts_slot) {
            return Err(Back::Value);
        }
        out.extend_from_slice(b"{\"event\":");
        json::write_str(out, name);
        out.extend_from_slice(b",\"timestamp\":");
        self.write_slot(ts_slot, out)?;
        out.extend_from_slice(b",\"customer_id\":");
        json::write_str(out, cid);
        out.extend_from_slice(b",\"event_id\":");
        self.write_slot(slot(event, "eventId").ok_or(Back::EventId)?, out)?;
        out.extend_from_slice(b",\"properties\":{");
        let mut keys: Vec<&str> = Vec::new();
        let mut first = true;
        let mut sep = |out: &mut Vec<u8>| {
            if !first {
                out.push(b',');
            }
            first = false;
        };
        if let Some(e) = event {
            for (k, v) in e.entries.iter().filter(|(k, v)| !matches!(v, Slot::Gone) && !RESERVED_EVENT_KEYS.contains(&k.as_ref())) {
                sep(out);
                json::write_str(out, k);
                out.push(b':');
                self.write_slot(v, out)?;
                keys.push(k);
            }
        }
        // props.setdefault("identifiers", user without the customer_id), then page, device, consent
        let identifiers = user.filter(|u| u.entries.iter().any(|(k, v)| !matches!(v, Slot::Gone) && k != customer_id));
        if let Some(u) = identifiers {
            if !keys.contains(&"identifiers") {
                sep(out);
                out.extend_from_slice(b"\"identifiers\":");
                self.write_object(out, u.entries.iter().filter(|(k, v)| !matches!(v, Slot::Gone) && k != customer_id))?;
                keys.push("identifiers");
            }
        }
        for extra in ["page", "device", "consent"] {
            if let Some(s) = section(extra).filter(|s| s.live()) {
                if !keys.contains(&extra) {
                    sep(out);
                    json::write_str(out, extra);
                    out.push(b':');
                    self.write_section(s, out)?;
                    keys.push(extra);
                }
            }
        }
        out.extend_from_slice(b"}}");
        Ok(())
    }

    fn write_slot(&self, slot: &Slot<'_>, out: &mut Vec<u8>) -> Result<(), Back> {
        match slot {
            Slot::Val(v) => json::write_value(out, v, self.ts).map_err(|_| Back::Value)?,
            Slot::Json(j) => out.extend_from_slice(j),
            Slot::Owned(j) => out.extend_from_slice(j),
            Slot::Text(t) => json::write_str(out, t),
            Slot::Bool(true) => out.extend_from_slice(b"true"),
            Slot::Bool(false) => out.extend_from_slice(b"false"),
            Slot::Gone => return Err(Back::Value),
        }
        Ok(())
    }

    fn write_section(&self, s: &Section<'_>, out: &mut Vec<u8>) -> Result<(), Back> {
        self.write_object(out, s.entries.iter().filter(|(_, v)| !matches!(v, Slot::Gone)))
    }

    /// A JSON object of a section's (key, slot) entries, in order.
    fn write_object<'s, 'r: 's>(
        &self,
        out: &mut Vec<u8>,
        entries: impl Iterator<Item = &'s (Cow<'r, str>, Slot<'r>)>,
    ) -> Result<(), Back> {
        out.push(b'{');
        for (i, (k, slot)) in entries.enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json::write_str(out, k);
            out.push(b':');
            self.write_slot(slot, out)?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// `mapping._coerce(v, as_, ts)` where it is exact natively, as a slot.
fn coerce<'r>(v: &'r Value<'r>, how: &Coerce, ts: TsFormat) -> Result<Slot<'r>, Back> {
    let mut buf = Vec::new();
    match (how, v) {
        (Coerce::Timestamp, Value::Timestamp(us)) => json::write_timestamp(&mut buf, *us, ts).map_err(|_| Back::Value)?,
        // epoch millis as unix / unix_ms: Python returns the number without building a datetime
        (Coerce::Timestamp, Value::Int(ms)) if ts == TsFormat::UnixMs => json::write_int(&mut buf, *ms),
        (Coerce::Timestamp, Value::Int(ms)) if ts == TsFormat::Unix => json::write_int(&mut buf, ms.div_euclid(1000)),
        (Coerce::Timestamp, Value::Int(ms)) => {
            let us = ms.checked_mul(1000).ok_or(Back::Value)?;
            json::write_timestamp(&mut buf, us, ts).map_err(|_| Back::Value)?
        }
        (Coerce::Date, Value::Date(days)) => json::write_date(&mut buf, *days).map_err(|_| Back::Value)?,
        (Coerce::Date, Value::Int(days)) => json::write_date(&mut buf, i32::try_from(*days).map_err(|_| Back::Value)?).map_err(|_| Back::Value)?,
        (Coerce::Date, Value::Timestamp(us)) => json::write_date(&mut buf, i32::try_from(us.div_euclid(86_400_000_000)).map_err(|_| Back::Value)?).map_err(|_| Back::Value)?,
        (Coerce::Str, Value::Str(s)) | (Coerce::Str, Value::Enum(s)) => return Ok(Slot::Text(Cow::Borrowed(s))),
        (Coerce::Str, Value::Uuid(s)) => return Ok(Slot::Text(Cow::Borrowed(s.as_str()))),
        (Coerce::Str, Value::Int(i)) => return Ok(Slot::Text(Cow::Owned(i.to_string()))),
        (Coerce::Str, Value::Bool(b)) => return Ok(Slot::Text(Cow::Borrowed(if *b { "true" } else { "false" }))),
        (Coerce::Int, Value::Int(i)) => json::write_int(&mut buf, *i),
        (Coerce::Int, Value::Bool(b)) => json::write_int(&mut buf, *b as i64),
        (Coerce::Float, Value::Int(i)) => json::write_float(&mut buf, *i as f64),
        (Coerce::Float, Value::Float(f)) => json::write_float(&mut buf, *f),
        (Coerce::Bool, v) => match consent_value(v) {
            Ok(Some(b)) => return Ok(Slot::Bool(b)),
            _ => return Err(Back::Value), // not a boolean: Python's mapping error
        },
        (Coerce::Join, Value::Array(items)) => {
            let mut joined = String::new();
            let mut first = true;
            for item in items {
                let piece: Cow<str> = match item {
                    Value::Null => continue,
                    Value::Str(s) | Value::Enum(s) => Cow::Borrowed(s),
                    Value::Int(i) => Cow::Owned(i.to_string()),
                    Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
                    _ => return Err(Back::Value),
                };
                if !first {
                    joined.push(',');
                }
                first = false;
                joined.push_str(&piece);
            }
            return Ok(Slot::Text(Cow::Owned(joined)));
        }
        (Coerce::Join, Value::Str(s)) => return Ok(Slot::Text(Cow::Borrowed(s))),
        _ => return Err(Back::Value),
    }
    Ok(Slot::Owned(buf))
}


// ------------------------------------------------------------------------------------ Python face

fn err(msg: String) -> PyErr {
    pyo3::exceptions::PyValueError::new_err(msg)
}

fn parse_field(d: &Bound<'_, PyDict>, sections: &[String]) -> PyResult<Field> {
    let section: String = get(d, "section")?;
    let key: String = get(d, "key")?;
    let kind: String = get(d, "op")?;
    let path = || -> PyResult<Path> { Ok(Path::new(path_of(&d.get_item("path")?.ok_or_else(|| err("field without path".into()))?)?)) };
    let op = match kind.as_str() {
        "const" => Op::Const { json: get::<Vec<u8>>(d, "json")?, text: get::<Option<String>>(d, "text")? },
        "value" => Op::Value(path()?),
        "identity" => Op::Identity(path()?),
        "consent" => Op::Consent(path()?),
        "coerced" => {
            let how = match get::<String>(d, "as")?.as_str() {
                "string" => Coerce::Str,
                "int" => Coerce::Int,
                "float" => Coerce::Float,
                "bool" => Coerce::Bool,
                "timestamp" => Coerce::Timestamp,
                "date" => Coerce::Date,
                "join" => Coerce::Join,
                other => return Err(err(format!("no native form of as: {other}"))),
            };
            Op::Coerced(path()?, how)
        }
        "rest" => Op::Rest { path: path()?, exclude: get(d, "exclude")?, keep_null: get(d, "keep_null")? },
        other => return Err(err(format!("no native form of the mapping operator {other}"))),
    };
    let section = sections.iter().position(|s| *s == section).ok_or_else(|| err(format!("unknown section {section}")))?;
    Ok(Field { section, key, op })
}

fn pairs(d: &Bound<'_, PyDict>, key: &str) -> PyResult<Vec<(String, String)>> {
    get::<Vec<(String, String)>>(d, key)
}

fn query_tuple<'py>(py: Python<'py>, q: &Query) -> PyResult<Bound<'py, PyTuple>> {
    Ok(match q {
        Query { asked: Asked::Identifier(k), value, region, .. } => {
            PyTuple::new(py, [Some(k.as_str()), Some(value.as_str()), region.as_deref()])?
        }
        Query { asked, value, .. } => PyTuple::new(py, [asked.name(), value.as_str()])?,
    })
}

#[pymethods]
impl Plan {
    /// Compile a route's plan from the spec `streams.native.plan_spec` builds; ValueError names
    /// what has no native form (the route then runs on the Python pipeline).
    #[new]
    fn new(spec: &Bound<'_, PyDict>, tables: &Bound<'_, Tables>, resolver: Py<PyAny>) -> PyResult<Self> {
        let schema = Schema::compile(&get::<String>(spec, "schema")?).map_err(|e| err(format!("schema: {e}")))?;
        let framing = match get::<String>(spec, "framing")?.as_str() {
            "plain" => Framing::Plain,
            "confluent" => Framing::Confluent,
            "single_object" => Framing::SingleObject,
            "auto" => Framing::Auto,
            other => return Err(err(format!("framing {other}"))),
        };
        let sections: Vec<String> = get(spec, "sections")?;
        let mut fields = Vec::new();
        for f in get::<Vec<Bound<'_, PyDict>>>(spec, "fields")? {
            fields.push(parse_field(&f, &sections)?);
        }
        let mut identity_targets = Vec::new();
        for (s, k, kind) in get::<Vec<(String, String, String)>>(spec, "identity_targets")? {
            identity_targets.push((s, k, Kind::parse(&kind).ok_or_else(|| err(format!("identity kind {kind}")))?));
        }
        let sources: Vec<Option<Path>> = get::<Vec<Option<Vec<String>>>>(spec, "country_sources")?.into_iter().map(|p| p.map(Path::new)).collect();
        let country_sources: [Option<Path>; 4] =
            sources.try_into().map_err(|_| err("country_sources: four paths (field, phone, ip, locale)".into()))?;
        let shape_spec: Bound<'_, PyDict> = get(spec, "shape")?;
        let shape = match get::<String>(&shape_spec, "kind")?.as_str() {
            "sections" => Shape::Sections,
            "activation" => Shape::Activation { customer_id: get(&shape_spec, "customer_id")? },
            "audiohook" => Shape::Audiohook {
                visitor_from: get(&shape_spec, "visitor_from")?,
                require_visitor_id: get(&shape_spec, "require_visitor_id")?,
            },
            other => return Err(err(format!("no native form of the destination's event ({other})"))),
        };
        Ok(Plan {
            schema,
            framing,
            has_registry: get(spec, "has_registry")?,
            reader_fp: get(spec, "reader_fingerprint")?,
            sections,
            fields,
            ts: parse_ts(&get::<String>(spec, "timestamp_format")?)?,
            identity_targets,
            id_targets: pairs(spec, "id_targets")?,
            has_identifier_names: get(spec, "has_identifier_names")?,
            country_targets: pairs(spec, "country_targets")?,
            country_sources,
            default_country: get(spec, "default_country")?,
            alpha3: get::<String>(spec, "country_format")? == "alpha3",
            hash: get(spec, "hash")?,
            fold_gmail: get(spec, "fold_gmail")?,
            lowercase_names: get(spec, "lowercase_names")?,
            phone_digits: get::<String>(spec, "phone_format")? == "digits",
            enforce_consent: get(spec, "enforce_consent")?,
            require: get(spec, "require")?,
            any_of: get(spec, "any_of")?,
            forward_missing: get(spec, "forward_missing")?,
            event_names: get(spec, "event_names")?,
            max_event_bytes: get(spec, "max_event_bytes")?,
            shape,
            tables: tables.get().data.clone(),
            resolver,
            state: Mutex::new(State::default()),
            last_len: AtomicUsize::new(0),
        })
    }

    /// A Confluent writer schema id whose schema is the reader's (`Decoder._same`).
    fn add_writer_id(&self, py: Python<'_>, schema_id: u32) {
        // (the lock is taken without the GIL: `run` may hold it while it waits for the GIL)
        py.detach(|| {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if !st.writer_ids.contains(&schema_id) {
                st.writer_ids.push(schema_id);
            }
        })
    }

    /// Transform a batch of record values (bytes, or None for a tombstone): per record
    /// `(event_id, payload JSON bytes)`, or, when the Python pipeline must process it, why (a str).
    fn run<'py>(&self, py: Python<'py>, values: &Bound<'py, PyList>) -> PyResult<Bound<'py, PyList>> {
        let items: Vec<Bound<'py, PyAny>> = values.iter().collect();
        let mut slices: Vec<Input> = Vec::with_capacity(items.len());
        for item in &items {
            // borrowed, not copied (a Vec<u8> per record would cost ~5 µs at 300 bytes)
            slices.push(match item.cast::<PyBytes>() {
                Ok(b) => Input::Bytes(b.as_bytes()),
                Err(_) if item.is_none() => Input::Tombstone,
                Err(_) => Input::Other, // a bytearray, a memoryview: Python reads it
            });
        }
        let n = slices.len();
        // one batch at a time: a second thread waiting here while holding the GIL would deadlock
        // with the first, which needs the GIL back to ask Python or to hand its results over
        let mut state = match self.state.try_lock() {
            Ok(guard) => guard,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                return Err(pyo3::exceptions::PyRuntimeError::new_err("a native plan runs one batch at a time"))
            }
        };
        let mut results: Vec<Option<Done>> = (0..n).map(|_| None).collect();
        let mut pending: Vec<usize> = (0..n).collect();
        for round in 0..4 {
            let st: &State = &state;
            let done: Vec<(usize, Done)> = py.detach(|| {
                let ctx = Ctx { memo: &st.memo, writer_ids: &st.writer_ids };
                pending.iter().map(|&i| (i, self.run_one(slices[i], &ctx))).collect()
            });
            pending.clear();
            let mut queries: Vec<Query> = Vec::new();
            let mut queued: HashSet<(usize, String)> = HashSet::new(); // each value asked once per round
            for (i, d) in done {
                match d {
                    Done::Need(qs) => {
                        pending.push(i);
                        for q in qs {
                            if queued.insert((q.asked.slot(), q.key.clone())) {
                                queries.push(q);
                            }
                        }
                    }
                    d => results[i] = Some(d),
                }
            }
            if pending.is_empty() || round == 3 {
                break;
            }
            let asked = PyList::empty(py);
            for q in &queries {
                asked.append(query_tuple(py, q)?)?;
            }
            let answers = self.resolver.call1(py, (asked,))?;
            let answers: Vec<Option<String>> = answers.extract(py)?;
            if answers.len() != queries.len() {
                return Err(err("resolver answered a different number of queries".into()));
            }
            if state.memo.len() + queries.len() > MEMO_LIMIT {
                state.memo.clear();
            }
            for (q, a) in queries.into_iter().zip(answers) {
                *state.asked.entry(q.asked.name()).or_default() += 1;
                state.memo.insert(q, a);
            }
        }
        for i in pending {
            results[i] = Some(Done::Back(Back::Unresolved));
        }
        let out = PyList::empty(py);
        for r in results {
            match r {
                Some(Done::Payload(event_id, body)) => {
                    state.payloads += 1;
                    let t = PyTuple::new(py, [PyString::new(py, &event_id).into_any(), PyBytes::new(py, &body).into_any()])?;
                    out.append(t)?;
                }
                Some(Done::Back(why)) => {
                    *state.handed_back.entry(why.as_str()).or_default() += 1;
                    out.append(PyString::intern(py, why.as_str()))?;
                }
                _ => out.append(PyString::intern(py, Back::Unresolved.as_str()))?,
            }
        }
        Ok(out)
    }

    /// Forget Python's answers (a benchmark's cold pass).
    fn forget(&self, py: Python<'_>) {
        py.detach(|| self.state.lock().unwrap_or_else(|e| e.into_inner()).memo.clear())
    }

    /// What the plan did so far: payloads made, records handed back (per reason), values asked of Python (per kind).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (payloads, handed_back, asked, remembered) = py.detach(|| {
            let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            (st.payloads, st.handed_back.clone(), st.asked.clone(), st.memo.len())
        });
        let d = PyDict::new(py);
        d.set_item("payloads", payloads)?;
        d.set_item("handed_back", handed_back)?;
        d.set_item("asked", asked)?;
        d.set_item("remembered", remembered)?;
        Ok(d)
    }
}
