"""What the emulator has seen: per-destination counters, receipts and kept events, and the live fault settings."""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any

from aiohttp import web

from streams.dev.emulator.config import DESTINATIONS, EmulatorConfig, FaultConfig, check_destination

DROPPED = 0  # pseudo status under which dropped connections are counted


class _FaultCounter(Counter[str]):
    """Counts injected faults and remembers when the last 1000 happened (epoch ms), for timing tests."""

    def __init__(self) -> None:
        super().__init__()
        self.times: deque[tuple[float, str]] = deque(maxlen=1000)

    def __setitem__(self, key: str, value: int) -> None:
        if value > self.get(key, 0):
            self.times.append((time.time() * 1000, key))
        super().__setitem__(key, value)


class DestinationStats:
    """Counters and records of one destination. Mutated only on the emulator's event loop."""

    __slots__ = (
        "name",
        "requests",
        "events_received",
        "duplicates",
        "events_without_id",
        "bytes_received",
        "client_disconnects",
        "faults",
        "receipts",
        "events",
    )

    def __init__(self, name: str, max_kept: int | None) -> None:
        self.name = name
        self.requests: Counter[int] = Counter()  # status -> count; 0 means dropped connection
        self.events_received = 0  # events in accepted requests, duplicates included
        self.duplicates = 0
        self.events_without_id = 0
        self.bytes_received = 0
        self.client_disconnects = 0  # the client hung up before its body was read
        self.faults = _FaultCounter()
        self.receipts: dict[str, float] = {}  # event id -> first receipt, epoch ms
        self.events: deque[tuple[float, dict[str, Any], Any]] = deque(maxlen=max_kept)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": {("dropped" if k == DROPPED else str(k)): v for k, v in sorted(self.requests.items())},
            "requests_total": sum(self.requests.values()),
            "events_received": self.events_received,
            "unique_ids": len(self.receipts),
            "duplicates": self.duplicates,
            "events_without_id": self.events_without_id,
            "bytes_received": self.bytes_received,
            "client_disconnects": self.client_disconnects,
            "faults": dict(self.faults),
            "fault_times": [{"ms": ms, "kind": kind} for ms, kind in self.faults.times],
            "events_kept": len(self.events),
        }


class EmulatorState:
    """Counters, records and fault settings of one emulator app."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.started = time.time()
        self.rng = random.Random(config.seed)
        self.faults: dict[str, FaultConfig] = {}
        self.outage_until: dict[str, float] = {}
        self.request_seq = 0
        self.dest: dict[str, DestinationStats] = {}
        self.reset_records()
        for dest, faults in config.faults.items():
            self.set_faults(dest, faults)

    # -- records
    def reset_records(self) -> None:
        self.dest = {d: DestinationStats(d, self.config.max_kept_events) for d in DESTINATIONS}
        self.started = time.time()

    def record(
        self,
        st: DestinationStats,
        events: Sequence[Any],
        ids: Sequence[str | None],
        context: dict[str, Any],
    ) -> int:
        """Record accepted events; returns how many of them were duplicates."""
        now = time.time_ns() / 1e6
        receipts = st.receipts
        dups = 0
        missing = 0
        for eid in ids:
            if eid is None:
                missing += 1
            elif eid in receipts:
                dups += 1
            else:
                receipts[eid] = now
        st.events_received += len(ids)
        st.duplicates += dups
        st.events_without_id += missing
        if self.config.keep_events:
            st.events.extend((now, context, ev) for ev in events)
        return dups

    def stats(self) -> dict[str, Any]:
        per = {d: s.to_dict() for d, s in self.dest.items()}
        totals = {
            key: sum(p[key] for p in per.values())
            for key in ("requests_total", "events_received", "unique_ids", "duplicates", "events_without_id")
        }
        return {"uptime_s": round(time.time() - self.started, 3), "destinations": per, "totals": totals}

    def events(self, destination: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        names = [check_destination(destination)] if destination else list(DESTINATIONS)
        out: list[dict[str, Any]] = []
        for name in names:
            for ts, ctx, payload in list(self.dest[name].events):
                out.append({"destination": name, "received_ms": ts, "context": ctx, "payload": payload})
        out.sort(key=lambda r: r["received_ms"])
        return out[-limit:] if limit else out

    def receipts(self, destination: str | None = None) -> dict[str, dict[str, float]]:
        names = [check_destination(destination)] if destination else list(DESTINATIONS)
        return {name: dict(self.dest[name].receipts) for name in names}

    # -- faults
    def set_faults(self, destination: str, faults: FaultConfig) -> None:
        check_destination(destination, allow_global=True)
        if not faults.active:
            self.faults.pop(destination, None)
            self.outage_until.pop(destination, None)
            return
        self.faults[destination] = faults
        if faults.outage_for_seconds > 0:
            self.outage_until[destination] = time.monotonic() + faults.outage_for_seconds
        else:
            self.outage_until.pop(destination, None)

    def clear_faults(self) -> None:
        self.faults.clear()
        self.outage_until.clear()

    def faults_view(self) -> dict[str, Any]:
        now = time.monotonic()
        view: dict[str, Any] = {}
        for dest, faults in self.faults.items():
            entry = faults.to_dict()
            until = self.outage_until.get(dest)
            entry["outage_remaining_s"] = round(max(0.0, until - now), 3) if until else 0.0
            view[dest] = entry
        return view

    def reseed(self, seed: int | None) -> None:
        self.rng = random.Random(seed)


STATE_KEY: web.AppKey[EmulatorState] = web.AppKey("emulator_state", EmulatorState)
