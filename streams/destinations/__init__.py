"""One module per destination API: payload shape, request shape, response classification."""

from __future__ import annotations

from streams.config import ActivationDestination, AudiohookDestination, DestinationSettings, ZeotapDestination
from streams.destinations.activation import Activation
from streams.destinations.audiohook import Audiohook
from streams.destinations.base import Classified, DestinationAPI, Request, Verdict
from streams.destinations.zeotap import Zeotap

__all__ = ["Classified", "DestinationAPI", "Request", "Verdict", "make_destination"]


def make_destination(name: str, settings: DestinationSettings) -> DestinationAPI:
    if isinstance(settings, ZeotapDestination):
        return Zeotap(name, settings)
    if isinstance(settings, AudiohookDestination):
        return Audiohook(name, settings)
    if isinstance(settings, ActivationDestination):
        return Activation(name, settings)
    raise TypeError(f"unknown destination settings {type(settings).__name__}")
