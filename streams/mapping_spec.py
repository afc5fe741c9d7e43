"""The mapping language: what a route's ``mapping`` may say, parsed and checked without running it.

A mapping is a dict of sections (``event``, ``user``, ``consent``, ``page``, ``device``); each section
maps a target key to a *spec*:

``"customer.email"``
    shorthand for ``{path: customer.email}``: a dotted path into nested records.
``{path: P, default: V, as: T, required: true, keep_null: true}``
    ``as`` coerces: ``string``, ``int``, ``float``, ``bool``, ``timestamp`` (destination's format),
    ``date`` (``YYYY-MM-DD``), ``join`` (array -> comma-separated string). Without ``as``,
    values keep their type (numbers stay numbers, arrays arrays); datetimes become timestamps
    in the destination's format and dates ``YYYY-MM-DD``.
``{const: V}``
    a constant (so is a bare number, boolean, list or null).
``{path: P, identity: email|phone|name}``
    an identifier: normalised and (per destination profile) SHA-256 hashed in the enrich stage.
``{path: P, identity: id}``
    an identifier that is sent as is (trimmed), e.g. the customer id.
``{country: true}``
    the enriched country of the record (ISO 3166, destination's format).
``{path: P, consent: true}``
    a consent value, normalised to ``true`` / ``false`` (spellings like yes/granted/1 accepted).
``"{field}": spec``
    a target key taken from the record itself, e.g. ``"{consent_type}": {path: status, consent: true}``.
``"*": {from: P, exclude: [..]}``
    every field of the record at ``P`` (root when omitted) under its source name.

Nulls are dropped unless ``keep_null`` is set (per field, or ``_keep_nulls: true`` per section).

This module is the one grammar: `parse_mapping` is what the config validates at start-up and what
`streams.pipeline.mapping.Mapping` compiles from. Pure: imports nothing of the bridge but its errors,
so the config can check a mapping without importing the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streams.errors import ConfigError

SECTIONS = ("event", "user", "consent", "page", "device")
COERCIONS = frozenset({"string", "int", "float", "bool", "timestamp", "date", "join"})
IDENTITY_KINDS = frozenset({"email", "phone", "name", "id"})
FIELD_OPTIONS = frozenset({"path", "const", "default", "as", "identity", "country", "consent", "required", "keep_null"})
REST_OPTIONS = frozenset({"from", "exclude", "keep_null"})
REST_KEY = "*"


class MappingSpecError(ConfigError, ValueError):
    """The mapping itself is wrong: the message names the section and key. A ValueError too, so that
    the config's validation reports it at the route's ``mapping`` field."""


def path_parts(path: str) -> tuple[str, ...]:
    """The steps of a dotted path (empty steps ignored; no steps: the record itself)."""
    return tuple(p for p in path.split(".") if p)


@dataclass(frozen=True, slots=True)
class CountryField:
    """``{country: true}``: the record's enriched country."""

    section: str
    key: str


@dataclass(frozen=True, slots=True)
class ConstField:
    """``{const: V}``: the same value for every record."""

    section: str
    key: str
    value: Any


@dataclass(frozen=True, slots=True)
class PathField:
    """A value read from the record at `path`, under `key` (or, for ``{field}``, a key read from the record)."""

    section: str
    key: str
    path: Any  # as written (its repr names it in errors); read as str(path)
    default: Any
    required: bool
    keep_null: bool
    coerce: str | None  # one of COERCIONS
    identity: str | None  # one of IDENTITY_KINDS
    consent: bool

    @property
    def parts(self) -> tuple[str, ...]:
        return path_parts(str(self.path))

    @property
    def key_path(self) -> str | None:
        """The path of a key taken from the record (``"{consent_type}"``), else None."""
        return self.key[1:-1] if self.key.startswith("{") and self.key.endswith("}") else None


@dataclass(frozen=True, slots=True)
class RestField:
    """``"*": {from: P, exclude: [..]}``: every other field of the record at `source`."""

    section: str
    source: str
    exclude: frozenset[Any]
    keep_null: bool

    @property
    def key(self) -> str:
        return REST_KEY

    @property
    def parts(self) -> tuple[str, ...]:
        return path_parts(self.source)


