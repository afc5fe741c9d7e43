"""One registry of destination APIs (streams.destinations.registry): the config accepts exactly the
registered `type:` tags, and `check` (Scrubber.for_config) hides every registered API's secrets and
the credentials it derives from them. A new destination is covered by these tests without editing them."""

from __future__ import annotations

import copy
import re
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from streams.config import BridgeConfig, ConfigError, load_config
from streams.destinations import DESTINATIONS, DestinationAPI, DestinationSettings, Request, make_destination
from streams.ops import Scrubber

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "bridge.yaml"
TYPES = sorted(DESTINATIONS)


def _example_raw() -> dict[str, Any]:
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    raw = {k: v for k, v in raw.items() if not str(k).startswith("x-")}
    for route in raw["routes"].values():
        route["schema"] = str((EXAMPLE.parent / route["schema"]).resolve())
    raw["kafka"] = {"bootstrap_servers": "127.0.0.1:1"}
    return copy.deepcopy(raw)


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or SecretStr in typing.get_args(annotation)


def _settings_for(tag: str, secret: str) -> dict[str, Any]:
    """A valid `destinations.<name>` entry of this type: every secret field set to `secret` (the
    password in the URL too), every other required field a plain value."""
    model = DESTINATIONS[tag].settings_model
    entry: dict[str, Any] = {"type": tag, "url": f"https://bridge:{secret}-url@api.example.com/v1"}
    for name, field in model.model_fields.items():
        if name in entry:
            continue
        if _is_secret(field.annotation):
            entry[name] = f"{secret}-{name}"
        elif field.is_required():
            # a required field of a type this generator cannot fill: teach it, do not skip the API
            assert field.annotation is str, f"{model.__name__}.{name}: give the test a sample value for {field.annotation}"
            entry[name] = f"sample-{name}"
    return entry


def _config(tmp_path: Path, destinations: dict[str, dict[str, Any]]) -> BridgeConfig:
    raw = _example_raw()
    raw["destinations"] = destinations
    # every route goes to the first destination: the routes are not what is tested here
    first = next(iter(destinations))
    for route in raw["routes"].values():
        route["destination"] = first
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return load_config(path, env={})


# --------------------------------------------------------------------------- the table


@pytest.mark.parametrize("tag", TYPES)
def test_each_registered_api_names_its_tag_and_its_settings_model(tag: str) -> None:
    api = DESTINATIONS[tag]
    assert api.type == tag
    assert issubclass(api.settings_model, DestinationSettings)
    # the settings model's `type` accepts this tag and nothing else
    assert typing.get_args(api.settings_model.model_fields["type"].annotation) == (tag,)
    assert not getattr(api, "__abstractmethods__", None), f"{api.__name__} leaves abstract methods"


def test_the_config_accepts_every_registered_type(tmp_path: Path) -> None:
    cfg = _config(tmp_path, {f"d_{tag}": _settings_for(tag, "s3cret") for tag in TYPES})
    for tag in TYPES:
        settings = cfg.destinations[f"d_{tag}"]
        assert type(settings) is DESTINATIONS[tag].settings_model
        assert type(make_destination(f"d_{tag}", settings)) is DESTINATIONS[tag]


def test_the_config_accepts_no_other_type_and_lists_the_registered_ones(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _config(tmp_path, {"d": {**_settings_for(TYPES[0], "s3cret"), "type": "not-a-destination"}})
    message = str(err.value)
    assert "destinations.d:" in message and "'not-a-destination'" in message
    expected = message.rpartition("expected tags:")[2]
    assert sorted(re.findall(r"'([^']+)'", expected)) == TYPES


def test_a_settings_error_names_the_field_without_the_type_tag(tmp_path: Path) -> None:
    # pydantic puts the tag in the error's path (destinations.d.<tag>.url); the message drops it
    for tag in TYPES:
        with pytest.raises(ConfigError, match=r"destinations\.d\.url: must be an http\(s\) URL"):
            _config(tmp_path, {"d": {**_settings_for(tag, "s3cret"), "url": "ftp://x"}})


# --------------------------------------------------------------------------- secrets


def _requests(api: DestinationAPI) -> list[Request]:
    probe = api.auth_probe()
    return [api.request(b"{}"), api.request(b"{}", gzipped=True), *([probe] if probe is not None else [])]


def _texts(api: DestinationAPI) -> list[str]:
    """Every piece of a request that could carry a credential: the URL and each header value."""
    return [t for r in _requests(api) for t in (r.url, *r.headers.values())]


@pytest.mark.parametrize("tag", TYPES)
def test_check_scrubs_every_secret_of_every_registered_destination(tmp_path: Path, tag: str) -> None:
    one = _settings_for(tag, "first-s3cret-a1b2")
    other = _settings_for(tag, "second-s3cret-c3d4")
    cfg_one = _config(tmp_path, {"d": one})
    cfg_other = _config(tmp_path, {"d": other})
    scrub_one, scrub_other = Scrubber.for_config(cfg_one), Scrubber.for_config(cfg_other)

    # the raw secrets, wherever a text quotes them
    raw = [v for k, v in one.items() if _is_secret(DESTINATIONS[tag].settings_model.model_fields[k].annotation)]
    raw.append("first-s3cret-a1b2-url")
    for secret in raw:
        assert secret not in scrub_one(f"error: {secret} was refused"), secret

    # what the API derives from them (an Authorization header, an encoded token, a signed URL): any
    # part of a request that changes with the secrets must read the same once scrubbed
    api_one = make_destination("d", cfg_one.destinations["d"])
    api_other = make_destination("d", cfg_other.destinations["d"])
    for a, b in zip(_texts(api_one), _texts(api_other), strict=True):
        assert scrub_one(a) == scrub_other(b), f"{tag}: {scrub_one(a)!r} still shows a credential"
