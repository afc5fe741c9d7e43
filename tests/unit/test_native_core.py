"""Which core runs: `worker.native` (auto | off), the fallback to the Python pipeline when the extension is
not built (said once per process), and the values the native stage hands back to Python (counted)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

import streams.native as native_mod
from streams.config import WorkerSettings, load_config
from streams.native import NativeCore, select_core
from streams.pipeline.identity import IdentityProfile, cached_identifier
from streams.routes import build_pipelines
from tests.unit.native_support import require_extension

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bridge.yaml"
ENV = {"ZEOTAP_WRITE_KEY": "k"}


@pytest.fixture(autouse=True)
def fresh_announcement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native_mod, "_announced", False)


def _core_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "streams.native"]


def test_the_switch_defaults_to_auto_and_refuses_other_values() -> None:
    assert WorkerSettings().native == "auto"
    with pytest.raises(ValidationError, match="native"):
        WorkerSettings(native="on")  # type: ignore[arg-type]


def test_a_missing_extension_runs_the_python_pipeline_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def not_built(name: str) -> None:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(native_mod.importlib, "import_module", not_built)
    caplog.set_level(logging.INFO, logger="streams.native")
    config = load_config(EXAMPLE, env=ENV)
    first = build_pipelines(config)
    build_pipelines(config)  # a second build (replay, a rebalance) says nothing more
    lines = _core_lines(caplog)
    assert len(lines) == 1 and "Python, slower: the native extension is not built" in lines[0]
    assert all(p._identify is cached_identifier for p in first.values())
    assert any(p.process(b"\x00", p.route.topic, 0, 1) for p in first.values())  # runs (a rejection)


def test_off_takes_the_python_pipeline_even_when_built(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="streams.native")
    assert select_core("off") is None
    assert _core_lines(caplog) == ["transform core: Python (worker.native: off)"]


def test_auto_takes_the_native_core_when_built(caplog: pytest.LogCaptureFixture) -> None:
    extension = require_extension()
    caplog.set_level(logging.INFO, logger="streams.native")
    core = select_core("auto")
    assert isinstance(core, NativeCore) and core.extension is extension
    expected = f"transform core: native (streams._native {extension.__version__}); the Python pipeline handles what it cannot"
    assert _core_lines(caplog) == [expected]
    pipelines = build_pipelines(load_config(EXAMPLE, env=ENV))
    assert all(p._identify is not cached_identifier for p in pipelines.values())


def test_what_the_native_stage_cannot_do_falls_back_to_python_and_is_counted() -> None:
    core = NativeCore(require_extension())
    profile = IdentityProfile()
    identify = core.identify_for(profile)
    assert identify("email", " A@x.com ", profile.key, None) == cached_identifier("email", "a@x.com", profile.key, None)
    assert core.fallbacks == {}
    assert identify("email", "Jürgen@x.de", profile.key, None) == cached_identifier("email", "jürgen@x.de", profile.key, None)
    assert identify("phone", "030 1234567", profile.key, "DE") == cached_identifier("phone", "+49301234567", profile.key, None)
    assert core.fallbacks == {"email": 1, "phone": 1}
