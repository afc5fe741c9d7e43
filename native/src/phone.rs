//! E.164 phone numbers: `streams.pipeline.phone.e164` and `region_of_e164` where the reference
//! decides without `phonenumbers.parse`, from the metadata `streams.native_data.phone_tables()`
//! hands over. Everything that would reach the parser, and any non-ASCII input, is `Python`.
//!
//! Fixed shapes (`+digits`, formatted numbers, the `00` prefix) are byte loops; the metadata's
//! patterns run on the regex crate, compiled on first use: most calling codes are never seen.
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyString};
use regex::bytes::{Regex, RegexBuilder};

use crate::text::{is_py_space, py_strip as trim};

/// A decision the native code made, or "Python decides" (the reference computes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided<T> {
    Done(T),
    Python,
}

/// The reference takes a path not replicated here (or a pattern did not compile in Rust).
struct ToPython;
type Step<T> = Result<T, ToPython>;

const MIN_NSN: usize = 2; // phonenumbers' _MIN_LENGTH_FOR_NSN
const MAX_NSN: usize = 17; // phonenumbers' _MAX_LENGTH_FOR_NSN
const NON_GEO_REGION: &str = "001";
const UNKNOWN_REGION: &str = "ZZ";
/// Calling codes have 1-3 digits (`_split_country_code` looks no further).
const CALLING_CODES: usize = 1000;
/// A national number this long for the number-type checks goes to Python (Lengths is a bit set).
const MAX_LENGTH_BITS: usize = 64;

/// A phonenumbers (Python `re`) pattern; `streams.native_data` only passes the syntax both engines
/// read the same way, and the wrappers below give `re.match` / `re.fullmatch` anchoring.
struct Pattern {
    source: Box<str>,
    /// All ASCII digits (national prefixes "0", "8", ...): byte comparisons, no regex.
    literal: bool,
    at_start: OnceLock<Option<Regex>>,
    whole: OnceLock<Option<Regex>>,
}

impl Pattern {
    fn new(source: String) -> Pattern {
        Pattern {
            literal: !source.is_empty() && source.bytes().all(|b| b.is_ascii_digit()),
            source: source.into_boxed_str(),
            at_start: OnceLock::new(),
            whole: OnceLock::new(),
        }
    }

    fn compiled(cell: &OnceLock<Option<Regex>>, wrap: impl FnOnce() -> String) -> Step<&Regex> {
        // Inputs are ASCII digits, where Unicode `\d` and ASCII `\d` agree: the smaller byte regex.
        cell.get_or_init(|| RegexBuilder::new(&wrap()).unicode(false).build().ok())
            .as_ref()
            .ok_or(ToPython)
    }

    fn at_start(&self) -> Step<&Regex> {
        Self::compiled(&self.at_start, || format!("^(?:{})", self.source))
    }

    /// `re.match(pattern, s)`: the end of the match, None when there is none.
    fn match_end(&self, s: &[u8]) -> Step<Option<usize>> {
        if self.literal {
            return Ok(s.starts_with(self.source.as_bytes()).then_some(self.source.len()));
        }
        Ok(self.at_start()?.find(s).map(|m| m.end()))
    }

    /// `m = re.match(pattern, s)` and `m.end() > 0 or any(g is not None for g in m.groups())`.
    fn match_takes_something(&self, s: &[u8]) -> Step<bool> {
        if self.literal {
            return Ok(s.starts_with(self.source.as_bytes()));
        }
        let re = self.at_start()?;
        Ok(match re.find(s) {
            None => false,
            Some(m) if m.end() > 0 => true,
            // An empty match counts when a group took part: only captures can tell.
            Some(_) => re.captures(s).is_some_and(|c| c.iter().skip(1).any(|g| g.is_some())),
        })
    }

    /// Whether both anchorings compile in Rust (they are otherwise compiled on first use).
    fn compiles(&self) -> bool {
        self.literal
            || (self.at_start().is_ok() && Self::compiled(&self.whole, || format!("^(?:{})$", self.source)).is_ok())
    }

