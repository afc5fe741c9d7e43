"""The mapping checked against a reader schema (streams.mapping_check): paths as the pipeline
reads them (records, nullable unions, maps, never arrays), operators against the value types the
decoder hands over (logical types included), did-you-mean only when something is close."""

from __future__ import annotations

from typing import Any

import fastavro
import pytest
from fastavro.read import LOGICAL_READERS

from streams.mapping_check import LOGICAL_KINDS, SchemaPaths, check_mapping
from streams.pipeline.mapping import Mapping

ADDRESS = {
    "type": "record",
    "name": "Address",
    "fields": [{"name": "city", "type": "string"}, {"name": "zip", "type": ["null", "string"], "default": None}],
}
SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Order",
    "namespace": "shop",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "n", "type": "long"},
        {"name": "total", "type": "double"},
        {"name": "paid", "type": "boolean"},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "local_at", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
        {"name": "odd", "type": {"type": "long", "logicalType": "not-a-logical-type"}},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["OPEN", "DONE"]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attrs", "type": {"type": "map", "values": "string"}},
        {"name": "nested_maps", "type": {"type": "map", "values": ADDRESS}},
        {"name": "home", "type": ["null", "Address"], "default": None},
        {"name": "work", "type": ["null", "Address"], "default": None},
        {"name": "ship", "type": ["null", "shop.Address"], "default": None},  # by full name
        {"name": "either", "type": ["null", "string", {"type": "array", "items": "int"}], "default": None},
        {"name": "parent", "type": ["null", "Order"], "default": None},  # recursive
    ],
}
PATHS = SchemaPaths(SCHEMA, "the schema order.avsc")


def test_the_test_schema_is_avro() -> None:
    fastavro.parse_schema(SCHEMA)


@pytest.mark.parametrize(
    ("path", "kinds"),
    [
        ("id", ["string"]),
        ("home", ["null", "record"]),
        ("home.city", ["string"]),  # through a nullable union
        ("work.zip", ["null", "string"]),  # a named type (defined in a map's values) by its short name
        ("ship.city", ["string"]),  # ... and by its full name
        ("attrs.any_key", ["string"]),  # a map takes any key, as at runtime
        ("nested_maps.k.city", ["string"]),  # through a map into its record values
        ("parent.parent.home.city", ["string"]),  # a recursive record, as deep as the path goes
        ("at", ["timestamp-millis"]),
        ("local_at", ["local-timestamp-micros"]),
        ("day", ["date"]),
        ("ref", ["uuid"]),
        ("price", ["decimal"]),
        ("odd", ["long"]),  # a logical type the decoder does not know: the plain type
        ("status", ["enum"]),
        ("", ["record"]),
    ],
)
def test_paths_that_exist(path: str, kinds: list[str]) -> None:
    found = PATHS.resolve(path)
    assert not isinstance(found, str), found
    assert [t.kind for t in found] == kinds


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("home.cty", "'home.cty' is not a field of the schema order.avsc; did you mean 'home.city'?"),
        ("HOME.City", "did you mean 'home.city'?"),
        ("city", "did you mean 'home.city'?"),  # a level missing: the same field name deeper
        ("tags.first", "('tags' is an array: a path cannot index into an array)"),
        ("id.x", "('id' is a string: a path goes on only in a record or map)"),
        ("either.x", "('either' is null | string | array: a path cannot index into an array)"),
        ("qqqzzz", "'qqqzzz' is not a field of the schema order.avsc"),
    ],
)
def test_paths_that_do_not_exist(path: str, message: str) -> None:
    found = PATHS.resolve(path)
    assert isinstance(found, str)
    assert message in found


def test_no_suggestion_when_nothing_is_close() -> None:
    found = PATHS.resolve("qqqzzz")
    assert isinstance(found, str) and "did you mean" not in found
    assert PATHS.suggest("qqqzzz") is None


def test_candidate_paths_stop_at_maps_arrays_and_recursion() -> None:
    paths = PATHS.paths()
    assert {"home", "home.city", "home.zip", "work.city", "attrs", "tags", "parent"} <= set(paths)
    assert not [p for p in paths if p.startswith(("attrs.", "tags.", "nested_maps.", "parent."))]


def test_a_top_level_that_is_not_a_record() -> None:
    found = SchemaPaths("string", "the schema s.avsc").resolve("a")
    assert found == "'a' is not a field of the schema s.avsc (its top level is a string, not a record)"


def _problems(section: dict[str, Any]) -> list[str]:
    return [f"{p.field}: {p.message}" for p in check_mapping(PATHS, {"event": section})]


