//! E.164 phone numbers (stub: owned by the phone task).
use pyo3::prelude::*;

/// A decision the native code made, or "Python decides" (the reference computes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided<T> {
    Done(T),
    Python,
}

pub struct PhoneTables {}

impl PhoneTables {
    /// From the data `streams.native_data.phone_tables()` builds out of phonenumbers' metadata.
    pub fn from_py(_data: &Bound<'_, PyAny>) -> PyResult<PhoneTables> {
        Ok(PhoneTables {})
    }
    /// `streams.pipeline.phone.e164(value, region)`: `region` upper-case alpha-2 or None.
    pub fn e164(&self, _value: &str, _region: Option<&str>) -> Decided<Option<String>> {
        Decided::Python
    }
    /// `streams.pipeline.phone.region_of_e164(number)` for an `e164` result.
    pub fn region_of_e164(&self, _number: &str) -> Decided<Option<String>> {
        Decided::Python
    }
}
