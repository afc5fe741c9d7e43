"""What the three emulated APIs share: the state they record into and the gateway in front of them."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from streams.dev.emulator.config import FaultConfig
from streams.dev.emulator.faults import Gateway
from streams.dev.emulator.state import DestinationStats, EmulatorState
from streams.dev.emulator.wire import ErrorResponse, json_body


class DestinationApi:
    """One emulated destination API; :meth:`handle` runs behind ``gateway.wrap``."""

    name: str  # the destination, as in DESTINATIONS

    def __init__(self, state: EmulatorState, gateway: Gateway) -> None:
        self.state = state
        self.cfg = state.config
        self.gateway = gateway
        self.decompresses = True  # set False by make_runner (server-side auto-decompression off)

    async def handle(self, request: web.Request, st: DestinationStats, prof: FaultConfig | None) -> web.StreamResponse:
        raise NotImplementedError

    def _forced_auth_failure(
        self,
        st: DestinationStats,
        prof: FaultConfig | None,
        status: int,
        headers: dict[str, str] | None = None,
        detail: str | None = None,
    ) -> web.Response | None:
        """The auth failure a fault profile forces (``auth_fail``), in this API's shape, or None."""
        if prof is None or not prof.auth_fail:
            return None
        st.faults["auth_fail"] += 1
        return self.gateway.response(self.name, st, status, "auth_fail", headers, detail)

    async def _json_object(
        self, request: web.Request, st: DestinationStats, error: ErrorResponse, code: str, message: str
    ) -> dict[str, Any] | web.StreamResponse:
        """The request's JSON object, or the error response (``max_body_bytes``, gzip, JSON; ``code`` and
        ``message`` when the document is not an object)."""
        gzip_ok = self.name in self.cfg.gzip_destinations  # only where a document (or an option) allows it
        doc = await json_body(request, st, error, self.cfg.max_body_bytes, self.decompresses, gzip_ok)
        if isinstance(doc, web.StreamResponse | dict):
            return doc
        return error(st, 400, code, message)
