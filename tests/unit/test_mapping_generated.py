"""The generated `Mapping.apply` and the op-by-op `Mapping.apply_ops` against `interpret`, a
reference written here from the mapping's documented rules (it reads the spec itself, not the
compiled ops), and the generated function being the one the pipeline calls.

Same sections, same keys in the same order, same values and types, same errors: for the routes of
the reference config on sample records and on records with odd shapes, and for specs that use
every field shape (defaults, required, keep_null, keys from the record, deep paths, ``*``).
The value conversions (`_coerce`, `_json_value`, `normalize_consent`) are shared with the
implementation: they have tests of their own (test_mapping.py, test_consent.py).
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from streams.config import load_config
from streams.dev.samples import SampleFactory
from streams.pipeline.consent import normalize_consent
from streams.pipeline.mapping import Mapping, MappingError, _coerce, _json_value
from streams.routes import build_pipelines
from tests.unit.typed_equal import same

REPO = Path(__file__).resolve().parents[2]
CONFIG = load_config(REPO / "examples" / "bridge.yaml", env={"ZEOTAP_WRITE_KEY": "t"})

ODD_VALUES: list[Any] = [
    None,
    "",
    " x ",
    0,
    1,
    -3,
    2.5,
    float("nan"),
    True,
    False,
    "yes",
    "Opt-In",
    "maybe",
    [1, None, "a", dt.date(2026, 1, 2)],
    {"a": 1, "b": dt.datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=dt.UTC)},
    dt.datetime(2026, 1, 2, 3, 4, 5, 678999, tzinfo=dt.UTC),
    dt.datetime(2026, 1, 2, 3, 4, 5),
    dt.datetime(999, 1, 2, tzinfo=dt.UTC),
    dt.datetime(2026, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    dt.date(2026, 3, 4),
    dt.time(1, 2, 3),
    Decimal("1.25"),
    b"\x01\x02",
    "2026-01-02T03:04:05Z",
    1767225600123,
]


_ABSENT = object()


def lookup(record: Any, path: str) -> Any:
    """The value at a dotted path, `_ABSENT` when a step is missing or not a record."""
    value = record
    for step in (p for p in path.split(".") if p):
        if not isinstance(value, dict) or step not in value:
            return _ABSENT
        value = value[step]
    return value


def interpret(spec: dict[str, Any], ts_fmt: Any, record: Any) -> dict[str, dict[str, Any]]:
    """The mapping of `record` by `spec`, field by field as the module docstring describes them."""
    sections = [s for s in ("event", "user", "consent", "page", "device") if s in spec]
    out: dict[str, dict[str, Any]] = {s: {} for s in sections}
    for section in sections:
        fields = dict(spec[section] or {})
        keep_nulls = bool(fields.pop("_keep_nulls", False))
        target = out[section]
        for key, fspec in fields.items():
            if key == "*":
                rest = fspec if isinstance(fspec, dict) else {}
                source = lookup(record, rest.get("from", ""))
                if isinstance(source, dict):
                    for k, v in source.items():
                        if k in rest.get("exclude", ()) or k in target:
                            continue
                        if v is not None or rest.get("keep_null"):
                            target[k] = _json_value(v, ts_fmt)
                continue
            if isinstance(fspec, str):
                fspec = {"path": fspec}
            elif not isinstance(fspec, dict):
                fspec = {"const": fspec}
            if fspec.get("country"):
                continue  # filled in by the enrich stage
            if "const" in fspec:
                target[key] = fspec["const"]
                continue
            value = lookup(record, fspec["path"])
            keep_null = fspec.get("keep_null", keep_nulls)
            if value is _ABSENT or value is None:
                if fspec.get("required"):
                    raise MappingError(f"required field {fspec['path']!r} is {'missing' if value is _ABSENT else 'null'}")
                value = fspec.get("default")
            if value is not None:
                if fspec.get("consent"):
                    value = normalize_consent(value)
                elif fspec.get("identity"):
                    value = str(value)
                elif fspec.get("as"):
                    value = _coerce(value, fspec["as"], ts_fmt)
                else:
                    value = _json_value(value, ts_fmt)
            if value is None and not keep_null:
                continue
            if key.startswith("{") and key.endswith("}"):
                name = lookup(record, key[1:-1])
                if name is _ABSENT or name is None or name == "":
                    raise MappingError(f"key field {key[1:-1]!r} for mapping.{section}.{key} is missing")
                key_here = str(name)
            else:
                key_here = key
            target[key_here] = value
    return out


def outcome(fn: Any, record: Any) -> Any:
    try:
        return fn(record)
    except MappingError as exc:
        return ("MappingError", str(exc))


def check(m: Mapping, spec: dict[str, Any], record: Any) -> None:
    """Both the generated and the op-by-op path map `record` as the reference does."""
    expected = outcome(lambda r: interpret(spec, m.ts_fmt, r), record)
    generated = outcome(lambda r: m.apply(r).sections, record)
    ops = outcome(lambda r: m.apply_ops(r).sections, record)
    assert same(generated, expected), (record, generated, expected)
    assert same(ops, expected), (record, ops, expected)


def mutate(record: Any, rng: random.Random) -> Any:
    """The record with some values (at any depth) replaced by odd ones or removed."""
    if isinstance(record, dict):
        out = {}
        for k, v in record.items():
            r = rng.random()
            if r < 0.1:
                continue
            out[k] = rng.choice(ODD_VALUES) if r < 0.25 else mutate(v, rng)
        return out
    return record


@pytest.mark.parametrize("route", sorted(CONFIG.routes))
def test_reference_routes_on_sample_and_odd_records(route: str) -> None:
    from streams.codec import Decoder, SchemaStore, encode_plain, load_schema_file

    r = CONFIG.routes[route]
    m = Mapping(r.mapping, "iso")
    dec = Decoder(load_schema_file(CONFIG.schema_path(r)), "plain", SchemaStore())
    factory = SampleFactory(21)
    rng = random.Random(route)
    for _ in range(300):
        record = dec.decode(encode_plain(dec.reader, factory.record(route)))
        check(m, r.mapping, record)
        check(m, r.mapping, mutate(record, rng))
    for odd in ({}, [], None, "x", {"customer": "x", "context": None, "consent": []}):
        check(m, r.mapping, odd)


SPEC: dict[str, Any] = {
    "event": {
        "c": {"const": [1, 2]},
        "bare": 7,
        "p": "a",
        "deep": "x.y.z",
        "deeper": {"path": "x.y.z.w", "keep_null": True},
        "d": {"path": "missing", "default": "dflt"},
        "req": {"path": "a", "required": True},
        "ts": {"path": "t", "as": "timestamp"},
        "s": {"path": "a", "as": "string"},
        "i": {"path": "n", "as": "int"},
        "f": {"path": "n", "as": "float"},
        "bo": {"path": "flag", "as": "bool"},
        "dt": {"path": "t", "as": "date"},
        "j": {"path": "list", "as": "join"},
        "{kind}": {"path": "a"},
        "*": {"from": "x", "exclude": ["y"], "keep_null": True},
    },
    "user": {
        "_keep_nulls": True,
        "id": {"path": "x.id", "identity": "id"},
        "email": {"path": "x.email", "identity": "email"},
        "nullable": "x.nothing",
        "country": {"country": True},
    },
    "consent": {
        "m": {"path": "x.m", "consent": True},
        "k": {"path": "x.k", "consent": True, "keep_null": True},
        "{kind}": {"path": "flag", "consent": True},
    },
    "device": {"*": {}},
}


@pytest.mark.parametrize("fmt", ["iso", "unix", "unix_ms"])
def test_every_field_shape(fmt: str) -> None:
    m = Mapping(SPEC, fmt)  # type: ignore[arg-type]
    rng = random.Random(fmt)
    for _ in range(2000):
        record = {
            "a": rng.choice(ODD_VALUES),
            "n": rng.choice(ODD_VALUES),
            "t": rng.choice(ODD_VALUES),
            "flag": rng.choice(ODD_VALUES),
            "list": rng.choice(ODD_VALUES),
            "kind": rng.choice(["marketing", "", None, 3]),
            "x": {
                "y": {"z": rng.choice(ODD_VALUES + [{"w": rng.choice(ODD_VALUES)}])},
                "id": rng.choice(ODD_VALUES),
                "email": rng.choice(ODD_VALUES),
                "m": rng.choice(ODD_VALUES),
                "k": rng.choice(ODD_VALUES),
                "other": rng.choice(ODD_VALUES),
            },
        }
        check(m, SPEC, mutate(record, rng))


def test_a_dict_subclass_record_takes_the_op_path() -> None:
    """A record that is not a plain dict goes through the ops (the generated code assumes exact
    dicts): same sections as the plain dict through the generated code, and as the reference."""

    class Rec(dict[str, Any]):
        pass

    m = Mapping(SPEC, "iso")
    rng = random.Random(8)
    for _ in range(200):
        record = Rec(a=rng.choice(ODD_VALUES), kind=rng.choice(["k", "", None]), x={"id": rng.choice(ODD_VALUES), "y": {"z": 1}})
        check(m, SPEC, record)
        assert same(outcome(lambda r: m.apply(r).sections, record), outcome(lambda r: m.apply(r).sections, dict(record)))


@pytest.mark.parametrize("route", sorted(CONFIG.routes))
def test_the_pipeline_maps_with_the_generated_function(route: str) -> None:
    """What the worker and the dry run call is the generated code, not the op-by-op fallback."""
    pipeline = build_pipelines(CONFIG, routes=[route])[route]
    apply = pipeline.mapping.apply
    assert apply.__code__.co_filename == "<generated mapping>"
    assert apply.__doc__ is not None and apply.__doc__.startswith("def apply(rec):")


def test_str_getters_match_compile_path() -> None:
    from streams.pipeline.mapping import _MISSING, compile_path, compile_str_getters

    paths: tuple[str | None, ...] = ("a", "x.email", None, "x.y.z", "x.m", "", "b.c")
    fn = compile_str_getters(paths)
    rng = random.Random(4)

    def reference(rec: Any) -> tuple[str | None, ...]:
        out = []
        for p in paths:
            v = compile_path(p)(rec) if p else None
            out.append(v if isinstance(v, str) and v and v is not _MISSING else None)
        return tuple(out)

    for _ in range(2000):
        record = mutate(
            {
                "a": rng.choice(ODD_VALUES),
                "b": rng.choice([{"c": rng.choice(ODD_VALUES)}, "s", None]),
                "x": rng.choice(
                    [{"email": rng.choice(ODD_VALUES), "m": rng.choice(ODD_VALUES), "y": {"z": rng.choice(ODD_VALUES)}}, [], "x"]
                ),
            },
            rng,
        )
        assert fn(record) == reference(record)
    for odd in (None, "x", [], {}):
        assert fn(odd) == reference(odd)
    assert compile_str_getters(("a",))({"a": "v"}) == ("v",)
