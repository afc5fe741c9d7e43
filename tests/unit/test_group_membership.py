"""Group membership settings: `kafka.group_instance_id` (static membership) and `kafka.group_protocol`
(KIP-848), their validation through the real loader, and what the engines make of them.

On the real broker: tests/integration/test_fast_restart.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, KafkaException

from streams.config import BridgeConfig, ConfigError, KafkaSettings, load_config
from streams.engines.batch import group_membership

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bridge.yaml"
CLASSIC_ONLY = ("session.timeout.ms", "heartbeat.interval.ms", "partition.assignment.strategy")


def load(tmp_path: Path, kafka: dict[str, Any], env: dict[str, str] | None = None, engine: str = "batch") -> BridgeConfig:
    """examples/bridge.yaml with these kafka settings (and engine), through the real loader."""
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw["kafka"].update(kafka)
    raw.setdefault("worker", {})["engine"] = engine
    for r in raw["routes"].values():
        r["schema"] = str((EXAMPLE.parent / r["schema"]).resolve())
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_config(path, env={"ZEOTAP_WRITE_KEY": "k", **(env or {})})


def kafka(**kw: Any) -> KafkaSettings:
    return KafkaSettings.model_validate({"bootstrap_servers": "b:9092", **kw})


# --------------------------------------------------------------------------- static membership


def test_instance_id_from_the_pod_name(tmp_path: Path) -> None:
    cfg = load(tmp_path, {"group_instance_id": "${POD_NAME}"}, env={"POD_NAME": "s2s-bridge-2"})
    assert cfg.kafka.group_instance_id == "s2s-bridge-2"
    assert group_membership(cfg.kafka)["group.instance.id"] == "s2s-bridge-2"


@pytest.mark.parametrize("value", ["", "${POD_NAME:-}"])
def test_empty_instance_id_is_dynamic_membership(tmp_path: Path, value: str) -> None:
    cfg = load(tmp_path, {"group_instance_id": value})
    assert cfg.kafka.group_instance_id is None
    assert "group.instance.id" not in group_membership(cfg.kafka)


def test_unset_pod_name_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"kafka\.group_instance_id: environment variable POD_NAME is not set"):
        load(tmp_path, {"group_instance_id": "${POD_NAME}"})


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("$(POD_NAME)", "unexpanded variable reference"),  # Kubernetes' syntax, not expanded in a mounted file
        ("bridge-$(POD_NAME)", "unexpanded variable reference"),
        ("bridge 0", "contains whitespace"),
        ("bridge-0\n", "contains whitespace"),
        ("bridge/0", "not a legal group instance id"),
        ("..", "not a legal group instance id"),
        ("b" * 250, "not a legal group instance id"),
    ],
)
def test_wrong_instance_ids_are_refused_naming_the_field(tmp_path: Path, value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=r"kafka\.group_instance_id: .*" + says):
        load(tmp_path, {"group_instance_id": value})


def test_an_unsubstituted_reference_is_refused() -> None:
    # the loader substitutes ${...}; a model built another way must not join with the literal text
    with pytest.raises(ValueError, match="unexpanded variable reference"):
        kafka(group_instance_id="${POD_NAME}")


def test_the_longest_legal_instance_id_is_accepted() -> None:
    assert kafka(group_instance_id="b" * 249).group_instance_id == "b" * 249


# --------------------------------------------------------------------------- KIP-848


def test_classic_protocol_is_the_default_and_keeps_todays_settings() -> None:
    conf = group_membership(kafka(session_timeout_s=45, heartbeat_interval_s=5))
    assert conf == {
        "group.protocol": "classic",
        "session.timeout.ms": 45_000,
        "heartbeat.interval.ms": 5_000,
        "partition.assignment.strategy": "cooperative-sticky",
    }


def test_consumer_protocol_leaves_the_broker_side_settings_out() -> None:
    conf = group_membership(kafka(group_protocol="consumer"))
    assert conf == {"group.protocol": "consumer"}
    # what librdkafka itself says about the classic-only settings (so they must stay out)
    base = {"bootstrap.servers": "127.0.0.1:1", "group.id": "g"}
    Consumer({**base, **conf}).close()
    for key, value in group_membership(kafka()).items():
        if key in CLASSIC_ONLY:
            with pytest.raises(KafkaException, match="not supported for `group.protocol=consumer`"):
                Consumer({**base, **conf, key: value})


@pytest.mark.parametrize("field", ["session_timeout_s", "heartbeat_interval_s"])
def test_consumer_protocol_refuses_classic_only_settings(tmp_path: Path, field: str) -> None:
    value = 30 if field == "session_timeout_s" else 3
    with pytest.raises(ConfigError, match=rf"kafka\.{field}: not used with group_protocol 'consumer'"):
        load(tmp_path, {"group_protocol": "consumer", field: value})


def test_consumer_protocol_with_static_membership_is_refused(tmp_path: Path) -> None:
    # a SIGKILLed member restarted under KIP-848 is fenced (fatal) until the broker's session timeout
    with pytest.raises(ConfigError, match=r"kafka\.group_instance_id: static membership needs group_protocol 'classic'"):
        load(tmp_path, {"group_protocol": "consumer", "group_instance_id": "${POD_NAME}"}, env={"POD_NAME": "bridge-0"})
    # the shipped ${POD_NAME:-} without a POD_NAME (replay Job, `check`) is dynamic: allowed
    assert load(tmp_path, {"group_protocol": "consumer", "group_instance_id": "${POD_NAME:-}"}).kafka.group_instance_id is None


def test_consumer_protocol_on_the_faust_engine_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"kafka\.group_protocol: 'consumer' needs worker\.engine 'batch'.*aiokafka"):
        load(tmp_path, {"group_protocol": "consumer"}, engine="faust")


def test_unknown_protocol_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"kafka\.group_protocol: "):
        load(tmp_path, {"group_protocol": "kip848"})


# --------------------------------------------------------------------------- the Faust engine


def test_faust_engine_passes_the_instance_id_to_aiokafka(tmp_path: Path) -> None:
    from streams.engines.faust import build_app

    cfg = load(tmp_path, {"group_instance_id": "s2s-bridge-0"}, engine="faust")
    batch = SimpleNamespace(max_events=500, linger_ms=50)
    api = SimpleNamespace(settings=SimpleNamespace(batch=batch))
    bridge: Any = SimpleNamespace(apis=dict.fromkeys(cfg.destinations, api))

    async def handle(route: str, events: Any) -> None:
        return None

    app = build_app(cfg, bridge, handle)
    assert app.conf.consumer_group_instance_id == "s2s-bridge-0"
    # and aiokafka's consumer gets it (Faust's driver reads this setting)
    assert build_app(load(tmp_path, {}, engine="faust"), bridge, handle).conf.consumer_group_instance_id is None
