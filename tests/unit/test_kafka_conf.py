"""Kafka client settings from the config (streams.kafka, streams.oauth) without a broker.

The real broker is in tests/integration/test_kafka_security.py; here: what each mechanism turns into for
librdkafka and for aiokafka (through Faust's own `credentials_to_aiokafka_auth`), the OAuth token
provider against a real local HTTP server, the config's consistency rules, and log redaction.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from pydantic import ValidationError

from streams.config import ConfigError, KafkaSettings, load_config
from streams.dev.kafka import TlsFiles, generate_tls_files
from streams.kafka import confluent_conf, faust_credentials
from streams.oauth import ClientCredentialsTokenProvider, OAuthCredentials, OAuthTokenError, jwt_claims
from tests.oauth_idp import TokenEndpoint, unsigned_jwt

SECRET = "pw-5ecr3t-value"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bridge.yaml"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return generate_tls_files(tmp_path_factory.mktemp("pki"))


def kafka(**kw: Any) -> KafkaSettings:
    return KafkaSettings.model_validate({"bootstrap_servers": "b1:9093,b2:9093", **kw})


def scram(mechanism: str = "SCRAM-SHA-512", **kw: Any) -> KafkaSettings:
    return kafka(security_protocol="SASL_SSL", sasl={"mechanism": mechanism, "username": "svc", "password": SECRET}, **kw)


def oauth(endpoint: str = "https://idp.example.com/oauth2/token", **kw: Any) -> KafkaSettings:
    sasl = {"mechanism": "OAUTHBEARER", "oauth_token_endpoint": endpoint, "oauth_client_id": "cid", "oauth_client_secret": SECRET}
    return kafka(security_protocol="SASL_SSL", sasl={**sasl, **kw.pop("sasl", {})}, **kw)


# --------------------------------------------------------------------------- librdkafka


def test_plaintext_is_just_bootstrap_and_client_id():
    assert confluent_conf(kafka()) == {
        "bootstrap.servers": "b1:9093,b2:9093",
        "client.id": "s2s-bridge",
        "security.protocol": "plaintext",
    }


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_password_mechanisms(mechanism, pki):
    conf = confluent_conf(scram(mechanism, tls={"cafile": str(pki.ca_cert)}))
    assert conf["security.protocol"] == "sasl_ssl"
    assert conf["sasl.mechanism"] == mechanism
    assert (conf["sasl.username"], conf["sasl.password"]) == ("svc", SECRET)
    assert conf["ssl.ca.location"] == str(pki.ca_cert)
    assert conf["ssl.endpoint.identification.algorithm"] == "https"
    assert not any(k.startswith("sasl.oauthbearer") for k in conf)


def test_oauthbearer_uses_librdkafkas_oidc_client_credentials():
    conf = confluent_conf(oauth(sasl={"oauth_scope": "kafka.read"}))
    assert conf["sasl.mechanism"] == "OAUTHBEARER"
    assert conf["sasl.oauthbearer.method"] == "oidc"
    assert conf["sasl.oauthbearer.token.endpoint.url"] == "https://idp.example.com/oauth2/token"
    assert (conf["sasl.oauthbearer.client.id"], conf["sasl.oauthbearer.client.secret"]) == ("cid", SECRET)
    assert conf["sasl.oauthbearer.scope"] == "kafka.read"
    assert "sasl.username" not in conf and "sasl.password" not in conf


def test_mutual_tls_and_hostname_check_off(pki):
    tls = {"cafile": str(pki.ca_cert), "certfile": str(pki.client_cert), "keyfile": str(pki.client_key), "check_hostname": False}
    conf = confluent_conf(kafka(security_protocol="SSL", tls={**tls, "key_password": "kp"}))
    assert conf["security.protocol"] == "ssl"
    assert conf["ssl.certificate.location"] == str(pki.client_cert)
    assert conf["ssl.key.location"] == str(pki.client_key)
    assert conf["ssl.key.password"] == "kp"
    assert conf["ssl.endpoint.identification.algorithm"] == "none"


def test_extra_settings_win():
    assert confluent_conf(kafka(), **{"client.id": "dlt", "acks": "all"})["client.id"] == "dlt"


# --------------------------------------------------------------------------- aiokafka (as Faust derives it)


def test_faust_plaintext_has_no_credentials():
    assert faust_credentials(kafka()) is None
    assert credentials_to_aiokafka_auth(faust_credentials(kafka())) == {"security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_faust_sasl_ssl(mechanism, pki):
    creds = faust_credentials(scram(mechanism, tls={"cafile": str(pki.ca_cert)}))
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == mechanism
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("svc", SECRET)
    ctx: ssl.SSLContext = auth["ssl_context"]
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert len(ctx.get_ca_certs()) == 1  # the configured CA (and not only the system store)
    assert SECRET not in repr(creds)


def test_faust_sasl_ssl_without_tls_section_verifies_against_the_system_store():
    ctx: ssl.SSLContext = credentials_to_aiokafka_auth(faust_credentials(scram()))["ssl_context"]
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


def test_faust_sasl_plaintext_has_no_ssl_context():
    k = kafka(security_protocol="SASL_PLAINTEXT", sasl={"mechanism": "PLAIN", "username": "u", "password": SECRET})
    auth = credentials_to_aiokafka_auth(faust_credentials(k))
    assert auth["security_protocol"] == "SASL_PLAINTEXT" and auth["ssl_context"] is None


def test_faust_mutual_tls(pki):
    k = kafka(
        security_protocol="SSL",
        tls={
            "cafile": str(pki.ca_cert),
            "certfile": str(pki.client_cert),
            "keyfile": str(pki.client_key),
            "check_hostname": False,
        },
    )
    auth = credentials_to_aiokafka_auth(faust_credentials(k))
    assert auth["security_protocol"] == "SSL"
    ctx: ssl.SSLContext = auth["ssl_context"]
    assert ctx.verify_mode == ssl.CERT_REQUIRED and not ctx.check_hostname


def test_faust_oauthbearer(pki):
    creds = faust_credentials(oauth(tls={"cafile": str(pki.ca_cert)}))
    assert isinstance(creds, OAuthCredentials)
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SASL_SSL" and auth["sasl_mechanism"] == "OAUTHBEARER"
    provider = auth["sasl_oauth_token_provider"]
    assert isinstance(provider, ClientCredentialsTokenProvider)
    assert provider.token_endpoint == "https://idp.example.com/oauth2/token" and provider.client_id == "cid"
    assert SECRET not in repr(creds) and SECRET not in repr(provider)


# --------------------------------------------------------------------------- config consistency


@pytest.mark.parametrize(
    "section, fragment",
    [
        (
            {"security_protocol": "PLAINTEXT", "sasl": {"mechanism": "PLAIN", "username": "u", "password": "p"}},
            "'sasl' section needs",
        ),
        ({"security_protocol": "SSL", "sasl": {"mechanism": "PLAIN", "username": "u", "password": "p"}}, "'sasl' section needs"),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl": {"mechanism": "PLAIN", "username": "u", "password": "p"}, "tls": {}},
            "'tls'",
        ),
        ({"security_protocol": "PLAINTEXT", "tls": {"cafile": "/ca.pem"}}, "'tls' section needs"),
    ],
)
def test_sections_the_protocol_does_not_use_are_errors(section, fragment):
    with pytest.raises(ValidationError) as info:
        kafka(**section)
    assert fragment in str(info.value)


@pytest.mark.parametrize("url", ["http://idp.example.com/token", "http://10.1.2.3/token", "ftp://idp.example.com/token"])
def test_oauth_token_endpoint_must_be_https_unless_loopback(url, tmp_path):
    raw = yaml.safe_load(EXAMPLE.read_text())
    raw["kafka"] = {
        "bootstrap_servers": "b1:9093",
        "security_protocol": "SASL_SSL",
        "sasl": {
            "mechanism": "OAUTHBEARER",
            "oauth_token_endpoint": url,
            "oauth_client_id": "cid",
            "oauth_client_secret": SECRET,
        },
    }
    for r in raw["routes"].values():
        r["schema"] = str((EXAMPLE.parent / r["schema"]).resolve())
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"ZEOTAP_WRITE_KEY": "k"})
    assert f"{path}: kafka.sasl.oauth_token_endpoint: " in str(info.value)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("url", ["https://idp.example.com/token", "http://127.0.0.1:8080/token", "http://localhost/token"])
def test_oauth_token_endpoint_https_or_loopback_loads(url):
    # accepted, and handed to librdkafka unchanged
    assert confluent_conf(oauth(url))["sasl.oauthbearer.token.endpoint.url"] == url


# --------------------------------------------------------------------------- the OAuth token provider


@pytest.fixture
def idp() -> Iterator[TokenEndpoint]:
    with TokenEndpoint() as server:
        yield server


def test_token_is_fetched_with_client_credentials_and_cached(idp):
    p = ClientCredentialsTokenProvider(idp.url, "cid", SECRET, "kafka")

    async def go() -> list[str]:
        return list(await asyncio.gather(*(p.token() for _ in range(5)))) + [await p.token()]

    assert asyncio.run(go()) == ["tok-1"] * 6
    assert len(idp.requests) == 1
    auth, body = idp.requests[0]
    assert auth == "Basic " + base64.b64encode(f"cid:{SECRET}".encode()).decode()
    assert body == "grant_type=client_credentials&scope=kafka"


def test_token_is_refreshed_near_expiry(idp):
    idp.answer = lambda n, auth, body: (200, {"access_token": f"tok-{n}", "expires_in": 1})
    p = ClientCredentialsTokenProvider(idp.url, "cid", SECRET)

    async def go() -> list[str]:
        first = await p.token()
        await asyncio.sleep(0.9)  # a fifth of the lifetime before expiry: refreshed
        return [first, await p.token()]

    assert asyncio.run(go()) == ["tok-1", "tok-2"]


def test_lifetime_from_the_jwt_exp_when_expires_in_is_missing(idp):
    idp.answer = lambda n, auth, body: (200, {"access_token": unsigned_jwt({"sub": "cid", "exp": int(time.time()) + 600})})
    p = ClientCredentialsTokenProvider(idp.url, "cid", SECRET)
    asyncio.run(p.token())
    assert 400 < p._refresh_at - time.monotonic() <= 600


@pytest.mark.parametrize(
    "status, body, fragment",
    [
        (401, {"error": "invalid_client"}, "answered HTTP 401"),
        (200, {"token_type": "bearer"}, "has no access_token"),
        (200, {"access_token": unsigned_jwt({"sub": "x", "exp": 1000})}, "expired token"),
    ],
)
def test_token_errors_name_the_endpoint_not_the_secret(idp, status, body, fragment):
    idp.answer = lambda n, auth, form: (status, body)
    p = ClientCredentialsTokenProvider(idp.url, "cid", SECRET)
    with pytest.raises(OAuthTokenError) as info:
        asyncio.run(p.token())
    assert fragment in str(info.value) and idp.url in str(info.value)
    assert SECRET not in str(info.value)


def test_unreachable_endpoint_is_an_oauth_error():
    p = ClientCredentialsTokenProvider("http://127.0.0.1:9/token", "cid", SECRET, timeout_s=2)
    with pytest.raises(OAuthTokenError, match="127.0.0.1:9"):
        asyncio.run(p.token())


def test_jwt_claims():
    assert jwt_claims(unsigned_jwt({"sub": "a", "exp": 5})) == {"sub": "a", "exp": 5}
    assert jwt_claims("opaque-token") == {}
    assert jwt_claims("a.!!!.c") == {}


# --------------------------------------------------------------------------- log redaction


def test_aiokafka_sasl_requests_are_redacted_in_debug_logs(caplog):
    import streams.kafka  # noqa: F401 - installs the filter

    SaslAuthenticateRequest_v1 = type("SaslAuthenticateRequest_v1", (), {"__repr__": lambda self: f"bytes=\\x00svc\\x00{SECRET}"})  # noqa: N806
    MetadataRequest_v5 = type("MetadataRequest_v5", (), {"__repr__": lambda self: "MetadataRequest_v5(topics=[])"})  # noqa: N806
    log = logging.getLogger("aiokafka.conn")
    with caplog.at_level(logging.DEBUG, logger="aiokafka.conn"):
        log.debug("Request to %s:%d %d: %s", "h", 9093, 3, SaslAuthenticateRequest_v1())
        log.debug("Request to %s:%d %d: %s", "h", 9093, 4, MetadataRequest_v5())
    assert SECRET not in caplog.text
    assert "SaslAuthenticateRequest_v1(<sasl_auth_bytes redacted>)" in caplog.text
    assert "MetadataRequest_v5(topics=[])" in caplog.text


def test_generated_pki_files(tmp_path: Path):
    from cryptography import x509

    files = generate_tls_files(tmp_path, hosts=("127.0.0.1", "kafka.local"))
    ca = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["kafka.local"]
    # Python's ssl accepts them as they are (what aiokafka uses)
    ctx = ssl.create_default_context(cafile=str(files.ca_cert))
    ctx.load_cert_chain(str(files.client_cert), str(files.client_key))


# --------------------------------------------------------------------------- batch engine consumer


def test_batch_consumer_fetch_settings_reach_librdkafka(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.engines.batch as consumer_mod

    seen: list[dict[str, Any]] = []

    class Capture:
        def __init__(self, conf: dict[str, Any], logger: Any = None) -> None:
            seen.append(conf)

    monkeypatch.setattr(consumer_mod, "Consumer", Capture)
    cfg = load_config(EXAMPLE, env={"ZEOTAP_WRITE_KEY": "k"})
    consumer_mod.BatchEngine(cfg, bridge=None, loop=asyncio.new_event_loop())
    assert seen[-1]["fetch.min.bytes"] == 65_536 and seen[-1]["fetch.wait.max.ms"] == 50
    assert seen[-1]["enable.auto.commit"] is False

    tuned = cfg.model_copy(update={"kafka": cfg.kafka.model_copy(update={"fetch_min_bytes": 1, "fetch_max_wait_ms": 500})})
    consumer_mod.BatchEngine(tuned, bridge=None, loop=asyncio.new_event_loop())
    assert seen[-1]["fetch.min.bytes"] == 1 and seen[-1]["fetch.wait.max.ms"] == 500


@pytest.mark.parametrize("field,value", [("fetch_min_bytes", 0), ("fetch_max_wait_ms", -1), ("fetch_max_wait_ms", 60_000)])
def test_fetch_settings_out_of_range_name_the_field(field: str, value: int) -> None:
    with pytest.raises(ValidationError, match=field):
        kafka(**{field: value})


def test_token_errors_do_not_quote_secrets_carried_by_the_endpoint_url(idp):
    idp.answer = lambda n, auth, form: (401, {"error": "invalid_client"})
    p = ClientCredentialsTokenProvider(idp.url + "?api_key=url-secret-123", "cid", SECRET)
    with pytest.raises(OAuthTokenError) as info:
        asyncio.run(p.token())
    assert "answered HTTP 401" in str(info.value)
    assert "url-secret-123" not in str(info.value)
