"""What every destination's settings share: endpoint, transport (batching, retries, breaker,
concurrency, rate), and what the pipeline does for it (identity, consent, country and timestamp
formats). Each destination's own model (in its module) adds its `type` tag and credentials."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from streams.settings import FieldError, Model
from streams.urls import is_loopback, safe_url


class BatchSettings(Model):
    max_events: Annotated[int, Field(ge=1, le=100_000)] = 500
    max_bytes: Annotated[int, Field(ge=1024)] = 5 * 1024 * 1024
    linger_ms: Annotated[int, Field(ge=0)] = 200


class RetrySettings(Model):
    initial_backoff_s: Annotated[float, Field(gt=0)] = 0.2
    max_backoff_s: Annotated[float, Field(gt=0)] = 30.0
    # attempts before the destination is reported unhealthy (the records are still retried:
    # an unhealthy destination pauses consumption instead of dead-lettering the stream)
    unhealthy_after: Annotated[int, Field(ge=1)] = 3
    # a Retry-After longer than this is capped (a far-future date must not freeze the destination)
    max_retry_after_s: Annotated[float, Field(gt=0)] = 120.0
    # a request the server keeps failing (5xx, timeout) while other requests to it succeed: split
    # after this many such attempts, and a single event dead-lettered (deliver:server_error) after
    # poison_after; never while the destination as a whole is failing
    isolate_after: Annotated[int, Field(ge=1)] = 3
    poison_after: Annotated[int, Field(ge=1)] = 10


class BreakerSettings(Model):
    """When a destination refuses us rather than our records (see streams.delivery.breaker)."""

    # suspect refusals in a row (no delivery in between) that mean the destination refuses us
    refusals: Annotated[int, Field(ge=1)] = 5
    probe_interval_s: Annotated[float, Field(gt=0)] = 5.0
    max_probe_interval_s: Annotated[float, Field(gt=0)] = 60.0


class IdentitySettings(Model):
    hash: bool = True
    phone_format: Literal["e164", "digits"] = "e164"
    fold_gmail: bool = False


class ConsentSettings(Model):
    require: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    missing: Literal["forward", "filter"] = "filter"


class DestinationSettings(Model):
    """The common base; a destination's model narrows `type` to its tag (`Literal["zeotap"]`), the
    key the registry (`streams.destinations.registry`) and the config's `type:` use."""

    type: str
    url: str
    timeout_s: Annotated[float, Field(gt=0)] = 10.0
    # requests in flight at most; with adaptive_concurrency the sink halves it when the destination
    # pushes back (429/5xx/timeouts) and grows back by one per round trip (AIMD)
    concurrency: Annotated[int, Field(ge=1, le=256)] = 4
    adaptive_concurrency: bool = True
    rate_limit_rps: Annotated[float, Field(gt=0)] | None = None
    # requests per second for the whole deployment (e.g. Zeotap's 200 QPS notice is about the
    # source, not one process): each worker takes rate_budget_rps / rate_budget_workers, the
    # latter the most workers that can run at once (KEDA's maxReplicaCount, docs/deploy.md)
    rate_budget_rps: Annotated[float, Field(gt=0)] | None = None
    rate_budget_workers: Annotated[int, Field(ge=1)] = 1
    gzip: bool = False
    batch: BatchSettings = BatchSettings()
    retry: RetrySettings = RetrySettings()
    breaker: BreakerSettings = BreakerSettings()
    identity: IdentitySettings = IdentitySettings()
    consent: ConsentSettings = ConsentSettings()
    country_format: Literal["alpha2", "alpha3"] = "alpha3"
    timestamp_format: Literal["iso", "unix", "unix_ms"] = "iso"
    verify_tls: bool = True
    allow_insecure_http: bool = False

    @field_validator("url")
    @classmethod
    def _url_is_http(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http(s) URL, got {safe_url(v)!r}")
        return v.rstrip("/")

    @property
    def worker_rate_rps(self) -> float | None:
        """This worker's requests per second: its share of the budget, within rate_limit_rps."""
        share = self.rate_budget_rps / self.rate_budget_workers if self.rate_budget_rps else None
        rates = [r for r in (self.rate_limit_rps, share) if r]
        return min(rates) if rates else None

    @model_validator(mode="after")
    def _https_required(self) -> DestinationSettings:
        parts = urlsplit(self.url)
        if parts.scheme == "http" and not self.allow_insecure_http and not is_loopback(parts.hostname or ""):
            raise FieldError(
                ("url",),
                f"{safe_url(self.url)!r} is plain http to a non-loopback host; use https "
                "(or set allow_insecure_http: true, which is logged loudly)",
            )
        return self
