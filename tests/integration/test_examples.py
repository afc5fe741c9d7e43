"""Every reference config in examples/ passes `s2s-bridge check` (issue 14), run through the real CLI
against the broker and an emulator configured as that example reads the documents."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.config import load_config
from streams.dev.emulator import Emulator, EmulatorConfig
from tests.integration.harness import create_topics

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WRITE_KEY = "examples-write-key"
API_KEY = "examples-api-key"

#: what each example needs of the emulator where the documents are silent (the others: defaults)
EMULATOR_OPTIONS: dict[str, dict[str, Any]] = {
    # require_visitor_id: true, so the emulator requires the fields every example of the guide has
    "audiohook.yaml": {"audiohook_require_example_fields": True},
}


def test_every_example_is_covered() -> None:
    assert {p.name for p in EXAMPLES.glob("*.yaml")} == {"bridge.yaml", "zeotap.yaml", "audiohook.yaml", "activation.yaml"}


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_example_passes_check(example, kafka_bootstrap, monkeypatch) -> None:
    config = EmulatorConfig(zeotap_write_keys=(WRITE_KEY,), activation_api_keys=(API_KEY,), **EMULATOR_OPTIONS.get(example, {}))
    with Emulator(config) as emu:
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
            "BRIDGE_GROUP_ID": f"examples-{uuid.uuid4().hex[:8]}",
            "ZEOTAP_URL": f"{emu.base_url}/zeotap",
            "ZEOTAP_WRITE_KEY": WRITE_KEY,
            "AUDIOHOOK_URL": f"{emu.base_url}/audiohook",
            "ACTIVATION_URL": emu.admin.activation_url,
            "ACTIVATION_API_KEY": API_KEY,
        }
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        path = EXAMPLES / example
        cfg = load_config(path)
        topics = {r.topic for r in cfg.routes.values()} | {r.dlt for r in cfg.routes.values()}
        create_topics(kafka_bootstrap, sorted(topics), partitions=cfg.kafka.topic_partitions)
        res = CliRunner().invoke(app, ["check", "--config", str(path)])
        assert res.exit_code == 0, res.output
        assert "all OK" in res.output
        doc = json.loads(CliRunner().invoke(app, ["check", "--config", str(path), "--json"]).stdout)
        rows = {(c["check"], c["target"]): c["status"] for c in doc["checks"]}
        for name, dest in cfg.destinations.items():
            # each destination was really asked (Audiohook has no side-effect-free request to probe auth)
            assert rows[("reachability", f"{name} ({dest.type})")] == "ok", rows
            assert rows[("auth", f"{name} ({dest.type})")] == ("skip" if dest.type == "audiohook" else "ok"), rows
        for topic in topics:
            assert "ok" in {rows.get(("topic", topic)), rows.get(("dead-letter topic", topic))}, (topic, rows)
        assert emu.admin.stats()["totals"]["events_received"] == 0  # the probes send no event
