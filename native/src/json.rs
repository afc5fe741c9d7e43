//! JSON output byte-identical to `orjson.dumps` (orjson 3.13) of what `_json_value`
//! (`streams/pipeline/mapping.py`) makes of a decoded value.
//!
//! orjson writes compact JSON: no spaces, strings with only `"`, `\` and the control characters
//! below 0x20 escaped (`\b \t \n \f \r` short, the rest `\u00xx`; DEL, U+2028 and all other text
//! raw), floats as their shortest round-trip digits (ryu's, Python's repr's) in decimal notation
//! from 1e-5 up to below 1e16 and as `de±x` / `d.ddde±x` outside, NaN and infinities as `null`.
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::value::Value;

/// The destination's timestamp format (`streams.pipeline.mapping.TimestampFormat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TsFormat {
    Iso,
    Unix,
    UnixMs,
}

/// The value has no exact native JSON form here (the caller hands the record to Python).
#[derive(Debug)]
pub struct NoJson;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Per byte: 0 = written as is, `u` = `\u00xx`, else the letter after the backslash.
static ESCAPE: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = b'u';
        i += 1;
    }
    t[0x08] = b'b';
    t[0x09] = b't';
    t[0x0a] = b'n';
    t[0x0c] = b'f';
    t[0x0d] = b'r';
    t[b'"' as usize] = b'"';
    t[b'\\' as usize] = b'\\';
    t
};

pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // most strings need no escape at all: find the first byte that does, eight at a time
    let clean = clean_prefix(bytes);
    if clean == bytes.len() {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate().skip(clean) {
        let esc = ESCAPE[b as usize];
        if esc == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if esc == b'u' {
            out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]]);
        } else {
            out.extend_from_slice(&[b'\\', esc]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// How many leading bytes need no escape: whole 8-byte words are tested at once (a byte below
/// 0x20, a `"` or a `\\` anywhere in the word flags it), the flagged word byte by byte.
fn clean_prefix(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while i + 8 <= bytes.len() {
        let w = u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or([0; 8]));
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        let q = w ^ (ONES * b'"' as u64);
        let quote = q.wrapping_sub(ONES) & !q & HIGH;
        let b = w ^ (ONES * b'\\' as u64);
        let backslash = b.wrapping_sub(ONES) & !b & HIGH;
        if control | quote | backslash != 0 {
            break;
        }
        i += 8;
    }
    while i < bytes.len() && ESCAPE[bytes[i] as usize] == 0 {
        i += 1;
    }
    i
}

pub fn write_int(out: &mut Vec<u8>, i: i64) {
    let mut buf = [0u8; 20];
    let mut pos = buf.len();
    let mut n = i.unsigned_abs();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[pos..]);
}

pub fn write_float(out: &mut Vec<u8>, f: f64) {
    if !f.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    // ryu chooses the same digits and notation; orjson signs a positive exponent ("1e+16")
    let mut buf = ryu::Buffer::new();
    let s = buf.format_finite(f).as_bytes();
    match s.iter().position(|&c| c == b'e') {
        Some(e) if s[e + 1] != b'-' => {
            out.extend_from_slice(&s[..=e]);
            out.push(b'+');
            out.extend_from_slice(&s[e + 1..]);
        }
        _ => out.extend_from_slice(s),
    }
}

fn push2(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
}

fn push_year(out: &mut Vec<u8>, y: i64) {
    let y = y as u32;
    out.extend_from_slice(&[b'0' + (y / 1000) as u8, b'0' + (y / 100 % 10) as u8, b'0' + (y / 10 % 10) as u8, b'0' + (y % 10) as u8]);
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian, H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

const MICROS_PER_DAY: i64 = 86_400_000_000;
/// Day counts of 0001-01-01 and 9999-12-31: Python's `date` range.
const MIN_DAYS: i64 = -719_162;
const MAX_DAYS: i64 = 2_932_896;

/// `orjson.dumps(date.isoformat())` of a day count since the epoch: `"YYYY-MM-DD"`.
pub fn write_date(out: &mut Vec<u8>, days: i32) -> Result<(), NoJson> {
    let days = i64::from(days);
    if !(MIN_DAYS..=MAX_DAYS).contains(&days) {
        return Err(NoJson);
    }
    let (y, m, d) = civil_from_days(days);
    out.push(b'"');
    push_date(out, y, m, d);
    out.push(b'"');
    Ok(())
}

/// `YYYY-MM-DD` (the date of `date.isoformat()` and of the ISO timestamps).
fn push_date(out: &mut Vec<u8>, y: i64, m: u32, d: u32) {
    push_year(out, y);
    out.push(b'-');
    push2(out, m);
    out.push(b'-');
    push2(out, d);
}

/// `orjson.dumps(time.isoformat())`: `"HH:MM:SS"`, with `.ffffff` when there are microseconds.
pub fn write_time(out: &mut Vec<u8>, micros: i64) -> Result<(), NoJson> {
    if !(0..MICROS_PER_DAY).contains(&micros) {
        return Err(NoJson);
    }
    let secs = micros / 1_000_000;
    let sub = (micros % 1_000_000) as u32;
    out.push(b'"');
    push2(out, (secs / 3600) as u32);
    out.push(b':');
    push2(out, (secs / 60 % 60) as u32);
    out.push(b':');
    push2(out, (secs % 60) as u32);
    if sub != 0 {
        out.extend_from_slice(&[
            b'.',
            b'0' + (sub / 100_000) as u8,
            b'0' + (sub / 10_000 % 10) as u8,
            b'0' + (sub / 1000 % 10) as u8,
            b'0' + (sub / 100 % 10) as u8,
            b'0' + (sub / 10 % 10) as u8,
            b'0' + (sub % 10) as u8,
        ]);
    }
    out.push(b'"');
    Ok(())
}

/// A JSON object of (key, value) pairs in the given order (a record's fields, a map's entries).
fn write_object<'v, 'a: 'v>(out: &mut Vec<u8>, pairs: impl Iterator<Item = (&'v str, &'v Value<'a>)>, ts: TsFormat) -> Result<(), NoJson> {
    out.push(b'{');
    for (i, (key, value)) in pairs.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        write_value(out, value, ts)?;
    }
    out.push(b'}');
    Ok(())
}

