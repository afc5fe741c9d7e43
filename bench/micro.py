"""Transform micro-benchmark: µs per record, on one core, per pipeline stage.

    python -m bench.micro [--records N] [--repeats R] [--json] [--profile] [--check] [--clock wall|cpu] [--chunk N]

Measures the transform of ``purchase_completed`` records with the reference config
``examples/bridge.yaml`` (destination ``zeotap``: SHA-256 identities, E.164 phones, alpha-3
country, consent ``require: [marketing]``), stage by stage:

``decode plain``       ``Decoder.decode`` of plain Avro binary (the route's framing ``auto``; the
                       schema-compiled reader of ``streams.codec``, built before timing)
``decode confluent``   ``Decoder.decode`` of Confluent wire format (SchemaStore, fake fetch_by_id)
``map``                ``Mapping.apply`` (the route's generated mapping function, what
                       ``RoutePipeline.process_record`` calls)
``enrich + consent``   ``RoutePipeline._enrich`` + ``consent.evaluate``
``encode``             ``orjson.dumps(destination.payload(sections))``
``whole``              ``RoutePipeline.process(bytes, topic, partition, offset)``
``decode plain (native)`` the native core's Avro decoder alone (``streams._native``, docs/native.md)
``whole (native)``     the route's native plan as the worker runs it: ``RoutePipeline.native_payloads``
                       per 500-record batch, ``RoutePipeline.process`` for what it hands back (cold:
                       the plan forgets Python's remembered answers too). The (native) stages are
                       absent when the extension is not built; the output also gives the share of
                       records the plan handed back to Python, and why.

Records come from ``streams.dev.samples.SampleFactory`` (distinct emails and phone numbers,
varied countries, spellings and phone formats) and are pre-encoded with
``streams.codec.encode_plain``. Each stage is timed over the whole loop with
``time.perf_counter_ns``:

* cold: first pass over the records with the identifier caches of ``streams.pipeline.identity``,
  ``streams.pipeline.phone`` and ``streams.pipeline.country`` cleared (every email / phone is new to the process);
* warm: second pass over the same records right after (the caches hit).

Each figure is the median of ``--repeats`` such cold/warm pairs (the JSON also has the minima).
The process is pinned to one CPU (``sched_setaffinity``) where the OS allows it. ``--clock cpu``
times with the process's CPU time instead of the wall clock: on a shared machine it leaves out the
time other jobs hold the CPU (not their effect on caches). ``--chunk N`` times each pass in chunks
of N records (each chunk cold right after clearing the caches, then warm) and sums the per-chunk
minima (and medians) over the repeats: a burst of load from other jobs only spoils the repeats it
hits, so the minima stay close to a quiet machine's figures.

The output also gives an interpreter probe (µs for a fixed slice of pure-Python work, best of 7,
before and after the stages; ``probe_us`` in the JSON): how fast the machine ran Python during
the run. Figures from two runs compare in proportion to their probes.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import struct
import sys
import time
import timeit
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO / "examples" / "bridge.yaml"
ROUTE = "purchase_completed"
TARGET_US = 25.0  # whole transform, µs per record
SCHEMA_ID = 42  # Confluent schema id served by the fake registry
NATIVE_STAGES = ("decode plain (native)", "whole (native)")
NATIVE_BATCH = 500  # records per native call, as the worker hands it a consumed batch
STAGES = ("decode plain", "decode confluent", "map", "enrich + consent", "encode", "whole", *NATIVE_STAGES)


# --------------------------------------------------------------------------- setup


def pin_one_core() -> int | None:
    """Pin this process to one CPU (the last one it may use); None when the OS does not allow it."""
    try:
        cpu = max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return cpu
    except (AttributeError, OSError):
        return None


def identifier_caches() -> list[Any]:
    """The lru_caches of the identity, phone and country modules (found by introspection)."""
    import streams.pipeline.country as country
    import streams.pipeline.identity as identity
    import streams.pipeline.phone as phone

    caches: list[Any] = []
    for mod in (identity, phone, country):
        for obj in vars(mod).values():
            is_cache = callable(getattr(obj, "cache_clear", None)) and getattr(obj, "__module__", None) == mod.__name__
            if is_cache and not any(obj is c for c in caches):  # a cache may be bound to two names
                caches.append(obj)
    return caches


class _Forget:
    """A native plan's remembered answers, cleared like an lru_cache."""

    def __init__(self, plan: Any) -> None:
        self.cache_clear = plan.forget


