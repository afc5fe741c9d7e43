"""Operator commands: `s2s-bridge check` (is everything the worker needs there and reachable?) and
`s2s-bridge status` (lag, dead letters by reason, paused routes).

Gathering returns plain dataclasses; rendering turns them into a `rich` table or a JSON document.
Nothing here writes to Kafka or commits offsets: lag is read with the bridge's group id (committed
offsets only, no join), dead-letter topics are scanned with `assign` (never `subscribe`) and never
committed. Destination probes send no events: each destination API offers its own credentials
probe (`DestinationAPI.auth_probe`: Zeotap and the activation API, an *empty* batch, which the API
answers with its credentials verdict); an API without one (Audiohook: no credentials, no
side-effect-free endpoint) is only connected to (TCP, TLS).

Every text that leaves this package passes `Scrubber`: configured secrets (the Kafka SASL / registry
/ TLS key passwords and OAuth client secret, and what each destination API names in its
`secrets()`: write keys, API keys, Zeotap's Basic token) never show up, even if an error message
were to quote one; URLs lose their user-info.

The rooms: `check` and `status` gather, `render` draws the tables, `kafka_probe` holds the read-only
Kafka calls both need, `scrub` the masking (the URL rules themselves are `streams.urls`).
"""

from streams.ops.check import Check, CheckReport, probe_auth, reach, run_check
from streams.ops.kafka_probe import DeadLetterCounts, KafkaProbe, PartitionLag, partition_lag
from streams.ops.render import render_check, render_status
from streams.ops.scrub import Scrubber
from streams.ops.status import PausedState, RouteStatus, StatusReport, gather_status, parse_paused

__all__ = [
    "Check",
    "CheckReport",
    "DeadLetterCounts",
    "KafkaProbe",
    "PartitionLag",
    "PausedState",
    "RouteStatus",
    "Scrubber",
    "StatusReport",
    "gather_status",
    "parse_paused",
    "partition_lag",
    "probe_auth",
    "reach",
    "render_check",
    "render_status",
    "run_check",
]
