"""`s2s-bridge scaffold`: a route with a mapping skeleton, written from an Avro record schema.

Pure: a schema dict in, the route's YAML text and the fields it could not place out (the command
line reads the schema file or the registry and writes the files). Fields are recognised by name
(case and ``_`` ignored, common variants) and Avro type together: a string named ``email`` is an
e-mail, a record named ``email`` is not. What is recognised goes where the hand-written routes of
``examples/`` put it; everything else of the record goes to the event's properties through the
``"*"`` rest field, except what must not travel raw (a second e-mail, bytes). Whatever was not
placed is listed as ``# not placed: path (type): reason``; a placement by a guess says so on its line.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streams.errors import ConfigError
from streams.mapping_spec import REST_KEY

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
TIMESTAMP_TYPES = frozenset({"timestamp-millis", "timestamp-micros"})
# names an event timestamp usually has, best first; another timestamp-millis field is taken by a guess
TIMESTAMP_NAMES = ("occurredat", "eventtime", "eventtimestamp", "timestamp", "ts", "createdat")
CONSENT_RECORDS = frozenset({"consent", "consents", "privacy"})
CONSENT_NAMES = frozenset({"marketing", "analytics", "personalisation", "personalization"})
# plain YAML scalars we emit unquoted; anything else is written as a JSON (= YAML double-quoted) string
_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


class ScaffoldError(ConfigError):
    """The schema cannot be scaffolded (not a record, malformed): a usage error, exit 2."""


@dataclass(frozen=True, slots=True)
class ScaffoldOptions:
    """What the route is called and where it points; `schema_path` as the route's ``schema:`` reads it."""

    topic: str
    schema_path: str
    route: str | None = None  # default: the topic, sanitised
    destination: str = "zeotap"
    destination_type: str = "zeotap"  # only Zeotap takes non-customer entities (entity: nce)
    framing: str = "auto"
    source: str = ""  # where the schema came from, for the header comment
    under_routes: bool = False  # True: the route entry alone, to append under a config's `routes:`


@dataclass(frozen=True, slots=True)
class Unplaced:
    """A field the scaffold did not map to a section of its own, and what became of it."""

    path: str
    type: str
    reason: str

    def comment(self) -> str:
        return f"# not placed: {self.path} ({self.type}): {self.reason}"


@dataclass(frozen=True, slots=True)
class Scaffold:
    route: str
    text: str
    unplaced: tuple[Unplaced, ...]


@dataclass(frozen=True, slots=True)
class SchemaField:
    """One field of the record (or of a nested record), nullable unions unwrapped."""

    path: tuple[str, ...]
    kind: str  # the Avro type: a primitive, record, enum, fixed, array, map or union (beyond nullable)
    logical: str | None
    type_text: str  # for comments, e.g. "nullable string", "array of record Item"
    type_name: str | None  # a record's own name
    order: int  # schema order, depth first
    children: tuple[SchemaField, ...] = ()
    personal_items: tuple[str, ...] = ()  # array/map of records: the names in it that look like personal data

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    @property
    def key(self) -> str:
        return normal(self.name)


@dataclass(frozen=True, slots=True)
class Target:
    """A place in the mapping a field can go: which names (sure or guessed) and Avro types fit it."""

    section: str  # a mapping section, or "country" for the route's country sources
    key: str
    label: str
    kinds: frozenset[str]
    sure: frozenset[str]
    guess: frozenset[str] = frozenset()
    identity: str | None = None
    personal: bool = False  # raw personal data: a second one is withheld, never sent as a property
    root_only: bool = False


