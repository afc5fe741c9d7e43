"""The phone fast path: E.164 normalisation that gives exactly what phonenumbers gives, mostly without it.

``phonenumbers.parse`` costs ~15 µs; most input is already E.164 (``+4930123456``), international with
punctuation (``+49 30 123-45 67``) or national with a region (``030 1234567``, DE). For those this
module replicates what the parser does from the library's own metadata and leaves everything else to
the parser; ``tests/unit/test_identity.py`` checks the result against phonenumbers for every region.
Pure and cached; :mod:`streams.pipeline.identity` applies the destinations' formats on top.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Literal

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumber, PhoneNumberFormat

from streams.pipeline.text import trim

__all__ = ["e164", "region_of_e164"]

_CACHE_SIZE = 65536  # as identity's caches: the same numbers recur constantly on the hot path

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
    value = trim(value)
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


def e164(value: str, region: str | None) -> str | None:
    """The E.164 text of ``value``, or None when it does not parse or is not a possible number.

    ``region`` (upper-case alpha-2, or None) is for national formats; ``+...`` input goes through
    the region-independent cache entry of `_e164_plus`.
    """
    if value[:1] == "+":
        fast = _e164_plus(value)
        if fast is not False:
            return fast
    return _e164(value, region)


_NON_GEO_REGION = phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY  # "001"


@lru_cache(maxsize=_CACHE_SIZE)
def region_of_e164(number: str) -> str | None:
    """Alpha-2 region of an :func:`e164` result, or None (non-geographic, or ambiguous and not valid)."""
    # number is our own canonical output: rebuild the PhoneNumber instead of re-parsing.
    split = _split_country_code(number[1:])
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
