"""Normalisation and hashing of personal identifiers (email, phone, name, opaque id).

Server-to-server ingestion APIs (Zeotap, Audiohook, Google Enhanced Conversions /
Customer Match, Meta Conversions API, ...) match users on SHA-256 digests of
*normalised* identifiers, so the normalisation must be byte-for-byte what the
platform does on its side:

* email: trim, lowercase, NFC; optionally fold Gmail addresses (drop dots and
  ``+tag`` in the local part, ``googlemail.com`` -> ``gmail.com``).
* phone: E.164 (``+4930123456``) or E.164 without ``+`` (``4930123456``); the parsing
  and its fast path are :mod:`streams.pipeline.phone`.
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
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from streams.pipeline.phone import e164, region_of_e164
from streams.pipeline.text import trim

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
    email = _nfc(trim(value).lower())
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
    number = e164(value, _region_key(default_region))
    if number is None:
        return None
    if fmt == "e164":
        return number
    if fmt == "digits":
        return number[1:]
    return None


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
    number = e164(value, _region_key(default_region))
    return None if number is None else region_of_e164(number)


# --------------------------------------------------------------------------- name


def normalize_name(value: str, lowercase: bool = True) -> str | None:
    """Trimmed, lower-cased (unless ``lowercase=False``), NFC name, or None when empty."""
    if not isinstance(value, str):
        return None
    return _normalize_name(value, lowercase)


def _name(value: str, lowercase: bool) -> str | None:
    name = trim(value)
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
    trimmed = trim(value)
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
