//! JSON output byte-identical to `orjson.dumps` (stub: owned by the decoder task).
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

pub fn write_str(_out: &mut Vec<u8>, _s: &str) {}
pub fn write_int(_out: &mut Vec<u8>, _i: i64) {}
pub fn write_float(_out: &mut Vec<u8>, _f: f64) {}

/// `orjson.dumps(_json_value(v, ts))` appended to `out`.
pub fn write_value(_out: &mut Vec<u8>, _v: &Value, _ts: TsFormat) -> Result<(), NoJson> {
    Err(NoJson)
}

/// `format_timestamp` of a timestamp (microseconds since the epoch) in the destination's format,
/// as JSON (a string for iso, an int otherwise); Err when Python must do it (years < 1000).
pub fn write_timestamp(_out: &mut Vec<u8>, _micros: i64, _ts: TsFormat) -> Result<(), NoJson> {
    Err(NoJson)
}

/// `date.isoformat()` of days since the epoch, as a JSON string; Err outside years 1..=9999.
pub fn write_date(_out: &mut Vec<u8>, _days: i64) -> Result<(), NoJson> {
    Err(NoJson)
}
