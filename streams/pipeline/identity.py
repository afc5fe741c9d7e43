"""Normalisation and hashing of personal identifiers (email, phone, name, opaque id).

Server-to-server ingestion APIs (Zeotap, Audiohook, Google Enhanced Conversions /
Customer Match, Meta Conversions API, ...) match users on SHA-256 digests of
*normalised* identifiers, so the normalisation must be byte-for-byte what the
platform does on its side:

* email: trim, lowercase, NFC; optionally fold Gmail addresses (drop dots and
  ``+tag`` in the local part, ``googlemail.com`` -> ``gmail.com``).
* phone: E.164 (``+4930123456``) or E.164 without ``+`` (``4930123456``).
* name: trim, lowercase (optional), NFC.
* id: trim only.

A value that already is a 64-character hex SHA-256 digest is passed through
lower-cased and never hashed a second time, whatever its kind.

All functions are pure, never raise for bad input (they return ``None``, the
caller decides what that means) and are cached with bounded LRU caches because
the same identifiers recur constantly on the hot path.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumber, PhoneNumberFormat

__all__ = [
    "IdentifierKind",
    "IdentityProfile",
    "PhoneFormat",
    "cached_identifier",
    "identifier",
    "is_sha256_hex",
    "normalize_email",
    "normalize_name",
    "normalize_phone",
    "phone_region",
    "sha256_hex",
]

PhoneFormat = Literal["e164", "digits"]
IdentifierKind = Literal["email", "phone", "name", "id"]

_CACHE_SIZE = 65536


@dataclass(frozen=True, slots=True)
class IdentityProfile:
    """How one destination wants its identifiers.

    ``hash``: SHA-256 hex digest of the normalised value (False: send the normalised plaintext).
    ``phone_format``: ``"e164"`` (``+4930123456``) or ``"digits"`` (E.164 without the ``+``).
    ``fold_gmail``: for gmail.com / googlemail.com drop dots and ``+tag`` from the local part
    and use ``gmail.com`` as the domain.
    ``lowercase_names``: lowercase first/last names before hashing.
    """

    hash: bool = True
    phone_format: PhoneFormat = "e164"
    fold_gmail: bool = False
    lowercase_names: bool = True
    # what the identifier cache keys hold instead of the profile: a str (hash cached by Python,
    # never tracked by the garbage collector, unlike a key tuple that holds this object)
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = f"{int(self.hash)}|{self.phone_format}|{int(self.fold_gmail)}|{int(self.lowercase_names)}"
        object.__setattr__(self, "key", key)
        _PROFILES.setdefault(key, self)


_PROFILES: dict[str, IdentityProfile] = {}


# --------------------------------------------------------------------------- helpers

_HEX_DIGITS = "0123456789abcdefABCDEF"
# Characters str.strip() does not remove but that end up in copy-pasted identifiers.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"


def _trim(value: str) -> str:
    value = value.strip()
    if value and (value[0] in _INVISIBLE or value[-1] in _INVISIBLE):
        value = value.strip(_INVISIBLE).strip()
    return value


def _nfc(value: str) -> str:
    # ASCII is always NFC; skip the (comparatively slow) normalisation call.
    return value if value.isascii() else unicodedata.normalize("NFC", value)


def is_sha256_hex(value: str) -> bool:
    """True when ``value`` is exactly 64 hex characters (either case)."""
    return isinstance(value, str) and len(value) == 64 and not value.lstrip(_HEX_DIGITS)


def sha256_hex(value: str) -> str:
    """Lower-case hex SHA-256 of the UTF-8 encoding of ``value``."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- email

_GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def normalize_email(value: str, fold_gmail: bool = False) -> str | None:
    """Trimmed, lower-cased, NFC email address, or None when it is not plausibly an email.

    Rejected: no ``@``, more than one ``@``, empty local part or domain, whitespace
    anywhere inside, a domain without a dot or with an empty label (``a@b``, ``a@.com``,
    ``a@b..com``, ``a@b.com.``).
    With ``fold_gmail``, gmail.com / googlemail.com addresses lose the dots and the
    ``+tag`` of the local part and get the domain ``gmail.com``.
    """
    if not isinstance(value, str):
        return None
    return _normalize_email(value, fold_gmail)


