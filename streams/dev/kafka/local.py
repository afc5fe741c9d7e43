"""Apache Kafka (KRaft, combined broker+controller) run straight from the Maven Central jars, no Docker."""

from __future__ import annotations

import atexit
import base64
import contextlib
import functools
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any, Self

from streams.dev.kafka.base import Broker, BrokerError, tail, wait_until_ready
from streams.dev.kafka.jars import KAFKA_VERSION, default_cache_dir, ensure_jars, find_java
from streams.dev.kafka.tls import KafkaSecurity, TlsFiles, generate_tls_files

log = logging.getLogger(__name__)

DEFAULT_JVM_ARGS: tuple[str, ...] = (
    # Small heap for a 2-core dev box / CI runner; GC flags as in kafka-run-class.sh.
    "-Xms256m",
    "-Xmx512m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    # C1 only: a dev/test broker lives for minutes, and on 2 cores the C2 compiler threads took
    # up to a core while a benchmark or test ran next to it (latency bench at 3,400 records/s:
    # broker 66% -> 52% of a core, p99 946 -> 318 ms; raw consume rate within 4%)
    "-XX:TieredStopAtLevel=1",
    "-Djava.awt.headless=true",
)


def _file_tail(path: Path | None, lines: int = 40) -> str:
    if path is None:
        return ""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            return tail(fh.read(), lines)
    except OSError:
        return ""


def _free_ports(count: int) -> list[int]:
    """``count`` distinct currently-free TCP ports on 127.0.0.1."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def random_cluster_id() -> str:
    """A Kafka cluster id: base64url (no padding) of 16 random bytes, like ``Uuid.randomUuid()``."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):  # Kafka avoids ids that look like command-line flags
            return cid


def _jaas(module: str, **options: str) -> str:
    return f"{module} required" + "".join(f' {k}="{v}"' for k, v in options.items()) + ";"


_LIVE: set[LocalKafka] = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_all_at_exit() -> None:
    with _LIVE_LOCK:
        brokers = list(_LIVE)
    for broker in brokers:
        with contextlib.suppress(Exception):
            broker.stop(timeout=5.0)


