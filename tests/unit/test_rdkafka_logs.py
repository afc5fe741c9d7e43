"""librdkafka's own logs through Python logging: routine messages demoted, repeats suppressed with a count."""

from __future__ import annotations

import logging

import pytest

from streams.logs import RdkafkaLogFilter, rdkafka_logger

FAIL_REFUSED = (
    "[thrd:127.0.0.1:9/bootstrap]: 127.0.0.1:9/bootstrap: "
    "Connect to ipv4#127.0.0.1:9 failed: Connection refused (after 0ms in state CONNECT)"
)
SSL_FAILED = "[thrd:ssl://b:9093/bootstrap]: ssl://b:9093/bootstrap: SSL handshake failed: certificate verify failed"


def rec(level: int, facility: str, text: str, name: str = "streams.rdkafka.worker") -> logging.LogRecord:
    """A record as confluent-kafka logs it: ``"%s [%s] %s"`` with (facility, client name, message)."""
    return logging.LogRecord(name, level, __file__, 1, "%s [%s] %s", (facility, "s2s#producer-1", text), None)


@pytest.mark.parametrize(
    ("level", "facility", "text", "kept_level"),
    [
        (logging.ERROR, "FAIL", FAIL_REFUSED, None),  # broker starting: demoted, hidden at WARNING
        (
            logging.WARNING,
            "GETPID",
            "Failed to acquire PID: Coordinator load in progress: retrying",
            None,
        ),
        (logging.WARNING, "BGQUEUE", "Purging queue: purging 3 messages", None),
        (logging.INFO, "FAIL", "b:9092/1: Disconnected (after 5000ms in state UP)", None),
        (logging.ERROR, "FAIL", SSL_FAILED, logging.ERROR),  # a real error: kept, at its level
        (logging.WARNING, "SASL", "SASL authentication error: Authentication failed", logging.WARNING),
        (logging.CRITICAL, "FATAL", "Fatal error: Broker: Producer fenced", logging.CRITICAL),
    ],
)
def test_classification(level: int, facility: str, text: str, kept_level: int | None) -> None:
    logging.getLogger("streams.rdkafka.worker").setLevel(logging.WARNING)
    r = rec(level, facility, text)
    kept = RdkafkaLogFilter().filter(r)
    assert kept is (kept_level is not None)
    if kept:
        assert r.levelno == kept_level
        assert text in r.getMessage()
    else:
        assert r.levelno <= logging.INFO


def test_demoted_message_shown_at_debug() -> None:
    logging.getLogger("streams.rdkafka.dbg").setLevel(logging.DEBUG)
    r = rec(logging.ERROR, "FAIL", FAIL_REFUSED, name="streams.rdkafka.dbg")
    assert RdkafkaLogFilter().filter(r) and r.levelname == "DEBUG"


def test_repeat_suppressed_once_a_window_then_counted() -> None:
    now = [0.0]
    f = RdkafkaLogFilter(window_s=60, clock=lambda: now[0])
    assert f.filter(rec(logging.ERROR, "FAIL", SSL_FAILED))
    for t in (1.0, 30.0, 59.0):  # the same text (the thread prefix and numbers may differ) is suppressed
        now[0] = t
        assert not f.filter(rec(logging.ERROR, "FAIL", SSL_FAILED.replace("9093", "9094")))
    assert f.filter(rec(logging.ERROR, "FAIL", "another error"))  # a different text is shown
    now[0] = 61.0
    r = rec(logging.ERROR, "FAIL", SSL_FAILED)
    assert f.filter(r)
    assert r.getMessage().endswith("(3 more like it in the last 60s)")
    assert "certificate verify failed" in r.getMessage()
    now[0] = 62.0
    assert not f.filter(rec(logging.ERROR, "FAIL", SSL_FAILED))


def test_cache_is_bounded() -> None:
    f = RdkafkaLogFilter()
    for i in range(1000):
        f.filter(rec(logging.ERROR, "FAIL", f"error {chr(65 + i % 26)}{'x' * (i // 26)}"))
    assert len(f._seen) <= 256


def test_every_client_logger_has_the_filter() -> None:
    log = rdkafka_logger("worker")
    assert log.name == "streams.rdkafka.worker"
    assert rdkafka_logger("worker") is log and sum(isinstance(x, RdkafkaLogFilter) for x in log.filters) == 1
