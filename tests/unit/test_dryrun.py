"""The `transform` dry run through the CLI (streams.cli, streams.dryrun)."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import fastavro
import orjson
import pytest
import yaml
from typer.testing import CliRunner, Result

from streams.cli import app
from streams.codec import encode_plain, load_schema_file
from streams.config import load_config
from streams.dev.samples import SampleFactory
from streams.pipeline.outcome import Payload
from streams.routes import build_pipelines

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "bridge.yaml"
ENV = {"ZEOTAP_WRITE_KEY": "dry-run-key"}
ROUTE = "purchase_completed"
SCHEMA = load_schema_file(ROOT / "avro_schemas" / f"{ROUTE}.avsc")
ERR_KEYS = {"index", "eventId", "outcome", "stage", "reason", "detail"}


def _invoke(*args: str, env: dict[str, str] | None = None, stdin: bytes | None = None) -> Result:
    runner = CliRunner()
    return runner.invoke(app, list(args), env=ENV if env is None else env, input=stdin)


def _transform(path: Path, *extra: str, config: Path = EXAMPLE, route: str = ROUTE, **kw: Any) -> Result:
    return _invoke("transform", "-c", str(config), "--route", route, "-i", str(path), *extra, **kw)


def _stdout_objects(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def _stderr_objects(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stderr.splitlines() if line.strip()]


def _expected_payloads(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the worker's pipeline makes of these records (independent of the dry-run code)."""
    p = build_pipelines(load_config(EXAMPLE, env=ENV), routes=[ROUTE])[ROUTE]
    assert p.decoder is not None
    out = []
    for i, rec in enumerate(records):
        outcome = p.process(encode_plain(p.decoder.reader, rec), ROUTE, 0, i)
        assert isinstance(outcome, Payload), outcome
        out.append(orjson.loads(outcome.body))
    return out


def _good_records(n: int, seed: int) -> list[dict[str, Any]]:
    factory = SampleFactory(seed=seed)
    return [factory.record(ROUTE) for _ in range(n)]


def _mixed_lines() -> tuple[list[str], list[dict[str, Any]], dict[int, tuple[str, str, str | None]], list[str]]:
    """Input lines, the good records among them, expected stderr by line index, and every input email."""
    factory = SampleFactory(seed=31)
    good = [factory.record(ROUTE) for _ in range(6)]
    no_ids = factory.record(ROUTE, identifiers=False)
    no_country = factory.record(ROUTE, country=False)
    no_country["customer"]["phone"] = None  # an international number would give the country
    denied = factory.record(ROUTE, consent_granted=False)
    mismatch = copy.deepcopy(good[0])
    mismatch["order_value"] = "mismatch.person@example.com"  # a string where the schema wants a double
    mismatch["customer"]["email"] = "mismatch.person@example.com"

    lines = [
        json.dumps(good[0]),
        json.dumps(good[1]),
        '{"event_id": "broken", this is not json',
        json.dumps(good[2]),
        json.dumps(no_ids),
        "",  # blank lines are skipped but keep the numbering
        json.dumps(good[3]),
        json.dumps(no_country),
        json.dumps(denied),
        "[1, 2, 3]",
        json.dumps(mismatch),
        json.dumps(good[4]),
        json.dumps(good[5]),
    ]
    expected_err = {
        2: ("rejected", "decode", None),
        4: ("rejected", "enrich", no_ids["event_id"]),
        7: ("rejected", "enrich", no_country["event_id"]),
        8: ("filtered", "consent", denied["event_id"]),
        9: ("rejected", "decode", None),
        10: ("rejected", "decode", None),
    }
    emails = [r["customer"]["email"] for r in [*good, no_country, denied, mismatch] if r["customer"]["email"]]
    emails.append("mismatch.person@example.com")
    return lines, good, expected_err, emails


@pytest.fixture
def mixed(tmp_path: Path) -> tuple[Result, list[dict[str, Any]], dict[int, tuple[str, str, str | None]], list[str]]:
    lines, good, expected_err, emails = _mixed_lines()
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return _transform(path), good, expected_err, emails


# --------------------------------------------------------------------------- JSONL


def test_stdout_is_the_payloads_of_the_good_records(mixed: Any) -> None:
    result, good, _, _ = mixed
    assert result.exit_code == 0, result.stderr
    assert _stdout_objects(result) == _expected_payloads(good)


def test_records_after_the_broken_line_are_processed(mixed: Any) -> None:
    result, good, _, _ = mixed
    event_ids = [p["event"]["eventId"] for p in _stdout_objects(result)]
    assert event_ids == [r["event_id"] for r in good]
    assert good[5]["event_id"] in event_ids  # the last line, well after the broken one