def _email(value: str, fold_gmail: bool) -> str | None:
    email = _nfc(_trim(value).lower())
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain or "@" in local:
        return None
    if len(email.split(maxsplit=1)) > 1:  # whitespace inside (str.split knows Unicode spaces)
        return None
    if "." not in domain or domain[0] == "." or domain[-1] == "." or ".." in domain:
        return None
    if fold_gmail and domain in _GMAIL_DOMAINS:
        local = local.partition("+")[0].replace(".", "")
        if not local:
            return None
        return local + "@gmail.com"
    return email


_normalize_email = lru_cache(maxsize=_CACHE_SIZE)(_email)


# --------------------------------------------------------------------------- phone

# Already-E.164 input ("+" and ASCII digits only) takes a fast path that skips
# phonenumbers.parse (~15 µs); see _fast_e164 for why it is exact.
_E164_CANDIDATE = re.compile(r"\+[1-9][0-9]{3,18}")
# International numbers with only spaces, dashes, dots and brackets as punctuation.
_INTL_FORMATTED = re.compile(r"\+[0-9][0-9 ().\-]*")
# A leading "00" (after optional opening bracket / spaces) is the ITU international prefix.
_DOUBLE_ZERO = re.compile(r"[\s(]*0[\s.\-]*0[\s.\-]*(?=[1-9])")
# National numbers with only spaces, dashes, dots and brackets as punctuation.
_NATIONAL_FORMATTED = re.compile(r"[(]?[0-9][0-9 ().\-]*")
_NON_DIGIT = re.compile(r"[^0-9]")
_IDD_RE: dict[str, re.Pattern[str] | None] = {}
_MIN_NSN = 2  # phonenumbers' _MIN_LENGTH_FOR_NSN
_MAX_NSN = 17  # phonenumbers' _MAX_LENGTH_FOR_NSN


class _CallingCode:
    """What the E.164 fast path needs to know about one calling code (built lazily)."""

    __slots__ = ("national_prefix", "possible_lengths")

    def __init__(self, country_code: int) -> None:
        # Same metadata phonenumbers uses for parsing and is_possible_number: the main region's.
        region = phonenumbers.region_code_for_country_code(country_code)
        metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
        pattern = metadata.national_prefix_for_parsing if metadata is not None else None
        self.national_prefix = re.compile(pattern) if pattern else None
        # is_possible_number_with_reason(...) == IS_POSSIBLE  <=>  NSN length in this set.
        general = metadata.general_desc if metadata is not None else None
        possible = set(general.possible_length or ()) if general is not None else set()
        local_only = set(general.possible_length_local_only or ()) if general is not None else set()
        self.possible_lengths = frozenset(possible - local_only)


_CALLING_CODES: dict[int, _CallingCode] = {}


def _calling_code(country_code: int) -> _CallingCode:
    info = _CALLING_CODES.get(country_code)
    if info is None:
        info = _CALLING_CODES[country_code] = _CallingCode(country_code)
    return info


_IS_POSSIBLE = phonenumbers.ValidationResult.IS_POSSIBLE


def _is_possible(number: PhoneNumber) -> bool:
    # phonenumbers.is_possible_number also accepts IS_POSSIBLE_LOCAL_ONLY ("12" with region DE
    # is a possible local number without area code): useless as an identifier, so rejected.
    return phonenumbers.is_possible_number_with_reason(number) == _IS_POSSIBLE


def _phone_number(country_code: int, nsn: str) -> PhoneNumber:
    """PhoneNumber for a calling code and national significant number, as parse builds it."""
    number = PhoneNumber(country_code=country_code, national_number=int(nsn))
    if len(nsn) > 1 and nsn[0] == "0":
        number.italian_leading_zero = True
        zeros = min(len(nsn) - len(nsn.lstrip("0")), len(nsn) - 1)
        if zeros != 1:
            number.number_of_leading_zeros = zeros
    return number


def _split_country_code(digits: str) -> tuple[int, str] | None:
    # Calling codes form a prefix code, so the first 1-3 digit match is the only one.
    code_to_region = phonenumbers.COUNTRY_CODE_TO_REGION_CODE
    for size in (1, 2, 3):
        country_code = int(digits[:size])
        if country_code in code_to_region:
            return country_code, digits[size:]
    return None


