"""The emulator's command line: ``python -m streams.dev.emulator`` and ``s2s-bridge dev emulator``.

Both are :func:`main`: one parser (:func:`build_parser`), so every flag is reachable from both under
the same name; they differ only in the program name and the default Zeotap write key and activation
API key (``s2s-bridge dev emulator`` reads them from ``ZEOTAP_WRITE_KEY`` / ``ACTIVATION_API_KEY``,
else ``dev-key`` / ``dev-api-key``).
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from streams.dev.emulator.admin import ADMIN_PREFIX
from streams.dev.emulator.client import EmulatorClient
from streams.dev.emulator.config import DEFAULT_API_KEY, DOC_WRITE_KEY, GLOBAL, EmulatorConfig, FaultConfig
from streams.dev.emulator.server import run_emulator

#: FaultConfig knobs with a float flag of their own (``--error-rate``, ...), applied to all destinations
_GLOBAL_FLOAT_KNOBS = ("error_rate", "throttle_rate", "slow_rate", "drop_rate", "slow_seconds", "outage_for_seconds")
DESCRIPTION = "Local emulator of the three destination APIs, plus a minimal Confluent Schema Registry."


def main_dev_emulator(
    host: str = "127.0.0.1",
    port: int = 8080,
    write_key: str | Sequence[str] = DOC_WRITE_KEY,
    api_key: str | Sequence[str] = DEFAULT_API_KEY,
    regions: Sequence[str] = ("EU", "US", "IN", "UK"),
    pixel_ids: Sequence[str] | None = None,
    keep_events: bool = True,
    max_kept_events: int | None = 100_000,
    strict: bool = True,
    require_country: bool = True,
    auth_status: int = 401,
    seed: int | None = None,
    faults: Mapping[str, Mapping[str, Any]] | None = None,
    registry_auth: str | None = None,
    activation: Mapping[str, Any] | None = None,
    gzip: Sequence[str] = (),
    zeotap_limit_of: str = "json",
    options: Mapping[str, Any] | None = None,
) -> None:
    """Entry point of ``s2s-bridge dev emulator``: prints ``emulator: <base url>`` first, then
    the endpoint URLs, and serves until Ctrl-C.

    ``faults`` maps a destination (or ``"*"``) to :class:`FaultConfig` knobs;
    ``activation`` sets the activation API's ``EmulatorConfig.activation_*`` options by their short
    name (``path``, ``auth``, ``auth_header``, ``username``, ``batch_key``, ``idempotency_header``);
    ``registry_auth`` is ``"user:password"`` for Schema Registry basic auth; ``gzip`` names the
    destinations whose API accepts gzipped bodies (none by default: no document mentions it);
    ``zeotap_limit_of`` which size Zeotap's 20 MB bounds when gzipped (``json`` or ``wire``);
    ``options`` any other :class:`EmulatorConfig` field by its name (e.g. ``audiohook_timestamps``).
    """
    basic: tuple[str, str] | None = None
    if registry_auth:
        user, sep, password = registry_auth.partition(":")
        if not sep:
            raise ValueError("registry_auth must be 'user:password'")
        basic = (user, password)
    config = EmulatorConfig(
        zeotap_write_keys=(write_key,) if isinstance(write_key, str) else tuple(write_key),
        zeotap_regions=tuple(regions),
        zeotap_auth_status=auth_status,
        zeotap_strict=strict,
        zeotap_require_country=require_country,
        audiohook_pixel_ids=tuple(pixel_ids) if pixel_ids else None,
        activation_api_keys=(api_key,) if isinstance(api_key, str) else tuple(api_key),
        keep_events=keep_events,
        max_kept_events=max_kept_events,
        faults={dest: FaultConfig.from_dict(knobs) for dest, knobs in (faults or {}).items()},
        seed=seed,
        registry_basic_auth=basic,
        **{f"activation_{k}": v for k, v in (activation or {}).items()},
        gzip_destinations=tuple(gzip),
        zeotap_limit_of=zeotap_limit_of,  # type: ignore[arg-type]  # checked by EmulatorConfig
        **dict(options or {}),
    )

    def ready(base_url: str) -> None:
        urls = EmulatorClient(base_url, registry_prefix=config.registry_prefix, activation_path=config.activation_path)
        print(f"emulator: {base_url}", flush=True)
        print(f"  zeotap:          POST {urls.zeotap_url()}", flush=True)
        print(f"  audiohook:       POST {urls.audiohook_url('<pixel_id>')}", flush=True)
        print(f"  activation:      POST {urls.activation_url}", flush=True)
        print(f"  schema registry: {urls.registry_url}", flush=True)
        print(f"  admin:           {base_url}{ADMIN_PREFIX}/stats", flush=True)

    run_emulator(host, port, config, on_ready=ready)


def build_parser(prog: str = "python -m streams.dev.emulator") -> argparse.ArgumentParser:
    """Every flag of the emulator, for both of its command lines."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port (printed on stdout)")
    parser.add_argument("--write-key", action="append", help="Zeotap write key (repeatable)")
    parser.add_argument("--api-key", action="append", help="activation API key (repeatable)")
    parser.add_argument("--region", action="append", help="valid Zeotap region (repeatable)")
    parser.add_argument("--pixel-id", action="append", help="known Audiohook id (repeatable; default: any)")
    parser.add_argument("--no-keep-events", action="store_true", help="keep only ids and receipt times")
    parser.add_argument("--max-kept-events", type=int, default=100_000, help="per destination; 0: unbounded")
    parser.add_argument("--no-strict", action="store_true", help="no Zeotap per-event validation")
    parser.add_argument("--no-require-country", action="store_true")
    parser.add_argument("--auth-status", type=int, default=401, help="Zeotap status for a bad write key")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--faults", help='JSON: {"*": {"error_rate": 0.1}, "zeotap": {...}}')
    parser.add_argument("--registry-auth", help="user:password for Schema Registry basic auth")
    act = parser.add_argument_group("activation API (its guide names no path, auth, batch form or idempotency header)")
    act.add_argument("--activation-path", help="endpoint path (default /activation/events)")
    act.add_argument("--activation-auth", choices=("bearer", "basic", "header"), help="credential scheme (default bearer)")
    act.add_argument("--activation-auth-header", help="header carrying the api key with --activation-auth header")
    act.add_argument("--activation-username", help="username with --activation-auth basic (the api key is the password)")
    act.add_argument("--activation-batch-key", help='take {"<key>": [events]} batches (default: one event per request)')
    act.add_argument("--activation-idempotency-header", help="idempotency header name ('none': dedupe by event_id only)")
    parser.add_argument(
        "--gzip", action="append", default=[], metavar="DEST", help="this API accepts gzipped bodies (repeatable; default none)"
    )
    parser.add_argument("--zeotap-limit-of", choices=("json", "wire"), default="json", help="Zeotap's 20 MB bounds this size")
    zeo = parser.add_argument_group("Zeotap (what its document does not fix)")
    zeo.add_argument(
        "--zeotap-user-id-key",
        action="append",
        metavar="KIND",
        help="a user key that is an identifier, normalised (repeatable; default: the documented kinds)",
    )
    zeo.add_argument("--no-zeotap-timestamps", action="store_true", help="do not validate event timestamps")
    aud = parser.add_argument_group("Audiohook (what its document does not fix)")
    aud.add_argument(
        "--audiohook-timestamps",
        choices=("strict", "iso8601"),
        help="strict: YYYY-MM-DDTHH:mm:ss.sssZ only (default); iso8601: any with a zone",
    )
    aud.add_argument(
        "--audiohook-require-example-fields",
        action="store_true",
        help="also require timestamp and visitor_id, which every example of the document carries",
    )
    for knob in _GLOBAL_FLOAT_KNOBS:
        parser.add_argument("--" + knob.replace("_", "-"), type=float, help="global fault knob")
    parser.add_argument("--retry-after", type=int, help="global fault knob")
    parser.add_argument("--error-status", type=int, help="global fault knob")
    return parser


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The EmulatorConfig fields given by the Zeotap and Audiohook flags (the others keep their defaults)."""
    options: dict[str, Any] = {}
    if args.zeotap_user_id_key:
        options["zeotap_user_id_keys"] = tuple(args.zeotap_user_id_key)
    if args.no_zeotap_timestamps:
        options["zeotap_timestamps"] = False
    if args.audiohook_timestamps is not None:
        options["audiohook_timestamps"] = args.audiohook_timestamps
    if args.audiohook_require_example_fields:
        options["audiohook_require_example_fields"] = True
    return options


def _activation_options(args: argparse.Namespace) -> dict[str, Any]:
    """The activation API's options given on the command line (the others keep their defaults)."""
    names = ("path", "auth", "auth_header", "username", "batch_key", "idempotency_header")
    options = {n: getattr(args, f"activation_{n}") for n in names if getattr(args, f"activation_{n}") is not None}
    if str(options.get("idempotency_header", "")).lower() == "none":
        options["idempotency_header"] = None
    return options


