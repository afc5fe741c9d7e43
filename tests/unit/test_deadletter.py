"""The dead-letter message: as it is when it can be, reduced (and still identifying) when it cannot."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from streams.deadletter import (
    H_HEADERS_DROPPED,
    H_OFFSET,
    H_ORIGINAL_KEY_SIZE,
    H_ORIGINAL_SIZE,
    H_REASON,
    H_REDUCED,
    H_REDUCED_DETAIL,
    H_TOPIC,
    REDUCED_VALUE_BYTES,
    UNREADABLE,
    DeadLetter,
    DeadLetterFailed,
    DeadLetterProducer,
    ReadOnce,
    dead_letter_message,
    header_dict,
    read_headers,
    writable_headers,
)

LIMIT = 1_000_000


def dl(**kw: Any) -> DeadLetter:
    base: dict[str, Any] = dict(
        route="r",
        destination="zeotap",
        topic="src",
        partition=2,
        offset=41,
        timestamp_ms=1700000000000,
        stage="decode",
        reason="undecodable",
        error_class="DecodeError",
        message="invalid Avro data",
    )
    return DeadLetter(**{**base, **kw})


@pytest.mark.parametrize(
    ("original", "kept", "dropped"),
    [
        ([("a", b"1"), ("b", "two"), ("c", None)], [("a", b"1"), ("b", b"two"), ("c", b"")], 0),
        ({"a": b"1"}, [("a", b"1")], 0),
        ([("a", bytearray(b"x")), ("m", memoryview(b"y"))], [("a", b"x"), ("m", b"y")], 0),
        ([("a", 5), ("b", 1.5), ("c", object())], [], 3),  # values that are not bytes/str/None
        ([(b"k", b"v"), (5, b"v"), (None, b"v")], [], 3),  # names that are not str (the client would repr them)
        ([("k\udcff", b"v"), ("v", "\udcff")], [], 2),  # lone surrogates: the client crashes or raises
        ([("a\x00b", b"v")], [], 1),  # NUL: the client would cut the name
        ([("a", b"1", b"2"), ("ok", b"1")], [("ok", b"1")], 1),  # not a pair
        ([("s2s.reason", b"spoof"), ("__connect.errors.topic", b"spoof"), ("x", b"1")], [("x", b"1")], 0),
        (None, [], 0),
        (UNREADABLE, [], 0),
        (42, [], 1),  # not iterable at all
    ],
)
def test_writable_headers(original: Any, kept: list[tuple[str, bytes]], dropped: int) -> None:
    assert writable_headers(original) == (kept, dropped)


def test_small_record_is_dead_lettered_as_it_is() -> None:
    msg = dead_letter_message(dl(), b"k", b"\x02\xff", [("trace", b"t")], limit=LIMIT)
    assert msg.reduced == ()
    assert (msg.key, msg.value) == (b"k", b"\x02\xff")
    h = header_dict(msg.headers)
    assert h["trace"] == "t" and h[H_TOPIC] == "src" and h[H_OFFSET] == "41" and h[H_REASON] == "undecodable"
    assert H_REDUCED not in h and H_ORIGINAL_SIZE not in h
    assert msg.headers[0] == ("trace", b"t")  # original headers first, ours after


def test_value_too_large_keeps_a_prefix_the_key_and_small_headers() -> None:
    value = bytes(range(256)) * 4000  # 1,024,000 bytes
    msg = dead_letter_message(dl(), b"key-1", value, [("trace", b"t")], limit=LIMIT)
    assert msg.reduced == ("value_too_large",)
    assert msg.value == value[:REDUCED_VALUE_BYTES] and msg.key == b"key-1"
    h = header_dict(msg.headers)
    assert h[H_REDUCED] == "value_too_large"
    assert h[H_ORIGINAL_SIZE] == str(len(value))
    assert h[H_REDUCED_DETAIL].endswith(f"over the dead-letter limit of {LIMIT}")
    assert h["trace"] == "t" and h[H_TOPIC] == "src" and h[H_OFFSET] == "41"
    assert H_HEADERS_DROPPED not in h and H_ORIGINAL_KEY_SIZE not in h
    assert msg.size <= LIMIT


def test_large_headers_are_dropped_before_a_small_value_is_touched() -> None:
    headers = [(f"h{i}", b"x" * 1000) for i in range(60)]
    msg = dead_letter_message(dl(), b"k", b"v" * 2000, headers, limit=50_000)
    assert msg.reduced == ("headers_too_large",)
    assert msg.value == b"v" * 2000 and msg.key == b"k"
    h = header_dict(msg.headers)
    assert h[H_HEADERS_DROPPED] == "60" and not any(k.startswith("h") for k, _ in msg.headers)
    assert msg.size <= 50_000


def test_largest_part_is_cut_first_and_only_as_much_as_needed() -> None:
    # value and headers both over their budgets: cutting the value (the larger) is enough here
    headers = [(f"h{i}", b"x" * 100) for i in range(50)]  # ~5.5 KB
    msg = dead_letter_message(dl(), b"k", b"v" * 200_000, headers, limit=100_000)
    assert msg.reduced == ("value_too_large",)
    assert len([k for k, _ in msg.headers if k.startswith("h")]) == 50


def test_huge_key_is_dropped_and_its_size_said() -> None:
    msg = dead_letter_message(dl(), b"K" * 200_000, b"v", None, limit=100_000)
    assert msg.reduced == ("key_too_large",)
    assert msg.key is None and msg.value == b"v"
    h = header_dict(msg.headers)
    assert h[H_ORIGINAL_KEY_SIZE] == "200000"


def test_everything_too_large() -> None:
    msg = dead_letter_message(dl(), b"K" * 300_000, b"v" * 400_000, [("h", b"x" * 200_000)], limit=100_000)
    assert set(msg.reduced) == {"value_too_large", "key_too_large", "headers_too_large"}
    assert msg.reduced[0] == "value_too_large"  # the largest first
    assert msg.size <= 100_000


def test_unwritable_headers_are_dropped_the_rest_kept() -> None:
    msg = dead_letter_message(dl(), b"k", b"value", [("ok", b"1"), ("bad", 7), (b"raw", b"2")], limit=LIMIT)
    assert msg.reduced == ("headers_unwritable",)
    assert msg.value == b"value" and msg.key == b"k"
    h = header_dict(msg.headers)
    assert h["ok"] == "1" and h[H_HEADERS_DROPPED] == "2" and h[H_REDUCED] == "headers_unwritable"
    assert h[H_ORIGINAL_SIZE] == "5"


def test_unreadable_headers() -> None:
    msg = dead_letter_message(dl(), b"k", b"value", UNREADABLE, limit=LIMIT)
    assert msg.reduced == ("headers_unreadable",)
    h = header_dict(msg.headers)
    assert h[H_HEADERS_DROPPED] == "unreadable" and h[H_TOPIC] == "src"


def test_refused_once_retries_a_small_record_unchanged() -> None:
    """A record refused only because a batch-mate was too large goes again as it is."""
    msg = dead_letter_message(dl(), b"k", b"v" * 100, None, limit=LIMIT, refused="MSG_SIZE_TOO_LARGE", attempt=1)
    assert msg.reduced == () and msg.value == b"v" * 100


def test_refused_once_cuts_what_is_over_its_budget_even_if_it_seemed_to_fit() -> None:
    msg = dead_letter_message(dl(), b"k", b"v" * 50_000, None, limit=LIMIT, refused="MSG_SIZE_TOO_LARGE", attempt=1)
    assert msg.reduced == ("value_too_large",)
    assert header_dict(msg.headers)[H_REDUCED_DETAIL] == "Kafka refused the dead letter: MSG_SIZE_TOO_LARGE"


def test_minimal_form_keeps_nothing_of_the_original() -> None:
    msg = dead_letter_message(dl(message="m" * 1000), b"k", b"v" * 50, [("a", b"1")], limit=LIMIT, refused="X", attempt=2)
    assert msg.reduced == ("refused",)
    assert msg.key is None and msg.value == b""
    h = header_dict(msg.headers)
    assert "a" not in h and h[H_HEADERS_DROPPED] == "1" and h[H_ORIGINAL_KEY_SIZE] == "1" and h[H_ORIGINAL_SIZE] == "50"
    assert h[H_TOPIC] == "src" and h[H_OFFSET] == "41" and h[H_REASON] == "undecodable"
    assert len(h["__connect.errors.exception.message"]) == 200


def test_limit_smaller_than_the_reduced_form_gives_the_minimal_one() -> None:
    msg = dead_letter_message(dl(), b"k" * 900, b"v" * 5000, [("h", b"x" * 3000)], limit=3000)
    assert msg.reduced == ("refused",) and msg.value == b"" and msg.size <= 3000


def test_no_value_no_size_header() -> None:
    msg = dead_letter_message(dl(), None, None, UNREADABLE, limit=LIMIT)
    assert H_ORIGINAL_SIZE not in header_dict(msg.headers)


class _Msg:
    """A consumed record whose headers() behaves like confluent-kafka's for a non-UTF-8 name."""

    def __init__(self, fail: bool) -> None:
        self.fail, self.calls = fail, 0

    def headers(self) -> Any:
        self.calls += 1
        if self.fail:
            raise SystemError("returned a result with an exception set")
        return [("a", b"1")]

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"v"


