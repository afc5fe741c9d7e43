"""The generated `Mapping.apply` against the op-by-op reference `Mapping.apply_ops`.

Same sections, same keys in the same order, same values and types, same errors: for the routes of
the reference config on sample records and on records with odd shapes, and for specs that use
every field shape (defaults, required, keep_null, keys from the record, deep paths, ``*``).
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
from streams.pipeline.mapping import Mapping, MappingError
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


def outcome(fn: Any, record: Any) -> Any:
    try:
        return fn(record).sections
    except MappingError as exc:
        return ("MappingError", str(exc))


def check(m: Mapping, record: Any) -> None:
    got, expected = outcome(m.apply, record), outcome(m.apply_ops, record)
    assert same(got, expected), (record, got, expected)


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
        check(m, record)
        check(m, mutate(record, rng))
    for odd in ({}, [], None, "x", {"customer": "x", "context": None, "consent": []}):
        check(m, odd)


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
        check(m, mutate(record, rng))


def test_a_dict_subclass_record_takes_the_op_path() -> None:
    class Rec(dict[str, Any]):
        pass

    m = Mapping(SPEC, "iso")
    check(m, Rec(a="v", kind="k", x={"id": 1}))


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
