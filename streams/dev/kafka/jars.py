"""The Apache Kafka broker jars: fetched once from Maven Central with ``mvn`` (``pom.xml`` next to this file)."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from streams.dev.kafka.base import BrokerError, as_text, tail

log = logging.getLogger(__name__)

POM_PATH = Path(__file__).with_name("pom.xml")


def _pom_kafka_version(pom: Path = POM_PATH) -> str:
    match = re.search(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>", pom.read_text())
    if not match:
        raise RuntimeError(f"no <kafka.version> in {pom}")
    return match.group(1)


KAFKA_VERSION = _pom_kafka_version()
"""The Apache Kafka version :class:`LocalKafka` runs (from ``dev/kafka/pom.xml``)."""

_READY_MARKER = "libs.complete"


def default_cache_dir(version: str = KAFKA_VERSION) -> Path:
    """``$S2S_BRIDGE_CACHE/kafka-<version>``, default root ``~/.cache/s2s-bridge``."""
    root = os.environ.get("S2S_BRIDGE_CACHE")
    if root:
        base = Path(root).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        base = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "s2s-bridge"
    return base / f"kafka-{version}"


def find_java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    java = shutil.which("java")
    if not java:
        raise BrokerError(
            "`java` not found (neither $JAVA_HOME/bin/java nor on PATH): the local Kafka broker needs "
            "Java 17+ (e.g. `apt-get install openjdk-17-jre-headless`), or set KAFKA_BOOTSTRAP_SERVERS "
            "to use an existing cluster."
        )
    return java


def ensure_jars(
    cache_dir: str | Path | None = None,
    *,
    pom: str | Path = POM_PATH,
    timeout: float = 900.0,
) -> Path:
    """Fetch the Kafka broker jars into ``<cache_dir>/libs`` (once) and return that directory.

    Runs ``mvn -q -f <pom> dependency:copy-dependencies -DoutputDirectory=...``. A marker file holding the
    pom's hash records a complete fetch (a changed pom re-fetches); an ``flock`` keeps two processes from
    fetching at the same time.
    """
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    pom = Path(pom)
    libs = cache / "libs"
    marker = cache / _READY_MARKER
    try:
        pom_hash = hashlib.sha256(pom.read_bytes()).hexdigest()
    except OSError as exc:
        raise BrokerError(f"cannot read Kafka pom {pom}: {exc}") from exc

    def complete() -> bool:
        try:
            return marker.read_text().strip() == pom_hash and any(libs.glob("kafka_2.13-*.jar"))
        except OSError:
            return False

    if complete():
        return libs
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if complete():  # another process fetched while we waited for the lock
                return libs
            find_java()  # mvn itself needs java; give the clearer message
            mvn = shutil.which("mvn")
            if not mvn:
                raise BrokerError(
                    "`mvn` (Apache Maven) not found on PATH: it is needed once to fetch the Kafka "
                    f"{KAFKA_VERSION} jars from Maven Central into {libs} (e.g. `apt-get install maven`), "
                    "or set KAFKA_BOOTSTRAP_SERVERS to use an existing cluster."
                )
            partial = cache / "libs.partial"
            shutil.rmtree(partial, ignore_errors=True)
            cmd = [
                mvn,
                "-B",
                "-q",
                "-Dstyle.color=never",
                "-f",
                str(pom),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={partial}",
            ]
            log.info("fetching Kafka %s jars with Maven into %s", KAFKA_VERSION, libs)
            started = time.monotonic()
            try:
                proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                out = tail(as_text(exc.stdout) + as_text(exc.stderr))
                raise BrokerError(f"`{' '.join(cmd)}` timed out after {timeout:.0f}s:\n{out}") from exc
            if proc.returncode != 0 or not any(partial.glob("kafka_2.13-*.jar")):
                raise BrokerError(
                    f"fetching the Kafka jars failed (exit code {proc.returncode}): `{' '.join(cmd)}`\n"
                    f"{tail(proc.stdout + proc.stderr)}"
                )
            shutil.rmtree(libs, ignore_errors=True)
            partial.rename(libs)
            marker.write_text(pom_hash + "\n")
            log.info("fetched %d jars in %.1fs", len(list(libs.glob("*.jar"))), time.monotonic() - started)
            return libs
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