FieldSpec = CountryField | ConstField | PathField | RestField


@dataclass(frozen=True, slots=True)
class MappingSpec:
    """A parsed mapping: its sections in `SECTIONS` order and its fields in the order they are applied."""

    sections: tuple[str, ...]
    fields: tuple[FieldSpec, ...]


def where(section: str, key: str) -> str:
    """How errors name a field of the mapping: ``mapping.<section>.<key>``."""
    return f"mapping.{section}.{key}"


def parse_mapping(spec: dict[str, dict[str, Any]]) -> MappingSpec:
    """Parse a mapping; MappingSpecError (naming section and key) when it is wrong.

    Sections not in `SECTIONS` are skipped here (the config rejects them with its own message).
    A malformed value Python cannot hash or iterate (an ``exclude`` of lists, a list as ``as``)
    raises TypeError, which the config reports as an invalid mapping.
    """
    sections = tuple(s for s in SECTIONS if s in spec)
    fields: list[FieldSpec] = []
    for section in sections:
        entries = dict(spec[section] or {})
        keep_nulls = bool(entries.pop("_keep_nulls", False))
        fields.extend(_parse_field(section, key, fspec, keep_nulls) for key, fspec in entries.items())
    return MappingSpec(sections, tuple(fields))


def _parse_field(section: str, key: str, fspec: Any, keep_nulls: bool) -> FieldSpec:
    at = where(section, key)
    if key == REST_KEY:
        return _parse_rest(section, fspec, at)
    if isinstance(fspec, str):
        fspec = {"path": fspec}
    if not isinstance(fspec, dict):
        # a bare number/bool/list is a constant
        fspec = {"const": fspec}
    unknown = set(fspec) - FIELD_OPTIONS
    if unknown:
        raise MappingSpecError(f"{at}: unknown option(s) {sorted(unknown)}; allowed: {sorted(FIELD_OPTIONS)}")
    # country and const take no other option: the checks below do not apply to them
    if fspec.get("country"):
        return CountryField(section, key)
    if "const" in fspec:
        return ConstField(section, key, fspec["const"])
    if "path" not in fspec:
        raise MappingSpecError(f"{at}: needs 'path', 'const' or 'country'")
    coerce = fspec.get("as")
    if coerce is not None and coerce not in COERCIONS:
        raise MappingSpecError(f"{at}: 'as' must be one of {sorted(COERCIONS)}, got {coerce!r}")
    identity = fspec.get("identity")
    if identity is not None and identity not in IDENTITY_KINDS:
        raise MappingSpecError(f"{at}: 'identity' must be one of {sorted(IDENTITY_KINDS)}, got {identity!r}")
    field = PathField(
        section=section,
        key=key,
        path=fspec["path"],
        default=fspec.get("default"),
        required=bool(fspec.get("required", False)),
        keep_null=bool(fspec.get("keep_null", keep_nulls)),
        coerce=coerce,
        identity=identity,
        consent=bool(fspec.get("consent", False)),
    )
    if field.key_path is not None and identity is not None:
        # the enrich stage finds identifiers by key: under a key read from the record it would
        # never normalise or hash them, and the raw value would be sent
        raise MappingSpecError(f"{at}: 'identity' cannot be used with a key taken from the record")
    return field


def _parse_rest(section: str, fspec: Any, at: str) -> RestField:
    if fspec is None or fspec is True:
        fspec = {}
    if not isinstance(fspec, dict) or set(fspec) - REST_OPTIONS:
        raise MappingSpecError(f"{at}: expects {{from: PATH, exclude: [..], keep_null: bool}}")
    exclude = fspec.get("exclude", ())
    return RestField(
        section=section,
        source=str(fspec.get("from", "")),
        exclude=frozenset([exclude] if isinstance(exclude, str) else exclude),
        keep_null=bool(fspec.get("keep_null", False)),
    )
