"""The emulator's two command lines, ``python -m streams.dev.emulator`` and ``s2s-bridge dev emulator``:
the same flags (one parser), each issue-14 option reachable from both, and the first lines printed."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from typer.testing import CliRunner

from streams.cli import app
from streams.dev.emulator import cli as emulator_cli
from streams.dev.emulator.config import DEFAULT_API_KEY, DOC_WRITE_KEY, EmulatorConfig


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[tuple[EmulatorConfig, Callable[[str], None]]]:
    """What each command line would serve: its config and its on-ready callback (nothing is served)."""
    calls: list[tuple[EmulatorConfig, Callable[[str], None]]] = []

    def fake_run(host: str, port: int, config: EmulatorConfig, on_ready: Callable[[str], None]) -> None:
        calls.append((config, on_ready))

    monkeypatch.setattr(emulator_cli, "run_emulator", fake_run)
    return calls


def _python_m(argv: list[str], served: list[Any]) -> EmulatorConfig:
    emulator_cli.main(argv)
    return served.pop()[0]


def _s2s_bridge(argv: list[str], served: list[Any]) -> EmulatorConfig:
    res = CliRunner().invoke(app, ["dev", "emulator", *argv])
    assert res.exit_code == 0, res.output
    return served.pop()[0]


def _flags(help_text: str) -> set[str]:
    return {w.strip(",[]") for w in help_text.split() if w.startswith("--") and len(w) > 3}


#: each option added in issue 14: its flags and what it sets, by EmulatorConfig field
ISSUE14_OPTIONS: list[tuple[list[str], dict[str, Any]]] = [
    (["--activation-path", "/v2/ingest"], {"activation_path": "/v2/ingest"}),
    (
        ["--activation-auth", "header", "--activation-auth-header", "X-Token"],
        {"activation_auth": "header", "activation_auth_header": "X-Token"},
    ),
    (["--activation-auth", "basic", "--activation-username", "u"], {"activation_auth": "basic", "activation_username": "u"}),
    (["--activation-batch-key", "data"], {"activation_batch_key": "data"}),
    (["--activation-idempotency-header", "none"], {"activation_idempotency_header": None}),
    (["--activation-idempotency-header", "X-Idem"], {"activation_idempotency_header": "X-Idem"}),
    (["--gzip", "zeotap", "--gzip", "activation"], {"gzip_destinations": ("zeotap", "activation")}),
    (["--zeotap-limit-of", "wire"], {"zeotap_limit_of": "wire"}),
    (["--zeotap-user-id-key", "userid", "--zeotap-user-id-key", "email"], {"zeotap_user_id_keys": ("userid", "email")}),
    (["--no-zeotap-timestamps"], {"zeotap_timestamps": False}),
    (["--audiohook-timestamps", "iso8601"], {"audiohook_timestamps": "iso8601"}),
    (["--audiohook-require-example-fields"], {"audiohook_require_example_fields": True}),
]


@pytest.mark.parametrize(("argv", "expected"), ISSUE14_OPTIONS, ids=[" ".join(a) for a, _ in ISSUE14_OPTIONS])
def test_issue14_option_reachable_from_both_command_lines(served, argv, expected) -> None:
    default = EmulatorConfig()
    for run in (_python_m, _s2s_bridge):
        config = run(argv, served)
        for field, value in expected.items():
            assert getattr(config, field) == value, (run.__name__, field)
            assert getattr(default, field) != value, field  # the flag changes something


def test_both_command_lines_accept_the_same_flags_and_build_the_same_config(served, monkeypatch) -> None:
    help_m = emulator_cli.build_parser().format_help()
    help_s2s = CliRunner().invoke(app, ["dev", "emulator", "--help"])
    assert help_s2s.exit_code == 0
    assert _flags(help_m) == _flags(help_s2s.output) and "--activation-auth" in _flags(help_m)
    # every flag at once, keys given: the same config whichever command line reads it
    argv = ["--port", "0", "--write-key", "K", "--api-key", "A", "--seed", "3", "--error-rate", "0.1"]
    argv += ["--faults", '{"zeotap": {"throttle_rate": 0.2}}', "--no-strict", "--pixel-id", "px"]
    for flags, _ in ISSUE14_OPTIONS[:5] + ISSUE14_OPTIONS[6:]:
        argv += flags
    configs = [dataclasses.asdict(run(argv, served)) for run in (_python_m, _s2s_bridge)]
    assert configs[0] == configs[1]
    assert configs[0]["activation_batch_key"] == "data" and configs[0]["audiohook_timestamps"] == "iso8601"


def test_default_keys_differ_as_before(served, monkeypatch) -> None:
    """Each command line keeps the keys it accepted before when none is given."""
    monkeypatch.delenv("ZEOTAP_WRITE_KEY", raising=False)
    monkeypatch.delenv("ACTIVATION_API_KEY", raising=False)
    config = _python_m([], served)
    assert (config.zeotap_write_keys, config.activation_api_keys) == ((DOC_WRITE_KEY,), (DEFAULT_API_KEY,))
    config = _s2s_bridge([], served)
    assert (config.zeotap_write_keys, config.activation_api_keys) == (("dev-key",), ("dev-api-key",))
    monkeypatch.setenv("ZEOTAP_WRITE_KEY", "from-env")
    monkeypatch.setenv("ACTIVATION_API_KEY", "api-from-env")
    config = _s2s_bridge([], served)
    assert (config.zeotap_write_keys, config.activation_api_keys) == (("from-env",), ("api-from-env",))
    assert _s2s_bridge(["--write-key", "flag"], served).zeotap_write_keys == ("flag",)


def test_unknown_flag_is_a_usage_error(served) -> None:
    res = CliRunner().invoke(app, ["dev", "emulator", "--no-such-flag"])
    assert res.exit_code == 2 and not served
    with pytest.raises(SystemExit) as exc:
        emulator_cli.main(["--no-such-flag"])
    assert exc.value.code == 2 and not served


def test_first_lines_printed_unchanged(served, capsys) -> None:
    """The lines `dev emulator` prints first are scripted against."""
    CliRunner().invoke(app, ["dev", "emulator"])
    _, on_ready = served.pop()
    on_ready("http://127.0.0.1:8080")
    assert capsys.readouterr().out.splitlines() == [
        "emulator: http://127.0.0.1:8080",
        "  zeotap:          POST http://127.0.0.1:8080/zeotap?region=EU&eventType=s2s",
        "  audiohook:       POST http://127.0.0.1:8080/audiohook/<pixel_id>/pixel.png",
        "  activation:      POST http://127.0.0.1:8080/activation/events",
        "  schema registry: http://127.0.0.1:8080/registry",
        "  admin:           http://127.0.0.1:8080/_emulator/stats",
    ]
