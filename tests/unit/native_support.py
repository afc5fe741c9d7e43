"""The native extension for the native-core tests: with CI=true a missing build is a failure (CI builds it
with `pip install -e .`), elsewhere those tests are skipped with the reason."""

from __future__ import annotations

import os
from types import ModuleType

import pytest

from streams.native import load_extension


def require_extension() -> ModuleType:
    extension = load_extension()
    if extension is not None:
        return extension
    reason = "streams._native is not built (install with Rust's cargo on the PATH: pip install -e .)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + "; CI builds it, so this is a failure")
    pytest.skip(reason)