def test_stderr_lines_describe_each_record_not_sent(mixed: Any) -> None:
    result, _, expected_err, _ = mixed
    errs = _stderr_objects(result)
    assert [e["index"] for e in errs] == sorted(expected_err)
    for e in errs:
        assert set(e) == ERR_KEYS
        outcome, stage, event_id = expected_err[e["index"]]
        assert (e["outcome"], e["stage"], e["eventId"]) == (outcome, stage, event_id)
        assert e["reason"] and isinstance(e["reason"], str)
        assert e["outcome"] in ("rejected", "filtered")


@pytest.mark.parametrize(
    "index, reason",
    [(2, "invalid_json"), (4, "missing_identifier"), (7, "missing_country"), (8, "consent_denied"), (10, "schema_mismatch")],
)
def test_stderr_reasons(mixed: Any, index: int, reason: str) -> None:
    result, _, _, _ = mixed
    by_index = {e["index"]: e for e in _stderr_objects(result)}
    assert by_index[index]["reason"] == reason


def test_stderr_never_contains_a_raw_email(mixed: Any) -> None:
    result, _, _, emails = mixed
    assert len(emails) >= 8
    for email in emails:
        for form in {email, email.strip(), email.strip().lower()}:
            assert form not in result.stderr
            assert form not in result.stdout


def test_stdin_input(tmp_path: Path) -> None:
    records = _good_records(3, seed=5)
    data = "".join(json.dumps(r) + "\n" for r in records).encode()
    result = _invoke("transform", "-c", str(EXAMPLE), "--route", ROUTE, "-i", "-", stdin=data)
    assert result.exit_code == 0, result.stderr
    assert _stdout_objects(result) == _expected_payloads(records)


def test_other_route(tmp_path: Path) -> None:
    factory = SampleFactory(seed=3)
    records = [factory.record("market_offer_assignment") for _ in range(3)]
    path = tmp_path / "nce.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    result = _transform(path, route="market_offer_assignment")
    assert result.exit_code == 0, result.stderr
    out = _stdout_objects(result)
    assert [list(p) for p in out] == [["event"]] * 3
    assert [p["event"]["eventId"] for p in out] == [r["event_id"] for r in records]
    assert result.stderr == ""


# --------------------------------------------------------------------------- Avro object container input


def _avro_file(path: Path, records: list[dict[str, Any]], **kw: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(SCHEMA), records, **kw)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def test_avro_container_gives_the_same_stdout_as_jsonl(tmp_path: Path) -> None:
    records = _good_records(8, seed=9)
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    avro = tmp_path / "in.avro"
    _avro_file(avro, records)
    from_jsonl = _transform(jsonl)
    from_avro = _transform(avro, "--input-format", "avro")
    assert from_jsonl.exit_code == from_avro.exit_code == 0
    assert from_avro.stdout == from_jsonl.stdout
    assert from_avro.stderr == from_jsonl.stderr == ""
    assert len(_stdout_objects(from_avro)) == 8


def test_avro_container_with_rejections_reports_record_indexes(tmp_path: Path) -> None:
    factory = SampleFactory(seed=12)
    records = [factory.record(ROUTE), factory.record(ROUTE, consent_granted=False), factory.record(ROUTE)]
    avro = tmp_path / "in.avro"
    _avro_file(avro, records)
    result = _transform(avro, "--input-format", "avro")
    assert result.exit_code == 0
    assert [p["event"]["eventId"] for p in _stdout_objects(result)] == [records[0]["event_id"], records[2]["event_id"]]
    errs = _stderr_objects(result)
    assert [(e["index"], e["outcome"], e["stage"], e["eventId"]) for e in errs] == [
        (1, "filtered", "consent", records[1]["event_id"])
    ]


@pytest.mark.parametrize(
    "sync_interval, cut, sent, index",
    [
        (16000, 40, 0, 0),  # one block, truncated: nothing read, the first record is the bad one
        (1, 40, 3, 3),  # a block per record: the last block is truncated
        (1, 5, 4, 4),  # only the final sync marker is cut: every record was read
    ],
)
def test_corrupt_avro_container(tmp_path: Path, sync_interval: int, cut: int, sent: int, index: int) -> None:
    records = _good_records(4, seed=21)
    avro = tmp_path / "in.avro"
    data = _avro_file(avro, records, sync_interval=sync_interval)
    avro.write_bytes(data[:-cut])
    result = _transform(avro, "--input-format", "avro")
    assert result.exit_code == 0
    assert len(_stdout_objects(result)) == sent
    errs = _stderr_objects(result)
    assert [(e["index"], e["outcome"], e["stage"], e["reason"]) for e in errs] == [(index, "rejected", "decode", "undecodable")]


