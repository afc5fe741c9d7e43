"""Render the Grafana dashboard's panels from a real run, healthy and unhealthy, into one PNG.

    python -m bench.dashboard --out docs/img/dashboard.png [--seconds 90] [--rate 300]
        [--fault-at 25] [--fault-for 20] [--fault outage|throttle] [--json FILE]

Starts the local Kafka broker (streams.dev.kafka.get_broker), the destination emulator in its own
process and one real worker (`python -m streams worker`, three routes of examples/bridge.yaml, all
to the Zeotap emulator), produces sample events at a steady rate and scrapes the worker's /metrics
every second. From `--fault-at` for `--fault-for` seconds the emulator's fault API makes Zeotap
unhealthy (an outage answering 503, or 429 with Retry-After for every other request), and the
producer adds records that must be dead-lettered: undecodable bytes (stage decode) and events
whose ids the emulator refuses with 400 (poison ids: stage deliver, after the batch is split).
Rates are computed from the scraped counters like PromQL's rate() over 5 s; latency quantiles like
histogram_quantile(). The panels are those of deploy/observability/grafana-dashboard.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.common import EXAMPLE, PARTITIONS, REPO, child_env

ROUTES = ("purchase_completed", "page_view", "subscription_started")
WINDOW_S = 5.0  # rate() window of the plots
# the dashboard's panel titles, in the dashboard's order (tests/deploy/test_observability.py compares them)
PANELS = (
    "Consumed events/s by route",
    "Delivered events/s by route and destination",
    "Outcomes/s",
    "Dead letters/s by stage and reason",
    "HTTP requests/s by destination and status",
    "Request latency (p50, p90, p99)",
    "Retries/s by destination and cause",
    "Paused routes and unhealthy destinations",
    "Consumer lag and in-flight records",
)

Key = tuple[str, tuple[tuple[str, str], ...]]  # sample name, sorted labels


def log(msg: str) -> None:
    print(f"[dashboard {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def write_config(path: Path, *, bootstrap: str, emulator_url: str, write_key: str, group: str, port: int) -> dict[str, Any]:
    """examples/bridge.yaml reduced to ROUTES, pointed at the local broker and the emulator; metrics on `port`."""
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw = {k: v for k, v in raw.items() if not str(k).startswith("x-")}
    raw["kafka"].update(bootstrap_servers=bootstrap, group_id=group)
    raw["destinations"]["zeotap"].update(url=f"{emulator_url}/zeotap", write_key=write_key, region="EU")
    routes = {}
    for name in ROUTES:
        route = dict(raw["routes"][name])
        route["schema"] = str((EXAMPLE.parent / route["schema"]).resolve())
        routes[name] = route
    raw["routes"] = routes
    raw["metrics"] = {"host": "127.0.0.1", "port": port}
    raw.setdefault("worker", {})["log_level"] = "WARNING"
    path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    return raw


# --------------------------------------------------------------------------- load


class Load(threading.Thread):
    """Produces `rate` records/s spread over ROUTES; ~3 % are consent-denied (filtered). While `bad` is set,
    adds `bad_rate` records/s that must be dead-lettered: undecodable ones and ones carrying poison ids."""

    def __init__(self, bootstrap: str, topics: dict[str, str], rate: float, poison: list[str], bad_rate: float = 4.0) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Producer

        from streams.codec import load_schema_file, parse
        from streams.dev.samples import SampleFactory

        self.producer: Any = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
        self.topics = topics
        self.schemas = {r: parse(load_schema_file(REPO / "avro_schemas" / f"{r}.avsc")) for r in ROUTES}
        self.factory = SampleFactory(2026)
        self.rate = rate
        self.bad_rate = bad_rate
        self.poison = list(poison)
        self.bad = threading.Event()
        self.stop_flag = threading.Event()
        self.produced: Counter[str] = Counter()

    def _record(self, route: str, kind: str) -> tuple[bytes | None, bytes]:
        from streams.codec import encode_plain

        if kind == "undecodable":
            return None, b"\x00\x01\x02 this is not avro \xff"
        rec = self.factory.record(route, consent_granted=kind != "denied")
        if kind == "poison":
            rec["event_id"] = self.poison.pop()
        return rec["event_id"].encode(), encode_plain(self.schemas[route], rec)

    def _send(self, route: str, kind: str) -> None:
        key, value = self._record(route, kind)
        self.producer.produce(self.topics[route], key=key, value=value)
        self.produced[kind] += 1

    def run(self) -> None:
        t0 = time.monotonic()
        n = bad = 0
        bad_t0 = 0.0
        while not self.stop_flag.is_set():
            now = time.monotonic()
            while n < int((now - t0) * self.rate):
                route = ROUTES[n % len(ROUTES)]
                self._send(route, "denied" if n % 31 == 7 else "ok")
                n += 1
            if self.bad.is_set():
                bad_t0 = bad_t0 or now
                while bad < int((now - bad_t0) * self.bad_rate) + 1:
                    kind = "poison" if bad % 2 == 0 and self.poison else "undecodable"
                    self._send(ROUTES[bad % len(ROUTES)], kind)
                    bad += 1
            else:
                bad_t0, bad = 0.0, 0
            self.producer.poll(0)
            time.sleep(0.01)
        self.producer.flush(30)


# --------------------------------------------------------------------------- scraping


@dataclass
class Scrape:
    t: list[float] = field(default_factory=list)
    samples: list[dict[Key, float]] = field(default_factory=list)
    errors: int = 0


class Scraper(threading.Thread):
    def __init__(self, url: str, t0: float, interval: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.url, self.t0, self.interval = url, t0, interval
        self.data = Scrape()
        self.stop_flag = threading.Event()

    def scrape_once(self, client: httpx.Client) -> None:
        from prometheus_client.parser import text_string_to_metric_families

        text = client.get(self.url, timeout=5).text
        now = time.monotonic() - self.t0
        out: dict[Key, float] = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
        self.data.t.append(now)
        self.data.samples.append(out)

    def run(self) -> None:
        with httpx.Client() as client:
            next_at = time.monotonic()
            while not self.stop_flag.is_set():
                try:
                    self.scrape_once(client)
                except httpx.HTTPError:
                    self.data.errors += 1
                next_at += self.interval
                self.stop_flag.wait(max(0.0, next_at - time.monotonic()))


# --------------------------------------------------------------------------- PromQL-like helpers


def series(
    data: Scrape, name: str, match: Callable[[dict[str, str]], bool] | None = None
) -> dict[tuple[tuple[str, str], ...], list[float]]:
    """Every series of sample `name`, aligned on the scrape times (absent before it first appears: 0)."""
    keys = sorted({k[1] for s in data.samples for k in s if k[0] == name and (match is None or match(dict(k[1])))})
    return {labels: [s.get((name, labels), 0.0) for s in data.samples] for labels in keys}


def rate(t: list[float], v: list[float], window: float = WINDOW_S) -> list[float]:
    """Per-second increase over the last `window` seconds at each point (counter resets handled)."""
    out, j = [], 0
    inc = [0.0]
    for i in range(1, len(v)):
        d = v[i] - v[i - 1]
        inc.append(inc[-1] + (d if d >= 0 else v[i]))
    for i in range(len(t)):
        while t[i] - t[j] > window:
            j += 1
        out.append((inc[i] - inc[j]) / (t[i] - t[j]) if i > j else 0.0)
    return out


def sum_by(
    data: Scrape, name: str, by: tuple[str, ...], match: Callable[[dict[str, str]], bool] | None = None
) -> dict[str, list[float]]:
    """sum by (labels) (rate(name[5s])): keys are the label values joined with ' / '."""
    out: dict[str, list[float]] = {}
    for labels, v in series(data, name, match).items():
        d = dict(labels)
        key = " / ".join(d.get(b, "") for b in by)
        r = rate(data.t, v)
        out[key] = [a + b for a, b in zip(out.get(key, [0.0] * len(r)), r, strict=True)]
    return out


def gauge_by(data: Scrape, name: str, by: tuple[str, ...], agg: Callable[[list[float]], float] = sum) -> dict[str, list[float]]:
    groups: dict[str, list[list[float]]] = {}
    for labels, v in series(data, name).items():
        d = dict(labels)
        groups.setdefault(" / ".join(d.get(b, "") for b in by), []).append(v)
    return {k: [agg(list(col)) for col in zip(*vs, strict=True)] for k, vs in groups.items()}


def quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """histogram_quantile over (upper bound, cumulative count) pairs, linear within a bucket."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    rank = q * buckets[-1][1]
    prev_b, prev_c = 0.0, 0.0
    for b, c in buckets:
        if c >= rank:
            if math.isinf(b):
                return prev_b
            return prev_b + (b - prev_b) * ((rank - prev_c) / (c - prev_c) if c > prev_c else 0.0)
        prev_b, prev_c = b, c
    return prev_b


