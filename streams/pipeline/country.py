"""Country normalisation and enrichment (ISO 3166-1).

``to_alpha2`` turns any reasonable spelling of a country into its ISO 3166-1 alpha-2
code; ``resolve_country`` picks the user's country from the first record field that
yields one (country field -> phone number -> IP address -> locale -> configured default).

Accepted spellings (any case, surrounding whitespace ignored), all from pycountry's
ISO 3166-1 data and built into one dict at import, so lookups are O(1) and deterministic
(no fuzzy matching):

* alpha-2 (``de``), alpha-3 (``DEU``), numeric (``276``; ``4`` == ``004``);
* ``name``, ``official_name`` and ``common_name`` (``Germany``, ``Federal Republic of
  Germany``, ``Bolivia``, ``Plurinational State of Bolivia``, ``Bolivia, Plurinational
  State of``); names are also matched without diacritics (``Cote d'Ivoire``,
  ``Turkiye``), with typographic apostrophes, ``&`` for ``and``, without dots and
  without a leading ``the`` (``The Netherlands``, ``the Gambia``);
* the aliases in ``ALIASES``: the codes ``UK`` (-> GB, used by the EU and in domains) and
  ``EL`` (-> GR, EU code for Greece), the phonenumbers/ITU region codes ``AC`` and ``TA``
  (Ascension, Tristan da Cunha -> SH, which ISO 3166-1 files them under) and a few
  widely used English short names missing from ISO (``Russia``, ``Turkey``, ``Great
  Britain``, ``England``, ``Ivory Coast``, ``Vatican``, ...).

Not accepted: names in other languages (``Deutschland``), ambiguous names (``Korea``,
``Congo`` is the Republic of the Congo as in ISO), non-ISO codes (``XK`` Kosovo, ``EU``).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import pycountry
from iptocc import country_code as _iptocc_country_code

from streams.pipeline.identity import phone_region

__all__ = [
    "ALIASES",
    "CountryFormat",
    "CountrySource",
    "CountrySources",
    "alpha2_to_alpha3",
    "country_from_ip",
    "country_from_locale",
    "format_country",
    "resolve_country",
    "resolve_country_values",
    "to_alpha2",
]

CountryFormat = Literal["alpha2", "alpha3"]
CountrySource = Literal["field", "phone", "ip", "locale", "default"]

_CACHE_SIZE = 65536

#: Spellings that are not in pycountry's ISO 3166-1 data but are common in the wild
#: (read once at import: changing this dict later has no effect).
ALIASES: dict[str, str] = {
    # codes
    "UK": "GB",
    "EL": "GR",
    "AC": "SH",
    "TA": "SH",
    # English short names
    "Great Britain": "GB",
    "Britain": "GB",
    "England": "GB",
    "Scotland": "GB",
    "Wales": "GB",
    "Northern Ireland": "GB",
    "Russia": "RU",
    "Turkey": "TR",
    "Vatican": "VA",
    "Vatican City": "VA",
    "Holy See": "VA",
    "Ivory Coast": "CI",
    "Cape Verde": "CV",
    "Swaziland": "SZ",
    "Macedonia": "MK",
    "Brunei": "BN",
    "Burma": "MM",
    "East Timor": "TL",
    "Palestine": "PS",
    "Micronesia": "FM",
    "Democratic Republic of the Congo": "CD",
    "DR Congo": "CD",
    "DRC": "CD",
    "Republic of the Congo": "CG",
    "Holland": "NL",
    "Republic of Korea": "KR",
}

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "`": "'", "\u00b4": "'", ".": None})
_SPACES = re.compile(r"\s+")


def _fold(text: str) -> str:
    """Lookup key for a country name: casefold, no diacritics/dots, '&' -> 'and', no 'the '."""
    if not text.isascii():
        text = "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))
    text = text.translate(_APOSTROPHES).casefold().replace("&", " and ")
    text = _SPACES.sub(" ", text).strip()
    if text.startswith("the "):
        text = text[4:]
    return text


def _build() -> tuple[dict[str, str], dict[str, str], dict[str, str], frozenset[str]]:
    codes: dict[str, str] = {}  # upper-case alpha-2 / alpha-3 / numeric -> alpha-2
    names: dict[str, str] = {}  # folded name -> alpha-2
    alpha3: dict[str, str] = {}
    ambiguous: set[str] = set()

    def add_name(name: str, a2: str) -> None:
        key = _fold(name)
        if names.get(key, a2) != a2:
            ambiguous.add(key)
        names[key] = a2

    for country in pycountry.countries:
        a2 = country.alpha_2
        codes[a2] = a2
        codes[country.alpha_3] = a2
        codes[country.numeric] = a2
        alpha3[a2] = country.alpha_3
        for attr in ("name", "official_name", "common_name"):
            name = getattr(country, attr, None)
            if name:
                add_name(name, a2)
    for alias, a2 in ALIASES.items():
        if len(alias) <= 3 and alias.isupper():
            codes[alias] = a2
        else:
            add_name(alias, a2)
    for key in ambiguous:  # never guess between two countries
        del names[key]
    return codes, names, alpha3, frozenset(ambiguous)


_CODES, _NAMES, _ALPHA3, _AMBIGUOUS_NAMES = _build()
_ISO_ALPHA2 = frozenset(_ALPHA3)


def to_alpha2(value: str) -> str | None:
    """ISO 3166-1 alpha-2 code for any accepted spelling of a country, else None."""
    if not isinstance(value, str):
        return None
    hit = _CODES.get(value)  # exact upper-case code: no work at all
    if hit is not None:
        return hit
    return _to_alpha2(value)


@lru_cache(maxsize=_CACHE_SIZE)
def _to_alpha2(value: str) -> str | None:
    text = value.strip()
    if not text:
        return None
    if len(text) <= 3:
        if text.isascii() and text.isdigit():
            return _CODES.get(text.zfill(3))
        hit = _CODES.get(text.upper())
        if hit is not None:
            return hit
    key = _fold(text)
    hit = _NAMES.get(key)
    if hit is None and len(key) <= 3 and key.isalpha():  # "U.K.", "U.S.A."
        hit = _CODES.get(key.upper())
    return hit


def alpha2_to_alpha3(a2: str) -> str:
    """ISO alpha-3 code for an ISO alpha-2 code (any case); ValueError when unknown."""
    try:
        return _ALPHA3[a2]
    except KeyError:
        pass
    try:
        return _ALPHA3[a2.strip().upper()]
    except (KeyError, AttributeError):
        raise ValueError(f"not an ISO 3166-1 alpha-2 code: {a2!r}") from None


def format_country(a2: str, fmt: CountryFormat) -> str:
    """Render an ISO alpha-2 code as ``alpha2`` or ``alpha3``; ValueError when unknown."""
    if fmt == "alpha3":
        return alpha2_to_alpha3(a2)
    if fmt == "alpha2":
        code = a2 if a2 in _ISO_ALPHA2 else a2.strip().upper()
        if code not in _ISO_ALPHA2:
            raise ValueError(f"not an ISO 3166-1 alpha-2 code: {a2!r}")
        return code
    raise ValueError(f"unknown country format: {fmt!r}")


# --------------------------------------------------------------------------- IP


def country_from_ip(ip: str) -> str | None:
    """Country of an IPv4/IPv6 address from the RIR delegation data shipped with iptocc.

    None for private, loopback, link-local, reserved, documentation and unallocated
    addresses, for invalid input and for the RIR pseudo-code ``EU`` (not a country).
    IPv4-mapped IPv6 (``::ffff:8.8.8.8``) is looked up as IPv4.  Note: RIR data says
    where the block is *registered*, not where the user is (1.1.1.1 -> AU).
    """
    if not isinstance(ip, str):
        return None
    return _country_from_ip(ip)


@lru_cache(maxsize=_CACHE_SIZE)
def _country_from_ip(ip: str) -> str | None:
    address = ip.strip()
    code = _iptocc_country_code(address)
    if code is None and "." in address and ":" in address:
        try:
            mapped = ipaddress.IPv6Address(address).ipv4_mapped
        except ValueError:
            return None
        if mapped is not None:
            code = _iptocc_country_code(str(mapped))
    return code if code in _ISO_ALPHA2 else None


# --------------------------------------------------------------------------- locale

_LOCALE_SPLIT = re.compile(r"[-_]")


def country_from_locale(locale: str) -> str | None:
    """Region of a POSIX locale or BCP 47 tag, else None.

    ``de-DE``, ``de_AT``, ``pt_BR.UTF-8``, ``sr_RS@latin``, ``zh-Hant-TW``, ``es-724``
    (numeric region) -> the ISO alpha-2 region; language-only (``fr``), ``C``, UN M.49
    areas (``es-419``) and unknown regions -> None.  For an Accept-Language header only
    the first language range is used (``de-CH,de;q=0.9`` -> ``CH``).
    """
    if not isinstance(locale, str):
        return None
    return _country_from_locale(locale)


@lru_cache(maxsize=_CACHE_SIZE)
def _country_from_locale(locale: str) -> str | None:
    tag = locale.strip()
    for sep in (",", ";", ".", "@", " "):
        tag = tag.partition(sep)[0]
    subtags = _LOCALE_SPLIT.split(tag)
    if len(subtags) < 2:
        return None
    for subtag in subtags[1:]:
        if not subtag.isascii():
            return None
        length = len(subtag)
        if length == 1:  # extension singleton (-u-, -x-): no region before it
            return None
        if length == 2 and subtag.isalpha():
            return _CODES.get(subtag.upper())
        if length == 3 and subtag.isdigit():
            return _CODES.get(subtag)
        if (length == 3 and subtag.isalpha()) or (length == 4 and subtag.isalpha()):
            continue  # extended language ("zh-yue-HK") or script ("zh-Hant-TW")
        return None  # variant: a region would have come before it
    return None


# --------------------------------------------------------------------------- resolution


@dataclass(frozen=True)
class CountrySources:
    """The raw values a record offers for finding the user's country."""

    country: str | None = None
    phone: str | None = None
    ip: str | None = None
    locale: str | None = None


