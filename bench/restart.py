"""How long a restarted or stopped worker's partitions go unserved: `python -m bench.restart`.

A group of two workers (real processes, `python -m streams worker`, each with POD_NAME set as a
Kubernetes pod would have it) consumes a 6-partition topic under a steady produce, delivering to
the destination emulator. Then, per scenario:

* kill:     SIGKILL one worker, start it again at once (same POD_NAME), and measure
            restart -> first assignment (its own log) -> first delivery of a record of the killed
            worker's partitions produced after the kill (the emulator's first-receipt times);
* roll:     SIGTERM one worker and start it again once it exited (same POD_NAME: a StatefulSet's
            rolling update), measured as "kill";
* graceful: SIGTERM one worker for good (a rolling update or scale-down; the other keeps
            running) and measure how long its partitions stay unowned after it exited, and
            exit -> first delivery of a record of them produced after the exit.

Scenarios: the classic protocol with dynamic membership (today's default), with static membership
(`kafka.group_instance_id: ${POD_NAME}`), and KIP-848 (`group_protocol: consumer`; the config
refuses it with an instance id: see docs/deploy.md). Each trial uses a fresh topic and group; every
produced record must be delivered (a trial that loses one fails the run: exit code 1). Results:
docs/deploy.md, "Fast restarts".

    python -m bench.restart                      # every scenario, 3 repetitions
    python -m bench.restart --reps 1 --only kill-static,graceful-static --json

Kafka: the local broker (`s2s-bridge dev fetch-kafka` once) or KAFKA_BOOTSTRAP_SERVERS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from bench.common import PARTITIONS, REPO, child_env
from bench.e2e import log, write_config
from bench.workload import create_topic, generate, produce_at_rate, register_schema

RATE = 300.0  # records/s: steady, well below one worker's capacity, so delays are the group's alone
SESSION_TIMEOUT_S = 30.0  # the shipped value (deploy/base/bridge.yaml)
_REBALANCE = re.compile(r"streams\.consumer: (assigned|revoked|lost) (.*?)(?: \(| with |$)")
_TP = re.compile(r"([A-Za-z0-9._-]+)\[(\d+)\]")

# name -> (protocol, static membership, what happens to worker 0)
SCENARIOS: dict[str, tuple[str, bool, str]] = {
    "kill-dynamic": ("classic", False, "kill"),
    "kill-static": ("classic", True, "kill"),
    "kill-kip848": ("consumer", False, "kill"),
    "graceful-dynamic": ("classic", False, "graceful"),
    "graceful-static": ("classic", True, "graceful"),
    "graceful-kip848": ("consumer", False, "graceful"),
    "roll-dynamic": ("classic", False, "roll"),
    "roll-static": ("classic", True, "roll"),
}


@dataclass
class WorkerProcess:
    """A worker process whose partition assignment changes are read from its log as they happen."""

    name: str
    proc: subprocess.Popen[bytes]
    logfile: IO[bytes]
    owned: set[int] = field(default_factory=set)
    first_assigned: float | None = None  # wall time of its first "assigned" line
    changes: list[tuple[float, str, set[int]]] = field(default_factory=list)

    def follow(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            now = time.time()
            self.logfile.write(raw)
            self.logfile.flush()
            m = _REBALANCE.search(raw.decode(errors="replace"))
            if m is None:
                continue
            kind, tps = m.group(1), {int(p) for _, p in _TP.findall(m.group(2))}
            if kind == "assigned":
                self.owned |= tps
                if self.first_assigned is None:
                    self.first_assigned = now
            else:
                self.owned -= tps
            self.changes.append((now, kind, tps))
        self.logfile.close()


def start_worker(config: Path, name: str, workdir: Path) -> WorkerProcess:
    env = {**child_env(), "POD_NAME": name}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams", "worker", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=REPO,
    )
    w = WorkerProcess(name, proc, (workdir / f"{name}-{time.time_ns()}.log").open("wb"))
    threading.Thread(target=w.follow, daemon=True).start()
    return w


def wait_until(cond: Any, timeout: float, what: str) -> float:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout:.0f} s")
        time.sleep(0.02)
    return time.time()


def stop(w: WorkerProcess) -> None:
    if w.proc.poll() is None:
        w.proc.send_signal(signal.SIGTERM)
        try:
            w.proc.wait(60)
        except subprocess.TimeoutExpired:
            w.proc.kill()
            w.proc.wait()


class Steady:
    """Produces at RATE in 1-second slices until stopped; remembers each record's produce time."""

    def __init__(self, bootstrap: str, topic: str, schema_id: int, seed: int) -> None:
        self.bootstrap, self.topic, self.schema_id, self.seed = bootstrap, topic, schema_id, seed
        self.produced: dict[str, int] = {}  # eventId -> produce time, epoch ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        n, offset = int(RATE), 0
        while not self._stop.is_set():
            ts, _ = produce_at_rate(self.bootstrap, self.topic, generate(n, self.schema_id, offset=offset, seed=self.seed), RATE)
            self.produced.update(ts)
            offset += n

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def partitions_of(bootstrap: str, topic: str) -> dict[str, int]:
    from streams.dev.topics import read_topics

    return {m.key().decode(): m.partition() for m in read_topics(bootstrap, [topic], timeout=30)}