def latency_quantiles(data: Scrape, qs: tuple[float, ...]) -> dict[str, list[float]]:
    name = "s2s_http_request_duration_seconds_bucket"
    by_le: dict[float, list[float]] = {}
    for labels, v in series(data, name).items():
        le = float(dict(labels)["le"])
        r = rate(data.t, v)
        by_le[le] = [a + b for a, b in zip(by_le.get(le, [0.0] * len(r)), r, strict=True)]
    out: dict[str, list[float]] = {}
    for q in qs:
        out[f"p{round(q * 100)}"] = [quantile(q, [(le, by_le[le][i]) for le in by_le]) for i in range(len(data.t))]
    return out


# --------------------------------------------------------------------------- plotting


def plot(data: Scrape, out: Path, fault: tuple[float, float], title: str) -> dict[str, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = data.t
    fig, axes = plt.subplots(3, 3, figsize=(18, 12.5), sharex=True)
    fig.suptitle(title, fontsize=13)
    panels = dict(zip(PANELS, axes.flat, strict=True))

    def lines(ax: Any, curves: dict[str, list[float]], unit: str, stacked: bool = False) -> None:
        if stacked and curves:
            ax.stackplot(t, *curves.values(), labels=list(curves), alpha=0.8)
        else:
            for k, v in sorted(curves.items()):
                ax.plot(t, v, label=k or "(none)", lw=1.4)
        ax.set_ylabel(unit)
        if curves:
            ax.legend(fontsize=7, loc="upper left")
        else:
            ax.text(0.5, 0.5, "no series", transform=ax.transAxes, ha="center", color="grey")

    consumed = sum_by(data, "s2s_records_consumed_total", ("route",))
    lines(panels[PANELS[0]], consumed, "events/s")
    delivered = sum_by(data, "s2s_records_delivered_total", ("route", "destination"))
    lines(panels[PANELS[1]], delivered, "events/s")

    def total(name: str) -> list[float]:
        cs = sum_by(data, name, ())
        return cs.get("", [0.0] * len(t))

    outcomes = {
        "delivered": total("s2s_records_delivered_total"),
        "filtered": total("s2s_records_filtered_total"),
        "dead-lettered": total("s2s_records_dead_lettered_total"),
    }
    lines(panels[PANELS[2]], outcomes, "records/s", stacked=True)
    dead = sum_by(data, "s2s_records_dead_lettered_total", ("stage", "reason"))
    lines(panels[PANELS[3]], dead, "records/s")
    requests = sum_by(data, "s2s_http_requests_total", ("destination", "status"))
    lines(panels[PANELS[4]], requests, "requests/s")
    lat = {k: [x * 1000 for x in v] for k, v in latency_quantiles(data, (0.5, 0.9, 0.99)).items()}
    lines(panels[PANELS[5]], lat, "ms")
    retries = sum_by(data, "s2s_http_retries_total", ("destination", "status"))
    lines(panels[PANELS[6]], retries, "retries/s")
    paused = {f"paused: {k}": v for k, v in gauge_by(data, "s2s_route_paused", ("route",)).items()}
    paused.update({f"unhealthy: {k}": v for k, v in gauge_by(data, "s2s_destination_unhealthy", ("destination",)).items()})
    ax = panels[PANELS[7]]
    for i, (k, v) in enumerate(sorted(paused.items())):
        ax.step(t, [x + 0.03 * i for x in v], where="post", label=k, lw=1.4)
    ax.set_ylim(-0.1, 1.4)
    ax.set_yticks([0, 1], ["no", "yes"])
    ax.legend(fontsize=7, loc="upper left")
    ax = panels[PANELS[8]]
    lag = gauge_by(data, "s2s_consumer_lag", ("topic",))
    for k, v in sorted(lag.items()):
        ax.plot(t, v, label=f"lag {k}", lw=1.4)
    inflight = gauge_by(data, "s2s_in_flight_records", ())
    for _, v in inflight.items():
        ax.plot(t, v, label="in flight (all routes)", lw=1.0, ls="--", color="black")
    ax.set_ylabel("records")
    ax.legend(fontsize=7, loc="upper left")

    for title_, ax in panels.items():
        ax.set_title(title_, fontsize=10)
        ax.axvspan(fault[0], fault[1], color="red", alpha=0.08, lw=0)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("seconds since the load started (red: Zeotap unhealthy + bad records injected)")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)

    def mean_in(v: list[float], lo: float, hi: float) -> float:
        xs = [x for ti, x in zip(t, v, strict=True) if lo <= ti < hi and not math.isnan(x)]
        return round(sum(xs) / len(xs), 1) if xs else 0.0

    def peak(v: list[float], lo: float, hi: float) -> float:
        xs = [x for ti, x in zip(t, v, strict=True) if lo <= ti < hi and not math.isnan(x)]
        return round(max(xs), 1) if xs else 0.0

    consumed_all = total("s2s_records_consumed_total")
    delivered_all = outcomes["delivered"]
    end = t[-1] if t else 0.0
    lag_all = [sum(col) for col in zip(*lag.values(), strict=True)] if lag else [0.0] * len(t)
    last = data.samples[-1] if data.samples else {}
    paused_s = {k: round(sum(t[i + 1] - t[i] for i in range(len(t) - 1) if v[i] >= 1), 1) for k, v in paused.items()}
    return {
        "healthy_before": {
            "consumed_eps": mean_in(consumed_all, WINDOW_S, fault[0]),
            "delivered_eps": mean_in(delivered_all, WINDOW_S, fault[0]),
            "p50_ms": mean_in(lat.get("p50", []), WINDOW_S, fault[0]),
            "p99_ms": mean_in(lat.get("p99", []), WINDOW_S, fault[0]),
        },
        "fault": {
            "consumed_eps": mean_in(consumed_all, fault[0] + WINDOW_S, fault[1]),
            "delivered_eps": mean_in(delivered_all, fault[0] + WINDOW_S, fault[1]),
            "retries_per_s_peak": peak(total("s2s_http_retries_total"), fault[0], fault[1] + WINDOW_S),
            "lag_peak": peak(lag_all, fault[0], end + 1),
        },
        "recovery": {
            "delivered_eps_peak": peak(delivered_all, fault[1], end + 1),
            "dead_letters_per_s_peak": peak(outcomes["dead-lettered"], fault[0], end + 1),
        },
        "healthy_after_catch_up": {
            "consumed_eps": mean_in(consumed_all, end - 15, end + 1),
            "delivered_eps": mean_in(delivered_all, end - 15, end + 1),
            "lag_last": lag_all[-1] if lag_all else None,
        },
        "paused_seconds": paused_s,
        "totals": {
            k[0] + "{" + ",".join(f"{a}={b}" for a, b in k[1]) + "}": v
            for k, v in sorted(last.items())
            if k[0]
            in (
                "s2s_records_consumed_total",
                "s2s_records_delivered_total",
                "s2s_records_filtered_total",
                "s2s_records_dead_lettered_total",
                "s2s_http_requests_total",
                "s2s_http_retries_total",
                "s2s_batch_splits_total",
            )
        },
    }


