"""The `s2s-bridge` command line."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import orjson
import typer

from streams import __version__
from streams.config import BridgeConfig, load_config
from streams.errors import ConfigError

app = typer.Typer(
    name="s2s-bridge",
    help="Kafka -> customer-data-platform bridge: Avro business events to server-to-server APIs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
dev_app = typer.Typer(help="Local development services: a real Kafka broker and the destination emulators.")
app.add_typer(dev_app, name="dev")

EXIT_USAGE = 2


def _fail(msg: str, code: int = EXIT_USAGE) -> typer.Exit:
    typer.echo(f"error: {msg}", err=True)
    return typer.Exit(code)


def _load(config: Path) -> BridgeConfig:
    try:
        return load_config(config)
    except ConfigError as exc:
        raise _fail(str(exc)) from None


ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="bridge YAML config")]


@app.command()
def version() -> None:
    """Print the bridge version."""
    typer.echo(__version__)


@app.command()
def transform(
    config: ConfigOpt,
    route: Annotated[str, typer.Option(help="route name from the config")],
    input: Annotated[Path, typer.Option("--input", "-i", help="input file ('-' for stdin)")],
    input_format: Annotated[
        Literal["jsonl", "avro"], typer.Option(help="jsonl: one record per line; avro: object container file")
    ] = "jsonl",
) -> None:
    """Dry run: print what the worker would send (stdout) and what it would not (stderr)."""
    from streams.dryrun import run_transform

    cfg = _load(config)
    if route not in cfg.routes:
        raise _fail(f"unknown route {route!r} (known: {', '.join(cfg.routes)})")
    try:
        stream: Any = sys.stdin.buffer if str(input) == "-" else open(input, "rb")  # noqa: SIM115
    except OSError as exc:
        raise _fail(f"cannot read input {input}: {exc.strerror}") from None
    with stream:
        try:
            run_transform(cfg, route, stream, input_format, sys.stdout.buffer, sys.stderr.buffer)
        except ValueError as exc:
            raise _fail(str(exc)) from None


@app.command()
def peek(
    config: ConfigOpt,
    route: Annotated[str, typer.Option(help="route name from the config")],
    last: Annotated[int | None, typer.Option(help="the N newest records of the topic (by timestamp) [default: 10]")] = None,
    first: Annotated[int | None, typer.Option(help="the N oldest records still in the topic")] = None,
    partition: Annotated[int | None, typer.Option(help="only this partition (needed by --offset-from)")] = None,
    offset_from: Annotated[int | None, typer.Option(help="a range on --partition: its first offset")] = None,
    offset_to: Annotated[int | None, typer.Option(help="the range's last offset, inclusive [default: the newest]")] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for Kafka: metadata, offsets, records")] = 10.0,
    json: Annotated[bool, typer.Option("--json", help="print the summary as JSON on the last stdout line")] = False,
) -> None:
    """Live dry run: the route's pipeline over records of its topic, read without joining the group or
    committing, nothing sent (stdout: what would be sent; stderr: what not; exit 1: Kafka or the
    schema registry did not answer)."""
    from streams.codec import SchemaRegistryUnavailable
    from streams.kafka import KafkaUnavailable
    from streams.peek import Selection, run_peek

    cfg = _load(config)
    if timeout <= 0:
        raise _fail("--timeout must be > 0")
    try:
        selection = Selection.from_options(last, first, partition, offset_from, offset_to)
        report = run_peek(cfg, route, selection, sys.stdout.buffer, sys.stderr.buffer, timeout)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    except (KafkaUnavailable, SchemaRegistryUnavailable) as exc:
        raise _fail(str(exc), 1) from None
    total = sum(report.counts.values())
    typer.echo(report.summary() if total else "no records", err=True)
    if json:
        typer.echo(orjson.dumps({"records": total, **report.counts}).decode())


@app.command()
def worker(config: ConfigOpt) -> None:
    """Run the bridge: consume the routes' topics, deliver, dead-letter, commit."""
    from streams.worker import run_worker

    cfg = _load(config)
    raise typer.Exit(run_worker(cfg))


