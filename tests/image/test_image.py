"""The container image (issue 16): built by deploy/build-image.sh, then run from inside it against the
local broker and the emulator with the shipped Kubernetes config.

The image is built with buildah (the builder .ci/run installs; this machine has no Docker engine) and
run with `buildah run --isolation chroot`, which shares the host's network (127.0.0.1 is the host's)
and pid namespace. Two things the tool does not do, and what the test does instead:

* `buildah run` has no read-only root: it writes its own mount points (`/run/.containerenv`) into the
  root at every run, so a root remounted read-only makes it fail. The test proves instead that the
  worker wrote nothing outside /tmp: the container's whole filesystem (path, type, mode, size, mtime)
  is the same before and after the worker's run, /tmp being a host directory mounted there. Not
  proven: that the worker would cope with EROFS on a path this run did not touch.
* `buildah run` does not forward SIGTERM (it kills its child): the test signals the worker by its pid,
  visible on the host through the shared pid namespace (the descendant of `buildah run` that runs as
  the image's user), as the kubelet's runtime would deliver it to the container's pid 1.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import signal
import ssl
import stat
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from streams import __version__
from streams.dev.emulator import Emulator, EmulatorConfig
from streams.dev.samples import EVENTS, SampleFactory
from tests.integration.harness import committed, create_topics, encoded, end_offsets, produce

pytestmark = [pytest.mark.image, pytest.mark.kafka, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "deploy" / "base" / "bridge.yaml"
TAG = "localhost/s2s-bridge:image-test"
UID = 10001
PARTITIONS = 6  # kafka.topic_partitions of the shipped config
PER_ROUTE = 60
WRITE_KEY = "image-test-write-key"
# the pod's terminationGracePeriodSeconds: the worker must have drained and exited within it
GRACE_S = 30
# what `buildah run` itself re-creates in the root at every run (the file, and so its directory's mtime)
BUILDAH_RUN_MARKS = {"run", "run/.containerenv"}
# written into the CA bundle and pip configuration given to the build: no file of the image may hold them
MARKER = f"s2s-image-test-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Image:
    name: str
    buildah: tuple[str, ...]  # the buildah command with the storage driver the build used


def _fail_or_skip(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the image test never skips)", pytrace=False)
    pytest.skip(reason)


def _host_pip_conf() -> Path | None:
    path = Path(os.environ.get("PIP_CONFIG_FILE") or "/etc/pip.conf")
    return path if path.is_file() else None


def _host_ca_bundle(pip_conf: Path | None) -> Path:
    """The CA bundle the host's pip trusts (a TLS-inspecting proxy's CA is in it), else OpenSSL's."""
    if os.environ.get("PIP_CERT"):
        return Path(os.environ["PIP_CERT"])
    if pip_conf is not None:
        parser = configparser.ConfigParser()
        parser.read(pip_conf)
        if parser.has_option("global", "cert"):
            return Path(parser.get("global", "cert"))
    paths = ssl.get_default_verify_paths()
    return Path(paths.cafile or paths.openssl_cafile)


@pytest.fixture(scope="session")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    """Build the image once per session through deploy/build-image.sh, with a CA bundle and pip
    configuration that carry MARKER (still valid: a comment line in each)."""
    if shutil.which("buildah") is None:
        _fail_or_skip("buildah is not installed (apt-get install buildah debootstrap; .ci/run does it)")
    secrets = tmp_path_factory.mktemp("build-secrets")
    pip_conf = _host_pip_conf()
    ca = secrets / "ca.pem"
    ca.write_text(_host_ca_bundle(pip_conf).read_text(encoding="utf-8") + f"\n# {MARKER}\n", encoding="utf-8")
    conf = secrets / "pip.conf"
    conf.write_text((pip_conf.read_text(encoding="utf-8") if pip_conf else "") + f"\n# {MARKER}\n", encoding="utf-8")
    done = subprocess.run(
        ["bash", str(REPO / "deploy" / "build-image.sh"), "--tag", TAG, "--ca-bundle", str(ca), "--pip-conf", str(conf)],
        env={**os.environ, "IMAGE_BUILDER": "buildah"},
        capture_output=True,
        text=True,
        timeout=1200,  # a fresh machine pays debootstrap (~2.5 min) and the build (~1.5 min)
    )
    if done.returncode != 0:
        output = done.stderr[-6000:] + done.stdout[-2000:]
        pytest.fail(f"deploy/build-image.sh failed ({done.returncode}):\n{output}", pytrace=False)
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("image: "), done.stdout
    fields = dict(f.split("=", 1) for f in line.removeprefix("image: ").split())
    assert fields["name"] == TAG and fields["builder"] == "buildah", line
    return Image(TAG, ("buildah", "--storage-driver", fields["storage"]))


