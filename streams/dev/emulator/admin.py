"""The admin API under ``/_emulator/``: stats, received events, receipts, faults, reset, health."""

from __future__ import annotations

import orjson
from aiohttp import web

from streams.dev.emulator.faults import apply_fault_request
from streams.dev.emulator.registry import REGISTRY_KEY
from streams.dev.emulator.state import EmulatorState
from streams.dev.emulator.wire import json_response

ADMIN_PREFIX = "/_emulator"


class Admin:
    """Handlers of the admin API; :meth:`add_routes` mounts them under :data:`ADMIN_PREFIX`."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get(f"{ADMIN_PREFIX}/stats", self.stats)
        router.add_get(f"{ADMIN_PREFIX}/events", self.events)
        router.add_get(f"{ADMIN_PREFIX}/receipts", self.receipts)
        router.add_get(f"{ADMIN_PREFIX}/faults", self.get_faults)
        router.add_post(f"{ADMIN_PREFIX}/faults", self.set_faults)
        router.add_delete(f"{ADMIN_PREFIX}/faults", self.clear_faults)
        router.add_post(f"{ADMIN_PREFIX}/reset", self.reset)
        router.add_get(f"{ADMIN_PREFIX}/health", self.health)

    async def stats(self, request: web.Request) -> web.Response:
        return json_response(200, self.state.stats())

    async def events(self, request: web.Request) -> web.Response:
        dest = request.query.get("destination") or None
        try:
            limit = int(request.query["limit"]) if "limit" in request.query else None
            events = self.state.events(dest, limit)
        except ValueError as exc:
            return json_response(400, {"error": str(exc)})
        return json_response(200, {"count": len(events), "events": events})

    async def receipts(self, request: web.Request) -> web.Response:
        dest = request.query.get("destination") or None
        try:
            return json_response(200, self.state.receipts(dest))
        except ValueError as exc:
            return json_response(400, {"error": str(exc)})

    async def get_faults(self, request: web.Request) -> web.Response:
        return json_response(200, self.state.faults_view())

    async def set_faults(self, request: web.Request) -> web.Response:
        try:
            data = orjson.loads(await request.read() or b"{}")
            if not isinstance(data, dict):
                raise ValueError("body must be a JSON object")
            apply_fault_request(self.state, data)
        except (ValueError, orjson.JSONDecodeError) as exc:
            return json_response(400, {"error": str(exc)})
        return json_response(200, self.state.faults_view())

    async def clear_faults(self, request: web.Request) -> web.Response:
        self.state.clear_faults()
        return json_response(200, {})

    async def reset(self, request: web.Request) -> web.Response:
        try:
            data = orjson.loads(await request.read() or b"{}")
        except orjson.JSONDecodeError as exc:
            return json_response(400, {"error": str(exc)})
        options = data if isinstance(data, dict) else {}
        self.state.reset_records()
        if options.get("faults"):
            self.state.clear_faults()
        registry = request.app.get(REGISTRY_KEY)
        if options.get("registry") and registry is not None:
            registry.clear()
        return json_response(200, {"reset": True})

    async def health(self, request: web.Request) -> web.Response:
        return json_response(200, {"ok": True})