_STR = frozenset({"string"})
_ID = frozenset({"string", "int", "long"})
TARGETS = (
    Target("user", "userId", "a customer id", _ID, frozenset({"customerid", "userid"}), frozenset({"accountid"}), "id"),
    Target(
        "user",
        "anonymousId",
        "an anonymous id",
        _STR,
        frozenset({"anonymousid", "anonid"}),
        frozenset({"deviceid", "visitorid", "cookieid"}),
        "id",
    ),
    Target("user", "email_sha256", "an e-mail", _STR, frozenset({"email", "emailaddress"}), frozenset({"mail"}), "email", True),
    Target(
        "user",
        "phone_sha256",
        "a phone number",
        _STR,
        frozenset({"phone", "phonenumber"}),
        frozenset({"mobile", "msisdn", "mobilenumber", "mobilephone"}),
        "phone",
        True,
    ),
    Target(
        "user", "first_name_sha256", "a first name", _STR, frozenset({"firstname", "givenname"}), identity="name", personal=True
    ),
    Target(
        "user",
        "last_name_sha256",
        "a last name",
        _STR,
        frozenset({"lastname", "surname", "familyname"}),
        identity="name",
        personal=True,
    ),
    Target("country", "field", "a country", frozenset({"string", "enum"}), frozenset({"country", "countrycode"})),
    Target("device", "ipAddress", "an IP address", _STR, frozenset({"ip", "ipaddress", "clientip"})),
    Target("device", "userAgent", "a user agent", _STR, frozenset({"useragent"}), frozenset({"ua"})),
    Target("device", "sessionId", "a session id", _STR, frozenset({"sessionid"})),
    Target("device", "locale", "a locale", _STR, frozenset({"locale"}), frozenset({"language"})),
    Target("page", "url", "a page URL", _STR, frozenset({"pageurl"}), frozenset({"url"})),
    Target("page", "referrer", "a referrer", _STR, frozenset({"referrer", "referer"})),
    Target("page", "title", "a page title", _STR, frozenset({"pagetitle"})),
    Target("page", "category", "a page category", _STR, frozenset({"pagecategory"})),
    Target("event", "eventId", "an event id", _STR, frozenset({"eventid", "messageid"}), frozenset({"id"}), root_only=True),
)
_BY_NAME = {n: t for t in TARGETS for n in t.sure | t.guess}
PERSONAL_NAMES = frozenset(n for t in TARGETS if t.personal for n in t.sure | t.guess)
# a name ending like this is taken for an e-mail or phone too (as a guess): never sent raw by mistake
PERSONAL_SUFFIXES = ("emailaddress", "email", "phonenumber", "phone")


def normal(name: str) -> str:
    """A name as matched: lower case, without ``_`` and ``-`` (email_address = emailAddress)."""
    return name.lower().replace("_", "").replace("-", "")


def route_name(topic: str) -> str:
    """The default route name: the topic with anything but letters, digits and ``_`` made ``_``."""
    name = re.sub(r"[^A-Za-z0-9_]+", "_", topic).strip("_")
    return name or "route"


# ---------------------------------------------------------------------------- reading the schema


