"""Typed bridge configuration: one YAML file, `${ENV}` substitution, validated at start-up.

Every error names the file, the field path and what is wrong, e.g.::

    examples/bridge.yaml: routes.purchase_completed.destination: unknown destination 'zeotapp'
        (known: zeotap)
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union
from urllib.parse import urlsplit

import fastavro
import yaml
from pydantic import ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from streams.destinations.registry import DESTINATIONS, settings_models
from streams.destinations.settings import DestinationSettings
from streams.errors import ConfigError
from streams.mapping_check import Problem, SchemaPaths, check_mapping
from streams.mapping_spec import SECTIONS, parse_mapping
from streams.settings import FieldError, Model
from streams.urls import is_loopback, safe_url

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

# Kafka's own rule (org.apache.kafka.common.internals.Topic): 1-249 of these characters, not "." / ".."
_TOPIC_CHARS = re.compile(r"[a-zA-Z0-9._-]+")
TOPIC_MAX_LEN = 249
DEAD_LETTER_SUFFIX = ".dlt"


def topic_name_problem(name: str) -> str | None:
    """Why Kafka would refuse this topic name, or None when it is legal."""
    if not name:
        return "must not be empty"
    if len(name) > TOPIC_MAX_LEN:
        return f"is {len(name)} characters long; Kafka allows at most {TOPIC_MAX_LEN}"
    if name in (".", ".."):
        return f"{name!r} is not a legal Kafka topic name"
    if not _TOPIC_CHARS.fullmatch(name):
        bad = sorted({c for c in name if not _TOPIC_CHARS.fullmatch(c)})
        return f"{name!r} has characters Kafka does not allow ({''.join(bad)!r}); use only a-z A-Z 0-9 . _ -"
    return None


# --------------------------------------------------------------------------- Kafka


class SaslSettings(Model):
    mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] = "PLAIN"
    username: str | None = None
    password: SecretStr | None = None
    # OAUTHBEARER (OIDC client credentials)
    oauth_token_endpoint: str | None = None
    oauth_client_id: str | None = None
    oauth_client_secret: SecretStr | None = None
    oauth_scope: str | None = None

    @model_validator(mode="after")
    def _credentials_present(self) -> SaslSettings:
        if self.mechanism == "OAUTHBEARER":
            if not (self.oauth_token_endpoint and self.oauth_client_id and self.oauth_client_secret):
                raise ValueError("OAUTHBEARER needs oauth_token_endpoint, oauth_client_id and oauth_client_secret")
            # the client secret goes to the token endpoint: as for destinations, https unless loopback
            parts = urlsplit(self.oauth_token_endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                shown = safe_url(self.oauth_token_endpoint)
                raise FieldError(("oauth_token_endpoint",), f"must be an http(s) URL, got {shown!r}")
            if parts.scheme == "http" and not is_loopback(parts.hostname):
                raise FieldError(("oauth_token_endpoint",), "plain http to a non-loopback host; use https")
        elif not (self.username and self.password):
            raise ValueError(f"{self.mechanism} needs username and password")
        return self


class TlsSettings(Model):
    cafile: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    key_password: SecretStr | None = None
    check_hostname: bool = True


class SchemaRegistrySettings(Model):
    url: str
    username: str | None = None
    password: SecretStr | None = None


class KafkaSettings(Model):
    bootstrap_servers: str
    group_id: str = "s2s-bridge"
    client_id: str = "s2s-bridge"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl: SaslSettings | None = None
    tls: TlsSettings | None = None
    schema_registry: SchemaRegistrySettings | None = None
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    create_topics: bool = True
    topic_partitions: Annotated[int, Field(ge=1)] = 6
    replication_factor: Annotated[int, Field(ge=1)] = 1
    commit_interval_s: Annotated[float, Field(gt=0)] = 1.0
    # how long a crashed member holds its partitions before the group rebalances
    session_timeout_s: Annotated[float, Field(ge=6, le=300)] = 30.0
    heartbeat_interval_s: Annotated[float, Field(gt=0)] = 3.0
    # static group membership (librdkafka's group.instance.id; docs/deploy.md, "Fast restarts"): a
    # name unique to this member that survives its restarts, e.g. ${POD_NAME} of a StatefulSet pod.
    # A member that comes back within session_timeout_s gets its partitions back without a
    # rebalance; one that never comes back stalls them for session_timeout_s. Empty: dynamic
    group_instance_id: str | None = None
    # "consumer": KIP-848's protocol (Kafka >= 4.0); the broker then owns the session timeout,
    # the heartbeat interval and the assignor (group.consumer.* broker settings). Dynamic members only
    group_protocol: Literal["classic", "consumer"] = "classic"
    # batch engine: the broker answers a fetch once it has this many bytes or after this wait,
    # instead of one small fetch per produced batch (a fraction of the broker's CPU, and ours, at
    # moderate rates; adds at most fetch_max_wait_ms of latency when traffic is low)
    fetch_min_bytes: Annotated[int, Field(ge=1, le=52_428_800)] = 65_536
    fetch_max_wait_ms: Annotated[int, Field(ge=0, le=10_000)] = 50

    @model_validator(mode="after")
    def _security_consistent(self) -> KafkaSettings:
        if self.security_protocol.startswith("SASL") and self.sasl is None:
            raise ValueError(f"security_protocol {self.security_protocol} needs a 'sasl' section")
        # a section the protocol does not use would be ignored by one client library and not the other
        if self.sasl is not None and not self.security_protocol.startswith("SASL"):
            raise ValueError(
                f"a 'sasl' section needs security_protocol SASL_SSL (or SASL_PLAINTEXT), not {self.security_protocol}"
            )
        if self.tls is not None and not self.security_protocol.endswith("SSL"):
            raise ValueError(f"a 'tls' section needs security_protocol SSL or SASL_SSL, not {self.security_protocol}")
        return self

    @field_validator("group_instance_id")
    @classmethod
    def _instance_id_usable(cls, v: str | None) -> str | None:
        if not v:
            return None  # `${POD_NAME:-}` unset, or left empty: dynamic membership
        if re.search(r"\$[{(]", v):
            # `$(POD_NAME)` is Kubernetes' syntax, expanded only in command/args/env, never in a
            # mounted file: every pod would join with the same literal id and fence the others
            raise ValueError(
                f"{v!r} holds an unexpanded variable reference; use ${{POD_NAME}} with POD_NAME set from "
                "the pod's metadata.name (Downward API), so that each member has its own id"
            )
        if any(c.isspace() for c in v):
            raise ValueError(f"{v!r} contains whitespace; use the pod name (${{POD_NAME}})")
        # the broker's own rule (JoinGroupRequest.validateGroupInstanceId): that of topic names
        if len(v) > TOPIC_MAX_LEN or v in (".", "..") or not _TOPIC_CHARS.fullmatch(v):
            raise ValueError(f"{v!r} is not a legal group instance id: 1-{TOPIC_MAX_LEN} of a-z A-Z 0-9 . _ -")
        return v

    @model_validator(mode="after")
    def _protocol_settings_consistent(self) -> KafkaSettings:
        if self.group_protocol == "consumer" and self.group_instance_id:
            # measured on Kafka 4.1 with librdkafka 2.16 (docs/deploy.md, "Fast restarts"): a member
            # restarted after a crash is refused (UNRELEASED_INSTANCE_ID, a fatal error) until the
            # broker's session timeout frees its id, so every restart would crash again until then
            raise FieldError(
                ("group_instance_id",),
                "static membership needs group_protocol 'classic': with 'consumer' (KIP-848) a member "
                "restarted after a crash is fenced (UNRELEASED_INSTANCE_ID, fatal) until the broker's "
                "session timeout, a crash loop instead of a fast restart",
            )
        if self.group_protocol == "consumer":
            # with KIP-848 the broker decides these (group.consumer.session.timeout.ms and
            # group.consumer.heartbeat.interval.ms); librdkafka refuses them, and a value kept here
            # would look as if it still governed how fast a dead member is noticed
            for name in ("session_timeout_s", "heartbeat_interval_s"):
                if name in self.model_fields_set:
                    raise FieldError(
                        (name,),
                        "not used with group_protocol 'consumer': the broker's group.consumer.* settings "
                        "decide it; remove it, or use group_protocol 'classic'",
                    )
        return self


# --------------------------------------------------------------------------- destinations

# each entry of `destinations:` is parsed with the settings model its `type:` names, one model per
# API in streams.destinations.registry; type checkers see the common base
if TYPE_CHECKING:
    Destination = DestinationSettings
else:
    Destination = Annotated[Union[settings_models()], Field(discriminator="type")]  # noqa: UP007 (a tuple of types)


# --------------------------------------------------------------------------- routes


class CountrySourceSettings(Model):
    """Where a record's country comes from; first hit wins, in this order."""

    field: str | None = "customer.country"
    phone: str | None = "customer.phone"
    ip: str | None = "context.ip_address"
    locale: str | None = "context.locale"
    default: str | None = None


