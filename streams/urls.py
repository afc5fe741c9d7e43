"""URLs as they may be shown (credentials removed) and the loopback test behind the https rule.

A leaf module: config validation, the destinations' settings, the worker's warnings, the OAuth
client and the operator commands all quote URLs, and none of them may pull the others in for it.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import unquote_plus, urlsplit, urlunsplit

MASK = "***"

# query (or fragment) parameters whose value is a credential, by name: case, '-' and '_' ignored,
# so api_key, api-key, apiKey, X-Api-Key, access_token, sig, signature, client_secret, ... all match
_SECRET_PARAM = re.compile(r"token|key|sig|secret|passw|pwd|auth|credential|session|jwt", re.IGNORECASE)


def _mask_params(params: str) -> str:
    out = []
    for pair in params.split("&"):
        name, eq, value = pair.partition("=")
        if eq and value and _SECRET_PARAM.search(re.sub(r"[-_.]", "", unquote_plus(name))):
            pair = f"{name}={MASK}"
        out.append(pair)
    return "&".join(out)


def safe_url(url: str) -> str:
    """The URL as it may be logged or printed: no user-info (``https://user:pass@host`` ->
    ``https://host``) and the values of secret-looking query/fragment parameters (``token``, ``key``,
    ``api_key``, ``access_token``, ``sig``, ``signature``, ``secret``, ``password``, ``auth``, ...)
    masked. Used wherever a destination, registry or token-endpoint URL is logged or printed."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # unparseable (e.g. a bad port): show nothing of it that could be a secret
        return "<unparseable URL>"
    if parts.username is not None or parts.password is not None:
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        parts = parts._replace(netloc=host + (f":{port}" if port else ""))
    if parts.query:
        parts = parts._replace(query=_mask_params(parts.query))
    if parts.fragment and "=" in parts.fragment:  # OAuth implicit flow puts access_token there
        parts = parts._replace(fragment=_mask_params(parts.fragment))
    return urlunsplit(parts)


def is_loopback(host: str) -> bool:
    """Whether the host is this machine (plain http is allowed there: nothing crosses a network)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
