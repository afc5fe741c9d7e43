//! The Avro binary decoder of the native core (stub: owned by the decoder task).
use crate::value::Value;

/// Why the native decoder did not produce a value: the caller hands the record to Python, which
/// gives the exact rejection (or decodes what this decoder does not support).
#[derive(Debug)]
pub struct NotDecoded;

/// A schema compiled for decoding (the route's reader schema; writer == reader).
pub struct Schema {}

impl Schema {
    /// Compile from the schema's JSON text; Err(why) when this decoder does not support it.
    pub fn compile(_json: &str) -> Result<Schema, String> {
        Err("not implemented".into())
    }

    /// Decode one record body (no framing): the whole input must be consumed.
    pub fn decode<'a>(&'a self, _data: &'a [u8]) -> Result<Value<'a>, NotDecoded> {
        Err(NotDecoded)
    }
}
