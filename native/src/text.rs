//! Text normalisations of the identity and country stages, for the inputs where they are exact.
//!
//! The references are `streams.pipeline.text.trim`, `streams.pipeline.identity` (`_email`, `_name`,
//! `_identifier`) and `streams.pipeline.country` (`_to_alpha2`, `_fold`, `_country_from_locale`).
//! Python's case mapping and normalisation follow its own Unicode version, so native text
//! handling is limited to characters below U+0370 (Latin, Latin-1, Latin Extended A/B, IPA,
//! spacing modifiers, combining diacritics), whose case mappings and NFC compositions have not
//! changed in decades; anything else is `Decided::Python`.

use std::borrow::Cow;

use sha2::{Digest, Sha256};
use unicode_normalization::UnicodeNormalization;

use crate::phone::Decided;

/// Below this, native text handling is exact (module docs).
const LATIN_LIMIT: char = '\u{0370}';

/// `str.isspace()` for the characters native text handles (below U+0370): the ASCII six, the
/// information separators 0x1C..0x1F, NEL and NBSP.
pub fn py_isspace(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{0b}' | '\u{0c}' | '\r' | '\u{1c}'..='\u{1f}' | ' ' | '\u{85}' | '\u{a0}')
}

/// `py_isspace` of a byte of ASCII text (`re`'s `\s` too); never true for a byte of a multi-byte character.
pub fn is_py_space(b: u8) -> bool {
    b.is_ascii() && py_isspace(b as char)
}

/// True when every character is one native text handles exactly.
pub fn is_latin(s: &str) -> bool {
    s.is_ascii() || s.chars().all(|c| c < LATIN_LIMIT)
}

/// `str.strip()` for text `is_latin` accepted (`trim` too: its zero-width characters are not Latin).
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(py_isspace)
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

pub fn sha256_hex(value: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(value.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest.iter() {
        out.push(HEX[(byte >> 4) as usize] as char);
        out.push(HEX[(byte & 0x0f) as usize] as char);
    }
    out
}

/// `str.lower()` then NFC, for Latin text.
fn lower_nfc(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    let lowered = s.to_lowercase();
    if unicode_normalization::is_nfc_quick(lowered.chars()) == unicode_normalization::IsNormalized::Yes {
        lowered
    } else {
        lowered.nfc().collect()
    }
}

/// NFC of Latin text.
fn nfc(s: &str) -> Cow<'_, str> {
    if s.is_ascii() || unicode_normalization::is_nfc_quick(s.chars()) == unicode_normalization::IsNormalized::Yes {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.nfc().collect())
    }
}

/// `identity._email` of a trimmed Latin value.
pub fn email(trimmed: &str, fold_gmail: bool) -> Option<String> {
    let email = lower_nfc(trimmed);
    let (local, domain) = email.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() || local.contains('@') {
        return None;
    }
    if email.chars().any(py_isspace) {
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

/// `identity._name` of a trimmed Latin value.
pub fn name(trimmed: &str, lowercase: bool) -> Option<String> {
    if trimmed.is_empty() {
        return None;
    }
    Some(if lowercase { lower_nfc(trimmed) } else { nfc(trimmed).into_owned() })
}

/// The identifier kinds of `streams.pipeline.identity`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Email,
    Phone,
    Name,
    Id,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "email" => Kind::Email,
            "phone" => Kind::Phone,
            "name" => Kind::Name,
            "id" => Kind::Id,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::Phone => "phone",
            Kind::Name => "name",
            Kind::Id => "id",
        }
    }
}

// ------------------------------------------------------------------------------------ country

/// `country._fold` of ASCII text: the lookup key of a country name.
pub fn fold_country(text: &str) -> String {
    let mut lowered = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '.' => {}
            '`' => lowered.push('\''),
            '&' => lowered.push_str(" and "),
            c => lowered.push(c.to_ascii_lowercase()),
        }
    }
    // `\s+` -> " ", then strip
    let mut out = String::with_capacity(lowered.len());
    let mut space = false;
    for c in lowered.chars() {
        if py_isspace(c) {
            space = true;
        } else {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        }
    }
    match out.strip_prefix("the ") {
        Some(rest) => rest.to_owned(),
        None => out,
    }
}

/// `country.to_alpha2` for ASCII text; `codes` maps upper-case alpha-2/alpha-3/numeric codes,
/// `names` folded names.
pub fn to_alpha2<'t>(
    value: &str,
    codes: &'t std::collections::HashMap<String, String>,
    names: &'t std::collections::HashMap<String, String>,
) -> Decided<Option<&'t str>> {
    if let Some(hit) = codes.get(value) {
        return Decided::Done(Some(hit));
    }
    if !value.is_ascii() {
        return Decided::Python;
    }
    let text = py_strip(value);
    if text.is_empty() {
        return Decided::Done(None);
    }
    if text.len() <= 3 {
        if text.bytes().all(|b| b.is_ascii_digit()) {
            let padded = format!("{:0>3}", text);
            return Decided::Done(codes.get(&padded).map(|s| s.as_str()));
        }
        if let Some(hit) = codes.get(&text.to_ascii_uppercase()) {
            return Decided::Done(Some(hit));
        }
    }
    let key = fold_country(text);
    if let Some(hit) = names.get(&key) {
        return Decided::Done(Some(hit));
    }
    if key.len() <= 3 && !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Decided::Done(codes.get(&key.to_ascii_uppercase()).map(|s| s.as_str()));
    }
    Decided::Done(None)
}

/// `country._country_from_locale` for ASCII text.
pub fn country_from_locale<'t>(locale: &str, codes: &'t std::collections::HashMap<String, String>) -> Decided<Option<&'t str>> {
    if !locale.is_ascii() {
        return Decided::Python;
    }
    let mut tag = py_strip(locale);
    for sep in [',', ';', '.', '@', ' '] {
        if let Some(i) = tag.find(sep) {
            tag = &tag[..i];
        }
    }
    let subtags: Vec<&str> = tag.split(['-', '_']).collect();
    if subtags.len() < 2 {
        return Decided::Done(None);
    }
    for subtag in &subtags[1..] {
        let n = subtag.len();
        let alpha = n > 0 && subtag.bytes().all(|b| b.is_ascii_alphabetic());
        let digits = n > 0 && subtag.bytes().all(|b| b.is_ascii_digit());
        if n == 1 {
            return Decided::Done(None);
        }
        if n == 2 && alpha {
            return Decided::Done(codes.get(&subtag.to_ascii_uppercase()).map(|s| s.as_str()));
        }
        if n == 3 && digits {
            return Decided::Done(codes.get(*subtag).map(|s| s.as_str()));
        }
        if (n == 3 || n == 4) && alpha {
            continue;
        }
        return Decided::Done(None);
    }
    Decided::Done(None)
}