class _SchemaReader:
    """Walks a record schema into `SchemaField`s, resolving named types (and not recursing forever)."""

    def __init__(self) -> None:
        self.named: dict[str, Any] = {}
        self.order = 0

    def record(
        self, schema: dict[str, Any], path: tuple[str, ...], namespace: str, open_records: frozenset[str]
    ) -> tuple[SchemaField, ...]:
        fields = schema.get("fields")
        if not isinstance(fields, list):
            raise ScaffoldError(f"record {schema.get('name')!r} has no 'fields' list")
        out = []
        for f in fields:
            if not isinstance(f, dict) or not isinstance(f.get("name"), str) or "type" not in f:
                raise ScaffoldError(f"a field of record {schema.get('name')!r} has no name or type")
            out.append(self.field((*path, f["name"]), f["type"], namespace, open_records))
        return tuple(out)

    def _register(self, schema: dict[str, Any], namespace: str) -> tuple[str, str]:
        name = str(schema.get("name", ""))
        ns = str(schema.get("namespace", namespace)) if "." not in name else name.rpartition(".")[0]
        full = name if "." in name or not ns else f"{ns}.{name}"
        self.named.setdefault(full, schema)
        self.named.setdefault(full.rpartition(".")[2], schema)
        return full, ns

    def resolve(self, t: Any, namespace: str) -> Any:
        if isinstance(t, str) and t not in PRIMITIVES:
            found = self.named.get(t) or self.named.get(f"{namespace}.{t}")
            if found is None:
                raise ScaffoldError(f"unknown type {t!r}")
            return found
        return t

    def field(self, path: tuple[str, ...], t: Any, namespace: str, open_records: frozenset[str]) -> SchemaField:
        self.order += 1
        order = self.order
        nullable = False
        if isinstance(t, list):
            branches = [b for b in t if b != "null"]
            nullable = len(branches) < len(t)
            if len(branches) != 1:
                for b in branches:  # named types defined inside the union stay known
                    self._define(b, namespace)
                names = "|".join(_type_word(self.resolve(b, namespace)) for b in t)
                return SchemaField(path, "union", None, f"union {names}", None, order)
            t = branches[0]
        t = self.resolve(t, namespace)
        prefix = "nullable " if nullable else ""
        if isinstance(t, str):
            return SchemaField(path, t, None, prefix + t, None, order)
        if not isinstance(t, dict) or "type" not in t:
            raise ScaffoldError(f"{'.'.join(path)}: not an Avro type: {json.dumps(t)[:80]}")
        kind = t["type"]
        logical = t.get("logicalType")
        if isinstance(kind, str) and kind in PRIMITIVES:
            return SchemaField(path, kind, logical, prefix + (f"{kind} {logical}" if logical else kind), None, order)
        if kind in ("record", "error"):
            full, ns = self._register(t, namespace)
            text = f"{prefix}record {t.get('name')}"
            if full in open_records:  # a recursive type: not walked again
                return SchemaField(path, "record", None, text + " (recursive)", str(t.get("name")), order)
            children = self.record(t, path, ns, open_records | {full})
            return SchemaField(path, "record", None, text, str(t.get("name")), order, children)
        if kind in ("enum", "fixed"):
            self._register(t, namespace)
            described = f"{kind} {t.get('name')}" + (f" {logical}" if logical else "")
            return SchemaField(path, kind, logical, prefix + described, str(t.get("name")), order)
        if kind in ("array", "map"):
            inner = self.resolve(t.get("items" if kind == "array" else "values"), namespace)
            self._define(inner, namespace)
            personal = tuple(sorted(_personal_names(inner, self)))
            return SchemaField(path, kind, None, f"{prefix}{kind} of {_type_word(inner)}", None, order, (), personal)
        raise ScaffoldError(f"{'.'.join(path)}: unknown Avro type {kind!r}")

    def _define(self, t: Any, namespace: str) -> None:
        """Register the named types defined inside `t` (so later references resolve)."""
        t = self.resolve(t, namespace) if isinstance(t, str) else t
        if isinstance(t, list):
            for b in t:
                self._define(b, namespace)
        elif isinstance(t, dict):
            kind = t.get("type")
            if kind in ("record", "error", "enum", "fixed"):
                full, ns = self._register(t, namespace)
                for f in t.get("fields") or ():
                    if isinstance(f, dict) and isinstance(f.get("type"), dict | list):
                        self._define(f["type"], ns)
            elif kind in ("array", "map"):
                self._define(t.get("items" if kind == "array" else "values"), namespace)


def _type_word(t: Any) -> str:
    if isinstance(t, str):
        return t
    if isinstance(t, list):
        return "union"
    if isinstance(t, dict):
        kind = t.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            return f"{kind} {t.get('name')}"
        return str(kind)
    return "?"


def _personal_names(t: Any, reader: _SchemaReader, seen: frozenset[int] = frozenset()) -> Iterator[str]:
    """Field names that look like raw personal data (e-mail, phone, names) anywhere inside a type."""
    if isinstance(t, str) and t not in PRIMITIVES:
        t = reader.named.get(t)
    if id(t) in seen:
        return
    seen = seen | {id(t)}
    if isinstance(t, list):
        for b in t:
            yield from _personal_names(b, reader, seen)
    elif isinstance(t, dict):
        kind = t.get("type")
        if kind in ("record", "error"):
            for f in t.get("fields") or ():
                if normal(str(f.get("name", ""))) in PERSONAL_NAMES or normal(str(f.get("name", ""))).endswith(PERSONAL_SUFFIXES):
                    yield str(f["name"])
                yield from _personal_names(f.get("type"), reader, seen)
        elif kind in ("array", "map"):
            yield from _personal_names(t.get("items" if kind == "array" else "values"), reader, seen)