def clear_caches(caches: list[Any]) -> None:
    for c in caches:
        c.cache_clear()


class Fixture:
    """Everything a stage needs, built once: config, pipeline, decoders, records and their bytes."""

    def __init__(self, n: int, config_path: Path = DEFAULT_CONFIG, seed: int = 7) -> None:
        from streams.codec import Decoder, SchemaStore, encode_plain, load_schema_file, parse
        from streams.config import load_config
        from streams.dev.samples import SampleFactory
        from streams.pipeline.transform import RoutePipeline
        from streams.routes import build_pipelines

        self.config = load_config(config_path, env={"ZEOTAP_WRITE_KEY": "bench"})
        from streams.native import attach_plans

        built = build_pipelines(self.config, routes=[ROUTE])[ROUTE]
        attach_plans({ROUTE: built}, self.config.worker.native)
        # the Python pipeline (the reference) and, when the extension is built, the route with its native plan
        self.pipeline = RoutePipeline(ROUTE, built.route, built.destination, built.decoder)
        self.native_pipeline = built if built.native is not None else None
        self.native_fallback: dict[str, Any] = {}  # set by check()
        route = self.config.routes[ROUTE]
        schema = load_schema_file(self.config.schema_path(route))
        schema_text = json.dumps(schema)

        assert self.pipeline.decoder is not None
        self.plain_decoder = self.pipeline.decoder  # the route's own decoder (framing auto -> plain)

        def fetch_by_id(schema_id: int) -> str:  # a registry that always knows the route's schema
            return schema_text

        self.confluent_decoder = Decoder(schema, "confluent", SchemaStore(fetch_by_id))

        factory = SampleFactory(seed)
        self.records = [factory.record(ROUTE) for _ in range(n)]
        parsed = parse(schema)
        self.plain = [encode_plain(parsed, r) for r in self.records]
        header = struct.pack(">bI", 0, SCHEMA_ID)
        self.confluent = [header + b for b in self.plain]
        # decoded form (timestamps as datetimes etc.), the input of the map stage
        self.decoded = [self.plain_decoder.decode(b) for b in self.plain]
        self.caches = identifier_caches()
        if self.native_pipeline is not None:  # cold means cold for the plan too: it forgets Python's answers
            self.caches.append(_Forget(self.native_pipeline.native))

        emails = [r["customer"]["email"] for r in self.records if r["customer"]["email"]]
        phones = [r["customer"]["phone"] for r in self.records if r["customer"]["phone"]]
        self.distinct = {
            "emails": len(emails),
            "distinct_emails": len(set(emails)),
            "phones": len(phones),
            "distinct_phones": len(set(phones)),
            "avro_bytes_mean": round(sum(map(len, self.plain)) / n, 1),
        }

    def mapped(self) -> list[dict[str, dict[str, Any]]]:
        """Fresh output of the map stage (enrich mutates it), with the event id as process_record sets it."""
        apply = self.pipeline.mapping.apply
        out = []
        for rec in self.decoded:
            sections = apply(rec).sections
            sections.setdefault("event", {})
            out.append(sections)
        return out

    def check(self) -> dict[str, int]:
        """Stage-by-stage output == RoutePipeline.process output, the native core's == the Python one's;
        returns the outcome counts (and sets `native_fallback`: records the native core handed back to Python)."""
        from streams.pipeline.outcome import Payload

        clear_caches(self.caches)
        sections = self.mapped()
        p = self.pipeline
        kinds: dict[str, int] = {}
        handed_back = 0
        made = self.native_pipeline.native_payloads(list(self.plain))[0] if self.native_pipeline is not None else None  # type: ignore[index]
        for i, (raw, sec) in enumerate(zip(self.plain, sections, strict=True)):
            outcome = p.process(raw, ROUTE, 0, i)
            if made is not None:
                handed_back += made[i] is None
                assert made[i] is None or made[i] == outcome, i
            kinds[type(outcome).__name__] = kinds.get(type(outcome).__name__, 0) + 1
            assert self.confluent_decoder.decode(self.confluent[i]) == self.decoded[i]
            if isinstance(outcome, Payload):
                assert p._enrich(self.decoded[i], sec, sec["event"]["eventId"]) is None
                body = _encode(p, sec)
                assert body == outcome.body, (i, body, outcome.body)
        if self.native_pipeline is not None:
            stats = self.native_pipeline.native.stats()  # type: ignore[union-attr]
            self.native_fallback = {
                "records_handed_back_to_python": round(handed_back / len(self.plain), 4),
                "handed_back_by_reason": stats["handed_back"],
                "values_asked_of_python_by_kind": stats["asked"],
            }
        return kinds


