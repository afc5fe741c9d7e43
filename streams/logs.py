"""Logging set-up: text or one JSON object per line. Callers never log secrets or record values."""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

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


#: librdkafka messages that are routine and heal themselves (broker starting or stopping, a group
#: coordinator loading, the idempotent producer's id retried): (facility or "*", text in the message).
#: They go to DEBUG. Anything else keeps librdkafka's level. See README "Troubleshooting".
ROUTINE: tuple[tuple[str, str], ...] = (
    ("*", "Connection refused"),
    ("*", "Disconnected"),
    ("*", "Connection closed"),
    ("*", "Connection reset"),
    ("*", "brokers are down"),
    ("*", "Coordinator load in progress"),
    ("*", "Coordinator not available"),
    ("*", "Not coordinator"),
    ("GETPID", "retrying"),
    ("BGQUEUE", "purging"),
)

#: a WARNING or worse with the same text is shown once per this many seconds
REPEAT_WINDOW_S = 60.0
_CACHE_SIZE = 256
_NUMBERS = re.compile(r"\d+")


class RdkafkaLogFilter(logging.Filter):
    """Demote librdkafka's routine messages to DEBUG; show each other WARNING+ once per window.

    confluent-kafka logs ``"%s [%s] %s"`` with (facility, client name, message). A repeat inside the
    window is suppressed and counted; the next one shown after the window says how many were
    suppressed, so nothing is dropped without a trace. The cache of texts is bounded.
    """

    def __init__(self, window_s: float = REPEAT_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self._seen: OrderedDict[tuple[str, str, str], list[float]] = OrderedDict()  # key -> [shown at, suppressed]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) and len(record.args) == 3 else None
        facility, text = (str(args[0]), str(args[2])) if args else ("", record.getMessage())
        if record.levelno >= logging.WARNING and any((fac in ("*", facility)) and needle in text for fac, needle in ROUTINE):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        if record.levelno < logging.WARNING:
            return logging.getLogger(record.name).isEnabledFor(record.levelno)
        # the thread prefix and the numbers (timings, ids) vary between otherwise equal messages
        key = (record.name, facility, _NUMBERS.sub("#", text.split("]: ", 1)[-1]))
        now = self.clock()
        with self._lock:
            entry = self._seen.get(key)
            if entry is not None and now - entry[0] < self.window_s:
                entry[1] += 1
                return False
            suppressed = int(entry[1]) if entry is not None else 0
            self._seen[key] = [now, 0]
            self._seen.move_to_end(key)
            while len(self._seen) > _CACHE_SIZE:
                self._seen.popitem(last=False)
        if suppressed:
            record.msg = f"{record.msg} (%d more like it in the last %ds)"
            record.args = (*(args or ()), suppressed, int(self.window_s))
        return True


_RDKAFKA_FILTER = RdkafkaLogFilter()


def rdkafka_logger(role: str) -> logging.Logger:
    """The Python logger for a confluent-kafka client's own logs (its ``logger`` setting):
    ``streams.rdkafka.<role>``, with routine messages demoted and repeats suppressed.

    Without it librdkafka writes raw ``%3|...|FAIL|...`` lines to stderr. With it, a producer's or
    admin client's logs are delivered when the client is polled (a consumer's: by its poll).
    """
    log = logging.getLogger(f"streams.rdkafka.{role}")
    if _RDKAFKA_FILTER not in log.filters:
        log.addFilter(_RDKAFKA_FILTER)
    return log