class RouteSettings(Model):
    topic: str
    schema_file: Path = Field(alias="schema")
    framing: Literal["auto", "confluent", "single_object", "plain"] = "auto"
    destination: str
    dead_letter_topic: str | None = None
    entity: Literal["customer", "nce"] = "customer"
    country: CountrySourceSettings = CountrySourceSettings()
    mapping: dict[str, dict[str, Any]]
    # consent gate of the destination; off for routes that carry consent changes themselves
    enforce_consent: bool = True
    # false: every record of the route is filtered (counted), e.g. while a destination is onboarded
    forward: bool = True
    # the route's event names as the destination calls them (e.g. purchase_completed: purchase);
    # a name not listed is sent as it is
    event_names: dict[str, str] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def dlt(self) -> str:
        return self.dead_letter_topic or f"{self.topic}{DEAD_LETTER_SUFFIX}"

    @field_validator("topic", "dead_letter_topic")
    @classmethod
    def _legal_topic(cls, v: str | None) -> str | None:
        if v is not None and (problem := topic_name_problem(v)) is not None:
            raise ValueError(problem)
        return v

    @model_validator(mode="after")
    def _default_dead_letter_topic_legal(self) -> RouteSettings:
        if self.dead_letter_topic is None and len(self.dlt) > TOPIC_MAX_LEN:
            raise FieldError(
                ("dead_letter_topic",),
                f"the default {self.topic[:20]!r}...{DEAD_LETTER_SUFFIX!r} would be {len(self.dlt)} characters "
                f"(Kafka allows {TOPIC_MAX_LEN}); set dead_letter_topic",
            )
        return self

    @field_validator("event_names")
    @classmethod
    def _event_names_not_empty(cls, v: dict[str, str]) -> dict[str, str]:
        empty = sorted(k for k, name in v.items() if not str(name).strip())
        if empty:
            raise ValueError(f"event name for {', '.join(map(repr, empty))} is empty")
        return v

    @field_validator("mapping")
    @classmethod
    def _sections_known(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        unknown = set(v) - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown mapping section(s) {sorted(unknown)}; allowed: {', '.join(SECTIONS)}")
        # parse it here (the grammar the pipeline compiles from) so that a bad field spec is a
        # config error at start-up; a MappingSpecError is a ValueError, reported at this field
        try:
            parse_mapping(v)
        except TypeError as exc:  # e.g. an unhashable `exclude` entry
            raise ValueError(f"invalid mapping: {exc}") from None
        return v


class MetricsSettings(Model):
    host: str = "0.0.0.0"
    port: Annotated[int, Field(ge=0, le=65535)] = 9108


class WorkerSettings(Model):
    shutdown_grace_s: Annotated[float, Field(gt=0)] = 25.0
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # records held by the worker (decoded, waiting for delivery) per route, across batches
    max_in_flight_events: Annotated[int, Field(ge=1)] = 20_000
    # how records are consumed: "batch" (confluent-kafka, a batch at a time; the default) or "faust"
    # (a Faust agent per route; ~73 µs of framework CPU per record, see docs/performance.md)
    engine: Literal["batch", "faust"] = "batch"
    # batch engine: records taken per consume call
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = 1000
    # batch engine: how long a rebalance waits for revoked partitions' in-flight records to settle
    rebalance_wait_s: Annotated[float, Field(ge=0, le=120)] = 10.0
    # the transform core: "auto" takes the native one (streams._native) when it is built, "off" the
    # Python pipeline (docs/native.md)
    native: Literal["auto", "off"] = "auto"


class BridgeConfig(Model):
    kafka: KafkaSettings
    destinations: dict[str, Destination]
    routes: dict[str, RouteSettings]
    metrics: MetricsSettings = MetricsSettings()
    worker: WorkerSettings = WorkerSettings()
    schema_paths: tuple[Path, ...] = ()

    # set by load_config: where relative paths in the file are resolved from
    base_dir: Path = Path(".")

    @model_validator(mode="after")
    def _engine_speaks_group_protocol(self) -> BridgeConfig:
        if self.worker.engine == "faust" and self.kafka.group_protocol != "classic":
            raise FieldError(
                ("kafka", "group_protocol"),
                f"{self.kafka.group_protocol!r} needs worker.engine 'batch': the faust engine's client (aiokafka) "
                "speaks only the classic consumer group protocol",
            )
        return self

    @model_validator(mode="after")
    def _references_resolve(self) -> BridgeConfig:
        for name, route in self.routes.items():
            if route.destination not in self.destinations:
                raise FieldError(
                    ("routes", name, "destination"),
                    f"unknown destination {route.destination!r} (known: {', '.join(sorted(self.destinations))})",
                )
        return self

    @model_validator(mode="after")
    def _dead_letters_cannot_loop(self) -> BridgeConfig:
        """A dead-letter topic that is also a source topic (of any route) would consume its own dead
        letters again: an endless loop. Two routes sharing a dead-letter topic is allowed (replay
        filters by route). Names that differ only in '.' vs '_' collide in Kafka (it refuses to
        create the second one), so they count as the same topic here."""
        sources: dict[str, list[str]] = {}
        for name, route in self.routes.items():
            sources.setdefault(_collision_key(route.topic), []).append(name)
        for name, route in self.routes.items():
            looping = sources.get(_collision_key(route.dlt))
            if looping:
                which = "the default dead-letter topic" if route.dead_letter_topic is None else "dead-letter topic"
                owners = ", ".join(sorted(looping))
                same = "is" if all(self.routes[o].topic == route.dlt for o in looping) else "collides ('.' vs '_') with"
                raise FieldError(
                    ("routes", name, "dead_letter_topic"),
                    f"{which} {route.dlt!r} {same} the source topic of route(s) {owners}: "
                    "its dead letters would be consumed again, an endless loop; use a topic no route consumes",
                )
        return self

    def schema_path(self, route: RouteSettings) -> Path:
        p = route.schema_file
        return p if p.is_absolute() else (self.base_dir / p)


def _collision_key(topic: str) -> str:
    # Kafka: topics whose names differ only in '.' vs '_' share metric names and cannot coexist
    return topic.replace(".", "_")


# --------------------------------------------------------------------------- loading


def substitute_env(node: Any, env: dict[str, str], path: tuple[str, ...] = ()) -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string; a missing variable is an error at its path."""
    if isinstance(node, dict):
        return {k: substitute_env(v, env, (*path, str(k))) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute_env(v, env, (*path, str(i))) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:

        def repl(m: re.Match[str]) -> str:
            var, default = m.group(1), m.group(2)
            if var in env:
                return env[var]
            if default is not None:
                return default
            raise FieldError(path, f"environment variable {var} is not set")

        # the value stays a string: the typed fields convert "6" / "true" / "0.5" themselves, while
        # YAML-parsing it would break (or raise on, echoing the value) secrets such as "@x", "a #b",
        # "!x" or a numeric password
        return _ENV_REF.sub(repl, node)
    return node


def load_config(path: str | Path, env: dict[str, str] | None = None) -> BridgeConfig:
    """Read, substitute and validate a config file; raise ConfigError naming file, field and problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # position and problem only: PyYAML's message quotes the offending line, which may hold a secret
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = "; ".join(p for p in (getattr(exc, "context", None), getattr(exc, "problem", None)) if p)
        raise ConfigError(f"{path}: not valid YAML: {where}{what or type(exc).__name__}") from None
    if raw is None:
        raise ConfigError(f"{path}: the file is empty (expected kafka, destinations and routes)")
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return config_from_mapping(raw, path, env)


def config_from_mapping(raw: dict[str, Any], path: Path, env: dict[str, str] | None = None) -> BridgeConfig:
    """Substitute and validate a config already read from YAML (``path``: where its relative paths
    start and what its errors name); raise ConfigError naming file, field and problem."""
    # `x-...` keys are free for YAML anchors shared between routes
    raw = {k: v for k, v in raw.items() if not str(k).startswith("x-")}
    try:
        raw = substitute_env(raw, dict(os.environ) if env is None else env)
        raw["base_dir"] = str(path.resolve().parent)
        config = BridgeConfig.model_validate(raw)
    except FieldError as exc:
        raise ConfigError(f"{path}: {'.'.join(exc.loc) or '<top>'}: {exc}") from None
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path, exc)) from None
    problems = schema_problems(config)
    if problems:
        raise ConfigError("\n".join(f"{path}: {p.field}: {p.message}" for p in problems))
    return config