def test_read_once() -> None:
    bad = _Msg(True)
    r = ReadOnce(bad)
    assert r.headers() is UNREADABLE and r.headers() is UNREADABLE and bad.calls == 1
    assert list(UNREADABLE) == [] and not UNREADABLE  # reads as "no headers" anywhere else
    good = _Msg(False)
    assert read_headers(good) == [("a", b"1")]


class FakeProducer:
    """Stands in for librdkafka's producer: refuses by size (at produce() or in the delivery report)."""

    def __init__(self, sync_limit: int | None = None, async_limit: int | None = None, error: int | None = None) -> None:
        self.sync_limit, self.async_limit, self.error = sync_limit, async_limit, error
        self.sent: list[tuple[bytes | None, bytes | None, Any]] = []

    def produce(self, topic: str, value: Any = None, key: Any = None, headers: Any = None, on_delivery: Any = None) -> None:
        for _k, v in headers or ():
            if not isinstance(v, bytes | str | None):
                raise TypeError("expected header value to be None, binary, or unicode string")
        size = len(value or b"") + len(key or b"") + sum(len(k) + len(v) for k, v in headers)
        if self.sync_limit is not None and size > self.sync_limit:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        err = None
        if self.error is not None:
            err = KafkaError(self.error)
        elif self.async_limit is not None and size > self.async_limit:
            err = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)
        if err is None:
            self.sent.append((key, value, headers))
        on_delivery(err, None)

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0


