"""`s2s-bridge transform`: run records through a route's pipeline without Kafka or HTTP.

stdout gets one JSON line per record that would be sent (exactly the per-event payload the
destination receives); stderr one JSON line per record that would not be sent.
"""

from __future__ import annotations

from typing import IO, Any

import fastavro
import orjson

from streams.codec import Decoder, DecodeError, encode_plain, load_schema_file
from streams.config import BridgeConfig
from streams.pipeline.outcome import Filtered, Outcome, Payload, Rejected
from streams.pipeline.transform import build_pipelines


def _report(out: IO[bytes], err: IO[bytes], index: int, outcome: Outcome) -> None:
    if isinstance(outcome, Payload):
        out.write(outcome.body + b"\n")
        return
    line = {
        "index": index,
        "eventId": outcome.event_id,
        "outcome": "filtered" if isinstance(outcome, Filtered) else "rejected",
        "stage": outcome.stage,
        "reason": outcome.reason,
        "detail": outcome.detail,
    }
    err.write(orjson.dumps(line) + b"\n")


def run_transform(
    config: BridgeConfig, route: str, stream: IO[bytes], input_format: str, out: IO[bytes], err: IO[bytes]
) -> dict[str, int]:
    """Process every input record; return counts by outcome."""
    pipeline = build_pipelines(config, routes=[route])[route]
    topic = config.routes[route].topic
    counts = {"sent": 0, "rejected": 0, "filtered": 0}

    def emit(index: int, outcome: Outcome) -> None:
        _report(out, err, index, outcome)
        key = "sent" if isinstance(outcome, Payload) else "filtered" if isinstance(outcome, Filtered) else "rejected"
        counts[key] += 1

    if input_format == "avro":
        reader_schema = load_schema_file(config.schema_path(config.routes[route]))
        try:
            records = fastavro.reader(stream, reader_schema=reader_schema)
        except Exception as exc:  # not an Avro container file at all
            raise ValueError(f"input is not an Avro object container file: {exc}") from None
        index = 0
        try:
            for index, rec in enumerate(records):  # noqa: B007
                # the dry run's partition is 0 and its offset the record's index
                emit(index, pipeline.process_record(rec, topic, 0, index))  # type: ignore[arg-type]
        except Exception as exc:  # a corrupt block: report it, what was read stands
            emit(index + 1, Rejected("decode", "undecodable", f"corrupt Avro container: {exc}"[:300], type(exc).__name__))
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
                    raise DecodeError(f"record does not match schema: {type(exc).__name__}: {exc}"[:300]) from None
                record = plain.decode(data)
            except orjson.JSONDecodeError as exc:
                emit(index, Rejected("decode", "invalid_json", f"line is not JSON: {exc}"[:200], "JSONDecodeError"))
                continue
            except DecodeError as exc:
                emit(index, Rejected("decode", "schema_mismatch", str(exc), "DecodeError"))
                continue
            emit(index, pipeline.process_record(record, topic, 0, index))
    out.flush()
    err.flush()
    return counts
