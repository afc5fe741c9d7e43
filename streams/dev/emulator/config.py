"""What decides how the emulated APIs answer: the defaults, the fault knobs and :class:`EmulatorConfig`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

DESTINATIONS: tuple[str, ...] = ("zeotap", "audiohook", "activation")
GLOBAL = "*"
#: The write key used as the example in Zeotap's documentation.
DOC_WRITE_KEY = "fc3ab803-5762-44d3-88d3-7fbc94bca074"
DEFAULT_API_KEY = "emulator-api-key"
REGISTRY_PREFIX = "/registry"
#: The activation guide names no endpoint path: the emulator serves this one unless told otherwise.
ACTIVATION_PATH = "/activation/events"

#: Zeotap's "payload size does not exceed 20 MB", read as decimal megabytes (the stricter reading).
ZEOTAP_MAX_BODY = 20_000_000
#: Zeotap's documented kinds of user identifier ("email, loginID or cell phone number hashes",
#: "first-party cookies, third-party cookies or MAIDs") and the keys of its samples (userId,
#: visitorId, contactId). A user key is an identifier when its name, lower-cased without
#: separators and without a hash suffix (``email_sha256`` -> ``email``), is one of these.
ZEOTAP_USER_ID_KEYS: tuple[str, ...] = (
    "email",
    "loginid",
    "cellphone",
    "cellphonenumber",
    "phone",
    "phonenumber",
    "firstpartycookie",
    "thirdpartycookie",
    "maid",
    "userid",
    "visitorid",
    "contactid",
)
#: Kept for compatibility: the old substring markers (``zeotap_user_id_markers``, off by default).
USER_ID_MARKERS: tuple[str, ...] = ()
#: Which size Zeotap's 20 MB applies to when the body is gzipped (the document is silent on gzip):
#: "json" the JSON payload (after inflating), "wire" the bytes sent.
ZeotapLimitOf = Literal["json", "wire"]
#: Under the "wire" reading the inflated JSON is still bounded (a gzip bomb): this many times the limit.
WIRE_INFLATE_FACTOR = 10


@dataclass
class FaultConfig:
    """Faults injected into one destination (or all of them, under the ``"*"`` key).

    ``drop_rate + throttle_rate + error_rate`` must not exceed 1: one uniform draw per request
    picks at most one of them. ``slow_rate`` is drawn separately; a slow request is then
    processed normally (so a client that timed out may later retry an event that *was* received).
    """

    error_rate: float = 0.0
    error_status: int = 503
    throttle_rate: float = 0.0
    retry_after: int | str = 1  # seconds, or any raw header value (an HTTP-date, an absurd number)
    slow_rate: float = 0.0
    slow_seconds: float = 1.0
    drop_rate: float = 0.0
    outage_for_seconds: float = 0.0
    outage_mode: Literal["error", "drop"] = "error"
    outage_status: int = 503
    poison_ids: frozenset[str] = frozenset()
    auth_fail: bool = False
    # the destination refuses every request, not one record (a gateway's bad-auth or wrong-content
    # 400, a redirect, 411/415, ...): 0 is off
    reject_status: int = 0
    reject_debug: str = "Authorization header rejected"
    # a request carrying one of these ids makes the server fail (5xx) while other requests pass
    server_poison_ids: frozenset[str] = frozenset()
    server_poison_status: int = 500

    def __post_init__(self) -> None:
        self.poison_ids = frozenset(str(p) for p in self.poison_ids)
        self.server_poison_ids = frozenset(str(p) for p in self.server_poison_ids)
        if self.reject_status and not 300 <= self.reject_status <= 599:
            raise ValueError(f"reject_status must be 0 (off) or a 3xx/4xx/5xx status, got {self.reject_status!r}")
        if not 500 <= self.server_poison_status <= 599:
            raise ValueError(f"server_poison_status must be a 5xx status, got {self.server_poison_status!r}")
        for name in ("error_rate", "throttle_rate", "slow_rate", "drop_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value!r}")
        if self.drop_rate + self.throttle_rate + self.error_rate > 1.0 + 1e-9:
            raise ValueError("drop_rate + throttle_rate + error_rate must not exceed 1")
        for name in ("error_status", "outage_status"):
            status = getattr(self, name)
            if not 400 <= status <= 599:
                raise ValueError(f"{name} must be a 4xx/5xx status, got {status!r}")
        if isinstance(self.retry_after, str):
            if not self.retry_after.strip() or any(c in self.retry_after for c in "\r\n"):
                raise ValueError("retry_after must be a number of seconds or a one-line header value")
        elif self.retry_after < 0:
            raise ValueError("retry_after, slow_seconds and outage_for_seconds must be >= 0")
        if self.slow_seconds < 0 or self.outage_for_seconds < 0:
            raise ValueError("retry_after, slow_seconds and outage_for_seconds must be >= 0")
        if self.outage_mode not in ("error", "drop"):
            raise ValueError(f"outage_mode must be 'error' or 'drop', got {self.outage_mode!r}")

    @property
    def active(self) -> bool:
        return bool(
            self.error_rate
            or self.throttle_rate
            or self.slow_rate
            or self.drop_rate
            or self.outage_for_seconds
            or self.poison_ids
            or self.auth_fail
            or self.reject_status
            or self.server_poison_ids
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultConfig:
        """Build from a JSON-like mapping; unknown keys are an error (typos must not pass silently)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        kwargs = dict(data)
        for ids in ("poison_ids", "server_poison_ids"):
            if ids in kwargs:
                raw = kwargs[ids]
                if isinstance(raw, str) or not isinstance(raw, Iterable):
                    raise ValueError(f"{ids} must be a list of event ids")
                kwargs[ids] = frozenset(str(p) for p in raw)
        try:
            return cls(**kwargs)
        except TypeError as exc:  # pragma: no cover - defensive, keys were checked
            raise ValueError(str(exc)) from exc

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["poison_ids"] = sorted(self.poison_ids)
        data["server_poison_ids"] = sorted(self.server_poison_ids)
        return data


