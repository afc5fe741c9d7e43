"""The declarative mapping language: its grammar (streams.mapping_spec) and the compiled mapping (streams.pipeline.mapping)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from streams.mapping_spec import ConstField, CountryField, MappingSpecError, PathField, RestField, parse_mapping
from streams.pipeline.mapping import (
    IdentityTarget,
    Mapping,
    MappingError,
    compile_path,
    format_timestamp,
)

RECORD: dict[str, Any] = {
    "event_id": "e-1",
    "occurred_at": 1704067200000,
    "customer": {
        "customer_id": "c-1",
        "email": "a@example.com",
        "address": {"city": "Berlin", "zip": None, "geo": {"lat": 52.5}},
        "tier": None,
    },
    "count": 3,
    "ratio": 0.25,
    "flag": False,
    "empty": "",
    "zero": 0,
    "tags": ["a", "b"],
    "numbers": [1, 2.5, True],
    "items": [{"sku": "s1", "qty": 2, "name": None}],
    "nothing": None,
    "kind": "marketing",
    "status": "granted",
    "day": dt.date(2024, 2, 29),
    "when": dt.datetime(2024, 1, 1, 1, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
    "naive": dt.datetime(2024, 1, 1, 12, 30, 0, 123000),
    "price": Decimal("9.99"),
    "raw": b"\x01\xff",
}


def _map(spec: dict[str, Any], record: dict[str, Any] | None = None, fmt: str = "iso") -> dict[str, Any]:
    """Map a single `event` section."""
    return Mapping({"event": spec}, fmt).apply(RECORD if record is None else record).sections["event"]  # type: ignore[arg-type]


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    "path, expected",
    [
        ("event_id", "e-1"),
        ("customer.customer_id", "c-1"),
        ("customer.address.city", "Berlin"),
        ("customer.address.geo.lat", 52.5),
        ("customer.address.geo", {"lat": 52.5}),
        ("count", 3),
        ("flag", False),
        ("zero", 0),
        ("empty", ""),
        ("tags", ["a", "b"]),
    ],
)
def test_path_getter_finds_values(path: str, expected: Any) -> None:
    assert _map({"v": path}) == {"v": expected}
    assert compile_path(path)(RECORD) == expected


@pytest.mark.parametrize(
    "path",
    [
        "missing",
        "customer.missing",
        "customer.address.missing",
        "customer.address.geo.lat.deeper",  # through a number
        "event_id.x",  # through a string
        "customer.tier.level",  # through a null
        "nothing.x.y",
        "nothing",  # present but null
        "customer.address.zip",  # nested null
        "tags.0",  # paths do not index arrays
    ],
)
def test_missing_and_null_paths_are_dropped(path: str) -> None:
    assert _map({"v": path}) == {}


def test_empty_path_is_the_whole_record() -> None:
    assert compile_path("")(RECORD) is RECORD


@pytest.mark.parametrize("record", [{}, {"customer": None}, {"customer": "text"}, {"customer": [1]}])
def test_paths_tolerate_non_dict_steps(record: dict[str, Any]) -> None:
    assert _map({"a": "customer.email", "b": "customer.address.city"}, record) == {}


# --------------------------------------------------------------------------- const / default / required


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"const": "purchase"}, "purchase"),
        ({"const": 0}, 0),
        ({"const": False}, False),
        ({"const": [1, 2]}, [1, 2]),
        ({"const": {"a": 1}}, {"a": 1}),
        (5, 5),  # a bare number is a constant
        (True, True),
        ([1, "x"], [1, "x"]),
    ],
)
def test_const(spec: Any, expected: Any) -> None:
    assert _map({"v": spec}, {}) == {"v": expected}


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"path": "missing", "default": "d"}, {"v": "d"}),
        ({"path": "nothing", "default": "d"}, {"v": "d"}),
        ({"path": "count", "default": 99}, {"v": 3}),
        ({"path": "empty", "default": "d"}, {"v": ""}),  # empty string is a value
        ({"path": "flag", "default": True}, {"v": False}),
        ({"path": "missing", "default": 0}, {"v": 0}),
        ({"path": "missing", "default": "2024-01-01T00:00:00Z", "as": "timestamp"}, {"v": "2024-01-01T00:00:00.000Z"}),
        ({"path": "missing", "default": "7", "as": "int"}, {"v": 7}),
    ],
)
def test_default(spec: dict[str, Any], expected: dict[str, Any]) -> None:
    assert _map({"v": spec}) == expected


@pytest.mark.parametrize(
    "path, word",
    [("missing", "missing"), ("customer.missing", "missing"), ("nothing", "null"), ("customer.tier", "null")],
)
def test_required_missing_or_null_is_mapping_error(path: str, word: str) -> None:
    with pytest.raises(MappingError, match=rf"required field '{path}' is {word}"):
        _map({"v": {"path": path, "required": True}})


def test_required_ignores_default() -> None:
    with pytest.raises(MappingError):
        _map({"v": {"path": "missing", "required": True, "default": "d"}})


@pytest.mark.parametrize("path, expected", [("count", 3), ("flag", False), ("empty", ""), ("zero", 0)])
def test_required_present_values_pass(path: str, expected: Any) -> None:
    assert _map({"v": {"path": path, "required": True}}) == {"v": expected}


# --------------------------------------------------------------------------- `as` coercions


@pytest.mark.parametrize(
    "value, as_, expected",
    [
        # string
        ("x", "string", "x"),
        (12, "string", "12"),
        (1.5, "string", "1.5"),
        (True, "string", "true"),
        (False, "string", "false"),
        (dt.date(2024, 3, 1), "string", "2024-03-01"),
        (dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "string", "2024-01-01T00:00:00.000Z"),
        (Decimal("9.99"), "string", "9.99"),
        # int
        ("42", "int", 42),
        (" 42 ", "int", 42),
        (42.0, "int", 42),
        (True, "int", 1),
        (-7, "int", -7),
        # float
        ("1.5", "float", 1.5),
        (2, "float", 2.0),
        (Decimal("9.99"), "float", 9.99),
        # bool
        (True, "bool", True),
        ("yes", "bool", True),
        ("No", "bool", False),
        ("granted", "bool", True),
        (1, "bool", True),
        (0, "bool", False),
        ("opt-out", "bool", False),
        # timestamp
        (1704067200000, "timestamp", "2024-01-01T00:00:00.000Z"),
        ("2024-01-01T01:00:00+01:00", "timestamp", "2024-01-01T00:00:00.000Z"),
        ("2024-01-01T00:00:00.5Z", "timestamp", "2024-01-01T00:00:00.500Z"),
        (dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "timestamp", "2024-01-01T00:00:00.000Z"),
        # date
        (dt.date(2024, 2, 29), "date", "2024-02-29"),
        (dt.datetime(2024, 2, 29, 23, 0, tzinfo=dt.UTC), "date", "2024-02-29"),
        (19782, "date", "2024-02-29"),  # Avro date: days since epoch
        (0, "date", "1970-01-01"),
        ("2024-02-29", "date", "2024-02-29"),
        # join
        (["101", "102", "103"], "join", "101,102,103"),
        ([1, 2.5, True], "join", "1,2.5,true"),
        (["a", None, "b"], "join", "a,b"),
        ([], "join", ""),
        ("single", "join", "single"),
        ([dt.date(2024, 1, 1)], "join", "2024-01-01"),
    ],
)
def test_as_coercions(value: Any, as_: str, expected: Any) -> None:
    got = _map({"v": {"path": "x", "as": as_}}, {"x": value})
    assert got == {"v": expected}
    assert type(got["v"]) is type(expected)


@pytest.mark.parametrize(
    "value, as_",
    [
        ("abc", "int"),
        ("1.5", "int"),
        (1.5, "int"),
        ([1], "int"),
        ({"a": 1}, "int"),
        (float("inf"), "int"),
        ("abc", "float"),
        ([1], "float"),
        ("maybe", "bool"),
        (2, "bool"),
        ([True], "bool"),
        ("yesterday", "timestamp"),
        ("2024-01-01T00:00:00", "timestamp"),  # no time zone
        (True, "timestamp"),
        ([1], "timestamp"),
        (10**20, "timestamp"),
        ("2024-13-01", "date"),
        ("01.02.2024", "date"),
        (True, "date"),
        (1.5, "date"),
    ],
)
def test_as_coercion_failures_are_mapping_errors(value: Any, as_: str) -> None:
    with pytest.raises(MappingError):
        _map({"v": {"path": "x", "as": as_}}, {"x": value})


# --------------------------------------------------------------------------- type preservation


@pytest.mark.parametrize(
    "path, expected",
    [
        ("count", 3),
        ("ratio", 0.25),
        ("flag", False),
        ("tags", ["a", "b"]),
        ("numbers", [1, 2.5, True]),
        ("items", [{"sku": "s1", "qty": 2, "name": None}]),  # nulls inside nested values stay
        ("customer.address", {"city": "Berlin", "zip": None, "geo": {"lat": 52.5}}),
        ("day", "2024-02-29"),
        ("when", "2024-01-01T00:00:00.000Z"),
        ("naive", "2024-01-01T12:30:00.123Z"),  # naive datetimes are UTC
        ("price", 9.99),
        ("raw", "01ff"),
    ],
)
def test_values_keep_their_json_type(path: str, expected: Any) -> None:
    got = _map({"v": path})["v"]
    assert got == expected
    assert type(got) is type(expected)
    if isinstance(expected, list) and expected and isinstance(expected[-1], bool):
        assert got[-1] is True  # not 1


def test_nested_logical_types_are_converted() -> None:
    record = {"x": {"d": dt.date(2024, 1, 2), "ts": [dt.datetime(2024, 1, 1, tzinfo=dt.UTC)]}}
    assert _map({"v": "x"}, record) == {"v": {"d": "2024-01-02", "ts": ["2024-01-01T00:00:00.000Z"]}}


# --------------------------------------------------------------------------- nulls


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"a": "nothing"}, {}),
        ({"a": "missing"}, {}),
        ({"a": {"path": "nothing", "keep_null": True}}, {"a": None}),
        ({"a": {"path": "missing", "keep_null": True}}, {"a": None}),
        ({"_keep_nulls": True, "a": "nothing", "b": "count"}, {"a": None, "b": 3}),
        ({"_keep_nulls": True, "a": {"path": "nothing", "keep_null": False}}, {}),
        ({"_keep_nulls": False, "a": {"path": "nothing", "keep_null": True}}, {"a": None}),
        ({"a": {"path": "nothing", "default": "d", "keep_null": True}}, {"a": "d"}),
        ({"_keep_nulls": True, "*": {"from": "customer.address"}}, {"city": "Berlin", "geo": {"lat": 52.5}}),
        ({"*": {"from": "customer.address", "keep_null": True}}, {"city": "Berlin", "zip": None, "geo": {"lat": 52.5}}),
    ],
)
def test_nulls_dropped_unless_kept(spec: dict[str, Any], expected: dict[str, Any]) -> None:
    assert _map(spec) == expected


# --------------------------------------------------------------------------- "*" rest


FLAT = {"a": 1, "b": "x", "c": None}


@pytest.mark.parametrize(
    "spec, record, expected",
    [
        ({"*": {"from": "customer.address"}}, RECORD, {"city": "Berlin", "geo": {"lat": 52.5}}),
        ({"*": {"from": "customer", "exclude": ["email", "address"]}}, RECORD, {"customer_id": "c-1"}),
        ({"*": {"from": "items"}}, RECORD, {}),  # not a record: nothing
        ({"*": {"from": "missing"}}, RECORD, {}),
        ({"city": {"const": "explicit"}, "*": {"from": "customer.address"}}, RECORD, {"city": "explicit", "geo": {"lat": 52.5}}),
        ({"*": {"from": "customer.address"}, "city": {"const": "explicit"}}, RECORD, {"city": "explicit", "geo": {"lat": 52.5}}),
        ({"*": None}, FLAT, {"a": 1, "b": "x"}),
        ({"*": True}, FLAT, {"a": 1, "b": "x"}),
        ({"*": {}}, FLAT, {"a": 1, "b": "x"}),
        ({"*": {"exclude": ["a"]}}, FLAT, {"b": "x"}),
    ],
)
def test_rest(spec: dict[str, Any], record: dict[str, Any], expected: dict[str, Any]) -> None:
    assert _map(spec, record) == expected


def test_rest_from_root_with_exclude_keeps_types() -> None:
    record = {
        "event_id": "e",
        "occurred_at": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        "customer": {"email": "a@b.c"},
        "order_value": 12.5,
        "items": [{"q": 1}],
        "start": dt.date(2024, 5, 1),
        "trial": True,
        "reason": None,
    }
    got = _map({"*": {"from": "", "exclude": ["event_id", "customer"]}}, record)
    assert got == {
        "occurred_at": "2024-01-01T00:00:00.000Z",
        "order_value": 12.5,
        "items": [{"q": 1}],
        "start": "2024-05-01",
        "trial": True,
    }


# --------------------------------------------------------------------------- dynamic keys


@pytest.mark.parametrize(
    "record, expected",
    [
        ({"kind": "marketing", "status": "granted"}, {"marketing": True}),
        ({"kind": "email", "status": "no"}, {"email": False}),
        ({"kind": "sms", "status": "Opt-In"}, {"sms": True}),
        ({"kind": "sms", "status": "unclear"}, {}),  # unknown consent value: dropped
        ({"kind": 7, "status": "yes"}, {"7": True}),
    ],
)
def test_dynamic_key(record: dict[str, Any], expected: dict[str, Any]) -> None:
    assert _map({"{kind}": {"path": "status", "consent": True}}, record) == expected


@pytest.mark.parametrize("record", [{"status": "yes"}, {"kind": None, "status": "yes"}, {"kind": "", "status": "yes"}])
def test_dynamic_key_missing_is_mapping_error(record: dict[str, Any]) -> None:
    with pytest.raises(MappingError, match="key field 'kind'"):
        _map({"{kind}": {"path": "status", "consent": True}}, record)


def test_dynamic_key_with_missing_value_is_not_an_error() -> None:
    assert _map({"{kind}": "status"}, {"status": None}) == {}


def test_dynamic_key_from_nested_path() -> None:
    record = {"meta": {"purpose": "analytics"}, "v": 1}
    assert _map({"{meta.purpose}": "v"}, record) == {"analytics": 1}


# --------------------------------------------------------------------------- consent values


@pytest.mark.parametrize(
    "value, expected",
    [(True, {"v": True}), ("yes", {"v": True}), ("DENIED", {"v": False}), (0, {"v": False}), ("maybe", {}), (None, {})],
)
def test_consent_values_are_normalised(value: Any, expected: dict[str, Any]) -> None:
    assert _map({"v": {"path": "x", "consent": True}}, {"x": value}) == expected


# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize(
    "value, fmt, expected",
    [
        (1704067200000, "iso", "2024-01-01T00:00:00.000Z"),
        (1704067200000, "unix", 1704067200),
        (1704067200000, "unix_ms", 1704067200000),
        (1704067200123, "iso", "2024-01-01T00:00:00.123Z"),
        (1704067200999, "unix", 1704067200),
        (0, "iso", "1970-01-01T00:00:00.000Z"),
        (-1, "iso", "1969-12-31T23:59:59.999Z"),
        (1704067200000.7, "unix_ms", 1704067200000),
        (dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "iso", "2024-01-01T00:00:00.000Z"),
        (dt.datetime(2024, 1, 1, 2, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))), "iso", "2024-01-01T00:00:00.000Z"),
        (dt.datetime(2023, 12, 31, 19, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5))), "iso", "2024-01-01T00:00:00.000Z"),
        (dt.datetime(2024, 1, 1, 5, 30, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))), "unix", 1704067200),
        (dt.datetime(2024, 1, 1, 0, 0, 0, 456789, tzinfo=dt.UTC), "iso", "2024-01-01T00:00:00.456Z"),
        (dt.datetime(2024, 1, 1, 0, 0, 0, 456789, tzinfo=dt.UTC), "unix_ms", 1704067200456),
        (dt.datetime(2024, 1, 1), "iso", "2024-01-01T00:00:00.000Z"),  # naive: UTC
        ("2024-01-01T00:00:00Z", "iso", "2024-01-01T00:00:00.000Z"),
        ("2024-01-01T09:00:00+09:00", "unix_ms", 1704067200000),
        ("2023-12-31T23:00:00-01:00", "iso", "2024-01-01T00:00:00.000Z"),
    ],
)
def test_format_timestamp(value: Any, fmt: str, expected: Any) -> None:
    got = format_timestamp(value, fmt)  # type: ignore[arg-type]
    assert got == expected
    assert type(got) is type(expected)
    if fmt == "iso":
        assert got.endswith("Z") and len(got) == 24


@pytest.mark.parametrize("fmt, expected", [("iso", "2024-01-01T00:00:00.000Z"), ("unix", 1704067200), ("unix_ms", 1704067200000)])
def test_mapping_uses_the_destination_timestamp_format(fmt: str, expected: Any) -> None:
    spec = {"a": {"path": "occurred_at", "as": "timestamp"}, "b": "when"}
    assert _map(spec, fmt=fmt) == {"a": expected, "b": expected}


@pytest.mark.parametrize("value", ["2024-01-01 00:00:00", "soon", "", None, True, [1], {"a": 1}])
def test_format_timestamp_rejects_non_timestamps(value: Any) -> None:
    with pytest.raises(MappingError):
        format_timestamp(value, "iso")


# --------------------------------------------------------------------------- identity / country targets


def test_identity_and_country_targets_are_collected() -> None:
    m = Mapping(
        {
            "user": {
                "userId": {"path": "customer.customer_id", "identity": "id"},
                "email_sha256": {"path": "customer.email", "identity": "email"},
                "phone_sha256": {"path": "customer.phone", "identity": "phone"},
                "first": {"path": "customer.first", "identity": "name"},
                "country": {"country": True},
            },
            "event": {"c2": {"country": True}},
        }
    )
    assert m.id_targets == [("user", "userId")]
    assert m.identity_targets == [
        IdentityTarget("user", "email_sha256", "email"),
        IdentityTarget("user", "phone_sha256", "phone"),
        IdentityTarget("user", "first", "name"),
    ]
    assert m.country_targets == [("event", "c2"), ("user", "country")]
    out = m.apply({"customer": {"customer_id": 17, "email": " A@B.C ", "first": "Ann"}}).sections
    # identifiers stay raw (the enrich stage normalises them), as strings; country is filled later
    assert out["user"] == {"userId": "17", "email_sha256": " A@B.C ", "first": "Ann"}
    assert out["event"] == {}


def test_sections_follow_the_canonical_order() -> None:
    m = Mapping({"device": {"a": 1}, "event": {"b": 2}, "user": {}})
    assert m.sections == ["event", "user", "device"]
    assert m.apply({}).sections == {"event": {"b": 2}, "user": {}, "device": {"a": 1}}


# --------------------------------------------------------------------------- spec errors


BAD_SPECS = [
    ({"event": {"v": {"path": "x", "bogus": 1}}}, ["mapping.event.v", "unknown option", "bogus"]),
    ({"user": {"v": {"path": "x", "format": "iso"}}}, ["mapping.user.v", "unknown option", "format"]),
    ({"event": {"v": {"path": "x", "as": "uuid"}}}, ["mapping.event.v", "'as'", "uuid"]),
    ({"event": {"v": {"path": "x", "as": "datetime"}}}, ["'as'", "datetime"]),
    ({"user": {"v": {"path": "x", "identity": "ssn"}}}, ["mapping.user.v", "'identity'", "ssn"]),
    ({"user": {"v": {"path": "x", "identity": "EMAIL"}}}, ["'identity'", "EMAIL"]),
    ({"event": {"v": {"default": 1}}}, ["mapping.event.v", "needs 'path', 'const' or 'country'"]),
    ({"event": {"v": {"required": True}}}, ["needs 'path'"]),
    ({"event": {"*": {"from": "a", "bogus": 1}}}, ["mapping.event.*", "expects"]),
    ({"event": {"*": "customer"}}, ["mapping.event.*", "expects"]),
    ({"consent": {"{kind}": {"path": "x", "identity": "email"}}}, ["mapping.consent.{kind}", "identity"]),
]


@pytest.mark.parametrize("spec, fragments", BAD_SPECS)
def test_bad_specs_are_spec_errors(spec: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(MappingSpecError) as info:
        Mapping(spec)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("spec, fragments", BAD_SPECS)
def test_the_parser_alone_finds_bad_specs(spec: dict[str, Any], fragments: list[str]) -> None:
    # what the config validates with (it must not import the pipeline): the same error as compiling
    with pytest.raises(MappingSpecError) as info:
        parse_mapping(spec)
    with pytest.raises(MappingSpecError) as compiled:
        Mapping(spec)
    assert str(info.value) == str(compiled.value)


def test_the_parser_keeps_the_fields_in_order() -> None:
    parsed = parse_mapping(
        {
            "user": {"_keep_nulls": True, "e": {"path": "c.email", "identity": "email"}, "k": 3},
            "event": {"n": {"const": "x"}, "c": {"country": True}, "*": {"from": "d", "exclude": "z"}},
        }
    )
    assert parsed.sections == ("event", "user")
    assert parsed.fields == (
        ConstField("event", "n", "x"),
        CountryField("event", "c"),
        RestField("event", "d", frozenset({"z"}), keep_null=False),
        PathField("user", "e", "c.email", None, required=False, keep_null=True, coerce=None, identity="email", consent=False),
        ConstField("user", "k", 3),
    )


@pytest.mark.parametrize(
    "as_,value",
    [("int", "jane.doe@example.com"), ("float", "+49 30 1234567"), ("timestamp", "jane.doe@example.com"), ("date", "jane")],
)
def test_coercion_errors_never_quote_the_value(as_, value):
    m = Mapping({"event": {"x": {"path": "v", "as": as_}}})
    with pytest.raises(MappingError) as err:
        m.apply({"v": value})
    assert value not in str(err.value)
    assert "jane" not in str(err.value) and "1234567" not in str(err.value)


def test_date_of_an_aware_datetime_is_the_utc_date():
    import datetime as dt

    when = dt.datetime(2026, 3, 1, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert Mapping({"event": {"d": {"path": "t", "as": "date"}}}).apply({"t": when}).sections["event"]["d"] == "2026-03-02"


def test_rest_exclude_may_be_a_single_name():
    out = Mapping({"event": {"*": {"exclude": "secret"}}}).apply({"secret": 1, "kept": 2}).sections["event"]
    assert out == {"kept": 2}