def read_fields(schema: dict[str, Any]) -> tuple[SchemaField, ...]:
    """The record's fields as a tree; ScaffoldError when the schema is not a record."""
    if not isinstance(schema, dict) or schema.get("type") not in ("record", "error"):
        what = schema.get("type") if isinstance(schema, dict) else schema
        raise ScaffoldError(f"the schema is not an Avro record (its type is {json.dumps(what)[:60]}): a route reads records")
    reader = _SchemaReader()
    reader._define(schema, "")
    full, ns = reader._register(schema, "")
    return reader.record(schema, (), ns, frozenset({full}))


def _walk(
    fields: tuple[SchemaField, ...], parents: tuple[SchemaField, ...] = ()
) -> Iterator[tuple[SchemaField, tuple[SchemaField, ...]]]:
    for f in fields:
        yield f, parents
        yield from _walk(f.children, (*parents, f))


# ---------------------------------------------------------------------------- placing the fields


@dataclass(slots=True)
class _Placement:
    """What the scaffold decided, before it is written out."""

    placed: dict[tuple[str, str], tuple[SchemaField, str | None]] = field(default_factory=dict)  # (section, key) -> field, guess
    withheld: dict[tuple[str, ...], Unplaced] = field(default_factory=dict)  # never sent: not in properties
    noted: dict[tuple[str, ...], Unplaced] = field(default_factory=dict)  # left in event properties, with a note

    @property
    def taken(self) -> set[tuple[str, ...]]:
        return {f.path for f, _ in self.placed.values()} | set(self.withheld)


def _rank_candidates(cands: list[tuple[int, SchemaField]]) -> list[tuple[int, SchemaField]]:
    # a sure name before a guess, then the shallower field, then schema order: deterministic
    return sorted(cands, key=lambda c: (c[0], len(c[1].path), c[1].order))


