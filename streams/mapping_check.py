"""A route's mapping checked against its Avro reader schema, before any record is read.

`streams.pipeline.mapping` reads a path by stepping through dicts: a record's fields, a map's keys
(any key), the branch a union decoded to; an array, a string or a number ends the path (the value
is then missing for every record). `SchemaPaths` walks the schema with the same rules, so a path
the mapping could never find is a problem here, and one it can find (also through a map or a
nullable union) is not. Each operator accepts the value types the pipeline can really use
(`ACCEPTS`); a path whose union has at least one such non-null branch passes.

Pure: the schema is its JSON (already validated as Avro by the caller), the mapping its raw dict
as parsed by `streams.mapping_spec`; imports only the mapping language and the standard library.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from streams.mapping_spec import PathField, RestField, parse_mapping, path_parts, where

_NAMED = ("record", "error", "enum", "fixed")
# (Avro type, logicalType) -> what the decoder hands the mapping; the pairs fastavro's
# LOGICAL_READERS converts (a unit test keeps this table equal to fastavro's); any other
# logicalType is ignored by the decoder and the value keeps its Avro type
LOGICAL_KINDS = {
    ("int", "date"): "date",
    ("int", "time-millis"): "time-millis",
    ("long", "time-micros"): "time-micros",
    ("long", "timestamp-millis"): "timestamp-millis",
    ("long", "timestamp-micros"): "timestamp-micros",
    ("long", "local-timestamp-millis"): "local-timestamp-millis",
    ("long", "local-timestamp-micros"): "local-timestamp-micros",
    ("bytes", "decimal"): "decimal",
    ("fixed", "decimal"): "decimal",
    ("string", "uuid"): "uuid",
}
_NUMBERS = frozenset({"int", "long", "float", "double"})
_DATETIMES = frozenset({"timestamp-millis", "timestamp-micros", "local-timestamp-millis", "local-timestamp-micros"})
_STRINGS = frozenset({"string", "enum"})
# operator -> the value kinds the pipeline can use (pipeline/mapping.py, identity.py, consent.py,
# transform.py); a kind outside it fails or is meaningless for every record
ACCEPTS: dict[str, frozenset[str]] = {
    # identifiers are read as text: a record, array or number would be sent (or hashed) as its repr
    "identity: email": _STRINGS,
    "identity: name": _STRINGS,
    "identity: phone": _STRINGS | {"int", "long"},
    "identity: id": _STRINGS | {"uuid", "int", "long"},
    # normalize_consent: booleans, numbers 1/0, spellings such as "granted"
    "consent": _STRINGS | _NUMBERS | {"boolean"},
    # format_timestamp: datetimes, epoch millis, ISO-8601 text with a time zone
    "as: timestamp": _DATETIMES | _NUMBERS | {"string"},
    "as: date": _DATETIMES | {"date", "int", "long", "string"},
    "as: int": _NUMBERS | {"boolean", "string", "decimal"},
    "as: float": _NUMBERS | {"boolean", "string", "decimal"},
    "as: bool": _STRINGS | _NUMBERS | {"boolean"},
    # `"*"` copies the fields of a dict: a record's, or a map's entries
    "'*' from": frozenset({"record", "map"}),
    # a key read from the record ("{consent_type}") is used as text
    "a key from the record": _STRINGS | {"uuid", "int", "long"},
    # country sources are read only when they hold non-empty text (compile_str_getters)
    "a country source": _STRINGS,
}


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong with one config field; `field` is relative to the route (``mapping.user.email.path``)."""

    field: str
    message: str


@dataclass(frozen=True, slots=True)
class _Type:
    """One Avro type (never a union) and the namespace its names resolve in."""

    schema: Any
    namespace: str

    @property
    def kind(self) -> str:
        if isinstance(self.schema, str):
            return self.schema
        t = self.schema["type"]
        if t == "error":
            return "record"
        return LOGICAL_KINDS.get((t, self.schema.get("logicalType")), t)


