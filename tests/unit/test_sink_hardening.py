"""The sink under systemic refusals, records the server chokes on, absurd Retry-After values and
rates below one request per second: it keeps moving, never turns the stream into dead letters for
a fault that is not the records', and every wait is bounded."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from streams.delivery.breaker import Breaker
from streams.delivery.sink import Delivered, Failed, RateLimiter
from streams.destinations.base import Verdict, retry_after_seconds
from tests.unit.test_sink import body, make_sink

FAST = {
    "retry": {
        "initial_backoff_s": 0.01,
        "max_backoff_s": 0.02,
        "unhealthy_after": 2,
        "isolate_after": 2,
        "poison_after": 4,
        "max_retry_after_s": 0.3,
    },
    "breaker": {"refusals": 5, "probe_interval_s": 0.05, "max_probe_interval_s": 0.2},
}


async def test_a_destination_that_refuses_everything_holds_instead_of_dead_lettering() -> None:
    """Every request 400 with the same text (a bad Authorization header, as Zeotap's document
    lists it): the breaker opens after a few single-event refusals, nothing is dead-lettered, and
    once the destination is fixed every event is delivered."""
    state = {"refusing": True}

    def handler(events: list[dict[str, Any]]) -> httpx.Response:
        if state["refusing"]:
            return httpx.Response(400, headers={"x-zeo-debug": "Authorization header value is malformed"})
        return httpx.Response(204)

    sink, seen = make_sink(handler, **FAST)
    task = asyncio.ensure_future(sink.send([body(i) for i in range(64)]))
    await asyncio.sleep(0.6)
    assert not task.done(), "refused events must be held, not settled as dead letters"
    assert sink.breaker.open
    assert "Authorization" in sink.breaker.reason
    refused_requests = len(seen)
    # bisecting 64 events to single ones costs 127 requests; the breaker stops well before that
    assert refused_requests < 40
    state["refusing"] = False
    results = await asyncio.wait_for(task, 5)
    assert all(isinstance(r, Delivered) for r in results), results
    assert not sink.breaker.open
    await sink.close()


@pytest.mark.parametrize("status", [301, 411, 415])
async def test_statuses_that_are_never_about_one_record_open_the_breaker_at_once(status: int) -> None:
    state = {"status": status}

    def handler(events: list[dict[str, Any]]) -> httpx.Response:
        return httpx.Response(state["status"])

    sink, seen = make_sink(handler, **FAST)
    task = asyncio.ensure_future(sink.send([body(i) for i in range(16)]))
    await asyncio.sleep(0.3)
    assert not task.done()
    assert sink.breaker.open
    assert all(len(b) == 16 for b in seen), "a systemic refusal is not bisected"
    state["status"] = 204
    results = await asyncio.wait_for(task, 5)
    assert all(isinstance(r, Delivered) for r in results)
    await sink.close()


async def test_genuinely_bad_records_are_still_isolated_and_dead_lettered() -> None:
    """Ten adjacent bad records (more than `refusals`): the destination accepts the others, so
    each bad one ends Failed with its own reason and the good ones are delivered."""
    bad = {f"e{i}" for i in range(20, 30)}

    def handler(events: list[dict[str, Any]]) -> httpx.Response:
        for i, ev in enumerate(events):
            if ev["event"]["eventId"] in bad:
                return httpx.Response(400, headers={"x-zeo-debug": f"events[{i}]: user has no identifier"})
        return httpx.Response(204)

    sink, _ = make_sink(handler, **FAST)
    results = await asyncio.wait_for(sink.send([body(i) for i in range(64)]), 10)
    failed = {f"e{i}" for i, r in enumerate(results) if isinstance(r, Failed)}
    assert failed == bad
    assert all(r.reason == "bad_request" and "no identifier" in r.debug for r in results if isinstance(r, Failed))
    await sink.close()


async def test_zeotap_record_text_naming_a_region_field_is_a_bad_record_not_a_stop() -> None:
    def handler(events: list[dict[str, Any]]) -> httpx.Response:
        for i, ev in enumerate(events):
            if ev["event"]["eventId"] == "e3":
                return httpx.Response(400, headers={"x-zeo-debug": f"events[{i}]: user.region must be a string"})
        return httpx.Response(204)

    sink, _ = make_sink(handler, **FAST)
    results = await asyncio.wait_for(sink.send([body(i) for i in range(8)]), 5)
    assert [i for i, r in enumerate(results) if isinstance(r, Failed)] == [3]
    await sink.close()


async def test_a_lone_bad_record_in_a_quiet_stream_is_dead_lettered_after_the_probe_interval() -> None:
    def handler(events: list[dict[str, Any]]) -> httpx.Response:
        return httpx.Response(400, headers={"x-zeo-debug": "events[0]: user has no identifier"})

    sink, _ = make_sink(handler, **FAST)
    t0 = time.monotonic()
    (result,) = await asyncio.wait_for(sink.send([body(1)]), 5)
    assert isinstance(result, Failed)
    assert time.monotonic() - t0 < 2
    await sink.close()


async def test_a_record_the_server_chokes_on_is_isolated_and_dead_lettered() -> None:
    """5xx whenever one event is in the request, while other requests pass: the batch is split
    after `isolate_after` attempts and the single event is dead-lettered after `poison_after`."""

    def handler(events: list[dict[str, Any]]) -> httpx.Response:
        if any(ev["event"]["eventId"] == "e5" for ev in events):
            return httpx.Response(500)
        return httpx.Response(204)

    sink, _ = make_sink(handler, batch={"max_events": 500, "linger_ms": 0}, **FAST)
    poisoned = asyncio.ensure_future(sink.send([body(i) for i in range(32)]))

    async def other_traffic() -> None:  # the destination as a whole is fine: other requests pass
        i = 1000
        while not poisoned.done():
            assert isinstance((await sink.send([body(i)]))[0], Delivered)
            i += 1
            await asyncio.sleep(0.01)

    traffic = asyncio.ensure_future(other_traffic())
    results = await asyncio.wait_for(poisoned, 10)
    await traffic
    failed = [(i, r) for i, r in enumerate(results) if isinstance(r, Failed)]
    assert [i for i, _ in failed] == [5]
    assert failed[0][1].reason == "server_error"
    assert failed[0][1].status == 500
    await sink.close()


async def test_a_destination_failing_as_a_whole_never_dead_letters() -> None:
    state = {"down": True}

    def handler(events: list[dict[str, Any]]) -> httpx.Response:
        return httpx.Response(503 if state["down"] else 204)

    sink, _ = make_sink(handler, **FAST)
    task = asyncio.ensure_future(sink.send([body(i) for i in range(32)]))
    await asyncio.sleep(0.5)
    assert not task.done()
    state["down"] = False
    results = await asyncio.wait_for(task, 5)
    assert all(isinstance(r, Delivered) for r in results)
    await sink.close()


@pytest.mark.parametrize("value", ["99999999", "Fri, 31 Dec 9999 23:59:59 GMT"])
async def test_retry_after_is_capped(value: str) -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": value})])

    def handler(events: list[dict[str, Any]]) -> httpx.Response:
        return next(answers, httpx.Response(204))

    sink, _ = make_sink(handler, **FAST)
    t0 = time.monotonic()
    (result,) = await asyncio.wait_for(sink.send([body(1)]), 5)
    assert isinstance(result, Delivered)
    assert time.monotonic() - t0 < 3  # capped at 0.3 s, not 99999999 s
    await sink.close()


@pytest.mark.parametrize(
    "value",
    ["Sun, 06 Nov 2094 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 2094"],
)
def test_retry_after_reads_all_three_http_date_forms(value: str) -> None:
    seconds = retry_after_seconds({"retry-after": value})
    assert seconds is not None
    assert seconds == 0.0 if "-94" in value else seconds > 365 * 86400


async def test_rates_below_one_request_per_second_still_send() -> None:
    limiter = RateLimiter(0.5)
    t0 = time.monotonic()
    await asyncio.wait_for(limiter.acquire(), 1)  # the first one at once
    assert time.monotonic() - t0 < 0.1
    limiter = RateLimiter(5)
    for _ in range(5):
        await limiter.acquire()
    t0 = time.monotonic()
    await asyncio.wait_for(limiter.acquire(), 2)  # the sixth waits about 1/5 s
    assert 0.1 < time.monotonic() - t0 < 1.0


def test_zeotap_systemic_text_without_an_event_index_is_a_refusal() -> None:
    from tests.unit.test_destinations import _zeotap

    api = _zeotap()
    assert api.classify(400, {"x-zeo-debug": "invalid region 'XX'"}).verdict is Verdict.REFUSED
    assert api.classify(400, {"x-zeo-debug": "Authorization header malformed"}).verdict is Verdict.REFUSED
    assert api.classify(400, {"x-zeo-debug": "events[2]: region must be a string"}).verdict is Verdict.BAD_REQUEST
    assert api.classify(400, {"x-zeo-debug": "user has no identifier"}).verdict is Verdict.BAD_REQUEST


def test_breaker_defaults_are_safe() -> None:
    b = Breaker("d", refusals=5, probe_interval_s=5, max_probe_interval_s=60)
    assert not b.open


class _Lease:
    def __init__(self) -> None:
        self.revoked = False


async def test_events_of_a_revoked_partition_are_not_sent() -> None:
    """A member that lost a partition does not send that partition's events still waiting in its
    sink (they belong to the new owner now), neither before the first attempt nor between retries."""
    state = {"down": True}

    def handler(events: list[dict[str, Any]]) -> httpx.Response:
        return httpx.Response(503 if state["down"] else 204)

    sink, seen = make_sink(handler, **FAST)
    kept, lost = _Lease(), _Lease()
    futs = [sink.submit(*body(i), lease=kept if i % 2 else lost) for i in range(10)]
    await asyncio.sleep(0.2)  # retrying: the destination is down
    lost.revoked = True
    sent_before = len(seen)
    state["down"] = False
    results = await asyncio.wait_for(asyncio.gather(*futs), 5)
    assert [type(r).__name__ for r in results] == ["Abandoned", "Delivered"] * 5
    after = [ev["event"]["eventId"] for b in seen[sent_before:] for ev in b]
    assert after and all(int(eid[1:]) % 2 for eid in after)  # only the owned (odd) events were sent
    revoked_before_send = _Lease()
    revoked_before_send.revoked = True
    n = len(seen)
    (r,) = await asyncio.gather(sink.submit(*body(99), lease=revoked_before_send))
    assert type(r).__name__ == "Abandoned" and len(seen) == n
    await sink.close()


@pytest.mark.parametrize("poison", [{"e5"}, {"e5", "e6"}, {"e0", "e31"}])
async def test_records_the_server_chokes_on_are_isolated_in_a_quiet_stream(poison: set[str]) -> None:
    """Nothing else is being sent (the end of a topic, a quiet hour): the batch is split anyway
    once it keeps failing, parts of it are delivered, and that is the evidence that dead-letters
    the records the server chokes on - adjacent ones too."""

    def handler(events: list[dict[str, Any]]) -> httpx.Response:
        if any(ev["event"]["eventId"] in poison for ev in events):
            return httpx.Response(500)
        return httpx.Response(204)

    sink, _ = make_sink(handler, batch={"max_events": 500, "linger_ms": 0}, **FAST)
    results = await asyncio.wait_for(sink.send([body(i) for i in range(32)]), 10)
    failed = {f"e{i}" for i, r in enumerate(results) if isinstance(r, Failed)}
    assert failed == poison
    assert all(r.reason == "server_error" for r in results if isinstance(r, Failed))
    await sink.close()


async def test_a_long_outage_of_a_quiet_stream_dead_letters_nothing() -> None:
    """One batch alone during an outage far longer than poison_after attempts: it may be split
    (nothing tells an outage from a poison record yet), but with nothing of it ever delivered no
    event is dead-lettered, and all of it is delivered once the destination is back."""
    state = {"down": True}
    attempts = {"n": 0}

    def handler(events: list[dict[str, Any]]) -> httpx.Response:
        attempts["n"] += 1
        return httpx.Response(503 if state["down"] else 204)

    sink, _ = make_sink(handler, batch={"max_events": 500, "linger_ms": 0}, **FAST)
    task = asyncio.ensure_future(sink.send([body(i) for i in range(16)]))
    deadline = time.monotonic() + 15
    while attempts["n"] < 200 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert attempts["n"] >= 200 and not task.done()
    state["down"] = False
    results = await asyncio.wait_for(task, 5)
    assert all(isinstance(r, Delivered) for r in results)
    await sink.close()


async def test_throttling_is_never_taken_for_a_record_the_server_chokes_on() -> None:
    """429 on every request carrying one event while others pass (a per-key rate limit, say):
    backed off and retried, never split for it nor dead-lettered as server_error."""
    state = {"throttle": True}

    def handler(events: list[dict[str, Any]]) -> httpx.Response:
        if state["throttle"] and any(ev["event"]["eventId"] == "e5" for ev in events):
            return httpx.Response(429)
        return httpx.Response(204)

    sink, seen = make_sink(handler, batch={"max_events": 500, "linger_ms": 0}, **FAST)
    task = asyncio.ensure_future(sink.send([body(i) for i in range(32)]))
    for i in range(30):  # other traffic passes meanwhile
        assert isinstance((await sink.send([body(1000 + i)]))[0], Delivered)
        await asyncio.sleep(0.01)
    assert not task.done()
    assert all(len(b) in (1, 32) for b in seen), "a throttled batch is not split"
    state["throttle"] = False
    results = await asyncio.wait_for(task, 5)
    assert all(isinstance(r, Delivered) for r in results)
    await sink.close()
