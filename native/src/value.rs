//! A decoded Avro value that borrows from the record's bytes and the compiled schema: decoding
//! creates no Python object and copies no string.
//!
//! The variants follow what `streams.codec.Decoder.decode` returns in Python (the reference):
//! `int`/`long` are Python ints, `float` is widened to a Python float (f64), a timestamp is a
//! `datetime`, a `date` a `date`, `bytes`/`fixed` are `bytes`, an enum is its symbol (`str`).

/// The field names of one record type (the schema owns them; values point at them).
#[derive(Debug)]
pub struct RecordShape {
    pub name: String,
    pub fields: Vec<String>,
}

impl RecordShape {
    /// Index of a field by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f == name)
    }
}

#[derive(Debug)]
pub enum Value<'a> {
    Null,
    Bool(bool),
    /// Avro `int` and `long`.
    Int(i64),
    /// Avro `float` (widened exactly, as Python does) and `double`.
    Float(f64),
    Str(&'a str),
    /// Avro `bytes` and `fixed` (Python `bytes`; `_json_value` writes them as lower-case hex).
    Bytes(&'a [u8]),
    /// An enum symbol (a Python `str` after decoding).
    Enum(&'a str),
    /// A record: its shape (field names, in schema order) and one value per field.
    Record(&'a RecordShape, Vec<Value<'a>>),
    Array(Vec<Value<'a>>),
    /// A map's entries in wire order, each key once: the decoder gives a key seen twice its first
    /// position and its last value, as a Python dict does.
    Map(Vec<(&'a str, Value<'a>)>),
    /// `timestamp-millis`/`-micros` and `local-timestamp-*`: microseconds since the epoch (a Python
    /// `datetime`; years 1..=9999 only, the decoder refuses others as Python does).
    Timestamp(i64),
    /// `date`: days since the epoch (a Python `date`).
    Date(i32),
    /// `time-millis`/`time-micros`: microseconds after midnight (a Python `time`).
    Time(i64),
    /// `uuid` on a string: the canonical lower-case text (`str(uuid.UUID(...))`).
    Uuid(String),
}
