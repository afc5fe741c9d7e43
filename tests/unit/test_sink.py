"""The delivery sink (streams.delivery.sink) against a scripted HTTP transport: batching, retries,
bisecting a 400, auth failures, Retry-After, and recovery after an outage."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from streams.delivery.sink import Delivered, DestinationMisconfigured, Failed, Sink
from streams.destinations import make_destination
from streams.destinations.zeotap import ZeotapSettings

Handler = Callable[[list[dict[str, Any]]], httpx.Response]


def make_sink(handler: Handler, **settings: Any) -> tuple[Sink, list[list[dict[str, Any]]]]:
    """A Zeotap sink whose requests go to `handler` (it gets the batch's events); returns the sink
    and the list of batches it received."""
    seen: list[list[dict[str, Any]]] = []

    def transport(request: httpx.Request) -> httpx.Response:
        events = orjson.loads(request.content)["events"]
        seen.append(events)
        return handler(events)

    conf: dict[str, Any] = {
        "type": "zeotap",
        "url": "https://api.zeotap.test/s2s",
        "write_key": "k-unit",
        "region": "EU",
        "rate_limit_rps": None,
        "batch": {"max_events": 500, "linger_ms": 5},
        "retry": {"initial_backoff_s": 0.01, "max_backoff_s": 0.05, "unhealthy_after": 2},
    }
    conf.update(settings)
    api = make_destination("zeotap", ZeotapSettings(**conf))
    client = httpx.AsyncClient(transport=httpx.MockTransport(transport))
    return Sink(api, client), seen


def body(i: int, poison: bool = False) -> tuple[str, bytes]:
    eid = f"e{i}"
    return eid, orjson.dumps({"event": {"eventId": eid, "eventName": "poison" if poison else "ok"}})


def ok(events: list[dict[str, Any]]) -> httpx.Response:
    return httpx.Response(204)


async def test_batches_are_cut_by_count():
    sink, seen = make_sink(ok)
    results = await sink.send([body(i) for i in range(1200)])
    assert [len(b) for b in seen] == [500, 500, 200]
    assert all(isinstance(r, Delivered) and r.attempts == 1 for r in results)
    assert [e["event"]["eventId"] for b in seen for e in b] == [f"e{i}" for i in range(1200)]


async def test_batches_are_cut_by_bytes_envelope_included():
    bodies: list[int] = []

    def sized(events: list[dict[str, Any]]) -> httpx.Response:
        return httpx.Response(204)

    sink, seen = make_sink(sized, batch={"max_events": 500, "max_bytes": 2048, "linger_ms": 5})
    orig_post = sink.client.post

    async def post(url: Any, content: bytes, headers: Any) -> httpx.Response:
        bodies.append(len(content))
        return await orig_post(url, content=content, headers=headers)

    sink.client.post = post  # type: ignore[method-assign]
    events = [(f"e{i}", orjson.dumps({"event": {"eventId": f"e{i}", "pad": "x" * (100 + i % 50)}})) for i in range(300)]
    results = await sink.send(events)
    assert all(isinstance(r, Delivered) for r in results)
    assert sum(len(b) for b in seen) == 300 and len(seen) > 1
    assert max(bodies) <= 2048  # the whole request body, {"events":[...]} included
    assert min(bodies[:-1]) > 2048 - 200  # and batches are filled, not cut early


async def test_a_400_is_bisected_down_to_the_bad_events():
    def handler(events: list[dict[str, Any]]) -> httpx.Response:
        if any(e["event"]["eventName"] == "poison" for e in events):
            return httpx.Response(400, headers={"x-zeo-debug": "invalid event"})
        return httpx.Response(204)

    sink, seen = make_sink(handler)
    events = [body(i, poison=i in (17, 300)) for i in range(500)]
    results = await sink.send(events)
    failed = [i for i, r in enumerate(results) if isinstance(r, Failed)]
    assert failed == [17, 300]
    assert all(isinstance(results[i], Delivered) for i in range(500) if i not in failed)
    bad = results[17]
    assert isinstance(bad, Failed) and bad.status == 400 and "invalid event" in bad.debug
    delivered_ids = [e["event"]["eventId"] for b in seen if len(b) and handler(b).status_code == 204 for e in b]
    assert sorted(delivered_ids) == sorted(f"e{i}" for i in range(500) if i not in failed)


async def test_5xx_is_retried_until_delivered():
    answers = iter([503, 500, 204])
    sink, seen = make_sink(lambda ev: httpx.Response(next(answers)))
    (result,) = await sink.send([body(1)])
    assert isinstance(result, Delivered) and result.attempts == 3
    assert len(seen) == 3


async def test_401_raises_misconfigured_to_every_caller():
    sink, _ = make_sink(lambda ev: httpx.Response(401))
    with pytest.raises(DestinationMisconfigured, match="401"):
        await sink.send([body(i) for i in range(3)])


async def test_retry_after_holds_every_request():
    """A 429 with Retry-After holds the whole destination: the throttled batch and every other
    batch, made while the hold lasts, are sent only after it (each on its first attempt)."""
    sent: dict[str, list[float]] = {}
    throttled_at: list[float] = []

    def handler(events: list[dict[str, Any]]) -> httpx.Response:
        now = time.monotonic()
        eid = events[0]["event"]["eventId"]
        sent.setdefault(eid, []).append(now)
        if not throttled_at:
            throttled_at.append(now)
            return httpx.Response(429, headers={"Retry-After": "1"})
        return httpx.Response(204)

    sink, _ = make_sink(
        handler, retry={"initial_backoff_s": 0.01, "max_backoff_s": 0.02}, concurrency=4, adaptive_concurrency=False
    )
    sink.max_events = 1  # one request per event: independent batches
    first = sink.submit(*body(0))
    while not throttled_at:
        await asyncio.sleep(0.005)
    others = [sink.submit(*body(i)) for i in range(1, 5)]
    results = await asyncio.wait_for(asyncio.gather(first, *others), 10)
    assert all(isinstance(r, Delivered) for r in results)
    assert [r.attempts for r in results] == [2, 1, 1, 1, 1]
    assert sorted(sent) == [f"e{i}" for i in range(5)]
    # nothing at all reached the destination within the second it asked for
    after = [t for times in sent.values() for t in times if t > throttled_at[0]]
    assert len(after) == 5
    assert min(after) - throttled_at[0] >= 0.95, [round(t - throttled_at[0], 3) for t in after]


async def test_recovery_wakes_batches_sleeping_in_backoff(monkeypatch: pytest.MonkeyPatch):
    """After an outage, the first request that gets through releases every batch that is backing
    off, instead of each sleeping out a backoff of up to max_backoff_s."""
    # full jitter at its cap: a draw of a few ms would retry during the outage (a third attempt)
    monkeypatch.setattr("streams.delivery.sink.random.uniform", lambda low, high: high)
    state = {"down": True}

    def handler(events: list[dict[str, Any]]) -> httpx.Response:
        return httpx.Response(503 if state["down"] else 204)

    sink, _ = make_sink(
        handler,
        retry={"initial_backoff_s": 30.0, "max_backoff_s": 30.0, "unhealthy_after": 1},
        concurrency=4,
        adaptive_concurrency=False,  # all four fail at once, whatever the machine's speed
    )
    sink.max_events = 1  # one request per event: four independent batches
    futs = [sink.submit(*body(i)) for i in range(4)]
    await asyncio.sleep(0.2)  # all four failed once and now back off up to 30 s each
    assert sink.unhealthy
    state["down"] = False
    t0 = time.monotonic()
    # a new event gets through at once (its first attempt) and brings the destination back
    (fresh,) = await sink.send([body(99)])
    assert isinstance(fresh, Delivered)
    results = await asyncio.wait_for(asyncio.gather(*futs), 5)
    assert all(isinstance(r, Delivered) and r.attempts == 2 for r in results)
    assert time.monotonic() - t0 < 5  # not the 30 s backoff
    assert not sink.unhealthy


# ---------------------------------------------------------------------------- adaptive concurrency


async def test_fixed_concurrency_never_exceeds_its_limit():
    from streams.delivery.sink import ConcurrencyLimit

    lim = ConcurrencyLimit(3, adaptive=False)
    peak = 0

    async def one() -> None:
        nonlocal peak
        await lim.acquire()
        peak = max(peak, lim.in_use)
        await asyncio.sleep(0.01)
        lim.release(False)

    await asyncio.gather(*(one() for _ in range(20)))
    assert peak == 3 and lim.limit == 3 and lim.in_use == 0


async def hammer(lim: Any, n: int, rtt: float, pushed_back: Callable[[], bool] = lambda: False) -> int:
    """n requests from 64 concurrent callers, each taking `rtt`; returns the peak in flight."""
    peak = 0
    todo = iter(range(n))

    async def caller() -> None:
        nonlocal peak
        for _ in todo:
            await lim.acquire()
            peak = max(peak, lim.in_use)
            await asyncio.sleep(rtt)
            lim.release(pushed_back())

    await asyncio.gather(*(caller() for _ in range(64)))
    return peak


async def test_adaptive_limit_halves_on_push_back_and_grows_back_by_one_per_round_trip():
    from streams.delivery.sink import ConcurrencyLimit

    lim = ConcurrencyLimit(8, adaptive=True)
    assert lim.limit == 8  # full concurrency while the destination copes
    await lim.acquire()
    lim.release(True)  # 429 / 5xx / timeout
    assert lim.limit == 4
    await lim.acquire()
    lim.release(True)
    assert lim.limit == 2
    await hammer(lim, 5, 0.005)
    # 2 -> 3 after two saturated responses (one round trip at 2), then +1/3 per response
    assert lim.limit == 3
    await hammer(lim, 200, 0.002)
    assert lim.limit == 8  # back to, and capped at, the configured maximum
    assert lim.in_use == 0


async def test_adaptive_limit_does_not_grow_when_the_limit_is_not_used():
    from streams.delivery.sink import ConcurrencyLimit

    lim = ConcurrencyLimit(8, adaptive=True)
    for _ in range(3):
        await lim.acquire()
        lim.release(True)
    assert lim.limit == 1
    for _ in range(50):  # one request at a time: fully uses a limit of 1, never one of 2
        await lim.acquire()
        lim.release(False)
    assert lim.limit == 2


async def test_fixed_limit_ignores_push_back():
    from streams.delivery.sink import ConcurrencyLimit

    lim = ConcurrencyLimit(6, adaptive=False)
    await lim.acquire()
    lim.release(True)
    assert lim.limit == 6


async def test_sink_settles_near_what_a_throttling_destination_accepts():
    """A destination that answers 503 whenever more than 4 requests are in flight: the adaptive
    sink (maximum 32) keeps its limit around that level instead of retrying at 32, and every
    event is delivered."""
    active = {"n": 0, "throttled": 0}

    async def handler(request: httpx.Request) -> httpx.Response:
        active["n"] += 1
        try:
            if active["n"] > 4:
                active["throttled"] += 1
                return httpx.Response(503)
            await asyncio.sleep(0.005)
            return httpx.Response(204)
        finally:
            active["n"] -= 1

    conf: dict[str, Any] = {
        "type": "zeotap",
        "url": "https://api.zeotap.test/s2s",
        "write_key": "k-unit",
        "region": "EU",
        "concurrency": 32,
        "batch": {"max_events": 1, "linger_ms": 0},
        "retry": {"initial_backoff_s": 0.001, "max_backoff_s": 0.01, "unhealthy_after": 1000},
    }
    api = make_destination("zeotap", ZeotapSettings(**conf))
    sink = Sink(api, httpx.AsyncClient(transport=httpx.MockTransport(handler)))
    results = await sink.send([body(i) for i in range(200)])
    assert all(isinstance(r, Delivered) for r in results)
    assert sink._slots.limit <= 8
    adaptive_throttled = active["throttled"]

    fixed = Sink(
        make_destination("zeotap", ZeotapSettings(**{**conf, "adaptive_concurrency": False})),
        httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )
    active["throttled"] = 0
    await fixed.send([body(i) for i in range(200)])
    # a fixed 32 keeps sending into the throttle: several times the adaptive sink's refusals
    assert active["throttled"] > 3 * max(adaptive_throttled, 10)


async def test_responses_are_freed_without_the_garbage_collector():
    """httpx 0.28 keeps each response (and the request body it references) in a reference cycle;
    the sink breaks it, so a request body is freed as soon as its answer is read."""
    import gc

    sink, seen = make_sink(ok)
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        await sink.send([body(i) for i in range(1200)])
        gc.collect()
        leftovers = [o for o in gc.garbage if isinstance(o, httpx.Response | httpx.Request)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert len(seen) == 3
    assert leftovers == []


@pytest.mark.parametrize(
    ("settings", "rps"),
    [
        ({}, None),
        ({"rate_limit_rps": 50}, 50),
        # Zeotap's 200 QPS is the source's: 6 workers (KEDA's maxReplicaCount) share it
        ({"rate_budget_rps": 200, "rate_budget_workers": 6}, 200 / 6),
        ({"rate_budget_rps": 200, "rate_budget_workers": 4, "rate_limit_rps": 20}, 20),
        ({"rate_budget_rps": 200}, 200),
    ],
)
def test_rate_budget_is_shared_by_the_workers(settings: dict[str, Any], rps: float | None) -> None:
    sink, _ = make_sink(lambda req: ok([]), **settings)
    if rps is None:
        assert sink._rate.rps is None
    else:
        assert sink._rate.rps == pytest.approx(rps)


async def test_submit_many_resolves_one_future_with_every_result_in_order() -> None:
    """A group's future (what the worker awaits per consumed batch) resolves once, with each event's
    own result in submission order: delivered, refused alone after the bisect, across several requests."""

    def handler(events: list[dict[str, Any]]) -> httpx.Response:
        if any(e["event"]["eventName"] == "poison" for e in events):
            return httpx.Response(400, headers={"x-zeo-debug": "invalid event"})
        return httpx.Response(204)

    sink, seen = make_sink(handler, batch={"max_events": 100, "linger_ms": 5})
    group = sink.submit_many([(*body(i, poison=i in (3, 250)), None) for i in range(300)])
    other = sink.submit_many([(*body(1000 + i), None) for i in range(5)])
    results = await asyncio.wait_for(group, 5)
    assert len(results) == 300
    assert [i for i, r in enumerate(results) if isinstance(r, Failed)] == [3, 250]
    assert all(isinstance(r, Delivered) for i, r in enumerate(results) if i not in (3, 250))
    assert [type(r).__name__ for r in await asyncio.wait_for(other, 5)] == ["Delivered"] * 5
    assert len({e["event"]["eventId"] for b in seen for e in b}) == 305
    await sink.close()


async def test_submit_many_fails_the_group_when_the_destination_is_misconfigured() -> None:
    sink, _ = make_sink(lambda ev: httpx.Response(401))
    group = sink.submit_many([(*body(i), None) for i in range(3)])
    with pytest.raises(DestinationMisconfigured, match="401"):
        await asyncio.wait_for(group, 5)
    await sink.close()