class SchemaPaths:
    """The paths of a reader schema as the mapping reads them (see the module docstring)."""

    def __init__(self, schema: Any, name: str = "the schema") -> None:
        self.name = name
        self._named: dict[str, _Type] = {}
        self._collect(schema, "")
        self.root = self._branches(schema, "")

    # -- named types ------------------------------------------------------------

    def _collect(self, schema: Any, ns: str) -> None:
        if isinstance(schema, list):
            for branch in schema:
                self._collect(branch, ns)
        elif isinstance(schema, dict):
            t = schema.get("type")
            if t in _NAMED:
                full, inner = _fullname(schema, ns)
                self._named[full] = _Type(schema, inner)
                for f in schema.get("fields", ()) if t in ("record", "error") else ():
                    self._collect(f["type"], inner)
            elif t == "array":
                self._collect(schema["items"], ns)
            elif t == "map":
                self._collect(schema["values"], ns)
            elif isinstance(t, dict | list):
                self._collect(t, ns)

    def _branches(self, schema: Any, ns: str) -> list[_Type]:
        """The types a value of `schema` can be: a union's branches, names resolved."""
        if isinstance(schema, list):
            return [b for branch in schema for b in self._branches(branch, ns)]
        if isinstance(schema, dict) and isinstance(schema.get("type"), dict | list):
            return self._branches(schema["type"], ns)
        if isinstance(schema, dict) and schema.get("type") in _NAMED:
            return [self._named[_fullname(schema, ns)[0]]]
        if isinstance(schema, str) and schema not in _PRIMITIVES:
            found = self._named.get(f"{ns}.{schema}" if ns and "." not in schema else schema) or self._named.get(schema)
            if found is not None:
                return [found]
        return [_Type(schema, ns)]

    # -- paths ------------------------------------------------------------------

    def _step(self, types: list[_Type], name: str) -> list[_Type]:
        out: list[_Type] = []
        for t in types:
            if t.kind == "record":
                for f in t.schema["fields"]:
                    if f["name"] == name:
                        out += self._branches(f["type"], t.namespace)
            elif t.kind == "map":
                out += self._branches(t.schema["values"], t.namespace)
        return out

    def resolve(self, path: str) -> list[_Type] | str:
        """The types found at `path`, or why the mapping can never find it (a message naming the
        path, what stopped it and, when one is close, the existing path meant)."""
        types = self.root
        walked: list[str] = []
        for part in path_parts(path):
            found = self._step(types, part)
            if not found:
                return self._not_found(path, types, walked)
            types = found
            walked.append(part)
        return types

    def _not_found(self, path: str, types: list[_Type], walked: list[str]) -> str:
        msg = f"{path!r} is not a field of {self.name}"
        if not any(t.kind in ("record", "map") for t in types):
            at = ".".join(walked)
            what = describe(types)
            if walked:
                why = "a path cannot index into an array" if "array" in kinds(types) else "a path goes on only in a record or map"
                msg += f" ({at!r} is {what}: {why})"
            else:
                msg += f" (its top level is {what}, not a record)"
            return msg
        hint = self.suggest(path)
        return msg + (f"; did you mean {hint!r}?" if hint else "")

    def paths(self) -> list[str]:
        """Every record and leaf path of the schema (not into maps or arrays; a recursive record once per chain)."""
        out: list[str] = []

        def walk(types: list[_Type], prefix: str, seen: frozenset[str]) -> None:
            for t in types:
                if t.kind != "record":
                    continue
                own = _fullname(t.schema, t.namespace)[0] if isinstance(t.schema, dict) else ""
                if own in seen:
                    continue
                for f in t.schema["fields"]:
                    p = f"{prefix}{f['name']}"
                    out.append(p)
                    walk(self._branches(f["type"], t.namespace), f"{p}.", seen | {own})

        walk(self.root, "", frozenset())
        return list(dict.fromkeys(out))

    def suggest(self, path: str) -> str | None:
        """The existing path most likely meant: same path in another case, the same field name at
        another depth (a level missing or too many), else difflib's closest; None when nothing is close."""
        candidates = self.paths()
        lowered = {c.lower(): c for c in candidates}
        if path.lower() in lowered:
            return lowered[path.lower()]
        leaf = path_parts(path)[-1].lower() if path_parts(path) else ""
        same_leaf = [c for c in candidates if c.rpartition(".")[2].lower() == leaf]
        if same_leaf:
            return max(same_leaf, key=lambda c: difflib.SequenceMatcher(None, path, c).ratio())
        close = difflib.get_close_matches(path, candidates, n=1)
        return close[0] if close else None

    def check_source(self, field: str, path: str, operator: str | None) -> list[Problem]:
        """The path must exist and, with an operator, hold a type it accepts."""
        found = self.resolve(path)
        if isinstance(found, str):
            return [Problem(field, found)]
        if operator is None:
            return []
        accepts = ACCEPTS[operator]
        if any(k in accepts for k in kinds(found) if k != "null"):
            return []
        return [Problem(field.removesuffix(".path"), f"{operator} needs {_listed(accepts)}, but {path!r} is {describe(found)}")]


