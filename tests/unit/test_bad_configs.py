"""Mistakes a person really makes in a config, through the real CLI: `check --config-only` exits 2
with one line naming the field and saying what is wrong (and what was meant), never a traceback.

Each case is a small edit of a valid base config (one route, the shipped purchase_completed schema
by absolute path); the shipped configs themselves pass.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "avro_schemas" / "purchase_completed.avsc"
DELETE = object()
ROUTE = "routes.purchase_completed"
MAPPING = f"{ROUTE}.mapping"

BASE: dict[str, Any] = {
    "kafka": {"bootstrap_servers": "127.0.0.1:9092"},
    "destinations": {
        "zeotap": {
            "type": "zeotap",
            "url": "http://127.0.0.1:8080/zeotap",
            "write_key": "wk-not-real",
            "region": "EU",
            "batch": {"max_events": 500},
        }
    },
    "routes": {
        "purchase_completed": {
            "topic": "purchase_completed",
            "schema": str(SCHEMA),
            "destination": "zeotap",
            "mapping": {
                "event": {
                    "eventName": {"const": "purchase_completed"},
                    "eventId": "event_id",
                    "eventTimestamp": {"path": "occurred_at", "as": "timestamp"},
                    "*": {"from": "", "exclude": ["event_id", "occurred_at", "customer", "context", "consent"]},
                },
                "user": {
                    "userId": {"path": "customer.customer_id", "identity": "id"},
                    "email_sha256": {"path": "customer.email", "identity": "email"},
                    "phone_sha256": {"path": "customer.phone", "identity": "phone"},
                    "country": {"country": True},
                },
                "consent": {"marketing": {"path": "consent.marketing", "consent": True}},
                "page": {"url": "context.page_url"},
                "device": {"ipAddress": "context.ip_address"},
            },
        }
    },
}

# (id, edits: dotted key -> new value (DELETE removes it; "{tmp}" in a string is the test's
# directory), or the whole file's text; the field the error names (for the file itself: the
# start of its message); a fragment of its message)
CASES: list[tuple[str, dict[str, Any] | str, str, str]] = [
    # --- mapping paths that do not exist
    (
        "misspelled-user-path",
        {f"{MAPPING}.user.email_sha256.path": "customer.emial"},
        f"{MAPPING}.user.email_sha256.path",
        "'customer.emial' is not a field of the schema purchase_completed.avsc; did you mean 'customer.email'?",
    ),
    (
        "misspelled-shorthand-page-path",
        {f"{MAPPING}.page.url": "context.page_ulr"},
        f"{MAPPING}.page.url",
        "did you mean 'context.page_url'?",
    ),
    (
        "misspelled-consent-path",
        {f"{MAPPING}.consent.marketing.path": "consent.marketting"},
        f"{MAPPING}.consent.marketing.path",
        "did you mean 'consent.marketing'?",
    ),
    (
        "wrong-case-device-path",
        {f"{MAPPING}.device.ipAddress": "Context.IP_Address"},
        f"{MAPPING}.device.ipAddress",
        "did you mean 'context.ip_address'?",
    ),
    ("misspelled-event-path", {f"{MAPPING}.event.eventId": "eventid"}, f"{MAPPING}.event.eventId", "did you mean 'event_id'?"),
    (
        "path-missing-a-level",
        {f"{MAPPING}.user.email_sha256.path": "email"},
        f"{MAPPING}.user.email_sha256.path",
        "did you mean 'customer.email'?",
    ),
    (
        "path-with-an-extra-level",
        {f"{MAPPING}.page.url": "context.page.url"},
        f"{MAPPING}.page.url",
        "'context.page.url' is not a field",
    ),
    (
        "path-into-a-string",
        {f"{MAPPING}.device.ipAddress": "context.ip_address.v4"},
        f"{MAPPING}.device.ipAddress",
        "'context.ip_address' is null | string: a path goes on only in a record or map",
    ),
    (
        "path-into-an-array",
        {f"{MAPPING}.event.product": "items.product_id"},
        f"{MAPPING}.event.product",
        "'items' is an array: a path cannot index into an array",
    ),
    ("nothing-close", {f"{MAPPING}.page.title": "zzqqxx"}, f"{MAPPING}.page.title", "'zzqqxx' is not a field of the schema"),
    (
        "rest-from-misspelled",
        {f"{MAPPING}.event.*.from": "custmer"},
        f"{MAPPING}.event.*.from",
        "did you mean 'customer'?",
    ),
    (
        "rest-exclude-misspelled",
        {f"{MAPPING}.event.*.exclude": ["event_id", "occurred_at", "custmer", "context", "consent"]},
        f"{MAPPING}.event.*.exclude",
        "'custmer' is not a field of the record; did you mean 'customer'?",
    ),
    (
        "key-from-record-missing",
        {f"{MAPPING}.consent.{{consent_typ}}": {"path": "consent.marketing", "consent": True}},
        f"{MAPPING}.consent.{{consent_typ}}",
        "'consent_typ' is not a field",
    ),
    (
        "country-field-misspelled",
        {f"{ROUTE}.country": {"field": "customer.contry"}},
        f"{ROUTE}.country.field",
        "did you mean 'customer.country'?",
    ),
    # --- operators on the wrong type
    (
        "identity-email-on-record",
        {f"{MAPPING}.user.email_sha256.path": "customer"},
        f"{MAPPING}.user.email_sha256",
        "identity: email needs a string or enum, but 'customer' is a record",
    ),
    (
        "identity-id-on-array",
        {f"{MAPPING}.user.userId.path": "items"},
        f"{MAPPING}.user.userId",
        "identity: id needs a string, enum, uuid, int or long, but 'items' is an array",
    ),
    (
        "identity-phone-on-double",
        {f"{MAPPING}.user.phone_sha256.path": "order_value"},
        f"{MAPPING}.user.phone_sha256",
        "identity: phone needs a string, enum, int or long, but 'order_value' is a double",
    ),
    (
        "identity-name-on-timestamp",
        {f"{MAPPING}.user.name": {"path": "occurred_at", "identity": "name"}},
        f"{MAPPING}.user.name",
        "but 'occurred_at' is a timestamp-millis",
    ),
    (
        "timestamp-on-record",
        {f"{MAPPING}.event.eventTimestamp.path": "context"},
        f"{MAPPING}.event.eventTimestamp",
        "as: timestamp needs a string, int, long, float, double",
    ),
    (
        "timestamp-on-boolean",
        {f"{MAPPING}.event.eventTimestamp.path": "consent.marketing"},
        f"{MAPPING}.event.eventTimestamp",
        "but 'consent.marketing' is null | boolean",
    ),
    (
        "consent-on-array",
        {f"{MAPPING}.consent.marketing.path": "items"},
        f"{MAPPING}.consent.marketing",
        "consent needs a string, enum, boolean, int, long, float or double, but 'items' is an array",
    ),
    (
        "consent-on-record",
        {f"{MAPPING}.consent.marketing.path": "consent"},
        f"{MAPPING}.consent.marketing",
        "but 'consent' is null | record",
    ),
    (
        "coercion-on-record",
        {f"{MAPPING}.event.total": {"path": "customer", "as": "float"}},
        f"{MAPPING}.event.total",
        "as: float needs",
    ),
    (
        "rest-from-a-string",
        {f"{MAPPING}.event.*.from": "order_id"},
        f"{MAPPING}.event.*.from",
        "'*' from needs a record or map, but 'order_id' is a string",
    ),
    (
        "country-source-on-record",
        {f"{ROUTE}.country": {"ip": "context"}},
        f"{ROUTE}.country.ip",
        "a country source needs a string or enum, but 'context' is a record",
    ),
    # --- mapping grammar
    ("unknown-mapping-section", {f"{MAPPING}.users": {"x": "event_id"}}, f"{MAPPING}", "unknown mapping section(s) ['users']"),
    (
        "unknown-field-option",
        {f"{MAPPING}.user.email_sha256": {"path": "customer.email", "idenity": "email"}},
        f"{MAPPING}",
        "unknown option(s) ['idenity']",
    ),
    (
        "unknown-identity-kind",
        {f"{MAPPING}.user.email_sha256.identity": "mail"},
        f"{MAPPING}",
        "'identity' must be one of ['email', 'id', 'name', 'phone'], got 'mail'",
    ),
    ("unknown-coercion", {f"{MAPPING}.event.eventTimestamp.as": "datetime"}, f"{MAPPING}", "'as' must be one of"),
    # --- schema files
    ("schema-file-missing", {f"{ROUTE}.schema": "{tmp}/nope.avsc"}, f"{ROUTE}.schema", "file not found: {tmp}/nope.avsc"),
    ("schema-is-a-directory", {f"{ROUTE}.schema": "{tmp}"}, f"{ROUTE}.schema", "is a directory, not a schema file"),
    ("schema-not-json", {f"{ROUTE}.schema": "{tmp}/bad_json.avsc"}, f"{ROUTE}.schema", "not valid JSON at line 3, column"),
    ("schema-not-avro", {f"{ROUTE}.schema": "{tmp}/bad_avro.avsc"}, f"{ROUTE}.schema", "not a valid Avro schema: "),
    ("schema-paths-entry-missing", {"schema_paths": ["{tmp}/old.avsc"]}, "schema_paths.0", "file not found: {tmp}/old.avsc"),
    # --- routes and destinations
    (
        "unknown-destination",
        {f"{ROUTE}.destination": "zeotapp"},
        f"{ROUTE}.destination",
        "unknown destination 'zeotapp' (known: zeotap)",
    ),
    (
        "unknown-destination-type",
        {"destinations.zeotap.type": "zeotapp"},
        "destinations.zeotap",
        "Input tag 'zeotapp' found using 'type' does not match any of the expected tags: 'zeotap', ",
    ),
    ("unknown-framing", {f"{ROUTE}.framing": "avro"}, f"{ROUTE}.framing", "'confluent'"),
    (
        "destination-missing-required",
        {"destinations.zeotap.write_key": DELETE},
        "destinations.zeotap.write_key",
        "required field is missing",
    ),
    ("destination-bad-url", {"destinations.zeotap.url": "zeotap.example.com/api"}, "destinations.zeotap.url", "URL"),
    ("negative-batch-size", {"destinations.zeotap.batch.max_events": -5}, "destinations.zeotap.batch.max_events", "greater than"),
    ("zero-worker-batch", {"worker": {"batch_size": 0}}, "worker.batch_size", "greater than or equal to 1"),
    ("route-missing-topic", {f"{ROUTE}.topic": DELETE}, f"{ROUTE}.topic", "required field is missing"),
    ("illegal-topic-name", {f"{ROUTE}.topic": "purchase completed"}, f"{ROUTE}.topic", "characters Kafka does not allow"),
    ("dead-letters-loop", {f"{ROUTE}.dead_letter_topic": "purchase_completed"}, f"{ROUTE}.dead_letter_topic", "endless loop"),
    ("wrong-value-type", {"kafka.topic_partitions": "six"}, "kafka.topic_partitions", "valid integer"),
    ("unknown-top-level-key", {"route": {}}, "route", "unknown field"),
    (
        "misspelled-key",
        {"kafka.bootstrap_server": "127.0.0.1:9092", "kafka.bootstrap_servers": DELETE},
        "kafka.bootstrap_server",
        "unknown field",
    ),
    (
        "env-var-not-set",
        {"destinations.zeotap.write_key": "${S7_NEVER_SET_WRITE_KEY}"},
        "destinations.zeotap.write_key",
        "environment variable S7_NEVER_SET_WRITE_KEY is not set",
    ),
    ("sasl-without-section", {"kafka.security_protocol": "SASL_SSL"}, "kafka", "needs a 'sasl' section"),
    # --- the file itself
    ("yaml-syntax-error", "kafka:\n  bootstrap_servers: [127.0.0.1:9092\nroutes: {}\n", "not valid YAML", "line 3"),
    ("empty-file", "", "the file is empty", "(expected kafka, destinations and routes)"),
    ("top-level-a-list", "- kafka\n- routes\n", "top level must be a mapping", "mapping"),
]


def _edited(edits: dict[str, Any], tmp: str) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    for dotted, value in edits.items():
        *parents, last = dotted.split(".")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        if value is DELETE:
            del node[last]
        else:
            node[last] = json.loads(json.dumps(value).replace("{tmp}", tmp))
    return raw


def _check(config: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams", "check", "--config-only", "--config", str(config)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def schema_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("schemas")
    (d / "bad_json.avsc").write_text('{\n  "type": "record",\n  "name": "x" "fields": []\n}\n', encoding="utf-8")
    (d / "bad_avro.avsc").write_text(json.dumps({"type": "record", "name": "x", "fields": [{"name": "a", "type": "strng"}]}))
    return d


def test_the_base_config_is_valid(tmp_path: Path) -> None:
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(BASE, sort_keys=False), encoding="utf-8")
    done = _check(path)
    assert (done.returncode, done.stdout.strip()) == (0, "config OK: 1 route, 1 destination"), done.stderr


@pytest.mark.parametrize(("edits", "field", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_config_is_named_and_explained(
    edits: dict[str, Any] | str, field: str, fragment: str, schema_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "bridge.yaml"
    tmp = str(schema_dir)
    text = edits if isinstance(edits, str) else yaml.safe_dump(_edited(edits, tmp), sort_keys=False)
    path.write_text(text, encoding="utf-8")
    done = _check(path)
    err = done.stderr
    assert done.returncode == 2, err
    assert "Traceback" not in err
    assert done.stdout == ""
    assert err.startswith(f"error: {path}: "), err
    assert f"{path}: {field}" in err, err
    assert fragment.replace("{tmp}", tmp) in err, err


def test_the_case_table_is_distinct() -> None:
    assert len({c[0] for c in CASES}) == len(CASES) >= 30
    assert len({json.dumps(c[1], default=str) for c in CASES}) == len(CASES)


def _shipped() -> list[tuple[str, Path, dict[str, str]]]:
    env = {"ZEOTAP_WRITE_KEY": "wk-not-real", "AUDIOHOOK_TOKEN": "t", "ACTIVATION_API_KEY": "k", "ACTIVATION_CLIENT_SECRET": "s"}
    out = [(p.name, p, env) for p in sorted((ROOT / "examples").glob("*.yaml"))]
    return out


@pytest.mark.parametrize(("name", "path", "env"), _shipped(), ids=[s[0] for s in _shipped()])
def test_shipped_configs_pass(name: str, path: Path, env: dict[str, str]) -> None:
    done = _check(path, env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("config OK: ")


def test_the_deploy_config_passes(tmp_path: Path) -> None:
    # the ConfigMap's config with its env as the deploy tests set it; the image's /app/avro_schemas
    # is the repository's avro_schemas here
    from tests.deploy.test_manifests import bridge_yaml, env_config, render

    docs = render("production")
    text = bridge_yaml(docs)
    assert "/app/avro_schemas/" in text
    path = tmp_path / "bridge.yaml"
    path.write_text(text.replace("/app/avro_schemas/", f"{ROOT}/avro_schemas/"), encoding="utf-8")
    env = {**env_config(docs), "KAFKA_USERNAME": "u", "KAFKA_PASSWORD": "p", "ZEOTAP_WRITE_KEY": "wk"}
    done = _check(path, env)
    assert (done.returncode, done.stdout.strip()) == (0, "config OK: 7 routes, 1 destination"), done.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["worker"],
        ["check"],
        ["status"],
        ["transform", "--route", "purchase_completed", "--input", "-"],
        ["replay", "--route", "purchase_completed", "--dry-run"],
    ],
    ids=lambda c: c[0],
)
def test_every_command_refuses_a_misspelled_path(command: list[str], tmp_path: Path) -> None:
    # they all load the config through load_config: the worker does not start (nothing reached,
    # the broker's address is a closed port), the others do not run
    path = tmp_path / "bridge.yaml"
    raw = _edited({f"{MAPPING}.user.email_sha256.path": "customer.emial", "kafka.bootstrap_servers": "127.0.0.1:9"}, "")
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "streams", *command, "--config", str(path)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        input="",
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{MAPPING}.user.email_sha256.path: 'customer.emial' is not a field" in done.stderr
    assert "did you mean 'customer.email'?" in done.stderr