@pytest.mark.parametrize(
    ("spec", "accepted"),
    [
        # identities: text; phone and id also whole numbers; id also a uuid
        ({"path": "id", "identity": "email"}, True),
        ({"path": "status", "identity": "name"}, True),
        ({"path": "n", "identity": "phone"}, True),
        ({"path": "n", "identity": "email"}, False),
        ({"path": "ref", "identity": "id"}, True),
        ({"path": "total", "identity": "id"}, False),
        ({"path": "home", "identity": "id"}, False),
        ({"path": "tags", "identity": "email"}, False),
        ({"path": "attrs", "identity": "phone"}, False),
        ({"path": "at", "identity": "id"}, False),
        # a union passes when one non-null branch does
        ({"path": "either", "identity": "id"}, True),
        ({"path": "home.zip", "identity": "email"}, True),
        # timestamps: datetimes, numbers (epoch millis), ISO text
        ({"path": "at", "as": "timestamp"}, True),
        ({"path": "local_at", "as": "timestamp"}, True),
        ({"path": "n", "as": "timestamp"}, True),
        ({"path": "id", "as": "timestamp"}, True),
        ({"path": "day", "as": "timestamp"}, False),
        ({"path": "paid", "as": "timestamp"}, False),
        ({"path": "price", "as": "timestamp"}, False),
        ({"path": "status", "as": "timestamp"}, False),
        ({"path": "home", "as": "timestamp"}, False),
        ({"path": "day", "as": "date"}, True),
        ({"path": "paid", "as": "date"}, False),
        ({"path": "price", "as": "float"}, True),
        ({"path": "tags", "as": "int"}, False),
        ({"path": "tags", "as": "join"}, True),
        ({"path": "home", "as": "string"}, True),
        # consent: booleans, numbers, spellings
        ({"path": "paid", "consent": True}, True),
        ({"path": "status", "consent": True}, True),
        ({"path": "n", "consent": True}, True),
        ({"path": "tags", "consent": True}, False),
        ({"path": "attrs", "consent": True}, False),
        ({"path": "home", "consent": True}, False),
        # no operator: any type
        ({"path": "home"}, True),
    ],
)
def test_operators_against_types(spec: dict[str, Any], accepted: bool) -> None:
    problems = _problems({"k": spec})
    assert (problems == []) is accepted, problems
    if not accepted:
        assert problems[0].startswith("mapping.event.k: ")
        assert f"but '{spec['path']}' is " in problems[0]


def test_rest_source_and_exclude() -> None:
    assert _problems({"*": {"from": "home", "exclude": ["zip"]}}) == []
    assert _problems({"*": {"from": "attrs", "exclude": ["anything"]}}) == []  # a map may have any key
    assert _problems({"*": {"from": "", "exclude": ["hom"]}}) == [
        "mapping.event.*.exclude: 'hom' is not a field of the record; did you mean 'home'?"
    ]
    assert _problems({"*": {"from": "tags"}}) == ["mapping.event.*.from: '*' from needs a record or map, but 'tags' is an array"]


def test_fields_are_named_as_written() -> None:
    assert _problems({"a": "idd", "b": {"path": "idd"}, "{idd}": {"path": "id"}}) == [
        "mapping.event.a: 'idd' is not a field of the schema order.avsc; did you mean 'id'?",
        "mapping.event.b.path: 'idd' is not a field of the schema order.avsc; did you mean 'id'?",
        "mapping.event.{idd}: 'idd' is not a field of the schema order.avsc; did you mean 'id'?",
    ]


def test_the_logical_types_are_those_the_decoder_converts() -> None:
    # confluent-kafka's schema registry package, once loaded, adds "record-variant" (its Variant
    # type, never a field a mapping path names a scalar in): fastavro's own ones are the others
    fastavro_own = sorted(k for k in LOGICAL_READERS if k != "record-variant")
    assert sorted(f"{t}-{logical}" for t, logical in LOGICAL_KINDS) == fastavro_own


def test_what_the_checker_accepts_the_pipeline_reads() -> None:
    # paths through a nullable union and a map find values in the mapping itself
    spec = {"event": {"city": "home.city", "color": "attrs.color", "c2": "nested_maps.k.city"}}
    assert check_mapping(PATHS, spec) == []
    record = {"home": {"city": "Oslo"}, "attrs": {"color": "red"}, "nested_maps": {"k": {"city": "Rome"}}}
    assert Mapping(spec).apply(record).sections["event"] == {"city": "Oslo", "color": "red", "c2": "Rome"}


def test_the_checker_is_pure() -> None:
    # the config checks mappings with it, so it may not bring the pipeline (or anything else) along
    from tests.unit.test_import_graph import GRAPH, IO_LIBRARIES

    ours, others = GRAPH["streams.mapping_check"]
    assert ours <= {"streams.mapping_spec", "streams.errors"}
    assert not others & (IO_LIBRARIES | {"fastavro", "pydantic", "yaml"})