def _place(fields: tuple[SchemaField, ...], nce_if_anonymous: bool) -> tuple[_Placement, bool]:
    p = _Placement()
    every = list(_walk(fields))
    by_target: dict[Target, list[tuple[int, SchemaField]]] = {}
    timestamps: list[tuple[int, SchemaField]] = []
    consents: list[tuple[str, SchemaField, str | None]] = []
    for f, parents in every:
        t = _BY_NAME.get(f.key)
        rank = 0 if t is not None and f.key in t.sure else 1
        if t is None and f.key.endswith(PERSONAL_SUFFIXES):  # billing_email, work_phone: a guess after the others
            t, rank = _BY_NAME[next(s for s in PERSONAL_SUFFIXES if f.key.endswith(s))], 2
        if t is not None and not (t.root_only and parents):
            if f.kind in t.kinds:
                by_target.setdefault(t, []).append((rank, f))
            else:
                p.noted[f.path] = Unplaced(
                    f.dotted, f.type_text, f"named like {t.label} but not a {'/'.join(sorted(t.kinds))}; left in event properties"
                )
        if f.kind == "long" and f.logical in ("local-timestamp-millis", "local-timestamp-micros"):
            p.noted[f.path] = Unplaced(
                f.dotted,
                f.type_text,
                "a local timestamp (no time zone) is not taken for the event timestamp; left in event properties",
            )
        if f.kind == "long" and f.logical in TIMESTAMP_TYPES:
            timestamps.append((TIMESTAMP_NAMES.index(f.key) if f.key in TIMESTAMP_NAMES else len(TIMESTAMP_NAMES), f))
        if f.kind == "boolean":
            in_consent = bool(parents) and (
                parents[-1].key in CONSENT_RECORDS or normal(parents[-1].type_name or "") in CONSENT_RECORDS
            )
            low = f.name.lower()
            if in_consent:
                consents.append((f.name, f, None))
            elif low.endswith("_consent") or low.startswith("consent_"):
                consents.append((low.removesuffix("_consent").removeprefix("consent_") or low, f, None))
            elif f.key in CONSENT_NAMES:
                consents.append((f.name, f, f"guessed from name '{f.name}'"))
        if f.kind in ("bytes", "fixed") and f.logical != "decimal":
            p.withheld[f.path] = Unplaced(f.dotted, f.type_text, "binary data; left out of event properties")
        if f.kind in ("array", "map") and f.personal_items:
            p.withheld[f.path] = Unplaced(
                f.dotted,
                f.type_text,
                f"holds personal data ({', '.join(f.personal_items)}) that cannot be hashed inside "
                f"{'an array' if f.kind == 'array' else 'a map'}; left out of event properties",
            )
        elif f.kind == "array" and f.type_text.removeprefix("nullable ").startswith("array of record"):
            p.noted[f.path] = Unplaced(
                f.dotted, f.type_text, "an array of records: no section takes it; left in event properties as a list of objects"
            )

    for t in TARGETS:  # in TARGETS order: deterministic
        ranked = _rank_candidates(by_target.get(t, []))
        if not ranked:
            continue
        (guess, best), rest = ranked[0], ranked[1:]
        p.placed[(t.section, t.key)] = (best, f"guessed from name '{best.name}'" if guess else None)
        for _, other in rest:
            second = f"a second field that looks like {t.label} ({best.dotted} is used)"
            if t.personal:
                p.withheld[other.path] = Unplaced(
                    other.dotted, other.type_text, f"{second}; raw personal data, left out of event properties"
                )
            else:
                p.noted[other.path] = Unplaced(other.dotted, other.type_text, f"{second}; left in event properties")

    if timestamps:
        (pref, best), rest_ts = _rank_candidates(timestamps)[0], _rank_candidates(timestamps)[1:]
        p.placed[("event", "eventTimestamp")] = (
            best,
            None if pref < len(TIMESTAMP_NAMES) else f"guessed: a {best.logical} named '{best.name}'",
        )
        for _, other in rest_ts:
            p.noted[other.path] = Unplaced(
                other.dotted,
                other.type_text,
                f"a second timestamp ({best.dotted} is the event timestamp); left in event properties",
            )

    for key, f, why in sorted(consents, key=lambda c: c[1].order):
        if ("consent", key) in p.placed:
            p.noted[f.path] = Unplaced(f.dotted, f.type_text, f"a second consent flag '{key}'; left in event properties")
        else:
            p.placed[("consent", key)] = (f, why)

    identified = any(("user", k) in p.placed for k in ("userId", "anonymousId", "email_sha256", "phone_sha256"))
    nce = not identified and nce_if_anonymous
    if nce:  # a non-customer entity sends the event object only: nothing goes to user/consent/page/device
        for (section, key), (f, _) in list(p.placed.items()):
            if section != "event":
                del p.placed[(section, key)]
                if f.key in PERSONAL_NAMES:
                    p.withheld[f.path] = Unplaced(
                        f.dotted, f.type_text, "raw personal data in a non-customer entity; left out of event properties"
                    )
    for path in p.taken:  # placed after all: a note from a wrong-typed namesake no longer applies
        p.noted.pop(path, None)
    return p, identified


# ---------------------------------------------------------------------------- writing the route


def _scalar(value: str) -> str:
    """A string as a YAML scalar: plain when that reads back as the same string, else quoted."""
    if _PLAIN.fullmatch(value) and value.lower() not in _YAML_WORDS:
        return value
    return json.dumps(value, ensure_ascii=False)


def _flow(items: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in items.items()) + "}"


def _entry(key: str, value: str, comment: str | None, indent: int) -> str:
    line = f"{' ' * indent}{_scalar(key)}: {value}"
    return f"{line}  # {comment}" if comment else line


def _rest_layout(fields: tuple[SchemaField, ...], p: _Placement) -> tuple[list[str], list[tuple[str, SchemaField]]]:
    """The root fields the rest field excludes, and the nested fields written out one by one: a
    record holding anything placed or withheld is excluded whole (the rest field copies a root
    field whole), so its other fields are listed explicitly to stay in the properties."""
    taken = p.taken
    exclude: list[str] = []
    explicit: list[tuple[str, SchemaField]] = []

    def holds_taken(f: SchemaField) -> bool:
        return any(g.path in taken for g, _ in _walk(f.children))

    def explode(f: SchemaField) -> None:
        for c in f.children:
            if c.path in taken:
                continue
            if holds_taken(c):
                explode(c)
            else:
                explicit.append(("_".join(c.path), c))

    for f in fields:
        if f.path in taken:
            exclude.append(f.name)
        elif holds_taken(f):
            exclude.append(f.name)
            explode(f)
    return exclude, explicit


