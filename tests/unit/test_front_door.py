"""The front door: the README's first two commands are `./run demo` and `./run test`, CI runs the
second, and the script answers a wrong verb with its usage instead of doing something else."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_readme_shows_the_two_commands_first() -> None:
    blocks = _bash_blocks((ROOT / "README.md").read_text())
    assert blocks[:2] == ["./run demo", "./run test"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [ln.strip() for ln in ci.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    assert commands[-1] == "bash ./run test"


def test_run_is_executable_and_valid_bash() -> None:
    script = ROOT / "run"
    assert script.stat().st_mode & 0o111
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_unknown_verb_prints_usage_and_exits_2() -> None:
    out = subprocess.run([str(ROOT / "run"), "deploy"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "unknown command" in out.stderr
    assert "./run demo" in out.stderr and "./run test" in out.stderr


def test_no_verb_prints_usage_without_setting_up() -> None:
    out = subprocess.run([str(ROOT / "run")], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "setup:" not in out.stderr
    assert "./run demo" in out.stderr