@functools.lru_cache(maxsize=1)
def _setpriv_pdeathsig() -> str | None:
    """``setpriv`` supporting ``--pdeathsig`` (util-linux), to tie the JVM's life to ours."""
    setpriv = shutil.which("setpriv")
    if not setpriv or not sys.platform.startswith("linux"):
        return None
    try:
        out = subprocess.run([setpriv, "--help"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return setpriv if "--pdeathsig" in out else None


class LocalKafka(Broker):
    """Apache Kafka (KRaft, combined broker+controller, node 1) run from the Maven Central jars.

    >>> with LocalKafka() as kafka:
    ...     kafka.bootstrap_servers          # '127.0.0.1:<port>'

    ``data_dir`` defaults to a fresh temp dir that ``stop()`` deletes; an explicit ``data_dir`` is kept
    (and reused: an already formatted dir is not re-formatted). ``restart()`` keeps data dir and ports,
    ``kill()`` SIGKILLs the JVM (data dir kept) for fault tests. The broker log (log4j output plus JVM
    stdout/stderr) goes to ``log_file``, default ``<data_dir>/server.log``.

    ``security=KafkaSecurity()`` (or ``True``) adds a ``SASL_SSL`` and an mTLS ``SSL`` client listener
    (see :class:`KafkaSecurity`): :attr:`sasl_ssl_bootstrap`, :attr:`ssl_bootstrap`, :attr:`tls` (PEM files)
    and :attr:`users`. Everything on the PLAINTEXT listener stays as without it.
    """

    kind = "local"
    version = KAFKA_VERSION

    def __init__(
        self,
        *,
        cache_dir: str | Path | None = None,
        data_dir: str | Path | None = None,
        port: int | None = None,
        controller_port: int | None = None,
        log_file: str | Path | None = None,
        log_level: str = "INFO",
        jvm_args: tuple[str, ...] | list[str] = DEFAULT_JVM_ARGS,
        properties: Mapping[str, object] | None = None,
        startup_timeout: float = 60.0,
        security: KafkaSecurity | bool | None = None,
    ) -> None:
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir(self.version)
        self._owns_data_dir = data_dir is None
        self.data_dir: Path | None = Path(data_dir).expanduser().resolve() if data_dir else None
        self._explicit_log_file = Path(log_file).expanduser().resolve() if log_file else None
        if port is None or controller_port is None:
            free = _free_ports(2)
            port = port or free[0]
            controller_port = controller_port or (free[1] if free[1] != port else _free_ports(1)[0])
        self.port: int = port
        self.controller_port: int = controller_port
        self.security: KafkaSecurity | None = KafkaSecurity() if security is True else (security or None)
        self.sasl_ssl_port: int | None = None
        self.ssl_port: int | None = None
        if self.security is not None:
            for user, password in self.security.users.items():
                if not re.fullmatch(r"[A-Za-z0-9_.@-]+", user) or not re.fullmatch(r"[A-Za-z0-9_.~+/-]+", password):
                    raise BrokerError(f"user {user!r}: names and passwords of the test broker must be plain tokens")
            taken = {port, controller_port}
            extra = [p for p in _free_ports(4) if p not in taken][:2]
            self.sasl_ssl_port, self.ssl_port = extra
        self.tls: TlsFiles | None = None
        self.log_level = log_level
        self.jvm_args = tuple(jvm_args)
        self.properties = dict(properties or {})
        self.startup_timeout = startup_timeout
        self.cluster_id: str | None = None
        self.timings: dict[str, float] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_fh: IO[bytes] | None = None

    # -- public properties

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_ssl_bootstrap(self) -> str:
        """The SASL_SSL listener (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER); needs ``security``."""
        if self.sasl_ssl_port is None:
            raise BrokerError("this LocalKafka was created without security listeners")
        return f"127.0.0.1:{self.sasl_ssl_port}"

    @property
    def ssl_bootstrap(self) -> str:
        """The SSL listener that requires a client certificate; needs ``security``."""
        if self.ssl_port is None:
            raise BrokerError("this LocalKafka was created without security listeners")
        return f"127.0.0.1:{self.ssl_port}"

    @property
    def users(self) -> Mapping[str, str]:
        """SASL PLAIN / SCRAM users of the SASL_SSL listener (name -> password)."""
        return self.security.users if self.security is not None else {}

    @property
    def log_file(self) -> Path | None:
        if self._explicit_log_file is not None:
            return self._explicit_log_file
        return self.data_dir / "server.log" if self.data_dir else None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def rss_bytes(self) -> int | None:
        """Resident set size of the broker JVM (Linux ``/proc``), or None."""
        if not self.running or self.pid is None:
            return None
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return None

    def log_tail(self, lines: int = 40) -> str:
        return _file_tail(self.log_file, lines)

    # -- lifecycle

    def start(self) -> Self:
        """Fetch jars if needed, format storage if needed, launch the JVM and wait until it serves."""
        if self.running:
            return self
        t0 = time.monotonic()
        libs = ensure_jars(self.cache_dir)
        t_jars = time.monotonic()
        java = find_java()
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="s2s-kafka-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.security is not None and self.tls is None:
            tls_dir = self.data_dir / "tls"
            if (tls_dir / "client.key").exists():  # a persistent data_dir: keep its PKI
                names = ("ca.pem", "server.pem", "server.key", "client.pem", "client.key")
                self.tls = TlsFiles(*(tls_dir / n for n in names))
            else:
                # the broker advertises 127.0.0.1 only; any other name fails the clients' hostname check
                self.tls = generate_tls_files(tls_dir, hosts=("127.0.0.1",))
        server_props, log4j_props = self._write_config()
        classpath = str(libs / "*")
        log_path = self.log_file
        assert log_path is not None
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log_fh = log_path.open("ab")
        with _LIVE_LOCK:
            _LIVE.add(self)
        try:
            self._format_storage(java, classpath, server_props, log4j_props)
            t_format = time.monotonic()
            cmd = [
                java,
                *self.jvm_args,
                f"-Dlog4j2.configurationFile={log4j_props}",
                "-cp",
                classpath,
                "kafka.Kafka",
                str(server_props),
            ]
            setpriv = _setpriv_pdeathsig()
            if setpriv and threading.current_thread() is threading.main_thread():
                # If this Python process dies without running atexit (SIGKILL, SIGTERM), the JVM gets SIGTERM.
                cmd = [setpriv, "--pdeathsig", "TERM", *cmd]
            self._log_fh.write(f"\n===== s2s-bridge: {' '.join(cmd)}\n".encode())
            self._log_fh.flush()
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=self._log_fh,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,  # own process group: terminal Ctrl-C is ours to forward
            )
            try:
                wait_until_ready(
                    self.bootstrap_servers,
                    max(1.0, self.startup_timeout - (t_format - t_jars)),
                    alive=lambda: self._proc is not None and self._proc.poll() is None,
                )
            except BrokerError as exc:
                code = self._proc.poll()
                reason = f"exited with code {code}" if code is not None else str(exc)
                self._terminate(signal.SIGKILL, 5.0)
                raise BrokerError(
                    f"Kafka {self.version} on {self.bootstrap_servers} failed to start: {reason}\n"
                    f"--- {log_path} (tail) ---\n{self.log_tail()}"
                ) from exc
        except BaseException:
            self._terminate(signal.SIGKILL, 5.0)
            self._close_log()
            with _LIVE_LOCK:
                _LIVE.discard(self)
            if self._owns_data_dir and self.data_dir is not None:  # the error message carries the log tail
                shutil.rmtree(self.data_dir, ignore_errors=True)
                self.data_dir = None
            raise
        t_ready = time.monotonic()
        self.timings = {"jars": t_jars - t0, "format": t_format - t_jars, "boot": t_ready - t_format}
        self.started_in = t_ready - t0
        log.info(
            "Kafka %s ready at %s in %.1fs (jars %.1fs, format %.1fs, boot %.1fs; pid %s, log %s)",
            self.version,
            self.bootstrap_servers,
            self.started_in,
            self.timings["jars"],
            self.timings["format"],
            self.timings["boot"],
            self.pid,
            log_path,
        )
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (SIGKILL after ``timeout`` s); delete the data dir if it is our temp dir."""
        self._terminate(signal.SIGTERM, timeout)
        self._close_log()
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self._owns_data_dir and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = None

    def kill(self) -> None:
        """SIGKILL the broker (crash simulation); data dir and ports are kept for ``restart()``."""
        self._terminate(signal.SIGKILL, 10.0)

    def restart(self, *, hard: bool = False) -> Self:
        """Stop (SIGTERM, or SIGKILL with ``hard=True``) and start again on the same ports and data."""
        self._terminate(signal.SIGKILL if hard else signal.SIGTERM, 15.0)
        self._close_log()
        return self.start()

    # -- internals

    def _terminate(self, sig: signal.Signals, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("Kafka pid %d ignored %s for %.0fs; sending SIGKILL", proc.pid, sig.name, timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10.0)
        log.debug("Kafka pid %d exited with %s", proc.pid, proc.returncode)

    def _close_log(self) -> None:
        fh, self._log_fh = self._log_fh, None
        if fh is not None:
            fh.close()

    def _write_config(self) -> tuple[Path, Path]:
        assert self.data_dir is not None
        props: dict[str, object] = {
            "process.roles": "broker,controller",
            "node.id": 1,
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "log.dirs": str(self.data_dir / "kraft"),
            "num.partitions": 1,
            "default.replication.factor": 1,
            "min.insync.replicas": 1,
            "offsets.topic.replication.factor": 1,
            "transaction.state.log.replication.factor": 1,
            "transaction.state.log.min.isr": 1,
            "share.coordinator.state.topic.replication.factor": 1,
            "share.coordinator.state.topic.min.isr": 1,
            "group.initial.rebalance.delay.ms": 0,
            "auto.create.topics.enable": "true",
            "num.network.threads": 2,
            "num.io.threads": 4,
            # After a SIGKILL the restarted broker is refused (DUPLICATE_BROKER_REGISTRATION) until its old
            # session expires: 9 s by default. 4 s halves a kill()+restart() (12 s -> 6 s).
            "broker.session.timeout.ms": 4000,
            "broker.heartbeat.interval.ms": 500,
        }
        if self.security is not None:
            props.update(self._security_properties())
        props.update(self.properties)
        server_props = self.data_dir / "server.properties"
        server_props.write_text(
            "# written by streams.dev.kafka.LocalKafka\n"
            + "".join(f"{key}={_prop_value(value)}\n" for key, value in props.items())
        )
        log4j_props = self.data_dir / "log4j2.properties"
        # Console -> the JVM's stdout, which we redirect into log_file together with stderr.
        log4j_props.write_text(
            "status = warn\n"
            "appender.out.type = Console\n"
            "appender.out.name = STDOUT\n"
            "appender.out.target = SYSTEM_OUT\n"
            "appender.out.layout.type = PatternLayout\n"
            "appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
            f"rootLogger.level = {self.log_level}\n"
            "rootLogger.appenderRef.out.ref = STDOUT\n"
            # the full config dumps ("KafkaConfig values: ...") are ~2000 lines per start
            "logger.config.name = org.apache.kafka.common.config.AbstractConfig\n"
            "logger.config.level = WARN\n"
        )
        return server_props, log4j_props

    def _security_properties(self) -> dict[str, object]:
        """Listeners SASL_SSL (all mechanisms) and SSL (client certificate required) next to PLAINTEXT."""
        assert self.security is not None and self.tls is not None
        sec, tls = self.security, self.tls
        sasl_ssl, ssl_ = f"SASL_SSL://127.0.0.1:{self.sasl_ssl_port}", f"SSL://127.0.0.1:{self.ssl_port}"
        props: dict[str, object] = {
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port},{sasl_ssl},{ssl_}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port},{sasl_ssl},{ssl_}",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL,SSL:SSL",
            # one PEM key store and trust store for both TLS listeners (inline PEM: the key needs no password)
            "ssl.keystore.type": "PEM",
            "ssl.keystore.certificate.chain": tls.server_cert.read_text().strip(),
            "ssl.keystore.key": tls.server_key.read_text().strip(),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(tls.ca_cert),
            "listener.name.ssl.ssl.client.auth": "required",
            "listener.name.sasl_ssl.ssl.client.auth": "none",
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": ",".join(sec.mechanisms),
        }
        for mech in sec.mechanisms:
            prefix = f"listener.name.sasl_ssl.{mech.lower()}.sasl.jaas.config"
            if mech == "PLAIN":
                users = {f"user_{u}": p for u, p in sec.users.items()}
                props[prefix] = _jaas("org.apache.kafka.common.security.plain.PlainLoginModule", **users)
            elif mech.startswith("SCRAM-"):
                props[prefix] = _jaas("org.apache.kafka.common.security.scram.ScramLoginModule")
            elif mech == "OAUTHBEARER":
                # no server callback handler configured -> Kafka's unsecured JWS validator (alg none, sub, exp)
                module = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
                props[prefix] = _jaas(module, unsecuredLoginStringClaim_sub="broker")
            else:
                raise BrokerError(f"unsupported SASL mechanism {mech!r} for the test broker")
        return props

    def _format_storage(self, java: str, classpath: str, server_props: Path, log4j_props: Path) -> None:
        assert self.data_dir is not None and self._log_fh is not None
        if (self.data_dir / "kraft" / "meta.properties").exists():
            return  # already formatted (restart, or a persistent data_dir)
        self.cluster_id = random_cluster_id()
        cmd = [
            java,
            "-Xmx256m",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j_props}",
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "-t",
            self.cluster_id,
            "-c",
            str(server_props),
            "--standalone",
        ]
        shown = list(cmd)  # the command as logged: SCRAM passwords masked
        if self.security is not None:
            for mech in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                if mech in self.security.mechanisms:
                    for user, password in self.security.users.items():
                        cmd += ["--add-scram", f"{mech}=[name={user},password={password}]"]
                        shown += ["--add-scram", f"{mech}=[name={user},password=***]"]
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=120, cwd=self.data_dir)
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"kafka-storage format timed out: {' '.join(shown)}") from exc
        self._log_fh.write(f"===== s2s-bridge: {' '.join(shown)}\n".encode() + proc.stdout + proc.stderr)
        self._log_fh.flush()
        if proc.returncode != 0:
            raise BrokerError(f"kafka-storage format failed (exit code {proc.returncode}):\n{tail(proc.stdout + proc.stderr)}")


def _prop_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    # java.util.Properties escapes: multi-line values (inline PEM) become one line
    return str(value).replace("\\", "\\\\").replace("\n", "\\n")


def main_dev_kafka(
    port: int | None = None,
    data_dir: str | Path | None = None,
    log_file: str | Path | None = None,
) -> int:
    """Run a :class:`LocalKafka` in the foreground until Ctrl-C / SIGTERM; returns an exit code.

    The first line on stdout is exactly ``bootstrap: 127.0.0.1:<port>``; progress goes to stderr.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        # SIGINT too: a background job of a non-interactive shell inherits SIGINT=ignored.
        previous = {sig: signal.signal(sig, on_term) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    broker = LocalKafka(port=port, data_dir=data_dir, log_file=log_file)
    try:
        broker.start()
        print(f"bootstrap: {broker.bootstrap_servers}", flush=True)
        print(
            f"Kafka {broker.version} started in {broker.started_in:.1f}s; data {broker.data_dir}; "
            f"log {broker.log_file}. Ctrl-C to stop.",
            file=sys.stderr,
            flush=True,
        )
        while broker.running:
            time.sleep(0.5)
        print(f"Kafka exited unexpectedly; log tail:\n{broker.log_tail()}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("stopping Kafka ...", file=sys.stderr, flush=True)
        return 0
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        broker.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