class Rec:
    def __init__(self, key: bytes | None, value: bytes | None, headers: Any) -> None:
        self._k, self._v, self._h = key, value, headers

    def key(self) -> bytes | None:
        return self._k

    def value(self) -> bytes | None:
        return self._v

    def headers(self) -> Any:
        return self._h


def producer(fake: FakeProducer, limits: dict[str, int] | None = None) -> DeadLetterProducer:
    p = DeadLetterProducer({"bootstrap.servers": "127.0.0.1:9"}, limits)
    p._producer.flush(0)
    p._stop.set()
    p._thread.join()
    p._producer = fake  # type: ignore[assignment]
    return p


def test_producer_sizing_from_the_topics_limits() -> None:
    p = DeadLetterProducer({"bootstrap.servers": "127.0.0.1:9"}, {"a.dlt": 1_114_124, "b.dlt": 65_536})
    try:
        assert p.message_max_bytes == 1_114_124
        assert p.limit("a.dlt") == 1_114_124 and p.limit("b.dlt") == 65_536 and p.limit("other") == 1_114_124
    finally:
        p.close(0)
    q = DeadLetterProducer({"bootstrap.servers": "127.0.0.1:9"})
    try:
        assert q.limit("x") == 1_000_000  # librdkafka's default
    finally:
        q.close(0)