def _encode(p: Any, sections: dict[str, dict[str, Any]]) -> bytes:
    import orjson

    return orjson.dumps(p.destination.payload(sections, p.nce))


# --------------------------------------------------------------------------- stages
# Each stage: prepare() -> items (untimed), run(items) (timed over the whole loop).


def stages(fx: Fixture) -> dict[str, tuple[Callable[[], Any], Callable[[Any], None]]]:
    import orjson

    from streams.pipeline import consent as consent_mod

    p = fx.pipeline
    plain_decode = fx.plain_decoder.decode
    confluent_decode = fx.confluent_decoder.decode
    apply = p.mapping.apply
    enrich = p._enrich
    evaluate = consent_mod.evaluate
    policy = p.policy
    payload = p.destination.payload
    nce = p.nce
    dumps = orjson.dumps
    process = p.process
    decoded = fx.decoded

    def run_decode_plain(items: list[bytes]) -> None:
        for b in items:
            plain_decode(b)

    def run_decode_confluent(items: list[bytes]) -> None:
        for b in items:
            confluent_decode(b)

    def run_map(items: list[dict[str, Any]]) -> None:
        for rec in items:
            apply(rec)

    def run_enrich(items: list[tuple[dict[str, Any], dict[str, dict[str, Any]]]]) -> None:
        for rec, sections in items:
            if enrich(rec, sections, sections["event"]["eventId"]) is None:
                evaluate(sections.get("consent") or {}, policy)

    def mapped_pairs() -> list[tuple[dict[str, Any], dict[str, dict[str, Any]]]]:
        return list(zip(decoded, fx.mapped(), strict=True))

    def run_encode(items: list[dict[str, dict[str, Any]]]) -> None:
        for sections in items:
            dumps(payload(sections, nce))

    def run_whole(items: list[bytes]) -> None:
        for offset, b in enumerate(items):
            process(b, ROUTE, 0, offset)

    def enriched() -> list[dict[str, dict[str, Any]]]:
        pairs = mapped_pairs()
        run_enrich(pairs)
        return [sections for _rec, sections in pairs]

    out = {
        "decode plain": (lambda: fx.plain, run_decode_plain),
        "decode confluent": (lambda: fx.confluent, run_decode_confluent),
        "map": (lambda: decoded, run_map),
        "enrich + consent": (mapped_pairs, run_enrich),
        "encode": (enriched, run_encode),
        "whole": (lambda: fx.plain, run_whole),
    }
    if fx.native_pipeline is not None:
        native = fx.native_pipeline
        native_payloads, native_process = native.native_payloads, native.process

        def run_whole_native(items: list[bytes]) -> None:
            # as the worker does it: one call per consumed batch, the Python pipeline for what it hands back
            for start in range(0, len(items), NATIVE_BATCH):
                batch: list[bytes | None] = list(items[start : start + NATIVE_BATCH])
                for offset, (value, made) in enumerate(zip(batch, native_payloads(batch)[0], strict=True), start):  # type: ignore[index]
                    if made is None:
                        native_process(value, ROUTE, 0, offset)

        from streams._native import _avro_decode_count  # the native decoder alone (a test hook of the extension)

        schema_json = json.dumps(native.decoder.reader_schema)  # type: ignore[union-attr]

        def run_decode_native(items: list[bytes]) -> None:
            _avro_decode_count(schema_json, items, 1)

        out["decode plain (native)"] = (lambda: fx.plain, run_decode_native)
        out["whole (native)"] = (lambda: fx.plain, run_whole_native)

    return out


CLOCKS: dict[str, Callable[[], int]] = {"wall": time.perf_counter_ns, "cpu": time.process_time_ns}
_clock = time.perf_counter_ns


def _timed(run: Callable[[Any], None], items: Any) -> int:
    gc.collect()
    t0 = _clock()
    run(items)
    return _clock() - t0