def scaffold_route(schema: dict[str, Any], options: ScaffoldOptions) -> Scaffold:
    """The route's YAML text for `schema` (a parsed Avro record schema) and what it could not place.
    Deterministic: the same schema and options give the same text."""
    fields = read_fields(schema)
    name = options.route or route_name(options.topic)
    p, identified = _place(fields, nce_if_anonymous=options.destination_type == "zeotap")
    nce = not identified and options.destination_type == "zeotap"
    exclude, explicit = _rest_layout(fields, p)

    root_names = {f.name for f in fields}
    event: list[str] = []
    event.append(_entry("eventName", _flow({"const": _scalar(name)}), None, 8))
    ind = 8
    for key in ("eventId", "eventTimestamp"):
        if ("event", key) in p.placed:
            f, guess = p.placed[("event", key)]
            spec = _flow({"path": _scalar(f.dotted), "as": "timestamp"}) if key == "eventTimestamp" else _scalar(f.dotted)
            event.append(_entry(key, spec, guess, ind))
    used_keys = {"eventName", "eventId", "eventTimestamp"} | root_names - set(exclude)
    for key, f in explicit:
        if key in used_keys:
            p.noted[f.path] = Unplaced(f.dotted, f.type_text, f"its property name '{key}' is taken; not sent")
            continue
        used_keys.add(key)
        event.append(_entry(key, _scalar(f.dotted), None, ind))
    event.append(f"{' ' * ind}{_scalar(REST_KEY)}:")
    event.append(f'{" " * (ind + 2)}from: ""')
    event.append(f"{' ' * (ind + 2)}exclude: [{', '.join(_scalar(e) for e in exclude)}]")

    sections: dict[str, list[str]] = {"event": event}
    for (section, key), (f, guess) in p.placed.items():
        if section in ("event", "country"):
            continue
        t = next((t for t in TARGETS if t.section == section and t.key == key), None)
        if section == "consent":
            spec = _flow({"path": _scalar(f.dotted), "consent": "true"})
        elif t is not None and t.identity is not None:
            spec = _flow({"path": _scalar(f.dotted), "identity": t.identity})
        else:
            spec = _scalar(f.dotted)
        sections.setdefault(section, []).append(_entry(key, spec, guess, ind))

    sources = {
        "field": p.placed.get(("country", "field")),
        "phone": p.placed.get(("user", "phone_sha256")),
        "ip": p.placed.get(("device", "ipAddress")),
        "locale": p.placed.get(("device", "locale")),
    }
    has_country = any(v is not None for v in sources.values())
    if not nce and has_country:
        sections["user"].append(_entry("country", _flow({"country": "true"}), None, ind))

    unplaced = tuple(sorted({**p.noted, **p.withheld}.values(), key=lambda u: u.path))
    out: list[str] = []
    base = 2  # under `routes:`, also when the entry is printed alone to be appended there
    head = [f"# scaffolded by `s2s-bridge scaffold` from {options.source or 'a schema'} (record {schema.get('name')})"]
    head.append("# review every line before use: recognised by field name and Avro type")
    if not identified:
        head.append("# !!! NO USER IDENTIFIER FOUND (no customer id, anonymous id, e-mail or phone field) !!!")
        if nce:
            head.append("# !!! scaffolded as a non-customer entity (entity: nce: the event object only, no user,")
            head.append("# !!! consent or country); if these are customer events, map an identifier and drop `entity`")
        else:
            head.append("# !!! the destination may refuse every event: map an identifier before use")
    if not nce and not has_country:
        head.append("# !!! NO COUNTRY SOURCE FOUND (country, phone, IP or locale field): every record is rejected")
        head.append("# !!! (missing_country) until country.default is set to an ISO code or a source is mapped")
    if ("event", "eventTimestamp") not in p.placed:
        head.append(
            "# no event timestamp: no long with logicalType timestamp-millis/-micros; map one if the destination needs it"
        )
    if ("event", "eventId") not in p.placed:
        head.append("# no event id field: the bridge uses <topic>-<partition>-<offset> as the event id")
    if not nce and not any(s == "consent" for s, _ in p.placed):
        head.append("# no consent flags: a destination whose consent settings require a purpose filters every record")
    head.extend(u.comment() for u in unplaced)

    if not options.under_routes:
        out.append("routes:")
    out.extend(" " * base + h for h in head)
    out.append(f"{' ' * base}{_scalar(name)}:")
    r = base + 2
    out.append(f"{' ' * r}topic: {_scalar(options.topic)}")
    out.append(f"{' ' * r}schema: {_scalar(options.schema_path)}")
    if options.framing != "auto":
        out.append(f"{' ' * r}framing: {_scalar(options.framing)}")
    out.append(f"{' ' * r}destination: {_scalar(options.destination)}")
    if nce:
        out.append(f"{' ' * r}entity: nce")
    else:
        out.append(f"{' ' * r}country:  # where the record's country comes from (first hit wins)")
        for key, found in sources.items():
            out.append(f"{' ' * (r + 2)}{key}: {_scalar(found[0].dotted) if found else 'null'}")
        out.append(f"{' ' * (r + 2)}default: null")
    out.append(f"{' ' * r}mapping:")
    for section in ("event", "user", "consent", "page", "device"):
        if section in sections:
            out.append(f"{' ' * (r + 2)}{section}:")
            out.extend(sections[section])
    return Scaffold(name, "\n".join(out) + "\n", unplaced)


