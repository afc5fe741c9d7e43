"""The `s2s-bridge` command line."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from streams import __version__
from streams.config import BridgeConfig, ConfigError, load_config

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
def worker(config: ConfigOpt) -> None:
    """Run the bridge: consume the routes' topics, deliver, dead-letter, commit."""
    from streams.app import run_worker

    cfg = _load(config)
    raise typer.Exit(run_worker(cfg))


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
    from streams.dev.broker import main_dev_kafka

    raise typer.Exit(main_dev_kafka())


@dev_app.command("fetch-kafka")
def dev_fetch_kafka() -> None:
    """Fetch the Apache Kafka broker jars from Maven Central into the cache (once; needs java + mvn)."""
    from streams.dev.broker import BrokerError, ensure_jars

    try:
        libs = ensure_jars()
    except BrokerError as exc:
        raise _fail(str(exc), 1) from None
    typer.echo(f"Kafka jars ready in {libs}")


@dev_app.command("emulator")
def dev_emulator(
    port: Annotated[int, typer.Option(help="listen port on 127.0.0.1")] = 8080,
    write_key: Annotated[str, typer.Option(envvar="ZEOTAP_WRITE_KEY", help="Zeotap write key to accept")] = "dev-key",
    api_key: Annotated[str, typer.Option(envvar="ACTIVATION_API_KEY", help="activation API key")] = "dev-api-key",
) -> None:
    """Start the local destination emulators (Zeotap, Audiohook, activation API, schema registry)."""
    from streams.dev.emulator import main_dev_emulator

    main_dev_emulator(port=port, write_key=write_key, api_key=api_key)


def main() -> None:
    # typer writes usage errors with exit code 2, which is what we document
    try:
        app()
    except BrokenPipeError:  # e.g. `s2s-bridge transform ... | head`
        sys.stderr = io.StringIO()
        raise SystemExit(0) from None


__all__ = ["app", "main"]
