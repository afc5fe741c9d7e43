"""Bridge configuration: the reference config, `${ENV}` substitution, validation errors (streams.config)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.config import BridgeConfig, ConfigError, load_config, substitute_env
from streams.destinations.zeotap import ZEOTAP_MAX_REQUEST_BYTES, ZeotapSettings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "bridge.yaml"
SCHEMAS = ROOT / "avro_schemas"
WRITE_KEY = "fc3ab803-5762-44d3-88d3-7fbc94bca074"
ENV = {"ZEOTAP_WRITE_KEY": WRITE_KEY}

Mutation = Callable[[dict[str, Any]], None]


def _example_raw() -> dict[str, Any]:
    """The reference config as a plain dict (anchors resolved, x- keys dropped, schema paths absolute)."""
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    raw = {k: v for k, v in raw.items() if not str(k).startswith("x-")}
    for route in raw["routes"].values():
        route["schema"] = str((EXAMPLE.parent / route["schema"]).resolve())
    return copy.deepcopy(raw)


def _write(tmp_path: Path, raw: dict[str, Any], name: str = "bridge.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path


def _load_mutated(tmp_path: Path, mutate: Mutation, env: dict[str, str] | None = None) -> BridgeConfig:
    raw = _example_raw()
    mutate(raw)
    return load_config(_write(tmp_path, raw), env=ENV if env is None else env)


def _config_error(tmp_path: Path, mutate: Mutation, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        _load_mutated(tmp_path, mutate, env)
    return str(info.value)


def _zeotap(raw: dict[str, Any]) -> dict[str, Any]:
    return raw["destinations"]["zeotap"]  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- the reference config


def test_example_config_loads_with_a_route_per_schema() -> None:
    cfg = load_config(EXAMPLE, env=ENV)
    events = sorted(p.stem for p in SCHEMAS.glob("*.avsc"))
    assert len(events) == 7
    assert sorted(cfg.routes) == events
    assert set(cfg.destinations) == {"zeotap"}
    dest = cfg.destinations["zeotap"]
    assert isinstance(dest, ZeotapSettings)
    assert dest.write_key.get_secret_value() == WRITE_KEY
    assert dest.region == "EU"
    for name, route in cfg.routes.items():
        assert route.destination == "zeotap"
        assert route.topic == name
        assert route.country.default is None, f"route {name} must not set a default country"
        schema_path = cfg.schema_path(route)
        assert schema_path.resolve() == (SCHEMAS / f"{name}.avsc").resolve()
        assert json.loads(schema_path.read_text())["type"] == "record"
        # the mapping's event name is the route name
        assert route.mapping["event"]["eventName"] == {"const": name}
    assert cfg.routes["market_offer_assignment"].entity == "nce"
    assert cfg.routes["consent_updated"].enforce_consent is False


def test_example_config_reads_os_environ_when_env_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZEOTAP_WRITE_KEY", "from-os-environ")
    monkeypatch.setenv("ZEOTAP_REGION", "US")
    cfg = load_config(EXAMPLE)
    dest = cfg.destinations["zeotap"]
    assert isinstance(dest, ZeotapSettings)
    assert dest.write_key.get_secret_value() == "from-os-environ"
    assert dest.region == "US"


def test_example_config_without_write_key_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(EXAMPLE, env={})
    msg = str(info.value)
    assert str(EXAMPLE) in msg
    assert "destinations.zeotap.write_key" in msg
    assert "ZEOTAP_WRITE_KEY" in msg


# --------------------------------------------------------------------------- env substitution


@pytest.mark.parametrize(
    "node, env, expected",
    [
        ("${A}", {"A": "x"}, "x"),
        ("pre-${A}-post", {"A": "x"}, "pre-x-post"),
        ("${A}${B}", {"A": "1", "B": "2"}, "12"),
        ("${A:-dflt}", {}, "dflt"),
        ("${A:-dflt}", {"A": "set"}, "set"),
        ("${A:-}", {}, ""),
        ("${A:-http://127.0.0.1:8080/x}", {}, "http://127.0.0.1:8080/x"),
        ("${A:-dflt}", {"A": ""}, ""),  # set but empty is still set
        ("no refs here", {}, "no refs here"),
        ("$A is not a reference", {}, "$A is not a reference"),
        (7, {}, 7),
        (None, {}, None),
        ({"k": ["${A}", {"n": "${B:-b}"}]}, {"A": "a"}, {"k": ["a", {"n": "b"}]}),
    ],
)
def test_substitute_env(node: Any, env: dict[str, str], expected: Any) -> None:
    assert substitute_env(node, env) == expected


@pytest.mark.parametrize(
    "value",
    [
        "plain-key",
        "12345",  # numeric secret stays a string
        "@starts-with-at",
        "abc #not-a-comment",
        "a: b",
        "- item",
        "!tag",
        "*alias",
        "&anchor",
        "%directive",
        "`backtick",
        "true",
        "null",
        "[1, 2]",
        "{x: 1}",
        "  spaced  ",
    ],
)
def test_env_value_is_taken_verbatim_as_secret(value: str) -> None:
    cfg = load_config(EXAMPLE, env={"ZEOTAP_WRITE_KEY": value})
    dest = cfg.destinations["zeotap"]
    assert isinstance(dest, ZeotapSettings)
    assert dest.write_key.get_secret_value() == value


@pytest.mark.parametrize(
    "field, value, attr, expected",
    [
        ("topic_partitions", "12", "topic_partitions", 12),
        ("create_topics", "false", "create_topics", False),
        ("create_topics", "true", "create_topics", True),
        ("commit_interval_s", "0.5", "commit_interval_s", 0.5),
        ("group_id", "12345", "group_id", "12345"),
    ],
)
def test_env_values_are_converted_by_the_field_type(tmp_path: Path, field: str, value: str, attr: str, expected: Any) -> None:
    def mutate(raw: dict[str, Any]) -> None:
        raw["kafka"][field] = "${VALUE}"

    cfg = _load_mutated(tmp_path, mutate, env={**ENV, "VALUE": value})
    got = getattr(cfg.kafka, attr)
    assert got == expected
    assert type(got) is type(expected)


@pytest.mark.parametrize(
    "mutate, field_path, variable",
    [
        (lambda r: _zeotap(r).__setitem__("region", "${NO_SUCH_REGION}"), "destinations.zeotap.region", "NO_SUCH_REGION"),
        (lambda r: r["kafka"].__setitem__("bootstrap_servers", "${BROKERS}:9092"), "kafka.bootstrap_servers", "BROKERS"),
        (
            lambda r: r["routes"]["page_view"].__setitem__("topic", "events.${ENVIRONMENT}.page_view"),
            "routes.page_view.topic",
            "ENVIRONMENT",
        ),
        (
            lambda r: _zeotap(r)["consent"].__setitem__("require", ["${PURPOSE}"]),
            "destinations.zeotap.consent.require.0",
            "PURPOSE",
        ),
    ],
)
def test_missing_variable_names_file_field_and_variable(tmp_path: Path, mutate: Mutation, field_path: str, variable: str) -> None:
    msg = _config_error(tmp_path, mutate)
    assert msg.startswith(str(tmp_path / "bridge.yaml") + ": ")
    assert f": {field_path}: " in msg
    assert variable in msg
    assert "not set" in msg


# --------------------------------------------------------------------------- validation errors


def _set(*path: str, value: Any) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        node = raw
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = value

    return mutate


def _pop(*path: str) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        node = raw
        for p in path[:-1]:
            node = node[p]
        del node[path[-1]]

    return mutate


def _both(*mutations: Mutation) -> Mutation:
    def mutate(raw: dict[str, Any]) -> None:
        for m in mutations:
            m(raw)

    return mutate


ERROR_CASES = [
    pytest.param(
        _set("routes", "page_view", "destination", value="zeotapp"),
        "routes.page_view.destination",
        ["unknown destination 'zeotapp'", "known: zeotap"],
        id="unknown-destination",
    ),
    pytest.param(_pop("routes", "page_view", "topic"), "routes.page_view.topic", ["required"], id="missing-topic"),
    pytest.param(_pop("kafka", "bootstrap_servers"), "kafka.bootstrap_servers", ["required"], id="missing-bootstrap"),
    pytest.param(_pop("destinations", "zeotap", "region"), "destinations.zeotap.region", ["required"], id="missing-region"),
    pytest.param(_pop("kafka"), "kafka", ["required"], id="missing-kafka-section"),
    pytest.param(
        _set("routes", "page_view", "topik", value="x"),
        "routes.page_view.topik",
        ["unknown field"],
        id="unknown-route-field",
    ),
    pytest.param(_set("kafka", "bootstrap", value="x"), "kafka.bootstrap", ["unknown field"], id="unknown-kafka-field"),
    pytest.param(
        _set("destinations", "zeotap", "writekey", value="x"),
        "destinations.zeotap.writekey",
        ["unknown field"],
        id="unknown-destination-field",
    ),
    pytest.param(_set("metricz", value={}), "metricz", ["unknown field"], id="unknown-top-level"),
    pytest.param(_set("kafka", "topic_partitions", value="many"), "kafka.topic_partitions", ["integer"], id="bad-int"),
    pytest.param(
        _set("kafka", "topic_partitions", value=0),
        "kafka.topic_partitions",
        ["greater than or equal to 1"],
        id="int-range",
    ),
    pytest.param(
        _set("destinations", "zeotap", "mode", value="stream"),
        "destinations.zeotap.mode",
        ["'batch' or 'realtime'"],
        id="bad-literal",
    ),
    pytest.param(
        _set("destinations", "zeotap", "concurrency", value=[1]),
        "destinations.zeotap.concurrency",
        ["integer"],
        id="bad-type-list",
    ),
    pytest.param(_set("routes", "page_view", "forward", value="perhaps"), "routes.page_view.forward", ["boolean"], id="bad-bool"),
    pytest.param(
        _set("destinations", "zeotap", "type", value="zeotapx"),
        "destinations.zeotap",
        ["zeotapx"],
        id="unknown-destination-type",
    ),
    pytest.param(
        _set("destinations", "zeotap", "batch", "max_bytes", value=ZEOTAP_MAX_REQUEST_BYTES + 1),
        "destinations.zeotap.batch.max_bytes",
        ["20 MB"],
        id="zeotap-batch-over-20MB",
    ),
    pytest.param(
        _set("destinations", "zeotap", "url", value="http://api.zeotap.example.com/s2s"),
        "destinations.zeotap.url",
        ["plain http", "https", "allow_insecure_http"],
        id="plain-http-remote",
    ),
    pytest.param(
        _set("destinations", "zeotap", "url", value="http://10.0.0.5:8080/s2s"),
        "destinations.zeotap.url",
        ["plain http"],
        id="plain-http-private-ip",
    ),
    pytest.param(
        _set("destinations", "zeotap", "url", value="ftp://example.com/x"),
        "destinations.zeotap.url",
        ["http(s) URL"],
        id="not-http",
    ),
    pytest.param(
        _set("routes", "page_view", "mapping", "profile", value={"a": "b"}),
        "routes.page_view.mapping",
        ["unknown mapping section", "profile"],
        id="unknown-mapping-section",
    ),
    pytest.param(
        _set("routes", "page_view", "mapping", "event", "x", value={"path": "a", "bogus": 1}),
        "routes.page_view.mapping",
        ["mapping.event.x", "unknown option", "bogus"],
        id="unknown-mapping-option",
    ),
    pytest.param(
        _set("routes", "page_view", "mapping", "event", "x", value={"path": "a", "as": "uuid"}),
        "routes.page_view.mapping",
        ["mapping.event.x", "'as'"],
        id="bad-mapping-as",
    ),
    pytest.param(
        _set("routes", "page_view", "mapping", "consent", "{kind}", value={"path": "a", "identity": "email"}),
        "routes.page_view.mapping",
        ["mapping.consent.{kind}", "'identity' cannot be used with a key taken from the record"],
        id="identity-under-a-key-from-the-record",
    ),
    pytest.param(
        _set("routes", "page_view", "mapping", "event", "*", value={"exclude": [["a"]]}),
        "routes.page_view.mapping",
        ["invalid mapping", "unhashable"],
        id="mapping-exclude-unhashable",
    ),
    pytest.param(
        _both(_set("kafka", "security_protocol", value="SASL_SSL"), _set("kafka", "sasl", value={"mechanism": "PLAIN"})),
        "kafka.sasl",
        ["PLAIN needs username and password"],
        id="sasl-plain-without-credentials",
    ),
    pytest.param(
        _both(
            _set("kafka", "security_protocol", value="SASL_SSL"),
            _set("kafka", "sasl", value={"mechanism": "SCRAM-SHA-512", "username": "u"}),
        ),
        "kafka.sasl",
        ["SCRAM-SHA-512 needs username and password"],
        id="sasl-scram-without-password",
    ),
    pytest.param(
        _set("kafka", "sasl", value={"mechanism": "OAUTHBEARER", "oauth_client_id": "c"}),
        "kafka.sasl",
        ["OAUTHBEARER needs oauth_token_endpoint"],
        id="sasl-oauth-without-secret",
    ),
    pytest.param(
        _set("kafka", "security_protocol", value="SASL_PLAINTEXT"),
        "kafka",
        ["needs a 'sasl' section"],
        id="sasl-protocol-without-section",
    ),
]


def _assert_error_names(tmp_path: Path, mutate: Mutation, field_path: str, fragments: list[str]) -> None:
    """The config error has a line `<file>: <field_path>: ...` holding every fragment."""
    msg = _config_error(tmp_path, mutate)
    file_prefix = str(tmp_path / "bridge.yaml") + ": "
    lines = [line for line in msg.splitlines() if line.startswith(f"{file_prefix}{field_path}: ")]
    assert lines, f"no line for {field_path!r} in:\n{msg}"
    for fragment in fragments:
        assert any(fragment in line for line in lines), f"{fragment!r} not in {lines}"


@pytest.mark.parametrize("mutate, field_path, fragments", ERROR_CASES)
def test_error_names_file_field_path_and_problem(tmp_path: Path, mutate: Mutation, field_path: str, fragments: list[str]) -> None:
    _assert_error_names(tmp_path, mutate, field_path, fragments)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/zeotap",
        "http://127.0.0.2/zeotap",
        "http://localhost:8080/zeotap",
        "http://[::1]:8080/zeotap",
        "https://api.zeotap.example.com/s2s",
    ],
)
def test_http_allowed_for_loopback_and_https(tmp_path: Path, url: str) -> None:
    cfg = _load_mutated(tmp_path, _set("destinations", "zeotap", "url", value=url))
    assert cfg.destinations["zeotap"].url == url


def test_plain_http_allowed_with_allow_insecure_http(tmp_path: Path) -> None:
    url = "http://api.zeotap.example.com/s2s"
    cfg = _load_mutated(
        tmp_path,
        _both(
            _set("destinations", "zeotap", "url", value=url),
            _set("destinations", "zeotap", "allow_insecure_http", value=True),
        ),
    )
    assert cfg.destinations["zeotap"].url == url
    assert cfg.destinations["zeotap"].allow_insecure_http is True


@pytest.mark.parametrize("max_bytes", [1024, 5 * 1024 * 1024, ZEOTAP_MAX_REQUEST_BYTES])
def test_zeotap_batch_max_bytes_up_to_20MB(tmp_path: Path, max_bytes: int) -> None:
    cfg = _load_mutated(tmp_path, _set("destinations", "zeotap", "batch", "max_bytes", value=max_bytes))
    assert cfg.destinations["zeotap"].batch.max_bytes == max_bytes


@pytest.mark.parametrize(
    "sasl",
    [
        {"mechanism": "PLAIN", "username": "u", "password": "p"},
        {"mechanism": "SCRAM-SHA-256", "username": "u", "password": "p"},
        {
            "mechanism": "OAUTHBEARER",
            "oauth_token_endpoint": "https://idp.example.com/token",
            "oauth_client_id": "c",
            "oauth_client_secret": "s",
        },
    ],
)
def test_sasl_with_credentials_loads(tmp_path: Path, sasl: dict[str, str]) -> None:
    cfg = _load_mutated(tmp_path, _both(_set("kafka", "security_protocol", value="SASL_SSL"), _set("kafka", "sasl", value=sasl)))
    assert cfg.kafka.sasl is not None
    assert cfg.kafka.sasl.mechanism == sasl["mechanism"]


# --------------------------------------------------------------------------- unusable files


@pytest.mark.parametrize(
    "text, fragments",
    [
        ("kafka: [unclosed\n", ["not valid YAML", "line "]),
        ("kafka:\n  bootstrap_servers: x\n bad_indent: y\n", ["not valid YAML"]),
        ("a: *undefined_alias\n", ["not valid YAML", "undefined_alias"]),
        ("- just\n- a list\n", ["top level must be a mapping"]),
        ("", ["the file is empty"]),
    ],
)
def test_invalid_yaml(tmp_path: Path, text: str, fragments: list[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ")
    for fragment in fragments:
        assert fragment in msg


@pytest.mark.parametrize("kind", ["missing", "directory"])
def test_unreadable_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "nope.yaml"
    if kind == "directory":
        path.mkdir()
    with pytest.raises(ConfigError) as info:
        load_config(path, env=ENV)
    msg = str(info.value)
    assert msg.startswith(f"{path}: ")
    assert "cannot read config file" in msg


# --------------------------------------------------------------------------- secrets


SECRET = "Zt-9f1c-SUPER-SECRET-write-key-77e2"


@pytest.mark.parametrize(
    "mutate",
    [
        _set("destinations", "zeotap", "url", value="http://api.zeotap.example.com/s2s"),
        _set("destinations", "zeotap", "batch", "max_bytes", value=ZEOTAP_MAX_REQUEST_BYTES * 2),
        _set("destinations", "zeotap", "mode", value="stream"),
        _set("destinations", "zeotap", "write_keyy", value="${ZEOTAP_WRITE_KEY}"),
        _set("destinations", "zeotap", "type", value="zeotapx"),
        _set("destinations", "zeotap", "region", value=["${ZEOTAP_WRITE_KEY}"]),
        _set("destinations", "zeotap", "concurrency", value="${ZEOTAP_WRITE_KEY}"),
        _set("destinations", "zeotap", "timeout_s", value="${ZEOTAP_WRITE_KEY}"),
        _set("destinations", "zeotap", "identity", "phone_format", value="${ZEOTAP_WRITE_KEY}"),
        _set("routes", "page_view", "destination", value="nowhere"),
        _set("routes", "page_view", "forward", value="${ZEOTAP_WRITE_KEY}"),
        _set("kafka", "topic_partitions", value="${ZEOTAP_WRITE_KEY}"),
        _set("kafka", "security_protocol", value="${ZEOTAP_WRITE_KEY}"),
        _set("kafka", "sasl", value={"mechanism": "PLAIN", "username": "${ZEOTAP_WRITE_KEY}"}),
        _set("routes", "page_view", "missing", value="${NOT_SET_EITHER}"),
    ],
)
def test_config_error_never_contains_the_write_key(tmp_path: Path, mutate: Mutation) -> None:
    msg = _config_error(tmp_path, mutate, env={"ZEOTAP_WRITE_KEY": SECRET})
    assert SECRET not in msg
    assert "SUPER-SECRET" not in msg


def test_write_key_is_secret_in_repr() -> None:
    cfg = load_config(EXAMPLE, env={"ZEOTAP_WRITE_KEY": SECRET})
    assert SECRET not in repr(cfg)
    assert SECRET not in str(cfg.destinations["zeotap"])


@pytest.mark.parametrize("line", [f'    write_key: "{SECRET}\n', f"    write_key: [{SECRET}\n"])
def test_yaml_error_does_not_echo_the_offending_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "literal.yaml"
    path.write_text("destinations:\n  zeotap:\n    type: zeotap\n" + line, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert "not valid YAML" in str(info.value)
    assert SECRET not in str(info.value)


# --------------------------------------------------------------------------- topics: legal names, no dead-letter loops

TOPIC_ERROR_CASES = [
    pytest.param(
        _set("routes", "purchase_completed", "dead_letter_topic", value="purchase_completed"),
        "routes.purchase_completed.dead_letter_topic",
        ["'purchase_completed'", "source topic of route(s) purchase_completed", "endless loop"],
        id="dlt-is-own-source",
    ),
    pytest.param(
        _set("routes", "purchase_completed", "dead_letter_topic", value="page_view"),
        "routes.purchase_completed.dead_letter_topic",
        ["'page_view'", "source topic of route(s) page_view"],
        id="dlt-is-another-routes-source",
    ),
    pytest.param(
        _set("routes", "page_view", "topic", value="purchase_completed.dlt"),
        "routes.purchase_completed.dead_letter_topic",
        ["default dead-letter topic 'purchase_completed.dlt'", "route(s) page_view"],
        id="default-dlt-is-another-routes-source",
    ),
    pytest.param(
        _set("routes", "purchase_completed", "dead_letter_topic", value="page.view"),
        "routes.purchase_completed.dead_letter_topic",
        ["'page.view' collides", "route(s) page_view"],
        id="dlt-collides-dot-underscore",
    ),
    pytest.param(
        _set("routes", "page_view", "topic", value=""), "routes.page_view.topic", ["must not be empty"], id="empty-topic"
    ),
    pytest.param(
        _set("routes", "page_view", "dead_letter_topic", value=""),
        "routes.page_view.dead_letter_topic",
        ["must not be empty"],
        id="empty-dlt",
    ),
    pytest.param(
        _set("routes", "page_view", "topic", value="page view"),
        "routes.page_view.topic",
        ["characters Kafka does not allow", "' '"],
        id="space-in-topic",
    ),
    pytest.param(
        _set("routes", "page_view", "dead_letter_topic", value="dlt/page_view"),
        "routes.page_view.dead_letter_topic",
        ["'/'"],
        id="slash-in-dlt",
    ),
    pytest.param(_set("routes", "page_view", "topic", value=".."), "routes.page_view.topic", ["not a legal"], id="dotdot"),
    pytest.param(
        _set("routes", "page_view", "dead_letter_topic", value="."),
        "routes.page_view.dead_letter_topic",
        ["not a legal"],
        id="dot",
    ),
    pytest.param(
        _set("routes", "page_view", "topic", value="t" * 250),
        "routes.page_view.topic",
        ["250 characters", "at most 249"],
        id="topic-too-long",
    ),
    pytest.param(
        _set("routes", "page_view", "topic", value="t" * 249),
        "routes.page_view.dead_letter_topic",
        ["253 characters", "set dead_letter_topic"],
        id="default-dlt-too-long",
    ),
    pytest.param(
        _set("routes", "page_view", "topic", value="pägé"),
        "routes.page_view.topic",
        ["characters Kafka does not allow"],
        id="non-ascii-topic",
    ),
]


@pytest.mark.parametrize("mutate, field_path, fragments", TOPIC_ERROR_CASES)
def test_topic_errors_name_the_field(tmp_path: Path, mutate: Mutation, field_path: str, fragments: list[str]) -> None:
    _assert_error_names(tmp_path, mutate, field_path, fragments)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(
            _both(
                _set("routes", "purchase_completed", "dead_letter_topic", value="bridge.dlt"),
                _set("routes", "page_view", "dead_letter_topic", value="bridge.dlt"),
            ),
            id="shared-dlt",
        ),
        pytest.param(_set("routes", "page_view", "topic", value="A-z_0.9" + "x" * 238), id="legal-245-chars"),
        pytest.param(_set("routes", "page_view", "dead_letter_topic", value="page_view-dead"), id="explicit-dlt"),
    ],
)
def test_legal_topics_load(tmp_path: Path, mutate: Mutation) -> None:
    cfg = _load_mutated(tmp_path, mutate)
    sources = {r.topic for r in cfg.routes.values()}
    assert all(r.dlt not in sources for r in cfg.routes.values())
