"""One module per destination API (settings, payload, request, response meaning, secrets, auth
probe) and one registry that maps the config's `type:` to it."""

from __future__ import annotations

from streams.destinations.base import Classified, DestinationAPI, Request, Verdict
from streams.destinations.registry import DESTINATIONS, make_destination
from streams.destinations.settings import DestinationSettings

__all__ = ["DESTINATIONS", "Classified", "DestinationAPI", "DestinationSettings", "Request", "Verdict", "make_destination"]