@app.command()
def replay(
    config: ConfigOpt,
    route: Annotated[str | None, typer.Option(help="route whose dead-letter topic to replay")] = None,
    topic: Annotated[str | None, typer.Option(help="dead-letter topic (default: the route's)")] = None,
    group: Annotated[str | None, typer.Option(help="replay consumer group (default <group>-replay-<route>)")] = None,
    stage: Annotated[list[str] | None, typer.Option(help="only records that failed at this stage (repeatable)")] = None,
    reason: Annotated[list[str] | None, typer.Option(help="only this reason or error class (repeatable)")] = None,
    status: Annotated[list[int] | None, typer.Option(help="only this HTTP status (repeatable)")] = None,
    partition: Annotated[list[int] | None, typer.Option(help="only this original partition (repeatable)")] = None,
    offset_min: Annotated[int | None, typer.Option(help="original offset >= this")] = None,
    offset_max: Annotated[int | None, typer.Option(help="original offset <= this")] = None,
    since: Annotated[str | None, typer.Option(help="original timestamp >= (ISO 8601 or epoch ms)")] = None,
    until: Annotated[str | None, typer.Option(help="original timestamp <= (ISO 8601 or epoch ms)")] = None,
    limit: Annotated[int | None, typer.Option(help="read at most this many dead letters")] = None,
    rate: Annotated[str | None, typer.Option(help="records per second, e.g. 100/s")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="print what would be sent or rejected; send and commit nothing")
    ] = False,
    to_source: Annotated[bool, typer.Option("--to-source", help="re-produce the original records onto their topics")] = False,
    max_replays: Annotated[int, typer.Option(help="park records replayed this many times already")] = 5,
    park: Annotated[
        Literal["topic", "skip"], typer.Option(help="parked records: to <dlt>.parked, or skipped with a report")
    ] = "topic",
    error_timeout: Annotated[
        float, typer.Option(help="stop with exit code 4 when Kafka answers only with errors for this many seconds")
    ] = 30.0,
    json: Annotated[bool, typer.Option("--json", help="print the summary as JSON on the last line")] = False,
) -> None:
    """Re-drive dead-lettered records through today's pipeline and delivery (exit 3: destination refuses
    our credentials; 4: the dead-letter topic could not be read)."""
    from streams.logs import setup_logging
    from streams.replay import Replayer, ReplayFilter, parse_time, run_replay

    cfg = _load(config)
    if route is None and topic is None:
        raise _fail("give --route or --topic")
    if route is None:
        matches = [n for n, r in cfg.routes.items() if r.dlt == topic]
        if not matches:
            raise _fail(f"no route has dead-letter topic {topic!r}")
        if len(matches) > 1:
            raise _fail(f"dead-letter topic {topic!r} is shared by routes {', '.join(matches)}: give --route")
        route = matches[0]
    if route not in cfg.routes:
        raise _fail(f"unknown route {route!r} (known: {', '.join(cfg.routes)})")
    if error_timeout <= 0:
        raise _fail("--error-timeout must be > 0")
    try:
        filters = ReplayFilter(
            stages=set(stage or ()),
            reasons=set(reason or ()),
            statuses=set(status or ()),
            partitions=set(partition or ()),
            min_offset=offset_min,
            max_offset=offset_max,
            since_ms=parse_time(since) if since else None,
            until_ms=parse_time(until) if until else None,
        )
        rps = float(rate.removesuffix("/s")) if rate else None
    except ValueError as exc:
        raise _fail(f"bad filter: {exc}") from None
    setup_logging(cfg.worker.log_level, cfg.worker.log_format)
    replayer = Replayer(
        cfg,
        route,
        topic=topic,
        group=group,
        filters=filters,
        limit=limit,
        rate=rps,
        dry_run=dry_run,
        to_source=to_source,
        max_replays=max_replays,
        park=park,
        progress=sys.stderr.isatty() and not json,
        error_timeout=error_timeout,
    )
    code, summary = run_replay(replayer)
    if json:
        typer.echo(orjson.dumps(summary.as_dict()).decode())
    else:
        for k, v in summary.as_dict().items():
            typer.echo(f"{k:<22} {v}", err=dry_run)
    raise typer.Exit(code)


@app.command()
def scaffold(
    topic: Annotated[str, typer.Option(help="the Kafka topic the route reads")],
    schema: Annotated[Path | None, typer.Option(help="the topic's Avro schema (.avsc)")] = None,
    subject: Annotated[str | None, typer.Option(help="or: a schema-registry subject (its latest version)")] = None,
    version: Annotated[int | None, typer.Option(help="the subject's version instead of the latest")] = None,
    registry_url: Annotated[str | None, typer.Option(help="schema registry URL (default: the config's)")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="the config the route is for: paths relative to it, checked to load")
    ] = None,
    schema_out: Annotated[
        Path | None, typer.Option(help="where to save the subject's schema (default avro_schemas/<subject>.avsc)")
    ] = None,
    route: Annotated[str | None, typer.Option(help="route name (default: the topic, sanitised)")] = None,
    destination: Annotated[
        str | None, typer.Option(help="destination name (default: the config's only one, else zeotap)")
    ] = None,
    framing: Annotated[Literal["auto", "confluent", "single_object", "plain"], typer.Option(help="the route's framing")] = "auto",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write the route here instead of stdout")] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite --output and --schema-out")] = False,
) -> None:
    """Write a route with a mapping skeleton from a topic's Avro schema (fields it could not place are comments)."""
    from streams.codec import SchemaRegistryUnavailable
    from streams.scaffold import ScaffoldRequest, run_scaffold

    request = ScaffoldRequest(
        topic=topic,
        schema=schema,
        subject=subject,
        version=version,
        registry_url=registry_url,
        config=config,
        schema_out=schema_out,
        route=route,
        destination=destination,
        framing=framing,
        output=output,
        force=force,
    )
    try:
        result = run_scaffold(request)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    except SchemaRegistryUnavailable as exc:
        raise _fail(str(exc), 1) from None
    if result.schema_written is not None:
        typer.echo(f"schema saved to {result.schema_written}", err=True)
    if output is None:
        typer.echo(result.scaffold.text, nl=False)
    else:
        typer.echo(f"route {result.scaffold.route} written to {output}", err=True)
    typer.echo(f"{len(result.scaffold.unplaced)} field(s) not placed (listed as comments); review the route before use", err=True)


