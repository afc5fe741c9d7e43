"""Kafka security on a real broker: SASL_SSL (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER) and mutual TLS.

A module-scoped LocalKafka of its own with the security listeners (custom CA, server and client
certificates generated at start, SCRAM users created at format time, Kafka's unsecured JWS validator
for OAUTHBEARER). For every mechanism the confluent-kafka admin/producer built by `confluent_conf`
creates, lists and produces, and an aiokafka consumer built exactly as Faust builds it from
`faust_credentials` reads the records back. The worker runs end to end over SASL_SSL, and wrong
credentials or a wrong CA fail fast with a clear message that does not quote the secret.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiokafka
import aiokafka.errors
import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from streams.config import KafkaSettings, WorkerSettings
from streams.dev.emulator import Emulator, EmulatorConfig
from streams.dev.kafka import KafkaSecurity, LocalKafka, generate_tls_files
from streams.dev.samples import SampleFactory
from streams.kafka import KafkaUnavailable, confluent_conf, connect_admin, faust_credentials
from streams.oauth import OAuthTokenError
from tests.integration.harness import API_KEY, WRITE_KEY, dead_letters, encoded, make_config, run_worker_until
from tests.kafka_broker import running_broker
from tests.oauth_idp import TokenEndpoint, unsigned_jwt

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(180)]

USER = "bridge-svc"
PASSWORD = "Scr4m-" + uuid.uuid4().hex[:16]  # distinctive: grepped for in every log
CLIENT_ID = "bridge-oauth-client"
CLIENT_SECRET = "oauth-" + uuid.uuid4().hex[:16]
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")


# --------------------------------------------------------------------------- fixtures


def token_answer(n: int, auth: str, body: str) -> tuple[int, dict[str, Any]]:
    """Our client id and secret (HTTP Basic) and the client-credentials grant get an unsigned JWT."""
    form = dict(p.split("=", 1) for p in body.split("&") if "=" in p)
    expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    if form.get("grant_type") != "client_credentials" or auth != expected:
        return 401, {"error": "invalid_client"}
    now = int(time.time())
    jwt = unsigned_jwt({"sub": CLIENT_ID, "iat": now, "exp": now + 300})
    return 200, {"access_token": jwt, "token_type": "bearer", "expires_in": 300}


@pytest.fixture(scope="module")
def secure_kafka() -> Iterator[LocalKafka]:
    """Our own broker with the security listeners (the session broker stays plain)."""
    yield from running_broker(  # type: ignore[misc]  # a LocalKafka, typed as Broker
        lambda: LocalKafka(security=KafkaSecurity(users={USER: PASSWORD})), "the security tests (listeners with SASL/TLS)"
    )


@pytest.fixture(scope="module")
def token_endpoint() -> Iterator[TokenEndpoint]:
    with TokenEndpoint(token_answer) as endpoint:
        yield endpoint


def settings(broker: LocalKafka, how: str, token_url: str = "", **overrides: Any) -> dict[str, Any]:
    """The `kafka:` config section for a mechanism (or "mTLS"), as a user would write it."""
    assert broker.tls is not None
    tls: dict[str, Any] = {"cafile": str(broker.tls.ca_cert)}
    if how == "mTLS":
        tls.update(certfile=str(broker.tls.client_cert), keyfile=str(broker.tls.client_key))
        section: dict[str, Any] = {"bootstrap_servers": broker.ssl_bootstrap, "security_protocol": "SSL", "tls": tls}
    elif how == "OAUTHBEARER":
        sasl = {
            "mechanism": how,
            "oauth_token_endpoint": token_url,
            "oauth_client_id": CLIENT_ID,
            "oauth_client_secret": CLIENT_SECRET,
            "oauth_scope": "kafka",
        }
        section = {"bootstrap_servers": broker.sasl_ssl_bootstrap, "security_protocol": "SASL_SSL", "sasl": sasl, "tls": tls}
    else:
        sasl = {"mechanism": how, "username": USER, "password": PASSWORD}
        section = {"bootstrap_servers": broker.sasl_ssl_bootstrap, "security_protocol": "SASL_SSL", "sasl": sasl, "tls": tls}
    for key, value in overrides.items():
        if isinstance(value, dict):
            section[key] = {**section.get(key, {}), **value}
        else:
            section[key] = value
    return section


class Errors:
    """librdkafka error callback: collects client-level errors (auth, TLS)."""

    def __init__(self) -> None:
        self.errors: list[KafkaError] = []

    def __call__(self, err: KafkaError) -> None:
        self.errors.append(err)

    def text(self) -> str:
        return "\n".join(f"{e.name()}: {e.str()}" for e in self.errors)


async def consume_with_faust_credentials(k: KafkaSettings, topic: str, want: int, timeout: float = 30.0) -> list[bytes]:
    """aiokafka consumer with exactly the auth settings Faust's driver derives from `broker_credentials`."""
    auth = credentials_to_aiokafka_auth(faust_credentials(k))
    consumer = aiokafka.AIOKafkaConsumer(
        topic,
        bootstrap_servers=k.bootstrap_servers,
        group_id=f"sec-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **auth,
    )
    await consumer.start()
    got: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout
        while len(got) < want and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            got += [m.value for msgs in batch.values() for m in msgs]
    finally:
        await consumer.stop()
    return got


