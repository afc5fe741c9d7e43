//! The Avro binary decoder of the native core.
//!
//! The reference is `streams.codec.Decoder(schema, "plain", store).decode(data)` with writer ==
//! reader, i.e. the schema-compiled reader of `streams/codec/compiled.py` (fastavro's values and
//! logical readers, plus its block bounds). Every rule below mirrors that reader, including where
//! it is lenient (any non-zero byte is `true`, a negative enum index counts from the end, an `int`
//! holds any 64-bit value) and where it is strict (varints over 10 bytes, negative lengths, block
//! counts the bytes cannot hold). Whatever Python rejects, this rejects; what it does not
//! reproduce exactly (decimals, recursive schemas, ...) it refuses too, so Python decides.
use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use serde_json::{Map as JsonMap, Value as Json};

use crate::json::{self, TsFormat};
use crate::value::{RecordShape, Value};

/// Why the native decoder did not produce a value: the caller hands the record to Python, which
/// gives the exact rejection (or decodes what this decoder does not support).
#[derive(Debug)]
pub struct NotDecoded;

/// `datetime(1, 1, 1, tzinfo=UTC)` and `datetime(9999, 12, 31, 23, 59, 59, 999999)` in
/// microseconds since the epoch: fastavro's `epoch + timedelta(...)` overflows outside them.
const MIN_TIMESTAMP_MICROS: i64 = -62_135_596_800_000_000;
const MAX_TIMESTAMP_MICROS: i64 = 253_402_300_799_999_999;
/// `date.fromordinal(days + 719163)` accepts ordinals 1..=3652059.
const MIN_DATE_DAYS: i64 = -719_162;
const MAX_DATE_DAYS: i64 = 2_932_896;
/// `compiled.zero_width_budget`: zero-width array items a record may hold, base + per byte.
const ZERO_WIDTH_ITEMS_BASE: i128 = 1024;
const ZERO_WIDTH_ITEMS_PER_BYTE: i128 = 8;
/// Above this many entries a map finds repeated keys through a hash index instead of a scan.
const MAP_SCAN_LIMIT: usize = 16;

/// One node of a compiled schema; children are indices into `Schema::nodes`, so a named type
/// referenced twice is one node.
#[derive(Debug)]
enum Node {
    Null,
    Boolean,
    /// `int` and `long`: the compiled reader reads both as a 64-bit varint (no 32-bit check).
    Long,
    Float,
    Double,
    Str,
    Bytes,
    Fixed(usize),
    Enum(Vec<String>),
    Array { items: usize, width: u64 },
    Map { values: usize, width: u64 },
    Union(Vec<usize>),
    Record { shape: RecordShape, fields: Vec<usize> },
    TimestampMillis,
    TimestampMicros,
    Date,
    TimeMillis,
    TimeMicros,
    Uuid,
    /// `bytes`/`fixed` decimal: Python makes a `Decimal` (then a float): always handed back.
    Decimal,
}

/// A schema compiled for decoding (the route's reader schema; writer == reader).
#[derive(Debug)]
pub struct Schema {
    nodes: Vec<Node>,
    root: usize,
}

const PRIMITIVES: [&str; 8] = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"];

struct Compiler {
    nodes: Vec<Node>,
    /// `_min_width` of each node: the fewest bytes its value encodes to.
    widths: Vec<u64>,
    /// Named types by full name, once their definition is complete (a reference to a type still
    /// being defined is a recursive type: refused, as the compiled reader refuses it).
    named: HashMap<String, usize>,
    /// Every full name defined or being defined (fastavro: "redefined named type").
    defined: Vec<String>,
}

impl Compiler {
    fn push(&mut self, node: Node, width: u64) -> usize {
        self.nodes.push(node);
        self.widths.push(width);
        self.nodes.len() - 1
    }

    fn primitive(&mut self, name: &str) -> Option<usize> {
        let (node, width) = match name {
            "null" => (Node::Null, 0),
            "boolean" => (Node::Boolean, 1),
            "int" | "long" => (Node::Long, 1),
            "float" => (Node::Float, 4),
            "double" => (Node::Double, 8),
            "bytes" => (Node::Bytes, 1),
            "string" => (Node::Str, 1),
            _ => return None,
        };
        Some(self.push(node, width))
    }

