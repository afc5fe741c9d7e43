"""Client of the admin API, and the URLs of the emulated endpoints."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from streams.dev.emulator.admin import ADMIN_PREFIX
from streams.dev.emulator.config import ACTIVATION_PATH, GLOBAL, REGISTRY_PREFIX
from streams.dev.emulator.zeotap import ZEOTAP_PATH


class EmulatorUrls:
    """The URLs of one emulator's endpoints, from its ``base_url``."""

    base_url: str
    registry_prefix: str = REGISTRY_PREFIX
    activation_path: str = ACTIVATION_PATH  # EmulatorConfig.activation_path

    @property
    def registry_url(self) -> str:
        """Pass as ``SchemaRegistryClient({"url": ...})``: the client keeps the path prefix."""
        return self.base_url + self.registry_prefix

    def zeotap_url(self, region: str = "EU", event_type: str = "s2s") -> str:
        return f"{self.base_url}{ZEOTAP_PATH}?region={region}&eventType={event_type}"

    def audiohook_url(self, pixel_id: str = "test-pixel") -> str:
        return f"{self.base_url}/audiohook/{pixel_id}/pixel.png"

    @property
    def activation_url(self) -> str:
        return self.base_url + self.activation_path


class EmulatorClient(EmulatorUrls):
    """Admin API client (works against an in-thread emulator, a child process or the CLI one)."""

    def __init__(
        self, base_url: str, timeout: float = 30.0, registry_prefix: str = REGISTRY_PREFIX, activation_path: str = ACTIVATION_PATH
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.registry_prefix = registry_prefix
        self.activation_path = activation_path
        self._timeout = timeout

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = httpx.request(method, f"{self.base_url}{ADMIN_PREFIX}/{path}", timeout=self._timeout, **kwargs)
        resp.raise_for_status()
        return orjson.loads(resp.content)

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "stats")
        return result

    def events(self, destination: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {}
        if destination:
            params["destination"] = destination
        if limit:
            params["limit"] = limit
        result: list[dict[str, Any]] = self._request("GET", "events", params=params)["events"]
        return result

    def payloads(self, destination: str) -> list[Any]:
        """Just the received event payloads of one destination, oldest first."""
        return [record["payload"] for record in self.events(destination)]

    def receipts(self, destination: str | None = None) -> dict[str, dict[str, float]]:
        params = {"destination": destination} if destination else {}
        result: dict[str, dict[str, float]] = self._request("GET", "receipts", params=params)
        return result

    def set_faults(self, destination: str | None = None, *, merge: bool = False, **knobs: Any) -> dict[str, Any]:
        """Replace (or with ``merge=True`` update) the faults of a destination, or of all when None."""
        body: dict[str, Any] = {"destination": destination or GLOBAL, "merge": merge, **knobs}
        if isinstance(body.get("poison_ids"), set | frozenset):
            body["poison_ids"] = sorted(body["poison_ids"])
        result: dict[str, Any] = self._request("POST", "faults", content=orjson.dumps(body))
        return result

    def faults(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "faults")
        return result

    def clear_faults(self) -> None:
        self._request("DELETE", "faults")

    def reset(self, *, faults: bool = False, registry: bool = False) -> None:
        self._request("POST", "reset", content=orjson.dumps({"faults": faults, "registry": registry}))
