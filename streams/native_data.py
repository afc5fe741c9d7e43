"""Data the native core (`streams._native`) needs from Python libraries, as plain dicts, lists, str and int.

The native code has no metadata of its own: it is handed what the Python reference reads from the
same libraries, so both work from one source and cannot drift apart between library versions.
"""

from __future__ import annotations

import re
from typing import Any

import phonenumbers
from phonenumbers import PhoneMetadata

__all__ = ["phone_tables"]

# The regex syntax phonenumbers' patterns use and that means the same in Python's `re` and Rust's
# `regex` on ASCII digits: digits, `\d`, classes, groups (also `(?:`), `?`, `{m}`/`{m,n}`, `|` and a
# final `$` (never before a newline: the input is digits). Anything else (lookaround, backrefs,
# `*?`...) is not passed on, and what would use it stays with Python.
_PORTABLE = re.compile(r"(?:[0-9\[\]()?:|{},$-]|\\d)*")

# The number types _number_type_helper tries after the general description, any of them making the
# type something other than UNKNOWN (mobile only when it differs from fixed line, as there).
_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail", "fixed_line")


class _NotPortable(Exception):
    pass


def _pattern(pattern: str | None) -> str | None:
    """The pattern for Rust (None when there is none), or _NotPortable."""
    if not pattern:
        return None
    if _PORTABLE.fullmatch(pattern) is None:
        raise _NotPortable(pattern)
    return pattern


def _lengths(desc: Any, attribute: str = "possible_length") -> list[int]:
    return sorted(set(getattr(desc, attribute, None) or ())) if desc is not None else []


def _calling_code(country_code: int) -> dict[str, Any] | None:
    """`streams.pipeline.phone._CallingCode`, or None when its pattern is not portable."""
    region = phonenumbers.region_code_for_country_code(country_code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    general = metadata.general_desc if metadata is not None else None
    try:
        prefix = _pattern(metadata.national_prefix_for_parsing if metadata is not None else None)
    except _NotPortable:
        return None
    local_only = set(_lengths(general, "possible_length_local_only"))
    return {
        "national_prefix_for_parsing": prefix,
        "possible_lengths": [n for n in _lengths(general) if n not in local_only],
    }


def _national(metadata: PhoneMetadata) -> dict[str, Any] | None:
    """`streams.pipeline.phone._Region` without the IDD (None where that class is None)."""
    general = metadata.general_desc
    if not metadata.country_code or general is None or metadata.national_prefix_transform_rule:
        return None
    possible = _lengths(general)
    return {
        "national_prefix_for_parsing": _pattern(metadata.national_prefix_for_parsing),
        "viable": _pattern(general.national_number_pattern),
        "possible_lengths": possible,
        "local_only_lengths": _lengths(general, "possible_length_local_only"),
        "max_length": max(possible, default=0),
    }


def _number_descs(metadata: PhoneMetadata) -> list[dict[str, Any]]:
    """{possible_lengths, pattern} of the general description, then of each number type."""
    names = ["general_desc", *_TYPES]
    if not metadata.same_mobile_and_fixed_line_pattern:
        names.append("mobile")
    descs: list[dict[str, Any]] = []
    for name in names:
        desc = getattr(metadata, name)
        if desc is None:
            if name == "general_desc":
                descs.append({"possible_lengths": [], "pattern": None})  # matches nothing: UNKNOWN
            continue
        descs.append({"possible_lengths": _lengths(desc), "pattern": _pattern(desc.national_number_pattern)})
    return descs


def _region(region: str, shared: bool) -> dict[str, Any] | None:
    """What the native code needs about one region, or None when one of its patterns is not portable.

    `number_descs` and `leading_digits` (for `region_code_for_number`) only for regions whose calling
    code has several regions: for the others the calling code alone gives the region.
    """
    metadata = PhoneMetadata.metadata_for_region(region, None)
    if metadata is None:
        return None
    try:
        out: dict[str, Any] = {
            "country_code": metadata.country_code,
            "idd": _pattern(metadata.international_prefix),
            "national": _national(metadata),
        }
        if shared:
            out["leading_digits"] = _pattern(metadata.leading_digits)
            out["number_descs"] = _number_descs(metadata)
    except _NotPortable:
        return None
    return out


def phone_tables() -> dict[str, Any]:
    """What `streams._native.PhoneTables` needs from phonenumbers' metadata (see `streams.pipeline.phone`).

    * ``country_code_to_region_code``: ``{calling code: [regions]}`` as phonenumbers has it;
    * ``calling_codes``: ``{calling code: {national_prefix_for_parsing, possible_lengths} | None}``:
      the metadata `_fast_e164` reads (the main region's; possible lengths without the local-only ones);
    * ``regions``: ``{region: {country_code, idd, national, [leading_digits, number_descs]} | None}``
      for every supported region: its international prefix, what `_fast_national` reads (None for
      regions with a national prefix transform rule), and for regions under a shared calling code
      what `region_code_for_number` reads.

    Patterns are Python `re` patterns; an entry is None when one of them uses syntax outside the part
    both engines read the same way (that calling code or region then stays with Python).
    """
    code_to_regions = {code: list(regions) for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items()}
    shared = {region for regions in code_to_regions.values() if len(regions) > 1 for region in regions}
    return {
        "phonenumbers_version": phonenumbers.__version__,
        "country_code_to_region_code": code_to_regions,
        "calling_codes": {code: _calling_code(code) for code in code_to_regions},
        "regions": {region: _region(region, region in shared) for region in sorted(phonenumbers.SUPPORTED_REGIONS)},
    }