    /// fastavro's `schema_name`: (namespace for the children, full name).
    fn schema_name(&self, obj: &JsonMap<String, Json>, parent_ns: &str) -> Result<(String, String), String> {
        let name = match obj.get("name") {
            Some(Json::String(n)) => n.as_str(),
            _ => return Err("named type without a string name".into()),
        };
        let ns = match obj.get("namespace") {
            None => parent_ns,
            Some(Json::Null) => "",
            Some(Json::String(s)) => s.as_str(),
            Some(_) => return Err("namespace is not a string".into()),
        };
        let names = if let Some((space, _)) = name.rsplit_once('.') {
            (space.to_owned(), name.to_owned())
        } else if !ns.is_empty() {
            (ns.to_owned(), format!("{ns}.{name}"))
        } else {
            (String::new(), name.to_owned())
        };
        if self.defined.contains(&names.1) {
            return Err(format!("redefined named type {}", names.1));
        }
        Ok(names)
    }

    fn node(&mut self, schema: &Json, ns: &str) -> Result<usize, String> {
        match schema {
            Json::String(name) => {
                if let Some(i) = self.primitive(name) {
                    return Ok(i);
                }
                let full = if !name.contains('.') && !ns.is_empty() { format!("{ns}.{name}") } else { name.clone() };
                self.named.get(&full).copied().ok_or_else(|| format!("unknown or recursive type {full}"))
            }
            Json::Array(branches) => {
                let mut nodes = Vec::with_capacity(branches.len());
                for b in branches {
                    if b.is_array() {
                        return Err("union in a union".into());
                    }
                    nodes.push(self.node(b, ns)?);
                }
                Ok(self.push(Node::Union(nodes), 1))
            }
            Json::Object(obj) => self.complex(obj, ns),
            _ => Err("schema is not a string, list or object".into()),
        }
    }

    fn complex(&mut self, obj: &JsonMap<String, Json>, ns: &str) -> Result<usize, String> {
        let kind = match obj.get("type") {
            Some(Json::String(t)) => t.as_str(),
            _ => return Err("type is not a string".into()),
        };
        // fastavro's extract_logical_type: "<type>-<logicalType>" looked up in LOGICAL_READERS
        let logical = match obj.get("logicalType") {
            Some(Json::String(lt)) if !lt.is_empty() => Some(lt.as_str()),
            _ => None,
        };
        if PRIMITIVES.contains(&kind) {
            let (node, width) = match (kind, logical) {
                ("long", Some("timestamp-millis" | "local-timestamp-millis")) => (Node::TimestampMillis, 1),
                ("long", Some("timestamp-micros" | "local-timestamp-micros")) => (Node::TimestampMicros, 1),
                ("int", Some("date")) => (Node::Date, 1),
                ("int", Some("time-millis")) => (Node::TimeMillis, 1),
                ("long", Some("time-micros")) => (Node::TimeMicros, 1),
                ("string", Some("uuid")) => (Node::Uuid, 1),
                ("bytes", Some("decimal")) => (Node::Decimal, 1),
                _ => return Ok(self.primitive(kind).expect("a primitive type")),
            };
            return Ok(self.push(node, width));
        }
        match kind {
            "record" => {
                let (child_ns, full) = self.schema_name(obj, ns)?;
                self.defined.push(full.clone());
                let empty = Vec::new();
                let fields = match obj.get("fields") {
                    None => &empty,
                    Some(Json::Array(f)) => f,
                    Some(_) => return Err("fields is not a list".into()),
                };
                let mut names = Vec::with_capacity(fields.len());
                let mut nodes = Vec::with_capacity(fields.len());
                let mut width: u64 = 0;
                for f in fields {
                    let name = match f.get("name") {
                        Some(Json::String(n)) => n.clone(),
                        _ => return Err("field without a string name".into()),
                    };
                    if names.contains(&name) {
                        return Err(format!("duplicate field {name}"));
                    }
                    let ty = f.get("type").ok_or("field without a type")?;
                    let node = self.node(ty, &child_ns)?;
                    width = width.saturating_add(self.widths[node]);
                    names.push(name);
                    nodes.push(node);
                }
                let shape = RecordShape { name: full.clone(), fields: names };
                let i = self.push(Node::Record { shape, fields: nodes }, width);
                self.named.insert(full, i);
                Ok(i)
            }
            "enum" => {
                let (_, full) = self.schema_name(obj, ns)?;
                let symbols = match obj.get("symbols") {
                    Some(Json::Array(s)) => s
                        .iter()
                        .map(|s| s.as_str().map(str::to_owned).ok_or("enum symbol is not a string"))
                        .collect::<Result<Vec<_>, _>>()?,
                    _ => return Err("enum without symbols".into()),
                };
                self.defined.push(full.clone());
                let i = self.push(Node::Enum(symbols), 1);
                self.named.insert(full, i);
                Ok(i)
            }
            "fixed" => {
                let (_, full) = self.schema_name(obj, ns)?;
                let size = obj
                    .get("size")
                    .and_then(Json::as_u64)
                    .and_then(|s| usize::try_from(s).ok())
                    .ok_or("fixed size is not a non-negative integer")?;
                self.defined.push(full.clone());
                let node = if logical == Some("decimal") { Node::Decimal } else { Node::Fixed(size) };
                let i = self.push(node, size as u64);
                self.named.insert(full, i);
                Ok(i)
            }
            "array" => {
                let items = self.node(obj.get("items").ok_or("array without items")?, ns)?;
                let width = self.widths[items];
                Ok(self.push(Node::Array { items, width }, 1))
            }
            "map" => {
                let values = self.node(obj.get("values").ok_or("map without values")?, ns)?;
                // a key is at least its length byte
                let width = self.widths[values].saturating_add(1);
                Ok(self.push(Node::Map { values, width }, 1))
            }
            other => Err(format!("type {other} is not supported")),
        }
    }
}