@app.command()
def check(
    config: ConfigOpt,
    json: Annotated[bool, typer.Option("--json", help="print the report as one JSON object")] = False,
    timeout: Annotated[float, typer.Option(help="seconds per Kafka / registry call")] = 10.0,
    auth_probe: Annotated[
        bool, typer.Option("--auth-probe/--no-auth-probe", help="POST an empty batch (no events) to check credentials")
    ] = True,
    config_only: Annotated[
        bool,
        typer.Option(
            "--config-only",
            help="only validate the config (schema files, mapping paths and types); reach no Kafka, registry or destination",
        ),
    ] = False,
) -> None:
    """Check config, Kafka topics and group lag, schema registry and destination auth; exit 1 if something is not OK."""
    cfg = _load(config)
    if config_only:
        r, d = len(cfg.routes), len(cfg.destinations)
        typer.echo(f"config OK: {r} route{'s' * (r != 1)}, {d} destination{'s' * (d != 1)}")
        raise typer.Exit(0)

    from rich.console import Console

    from streams.ops import render_check, run_check

    report = run_check(cfg, config, timeout=timeout, auth_probes=auth_probe)
    if json:
        typer.echo(orjson.dumps(report.as_dict()).decode())
    else:
        render_check(report, Console(width=max(160, Console().width)))
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def status(
    config: ConfigOpt,
    metrics_url: Annotated[
        list[str] | None, typer.Option(help="a worker's /metrics URL for the paused state (repeatable: one per pod)")
    ] = None,
    max_scan: Annotated[int, typer.Option(help="read at most this many records per dead-letter topic")] = 100_000,
    timeout: Annotated[float, typer.Option(help="seconds per Kafka call")] = 10.0,
    json: Annotated[bool, typer.Option("--json", help="print the report as one JSON object")] = False,
) -> None:
    """Per route: consumer lag, dead letters by stage and reason, paused or not; exit 1 if something could not be read."""
    from rich.console import Console

    from streams.ops import gather_status, render_status

    cfg = _load(config)
    if max_scan < 0:
        raise _fail("--max-scan must be >= 0")
    report = gather_status(cfg, metrics_urls=metrics_url or (), max_scan=max_scan, timeout=timeout)
    if json:
        typer.echo(orjson.dumps(report.as_dict()).decode())
    else:
        render_status(report, Console(width=max(160, Console().width)))
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def demo(
    json: Annotated[bool, typer.Option("--json", help="print the summary as one JSON object on the last line")] = False,
    events: Annotated[int, typer.Option(help="good events per schema")] = 60,
) -> None:
    """Run everything locally: Kafka, emulator, sample events, worker; print what became of each record."""
    from streams.dev.demo import run_demo

    raise typer.Exit(run_demo(per_event=events, as_json=json))


@dev_app.command("kafka")
def dev_kafka() -> None:
    """Start a single-node Kafka (KRaft) on 127.0.0.1 from the Apache Kafka jars; Ctrl-C stops it."""
    from streams.dev.kafka import main_dev_kafka

    raise typer.Exit(main_dev_kafka())


@dev_app.command("fetch-kafka")
def dev_fetch_kafka() -> None:
    """Fetch the Apache Kafka broker jars from Maven Central into the cache (once; needs java + mvn)."""
    from streams.dev.kafka import BrokerError, ensure_jars

    try:
        libs = ensure_jars()
    except BrokerError as exc:
        raise _fail(str(exc), 1) from None
    typer.echo(f"Kafka jars ready in {libs}")


# the flags are the emulator's own (streams.dev.emulator.cli.build_parser, shared with
# `python -m streams.dev.emulator`): typer hands every argument, --help included, to that parser
@dev_app.command(
    "emulator",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def dev_emulator(ctx: typer.Context) -> None:
    """Start the local destination emulators (Zeotap, Audiohook, activation API, schema registry).

    --help lists every flag (those of python -m streams.dev.emulator). The keys accepted without
    --write-key / --api-key: $ZEOTAP_WRITE_KEY / $ACTIVATION_API_KEY, else dev-key / dev-api-key."""
    from streams.dev.emulator.cli import main as emulator_main

    emulator_main(
        ctx.args,
        prog="s2s-bridge dev emulator",
        write_key=os.environ.get("ZEOTAP_WRITE_KEY") or "dev-key",
        api_key=os.environ.get("ACTIVATION_API_KEY") or "dev-api-key",
    )


def main() -> None:
    # typer writes usage errors with exit code 2, which is what we document
    try:
        app()
    except BrokenPipeError:  # e.g. `s2s-bridge transform ... | head`
        sys.stderr = io.StringIO()
        raise SystemExit(0) from None


__all__ = ["app", "main"]
