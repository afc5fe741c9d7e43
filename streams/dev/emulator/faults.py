"""Injected faults: what stands in front of each emulated API, as a real gateway would.

The knobs are :class:`~streams.dev.emulator.config.FaultConfig`; :class:`Gateway` applies them to
every request (outages, rejections, drops, throttling, errors, slow answers, poison event ids).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from streams.dev.emulator.config import GLOBAL, FaultConfig, check_destination
from streams.dev.emulator.state import DROPPED, DestinationStats, EmulatorState
from streams.dev.emulator.wire import header_safe, json_response

ApiHandler = Callable[[web.Request, DestinationStats, FaultConfig | None], Awaitable[web.StreamResponse]]
"""One API's request handler: the request, its destination's stats and the fault profile in force (or None)."""


def apply_fault_request(state: EmulatorState, data: Mapping[str, Any]) -> None:
    """Apply a ``POST /_emulator/faults`` body.

    ``destination`` (a destination name, ``"*"``/``"all"``/absent for all), ``merge`` (update only
    the given knobs instead of replacing the profile), ``seed`` (re-seed the RNG), plus
    :class:`FaultConfig` knobs. A profile without active knobs removes the faults of that target.
    """
    knobs = dict(data)
    dest = knobs.pop("destination", None) or GLOBAL
    if dest == "all":
        dest = GLOBAL
    check_destination(dest, allow_global=True)
    merge = bool(knobs.pop("merge", False))
    if "seed" in knobs:
        seed = knobs.pop("seed")
        if seed is not None and not isinstance(seed, int):
            raise ValueError("seed must be an integer or null")
        state.reseed(seed)
    if merge and dest in state.faults:
        base = state.faults[dest].to_dict()
        base.update(knobs)
        knobs = base
    state.set_faults(dest, FaultConfig.from_dict(knobs))


class Gateway:
    """Wraps each API handler with the faults set for its destination (or for all, ``"*"``)."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def profile(self, dest: str) -> FaultConfig | None:
        faults = self.state.faults
        if not faults:
            return None
        return faults.get(dest) or faults.get(GLOBAL)

    def wrap(self, dest: str, impl: ApiHandler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        """Wrap a destination handler with the gateway-level faults and slow answers."""

        async def handle(request: web.Request) -> web.StreamResponse:
            st = self.state.dest[dest]
            prof = self.profile(dest)
            if prof is None:
                return await impl(request, st, None)
            fault = self._infra_fault(request, dest, st, prof)
            if fault is not None:
                return fault
            slow = bool(prof.slow_rate) and self.state.rng.random() < prof.slow_rate
            resp = await impl(request, st, prof)
            if slow:
                # the request is processed (and recorded) first: a client that times out and
                # retries produces a duplicate, as with a real slow server
                st.faults["slow"] += 1
                await asyncio.sleep(prof.slow_seconds)
            return resp

        return handle

    def _infra_fault(self, request: web.Request, dest: str, st: DestinationStats, prof: FaultConfig) -> web.StreamResponse | None:
        """Faults that happen before the API looks at the request (gateway-level)."""
        state = self.state
        key = dest if dest in state.faults else GLOBAL
        until = state.outage_until.get(key)
        if until is not None:
            if time.monotonic() < until:
                st.faults["outage"] += 1
                if prof.outage_mode == "drop":
                    return self._drop(request, st)
                return self.response(dest, st, prof.outage_status, "outage")
            del state.outage_until[key]
        if prof.reject_status:
            st.faults["reject"] += 1
            return self.response(dest, st, prof.reject_status, "reject", detail=prof.reject_debug)
        if prof.drop_rate or prof.throttle_rate or prof.error_rate:
            draw = state.rng.random()
            if draw < prof.drop_rate:
                st.faults["drop"] += 1
                return self._drop(request, st)
            draw -= prof.drop_rate
            if draw < prof.throttle_rate:
                st.faults["throttle"] += 1
                return self.response(dest, st, 429, "throttle", {"Retry-After": str(prof.retry_after)})
            draw -= prof.throttle_rate
            if draw < prof.error_rate:
                st.faults["error"] += 1
                return self.response(dest, st, prof.error_status, "error")
        return None

    def _drop(self, request: web.Request, st: DestinationStats) -> web.StreamResponse:
        st.requests[DROPPED] += 1
        transport = request.transport
        if transport is not None:
            transport.close()
        # aiohttp swallows the ConnectionError of writing to the closed transport.
        return web.Response(status=204)

    def response(
        self,
        dest: str,
        st: DestinationStats,
        status: int,
        kind: str,
        headers: dict[str, str] | None = None,
        detail: str | None = None,
    ) -> web.Response:
        """A refused request in the destination's own error shape (Zeotap: no body, ``x-zeo-debug``)."""
        st.requests[status] += 1
        hdrs = {"x-emulator-fault": kind}
        if headers:
            hdrs.update(headers)
        message = detail or f"emulated fault: {kind}"
        if dest == "zeotap":
            hdrs["x-zeo-debug"] = header_safe(message)
            return web.Response(status=status, headers=hdrs)
        return json_response(status, {"error": kind, "message": message}, hdrs)

    def poisoned(
        self, dest: str, st: DestinationStats, prof: FaultConfig | None, ids: Sequence[str | None]
    ) -> web.StreamResponse | None:
        """A poison event id makes its whole request a 400 (each API's own error shape); a
        server-poison id makes it fail with a 5xx, as a record the server chokes on would."""
        if prof is None or not (prof.poison_ids or prof.server_poison_ids):
            return None
        for eid in ids:
            if eid is None:
                continue
            if eid in prof.poison_ids:
                st.faults["poison"] += 1
                return self.response(dest, st, 400, "poison", detail=f"poison event {eid}")
            if eid in prof.server_poison_ids:
                st.faults["server_poison"] += 1
                return self.response(dest, st, prof.server_poison_status, "server_poison", detail="internal error")
        return None
