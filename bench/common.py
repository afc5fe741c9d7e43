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


def system_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine, all CPUs summed (/proc/stat: everything but idle and iowait)."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


SYSTEM = "system"  # pseudo process name of the machine-wide busy time in CpuSampler


class CpuSampler:
    """Samples the CPU seconds of some processes every `interval` s on a thread, so the CPU used
    inside a time window known only afterwards (e.g. from emulator receipts) can be read back."""

    def __init__(self, pids: dict[str, int | None], interval: float = 0.05) -> None:
        self.pids: dict[str, int] = {k: v for k, v in pids.items() if v}
        self.pids.setdefault("bench", os.getpid())
        self.interval = interval
        self.samples: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in (*self.pids, SYSTEM)}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def start(self) -> CpuSampler:
        self._sample()
        self._thread.start()
        return self

    def add(self, name: str, pid: int) -> None:
        self.samples.setdefault(name, ([], []))
        self.pids[name] = pid

    def _sample(self) -> None:
        now = time.time()
        ts, cs = self.samples[SYSTEM]
        ts.append(now)
        cs.append(system_busy_seconds())
        for name, pid in list(self.pids.items()):
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

    def foreign(self, start: float, end: float, own: float = 0.0) -> float | None:
        """CPU seconds used in the window by processes that are not ours (other jobs on the machine).

        `own` adds CPU of our processes that are not sampled here (a child that reports its own)."""
        busy = self.window(SYSTEM, start, end)
        if busy is None:
            return None
        ours = sum(self.window(k, start, end) or 0.0 for k in self.pids) + own
        return max(0.0, busy - ours)

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


def wait_for_quiet(max_wait: float, ours: dict[str, int | None], threshold: float = 0.25, log: Any = None) -> float:
    """Wait (up to `max_wait` s) until processes other than `ours` use less than `threshold` cores over
    a 1-second window; returns that foreign load (cores) at the end."""
    deadline = time.monotonic() + max_wait
    waited = False
    while True:
        s = CpuSampler(ours, interval=0.25).start()
        time.sleep(1.0)
        s.stop()
        t0, t1 = s.samples[SYSTEM][0][0], s.samples[SYSTEM][0][-1]
        load = (s.foreign(t0, t1) or 0.0) / max(1e-3, t1 - t0)
        if load < threshold or time.monotonic() >= deadline:
            if waited and log is not None:
                log(f"machine load from other processes now {load:.2f} cores")
            return load
        if not waited and log is not None:
            log(f"other processes use {load:.2f} cores: waiting up to {max_wait:.0f}s for a quieter machine")
        waited = True
        time.sleep(2.0)