def _confluent(k: KafkaSettings, errors: Errors | None = None, **extra: Any) -> dict[str, Any]:
    conf = confluent_conf(k, **extra)
    if errors is not None:
        conf["error_cb"] = errors
    return conf


# --------------------------------------------------------------------------- every mechanism, both client stacks


@pytest.mark.parametrize("how", [*MECHANISMS, "mTLS"])
async def test_confluent_and_faust_clients_authenticate(secure_kafka, token_endpoint, how, caplog):
    caplog.set_level(logging.DEBUG)
    k = KafkaSettings.model_validate(settings(secure_kafka, how, token_endpoint.url))
    topic = f"sec-{how.lower()}-{uuid.uuid4().hex[:6]}"
    errors = Errors()

    admin = AdminClient(_confluent(k, errors))
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    deadline = time.monotonic() + 15  # metadata propagation after create
    while topic not in admin.list_topics(timeout=15).topics and time.monotonic() < deadline:
        time.sleep(0.1)
    assert topic in admin.list_topics(timeout=15).topics

    producer = Producer(_confluent(k, errors, **{"enable.idempotence": True}))
    values = [f"{how}-{i}".encode() for i in range(20)]
    for v in values:
        producer.produce(topic, value=v)
    assert producer.flush(30) == 0
    assert errors.errors == [], errors.text()

    got = await consume_with_faust_credentials(k, topic, len(values))
    assert sorted(got) == sorted(values)
    if how == "OAUTHBEARER":
        # both stacks fetched their token from the endpoint, with the configured scope
        assert len(token_endpoint.requests) >= 2
        forms = [dict(p.split("=", 1) for p in body.split("&") if "=" in p) for _, body in token_endpoint.requests]
        assert all(f == {"grant_type": "client_credentials", "scope": "kafka"} for f in forms)
    secret = CLIENT_SECRET if how == "OAUTHBEARER" else PASSWORD
    assert secret not in caplog.text


class Logs(logging.Handler):
    """librdkafka's log lines (the `logger` config): the reason a connection was dropped is only there."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.logger = logging.getLogger(f"rdkafka-{uuid.uuid4().hex[:6]}")
        self.logger.addHandler(self)
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def refused(conf: dict[str, Any]) -> tuple[KafkaError, str]:
    """`list_topics` must fail: librdkafka's error and what its error callback and log said why."""
    errors, logs = Errors(), Logs()
    admin = AdminClient({**conf, "error_cb": errors, "logger": logs.logger})
    with pytest.raises(KafkaException) as info:
        admin.list_topics(timeout=5)
    admin.poll(0.5)  # serves the error and log callbacks
    return info.value.args[0], errors.text() + "\n" + "\n".join(logs.lines)


def test_the_broker_really_requires_authentication(secure_kafka):
    """The listeners are not open, and it is the missing credentials that close them (not a timeout or
    an unreachable port): the same client with the credentials added gets the metadata."""
    assert secure_kafka.tls is not None
    tls = {"security.protocol": "ssl", "ssl.ca.location": str(secure_kafka.tls.ca_cert)}
    sasl = {"security.protocol": "sasl_ssl", "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": USER}
    client_cert = {
        "ssl.certificate.location": str(secure_kafka.tls.client_cert),
        "ssl.key.location": str(secure_kafka.tls.client_key),
    }

    # SASL_SSL listener, TLS without SASL: the broker closes a connection that skips the SASL handshake
    no_sasl = {**tls, "bootstrap.servers": secure_kafka.sasl_ssl_bootstrap}
    err, why = refused(no_sasl)
    assert err.code() == KafkaError._TRANSPORT, err
    assert "SSL connection closed by peer" in why and "Connection refused" not in why, why
    # ... SASL with a wrong password: the broker's authentication says no
    err, why = refused({**no_sasl, **sasl, "sasl.password": "Wr0ng-" + uuid.uuid4().hex[:12]})
    assert err.code() == KafkaError._TRANSPORT, err
    assert "SASL authentication error: Authentication failed" in why, why
    # ... the right password: in
    assert AdminClient({**no_sasl, **sasl, "sasl.password": PASSWORD}).list_topics(timeout=15).brokers

    # SSL listener without a client certificate: the broker refuses the TLS handshake
    no_cert = {**tls, "bootstrap.servers": secure_kafka.ssl_bootstrap}
    err, why = refused(no_cert)
    assert err.code() == KafkaError._TRANSPORT, err
    assert "alert bad certificate" in why, why
    # ... with the client certificate: in
    assert AdminClient({**no_cert, **client_cert}).list_topics(timeout=15).brokers


