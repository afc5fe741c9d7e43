"""Kafka client settings from the config, for confluent-kafka (librdkafka) and Faust (aiokafka)."""

from __future__ import annotations

import logging
from typing import Any

from streams.config import KafkaSettings
from streams.errors import FatalError
from streams.logs import rdkafka_logger


class _SaslRedactor(logging.Filter):
    """aiokafka logs every request and response at DEBUG, SASL ones included: the PLAIN password, the
    OAuth bearer token and the SCRAM exchange would be in the logs. Their bytes are replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(type(a).__name__.startswith("SaslAuthenticate") for a in args):
            record.args = tuple(
                f"{type(a).__name__}(<sasl_auth_bytes redacted>)" if type(a).__name__.startswith("SaslAuthenticate") else a
                for a in args
            )
        return True


_REDACTOR = _SaslRedactor()


def redact_client_logs() -> None:
    """Keep SASL secrets out of aiokafka's debug logs (idempotent; done on import of this module)."""
    conn = logging.getLogger("aiokafka.conn")
    if _REDACTOR not in conn.filters:
        conn.addFilter(_REDACTOR)


redact_client_logs()


def confluent_conf(k: KafkaSettings, **extra: Any) -> dict[str, Any]:
    """librdkafka settings: bootstrap, client id and security (SASL / TLS)."""
    conf: dict[str, Any] = {
        "bootstrap.servers": k.bootstrap_servers,
        "client.id": k.client_id,
        "security.protocol": k.security_protocol.lower(),
    }
    if k.sasl is not None:
        conf["sasl.mechanism"] = k.sasl.mechanism
        if k.sasl.mechanism == "OAUTHBEARER":
            conf["sasl.oauthbearer.method"] = "oidc"
            conf["sasl.oauthbearer.token.endpoint.url"] = k.sasl.oauth_token_endpoint
            conf["sasl.oauthbearer.client.id"] = k.sasl.oauth_client_id
            assert k.sasl.oauth_client_secret is not None
            conf["sasl.oauthbearer.client.secret"] = k.sasl.oauth_client_secret.get_secret_value()
            if k.sasl.oauth_scope:
                conf["sasl.oauthbearer.scope"] = k.sasl.oauth_scope
        else:
            conf["sasl.username"] = k.sasl.username
            assert k.sasl.password is not None
            conf["sasl.password"] = k.sasl.password.get_secret_value()
    if k.tls is not None:
        if k.tls.cafile:
            conf["ssl.ca.location"] = str(k.tls.cafile)
        if k.tls.certfile:
            conf["ssl.certificate.location"] = str(k.tls.certfile)
        if k.tls.keyfile:
            conf["ssl.key.location"] = str(k.tls.keyfile)
        if k.tls.key_password:
            conf["ssl.key.password"] = k.tls.key_password.get_secret_value()
        conf["ssl.endpoint.identification.algorithm"] = "https" if k.tls.check_hostname else "none"
    conf.update(extra)
    return conf


class KafkaUnavailable(FatalError):
    """The cluster cannot be used: unreachable, TLS or authentication failure (the message says which)."""


def connect_admin(k: KafkaSettings, timeout: float = 15.0) -> tuple[Any, Any]:
    """An AdminClient and the cluster metadata, or KafkaUnavailable with librdkafka's reason.

    A plain ``list_topics`` only says "Broker transport failure" when the password is wrong or the CA
    does not match; the reason (``SASL authentication error: ...``, ``certificate verify failed``) comes
    through the error callback, which this collects. Messages never contain secrets.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    errors: list[KafkaError] = []
    admin = AdminClient(confluent_conf(k, error_cb=errors.append, logger=rdkafka_logger("admin")))
    try:
        return admin, admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        admin.poll(0.5)  # serves the error callback
        reasons = [e.str() for e in errors if e.code() != KafkaError._ALL_BROKERS_DOWN] or [exc.args[0].str()]
        how = k.security_protocol + (f"/{k.sasl.mechanism}" if k.sasl is not None else "")
        raise KafkaUnavailable(
            f"cannot use Kafka at {k.bootstrap_servers} ({how}): {'; '.join(dict.fromkeys(reasons))}"
        ) from None


def faust_credentials(k: KafkaSettings) -> Any:
    """Faust `broker_credentials` for the configured security protocol (None for PLAINTEXT)."""
    import ssl

    import faust

    ctx = None
    if k.security_protocol in ("SSL", "SASL_SSL"):
        ctx = ssl.create_default_context(cafile=str(k.tls.cafile) if k.tls and k.tls.cafile else None)
        if k.tls is not None:
            ctx.check_hostname = k.tls.check_hostname
            if k.tls.certfile:
                ctx.load_cert_chain(
                    str(k.tls.certfile),
                    str(k.tls.keyfile) if k.tls.keyfile else None,
                    k.tls.key_password.get_secret_value() if k.tls.key_password else None,
                )
    if k.sasl is None:
        return faust.SSLCredentials(ctx) if ctx is not None else None
    if k.sasl.mechanism == "OAUTHBEARER":
        from streams.oauth import OAuthCredentials

        return OAuthCredentials(k.sasl, ctx)
    assert k.sasl.password is not None
    return faust.SASLCredentials(
        username=k.sasl.username,
        password=k.sasl.password.get_secret_value(),
        ssl_context=ctx,
        mechanism=k.sasl.mechanism,
    )


BROKER_MAX_MESSAGE_BYTES = 1_048_588  # Kafka's default message.max.bytes (a topic's max.message.bytes)


def max_message_bytes(admin: Any, topics: list[str], timeout: float = 15.0) -> dict[str, int]:
    """Each topic's ``max.message.bytes``; a topic that cannot be described (missing, no
    DescribeConfigs permission) gets the broker's ``message.max.bytes``, else Kafka's default."""
    from confluent_kafka.admin import ConfigResource

    out: dict[str, int] = {}
    if not topics:
        return out
    futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, t) for t in topics])
    for res, fut in futures.items():
        try:
            out[res.name] = int(fut.result(timeout)["max.message.bytes"].value)
        except Exception:
            continue
    missing = [t for t in topics if t not in out]
    if missing:
        default = BROKER_MAX_MESSAGE_BYTES
        try:
            brokers = list(admin.list_topics(timeout=timeout).brokers)
            res = ConfigResource(ConfigResource.Type.BROKER, str(brokers[0]))
            default = int(admin.describe_configs([res])[res].result(timeout)["message.max.bytes"].value)
        except Exception:
            pass
        out.update(dict.fromkeys(missing, default))
    return out