/// `orjson.dumps(_json_value(v, ts))` appended to `out`.
pub fn write_value(out: &mut Vec<u8>, v: &Value, ts: TsFormat) -> Result<(), NoJson> {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => write_int(out, *i),
        Value::Float(f) => write_float(out, *f),
        Value::Str(s) | Value::Enum(s) => write_str(out, s),
        Value::Bytes(b) => {
            out.reserve(b.len() * 2 + 2);
            out.push(b'"');
            for &x in b.iter() {
                out.extend_from_slice(&[HEX[(x >> 4) as usize], HEX[(x & 0xf) as usize]]);
            }
            out.push(b'"');
        }
        Value::Record(shape, values) => write_object(out, shape.fields.iter().map(String::as_str).zip(values), ts)?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item, ts)?;
            }
            out.push(b']');
        }
        Value::Map(entries) => write_object(out, entries.iter().map(|(k, v)| (*k, v)), ts)?,
        Value::Timestamp(micros) => write_timestamp(out, *micros, ts)?,
        Value::Date(days) => write_date(out, *days)?,
        Value::Time(micros) => write_time(out, *micros)?,
        Value::Uuid(s) => write_str(out, s),
    }
    Ok(())
}

/// `format_timestamp` of a timestamp (microseconds since the epoch) in the destination's format,
/// as JSON (a string for iso, an int otherwise); Err when Python must do it (years < 1000, whose
/// text comes from the platform's strftime, and values outside `datetime`'s range).
pub fn write_timestamp(out: &mut Vec<u8>, micros: i64, ts: TsFormat) -> Result<(), NoJson> {
    if !(MIN_DAYS * MICROS_PER_DAY..=(MAX_DAYS + 1) * MICROS_PER_DAY - 1).contains(&micros) {
        return Err(NoJson);
    }
    // milliseconds floored, as `(when - EPOCH) // timedelta(milliseconds=1)` and isoformat's
    // truncated microseconds both do
    let millis = micros.div_euclid(1000);
    match ts {
        TsFormat::UnixMs => write_int(out, millis),
        TsFormat::Unix => write_int(out, millis.div_euclid(1000)),
        TsFormat::Iso => {
            let days = micros.div_euclid(MICROS_PER_DAY);
            let (y, m, d) = civil_from_days(days);
            if y < 1000 {
                return Err(NoJson);
            }
            let in_day = millis.rem_euclid(86_400_000);
            let secs = (in_day / 1000) as u32;
            let ms = (in_day % 1000) as u32;
            out.push(b'"');
            push_date(out, y, m, d);
            out.push(b'T');
            push2(out, secs / 3600);
            out.push(b':');
            push2(out, secs / 60 % 60);
            out.push(b':');
            push2(out, secs % 60);
            out.extend_from_slice(&[b'.', b'0' + (ms / 100) as u8, b'0' + (ms / 10 % 10) as u8, b'0' + (ms % 10) as u8, b'Z', b'"']);
        }
    }
    Ok(())
}

// -- test hooks ------------------------------------------------------------------------------

/// Test hook: `orjson.dumps(f)` for a float.
#[pyfunction]
pub fn _json_float<'py>(py: Python<'py>, f: f64) -> Bound<'py, PyBytes> {
    let mut out = Vec::with_capacity(24);
    write_float(&mut out, f);
    PyBytes::new(py, &out)
}

/// Test hook: `orjson.dumps(s)` for a string.
#[pyfunction]
pub fn _json_str<'py>(py: Python<'py>, s: &str) -> Bound<'py, PyBytes> {
    let mut out = Vec::with_capacity(s.len() + 2);
    write_str(&mut out, s);
    PyBytes::new(py, &out)
}

/// Test hook: `orjson.dumps(format_timestamp(datetime_of(micros), ts_format))`, None when handed back.
#[pyfunction]
pub fn _json_timestamp<'py>(py: Python<'py>, micros: i64, ts_format: &str) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let ts = match ts_format {
        "iso" => TsFormat::Iso,
        "unix" => TsFormat::Unix,
        "unix_ms" => TsFormat::UnixMs,
        _ => return Err(pyo3::exceptions::PyValueError::new_err("unknown timestamp format")),
    };
    let mut out = Vec::new();
    Ok(write_timestamp(&mut out, micros, ts).ok().map(|()| PyBytes::new(py, &out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(f: f64) -> String {
        let mut out = Vec::new();
        write_float(&mut out, f);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn floats_as_orjson() {
        assert_eq!(float(1e16), "1e+16");
        assert_eq!(float(1e-7), "1e-7");
        assert_eq!(float(0.000025), "0.000025");
        assert_eq!(float(100.0), "100.0");
        assert_eq!(float(-0.0), "-0.0");
        assert_eq!(float(f64::NAN), "null");
        assert_eq!(float(f64::NEG_INFINITY), "null");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(MIN_DAYS), (1, 1, 1));
        assert_eq!(civil_from_days(MAX_DAYS), (9999, 12, 31));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}