@dataclass
class Container:
    image: Image
    name: str
    root: Path  # the container's filesystem, mounted on the host

    def command(self, argv: list[str], *, env: dict[str, str], volumes: dict[Path, str]) -> list[str]:
        """`buildah run` of argv, as the image's user, with env and host directories mounted."""
        opts = [x for k, v in env.items() for x in ("--env", f"{k}={v}")]
        opts += [x for host, spec in volumes.items() for x in ("--volume", f"{host}:{spec}")]
        return [*self.image.buildah, "run", "--isolation", "chroot", *opts, self.name, "--", *argv]

    def config(self) -> dict:
        out = subprocess.run(
            [*self.image.buildah, "inspect", "--type", "container", self.name],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return dict(json.loads(out.stdout)["OCIv1"]["config"])


@pytest.fixture(scope="session")
def container(image: Image) -> Iterator[Container]:
    def buildah(*args: str) -> str:
        return subprocess.run([*image.buildah, *args], capture_output=True, text=True, check=True, timeout=300).stdout.strip()

    name = buildah("from", "--name", f"s2s-image-test-{uuid.uuid4().hex[:8]}", image.name)
    try:
        yield Container(image, name, Path(buildah("mount", name)))
    finally:
        buildah("rm", name)


def _shipped_env() -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",  # config-only: never dialled
        "KAFKA_USERNAME": "s2s-bridge",
        "KAFKA_PASSWORD": "pw-not-real",
        "ZEOTAP_URL": "https://api.zeotap.example/",
        "ZEOTAP_WRITE_KEY": "wk-not-real",
        "S2S_MAX_REPLICAS": "6",
    }