    /// `re.fullmatch(pattern, s) is not None`.
    fn fullmatch(&self, s: &[u8]) -> Step<bool> {
        if self.literal {
            return Ok(s == self.source.as_bytes());
        }
        Ok(Self::compiled(&self.whole, || format!("^(?:{})$", self.source))?.is_match(s))
    }
}

/// A `possible_length` list as a bit set; `listed` tells an empty list (no length check in
/// `_is_number_matching_desc`) from one with only phonenumbers' "-1" (no length fits).
#[derive(Clone, Copy, Default)]
struct Lengths {
    listed: bool,
    bits: u64,
}

impl Lengths {
    fn new(list: &[i64]) -> PyResult<Lengths> {
        let mut bits = 0u64;
        for &n in list {
            if n >= MAX_LENGTH_BITS as i64 {
                return Err(PyValueError::new_err(format!("phone tables: possible length {n} out of range")));
            }
            if n >= 0 {
                bits |= 1 << n;
            }
        }
        Ok(Lengths { listed: !list.is_empty(), bits })
    }

    fn contains(self, n: usize) -> bool {
        n < MAX_LENGTH_BITS && self.bits >> n & 1 == 1
    }
}

fn pattern(source: Option<String>) -> Option<Pattern> {
    source.filter(|s| !s.is_empty()).map(Pattern::new)
}

/// `streams.pipeline.phone._CallingCode`.
struct CodeInfo {
    national_prefix: Option<Pattern>,
    possible: Lengths,
}

struct CallingCode {
    regions: Vec<Box<str>>,
    /// None: one of its patterns is not portable (Python decides numbers of this code).
    fast: Option<CodeInfo>,
}

/// `streams.pipeline.phone._Region` without the IDD.
struct National {
    national_prefix: Option<Pattern>,
    viable: Option<Pattern>,
    possible: Lengths,
    local_only: Lengths,
    max_length: i64,
}

/// A number description: `_is_number_matching_desc`.
struct Desc {
    lengths: Lengths,
    pattern: Option<Pattern>,
}

impl Desc {
    fn matches(&self, nsn: &[u8]) -> Step<bool> {
        if self.lengths.listed && !self.lengths.contains(nsn.len()) {
            return Ok(false);
        }
        match &self.pattern {
            None => Ok(false),
            Some(p) => p.fullmatch(nsn),
        }
    }
}

/// What `_region_code_for_number_from_list` reads about one region.
struct NumberKinds {
    leading_digits: Option<Pattern>,
    /// The general description first, then the number types `_number_type_helper` tries.
    descs: Vec<Desc>,
}