def _fast_e164(value: str) -> str | None | Literal[False]:
    """E.164 result for ``+<digits>`` input without phonenumbers.parse.

    Returns False when the input needs the full parser.  For ``+<digits>`` input
    phonenumbers.parse only (1) splits off the country code (the first 1-3 digit prefix
    that is a known calling code), (2) may strip a national prefix / carrier code when
    the country's ``national_prefix_for_parsing`` matches, (3) records leading zeros
    (Italian style, which only matters for formatting: the digits stay as they are).  We
    replicate (1), send every number for which (2) could apply to the slow path and check
    the NSN length against the same possible lengths ``is_possible_number_with_reason``
    uses, so the result is identical to parse + possible check + format(E164)
    (tests/unit/test_identity.py checks this against phonenumbers).
    """
    if not _E164_CANDIDATE.fullmatch(value):
        return False
    split = _split_country_code(value[1:])
    if split is None:
        return False
    country_code, nsn = split
    if not _MIN_NSN <= len(nsn) <= _MAX_NSN:
        return False
    info = _calling_code(country_code)
    prefix = info.national_prefix
    if prefix is not None:
        match = prefix.match(nsn)
        if match is not None and (match.end() > 0 or any(g is not None for g in match.groups())):
            return False
    return value if len(nsn) in info.possible_lengths else None


class _Region:
    """What the national-format fast path needs to know about one region (built lazily)."""

    __slots__ = ("country_code", "country_code_str", "idd", "local_only", "max_length", "national_prefix", "possible", "viable")

    def __init__(self, region: str, metadata: PhoneMetadata, country_code: int) -> None:
        self.country_code = country_code
        self.country_code_str = str(country_code)
        self.idd = _idd_re(region)
        pattern = metadata.national_prefix_for_parsing
        self.national_prefix = re.compile(pattern) if pattern else None
        general = metadata.general_desc
        assert general is not None  # checked by _region_info
        # _match_national_number(number, general_desc, False) for a digits-only number
        self.viable = re.compile(general.national_number_pattern).fullmatch if general.national_number_pattern else None
        # _test_number_length(number, metadata) (type UNKNOWN: the general description)
        self.possible = frozenset(general.possible_length or ())
        self.local_only = frozenset(general.possible_length_local_only or ())
        self.max_length = max(self.possible, default=0)


_REGIONS: dict[str, _Region | None] = {}


def _region_info(region: str) -> _Region | None:
    try:
        return _REGIONS[region]
    except KeyError:
        pass
    info = None
    if region in phonenumbers.SUPPORTED_REGIONS:
        metadata = PhoneMetadata.metadata_for_region(region, None)
        # a national prefix transform rule (AR, BR, MX, ...) rewrites the number: the full parser
        if (
            metadata is not None
            and metadata.country_code
            and metadata.general_desc is not None
            and not metadata.national_prefix_transform_rule
        ):
            info = _Region(region, metadata, metadata.country_code)
    _REGIONS[region] = info
    return info


def _fast_national(value: str, region: str) -> str | None | Literal[False]:
    """E.164 result for a number in national format (``030 1234567``, ``(030) 123-45.67``)
    without phonenumbers.parse, or False when the input needs the full parser.

    For such input (ASCII digits, at least three, and only spaces, dashes, dots and brackets
    around them) phonenumbers.parse with a supported default region (1) reads the digits,
    (2) sends it down other routes when the region's international prefix matches or the digits
    start with the region's calling code (we leave both to the full parser), (3) strips a
    national prefix / carrier code when ``national_prefix_for_parsing`` matches, unless the
    whole number fits the region's number pattern and the rest does not, and keeps the stripped
    number only when its length is not too short, local-only or invalid for the region, (4)
    checks the national number is 2-17 digits long. Regions with a national-prefix transform
    rule go to the full parser.  The possible-length check and the E.164 text then are those of
    the E.164 fast path (tests/unit/test_identity.py checks the result against phonenumbers).
    """
    if not _NATIONAL_FORMATTED.fullmatch(value):
        return False
    info = _region_info(region)
    if info is None:
        return False
    digits = _NON_DIGIT.sub("", value)
    if len(digits) < 3 or digits.startswith(info.country_code_str):
        return False
    if info.idd is not None and info.idd.match(digits) is not None:
        return False
    nsn = digits
    prefix = info.national_prefix
    if prefix is not None:
        match = prefix.match(digits)
        if match is not None:
            stripped = digits[match.end() :]
            viable = info.viable
            if viable is None or viable(digits) is None or viable(stripped) is not None:
                n = len(stripped)
                if n not in info.local_only and (n in info.possible or n > info.max_length):
                    nsn = stripped
    if not _MIN_NSN <= len(nsn) <= _MAX_NSN:
        return False
    code = info.country_code
    return f"+{code}{nsn}" if len(nsn) in _calling_code(code).possible_lengths else None


