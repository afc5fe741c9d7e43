"""Declarative field mapping: decoded record -> ``event`` / ``user`` / ``consent`` / ``page`` / ``device``.

The language (what a spec may say, and its checks) is `streams.mapping_spec`; here a parsed spec is
compiled into one function per route and applied to records.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from streams.errors import RecordError
from streams.mapping_spec import ConstField, CountryField, FieldSpec, PathField, RestField, parse_mapping, path_parts, where
from streams.pipeline.consent import normalize_consent
from streams.pipeline.outcome import MAP, MAPPING_FAILED

TimestampFormat = Literal["iso", "unix", "unix_ms"]
_MISSING: Any = object()
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_MS = dt.timedelta(milliseconds=1)
# isinstance with these tuples, not with `str | int | ...` written inline: an inline union is a
# new object built on every call (~150 ns each time, on the hot path of every mapped field)
_JSON_SCALARS = (str, int, float, bool)
_NUMBERS = (int, float)
# exact types that _json_value returns unchanged (subclasses take the full path, same result)
_JSON_TYPES = frozenset({str, int, float, bool, type(None)})
# a compiled field: (record, sections being built) -> None
Op = Callable[[Any, dict[str, dict[str, Any]]], None]
# what an op does, for the generated `apply`: ("value", parts), ("rest", parts, exclude, keep_null) ...;
# None: the generated code calls the op
PlanEntry = tuple[Any, ...] | None


class MappingError(RecordError):
    """The record does not fit the mapping (a required field is missing, a value cannot be coerced)."""

    stage = MAP
    reason = MAPPING_FAILED


def compile_path(path: str) -> Callable[[Any], Any]:
    """A getter for a dotted path; a missing step yields the _MISSING sentinel."""
    parts = path_parts(path)
    if not parts:
        return lambda rec: rec
    if len(parts) == 1:
        (a,) = parts

        def get1(rec: Any) -> Any:
            return rec.get(a, _MISSING) if isinstance(rec, dict) else _MISSING

        return get1
    if len(parts) == 2:
        a, b = parts

        def get2(rec: Any) -> Any:
            v = rec.get(a) if isinstance(rec, dict) else None
            return v.get(b, _MISSING) if isinstance(v, dict) else _MISSING

        return get2

    def getn(rec: Any) -> Any:
        v = rec
        for p in parts:
            if not isinstance(v, dict):
                return _MISSING
            v = v.get(p, _MISSING)
            if v is _MISSING:
                return v
        return v

    return getn


def _emit_lookup(lines: list[str], prefixes: dict[str, str], parts: tuple[str, ...], var: str) -> bool:
    """Append generated statements setting `var` to the value at `parts` in the dict `rec` (None when
    missing), for paths of up to two steps; a first-level sub-record is looked up once per
    generated function (named in `prefixes`). False for longer paths: the caller handles those."""
    if not parts:
        lines.append(f"    {var} = rec")
    elif len(parts) == 1:
        lines.append(f"    {var} = rec.get({parts[0]!r})")
    elif len(parts) == 2:
        p = prefixes.get(parts[0])
        if p is None:
            p = prefixes[parts[0]] = f"p{len(prefixes)}"
            lines.append(f"    {p} = rec.get({parts[0]!r})")
            lines.append(f"    {p}_ok = type({p}) is dict or isinstance({p}, dict)")
        lines.append(f"    {var} = {p}.get({parts[1]!r}) if {p}_ok else None")
    else:
        return False
    return True


def compile_str_getters(paths: tuple[str | None, ...]) -> Callable[[Any], tuple[str | None, ...]]:
    """One function ``record -> tuple``: per path the value there when it is a non-empty string,
    else None (also for a None path). Same values as `compile_path` getters, generated as one
    function (a sub-record shared by several paths is looked up once)."""
    getters = tuple(compile_path(p) if p else None for p in paths)

    def slow(rec: Any) -> tuple[str | None, ...]:
        values = (g(rec) if g is not None else None for g in getters)
        return tuple(v if isinstance(v, str) and v else None for v in values)

    namespace: dict[str, Any] = {"_slow": slow, "_MISSING": _MISSING}
    lines = ["def get(rec):", "    if type(rec) is not dict:", "        return _slow(rec)"]
    prefixes: dict[str, str] = {}
    for i, path in enumerate(paths):
        parts = path_parts(path) if path else None
        if parts is None:
            lines.append(f"    v{i} = None")
        elif not _emit_lookup(lines, prefixes, parts, f"v{i}"):
            namespace[f"_g{i}"] = getters[i]
            lines.append(f"    v{i} = _g{i}(rec)")
    values = ", ".join(f"v{i} if isinstance(v{i}, str) and v{i} else None" for i in range(len(paths)))
    lines.append(f"    return ({values}{',' if len(paths) == 1 else ''})")
    exec(compile("\n".join(lines) + "\n", "<generated getters>", "exec"), namespace)  # noqa: S102 - our own generated code
    fn: Callable[[Any], tuple[str | None, ...]] = namespace["get"]
    return fn


def format_timestamp(value: Any, fmt: TimestampFormat) -> Any:
    """datetime, epoch millis (int) or ISO string -> the destination's timestamp format."""
    if fmt == "iso" and type(value) is dt.datetime:
        tz = value.tzinfo
        if (tz is None or tz is dt.UTC) and value.year >= 1000:
            # fast path (Avro timestamp-millis decodes to UTC datetimes): the same text as the
            # millis route below, whose milliseconds truncate too; strftime pads years < 1000 differently
            return value.isoformat(timespec="milliseconds")[:23] + "Z"
    if isinstance(value, dt.datetime):
        when = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        millis = (when - _EPOCH) // _ONE_MS
    elif isinstance(value, _NUMBERS) and not isinstance(value, bool):
        millis = int(value)
    elif isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            # record values never go into error texts (they reach logs and dead-letter headers)
            raise MappingError(f"not a timestamp: a string of {len(value)} characters") from None
        if when.tzinfo is None:
            raise MappingError("timestamp without time zone")
        millis = (when - _EPOCH) // _ONE_MS
    else:
        raise MappingError(f"not a timestamp: {type(value).__name__}")
    if fmt == "unix_ms":
        return millis
    if fmt == "unix":
        return millis // 1000
    return _iso_millis(millis)


