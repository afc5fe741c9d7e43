"""Shared helpers of the end-to-end benchmark: paths, /proc accounting, child-result protocol."""

from __future__ import annotations

import bisect
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "bridge.yaml"
SCHEMA_FILE = REPO / "avro_schemas" / "purchase_completed.avsc"
ROUTE = "purchase_completed"
PARTITIONS = 6
RESULT_MARK = "BENCH_RESULT "

CLK_TCK = os.sysconf("SC_CLK_TCK")


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def emit_result(data: dict[str, Any]) -> None:
    """A child variant reports its measurements as one marked JSON line on stdout."""
    sys.stdout.write(RESULT_MARK + json.dumps(data) + "\n")
    sys.stdout.flush()


def parse_result(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            loaded: dict[str, Any] = json.loads(line[len(RESULT_MARK) :])
            return loaded
    return None


# --------------------------------------------------------------------------- /proc


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a live process, in seconds (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    # fields[0] is field 3 (state): utime is field 14, stime field 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status_kb(pid: int, key: str) -> int | None:
    """A `kB` line of /proc/<pid>/status (VmHWM = peak RSS, VmRSS = current RSS)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class CpuSampler:
    """Samples the CPU seconds of some processes every `interval` s on a thread, so the CPU used
    inside a time window known only afterwards (e.g. from emulator receipts) can be read back."""

    def __init__(self, pids: dict[str, int], interval: float = 0.05) -> None:
        self.pids = {k: v for k, v in pids.items() if v}
        self.interval = interval
        self.samples: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in self.pids}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def start(self) -> CpuSampler:
        self._sample()
        self._thread.start()
        return self

    def _sample(self) -> None:
        now = time.time()
        for name, pid in self.pids.items():
            c = cpu_seconds(pid)
            if c is not None:
                ts, cs = self.samples[name]
                ts.append(now)
                cs.append(c)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()

    def at(self, name: str, when: float) -> float | None:
        """CPU seconds of `name` at wall time `when` (linear interpolation between samples)."""
        ts, cs = self.samples.get(name, ([], []))
        if not ts:
            return None
        i = bisect.bisect_left(ts, when)
        if i <= 0:
            return cs[0]
        if i >= len(ts):
            return cs[-1]
        t0, t1, c0, c1 = ts[i - 1], ts[i], cs[i - 1], cs[i]
        return c0 if t1 == t0 else c0 + (c1 - c0) * (when - t0) / (t1 - t0)

    def window(self, name: str, start: float, end: float) -> float | None:
        a, b = self.at(name, start), self.at(name, end)
        return None if a is None or b is None else max(0.0, b - a)

    def total(self, name: str) -> float | None:
        ts, cs = self.samples.get(name, ([], []))
        return cs[-1] if cs else None


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = None
    mem = status_kb_meminfo()
    if mem:
        mem_gb = round(mem / 1024 / 1024, 1)
    return {
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": model,
        "mem_gb": mem_gb,
        "python": sys.version.split()[0],
    }


def status_kb_meminfo() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None
