"""`s2s-bridge scaffold --subject`: the schema comes from the emulator's Schema Registry (latest or a
version), is saved as the route's reader-schema file, and the route loads; a subject it does not have
is a usage error (2), a registry that does not answer exit 1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from streams.config import load_config
from streams.dev.emulator import Emulator, EmulatorConfig

ROOT = Path(__file__).resolve().parents[2]
ENV = {"ZEOTAP_WRITE_KEY": "test-key"}


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **ENV}
    return subprocess.run(
        [sys.executable, "-m", "streams", "scaffold", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def test_scaffold_from_a_registry_subject(tmp_path: Path) -> None:
    v1 = json.loads((ROOT / "avro_schemas" / "page_view.avsc").read_text())
    v2 = json.loads((ROOT / "avro_schemas" / "purchase_completed.avsc").read_text())
    config = tmp_path / "bridge.yaml"
    raw = yaml.safe_load((ROOT / "examples" / "bridge.yaml").read_text())
    with Emulator(EmulatorConfig()) as emu:
        emu.registry.register("shop.orders-value", json.dumps(v1), "AVRO", [])
        emu.registry.register("shop.orders-value", json.dumps(v2), "AVRO", [])
        raw["kafka"]["schema_registry"] = {"url": emu.registry_url}
        raw["routes"] = {}
        config.write_text(yaml.safe_dump({k: v for k, v in raw.items() if not k.startswith("x-")}, sort_keys=False))

        # latest version, registry from the config, schema saved to the default place (cwd-relative)
        done = _cli(tmp_path, "--topic", "shop.orders", "--subject", "shop.orders-value", "--config", str(config))
        assert done.returncode == 0, done.stderr
        saved = tmp_path / "avro_schemas" / "shop.orders-value.avsc"
        assert json.loads(saved.read_text()) == v2
        assert f"schema saved to {Path('avro_schemas') / 'shop.orders-value.avsc'}" in done.stderr
        block = yaml.safe_load(done.stdout)
        assert block["shop_orders"]["schema"] == "avro_schemas/shop.orders-value.avsc"
        assert "# scaffolded by `s2s-bridge scaffold` from subject shop.orders-value (latest)" in done.stdout
        config.write_text(config.read_text().replace("routes: {}", "routes:") + done.stdout)
        loaded = load_config(config, env=ENV)
        assert loaded.routes["shop_orders"].topic == "shop.orders"

        # an earlier version, by URL, saved elsewhere; the same file again is refused (another schema)
        out = tmp_path / "v1.avsc"
        done = _cli(
            tmp_path, "--topic", "pv", "--subject", "shop.orders-value", "--version", "1",
            "--registry-url", emu.registry_url, "--schema-out", str(out),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert json.loads(out.read_text()) == v1
        assert yaml.safe_load(done.stdout)["routes"]["pv"]["mapping"]["page"]["title"] == "page_title"
        clash = _cli(tmp_path, "--topic", "pv", "--subject", "shop.orders-value", "--registry-url", emu.registry_url,
                     "--schema-out", str(out))  # fmt: skip
        assert clash.returncode == 2 and "exists with another schema" in clash.stderr
        assert json.loads(out.read_text()) == v1

        missing = _cli(tmp_path, "--topic", "t", "--subject", "nope-value", "--registry-url", emu.registry_url)
        assert missing.returncode == 2 and "subject 'nope-value' (latest version) not found" in missing.stderr
        no_version = _cli(tmp_path, "--topic", "t", "--subject", "shop.orders-value", "--version", "9",
                          "--registry-url", emu.registry_url)  # fmt: skip
        assert no_version.returncode == 2 and "version 9" in no_version.stderr

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    down = _cli(tmp_path, "--topic", "t", "--subject", "s", "--registry-url", dead)
    assert down.returncode == 1 and "schema registry unreachable" in down.stderr
    assert not (tmp_path / "avro_schemas" / "s.avsc").exists()