# ---------------------------------------------------------------------------- the command (file and registry I/O)


@dataclass(frozen=True, slots=True)
class ScaffoldRequest:
    """`s2s-bridge scaffold`'s arguments."""

    topic: str
    schema: Path | None = None
    subject: str | None = None
    version: int | None = None
    registry_url: str | None = None
    config: Path | None = None
    schema_out: Path | None = None
    route: str | None = None
    destination: str | None = None
    framing: str = "auto"
    output: Path | None = None
    force: bool = False


@dataclass(frozen=True, slots=True)
class ScaffoldResult:
    scaffold: Scaffold
    schema_written: Path | None  # the registry's schema saved here


def run_scaffold(req: ScaffoldRequest) -> ScaffoldResult:
    """Read the schema (file or registry), scaffold the route, check it against the config when one is
    given, write the schema file and the output (``--output``). ConfigError: a usage error (exit 2);
    SchemaRegistryUnavailable: the registry did not answer (exit 1). Nothing is written on an error."""
    from streams.config import load_config

    if (req.schema is None) == (req.subject is None):
        raise ConfigError("give one of --schema FILE or --subject SUBJECT")
    if req.subject is None and (req.version is not None or req.registry_url or req.schema_out):
        raise ConfigError("--version, --registry-url and --schema-out go with --subject")
    if req.output is not None and req.output.exists() and not req.force:
        raise ConfigError(f"{req.output} exists: not overwritten (--force to replace it)")
    cfg = load_config(req.config) if req.config is not None else None
    destination, dest_type = _destination(req, cfg)
    name = req.route or route_name(req.topic)
    if cfg is not None and name in cfg.routes:
        raise ConfigError(f"route {name!r} already exists in {req.config}: give another --route")

    schema_written: Path | None = None
    saved = ""  # the registry's schema as written to its file
    if req.subject is not None:
        text = _registry_schema(req, cfg)
        schema_file = req.schema_out or Path("avro_schemas") / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', req.subject)}.avsc"
        schema = _parse_schema(text, f"subject {req.subject!r}")
        saved = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
        if schema_file.exists() and schema_file.read_text(encoding="utf-8") != saved and not req.force:
            raise ConfigError(f"{schema_file} exists with another schema: not overwritten (--schema-out elsewhere, or --force)")
        source = f"subject {req.subject}" + (f" version {req.version}" if req.version is not None else " (latest)")
    else:
        assert req.schema is not None
        schema_file = req.schema
        try:
            text = schema_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read schema file {schema_file}: {exc.strerror}") from None
        schema = _parse_schema(text, f"schema file {schema_file}")
        source = str(schema_file)

    # the route's schema path is read from the config's directory (or the output file's)
    base = req.config.parent if req.config is not None else req.output.parent if req.output is not None else None
    schema_path = os.path.relpath(schema_file.resolve(), base.resolve()) if base is not None else str(schema_file)
    options = ScaffoldOptions(
        topic=req.topic,
        schema_path=Path(schema_path).as_posix(),
        route=name,
        destination=destination,
        destination_type=dest_type,
        framing=req.framing,
        source=source,
        under_routes=cfg is not None,
    )
    result = scaffold_route(schema, options)
    if req.subject is not None:
        created = not schema_file.exists()
        schema_file.parent.mkdir(parents=True, exist_ok=True)
        schema_file.write_text(saved, encoding="utf-8")
        schema_written = schema_file
    if cfg is not None:
        assert req.config is not None
        try:
            _check_in_config(req.config, result)
        except ConfigError:
            if schema_written is not None and created:  # nothing written on an error
                schema_written.unlink()
            raise
    if req.output is not None:
        req.output.write_text(result.text, encoding="utf-8")
    return ScaffoldResult(result, schema_written)