def resolve_country(sources: CountrySources, default: str | None = None) -> tuple[str, CountrySource] | None:
    """``(alpha2, source)`` from the first source that yields an ISO country, else None.

    Order: the record's country field (any spelling ``to_alpha2`` accepts; an unknown
    value such as ``"Atlantis"`` falls through) -> the phone number's region (only
    international numbers can tell: national formats are parsed without a default
    region) -> the IP address -> the locale -> ``default`` (any accepted spelling).
    """
    return resolve_country_values(sources.country, sources.phone, sources.ip, sources.locale, default)


def resolve_country_values(
    country: str | None, phone: str | None, ip: str | None, locale: str | None, default: str | None = None
) -> tuple[str, CountrySource] | None:
    """`resolve_country` of ``CountrySources(country, phone, ip, locale)`` without building it (hot path)."""
    if country:
        a2 = to_alpha2(country)
        if a2 is not None:
            return a2, "field"
    if phone:
        region = phone_region(phone, None)
        if region is not None:
            a2 = to_alpha2(region)  # maps phonenumbers' AC/TA to SH, drops XK
            if a2 is not None:
                return a2, "phone"
    if ip:
        a2 = country_from_ip(ip)
        if a2 is not None:
            return a2, "ip"
    if locale:
        a2 = country_from_locale(locale)
        if a2 is not None:
            return a2, "locale"
    if default:
        a2 = to_alpha2(default)
        if a2 is not None:
            return a2, "default"
    return None