def _iso_millis(millis: int) -> str:
    secs, ms = divmod(millis, 1000)
    return f"{(_EPOCH + dt.timedelta(seconds=secs)).strftime('%Y-%m-%dT%H:%M:%S')}.{ms:03d}Z"


def _json_value(value: Any, ts_fmt: TimestampFormat) -> Any:
    """Keep JSON types as they are; turn Avro logical types into JSON ones."""
    t = type(value)
    # exact lists and dicts first (arrays of records: the common non-scalar), same result as below
    if t is list:
        out = []
        for v in value:
            tv = type(v)
            if tv in _JSON_TYPES:
                out.append(v)
            elif tv is dict:  # a record in an array: converted here, without a call
                out.append({k: x if type(x) in _JSON_TYPES else _json_value(x, ts_fmt) for k, x in v.items()})
            else:
                out.append(_json_value(v, ts_fmt))
        return out
    if t is dict:
        return {k: v if type(v) in _JSON_TYPES else _json_value(v, ts_fmt) for k, v in value.items()}
    if value is None or isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, dt.datetime):
        return format_timestamp(value, ts_fmt)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.isoformat()
    if isinstance(value, list):
        return [v if type(v) in _JSON_TYPES else _json_value(v, ts_fmt) for v in value]
    if isinstance(value, dict):
        return {k: v if type(v) in _JSON_TYPES else _json_value(v, ts_fmt) for k, v in value.items()}
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _coerce(value: Any, as_: str, ts_fmt: TimestampFormat) -> Any:
    try:
        if as_ == "string":
            v = _json_value(value, ts_fmt)
            return v if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else str(v)
        if as_ == "int":
            if isinstance(value, bool):
                return int(value)
            if isinstance(value, float) and not value.is_integer():
                raise ValueError("has a fraction")
            return int(value)
        if as_ == "float":
            return float(value)
        if as_ == "bool":
            b = normalize_consent(value)
            if b is None:
                raise ValueError("not a boolean")
            return b
        if as_ == "timestamp":
            return format_timestamp(value, ts_fmt)
        if as_ == "date":
            if isinstance(value, dt.datetime):
                # the UTC date, like timestamps
                return (value.astimezone(dt.UTC) if value.tzinfo else value).date().isoformat()
            if isinstance(value, dt.date):
                return value.isoformat()
            if isinstance(value, bool):
                raise ValueError("a boolean is not a date")
            if isinstance(value, int):  # Avro date: days since epoch
                return (dt.date(1970, 1, 1) + dt.timedelta(days=value)).isoformat()
            return dt.date.fromisoformat(str(value)).isoformat()
        if as_ == "join":
            if not isinstance(value, list):
                return str(value)
            # elements as `as: string` makes them (true, not True); nulls are left out, not "None"
            return ",".join(_coerce(v, "string", ts_fmt) for v in value if v is not None)
    except MappingError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        why = str(exc) if isinstance(exc, OverflowError) or "fraction" in str(exc) else type(exc).__name__
        raise MappingError(f"cannot coerce {type(value).__name__} to {as_} ({why})") from None
    raise MappingError(f"unknown coercion {as_!r}")