/// The record's bytes and the reading position, plus the record-wide zero-width item budget.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    zero_width_budget: i128,
}

impl<'a> Reader<'a> {
    #[inline]
    fn byte(&mut self) -> Result<u8, NotDecoded> {
        let b = *self.data.get(self.pos).ok_or(NotDecoded)?;
        self.pos += 1;
        Ok(b)
    }

    /// A zig-zag varint of at most 10 bytes, wrapped to 64 bits (`compiled._read_long`).
    #[inline]
    fn long(&mut self) -> Result<i64, NotDecoded> {
        let b = self.byte()?;
        if b < 0x80 {
            return Ok(i64::from(b >> 1) ^ -i64::from(b & 1));
        }
        let mut n = u64::from(b & 0x7f);
        let mut shift = 7u32;
        loop {
            if shift >= 70 {
                return Err(NotDecoded);
            }
            let b = self.byte()?;
            if shift < 64 {
                n |= u64::from(b & 0x7f) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        Ok((n >> 1) as i64 ^ -((n & 1) as i64))
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], NotDecoded> {
        if n > self.data.len() - self.pos {
            return Err(NotDecoded);
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    #[inline]
    fn bytes(&mut self) -> Result<&'a [u8], NotDecoded> {
        let n = self.long()?;
        if n < 0 {
            return Err(NotDecoded);
        }
        self.take(usize::try_from(n).map_err(|_| NotDecoded)?)
    }

    #[inline]
    fn str(&mut self) -> Result<&'a str, NotDecoded> {
        let b = self.bytes()?;
        // most text is ASCII: a word-at-a-time check is far cheaper than full validation per call
        if b.is_ascii() {
            // SAFETY: ASCII is valid UTF-8
            return Ok(unsafe { std::str::from_utf8_unchecked(b) });
        }
        std::str::from_utf8(b).map_err(|_| NotDecoded)
    }

    /// The item count of the next array/map block (0: the end), refused when the remaining bytes
    /// cannot hold that many items of `width` bytes, or zero-width items exceed the budget.
    fn block(&mut self, width: u64) -> Result<u64, NotDecoded> {
        let count = self.long()?;
        if count == 0 {
            return Ok(0);
        }
        if count < 0 {
            self.long()?; // the block's size in bytes: not needed, the items are read anyway
        }
        let count = count.unsigned_abs();
        if width > 0 {
            let remaining = (self.data.len() - self.pos) as u128;
            if u128::from(count) * u128::from(width) > remaining {
                return Err(NotDecoded);
            }
        } else {
            self.zero_width_budget -= i128::from(count);
            if self.zero_width_budget < 0 {
                return Err(NotDecoded);
            }
        }
        Ok(count)
    }
}

/// fastavro's `read_time_millis`/`read_time_micros`: hours, minutes and seconds from float
/// divisions truncated toward zero, the sub-second part by floor modulo; so a negative value
/// inside the first hour is a valid time (-1 ms is 00:00:00.999). Microseconds after midnight.
fn time_of_day(v: i64, per_second: i64) -> Result<i64, NotDecoded> {
    if v.unsigned_abs() > 1 << 53 {
        return Err(NotDecoded); // hours far beyond 23 (and the float division would round twice)
    }
    let f = v as f64;
    let h = (f / (3600 * per_second) as f64).trunc() as i64;
    if !(0..24).contains(&h) {
        return Err(NotDecoded);
    }
    let m = ((f / (60 * per_second) as f64).trunc() as i64).rem_euclid(60);
    let s = ((f / per_second as f64).trunc() as i64).rem_euclid(60);
    let sub = v.rem_euclid(per_second) * (1_000_000 / per_second);
    Ok(((h * 60 + m) * 60 + s) * 1_000_000 + sub)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `str(uuid.UUID(s))` for the common spellings: 32 hex digits with any hyphens, inside any
/// braces, after an optional "urn:uuid:". Other text `uuid.UUID` accepts (`0x`, underscores,
/// whitespace, signs) or rejects is handed to Python.
fn canonical_uuid(s: &str) -> Option<String> {
    let s = s.strip_prefix("urn:uuid:").unwrap_or(s);
    let inner = s.trim_matches(|c| c == '{' || c == '}');
    let mut digits = [0u8; 32];
    let mut n = 0;
    for &b in inner.as_bytes() {
        if b == b'-' {
            continue;
        }
        let d = hex_value(b)?;
        if n == 32 {
            return None;
        }
        digits[n] = d;
        n += 1;
    }
    if n != 32 {
        return None;
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for (i, d) in digits.iter().enumerate() {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push('-');
        }
        out.push(HEX[*d as usize] as char);
    }
    Some(out)
}

impl Schema {
    /// Compile from the schema's JSON text; Err(why) when this decoder does not support it.
    pub fn compile(json: &str) -> Result<Schema, String> {
        let parsed: Json = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
        let mut c = Compiler { nodes: Vec::new(), widths: Vec::new(), named: HashMap::new(), defined: Vec::new() };
        let root = c.node(&parsed, "")?;
        Ok(Schema { nodes: c.nodes, root })
    }

    /// Decode one record body (no framing): the whole input must be consumed.
    pub fn decode<'a>(&'a self, data: &'a [u8]) -> Result<Value<'a>, NotDecoded> {
        let budget = ZERO_WIDTH_ITEMS_BASE + ZERO_WIDTH_ITEMS_PER_BYTE * data.len() as i128;
        let mut r = Reader { data, pos: 0, zero_width_budget: budget };
        let v = self.read(self.root, &mut r)?;
        if r.pos != data.len() {
            return Err(NotDecoded); // trailing bytes
        }
        match v {
            // Decoder.decode wants a dict: a record, or a map at the top
            Value::Record(..) | Value::Map(_) => Ok(v),
            _ => Err(NotDecoded),
        }
    }

    fn read<'a>(&'a self, mut node: usize, r: &mut Reader<'a>) -> Result<Value<'a>, NotDecoded> {
        // a union only picks the node to read: followed here rather than by a recursive call
        while let Node::Union(branches) = &self.nodes[node] {
            let i = r.long()?;
            node = *usize::try_from(i).ok().and_then(|i| branches.get(i)).ok_or(NotDecoded)?;
        }
        Ok(match &self.nodes[node] {
            Node::Null => Value::Null,
            Node::Boolean => Value::Bool(r.byte()? != 0),
            Node::Long => Value::Int(r.long()?),
            Node::Float => {
                let b = r.take(4)?;
                Value::Float(f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            }
            Node::Double => {
                let b = r.take(8)?;
                Value::Float(f64::from_le_bytes(b.try_into().map_err(|_| NotDecoded)?))
            }
            Node::Str => Value::Str(r.str()?),
            Node::Bytes => Value::Bytes(r.bytes()?),
            Node::Fixed(size) => Value::Bytes(r.take(*size)?),
            Node::Enum(symbols) => {
                // a tuple index in Python: a negative one counts from the end
                let i = r.long()?;
                let n = symbols.len() as i64;
                let i = if i < 0 { i + n } else { i };
                if !(0..n).contains(&i) {
                    return Err(NotDecoded);
                }
                Value::Enum(&symbols[i as usize])
            }
            Node::Array { items, width } => {
                let mut out = Vec::new();
                loop {
                    let count = r.block(*width)?;
                    if count == 0 {
                        break;
                    }
                    out.reserve(count.min(1024) as usize);
                    for _ in 0..count {
                        out.push(self.read(*items, r)?);
                    }
                }
                Value::Array(out)
            }
            Node::Map { values, width } => {
                let mut entries: Vec<(&'a str, Value<'a>)> = Vec::new();
                let mut index: HashMap<&'a str, usize> = HashMap::new();
                loop {
                    let count = r.block(*width)?;
                    if count == 0 {
                        break;
                    }
                    entries.reserve(count.min(1024) as usize);
                    for _ in 0..count {
                        let key = r.str()?;
                        let value = self.read(*values, r)?;
                        // a dict: a repeated key keeps its first position and takes the last value
                        let seen = if entries.len() <= MAP_SCAN_LIMIT {
                            entries.iter().position(|(k, _)| *k == key)
                        } else {
                            if index.is_empty() {
                                index.extend(entries.iter().enumerate().map(|(i, (k, _))| (*k, i)));
                            }
                            index.get(key).copied()
                        };
                        match seen {
                            Some(i) => entries[i].1 = value,
                            None => {
                                if !index.is_empty() {
                                    index.insert(key, entries.len());
                                }
                                entries.push((key, value));
                            }
                        }
                    }
                }
                Value::Map(entries)
            }
            Node::Union(_) => unreachable!("unions are followed above"),
            Node::Record { shape, fields } => {
                let mut values = Vec::with_capacity(fields.len());
                for f in fields {
                    values.push(self.read(*f, r)?);
                }
                Value::Record(shape, values)
            }
            Node::TimestampMillis => {
                let micros = r.long()?.checked_mul(1000).ok_or(NotDecoded)?;
                timestamp(micros)?
            }
            Node::TimestampMicros => timestamp(r.long()?)?,
            Node::Date => {
                let days = r.long()?;
                if !(MIN_DATE_DAYS..=MAX_DATE_DAYS).contains(&days) {
                    return Err(NotDecoded);
                }
                Value::Date(days as i32)
            }
            Node::TimeMillis => Value::Time(time_of_day(r.long()?, 1000)?),
            Node::TimeMicros => Value::Time(time_of_day(r.long()?, 1_000_000)?),
            Node::Uuid => Value::Uuid(canonical_uuid(r.str()?).ok_or(NotDecoded)?),
            Node::Decimal => return Err(NotDecoded),
        })
    }
}

fn timestamp<'a>(micros: i64) -> Result<Value<'a>, NotDecoded> {
    if !(MIN_TIMESTAMP_MICROS..=MAX_TIMESTAMP_MICROS).contains(&micros) {
        return Err(NotDecoded);
    }
    Ok(Value::Timestamp(micros))
}

// -- test hooks ------------------------------------------------------------------------------

fn parse_ts_format(name: &str) -> PyResult<TsFormat> {
    match name {
        "iso" => Ok(TsFormat::Iso),
        "unix" => Ok(TsFormat::Unix),
        "unix_ms" => Ok(TsFormat::UnixMs),
        _ => Err(pyo3::exceptions::PyValueError::new_err(format!("unknown timestamp format {name:?}"))),
    }
}

fn record_json(schema: &Schema, data: &[u8], ts: TsFormat, out: &mut Vec<u8>) -> bool {
    out.clear();
    match schema.decode(data) {
        Ok(v) => json::write_value(out, &v, ts).is_ok(),
        Err(NotDecoded) => false,
    }
}

/// Test hook: `orjson.dumps(_json_value(Decoder.decode(data), ts_format))` of one plain record,
/// or None when the native side does not decide it (schema refused, bytes rejected, no JSON).
#[pyfunction]
pub fn _avro_json<'py>(
    py: Python<'py>,
    schema_json: &str,
    data: &Bound<'py, PyBytes>,
    ts_format: &str,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let ts = parse_ts_format(ts_format)?;
    let Ok(schema) = Schema::compile(schema_json) else { return Ok(None) };
    let mut out = Vec::new();
    Ok(record_json(&schema, data.as_bytes(), ts, &mut out).then(|| PyBytes::new(py, &out)))
}

/// Test hook: `_avro_json` over a list of records with one compiled schema (a list of bytes or
/// None); raises ValueError when the schema does not compile natively.
#[pyfunction]
pub fn _avro_json_batch<'py>(
    py: Python<'py>,
    schema_json: &str,
    records: &Bound<'py, PyList>,
    ts_format: &str,
) -> PyResult<Bound<'py, PyList>> {
    let ts = parse_ts_format(ts_format)?;
    let schema = Schema::compile(schema_json).map_err(pyo3::exceptions::PyValueError::new_err)?;
    let result = PyList::empty(py);
    let mut out = Vec::new();
    for item in records.iter() {
        let data = item.cast::<PyBytes>()?;
        if record_json(&schema, data.as_bytes(), ts, &mut out) {
            result.append(PyBytes::new(py, &out))?;
        } else {
            result.append(py.None())?;
        }
    }
    Ok(result)
}

/// Benchmark hook: decodes each record `repeats` times (no JSON) and returns how many decoded;
/// the caller times the call.
#[pyfunction]
pub fn _avro_decode_count(schema_json: &str, records: &Bound<'_, PyList>, repeats: usize) -> PyResult<usize> {
    let schema = Schema::compile(schema_json).map_err(pyo3::exceptions::PyValueError::new_err)?;
    let items: Vec<Bound<'_, PyAny>> = records.iter().collect();
    let slices = items.iter().map(|r| r.cast::<PyBytes>().map(|b| b.as_bytes())).collect::<Result<Vec<_>, _>>()?;
    let mut decoded = 0;
    for _ in 0..repeats {
        for data in &slices {
            decoded += usize::from(std::hint::black_box(schema.decode(data)).is_ok());
        }
    }
    Ok(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_limits() {
        let mut r = Reader { data: &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], pos: 0, zero_width_budget: 0 };
        assert_eq!(r.long().unwrap(), i64::MIN);
        let eleven = [0x80u8, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
        let mut r = Reader { data: &eleven, pos: 0, zero_width_budget: 0 };
        assert!(r.long().is_err());
    }

    #[test]
    fn time_of_day_follows_fastavro() {
        assert_eq!(time_of_day(-1, 1000).unwrap(), 999_000);
        assert_eq!(time_of_day(-60_000_001, 1_000_000).unwrap(), (59 * 60) * 1_000_000 + 999_999);
        assert!(time_of_day(86_400_000, 1000).is_err());
    }

    #[test]
    fn uuid_spellings() {
        let c = "01234567-89ab-cdef-0123-456789abcdef";
        assert_eq!(canonical_uuid("{{0123456789ABCDEF0123456789abcdef}").as_deref(), Some(c));
        assert_eq!(canonical_uuid("urn:uuid:0123456789abcdef0123456789abcdef").as_deref(), Some(c));
        assert_eq!(canonical_uuid("0x23456789abcdef0123456789abcdef"), None);
    }
}
