"""The generic event-activation API of the server-side events guide (`/work/shared/seeds/001_…`).

The guide fixes the event (``event``, ``timestamp`` ISO 8601, ``customer_id``, ``properties``), an
HTTPS POST with API credentials, and 401/400/429/5xx. It names no path, auth scheme, batch form or
idempotency header: those are options of :class:`EmulatorConfig` (``activation_*``), so the
emulator can be each API the guide allows: by default ``POST /activation/events``, ``Authorization:
Bearer <api_key>``, one event per request (a batch is 400), ``Idempotency-Key``.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Any

from aiohttp import web

from streams.dev.emulator.api import DestinationApi
from streams.dev.emulator.config import ACTIVATION_PATH, FaultConfig
from streams.dev.emulator.faults import Gateway
from streams.dev.emulator.state import DestinationStats, EmulatorState
from streams.dev.emulator.wire import json_response

__all__ = ["ACTIVATION_PATH", "ActivationApi"]

# a date and a time: the guide's example is "2024-01-15T14:32:00Z" (a date alone is no event time)
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _event_problem(ev: Any) -> tuple[str, str] | None:
    """(field, message) of the first violation of the guide's step 2 by one event, or None."""
    if not isinstance(ev, dict):
        return "", "event must be a JSON object"
    name = ev.get("event")
    if not isinstance(name, str) or not name.strip():
        return "event", "required: non-empty string (event name)"
    ts = ev.get("timestamp")
    if not isinstance(ts, str) or not _DATETIME.match(ts):
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


class ActivationApi(DestinationApi):
    """The guide's event contract behind the configured endpoint, auth, batch form and idempotency."""

    name = "activation"

    def __init__(self, state: EmulatorState, gateway: Gateway) -> None:
        super().__init__(state, gateway)
        cfg = self.cfg
        self.path = cfg.activation_path
        self._keys = frozenset(cfg.activation_api_keys)
        self._auth = cfg.activation_auth
        self._header = cfg.activation_auth_header
        self._batch_key = cfg.activation_batch_key
        self._idem_header = cfg.activation_idempotency_header
        self._expected = {
            "bearer": "'Authorization: Bearer <api_key>'",
            "basic": f"'Authorization: Basic base64({cfg.activation_username}:<api_key>)'",
            "header": f"'{self._header}: <api_key>'",
        }[self._auth]
        self._challenge = {"bearer": "Bearer", "basic": 'Basic realm="activation"', "header": "ApiKey"}[self._auth]

    def _error(self, st: DestinationStats, status: int, error: str, message: str, **extra: Any) -> web.Response:
        st.requests[status] += 1
        headers = {"WWW-Authenticate": self._challenge} if status == 401 else None
        return json_response(status, {"error": error, "message": message, **extra}, headers)

    def _authorized(self, request: web.Request) -> bool | None:
        """True for good credentials, False for wrong ones, None when there are none."""
        if self._auth == "header":
            key = request.headers.get(self._header)
            return None if key is None else key.strip() in self._keys
        auth = request.headers.get("Authorization")
        if auth is None:
            return None
        scheme, _, token = auth.strip().partition(" ")
        if self._auth == "bearer":
            return scheme.lower() == "bearer" and token.strip() in self._keys
        if scheme.lower() != "basic":
            return False
        try:
            user, sep, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return bool(sep) and user == self.cfg.activation_username and password in self._keys

    async def handle(self, request: web.Request, st: DestinationStats, prof: FaultConfig | None) -> web.StreamResponse:
        failed = self._forced_auth_failure(st, prof, 401, {"WWW-Authenticate": self._challenge}, "invalid API key (emulated)")
        if failed is not None:
            return failed
        ok = self._authorized(request)
        if not ok:
            message = "missing credentials" if ok is None else "invalid credentials"
            return self._error(st, 401, "unauthorized", f"{message}: expected {self._expected}")
        if self._batch_key is None:
            shape = "body must be one event object (this API takes one event per request)"
        else:
            shape = f'body must be {{"{self._batch_key}": [events]}}'
        doc = await self._json_object(request, st, self._error, "invalid_payload", shape)
        if isinstance(doc, web.StreamResponse):
            return doc
        idem = (request.headers.get(self._idem_header) or None) if self._idem_header else None
        batch_key = self._batch_key
        batch = batch_key is not None
        if batch_key is not None:
            events = doc.get(batch_key)
            if not isinstance(events, list) or not events or set(doc) != {batch_key}:
                return self._error(st, 400, "invalid_payload", f"{shape}, a non-empty array", field=batch_key)
        elif "event" not in doc and any(isinstance(v, list) for v in doc.values()):
            return self._error(st, 400, "invalid_payload", shape)
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
            # the identity that dedupes: a single event's idempotency key, else its event_id
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