# --------------------------------------------------------------------------- negative: wrong password, wrong CA


def cluster_fails(k: KafkaSettings, timeout: float = 3.0) -> str:
    """`connect_admin` (a start-up check) must fail; its message, which carries librdkafka's reason."""
    with pytest.raises(KafkaUnavailable) as info:
        connect_admin(k, timeout=timeout)
    msg = str(info.value)
    assert k.bootstrap_servers in msg and "Broker transport failure" not in msg, msg
    return msg


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
async def test_wrong_password_is_a_clear_error_without_the_password(secure_kafka, mechanism, caplog):
    wrong = "Wr0ng-" + uuid.uuid4().hex[:12]
    k = KafkaSettings.model_validate(settings(secure_kafka, mechanism, sasl={"password": wrong}))
    text = cluster_fails(k)
    assert "SASL authentication error: Authentication failed" in text, text
    # aiokafka: start() raises "Unable to bootstrap" and logs the cause at ERROR
    with pytest.raises(aiokafka.errors.KafkaConnectionError) as ainfo:
        await asyncio.wait_for(consume_with_faust_credentials(k, "whatever", 1, timeout=5), 30)
    assert "SaslAuthenticationFailed" in caplog.text, caplog.text
    for t in (text, repr(ainfo.value), str(ainfo.value), caplog.text):
        assert wrong not in t and PASSWORD not in t


async def test_wrong_oauth_client_secret_is_a_clear_error(secure_kafka, token_endpoint, caplog):
    wrong = "bad-secret-" + uuid.uuid4().hex[:8]
    k = KafkaSettings.model_validate(
        settings(secure_kafka, "OAUTHBEARER", token_endpoint.url, sasl={"oauth_client_secret": wrong})
    )
    text = cluster_fails(k)
    assert "Failed to acquire SASL OAUTHBEARER token" in text and "invalid_client" in text, text
    # aiokafka: our token provider's error, naming the endpoint and the status
    with pytest.raises(OAuthTokenError) as ainfo:
        await asyncio.wait_for(consume_with_faust_credentials(k, "whatever", 1, timeout=5), 30)
    assert "answered HTTP 401" in str(ainfo.value) and token_endpoint.url in str(ainfo.value)
    for t in (text, str(ainfo.value), repr(ainfo.value), caplog.text):
        assert wrong not in t and CLIENT_SECRET not in t


@pytest.mark.parametrize("how", ["SCRAM-SHA-256", "mTLS"])
async def test_wrong_ca_is_a_tls_error(secure_kafka, tmp_path, how, caplog):
    other = generate_tls_files(tmp_path / "other-pki", name="someone-else")
    k = KafkaSettings.model_validate(settings(secure_kafka, how, tls={"cafile": str(other.ca_cert)}))
    text = cluster_fails(k)
    assert "certificate verify failed" in text, text
    with pytest.raises(aiokafka.errors.KafkaConnectionError):
        await asyncio.wait_for(consume_with_faust_credentials(k, "whatever", 1, timeout=5), 30)
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text, caplog.text


async def test_hostname_is_checked_unless_disabled(secure_kafka, caplog):
    """The broker certificate names only 127.0.0.1; bootstrapping via "localhost" fails the hostname
    check (on by default) in both client stacks and works with check_hostname: false."""
    assert secure_kafka.sasl_ssl_port is not None
    base = settings(secure_kafka, "SCRAM-SHA-256", bootstrap_servers=f"localhost:{secure_kafka.sasl_ssl_port}")
    k = KafkaSettings.model_validate(base)
    assert "certificate verify failed" in cluster_fails(k)
    with pytest.raises(aiokafka.errors.KafkaConnectionError):
        await asyncio.wait_for(consume_with_faust_credentials(k, "whatever", 1, timeout=5), 30)
    assert "Hostname mismatch" in caplog.text or "CERTIFICATE_VERIFY_FAILED" in caplog.text, caplog.text
    relaxed = KafkaSettings.model_validate({**base, "tls": {**base["tls"], "check_hostname": False}})
    assert connect_admin(relaxed, timeout=10)[1].brokers


