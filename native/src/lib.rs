//! The native core of s2s-bridge, imported as `streams._native`.
//!
//! The Python pipeline (`streams/pipeline/`) is the reference: everything here must give
//! byte-identical results, and whatever this core cannot do exactly it hands back (`False`) so
//! that the caller runs the Python path for that value. Pure computation only: no I/O, no
//! threads, no global state, so the pipeline stays pure with it.
//!
//! First slice (docs/native.md): the identity stage for e-mails, names and opaque ids in ASCII,
//! with SHA-256 and the pre-hashed pass-through.

pub mod avro;
pub mod json;
pub mod phone;
pub mod value;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyString};
use sha2::{Digest, Sha256};

/// What the identity stage makes of one value.
#[derive(Debug, PartialEq, Eq)]
enum Identified {
    /// The identifier as the destination wants it (normalised, hashed when the profile says so).
    Value(String),
    /// It normalises to nothing (the Python path returns None).
    Nothing,
    /// Not decided here (non-ASCII text, phone numbers): the Python path decides.
    Python,
}

/// ASCII characters Python's `str.strip()` and `str.split()` treat as whitespace: besides the
/// usual six, the information separators 0x1C..0x1F (`Py_UNICODE_ISSPACE`).
fn is_py_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f)
}

/// `str.strip()` of an ASCII string (`streams.pipeline.text.trim`: its zero-width characters are
/// never ASCII).
fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii() && is_py_space(c as u8))
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `streams.pipeline.identity._email` for an ASCII value already trimmed.
fn email(trimmed: &str, fold_gmail: bool) -> Option<String> {
    let email = trimmed.to_ascii_lowercase();
    let (local, domain) = email.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() || local.contains('@') {
        return None;
    }
    if email.bytes().any(is_py_space) {
        return None;
    }
    if !domain.contains('.') || domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
        return None;
    }
    if fold_gmail && (domain == "gmail.com" || domain == "googlemail.com") {
        let folded: String = local.split('+').next().unwrap_or("").chars().filter(|&c| c != '.').collect();
        if folded.is_empty() {
            return None;
        }
        return Some(folded + "@gmail.com");
    }
    Some(email)
}

fn sha256_hex(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(value.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest.iter() {
        out.push(HEX[(byte >> 4) as usize] as char);
        out.push(HEX[(byte & 0x0f) as usize] as char);
    }
    out
}

/// One destination's identity profile (`streams.pipeline.identity.IdentityProfile`, without the
/// phone format: phones take the Python path in this slice).
#[pyclass(frozen, module = "streams._native")]
struct IdentityPlan {
    hash: bool,
    fold_gmail: bool,
    lowercase_names: bool,
}

impl IdentityPlan {
    /// `streams.pipeline.identity._identifier(kind, value, profile, region)` where it is exact.
    fn identify(&self, kind: &str, value: &str) -> Identified {
        if !value.is_ascii() {
            return Identified::Python; // Unicode case, NFC and whitespace stay with Python
        }
        let trimmed = trim(value);
        if is_sha256_hex(trimmed) {
            return Identified::Value(trimmed.to_ascii_lowercase());
        }
        let normalised = match kind {
            "email" => email(trimmed, self.fold_gmail),
            "name" if trimmed.is_empty() => None,
            "name" if self.lowercase_names => Some(trimmed.to_ascii_lowercase()),
            "name" | "id" if !trimmed.is_empty() => Some(trimmed.to_owned()),
            "id" => None,
            "phone" => return Identified::Python,
            _ => None,
        };
        match normalised {
            None => Identified::Nothing,
            Some(v) if self.hash => Identified::Value(sha256_hex(&v)),
            Some(v) => Identified::Value(v),
        }
    }
}

#[pymethods]
impl IdentityPlan {
    #[new]
    #[pyo3(signature = (hash, fold_gmail, lowercase_names))]
    fn new(hash: bool, fold_gmail: bool, lowercase_names: bool) -> Self {
        IdentityPlan { hash, fold_gmail, lowercase_names }
    }

    /// The identifier (str), None when it normalises to nothing, or False when the Python path
    /// must decide. The value is borrowed, never copied into Rust.
    fn identifier<'py>(&self, py: Python<'py>, kind: &str, value: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self.identify(kind, value.to_str()?) {
            Identified::Value(v) => PyString::new(py, &v).into_any(),
            Identified::Nothing => py.None().into_bound(py),
            Identified::Python => PyBool::new(py, false).to_owned().into_any(),
        })
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<IdentityPlan>()?;
    m.add_function(wrap_pyfunction!(avro::_avro_json, m)?)?;
    m.add_function(wrap_pyfunction!(avro::_avro_json_batch, m)?)?;
    m.add_function(wrap_pyfunction!(avro::_avro_decode_count, m)?)?;
    m.add_function(wrap_pyfunction!(json::_json_float, m)?)?;
    m.add_function(wrap_pyfunction!(json::_json_str, m)?)?;
    m.add_function(wrap_pyfunction!(json::_json_timestamp, m)?)?;
    Ok(())
}