def _destination(req: ScaffoldRequest, cfg: Any) -> tuple[str, str]:
    """The route's destination and its type: the config's (its only one by default), else --destination."""
    if cfg is None:
        name = req.destination or "zeotap"
        return name, name  # without a config the name is taken for the type (zeotap, audiohook, activation)
    if req.destination is not None:
        if req.destination not in cfg.destinations:
            raise ConfigError(
                f"--destination {req.destination!r} is not in {req.config} (known: {', '.join(sorted(cfg.destinations))})"
            )
        return req.destination, str(cfg.destinations[req.destination].type)
    if len(cfg.destinations) != 1:
        raise ConfigError(
            f"{req.config} has {len(cfg.destinations)} destinations ({', '.join(sorted(cfg.destinations))}): give --destination"
        )
    (name,) = cfg.destinations
    return name, str(cfg.destinations[name].type)


def _registry_schema(req: ScaffoldRequest, cfg: Any) -> str:
    from streams.codec import DecodeError
    from streams.codec.registry import UnknownSubject, fetch_subject_schema

    assert req.subject is not None
    sr = cfg.kafka.schema_registry if cfg is not None else None
    url = req.registry_url or (sr.url if sr is not None else None)
    if url is None:
        raise ConfigError("--subject needs --registry-url, or --config with kafka.schema_registry")
    auth = (
        (sr.username, sr.password.get_secret_value() if sr.password else None)
        if sr is not None and url == sr.url
        else (None, None)
    )
    try:
        _, text = fetch_subject_schema(url, req.subject, req.version, *auth)
    except (UnknownSubject, DecodeError) as exc:
        raise ConfigError(str(exc)) from None
    return text


def _parse_schema(text: str, what: str) -> dict[str, Any]:
    """The schema as a dict, checked by fastavro; ConfigError naming `what` when it is not one."""
    from streams.codec import parse

    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{what} is not JSON: {exc}") from None
    if not isinstance(schema, dict) or schema.get("type") not in ("record", "error"):
        raise ScaffoldError(f"{what} is not an Avro record ({json.dumps(schema)[:60]}...): a route reads records")
    try:
        parse(schema)
    except Exception as exc:  # fastavro raises several exception types for bad schemas
        raise ConfigError(f"{what} is not a valid Avro schema: {type(exc).__name__}: {exc}"[:400]) from None
    read_fields(schema)
    return schema


def _check_in_config(config: Path, result: Scaffold) -> None:
    """The block appended to the config must load: the config's routes plus this one, validated."""
    import yaml

    from streams.config import config_from_mapping

    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    block = yaml.safe_load(result.text)
    raw.setdefault("routes", {}).update(block)
    try:
        config_from_mapping(raw, config)
    except ConfigError as exc:
        raise ConfigError(f"the scaffolded route does not load in {config}: {exc}") from None
