"""What the operator commands print, made safe: `Scrubber` masks the configured secrets (the Kafka
SASL / registry / TLS key passwords and OAuth client secret, and what each destination API names in
its `secrets()`) and the credentials in any URL a text quotes; `exc_text` is how an exception reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from streams.config import BridgeConfig
from streams.destinations import make_destination
from streams.urls import MASK, safe_url


class Scrubber:
    """Replaces every configured secret (and derived credential) in a text with ``***``."""

    MASK = MASK  # the mask safe_url puts on a secret query value, so both read the same

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        # longest first, so a secret that contains another is masked whole
        self.secrets = sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True)

    @classmethod
    def for_config(cls, cfg: BridgeConfig) -> Scrubber:
        found: list[str | None] = []
        k = cfg.kafka
        if k.sasl is not None:
            found += [secret_value(k.sasl.password), secret_value(k.sasl.oauth_client_secret)]
        if k.tls is not None:
            found.append(secret_value(k.tls.key_password))
        if k.schema_registry is not None:
            found.append(secret_value(k.schema_registry.password))
            found.append(urlsplit(k.schema_registry.url).password)
        for name, d in cfg.destinations.items():
            found += make_destination(name, d).secrets()
        return cls(found)

    def __call__(self, text: str) -> str:
        for s in self.secrets:
            if s in text:
                text = text.replace(s, self.MASK)
        if "://" in text:  # e.g. an HTTP client's error quoting the URL it was given
            text = _URL_IN_TEXT.sub(lambda m: safe_url(m.group(0)), text)
        return text


def secret_value(v: Any) -> str | None:
    """The plain text of a configured secret (a `SecretStr`), None when it is not set."""
    return v.get_secret_value() if v is not None else None


_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def exc_text(exc: BaseException) -> str:
    """An exception as a report shows it: a Kafka error's name and reason, else class and message."""
    err: Any = exc.args[0] if exc.args else None
    if hasattr(err, "str") and hasattr(err, "name"):  # a KafkaException's KafkaError
        return f"{err.name()}: {err.str()}" if err.str() else str(err.name())
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
