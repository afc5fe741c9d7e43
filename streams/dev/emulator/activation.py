"""The generic event-activation API: ``POST /activation/events``, Bearer auth, one event or a batch."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from streams.dev.emulator.api import DestinationApi
from streams.dev.emulator.config import FaultConfig
from streams.dev.emulator.faults import Gateway
from streams.dev.emulator.state import DestinationStats, EmulatorState
from streams.dev.emulator.wire import json_response

ACTIVATION_PATH = "/activation/events"


def _event_problem(ev: Any) -> tuple[str, str] | None:
    """(field, message) of the first contract violation of one activation event, or None."""
    if not isinstance(ev, dict):
        return "", "event must be a JSON object"
    name = ev.get("event")
    if not isinstance(name, str) or not name.strip():
        return "event", "required: non-empty string (event name)"
    ts = ev.get("timestamp")
    if not isinstance(ts, str) or len(ts) <= 10:
        return "timestamp", "required: ISO 8601 date-time string"
    try:
        datetime.fromisoformat(ts)
    except ValueError:
        return "timestamp", f"not an ISO 8601 date-time: {ts[:64]!r}"
    cid = ev.get("customer_id")
    if not isinstance(cid, str) or not cid.strip():
        return "customer_id", "required: non-empty string"
    if not isinstance(ev.get("properties"), dict):
        return "properties", "required: JSON object"
    eid = ev.get("event_id")
    if eid is not None and (not isinstance(eid, str) or not eid):
        return "event_id", "must be a non-empty string when present"
    return None


# --------------------------------------------------------------------------------------------
# the destination APIs


class ActivationApi(DestinationApi):
    """Bearer API keys, the event contract, and ``Idempotency-Key`` as the event id of a single event."""

    name = "activation"

    def __init__(self, state: EmulatorState, gateway: Gateway) -> None:
        super().__init__(state, gateway)
        self._bearers = frozenset(f"Bearer {k}" for k in self.cfg.activation_api_keys)
        self._api_keys = frozenset(self.cfg.activation_api_keys)

    def _error(self, st: DestinationStats, status: int, error: str, message: str, **extra: Any) -> web.Response:
        st.requests[status] += 1
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return json_response(status, {"error": error, "message": message, **extra}, headers)

    async def handle(self, request: web.Request, st: DestinationStats, prof: FaultConfig | None) -> web.StreamResponse:
        failed = self._forced_auth_failure(st, prof, 401, {"WWW-Authenticate": "Bearer"}, "invalid API key (emulated)")
        if failed is not None:
            return failed
        auth = request.headers.get("Authorization")
        if auth not in self._bearers:
            scheme, _, token = (auth or "").strip().partition(" ")
            if not (scheme.lower() == "bearer" and token.strip() in self._api_keys):
                message = "missing credentials" if not auth else "invalid credentials"
                return self._error(st, 401, "unauthorized", f"{message}: expected 'Authorization: Bearer <api_key>'")
        shape = 'body must be an event object or {"events": [...]}'
        doc = await self._json_object(request, st, self._error, "invalid_payload", shape)
        if isinstance(doc, web.StreamResponse):
            return doc
        idem = request.headers.get("Idempotency-Key") or None
        batch = "events" in doc and "event" not in doc
        if batch:
            events = doc["events"]
            if not isinstance(events, list) or not events:
                return self._error(st, 400, "invalid_payload", "'events' must be a non-empty array", field="events")
        else:
            events = [doc]
        ids: list[str | None] = []
        for index, ev in enumerate(events):
            problem = _event_problem(ev)
            if problem is not None:
                fname, message = problem
                extra: dict[str, Any] = {"field": fname}
                if batch:
                    extra["index"] = index
                return self._error(st, 400, "invalid_event", f"{fname or 'event'}: {message}", **extra)
            eid = ev.get("event_id")
            if not batch and idem is not None:
                eid = idem
            elif eid is None and idem is not None:
                eid = f"{idem}#{index}"
            ids.append(eid)
        poisoned = self.gateway.poisoned("activation", st, prof, ids)
        if poisoned is not None:
            return poisoned
        self.state.request_seq += 1
        context = {"batch": batch, "idempotency_key": idem, "request": self.state.request_seq}
        dups = self.state.record(st, events, ids, context)
        st.requests[202] += 1
        headers = {"Idempotent-Replayed": "true"} if (not batch and dups) else None
        return json_response(202, {"status": "accepted", "events": len(events), "duplicates": dups}, headers)
