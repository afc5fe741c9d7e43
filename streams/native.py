"""Which transform core runs: the native one (`streams._native`, built from `native/`) or the Python pipeline.

``worker.native: auto`` (the default) takes the native core when the extension is built and the
Python pipeline otherwise; ``off`` always takes the Python pipeline. The choice is logged once per
process. The Python pipeline is the reference: the native core does what it can do exactly and
hands everything else back to it, value by value, counting those hand-backs (``fallbacks``).
docs/native.md has the plan and the state of the work.

The extension is a pure computation (no I/O, no threads): the pipeline gets it handed in
(`RoutePipeline(core=...)`) and never imports it, so it stays pure.
"""

from __future__ import annotations

import importlib
import logging
from collections import Counter
from collections.abc import Callable
from types import ModuleType
from typing import Literal

from streams.pipeline.identity import IdentityProfile, cached_identifier

__all__ = ["NativeCore", "NativeMode", "load_extension", "select_core"]

log = logging.getLogger("streams.native")

NativeMode = Literal["auto", "off"]

#: `streams.pipeline.identity.cached_identifier`'s signature: (kind, value, profile key, default region).
Identify = Callable[[str, str, str, str | None], str | None]

_announced = False


def load_extension() -> ModuleType | None:
    """`streams._native`, or None when it is not built (an install without Rust)."""
    try:
        return importlib.import_module("streams._native")
    except ImportError:
        return None


class NativeCore:
    """The native stages, ready to hand to `RoutePipeline`; counts what fell back to Python, per kind."""

    name = "native"

    def __init__(self, extension: ModuleType) -> None:
        self.extension = extension
        self.version: str = extension.__version__
        self.fallbacks: Counter[str] = Counter()

    def identify_for(self, profile: IdentityProfile) -> Identify:
        """`cached_identifier` for this profile: native where exact, else the Python path (counted)."""
        native = self.extension.IdentityPlan(profile.hash, profile.fold_gmail, profile.lowercase_names).identifier
        fallbacks = self.fallbacks

        def identify(kind: str, value: str, profile_key: str, default_region: str | None) -> str | None:
            out = native(kind, value)
            if out is not False:
                return out
            fallbacks[kind] += 1  # phones, non-ASCII text: the reference decides
            return cached_identifier(kind, value, profile_key, default_region)

        return identify


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
