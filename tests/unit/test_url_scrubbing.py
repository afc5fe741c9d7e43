"""Destination / registry URLs are logged and printed without credentials (streams.urls.safe_url,
Scrubber, Bridge._warn_insecure, config errors)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from streams.app import Bridge
from streams.config import ConfigError, load_config
from streams.ops import Scrubber
from streams.urls import safe_url

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bridge.yaml"
SECRET = "s3cr3t-T0ken"


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://api.example.com/s2s", "https://api.example.com/s2s"),
        ("https://user:pw@sr.example:8081/x", "https://sr.example:8081/x"),
        (f"https://{SECRET}@api.example.com/", "https://api.example.com/"),
        (f"https://u:{SECRET}@[::1]:8443/p", "https://[::1]:8443/p"),
        (f"https://api.example.com/s2s?token={SECRET}", "https://api.example.com/s2s?token=***"),
        (f"https://h/p?region=EU&key={SECRET}&eventType=s2s", "https://h/p?region=EU&key=***&eventType=s2s"),
        (f"https://h/p?api_key={SECRET}", "https://h/p?api_key=***"),
        (f"https://h/p?api-key={SECRET}", "https://h/p?api-key=***"),
        (f"https://h/p?apiKey={SECRET}", "https://h/p?apiKey=***"),
        (f"https://h/p?access_token={SECRET}", "https://h/p?access_token=***"),
        (f"https://h/p?sig={SECRET}&se=2030", "https://h/p?sig=***&se=2030"),
        (f"https://h/p?signature={SECRET}", "https://h/p?signature=***"),
        (f"https://h/p?client_secret={SECRET}", "https://h/p?client_secret=***"),
        (f"https://h/p?password={SECRET}", "https://h/p?password=***"),
        (f"https://h/p?auth={SECRET}", "https://h/p?auth=***"),
        (
            f"https://h/p?X-Amz-Signature={SECRET}&X-Amz-Credential={SECRET}",
            "https://h/p?X-Amz-Signature=***&X-Amz-Credential=***",
        ),
        (f"https://h/cb#access_token={SECRET}&state=1", "https://h/cb#access_token=***&state=1"),
        ("https://h/p?region=EU&token=", "https://h/p?region=EU&token="),  # nothing to hide
        (f"https://u:{SECRET}@h/p?TOKEN={SECRET}", "https://h/p?TOKEN=***"),
        (f"https://h:notaport/p?token={SECRET}", "<unparseable URL>"),
    ],
)
def test_safe_url(url: str, expected: str) -> None:
    assert safe_url(url) == expected
    assert SECRET not in safe_url(url)


def test_scrubber_cleans_urls_quoted_in_error_texts() -> None:
    text = f"ConnectError: cannot reach 'https://bot:{SECRET}@h.example/x?key={SECRET}' (refused)"
    cleaned = Scrubber()(text)
    assert SECRET not in cleaned
    assert "https://h.example/x?key=***" in cleaned and cleaned.startswith("ConnectError: cannot reach")


def _config(tmp_path: Path, url: str, **dest: object) -> Path:
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    raw = {k: v for k, v in raw.items() if not str(k).startswith("x-")}
    for route in raw["routes"].values():
        route["schema"] = str((EXAMPLE.parent / route["schema"]).resolve())
    raw["destinations"]["zeotap"].update(url=url, **dest)
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_start_up_warning_does_not_contain_the_secret(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://bridge:{SECRET}@api.zeotap.example.com/s2s?token={SECRET}"
    cfg = load_config(
        _config(tmp_path, url, allow_insecure_http=True), env={"ZEOTAP_WRITE_KEY": "k", "KAFKA_BOOTSTRAP_SERVERS": "x:1"}
    )
    with caplog.at_level(logging.WARNING):
        Bridge(cfg)._warn_insecure()
    warnings = [r.getMessage() for r in caplog.records if "plain http" in r.getMessage()]
    assert warnings == [
        "SECURITY: destination zeotap is sent to over plain http (allow_insecure_http): "
        "http://api.zeotap.example.com/s2s?token=***"
    ]
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    "url",
    [f"http://u:{SECRET}@api.zeotap.example.com/s2s?key={SECRET}", f"ftp://u:{SECRET}@h/x?token={SECRET}"],
    ids=["plain-http", "not-http"],
)
def test_config_errors_do_not_quote_the_secret(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, url), env={"ZEOTAP_WRITE_KEY": "k", "KAFKA_BOOTSTRAP_SERVERS": "x:1"})
    assert "destinations.zeotap.url" in str(info.value)
    assert SECRET not in str(info.value)