def _idd_re(region: str) -> re.Pattern[str] | None:
    try:
        return _IDD_RE[region]
    except KeyError:
        pass
    metadata = PhoneMetadata.metadata_for_region(region, None)
    pattern = metadata.international_prefix if metadata is not None else None
    compiled = re.compile(pattern) if pattern else None
    _IDD_RE[region] = compiled
    return compiled


def _prepare_phone(value: str, region: str | None) -> str:
    value = _trim(value)
    if not value.isascii():
        # Full-width digits / plus (NFKC) and other Unicode decimal digits (Arabic-Indic, ...).
        value = unicodedata.normalize("NFKC", value)
        if not value.isascii():
            value = "".join(str(int(ch)) if ch.isdecimal() else ch for ch in value)
    match = _DOUBLE_ZERO.match(value)
    if match is not None:
        # The region's own international prefix wins (AU "0011", KR "001", BR "0021", ...);
        # otherwise "00" is the ITU international prefix, also for regions that use another
        # one (US "011", JP "010") and when there is no region at all.
        idd = _idd_re(region) if region is not None else None
        if idd is None or idd.match(_NON_DIGIT.sub("", value)) is None:
            value = "+" + value[match.end() :]
    return value


@lru_cache(maxsize=_CACHE_SIZE)
def _e164(value: str, region: str | None) -> str | None:
    fast = _fast_e164(value)
    if fast is not False:
        return fast
    prepared = _prepare_phone(value, region)
    if _INTL_FORMATTED.fullmatch(prepared):
        # "+49 30 123-45 67", "+1 (650) 555-1212": phonenumbers ignores this punctuation.
        fast = _fast_e164("+" + _NON_DIGIT.sub("", prepared))
        if fast is not False:
            return fast
    if prepared[:1] != "+":
        if region is None:
            if "+" not in prepared:
                # no plus sign (_prepare_phone made a full-width one ASCII) and no region:
                # phonenumbers.parse raises "Missing or invalid default region"
                return None
        else:
            fast = _fast_national(prepared, region)
            if fast is not False:
                return fast
    try:
        number = phonenumbers.parse(prepared, region)
    except (NumberParseException, ValueError, TypeError, IndexError):
        return None
    if not _is_possible(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


@lru_cache(maxsize=_CACHE_SIZE)
def _e164_plus(value: str) -> str | None | Literal[False]:
    """`_e164`'s region-independent fast paths for ``+...`` input, False when they do not decide.

    For a value starting with ``+`` neither fast path looks at the region (`_prepare_phone` only
    uses it for a leading ``00``), so country resolution (no region) and identifier normalisation
    (the record's region) share one cache entry instead of computing the same number twice.
    """
    fast = _fast_e164(value)
    if fast is not False:
        return fast
    prepared = _prepare_phone(value, None)
    if _INTL_FORMATTED.fullmatch(prepared):
        return _fast_e164("+" + _NON_DIGIT.sub("", prepared))
    return False


def _e164_for(value: str, region: str | None) -> str | None:
    """`_e164(value, region)`, through the shared entry of `_e164_plus` for ``+...`` input."""
    if value[:1] == "+":
        fast = _e164_plus(value)
        if fast is not False:
            return fast
    return _e164(value, region)


def _region_key(default_region: str | None) -> str | None:
    if not default_region or not isinstance(default_region, str):
        return None
    region = default_region.strip().upper()
    return region or None


def normalize_phone(value: str, default_region: str | None, fmt: str = "e164") -> str | None:
    """E.164 phone number (``fmt="e164"``) or E.164 without ``+`` (``fmt="digits"``).

    ``default_region`` (ISO alpha-2, any case) is used for numbers written in national
    format.  A leading ``00`` is read as the international prefix (``0049...`` ->
    ``+49...``) also without a region and in regions that dial another one (US ``011``);
    a region's own international prefix (AU ``0011``, KR ``001``) keeps its meaning.
    Spaces, dashes, dots, brackets, ``(0)``, full-width and other Unicode decimal digits
    and extensions (dropped) are handled as phonenumbers handles them.
    Returns None when the number cannot be parsed or is not a *possible* number
    (``phonenumbers.is_possible_number_with_reason == IS_POSSIBLE``: right length for the
    country; local-only numbers without area code, which ``is_possible_number`` lets
    through, are rejected; the stricter ``is_valid_number`` is deliberately not required),
    or ``fmt`` is unknown.
    """
    if not isinstance(value, str):
        return None
    e164 = _e164_for(value, _region_key(default_region))
    if e164 is None:
        return None
    if fmt == "e164":
        return e164
    if fmt == "digits":
        return e164[1:]
    return None


_NON_GEO_REGION = phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY  # "001"


@lru_cache(maxsize=_CACHE_SIZE)
def _region_of_e164(e164: str) -> str | None:
    # e164 is our own canonical output: rebuild the PhoneNumber instead of re-parsing.
    split = _split_country_code(e164[1:])
    if split is None:  # pragma: no cover - cannot happen for phonenumbers output
        return None
    country_code, nsn = split
    region = phonenumbers.region_code_for_number(_phone_number(country_code, nsn))
    if region is None:
        # Possible but not valid: only trust the calling code when it has one region.
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
        region = regions[0] if len(regions) == 1 else None
    if region is None or region == _NON_GEO_REGION or region == phonenumbers.UNKNOWN_REGION:
        return None
    return region


def phone_region(value: str, default_region: str | None) -> str | None:
    """Alpha-2 region of a phone number (phonenumbers' region code), or None.

    Numbers in national format only resolve when ``default_region`` is given (and then
    simply return it for numbers of that country).  Non-geographic numbers (+800, ...)
    and numbers that are possible but not valid under a calling code shared by several
    regions (+1, +44, +7, ...) give None.  Note that phonenumbers also uses the non-ISO
    codes ``AC`` (Ascension), ``TA`` (Tristan da Cunha) and ``XK`` (Kosovo).
    """
    if not isinstance(value, str):
        return None
    e164 = _e164_for(value, _region_key(default_region))
    return None if e164 is None else _region_of_e164(e164)


# --------------------------------------------------------------------------- name


def normalize_name(value: str, lowercase: bool = True) -> str | None:
    """Trimmed, lower-cased (unless ``lowercase=False``), NFC name, or None when empty."""
    if not isinstance(value, str):
        return None
    return _normalize_name(value, lowercase)


def _name(value: str, lowercase: bool) -> str | None:
    name = _trim(value)
    if not name:
        return None
    if lowercase:
        name = name.lower()
    return _nfc(name)


_normalize_name = lru_cache(maxsize=_CACHE_SIZE)(_name)


# --------------------------------------------------------------------------- identifier


def identifier(
    kind: IdentifierKind,
    value: str,
    profile: IdentityProfile,
    default_region: str | None = None,
) -> str | None:
    """The identifier as a destination wants it, or None when it normalises to nothing.

    A value that already is a SHA-256 hex digest (64 hex chars, any case, surrounding
    whitespace ignored) is returned lower-cased, never hashed again, whatever ``kind`` and
    ``profile.hash`` say.  Otherwise the value is normalised per kind (``email``,
    ``phone`` with ``default_region`` for national formats, ``name``, ``id``: trim only)
    and hashed with SHA-256 when ``profile.hash``.
    """
    if not isinstance(value, str):
        return None
    return _identifier(kind, value, profile.key, default_region)


@lru_cache(maxsize=_CACHE_SIZE)
def _identifier(kind: IdentifierKind, value: str, profile_key: str, default_region: str | None) -> str | None:
    profile = _PROFILES[profile_key]
    trimmed = _trim(value)
    if is_sha256_hex(trimmed):
        return trimmed.lower()
    normalised: str | None
    if kind == "email":
        normalised = _email(trimmed, profile.fold_gmail)  # uncached: _identifier caches
    elif kind == "phone":
        normalised = normalize_phone(trimmed, default_region, profile.phone_format)
    elif kind == "name":
        normalised = _name(trimmed, profile.lowercase_names)
    elif kind == "id":
        normalised = trimmed or None
    else:
        return None
    if normalised is None:
        return None
    return sha256_hex(normalised) if profile.hash else normalised


#: `identifier` for a ``str`` value (the caller checked) and a profile's ``key``: the cached
#: function itself, one call less.
cached_identifier = _identifier