_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def _fullname(schema: dict[str, Any], ns: str) -> tuple[str, str]:
    """(full name, the namespace its own fields resolve names in) of a named type."""
    name = str(schema["name"])
    if "." in name:
        return name, name.rpartition(".")[0]
    own = schema.get("namespace", ns) or ""
    return (f"{own}.{name}" if own else name), own


# how `_listed` orders kinds: text, then numbers, then times, then containers
_ORDER = ("string", "enum", "uuid", "boolean", "int", "long", "float", "double", "decimal", "date",
          *sorted(_DATETIMES), "record", "map")  # fmt: skip


def _listed(accepts: frozenset[str]) -> str:
    """``a string, enum, int or long``."""
    names = sorted(accepts, key=lambda k: _ORDER.index(k) if k in _ORDER else len(_ORDER))
    head = ", ".join(names[:-1])
    return f"{'an' if names[0][0] in 'aeiou' else 'a'} {head + ' or ' if head else ''}{names[-1]}"


def kinds(types: list[_Type]) -> list[str]:
    return list(dict.fromkeys(t.kind for t in types))


def describe(types: list[_Type]) -> str:
    """``a record``, ``an array``, ``null | string``."""
    ks = kinds(types)
    if len(ks) == 1:
        return f"{'an' if ks[0][0] in 'aeiou' else 'a'} {ks[0]}"
    return " | ".join(ks)


def _operator(field: PathField) -> str | None:
    if field.identity is not None:
        return f"identity: {field.identity}"
    if field.consent:
        return "consent"
    if field.coerce is not None and f"as: {field.coerce}" in ACCEPTS:
        return f"as: {field.coerce}"
    return None


def check_mapping(schema: SchemaPaths, mapping: dict[str, dict[str, Any]]) -> list[Problem]:
    """Every path the mapping reads checked against the schema; the problems, in mapping order.
    MappingSpecError when the mapping itself is wrong (the config reports that first)."""
    problems: list[Problem] = []
    for field in parse_mapping(mapping).fields:
        at = where(field.section, field.key)
        if isinstance(field, RestField):
            problems += schema.check_source(f"{at}.from", field.source, "'*' from")
            problems += _check_exclude(schema, field, f"{at}.exclude")
        elif isinstance(field, PathField):
            written = (mapping.get(field.section) or {}).get(field.key)
            problems += schema.check_source(f"{at}.path" if isinstance(written, dict) else at, str(field.path), _operator(field))
            if field.key_path is not None:
                problems += schema.check_source(at, field.key_path, "a key from the record")
    return problems


def _check_exclude(schema: SchemaPaths, field: RestField, at: str) -> list[Problem]:
    """An `exclude` name the source does not have is a typo that lets the field it meant through."""
    source = schema.resolve(field.source)
    if isinstance(source, str) or any(t.kind == "map" for t in source) or not any(t.kind == "record" for t in source):
        return []  # the source's own problem is reported; a map may have any key
    names = [f["name"] for t in source if t.kind == "record" for f in t.schema["fields"]]
    problems = []
    for name in sorted(map(str, field.exclude)):
        if name not in names:
            hint = [n for n in names if n.lower() == name.lower()] or difflib.get_close_matches(name, names, n=1)
            of = repr(field.source) if field.source else "the record"
            problems.append(Problem(at, f"{name!r} is not a field of {of}" + (f"; did you mean {hint[0]!r}?" if hint else "")))
    return problems


__all__ = ["ACCEPTS", "LOGICAL_KINDS", "Problem", "SchemaPaths", "check_mapping", "describe", "kinds"]