# --------------------------------------------------------------------------- the worker end to end


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(zeotap_write_keys=(WRITE_KEY,), activation_api_keys=(API_KEY,), seed=9)) as emu:
        yield emu


ENGINES = ("batch", "faust") if "engine" in WorkerSettings.model_fields else (None,)


@pytest.mark.parametrize(
    "how, engine",
    [("SCRAM-SHA-512", ENGINES[0]), ("OAUTHBEARER", ENGINES[-1]), ("mTLS", ENGINES[0])],
)
async def test_worker_end_to_end_over_tls(secure_kafka, token_endpoint, emulator, tmp_path, caplog, how, engine):
    """The real worker on the secured listener: topics created, records delivered, bad ones dead-lettered."""
    caplog.set_level(logging.INFO)
    worker = {"engine": engine} if engine else {}
    kafka = settings(secure_kafka, how, token_endpoint.url)
    kafka.pop("bootstrap_servers")
    cfg, _ = make_config(
        tmp_path,
        secure_kafka.sasl_ssl_bootstrap if how != "mTLS" else secure_kafka.ssl_bootstrap,
        emulator.base_url,
        kafka=kafka,
        worker=worker,
        partitions=2,
    )
    route = cfg.routes["purchase_completed"]
    k = cfg.kafka
    f = SampleFactory(31)
    good = encoded(cfg.schema_path(route), [f.record("purchase_completed") for _ in range(60)])
    bad = [(b"garbage", b"\x02 definitely not avro")]
    # the topics are the worker's to create (create_topics: true), over the secured listener; produce first
    admin = AdminClient(confluent_conf(k))
    for fut in admin.create_topics([NewTopic(route.topic, 2, 1)]).values():
        fut.result(30)
    producer = Producer(confluent_conf(k, **{"enable.idempotence": True}))
    for key, value in good[:30] + bad + good[30:]:
        producer.produce(route.topic, key=key, value=value)
    assert producer.flush(30) == 0
    total = len(good) + len(bad)

    w, code = await run_worker_until(cfg, lambda w: w.bridge.settled >= total, timeout=90)
    assert code == 0
    assert w.bridge.settled == total
    assert int(emulator.admin.stats()["destinations"]["zeotap"]["unique_ids"]) == len(good)
    # the dead-letter topic, written over SASL_SSL by the worker, read back over the plain listener
    dls = dead_letters(secure_kafka.bootstrap_servers, route.dlt)
    assert [m.key() for m, _ in dls] == [b"garbage"]
    secret = CLIENT_SECRET if how == "OAUTHBEARER" else PASSWORD
    assert secret not in caplog.text


async def test_worker_with_a_wrong_password_stops_with_a_message(secure_kafka, emulator, tmp_path, caplog, capfd):
    """No hanging forever, also with create_topics off (as deployed): the worker stops at start-up
    with exit code 3 and a message that says why, and the password is nowhere."""
    wrong = "Wr0ng-" + uuid.uuid4().hex[:12]
    kafka = settings(secure_kafka, "SCRAM-SHA-512", sasl={"password": wrong})
    kafka.pop("bootstrap_servers")
    kafka["create_topics"] = False
    cfg, _ = make_config(tmp_path, secure_kafka.sasl_ssl_bootstrap, emulator.base_url, kafka=kafka)
    caplog.set_level(logging.INFO)
    t0 = time.monotonic()
    raised: BaseException | None = None
    code: int | None = None
    try:
        _, code = await asyncio.wait_for(run_worker_until(cfg, lambda w: False, timeout=60), 90)
    except Exception as exc:  # a start-up error is an acceptable way to stop
        raised = exc
    elapsed = time.monotonic() - t0
    out, err = capfd.readouterr()
    said = f"{caplog.text}\n{raised!r}\n{raised}\n{out}\n{err}"
    assert raised is None and code == 3, f"worker exited {code} ({raised!r}) with a wrong password"
    assert elapsed < 60, f"took {elapsed:.0f}s"
    assert "cannot use Kafka at" in caplog.text and "Authentication failed" in caplog.text, said[-3000:]
    assert wrong not in said and PASSWORD not in said


def test_tls_files_are_pem_and_chain_to_the_ca(secure_kafka):
    from cryptography import x509

    assert secure_kafka.tls is not None
    ca = x509.load_pem_x509_certificate(secure_kafka.tls.ca_cert.read_bytes())
    for cert_path in (secure_kafka.tls.server_cert, secure_kafka.tls.client_cert):
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        cert.verify_directly_issued_by(ca)
    assert Path(secure_kafka.tls.client_key).stat().st_mode & 0o077 == 0