def _default_faults() -> dict[str, FaultConfig]:
    return {}


@dataclass
class EmulatorConfig:
    """Everything that decides how the emulated APIs answer."""

    # Zeotap
    zeotap_write_keys: tuple[str, ...] = (DOC_WRITE_KEY,)
    zeotap_regions: tuple[str, ...] = ("EU", "US", "IN", "UK")
    zeotap_auth_status: int = 401  # wrong/missing write key; the doc itself only knows 400
    zeotap_max_body_bytes: int = ZEOTAP_MAX_BODY
    zeotap_strict: bool = True  # top-level keys, object values, user identifier for customer events
    zeotap_require_country: bool = True  # customer events need user.country (only when strict)
    zeotap_user_id_markers: tuple[str, ...] = USER_ID_MARKERS  # extra substrings (the old rule); () off
    zeotap_user_id_keys: tuple[str, ...] = ZEOTAP_USER_ID_KEYS  # documented identifier kinds (see above)
    zeotap_timestamps: bool = True  # event.eventTimestamp / event.timestamp: ISO 8601 with zone, or UNIX
    zeotap_limit_of: ZeotapLimitOf = "json"  # which size the 20 MB limit applies to when gzipped
    # Destinations whose API accepts `Content-Encoding: gzip`; none of the three documents mentions
    # compression, so none by default (a gzipped body is refused: Zeotap 400, the others 415)
    gzip_destinations: tuple[str, ...] = ()
    # Audiohook
    audiohook_pixel_ids: tuple[str, ...] | None = None  # None: any pixel id is known
    audiohook_validate_ip: bool = True
    # "Use ISO 8601 format (YYYY-MM-DDTHH:mm:ss.sssZ)": "strict" takes that form only; "iso8601"
    # takes any ISO 8601 date-time with a zone, as the document's own code examples send
    # (`isoformat() + 'Z'` has microseconds, PHP's `date('c')` an offset)
    audiohook_timestamps: Literal["strict", "iso8601"] = "strict"
    # the document's required list is ip_address, user_agent, event_name; every example also has
    # timestamp and visitor_id: True requires those two as well
    audiohook_require_example_fields: bool = False
    # Activation API
    activation_api_keys: tuple[str, ...] = (DEFAULT_API_KEY,)
    # The guide leaves these to the API (the bridge's settings of the same names choose them):
    activation_path: str = ACTIVATION_PATH  # the endpoint
    activation_auth: Literal["bearer", "basic", "header"] = "bearer"  # how the api key is presented
    activation_auth_header: str = "X-API-Key"  # the header carrying the key (auth "header")
    activation_username: str = "emulator"  # auth "basic": this username, an api key as the password
    activation_batch_key: str | None = None  # None: one event per request (a batch is 400)
    activation_idempotency_header: str | None = "Idempotency-Key"  # None: dedupe by event_id only
    # Body limit of the Audiohook and activation endpoints (their docs are silent): 413 above it.
    max_body_bytes: int = 5 * 1024 * 1024
    # Recording
    keep_events: bool = True  # False: keep only ids/receipts (benchmarks)
    max_kept_events: int | None = 100_000  # per destination; oldest are evicted; None: unbounded
    # Faults, by destination name or "*" for all destinations
    faults: dict[str, FaultConfig] = field(default_factory=_default_faults)
    seed: int | None = None
    # Schema Registry
    registry_prefix: str = REGISTRY_PREFIX
    registry_basic_auth: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        self.zeotap_write_keys = tuple(self.zeotap_write_keys)
        self.zeotap_regions = tuple(self.zeotap_regions)
        self.activation_api_keys = tuple(self.activation_api_keys)
        if self.activation_auth not in ("bearer", "basic", "header"):
            raise ValueError(f"activation_auth must be bearer, basic or header, got {self.activation_auth!r}")
        if not self.activation_path.startswith("/"):
            raise ValueError("activation_path must start with '/'")
        if self.activation_batch_key == "":
            raise ValueError("activation_batch_key must be a non-empty key, or None (one event per request)")
        self.gzip_destinations = tuple(check_destination(d) for d in self.gzip_destinations)
        if self.audiohook_timestamps not in ("strict", "iso8601"):
            raise ValueError(f"audiohook_timestamps must be strict or iso8601, got {self.audiohook_timestamps!r}")
        if self.zeotap_limit_of not in ("json", "wire"):
            raise ValueError(f"zeotap_limit_of must be 'json' or 'wire', got {self.zeotap_limit_of!r}")
        if self.audiohook_pixel_ids is not None:
            self.audiohook_pixel_ids = tuple(self.audiohook_pixel_ids)
        for dest in self.faults:
            check_destination(dest, allow_global=True)
        if not self.registry_prefix.startswith("/") or self.registry_prefix.endswith("/"):
            raise ValueError("registry_prefix must start with '/' and not end with '/'")


def check_destination(dest: str, *, allow_global: bool = False) -> str:
    if dest in DESTINATIONS or (allow_global and dest == GLOBAL):
        return dest
    valid = ", ".join(DESTINATIONS + ((GLOBAL,) if allow_global else ()))
    raise ValueError(f"unknown destination {dest!r} (valid: {valid})")