def measure(fx: Fixture, repeats: int, only: tuple[str, ...] = STAGES, chunk: int = 0) -> dict[str, dict[str, float]]:
    """Median µs per record, cold and warm, for each stage (see `measure_chunked` for chunk > 0)."""
    if chunk > 0:
        return measure_chunked(fx, repeats, only, chunk)
    n = len(fx.records)
    results: dict[str, dict[str, float]] = {}
    for name, (prepare, run) in stages(fx).items():
        if name not in only:
            continue
        cold: list[int] = []
        warm: list[int] = []
        for _ in range(repeats):
            items = prepare()
            clear_caches(fx.caches)
            cold.append(_timed(run, items))
            items = prepare()  # enrich mutates its input: a fresh copy, same records
            warm.append(_timed(run, items))
        results[name] = {
            "cold_us": statistics.median(cold) / n / 1000,
            "warm_us": statistics.median(warm) / n / 1000,
            "cold_min_us": min(cold) / n / 1000,
            "warm_min_us": min(warm) / n / 1000,
        }
    return results


def measure_chunked(fx: Fixture, repeats: int, only: tuple[str, ...], chunk: int) -> dict[str, dict[str, float]]:
    """For a shared machine: each pass timed in chunks of `chunk` records, each chunk cold (caches
    cleared just before it) then warm (the same chunk again); per chunk the *minimum* over the
    repeats, summed over the chunks. A burst of load from other jobs then only spoils the repeats
    it hits. Cold is per chunk: identifiers repeated between chunks are new again in each.
    The medians reported are the per-chunk medians, summed likewise."""
    n = len(fx.records)
    starts = range(0, n, chunk)
    results: dict[str, dict[str, float]] = {}
    for name, (prepare, run) in stages(fx).items():
        if name not in only:
            continue
        cold: list[list[int]] = [[] for _ in starts]
        warm: list[list[int]] = [[] for _ in starts]
        for _ in range(repeats):
            cold_items, warm_items = prepare(), prepare()  # enrich mutates its input: fresh copies
            for i, start in enumerate(starts):
                clear_caches(fx.caches)
                cold[i].append(_timed(run, cold_items[start : start + chunk]))
                warm[i].append(_timed(run, warm_items[start : start + chunk]))
        results[name] = {
            "cold_us": sum(statistics.median(c) for c in cold) / n / 1000,
            "warm_us": sum(statistics.median(w) for w in warm) / n / 1000,
            "cold_min_us": sum(min(c) for c in cold) / n / 1000,
            "warm_min_us": sum(min(w) for w in warm) / n / 1000,
        }
    return results


# --------------------------------------------------------------------------- profile


@contextmanager
def _profiler(interval: float) -> Iterator[Any]:
    try:
        from pyinstrument import Profiler
    except ImportError:  # pragma: no cover - dev extra
        sys.exit("pyinstrument is not installed: pip install -e '.[dev]' (or pip install pyinstrument)")
    prof = Profiler(interval=interval)
    prof.start()
    try:
        yield prof
    finally:
        prof.stop()


def profile(fx: Fixture, passes: int, interval: float = 0.0005) -> str:
    """pyinstrument text report of the whole transform: `passes` cold and warm pass pairs."""
    _, run = stages(fx)["whole"]
    out = []
    for label, warm in (("cold", False), ("warm", True)):
        clear_caches(fx.caches)
        if warm:
            run(fx.plain)
        with _profiler(interval) as prof:
            for _ in range(passes):
                if not warm:
                    clear_caches(fx.caches)
                run(fx.plain)
        out.append(f"===== whole transform, {label} ({passes} x {len(fx.plain)} records) =====")
        out.append(prof.output_text(unicode=True, color=False, show_all=False, short_mode=False))
    return "\n".join(out)


# --------------------------------------------------------------------------- report