impl NumberKinds {
    /// `_number_type_helper(nsn, metadata) != PhoneNumberType.UNKNOWN`.
    fn known_type(&self, nsn: &[u8]) -> Step<bool> {
        let Some((general, types)) = self.descs.split_first() else {
            return Ok(false);
        };
        if !general.matches(nsn)? {
            return Ok(false);
        }
        for desc in types {
            if desc.matches(nsn)? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

struct Region {
    country_code: u16,
    country_code_digits: Box<str>,
    idd: Option<Pattern>,
    /// None where `_region_info` is None (a national prefix transform rule).
    national: Option<National>,
    /// Only for regions under a calling code with several regions.
    kinds: Option<NumberKinds>,
}

enum RegionSlot {
    /// Not in phonenumbers.SUPPORTED_REGIONS: no metadata.
    Unsupported,
    /// A pattern that is not portable: Python decides whatever reads this region.
    Python,
    Known(Box<Region>),
}

/// Slot of an upper-case alpha-2 region code; None for any other string.
fn alpha2_index(region: &str) -> Option<usize> {
    match region.as_bytes() {
        &[a @ b'A'..=b'Z', b @ b'A'..=b'Z'] => Some((a - b'A') as usize * 26 + (b - b'A') as usize),
        _ => None,
    }
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct CallingCodeData {
    national_prefix_for_parsing: Option<String>,
    possible_lengths: Vec<i64>,
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct NationalData {
    national_prefix_for_parsing: Option<String>,
    viable: Option<String>,
    possible_lengths: Vec<i64>,
    local_only_lengths: Vec<i64>,
    max_length: i64,
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct DescData {
    possible_lengths: Vec<i64>,
    pattern: Option<String>,
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct RegionData {
    country_code: u16,
    idd: Option<String>,
    national: Option<NationalData>,
    #[pyo3(default)]
    leading_digits: Option<String>,
    #[pyo3(default)]
    number_descs: Option<Vec<DescData>>,
}

#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct TablesData {
    country_code_to_region_code: HashMap<u32, Vec<String>>,
    calling_codes: HashMap<u32, Option<CallingCodeData>>,
    regions: HashMap<String, Option<RegionData>>,
}

/// phonenumbers' metadata as the phone fast paths read it; exposed to Python as a test hook.
#[pyclass(frozen, module = "streams._native")]
pub struct PhoneTables {
    /// By calling code.
    codes: Vec<Option<CallingCode>>,
    /// By `alpha2_index`.
    regions: Vec<RegionSlot>,
}

/// `_NON_DIGIT.sub("", s)` in a stack buffer (the heap only past 48 digits).
struct DigitBuf {
    len: usize,
    buf: [u8; 48],
    spill: Vec<u8>,
}

impl DigitBuf {
    fn of(s: &[u8]) -> DigitBuf {
        let mut out = DigitBuf { len: 0, buf: [0; 48], spill: Vec::new() };
        for &b in s.iter().filter(|b| b.is_ascii_digit()) {
            if out.len < out.buf.len() {
                out.buf[out.len] = b;
                out.len += 1;
            } else {
                if out.spill.is_empty() {
                    out.spill.extend_from_slice(&out.buf);
                }
                out.spill.push(b);
            }
        }
        out
    }

    fn digits(&self) -> &[u8] {
        if self.spill.is_empty() {
            &self.buf[..self.len]
        } else {
            &self.spill
        }
    }
}

/// `_DOUBLE_ZERO.match(s)`: `[\s(]*0[\s.\-]*0[\s.\-]*(?=[1-9])`, the end of the match. The
/// classes never contain what follows them, so the greedy runs need no backtracking.
fn double_zero_end(s: &[u8]) -> Option<usize> {
    let separator = |b: u8| is_py_space(b) || b == b'.' || b == b'-';
    let mut i = s.iter().take_while(|&&b| is_py_space(b) || b == b'(').count();
    for _ in 0..2 {
        if s.get(i) != Some(&b'0') {
            return None;
        }
        i += 1;
        i += s[i..].iter().take_while(|&&b| separator(b)).count();
    }
    matches!(s.get(i), Some(b'1'..=b'9')).then_some(i)
}

fn is_punctuation(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b' ' | b'(' | b')' | b'.' | b'-')
}

/// `_INTL_FORMATTED.fullmatch(s)`: `\+[0-9][0-9 ().\-]*`.
fn is_intl_formatted(s: &[u8]) -> bool {
    s.len() >= 2 && s[0] == b'+' && s[1].is_ascii_digit() && s[2..].iter().all(|&b| is_punctuation(b))
}

/// `_NATIONAL_FORMATTED.fullmatch(s)`: `[(]?[0-9][0-9 ().\-]*`.
fn is_national_formatted(s: &[u8]) -> bool {
    let start = usize::from(s.first() == Some(&b'('));
    s.get(start).is_some_and(u8::is_ascii_digit) && s[start + 1..].iter().all(|&b| is_punctuation(b))
}

/// `"+" + _NON_DIGIT.sub("", s)`.
fn plus_digits(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    out.push('+');
    out.extend(s.iter().filter(|b| b.is_ascii_digit()).map(|&b| b as char));
    out
}

impl PhoneTables {
    /// From the data `streams.native_data.phone_tables()` builds out of phonenumbers' metadata.
    pub fn from_py(data: &Bound<'_, PyAny>) -> PyResult<PhoneTables> {
        let data: TablesData = data.extract()?;
        let mut codes: Vec<Option<CallingCode>> = (0..CALLING_CODES).map(|_| None).collect();
        for (code, regions) in data.country_code_to_region_code {
            let Some(slot) = codes.get_mut(code as usize) else {
                continue; // unreachable through _split_country_code's 1-3 digits
            };
            let fast = match data.calling_codes.get(&code) {
                Some(Some(info)) => Some(CodeInfo {
                    national_prefix: pattern(info.national_prefix_for_parsing.clone()),
                    possible: Lengths::new(&info.possible_lengths)?,
                }),
                _ => None,
            };
            *slot = Some(CallingCode { regions: regions.into_iter().map(String::into_boxed_str).collect(), fast });
        }
        let mut regions: Vec<RegionSlot> = (0..26 * 26).map(|_| RegionSlot::Unsupported).collect();
        for (name, region) in data.regions {
            let Some(index) = alpha2_index(&name) else {
                continue; // looked up by such a name, a region goes to Python (`PhoneTables::region`)
            };
            regions[index] = match region {
                None => RegionSlot::Python,
                Some(r) => RegionSlot::Known(Box::new(Region::from_data(r)?)),
            };
        }
        Ok(PhoneTables { codes, regions })
    }

    /// `streams.pipeline.phone.e164(value, region)`: `region` upper-case alpha-2 or None.
    pub fn e164(&self, value: &str, region: Option<&str>) -> Decided<Option<String>> {
        match self.e164_steps(value, region) {
            Ok(number) => Decided::Done(number),
            Err(ToPython) => Decided::Python,
        }
    }

    /// `streams.pipeline.phone.region_of_e164(number)` for an `e164` result.
    pub fn region_of_e164(&self, number: &str) -> Decided<Option<String>> {
        match self.region_steps(number) {
            Ok(region) => Decided::Done(region.map(str::to_owned)),
            Err(ToPython) => Decided::Python,
        }
    }

    /// `e164` = `_e164_plus` then `_e164`: for `+...` input both run the same fast paths before
    /// the parser, so one pass over them is the same decision.
    fn e164_steps(&self, value: &str, region: Option<&str>) -> Step<Option<String>> {
        if !value.is_ascii() {
            return Err(ToPython); // NFKC and Unicode digits in _prepare_phone
        }
        if let Some(possible) = self.fast_e164(value.as_bytes())? {
            return Ok(possible.then(|| value.to_owned()));
        }
        let prepared = self.prepare(value, region)?;
        let prepared = prepared.as_bytes();
        if is_intl_formatted(prepared) {
            let number = plus_digits(prepared);
            if let Some(possible) = self.fast_e164(number.as_bytes())? {
                return Ok(possible.then_some(number));
            }
        }
        if prepared.first() != Some(&b'+') {
            match region {
                // phonenumbers.parse raises "Missing or invalid default region"
                None if !prepared.contains(&b'+') => return Ok(None),
                None => {}
                Some(region) => {
                    if let Some(number) = self.fast_national(prepared, region)? {
                        return Ok(number);
                    }
                }
            }
        }
        Err(ToPython) // phonenumbers.parse
    }

    fn code(&self, code: usize) -> Option<&CallingCode> {
        self.codes.get(code)?.as_ref()
    }

    /// The region's metadata, None when phonenumbers has none.
    fn region(&self, region: &str) -> Step<Option<&Region>> {
        match &self.regions[alpha2_index(region).ok_or(ToPython)?] {
            RegionSlot::Unsupported => Ok(None),
            RegionSlot::Python => Err(ToPython),
            RegionSlot::Known(r) => Ok(Some(r)),
        }
    }

    /// `_split_country_code(digits)` for ASCII digits: the first 1-3 digit prefix that is a
    /// calling code (accumulating digits is `int()` of the prefix, leading zeros included).
    fn split_country_code<'a>(&self, digits: &'a [u8]) -> Option<(&CallingCode, &'a [u8])> {
        let mut code = 0usize;
        for size in 1..=digits.len().min(3) {
            code = code * 10 + usize::from(digits[size - 1] - b'0');
            if let Some(info) = self.code(code) {
                return Some((info, &digits[size..]));
            }
        }
        None
    }

    /// `_fast_e164(value)`: Some(whether `value` itself is the answer, else None), or None for
    /// the reference's False (the input needs the full parser).
    fn fast_e164(&self, value: &[u8]) -> Step<Option<bool>> {
        // _E164_CANDIDATE: \+[1-9][0-9]{3,18}
        if !(5..=20).contains(&value.len())
            || value[0] != b'+'
            || !(b'1'..=b'9').contains(&value[1])
            || !value[2..].iter().all(u8::is_ascii_digit)
        {
            return Ok(None);
        }
        let Some((code, nsn)) = self.split_country_code(&value[1..]) else {
            return Ok(None);
        };
        if !(MIN_NSN..=MAX_NSN).contains(&nsn.len()) {
            return Ok(None);
        }
        let info = code.fast.as_ref().ok_or(ToPython)?;
        if let Some(prefix) = &info.national_prefix {
            if prefix.match_takes_something(nsn)? {
                return Ok(None);
            }
        }
        Ok(Some(info.possible.contains(nsn.len())))
    }

    /// `_prepare_phone(value, region)` for ASCII input.
    fn prepare<'a>(&self, value: &'a str, region: Option<&str>) -> Step<Cow<'a, str>> {
        let value = trim(value);
        let Some(end) = double_zero_end(value.as_bytes()) else {
            return Ok(Cow::Borrowed(value));
        };
        // The region's own international prefix wins over the ITU "00".
        let idd = match region {
            Some(region) => self.region(region)?.and_then(|r| r.idd.as_ref()),
            None => None,
        };
        let own_prefix = match idd {
            Some(idd) => idd.match_end(DigitBuf::of(value.as_bytes()).digits())?.is_some(),
            None => false,
        };
        Ok(if own_prefix { Cow::Borrowed(value) } else { Cow::Owned(format!("+{}", &value[end..])) })
    }

    /// `_fast_national(value, region)`: Some(the E.164 result), or None for the reference's False.
    fn fast_national(&self, value: &[u8], region: &str) -> Step<Option<Option<String>>> {
        if !is_national_formatted(value) {
            return Ok(None);
        }
        let Some(info) = self.region(region)? else {
            return Ok(None);
        };
        let Some(national) = &info.national else {
            return Ok(None);
        };
        let buf = DigitBuf::of(value);
        let digits = buf.digits();
        if digits.len() < 3 || digits.starts_with(info.country_code_digits.as_bytes()) {
            return Ok(None);
        }
        if let Some(idd) = &info.idd {
            if idd.match_end(digits)?.is_some() {
                return Ok(None);
            }
        }
        let mut nsn = digits;
        if let Some(prefix) = &national.national_prefix {
            if let Some(end) = prefix.match_end(digits)? {
                let stripped = &digits[end..];
                let keep = match &national.viable {
                    None => true,
                    Some(viable) => !viable.fullmatch(digits)? || viable.fullmatch(stripped)?,
                };
                let n = stripped.len();
                if keep
                    && !national.local_only.contains(n)
                    && (national.possible.contains(n) || n as i64 > national.max_length)
                {
                    nsn = stripped;
                }
            }
        }
        if !(MIN_NSN..=MAX_NSN).contains(&nsn.len()) {
            return Ok(None);
        }
        let code = self.code(info.country_code as usize).ok_or(ToPython)?;
        let possible = code.fast.as_ref().ok_or(ToPython)?.possible;
        if !possible.contains(nsn.len()) {
            return Ok(Some(None));
        }
        let mut number = String::with_capacity(1 + info.country_code_digits.len() + nsn.len());
        number.push('+');
        number.push_str(&info.country_code_digits);
        number.extend(nsn.iter().map(|&b| b as char));
        Ok(Some(Some(number)))
    }

    /// Every pattern in the tables.
    fn patterns(&self) -> Vec<&Pattern> {
        let mut out: Vec<&Pattern> = Vec::new();
        for code in self.codes.iter().flatten() {
            out.extend(code.fast.iter().flat_map(|f| &f.national_prefix));
        }
        for slot in &self.regions {
            let RegionSlot::Known(region) = slot else { continue };
            out.extend(&region.idd);
            if let Some(national) = &region.national {
                out.extend(national.national_prefix.iter().chain(&national.viable));
            }
            if let Some(kinds) = &region.kinds {
                out.extend(&kinds.leading_digits);
                out.extend(kinds.descs.iter().flat_map(|d| &d.pattern));
            }
        }
        out
    }

    fn region_steps(&self, number: &str) -> Step<Option<&str>> {
        let b = number.as_bytes();
        if b.len() < 2 || b[0] != b'+' || !(b'1'..=b'9').contains(&b[1]) || !b[2..].iter().all(u8::is_ascii_digit) {
            return Err(ToPython); // never an e164 result
        }
        let Some((code, nsn)) = self.split_country_code(&b[1..]) else {
            return Ok(None);
        };
        if nsn.is_empty() || nsn.len() >= MAX_LENGTH_BITS {
            return Err(ToPython);
        }
        // region_code_for_number; when it finds none, only a calling code of one region counts,
        // which is the same as taking that one region whatever the number.
        let region = match code.regions.as_slice() {
            [only] => Some(&**only),
            regions => self.region_from_list(regions, nsn)?,
        };
        Ok(region.filter(|&r| r != NON_GEO_REGION && r != UNKNOWN_REGION))
    }

    /// `_region_code_for_number_from_list`: the national significant number is `nsn` itself
    /// (`_phone_number` keeps its leading zeros).
    fn region_from_list<'a>(&self, regions: &'a [Box<str>], nsn: &[u8]) -> Step<Option<&'a str>> {
        for name in regions {
            let Some(region) = self.region(name)? else {
                continue; // no metadata
            };
            let kinds = region.kinds.as_ref().ok_or(ToPython)?;
            let found = match &kinds.leading_digits {
                Some(leading) => leading.match_end(nsn)?.is_some(),
                None => kinds.known_type(nsn)?,
            };
            if found {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }
}

impl Region {
    fn from_data(data: RegionData) -> PyResult<Region> {
        let national = match data.national {
            None => None,
            Some(n) => Some(National {
                national_prefix: pattern(n.national_prefix_for_parsing),
                viable: pattern(n.viable),
                possible: Lengths::new(&n.possible_lengths)?,
                local_only: Lengths::new(&n.local_only_lengths)?,
                max_length: n.max_length,
            }),
        };
        let kinds = match data.number_descs {
            None => None,
            Some(descs) => Some(NumberKinds {
                leading_digits: pattern(data.leading_digits),
                descs: descs
                    .into_iter()
                    .map(|d| Ok(Desc { lengths: Lengths::new(&d.possible_lengths)?, pattern: pattern(d.pattern) }))
                    .collect::<PyResult<_>>()?,
            }),
        };
        Ok(Region {
            country_code: data.country_code,
            country_code_digits: data.country_code.to_string().into_boxed_str(),
            idd: pattern(data.idd),
            national,
            kinds,
        })
    }
}

fn to_py<'py>(py: Python<'py>, decided: Decided<Option<String>>) -> Bound<'py, PyAny> {
    match decided {
        Decided::Done(Some(text)) => PyString::new(py, &text).into_any(),
        Decided::Done(None) => py.None().into_bound(py),
        Decided::Python => PyBool::new(py, false).to_owned().into_any(),
    }
}

#[pymethods]
impl PhoneTables {
    #[new]
    fn py_new(data: &Bound<'_, PyAny>) -> PyResult<PhoneTables> {
        PhoneTables::from_py(data)
    }

    /// `e164(value, region)`: str, None, or False when Python decides.
    #[pyo3(name = "e164", signature = (value, region))]
    fn py_e164<'py>(&self, py: Python<'py>, value: &str, region: Option<&str>) -> Bound<'py, PyAny> {
        to_py(py, self.e164(value, region))
    }

    /// The patterns the regex crate does not compile (their users go to Python); compiles all.
    fn uncompilable_patterns(&self) -> Vec<String> {
        self.patterns().into_iter().filter(|p| !p.compiles()).map(|p| p.source.to_string()).collect()
    }

    /// How many patterns the tables hold.
    fn pattern_count(&self) -> usize {
        self.patterns().len()
    }

    /// `region_of_e164(number)`: str, None, or False when Python decides.
    #[pyo3(name = "region_of_e164")]
    fn py_region_of_e164<'py>(&self, py: Python<'py>, number: &str) -> Bound<'py, PyAny> {
        to_py(py, self.region_of_e164(number))
    }
}