# --------------------------------------------------------------------------- run


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench.workload import create_topic
    from streams.dev.emulator import DOC_WRITE_KEY, EmulatorProcess
    from streams.dev.kafka import get_broker

    suffix = uuid.uuid4().hex[:6]
    workdir = Path(tempfile.mkdtemp(prefix=f"s2s-dashboard-{suffix}-"))
    t0 = time.monotonic()
    with get_broker() as broker, EmulatorProcess("--no-keep-events") as emu:
        bootstrap = broker.bootstrap_servers
        log(f"Kafka at {bootstrap} ({time.monotonic() - t0:.0f}s), emulator at {emu.base_url}, work dir {workdir}")
        port = free_port()
        cfg_path = workdir / "bridge.yaml"
        raw = write_config(
            cfg_path, bootstrap=bootstrap, emulator_url=emu.base_url, write_key=DOC_WRITE_KEY, group=f"dash-{suffix}", port=port
        )
        topics = {name: raw["routes"][name]["topic"] for name in ROUTES}
        for topic in topics.values():
            with contextlib.suppress(Exception):  # already there (external cluster)
                create_topic(bootstrap, topic, PARTITIONS)
        logf = (workdir / "worker.log").open("wb")
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker", "--config", str(cfg_path)],
            stdout=logf,
            stderr=subprocess.STDOUT,
            env=child_env(),
            cwd=REPO,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                if worker.poll() is not None:
                    raise RuntimeError(f"worker exited {worker.returncode} (log {workdir / 'worker.log'})")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError("worker not ready after 120 s")
                time.sleep(0.5)
            log(f"worker ready on {base}; load {args.rate:.0f} records/s for {args.seconds:.0f}s")
            poison = [str(uuid.UUID(int=i + 1, version=4)) for i in range(int(args.fault_for * 4) + 10)]
            load = Load(bootstrap, topics, args.rate, poison)
            start = time.monotonic()
            scraper = Scraper(f"{base}/metrics", start)
            scraper.start()
            load.start()
            fault = (args.fault_at, args.fault_at + args.fault_for)
            faulted = cleared = False
            while (now := time.monotonic() - start) < args.seconds:
                if worker.poll() is not None:
                    raise RuntimeError(f"worker exited {worker.returncode} (log {workdir / 'worker.log'})")
                if not faulted and now >= fault[0]:
                    knobs: dict[str, Any] = {"poison_ids": poison}
                    if args.fault == "outage":
                        knobs.update(outage_for_seconds=args.fault_for, outage_status=503)
                    else:
                        knobs.update(throttle_rate=0.5, retry_after=2, seed=1)
                    emu.admin.set_faults("zeotap", **knobs)
                    load.bad.set()
                    faulted = True
                    log(f"t={now:.0f}s: fault on ({args.fault}), bad records on")
                if faulted and not cleared and now >= fault[1]:
                    # the outage has ended by itself; poison ids stay refused (they are bad records)
                    emu.admin.set_faults("zeotap", poison_ids=poison)
                    load.bad.clear()
                    cleared = True
                    log(f"t={now:.0f}s: fault off")
                time.sleep(0.1)
            load.stop_flag.set()
            load.join(60)
            load.producer = None  # flushed: release the client before the broker stops
            scraper.stop_flag.set()
            scraper.join(10)
            stats = emu.admin.stats()["destinations"].get("zeotap", {})
        finally:
            if worker.poll() is None:
                worker.terminate()
                try:
                    worker.wait(60)
                except subprocess.TimeoutExpired:
                    worker.kill()
                    worker.wait()
            logf.close()
    title = (
        f"s2s-bridge worker, {len(ROUTES)} routes -> Zeotap emulator, {args.rate:.0f} records/s; "
        f"t={fault[0]:.0f}-{fault[1]:.0f}s: Zeotap {'outage (503)' if args.fault == 'outage' else '429 + Retry-After'}"
        " + undecodable and poison records"
    )
    summary = plot(scraper.data, Path(args.out), fault, title)
    summary.update(
        produced=dict(load.produced),
        scrapes=len(scraper.data.t),
        scrape_errors=scraper.data.errors,
        worker_exit=worker.returncode,
        emulator_zeotap={k: stats.get(k) for k in ("unique_ids", "duplicates", "requests")},
        fault_kind=args.fault,
        fault_window_s=list(fault),
        out=str(args.out),
        workdir=str(workdir),
    )
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.dashboard", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/img/dashboard.png")
    p.add_argument("--seconds", type=float, default=90.0, help="length of the measured run")
    p.add_argument("--rate", type=float, default=300.0, help="records/s produced (spread over the routes)")
    p.add_argument("--fault-at", type=float, default=25.0)
    p.add_argument("--fault-for", type=float, default=20.0)
    p.add_argument("--fault", choices=("outage", "throttle"), default="outage")
    p.add_argument("--json", default=None, help="also write the summary to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    summary = run(args)
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0 if summary["worker_exit"] in (0, None) and summary["scrapes"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
