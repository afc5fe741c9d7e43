"""The one table of destination APIs: the config's `type:` tag -> the API class.

The config parses each `destinations.<name>` entry with the settings model of the API its `type:`
names, `make_destination` builds the API, `check` asks it for its secrets and its credentials
probe. Adding a destination is adding its line here (see docs/architecture.md, "Adding a destination").
"""

from __future__ import annotations

from streams.destinations.activation import Activation
from streams.destinations.audiohook import Audiohook
from streams.destinations.base import DestinationAPI
from streams.destinations.settings import DestinationSettings
from streams.destinations.zeotap import Zeotap

# the order is the order the config's error messages list the known types in
DESTINATIONS: dict[str, type[DestinationAPI]] = {
    "zeotap": Zeotap,
    "audiohook": Audiohook,
    "activation": Activation,
}


def settings_models() -> tuple[type[DestinationSettings], ...]:
    """The registered settings models, in the table's order (the config's `type:` union)."""
    return tuple(api.settings_model for api in DESTINATIONS.values())


def make_destination(name: str, settings: DestinationSettings) -> DestinationAPI:
    """The API for a configured destination, by its settings' `type:` tag."""
    api = DESTINATIONS.get(settings.type)
    if api is None or not isinstance(settings, api.settings_model):
        raise TypeError(f"no destination API for {type(settings).__name__} of type {settings.type!r}")
    return api(name, settings)
