"""Which core runs: `worker.native` (auto | off), the fallback to the Python pipeline when the extension is
not built (said once per process), and the routes that have no native plan (said, with why)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

import streams.native as native_mod
from streams.config import WorkerSettings, load_config
from streams.native import NativeCore, attach_plans, select_core
from streams.pipeline.transform import RoutePipeline
from streams.routes import build_pipelines
from tests.unit.native_support import require_extension

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bridge.yaml"
ENV = {"ZEOTAP_WRITE_KEY": "k"}


def _planned(config: Any) -> dict[str, RoutePipeline]:
    """The config's pipelines with their native plans, as the worker builds them."""
    pipelines = build_pipelines(config)
    attach_plans(pipelines, config.worker.native)
    return pipelines


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
    first = _planned(config)
    _planned(config)  # a second build (a rebalance, another worker in the process) says nothing more
    lines = _core_lines(caplog)
    assert len(lines) == 1 and "Python, slower: the native extension is not built" in lines[0]
    assert all(p.native is None for p in first.values())
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
    pipelines = _planned(load_config(EXAMPLE, env=ENV))
    assert pipelines["purchase_completed"].native is not None


def test_a_route_without_a_native_form_runs_on_python_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    require_extension()
    caplog.set_level(logging.INFO, logger="streams.native")
    pipelines = _planned(load_config(EXAMPLE, env=ENV))
    assert pipelines["market_offer_assignment"].native is None
    assert "route market_offer_assignment: Python pipeline (entity: nce)" in _core_lines(caplog)
    # consent_updated keys its consent by a record field: an operator without a native form
    assert pipelines["consent_updated"].native is None
    assert any(line.startswith("route consent_updated: Python pipeline (consent.{consent_type}") for line in _core_lines(caplog))
    p = pipelines["market_offer_assignment"]
    assert p.native_payloads([b"x"]) is None  # no plan: the caller runs `process` for every record


class _BrokenPlan:
    """A plan with a bug: every batch raises."""

    def run(self, values: list[bytes | None]) -> list[Any]:
        raise RuntimeError("a bug in the plan")

    def add_writer_id(self, schema_id: int) -> None:
        pass


class _Submitted:
    def __init__(self) -> None:
        self.events: list[tuple[str, bytes, Any]] = []

    def submit_many(self, events: list[tuple[str, bytes, Any]]) -> Any:
        import asyncio

        self.events += events
        fut = asyncio.get_running_loop().create_future()
        fut.set_result([object()] * len(events))
        return fut


class _Msg:
    def __init__(self, value: bytes, offset: int) -> None:
        self._value, self._offset = value, offset

    def topic(self) -> str:
        return "purchase_completed"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value


def test_a_plan_that_fails_leaves_its_batch_to_the_python_pipeline(caplog: pytest.LogCaptureFixture) -> None:
    """A bug in a native plan must not stop the stream: that batch runs on the Python pipeline, said in
    the log and counted (`s2s_native_handed_back_total{reason="plan_error"}`)."""
    import asyncio

    from streams.app import Bridge, Capacity
    from streams.codec import encode_plain
    from streams.dev.samples import SampleFactory
    from streams.metrics import METRICS

    bridge = Bridge(load_config(EXAMPLE, env=ENV))
    pipeline = bridge.pipelines["purchase_completed"]
    pipeline.native = _BrokenPlan()
    assert pipeline.decoder is not None
    factory = SampleFactory(4)
    records = [_Msg(encode_plain(pipeline.decoder.reader, factory.record("purchase_completed")), i) for i in range(20)]
    sink = _Submitted()
    before = METRICS.native_handed_back.labels("purchase_completed", "plan_error")._value.get()

    async def main() -> None:
        bridge.capacity = {"purchase_completed": Capacity(100)}
        bridge._transforming = {"purchase_completed": asyncio.Lock()}
        bridge.sinks = {pipeline.destination.name: sink}  # type: ignore[dict-item]
        await bridge.process_batch("purchase_completed", records, lambda: None)  # type: ignore[arg-type]

    caplog.set_level(logging.ERROR, logger="streams.worker")
    asyncio.run(main())
    expected = [pipeline.process(m.value(), m.topic(), m.partition(), m.offset()) for m in records]
    assert [(e, b) for e, b, _ in sink.events] == [(p.event_id, p.body) for p in expected if hasattr(p, "body")]
    assert len(sink.events) == 20
    assert any("the native plan failed" in r.getMessage() for r in caplog.records)
    assert METRICS.native_handed_back.labels("purchase_completed", "plan_error")._value.get() == before + 20
