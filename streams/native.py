"""The native core (`streams._native`, built from `native/`): each route's compiled plan, which turns a
whole consumed batch of Avro bytes into the destination's event JSON in one call.

``worker.native: auto`` (the default) compiles a plan per route when the extension is built; ``off``
keeps every route on the Python pipeline. Which core runs, and why a route has no plan, is said once
at start. The Python pipeline (`streams.pipeline`) is the reference: a plan makes a payload only
where it reproduces Python byte for byte and hands every other record back (a rejection, a filter,
a value it cannot decide), and the caller runs `RoutePipeline.process` for it. Values the plan
cannot decide but that recur (a country name with diacritics, an IP address, a rare phone format)
it asks of Python through `query_resolver`, once per batch, and remembers the answers.

The extension is pure computation (no I/O, no threads of its own). The pipeline never imports it:
`streams.routes.build_pipelines` attaches the plan to the `RoutePipeline` (`native`), and
`docs/native.md` has the design and the figures.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

import orjson

from streams.mapping_spec import path_parts
from streams.pipeline import country as country_mod
from streams.pipeline.identity import cached_identifier, phone_region

if TYPE_CHECKING:
    from streams.pipeline.transform import RoutePipeline

__all__ = ["NativeCore", "NativeMode", "attach_plans", "load_extension", "plan_spec", "select_core"]

log = logging.getLogger("streams.native")

NativeMode = Literal["auto", "off"]

_announced = False


def load_extension() -> ModuleType | None:
    """`streams._native`, or None when it is not built (an install without Rust)."""
    try:
        return importlib.import_module("streams._native")
    except ImportError:
        return None


class NoNativeForm(Exception):
    """The route's mapping or destination has no native form: it runs on the Python pipeline."""


def plan_spec(pipeline: RoutePipeline) -> dict[str, Any]:
    """What the native `Plan` compiles for a route, from its compiled Python pipeline; NoNativeForm
    says why a route cannot have one."""
    route, dest = pipeline.route, pipeline.destination
    native_shape = getattr(dest, "native_shape", None)
    shape = native_shape() if native_shape is not None else None
    if shape is None:
        raise NoNativeForm(f"the {dest.name} destination's event has no native form yet")
    if pipeline.nce:
        raise NoNativeForm("entity: nce")
    if not route.forward:
        raise NoNativeForm("forward: false (every record is filtered)")
    decoder = pipeline.decoder
    if decoder is None:
        raise NoNativeForm("no decoder")
    fields: list[dict[str, Any]] = []
    for section, key, entry in pipeline.mapping.plan:
        if entry is None:
            raise NoNativeForm(f"{section}.{key}: the operator (default, required, keep_null or a key from the record)")
        kind = entry[0]
        if kind == "country":
            continue
        field: dict[str, Any] = {"section": section, "key": key, "op": kind}
        if kind == "const":
            field["json"] = orjson.dumps(entry[1])
            field["text"] = entry[1] if isinstance(entry[1], str) else None
        elif kind in ("value", "identity", "consent"):
            field["path"] = list(entry[1])
        elif kind == "coerced":
            field["path"], field["as"] = list(entry[1]), entry[2]
        elif kind == "rest":
            field["path"], field["exclude"], field["keep_null"] = list(entry[1]), sorted(entry[2]), entry[3]
        else:  # pragma: no cover - a new operator kind must be given a native form or refused here
            raise NoNativeForm(f"{section}.{key}: operator {kind}")
        fields.append(field)
    cs = route.country
    profile, policy = pipeline.profile, pipeline.policy
    schema = decoder.reader_schema
    return {
        "schema": schema if isinstance(schema, str) else json.dumps(schema),
        "framing": decoder.framing,
        "has_registry": decoder.store.has_registry,
        "reader_fingerprint": decoder.reader_fp,
        "sections": list(pipeline.mapping.sections),
        "fields": fields,
        "timestamp_format": pipeline.mapping.ts_fmt,
        "identity_targets": [tuple(t) for t in pipeline._identity_targets],
        "id_targets": [tuple(t) for t in pipeline._id_targets],
        "has_identifier_names": bool(pipeline._identifier_names),
        "country_targets": [tuple(t) for t in pipeline.country_targets],
        "country_sources": [list(path_parts(p)) if p else None for p in (cs.field, cs.phone, cs.ip, cs.locale)],
        "default_country": country_mod.to_alpha2(cs.default) if cs.default else None,
        "country_format": pipeline.country_fmt,
        "hash": profile.hash,
        "fold_gmail": profile.fold_gmail,
        "lowercase_names": profile.lowercase_names,
        "phone_format": profile.phone_format,
        "enforce_consent": pipeline.enforce_consent,
        "require": list(policy.require),
        "any_of": list(policy.any_of),
        "forward_missing": policy.missing == "forward",
        "event_names": dict(pipeline._event_names),
        "max_event_bytes": pipeline.max_event_bytes,
        "shape": shape,
    }


