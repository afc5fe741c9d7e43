"""Logging set-up: text or one JSON object per line. Callers never log secrets or record values."""

from __future__ import annotations

import logging
import sys

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
        JsonFormatter.converter = __import__("time").gmtime
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Faust/aiokafka are chatty at INFO; the HTTP clients log every request (thousands a second)
    for noisy in ("faust", "aiokafka", "mode", "httpx", "httpx2", "httpcore"):  # noqa: B007
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