@dataclass(frozen=True, slots=True)
class IdentityTarget:
    section: str
    key: str
    kind: str  # email | phone | name


@dataclass(slots=True)
class Mapped:
    """A mapped record: the five sections, identifiers still raw (the enrich stage hashes them)."""

    sections: dict[str, dict[str, Any]]


class Mapping:
    """A compiled mapping: build once per route, apply per record."""

    def __init__(self, spec: dict[str, dict[str, Any]], timestamp_format: TimestampFormat = "iso") -> None:
        parsed = parse_mapping(spec)  # MappingSpecError when the spec is wrong
        self.ts_fmt: TimestampFormat = timestamp_format
        self.identity_targets: list[IdentityTarget] = []
        self.id_targets: list[tuple[str, str]] = []  # identity: id (sent as is)
        self.country_targets: list[tuple[str, str]] = []
        self._ops: list[tuple[str, Op]] = []
        self.sections = list(parsed.sections)
        # what each op does, for the generated `apply` (None: call the op itself)
        plan: list[tuple[str, str, PlanEntry, Op]] = []
        for field in parsed.fields:
            op, entry = self._compile(field)
            self._ops.append((field.section, op))
            plan.append((field.section, field.key, entry, op))
        self._funcs = tuple(op for _section, op in self._ops)
        # (section, key, what the op does) per field, in order: what the native core compiles
        self.plan: list[tuple[str, str, PlanEntry]] = [(s, k, e) for s, k, e, _op in plan]
        self.apply = self._generate(plan)  # type: ignore[method-assign,assignment]

    # -- compile --------------------------------------------------------------

    def _compile(self, field: FieldSpec) -> tuple[Op, PlanEntry]:
        """The op of one field, and what it does for `_generate` (None: the generated code calls it)."""
        if isinstance(field, RestField):
            return self._compile_rest(field)
        section, key = field.section, field.key
        if isinstance(field, CountryField):
            self.country_targets.append((section, key))
            return (lambda rec, out: None), ("country",)
        if isinstance(field, ConstField):
            const = field.value

            def put_const(rec: Any, out: dict[str, dict[str, Any]]) -> None:
                out[section][key] = const

            return put_const, ("const", const)
        return self._compile_path(field)

    def _compile_path(self, field: PathField) -> tuple[Op, PlanEntry]:
        section, key, path = field.section, field.key, field.path
        ts_fmt = self.ts_fmt
        getter = compile_path(str(path))
        default, required, keep_null = field.default, field.required, field.keep_null
        as_, identity, consent = field.coerce, field.identity, field.consent
        key_path = field.key_path
        key_getter = compile_path(key_path) if key_path is not None else None
        if identity in ("email", "phone", "name") and key_getter is None:
            self.identity_targets.append(IdentityTarget(section, key, identity))
        elif identity == "id" and key_getter is None:
            self.id_targets.append((section, key))

        if key_getter is None and not required and default is None and not keep_null:
            # the common shapes, specialised: same results as the general `put` below
            parts = field.parts
            if consent:

                def put_consent(rec: Any, out: dict[str, dict[str, Any]]) -> None:
                    v = getter(rec)
                    if v is _MISSING or v is None:
                        return
                    v = normalize_consent(v)
                    if v is not None:
                        out[section][key] = v

                return put_consent, ("consent", parts)
            if identity is not None:

                def put_identity(rec: Any, out: dict[str, dict[str, Any]]) -> None:
                    v = getter(rec)
                    if v is _MISSING or v is None:
                        return
                    out[section][key] = v if isinstance(v, str) else str(v)

                return put_identity, ("identity", parts)
            if as_ is not None:

                def put_coerced(rec: Any, out: dict[str, dict[str, Any]]) -> None:
                    v = getter(rec)
                    if v is _MISSING or v is None:
                        return
                    out[section][key] = _coerce(v, as_, ts_fmt)

                return put_coerced, ("coerced", parts, as_)

            def put_value(rec: Any, out: dict[str, dict[str, Any]]) -> None:
                v = getter(rec)
                if v is _MISSING or v is None:
                    return
                out[section][key] = v if isinstance(v, _JSON_SCALARS) else _json_value(v, ts_fmt)

            return put_value, ("value", parts)

        def put(rec: Any, out: dict[str, dict[str, Any]]) -> None:
            v = getter(rec)
            if v is _MISSING or v is None:
                if required:
                    raise MappingError(f"required field {path!r} is {'missing' if v is _MISSING else 'null'}")
                v = default
                if v is None:
                    if keep_null:
                        out[section][_key(rec)] = None
                    return
            if consent:
                v = normalize_consent(v)
                if v is None and not keep_null:
                    return
            elif identity is not None:
                v = v if isinstance(v, str) else str(v)
            elif as_ is not None:
                v = _coerce(v, as_, ts_fmt)
            elif not isinstance(v, _JSON_SCALARS):
                v = _json_value(v, ts_fmt)
            out[section][_key(rec)] = v

        def _key(rec: Any) -> str:
            if key_getter is None:
                return key
            k = key_getter(rec)
            if k is _MISSING or k is None or k == "":
                raise MappingError(f"key field {key_path!r} for {where(section, key)} is missing")
            return str(k)

        return put, None

    def _compile_rest(self, field: RestField) -> tuple[Op, PlanEntry]:
        section, exclude, keep_null = field.section, field.exclude, field.keep_null
        getter = compile_path(field.source)
        ts_fmt = self.ts_fmt

        def put_rest(rec: Any, out: dict[str, dict[str, Any]]) -> None:
            src = getter(rec)
            if not isinstance(src, dict):
                return
            target = out[section]
            for k, v in src.items():
                if k in exclude or k in target:
                    continue
                if v is None:
                    if keep_null:
                        target[k] = None
                    continue
                target[k] = v if isinstance(v, _JSON_SCALARS) else _json_value(v, ts_fmt)

        return put_rest, ("rest", field.parts, exclude, keep_null)

    # -- apply ----------------------------------------------------------------

    def apply(self, record: dict[str, Any]) -> Mapped:
        """Map one record (replaced per instance by the generated function of `_generate`)."""
        return self.apply_ops(record)

    def apply_ops(self, record: dict[str, Any]) -> Mapped:
        """Map one record by running the compiled ops one by one (the reference for `_generate`)."""
        out: dict[str, dict[str, Any]] = {s: {} for s in self.sections}
        for op in self._funcs:
            op(record, out)
        return Mapped(out)

    def _generate(self, plan: list[tuple[str, str, PlanEntry, Op]]) -> Callable[[dict[str, Any]], Mapped]:
        """One Python function for the whole mapping, generated once per route.

        It does what `apply_ops` does, op by op in the same order (so the same keys in the same
        order), without a call per field: path lookups inlined (a first-level sub-record is
        looked up once and shared by the fields under it), the common field shapes written out;
        the rare shapes (defaults, required, keep_null, keys from the record) call their op.
        """
        consts: dict[str, Any] = {
            "_MISSING": _MISSING,
            "_Mapped": Mapped,
            "_JSON_SCALARS": _JSON_SCALARS,
            "_json_value": _json_value,
            "_coerce": _coerce,
            "_normalize_consent": normalize_consent,
            "_datetime": dt.datetime,
            "_UTC": dt.UTC,
            "_apply_ops": self.apply_ops,
        }
        ts = repr(self.ts_fmt)
        sec = {s: f"s{i}" for i, s in enumerate(self.sections)}
        lines = ["def apply(rec):"]
        lines.append("    if type(rec) is not dict:")  # not a plain dict: the op-by-op path
        lines.append("        return _apply_ops(rec)")
        lines += [f"    {sec[s]} = {{}}" for s in self.sections]
        lines.append("    out = {" + ", ".join(f"{s!r}: {sec[s]}" for s in self.sections) + "}")
        prefixes: dict[str, str] = {}

        def const(value: Any) -> str:
            name = f"_k{len(consts)}"
            consts[name] = value
            return name

        def fetch(parts: tuple[str, ...]) -> str:
            """Statements that set `v` to what compile_path(parts) returns, None when missing
            (the field shapes inlined here treat a missing value and null alike); rec is a dict."""
            if not _emit_lookup(lines, prefixes, parts, "v"):
                lines.append(f"    v = {const(compile_path('.'.join(parts)))}(rec)")
                lines.append("    if v is _MISSING:")
                lines.append("        v = None")
            return "v"

        for section, key, entry, op in plan:
            target = f"{sec[section]}[{key!r}]"
            kind = entry[0] if entry is not None else "call"
            if kind == "country":
                continue
            if kind == "const":
                assert entry is not None
                lines.append(f"    {target} = {const(entry[1])}")
            elif kind in ("value", "identity", "consent", "coerced"):
                assert entry is not None
                fetch(entry[1])
                if kind == "consent":
                    lines.append("    if v is True or v is False:")
                    lines.append(f"        {target} = v")
                    lines.append("    elif v is not None:")
                    lines.append("        v = _normalize_consent(v)")
                    lines.append("        if v is not None:")
                    lines.append(f"            {target} = v")
                    continue
                lines.append("    if v is not None:")
                if kind == "value":
                    lines.append(f"        {target} = v if isinstance(v, _JSON_SCALARS) else _json_value(v, {ts})")
                elif kind == "identity":
                    lines.append(f"        {target} = v if isinstance(v, str) else str(v)")
                elif entry[2] == "timestamp" and self.ts_fmt == "iso":
                    # format_timestamp's fast path (UTC/naive datetime), else the full coercion
                    lines.append("        tz = v.tzinfo if type(v) is _datetime else False")
                    lines.append("        if (tz is None or tz is _UTC) and v.year >= 1000:")
                    lines.append(f"            {target} = v.isoformat(timespec='milliseconds')[:23] + 'Z'")
                    lines.append("        else:")
                    lines.append(f"            {target} = _coerce(v, 'timestamp', {ts})")
                else:
                    lines.append(f"        {target} = _coerce(v, {entry[2]!r}, {ts})")
            elif kind == "rest":
                assert entry is not None
                _kind, parts, exclude, keep_null = entry
                fetch(parts)
                t = sec[section]
                lines.append("    if isinstance(v, dict):")
                lines.append("        for k, x in v.items():")
                lines.append(f"            if k in {const(exclude)} or k in {t}:")
                lines.append("                continue")
                lines.append("            if x is None:")
                if keep_null:
                    lines.append(f"                {t}[k] = None")
                lines.append("                continue")
                lines.append(f"            {t}[k] = x if isinstance(x, _JSON_SCALARS) else _json_value(x, {ts})")
            else:
                lines.append(f"    {const(op)}(rec, out)")
        lines.append("    return _Mapped(out)")
        source = "\n".join(lines) + "\n"
        exec(compile(source, "<generated mapping>", "exec"), consts)  # noqa: S102 - our own generated code
        fn: Callable[[dict[str, Any]], Mapped] = consts["apply"]
        fn.__doc__ = source
        return fn