def trial(scenario: str, seed: int, bootstrap: str, emu: Any, write_key: str, workdir: Path) -> dict[str, Any]:
    protocol, static, action = SCENARIOS[scenario]
    tag = f"{scenario}-{uuid.uuid4().hex[:6]}"
    topic = f"restart-{tag}"
    create_topic(bootstrap, topic)
    schema_id = register_schema(emu.registry_url, topic)
    cfg = workdir / f"{tag}.yaml"
    raw = write_config(
        cfg,
        bootstrap=bootstrap,
        topic=topic,
        group=f"g-{tag}",
        registry_url=emu.registry_url,
        emulator_url=emu.base_url,
        write_key=write_key,
    )
    kafka: dict[str, Any] = {"group_protocol": protocol, "commit_interval_s": 0.5}
    if protocol == "classic":
        kafka.update(session_timeout_s=SESSION_TIMEOUT_S, heartbeat_interval_s=3)
    if static:
        kafka["group_instance_id"] = "${POD_NAME}"
    raw["kafka"].update(kafka)
    raw["destinations"]["zeotap"]["batch"]["linger_ms"] = 50
    raw["worker"] = {**raw.get("worker", {}), "shutdown_grace_s": 10}
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False))

    before = len(emu.admin.receipts("zeotap")["zeotap"])
    load = Steady(bootstrap, topic, schema_id, seed)
    workers = [start_worker(cfg, f"bridge-{i}", workdir) for i in range(2)]
    out: dict[str, Any] = {"scenario": scenario}
    try:
        wait_until(lambda: all(w.owned for w in workers), 90, "group of two")
        wait_until(lambda: len(workers[0].owned | workers[1].owned) == PARTITIONS, 60, "every partition owned")
        time.sleep(3.0)  # steady state: both deliver
        victim, other = workers
        mine = set(victim.owned)
        if action in ("kill", "roll"):
            t_event = time.time()
            victim.proc.send_signal(signal.SIGKILL if action == "kill" else signal.SIGTERM)
            victim.proc.wait(60)
            t_restart = time.time()
            if action == "roll":
                t_event = t_restart  # a draining worker may still deliver what it fetched before the SIGTERM
            back = start_worker(cfg, victim.name, workdir)
            workers[0] = back
            wait_until(lambda: back.first_assigned is not None, 120, "assignment after the restart")
            assert back.first_assigned is not None
            wait_until(lambda: mine <= back.owned | other.owned, 120, "owner of the killed worker's partitions")
            t_owned = time.time()
            out.update(
                restart_to_assignment_s=back.first_assigned - t_restart,
                restart_to_owned_s=t_owned - t_restart,
                same_partitions=mine <= back.owned,
            )
        else:
            t_event = time.time()
            victim.proc.send_signal(signal.SIGTERM)
            victim.proc.wait(60)
            t_exit = time.time()
            wait_until(lambda: mine <= other.owned, 120, "owner of the stopped worker's partitions")
            out.update(stop_took_s=t_exit - t_event, exit_to_owned_s=time.time() - t_exit)
            t_event = t_exit  # as for "roll"
        time.sleep(4.0)  # records of those partitions produced after the event get delivered
    finally:
        load.stop()
        produced = dict(load.produced)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(emu.admin.receipts("zeotap")["zeotap"]) - before < len(produced):
            time.sleep(0.5)
        for w in workers:
            stop(w)
    receipts = emu.admin.receipts("zeotap")["zeotap"]
    part = partitions_of(bootstrap, topic)
    after = [receipts[e] for e, ts in produced.items() if part.get(e) in mine and ts > t_event * 1000 and e in receipts]
    first = min(after) / 1000 if after else None
    out["lost"] = sum(1 for e in produced if e not in receipts)
    if action in ("kill", "roll"):
        out["restart_to_delivery_s"] = first - t_restart if first is not None else None
    else:
        out["exit_to_delivery_s"] = first - t_event if first is not None else None
    return {k: round(v, 2) if isinstance(v, float) else v for k, v in out.items()}


def table(results: list[dict[str, Any]]) -> str:
    metrics = (
        "restart_to_assignment_s",
        "restart_to_delivery_s",
        "restart_to_owned_s",
        "stop_took_s",
        "exit_to_owned_s",
        "exit_to_delivery_s",
    )
    head = "| scenario | runs | " + " | ".join(f"{m} median / max" for m in metrics) + " | lost |"
    lines = [head, "|---" * (len(metrics) + 3) + "|"]
    for name in SCENARIOS:
        rows = [r for r in results if r["scenario"] == name]
        if not rows:
            continue
        cells = []
        for m in metrics:
            vals = [r[m] for r in rows if r.get(m) is not None]
            cells.append(f"{statistics.median(vals):.1f} / {max(vals):.1f}" if vals else "–")
        lines.append(f"| {name} | {len(rows)} | " + " | ".join(cells) + f" | {sum(r['lost'] for r in rows)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.restart", description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    ap.add_argument("--json", action="store_true", help="every trial as JSON on the last line")
    args = ap.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(unknown)} (known: {', '.join(SCENARIOS)})")

    from streams.dev.emulator import DOC_WRITE_KEY, EmulatorProcess
    from streams.dev.kafka import get_broker

    workdir = Path(tempfile.mkdtemp(prefix="s2s-restart-"))
    broker = get_broker()
    broker.start()
    emu = EmulatorProcess("--no-keep-events").start()
    log(f"Kafka at {broker.bootstrap_servers}, emulator at {emu.base_url}, logs in {workdir}")
    results: list[dict[str, Any]] = []
    try:
        for rep in range(args.reps):
            for i, name in enumerate(chosen):
                r = trial(name, 1000 * rep + i, broker.bootstrap_servers, emu, DOC_WRITE_KEY, workdir)
                log(json.dumps(r))
                results.append(r)
    finally:
        emu.stop()
        broker.stop()
    print(table(results))
    if args.json:
        print(json.dumps(results))
    return 1 if any(r["lost"] for r in results) else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