@pytest.mark.parametrize("where", ["sync", "async"])
async def test_refused_by_size_is_sent_reduced(where: str) -> None:
    fake = FakeProducer(sync_limit=10_000) if where == "sync" else FakeProducer(async_limit=10_000)
    p = producer(fake, {"t.dlt": 2_000_000})  # the producer believes the topic takes 2 MB
    msg = await p.send_dead_letter("t.dlt", dl(), Rec(b"k", b"v" * 500_000, [("a", b"1")]))
    assert msg.reduced == ("value_too_large",)
    assert len(fake.sent) == 1 and fake.sent[0][1] == b"v" * REDUCED_VALUE_BYTES


async def test_refused_even_reduced_goes_minimal() -> None:
    fake = FakeProducer(async_limit=3_000)  # smaller than the reduced form (key + 1 KB value + 4 KB headers)
    p = producer(fake, {"t.dlt": 2_000_000})
    msg = await p.send_dead_letter("t.dlt", dl(), Rec(b"k" * 900, b"v" * 500_000, [("h", b"x" * 3000)]))
    assert msg.reduced == ("refused",)
    assert fake.sent[0][0] is None and fake.sent[0][1] == b""


async def test_over_the_known_limit_is_reduced_before_producing() -> None:
    fake = FakeProducer(sync_limit=65_536, async_limit=65_536)
    p = producer(fake, {"t.dlt": 65_536})
    msg = await p.send_dead_letter("t.dlt", dl(), Rec(b"k", b"v" * 100_000, None))
    assert msg.reduced == ("value_too_large",) and len(fake.sent) == 1


async def test_header_the_client_refuses_after_all() -> None:
    class Sneaky(bytes):
        pass  # passes our check; pretend the client refuses it

    fake = FakeProducer()
    orig = fake.produce
    calls = []

    def produce(topic: str, **kw: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise TypeError("client refuses")
        orig(topic, **kw)

    fake.produce = produce  # type: ignore[method-assign]
    p = producer(fake)
    msg = await p.send_dead_letter("t.dlt", dl(), Rec(b"k", b"v", [("a", Sneaky(b"1"))]))
    # refused once with nothing over its budget: the same message again (a batch-mate's fault)
    assert msg.reduced == () and len(fake.sent) == 1


@pytest.mark.parametrize(
    "code",
    [KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError._MSG_TIMED_OUT, KafkaError.UNKNOWN_TOPIC_OR_PART],
)
async def test_systemic_failures_stop(code: int) -> None:
    fake = FakeProducer(error=code)
    p = producer(fake)
    with pytest.raises(DeadLetterFailed, match="t.dlt"):
        await p.send_dead_letter("t.dlt", dl(), Rec(b"k", b"v", None))
    assert fake.sent == []


async def test_refused_three_times_is_systemic() -> None:
    fake = FakeProducer(async_limit=10)  # nothing fits: the topic is unusable
    p = producer(fake, {"t.dlt": 2_000_000})
    with pytest.raises(DeadLetterFailed, match="minimal form"):
        await p.send_dead_letter("t.dlt", dl(), Rec(b"k", b"v", None))


def test_no_raw_value_in_headers() -> None:
    secret = b"alice@example.com" * 100_000
    msg = dead_letter_message(dl(), b"k", secret, [("x", b"1")], limit=LIMIT)
    assert b"alice" not in b"".join(v for k, v in msg.headers)