def main(
    argv: Sequence[str] | None = None,
    *,
    prog: str = "python -m streams.dev.emulator",
    write_key: str = DOC_WRITE_KEY,
    api_key: str = DEFAULT_API_KEY,
) -> None:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and serve; ``write_key`` / ``api_key`` are the
    keys accepted when no ``--write-key`` / ``--api-key`` is given."""
    args = build_parser(prog).parse_args(argv)
    faults: dict[str, dict[str, Any]] = orjson.loads(args.faults) if args.faults else {}
    knobs = {k: getattr(args, k) for k in (*_GLOBAL_FLOAT_KNOBS, "retry_after", "error_status") if getattr(args, k) is not None}
    if knobs:
        faults.setdefault(GLOBAL, {}).update(knobs)
    main_dev_emulator(
        host=args.host,
        port=args.port,
        write_key=args.write_key or write_key,
        api_key=args.api_key or api_key,
        regions=args.region or ("EU", "US", "IN", "UK"),
        pixel_ids=args.pixel_id,
        keep_events=not args.no_keep_events,
        max_kept_events=args.max_kept_events or None,
        strict=not args.no_strict,
        require_country=not args.no_require_country,
        auth_status=args.auth_status,
        seed=args.seed,
        faults=faults,
        registry_auth=args.registry_auth,
        activation=_activation_options(args),
        gzip=args.gzip,
        zeotap_limit_of=args.zeotap_limit_of,
        options=_options(args),
    )