def _run(
    container: Container, argv: list[str], env: dict[str, str], volumes: dict[Path, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(container.command(argv, env=env, volumes=volumes), capture_output=True, text=True, timeout=180)


def test_the_image_holds_the_bridge_and_nothing_of_the_build(container: Container) -> None:
    root = container.root
    config = container.config()
    assert config["User"] == f"{UID}:{UID}", config
    assert config["Entrypoint"] == ["s2s-bridge"] and config["StopSignal"] == "SIGTERM", config
    # no compiler, no sources, no wheels, no pip cache, nothing of the build's secrets
    for path in ("usr/bin/gcc", "usr/bin/cc", "usr/bin/make", "src", "wheels", "root/.cache/pip", "run/secrets", "etc/pip.conf"):
        assert not (root / path).exists(), path
    assert (root / "opt/venv/bin/s2s-bridge").is_file()
    # the native core, built by the builder stage's Rust (none of which is in the image)
    assert list((root / "opt/venv/lib").glob("python3*/site-packages/streams/_native*.so")), "no streams._native in the image"
    assert not (root / "usr/bin/cargo").exists() and not (root / "usr/bin/rustc").exists()
    shipped = sorted(p.name for p in (REPO / "avro_schemas").iterdir())
    assert sorted(p.name for p in (root / "app/avro_schemas").iterdir()) == shipped
    holding = [str(p.relative_to(root)) for p in _files(root) if MARKER.encode() in p.read_bytes()]
    assert holding == [], f"the build's CA bundle / pip configuration reached the image: {holding}"


def _files(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = Path(dirpath, n)
            if stat.S_ISREG(p.lstat().st_mode):
                yield p


def test_version_and_check_of_the_shipped_config(container: Container, tmp_path: Path) -> None:
    done = _run(container, ["s2s-bridge", "version"], {}, {})
    assert (done.returncode, done.stdout.strip()) == (0, __version__), done.stderr
    cfg = tmp_path / "config"
    cfg.mkdir()
    shutil.copy(SHIPPED, cfg / "bridge.yaml")  # unchanged: its schemas are the image's /app/avro_schemas
    cfg.chmod(0o755)
    (cfg / "bridge.yaml").chmod(0o644)
    check = ["s2s-bridge", "check", "--config-only", "--config", "/etc/s2s-bridge/bridge.yaml"]
    done = _run(container, check, _shipped_env(), {cfg: "/etc/s2s-bridge:ro"})
    assert (done.returncode, done.stdout.strip()) == (0, "config OK: 7 routes, 1 destination"), done.stderr
    assert "pw-not-real" not in done.stdout + done.stderr and "wk-not-real" not in done.stdout + done.stderr


def _adapted(tmp: Path, suffix: str) -> tuple[Path, dict[str, str]]:
    """The shipped config for the local broker: PLAINTEXT instead of SASL_SSL, topics of this test,
    an ephemeral metrics port (the host's network is shared); everything else as shipped."""
    raw = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    raw["kafka"]["security_protocol"] = "PLAINTEXT"
    del raw["kafka"]["sasl"]
    for route in raw["routes"].values():
        route["topic"] = f"{route['topic']}-{suffix}"
    raw["metrics"]["port"] = 0
    cfg = tmp / "config"
    cfg.mkdir(mode=0o755)
    (cfg / "bridge.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    (cfg / "bridge.yaml").chmod(0o644)
    return cfg, {"BRIDGE_GROUP_ID": f"image-test-{suffix}"}


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path of the container's filesystem: (mode, size, mtime); /tmp is a host directory here."""
    out: dict[str, tuple[int, int, int]] = {}
    for dirpath, dirs, names in os.walk(root):
        for n in dirs + names:
            st = Path(dirpath, n).lstat()
            out[str(Path(dirpath, n).relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def _worker_pid(buildah_pid: int) -> int | None:
    """The worker: the descendant of `buildah run` that is a Python process of the image's user
    (buildah's chroot helpers in between are root's, or not Python once they drop to the user)."""
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(p.name))
    todo = list(children.get(buildah_pid, []))
    while todo:
        pid = todo.pop()
        try:
            python = Path(os.readlink(f"/proc/{pid}/exe")).name.startswith("python")
        except OSError:
            python = False
        if python and _uids(pid) == {UID}:
            return pid
        todo += children.get(pid, [])
    return None


def _uids(pid: int) -> set[int]:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return set()
    line = next(x for x in status.splitlines() if x.startswith("Uid:"))
    return {int(x) for x in line.split()[1:]}


def test_the_worker_in_the_image_delivers_everything_and_drains_on_sigterm(
    container: Container, kafka_bootstrap: str, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    cfg, env = _adapted(tmp_path, suffix)
    topics = {e: f"{e}-{suffix}" for e in EVENTS}
    create_topics(kafka_bootstrap, [t for topic in topics.values() for t in (topic, f"{topic}.dlt")], PARTITIONS)
    factory = SampleFactory(seed=16)
    for event, topic in topics.items():
        produce(kafka_bootstrap, topic, encoded(REPO / "avro_schemas" / f"{event}.avsc", factory.stream(event, PER_ROUTE)))
    total = PER_ROUTE * len(EVENTS)
    scratch = tmp_path / "tmp"  # the container's /tmp: the only place it may write
    scratch.mkdir()
    scratch.chmod(0o1777)
    volumes = {cfg: "/etc/s2s-bridge:ro", scratch: "/tmp"}
    config = container.config()
    argv = [*config["Entrypoint"], *config["Cmd"]]  # the image's own command
    assert argv == ["s2s-bridge", "worker", "--config", "/etc/s2s-bridge/bridge.yaml"]

    emu_cfg = EmulatorConfig(zeotap_write_keys=(WRITE_KEY,), seed=16)
    with Emulator(emu_cfg) as emulator:
        env.update(
            KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
            ZEOTAP_URL=f"{emulator.base_url}/zeotap",
            ZEOTAP_WRITE_KEY=WRITE_KEY,
            S2S_MAX_REPLICAS="6",
        )
        # buildah makes its mount points in the root at the first run: the snapshot is after one
        assert _run(container, ["true"], env, volumes).returncode == 0
        before = _snapshot(container.root)
        log = (tmp_path / "worker.log").open("w")
        proc = subprocess.Popen(container.command(argv, env=env, volumes=volumes), stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 180
            delivered = 0
            while time.monotonic() < deadline and proc.poll() is None:
                delivered = int(emulator.admin.stats()["destinations"].get("zeotap", {}).get("unique_ids", 0))
                if delivered >= total:
                    break
                time.sleep(0.5)
            assert delivered == total, f"{delivered} of {total} delivered; worker: {_tail(tmp_path / 'worker.log')}"
            pid = _worker_pid(proc.pid)
            assert pid is not None, "no process of uid 10001 under buildah run"
            assert _uids(pid) == {UID}  # real, effective, saved and filesystem uid: not root
            sent = time.monotonic()
            os.kill(pid, signal.SIGTERM)
            code = proc.wait(GRACE_S + 30)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
            log.close()
    tail = _tail(tmp_path / "worker.log")
    assert code == 0, tail
    # the image's worker runs the native core (built in the builder stage with Debian's Rust)
    assert "transform core: native" in (tmp_path / "worker.log").read_text(errors="replace"), tail
    assert took < GRACE_S, f"exit {took:.1f} s after SIGTERM; the pod's grace period is {GRACE_S} s"
    for topic in topics.values():
        ends = end_offsets(kafka_bootstrap, topic, PARTITIONS)
        assert committed(kafka_bootstrap, env["BRIDGE_GROUP_ID"], topic, PARTITIONS) == ends, topic
        assert end_offsets(kafka_bootstrap, f"{topic}.dlt", PARTITIONS) == dict.fromkeys(range(PARTITIONS), 0)
    after = _snapshot(container.root)
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p) and p not in BUILDAH_RUN_MARKS)
    assert changed == [], f"the worker wrote outside /tmp: {changed[:20]}"


def _tail(path: Path) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-30:])
