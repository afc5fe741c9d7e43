"""`s2s-bridge transform`: run records through a route's pipeline without Kafka or HTTP.

stdout gets one JSON line per record that would be sent (exactly the per-event payload the
destination receives); stderr one JSON line per record that would not be sent. `DryRunReport` is
that report, shared with `s2s-bridge peek` (`streams.peek`, the live dry run over a topic's records).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

import fastavro
import orjson

from streams.codec import DecodeError, Decoder, encode_plain, load_schema_file
from streams.config import BridgeConfig
from streams.pipeline.outcome import DECODE, INVALID_JSON, SCHEMA_MISMATCH, UNDECODABLE, Filtered, Outcome, Payload, Rejected
from streams.routes import build_pipelines


class DryRunReport:
    """What a dry run prints of each record's outcome, and the counts by outcome.

    stdout: one line per record that would be sent, the payload exactly as the destination receives
    it (with ``locate_payloads``, wrapped as ``{<where>, "payload": ...}`` so it says which record it
    is); stderr: one JSON line per record that would not be sent, `where` first (the file dry run's
    ``index``, peek's ``record``), then its event id, outcome, stage, reason and detail."""

    def __init__(self, out: IO[bytes], err: IO[bytes], *, locate_payloads: bool = False) -> None:
        self.out = out
        self.err = err
        self.locate_payloads = locate_payloads
        self.counts = {"sent": 0, "rejected": 0, "filtered": 0}

    def add(self, where: dict[str, Any], outcome: Outcome) -> None:
        if isinstance(outcome, Payload):
            self.counts["sent"] += 1
            if self.locate_payloads:  # the body is JSON already: spliced in, not parsed again
                self.out.write(orjson.dumps(where)[:-1] + b',"payload":' + outcome.body + b"}\n")
            else:
                self.out.write(outcome.body + b"\n")
            return
        filtered = isinstance(outcome, Filtered)
        self.counts["filtered" if filtered else "rejected"] += 1
        line = {
            **where,
            "eventId": outcome.event_id,
            "outcome": "filtered" if filtered else "rejected",
            "stage": outcome.stage,
            "reason": outcome.reason,
            "detail": outcome.detail,
        }
        self.err.write(orjson.dumps(line) + b"\n")

    def summary(self) -> str:
        """``N records: X would be sent, Y filtered, Z dead-lettered``."""
        c = self.counts
        total = sum(c.values())
        return f"{total} records: {c['sent']} would be sent, {c['filtered']} filtered, {c['rejected']} dead-lettered"

    def flush(self) -> None:
        self.out.flush()
        self.err.flush()


def _leaves(obj: Any) -> Iterator[str]:
    """Text forms of the scalar values of a decoded JSON value."""
    if isinstance(obj, dict):
        for v in obj.values():
            yield from _leaves(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _leaves(v)
    elif isinstance(obj, str):
        yield obj
        yield repr(obj)
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        yield str(obj)


def _redact(text: str, obj: Any) -> str:
    """fastavro's schema errors quote the offending value: never echo an input value (PII) to stderr."""
    for leaf in sorted({v for v in _leaves(obj) if len(v) >= 3}, key=len, reverse=True):
        text = text.replace(leaf, "<redacted>")
    return text


def run_transform(
    config: BridgeConfig, route: str, stream: IO[bytes], input_format: str, out: IO[bytes], err: IO[bytes]
) -> dict[str, int]:
    """Process every input record; return counts by outcome."""
    pipeline = build_pipelines(config, routes=[route])[route]
    topic = config.routes[route].topic
    report = DryRunReport(out, err)

    def emit(index: int, outcome: Outcome) -> None:
        report.add({"index": index}, outcome)

    if input_format == "avro":
        reader_schema = load_schema_file(config.schema_path(config.routes[route]))
        try:
            records = fastavro.reader(stream, reader_schema=reader_schema)
        except Exception as exc:  # not an Avro container file at all
            raise ValueError(f"input is not an Avro object container file: {exc}") from None
        index = -1  # the corrupt record is the one after the last one read
        try:
            for index, rec in enumerate(records):  # noqa: B007
                # the dry run's partition is 0 and its offset the record's index
                emit(index, pipeline.process_record(rec, topic, 0, index))  # type: ignore[arg-type]
        except Exception as exc:  # a corrupt block: report it, what was read stands
            emit(index + 1, Rejected(DECODE, UNDECODABLE, f"corrupt Avro container: {exc}"[:300], type(exc).__name__))
    else:
        # a JSON line is encoded with the route's schema and decoded again, so it is validated by the
        # schema and gets exactly the types the worker sees (e.g. timestamp-millis -> datetime)
        assert pipeline.decoder is not None
        plain = Decoder(load_schema_file(config.schema_path(config.routes[route])), "plain", pipeline.decoder.store)
        for index, line in enumerate(stream):
            if not line.strip():
                continue
            try:
                obj: Any = orjson.loads(line)
                if not isinstance(obj, dict):
                    raise DecodeError(f"line is JSON {type(obj).__name__}, not an object")
                try:
                    data = encode_plain(plain.reader, obj)
                except Exception as exc:  # fastavro: ValueError/TypeError/... on schema violations
                    why = _redact(f"{type(exc).__name__}: {exc}", obj)
                    raise DecodeError(f"record does not match schema: {why}"[:300]) from None
                record = plain.decode(data)
            except orjson.JSONDecodeError as exc:
                emit(index, Rejected(DECODE, INVALID_JSON, f"line is not JSON: {exc}"[:200], type(exc).__name__))
                continue
            except DecodeError as exc:
                emit(index, Rejected(DECODE, SCHEMA_MISMATCH, str(exc), exc.error_class))
                continue
            emit(index, pipeline.process_record(record, topic, 0, index))
    report.flush()
    return report.counts