def table(results: dict[str, dict[str, float]]) -> str:
    lines = [
        "| stage | cold µs/record | warm µs/record | cold min | warm min |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    keys = ("cold_us", "warm_us", "cold_min_us", "warm_min_us")
    for name, r in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{r[k]:.2f}" for k in keys) + " |")
    parts = ("decode plain", "map", "enrich + consent", "encode")
    if all(p in results for p in parts):
        sums = [sum(results[p][k] for p in parts) for k in keys]
        lines.append("| sum of stages (plain) | " + " | ".join(f"{v:.2f}" for v in sums) + " |")
    return "\n".join(lines)


def _probe_work() -> int:
    # a fixed slice of interpreter work like the transform's: dict builds, lookups, str methods, calls
    total = 0
    for i in range(200):
        rec = {"id": i, "email": " A.B@Example.com ", "n": i * 3}
        total += len(rec["email"].strip().lower()) + rec.get("n", 0)
    return total


def interpreter_probe_us() -> float:
    """µs for a fixed piece of pure-Python work, best of 7: how fast this machine runs Python right
    now. A shared machine's speed swings during the day; compare runs by the ratio of their probes."""
    return round(min(timeit.repeat(_probe_work, number=200, repeat=7)) / 200 * 1e6, 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=20000, help="records per pass (default 20000)")
    ap.add_argument("--repeats", type=int, default=5, help="cold/warm pass pairs per stage; median reported (default 5)")
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="bridge config (default examples/bridge.yaml)")
    ap.add_argument("--stage", action="append", choices=STAGES, help="only these stages (repeatable)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--profile", action="store_true", help="also print a pyinstrument profile of the whole transform")
    ap.add_argument("--profile-passes", type=int, default=3, help="passes per profile (default 3)")
    ap.add_argument("--check", action="store_true", help=f"exit 1 when the whole transform is over {TARGET_US:g} µs/record")
    ap.add_argument(
        "--chunk",
        type=int,
        default=0,
        help="time in chunks of this many records and report the sum of per-chunk minima and medians "
        "(for a busy shared machine; 0: whole passes, the default)",
    )
    ap.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="wall",
        help="wall: perf_counter (default); cpu: this process's CPU time (process_time), which leaves out the "
        "time other jobs hold the CPU on a shared machine",
    )
    args = ap.parse_args(argv)
    global _clock
    _clock = CLOCKS[args.clock]
    if args.records < 1 or args.repeats < 1:
        ap.error("--records and --repeats must be at least 1")

    cpu = pin_one_core()
    fx = Fixture(args.records, args.config)
    outcomes = fx.check()
    probe_before = interpreter_probe_us()
    results = measure(fx, args.repeats, tuple(args.stage or STAGES), args.chunk)
    probe_after = interpreter_probe_us()
    # the transform the worker runs: the native plan when it is built, else the Python pipeline
    whole = results.get("whole (native)") or results.get("whole")
    ok = whole is None or max(whole["cold_us"], whole["warm_us"]) < TARGET_US
    meta = {
        "route": ROUTE,
        "config": str(args.config),
        "records": args.records,
        "repeats": args.repeats,
        "cpu_pinned": cpu,
        "clock": args.clock,
        "chunk": args.chunk,
        "cpus_online": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "outcomes": outcomes,
        **fx.distinct,
        "native": None if fx.native_pipeline is None else fx.native_fallback,
        "cold_clears": [f"{type(c).__module__}.{getattr(c, '__qualname__', type(c).__qualname__)}" for c in fx.caches],
        "probe_us": [probe_before, probe_after],
    }
    if args.json:
        print(json.dumps({**meta, "stages": results, "target_us": TARGET_US, "target_met": ok}, indent=2))
    else:
        print(
            f"{ROUTE} x {args.records} records ({fx.distinct['distinct_emails']} distinct emails, "
            f"{fx.distinct['distinct_phones']} distinct phones, {fx.distinct['avro_bytes_mean']} Avro bytes "
            f"on average), median of {args.repeats}, pinned to CPU {cpu}, {args.clock} clock, Python {meta['python']}; "
            f"outcomes {outcomes}; interpreter probe {probe_before} / {probe_after} µs (before / after)"
        )
        print(table(results))
        if fx.native_pipeline is None:
            print("native core: not built (streams._native); the (native) stages are left out")
        else:
            print(f"native plan: {meta['native']}")
        if whole is not None:
            print(
                f"target whole{' (native)' if 'whole (native)' in results else ''} < {TARGET_US:g} µs/record: "
                f"{'met' if ok else 'MISSED'} "
                f"(cold {whole['cold_us']:.2f}, warm {whole['warm_us']:.2f})"
            )
    if args.profile:
        print(profile(fx, args.profile_passes), file=sys.stderr if args.json else sys.stdout)
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
