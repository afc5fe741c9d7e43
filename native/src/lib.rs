//! The native core of s2s-bridge, imported as `streams._native`.
//!
//! Each route compiles into a `plan::Plan` that turns a consumed batch of Avro bytes into the
//! destination's event JSON in one call (docs/native.md). The Python pipeline (`streams/pipeline/`)
//! is the reference: a plan makes only payloads it reproduces byte for byte and hands every other
//! record back to it. Pure computation: no I/O, no threads, no global state.
//!
//! Modules: `avro` (decoder) -> `value` (the decoded record, borrowed) -> `plan` (mapping, enrich,
//! consent, the event) with `text` (identifier and country text), `phone` (E.164) and `json`
//! (orjson-identical output).

pub mod avro;
pub mod json;
pub mod phone;
pub mod plan;
pub mod text;
pub mod value;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<plan::Plan>()?;
    m.add_class::<plan::Tables>()?;
    m.add_class::<phone::PhoneTables>()?;
    // test hooks of the decoder and the writer (tests/unit/test_native_avro.py)
    m.add_function(wrap_pyfunction!(avro::_avro_json, m)?)?;
    m.add_function(wrap_pyfunction!(avro::_avro_json_batch, m)?)?;
    m.add_function(wrap_pyfunction!(avro::_avro_decode_count, m)?)?;
    m.add_function(wrap_pyfunction!(json::_json_float, m)?)?;
    m.add_function(wrap_pyfunction!(json::_json_str, m)?)?;
    m.add_function(wrap_pyfunction!(json::_json_timestamp, m)?)?;
    Ok(())
}
