"""Kafka client settings from the config, for confluent-kafka (librdkafka) and Faust (aiokafka)."""

from __future__ import annotations

from typing import Any

from streams.config import KafkaSettings


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