def query_resolver(profile_key: str) -> Callable[[Sequence[tuple[str | None, ...]]], list[str | None]]:
    """Python's answers to a plan's queries, by the reference functions (their caches included)."""
    to_alpha2 = country_mod.to_alpha2

    def answer(query: tuple[str | None, ...]) -> str | None:
        kind, value = query[0], query[1]
        assert value is not None
        if kind == "country":
            return to_alpha2(value)
        if kind == "phone_region":
            region = phone_region(value, None)
            return None if region is None else to_alpha2(region)
        if kind == "ip":
            return country_mod.country_from_ip(value)
        if kind == "locale":
            return country_mod.country_from_locale(value)
        return cached_identifier(kind, value, profile_key, query[2])

    def resolve(queries: Sequence[tuple[str | None, ...]]) -> list[str | None]:
        return [answer(q) for q in queries]

    return resolve


class NativeCore:
    """The loaded extension and the reference tables its plans share (built once per process)."""

    def __init__(self, extension: ModuleType) -> None:
        from streams.native_data import phone_tables

        self.extension = extension
        self.version: str = extension.__version__
        self.tables = extension.Tables(country_mod._CODES, country_mod._NAMES, country_mod._ALPHA3, phone_tables())

    def plan_for(self, pipeline: RoutePipeline) -> Any:
        """The route's native plan; NoNativeForm (or the extension's ValueError) says why there is none."""
        try:
            return self.extension.Plan(plan_spec(pipeline), self.tables, query_resolver(pipeline.profile.key))
        except ValueError as exc:
            raise NoNativeForm(str(exc)) from None


def select_core(mode: NativeMode) -> NativeCore | None:
    """The native core for ``auto`` when it is built, else None (the Python pipeline); says which, once."""
    extension = load_extension() if mode == "auto" else None
    core = None if extension is None else NativeCore(extension)
    global _announced
    if not _announced:
        _announced = True
        if core is not None:
            log.info("transform core: native (streams._native %s); the Python pipeline handles what it cannot", core.version)
        elif mode == "off":
            log.info("transform core: Python (worker.native: off)")
        else:
            log.warning(
                "transform core: Python, slower: the native extension is not built (install with Rust's cargo on the "
                "PATH: pip install -e .; docs/native.md)"
            )
    return core


def attach_plans(pipelines: dict[str, RoutePipeline], mode: NativeMode) -> dict[str, str]:
    """Give each route its native plan where it has one; the routes left on the Python pipeline and why
    (also logged, once per route)."""
    core = select_core(mode)
    if core is None:
        return {}
    python_routes: dict[str, str] = {}
    for name, pipeline in pipelines.items():
        try:
            pipeline.native = core.plan_for(pipeline)
        except NoNativeForm as exc:
            python_routes[name] = str(exc)
            log.info("route %s: Python pipeline (%s)", name, exc)
    return python_routes