def schema_problems(config: BridgeConfig) -> list[Problem]:
    """The schema files read and parsed, and every route's mapping and country paths checked
    against its reader schema (`streams.mapping_check`); all problems, fields named from the top."""
    problems: list[Problem] = []
    for i, p in enumerate(config.schema_paths):
        _read_schema(f"schema_paths.{i}", p if p.is_absolute() else config.base_dir / p, problems)
    for name, route in config.routes.items():
        at = f"routes.{name}"
        schema = _read_schema(f"{at}.schema", config.schema_path(route), problems)
        if schema is None:
            continue
        paths = SchemaPaths(schema, f"the schema {route.schema_file.name}")
        found = check_mapping(paths, route.mapping)
        # the country sources a route sets itself (the defaults fit the shipped schemas' shape and
        # are read only when present)
        for source in sorted(route.country.model_fields_set & {"field", "phone", "ip", "locale"}):
            value = getattr(route.country, source)
            if value is not None:
                found += paths.check_source(f"country.{source}", value, "a country source")
        problems += [Problem(f"{at}.{p.field}", p.message) for p in found]
    return problems


def _read_schema(field: str, path: Path, problems: list[Problem]) -> Any:
    """An Avro schema file's JSON, or None with the reason added to `problems`."""
    path = path.resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        problems.append(Problem(field, f"file not found: {path}"))
        return None
    except IsADirectoryError:
        problems.append(Problem(field, f"is a directory, not a schema file: {path}"))
        return None
    except UnicodeDecodeError:
        problems.append(Problem(field, f"{path}: not valid JSON (not UTF-8 text)"))
        return None
    except OSError as exc:
        problems.append(Problem(field, f"cannot read {path}: {exc.strerror}"))
        return None
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.append(Problem(field, f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"))
        return None
    try:
        fastavro.parse_schema(schema, _write_hint=False)
    except Exception as exc:  # noqa: BLE001 - fastavro raises many kinds (SchemaParseException, KeyError, TypeError ...)
        detail = f"{type(exc).__name__}: {exc}" if not str(exc).startswith(type(exc).__name__) else str(exc)
        problems.append(Problem(field, f"{path}: not a valid Avro schema: {detail}"[:300]))
        return None
    return schema


def _format_validation_error(path: Path, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        # discriminated unions add the tag to the path: destinations.zeotap.zeotap.url -> .url
        ctx_err = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_err, FieldError):
            # the error's own path is relative to the model that raised it
            loc, msg = loc + list(ctx_err.loc), str(ctx_err)
        else:
            msg = err["msg"].removeprefix("Value error, ")
        if len(loc) >= 3 and loc[0] == "destinations" and loc[2] in DESTINATIONS:
            del loc[2]
        if err["type"] == "missing":
            msg = "required field is missing"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"{path}: {'.'.join(loc) or '<top>'}: {msg}")
    return "\n".join(lines)