def test_not_an_avro_container_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(_good_records(1, seed=1)[0]) + "\n", encoding="utf-8")
    result = _transform(path, "--input-format", "avro")
    assert result.exit_code == 2
    assert "not an Avro object container file" in result.stderr
    assert result.stdout == ""


# --------------------------------------------------------------------------- usage errors


def _bad_config(tmp_path: Path, mutate: Any) -> Path:
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    raw = {k: v for k, v in raw.items() if not str(k).startswith("x-")}
    for route in raw["routes"].values():
        route["schema"] = str((EXAMPLE.parent / route["schema"]).resolve())
    mutate(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "mutate, fragments",
    [
        (
            lambda r: r["routes"][ROUTE].__setitem__("destination", "nowhere"),
            [f"routes.{ROUTE}.destination", "unknown destination 'nowhere'"],
        ),
        (lambda r: r["destinations"]["zeotap"].pop("region"), ["destinations.zeotap.region", "required"]),
        (lambda r: r["kafka"].__setitem__("topic_partitions", "lots"), ["kafka.topic_partitions"]),
        (
            lambda r: r["routes"][ROUTE]["mapping"]["event"].__setitem__("x", {"path": "a", "bogus": 1}),
            [f"routes.{ROUTE}.mapping", "bogus"],
        ),
        (
            lambda r: r["destinations"]["zeotap"].__setitem__("url", "http://zeotap.example.com/x"),
            ["destinations.zeotap.url", "plain http"],
        ),
    ],
)
def test_bad_config_exits_2_naming_the_field(tmp_path: Path, mutate: Any, fragments: list[str]) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps(_good_records(1, seed=1)[0]) + "\n", encoding="utf-8")
    result = _transform(inp, config=_bad_config(tmp_path, mutate))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("error: ")
    for fragment in fragments:
        assert fragment in result.stderr


def test_missing_write_key_exits_2(tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text("{}\n", encoding="utf-8")
    result = _transform(inp, env={})
    assert result.exit_code == 2
    assert "ZEOTAP_WRITE_KEY" in result.stderr
    assert "destinations.zeotap.write_key" in result.stderr


@pytest.mark.parametrize("route", ["purchase", "PURCHASE_COMPLETED", "zeotap"])
def test_unknown_route_exits_2(tmp_path: Path, route: str) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text("{}\n", encoding="utf-8")
    result = _transform(inp, route=route)
    assert result.exit_code == 2
    assert f"unknown route {route!r}" in result.stderr
    assert "purchase_completed" in result.stderr  # lists the known routes
    assert result.stdout == ""


def test_unreadable_input_exits_2(tmp_path: Path) -> None:
    result = _transform(tmp_path / "missing.jsonl")
    assert result.exit_code == 2
    assert "cannot read input" in result.stderr


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    inp = tmp_path / "in.jsonl"
    inp.write_text("{}\n", encoding="utf-8")
    result = _transform(inp, config=tmp_path / "nope.yaml")
    assert result.exit_code == 2
    assert "cannot read config file" in result.stderr


# --------------------------------------------------------------------------- the report peek shares


def test_report_locates_payloads_and_sums_up() -> None:
    from streams.dryrun import DryRunReport
    from streams.pipeline.outcome import Filtered, Rejected

    out, err = io.BytesIO(), io.BytesIO()
    report = DryRunReport(out, err, locate_payloads=True)
    report.add({"record": "1:7"}, Payload("e1", b'{"event":{"eventId":"e1"}}'))
    report.add({"record": "0:3"}, Filtered("consent", "consent_denied", "consent 'marketing' denied", "e2"))
    report.add({"record": "2:0"}, Rejected("decode", "undecodable", "invalid Avro data", "DecodeError"))
    report.add({"record": "2:1"}, Rejected("enrich", "missing_country", "no country", "MissingCountry", "e4"))
    assert [orjson.loads(line) for line in out.getvalue().splitlines()] == [
        {"record": "1:7", "payload": {"event": {"eventId": "e1"}}}
    ]
    errs = [orjson.loads(line) for line in err.getvalue().splitlines()]
    assert [(e["record"], e["outcome"], e["stage"], e["reason"], e["eventId"]) for e in errs] == [
        ("0:3", "filtered", "consent", "consent_denied", "e2"),
        ("2:0", "rejected", "decode", "undecodable", None),
        ("2:1", "rejected", "enrich", "missing_country", "e4"),
    ]
    assert all(list(e)[0] == "record" and set(e) - {"record"} == ERR_KEYS - {"index"} for e in errs)
    assert report.counts == {"sent": 1, "rejected": 2, "filtered": 1}
    assert report.summary() == "4 records: 1 would be sent, 1 filtered, 2 dead-lettered"
