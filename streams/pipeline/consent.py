"""Consent normalisation and policy evaluation.

Records carry consent flags in every shape (``true``, ``"yes"``, ``1``, ``"granted"``,
``"opt-in"``, ...).  ``normalize_consent`` turns one value into ``True`` / ``False`` /
``None`` (unknown) and ``evaluate`` decides whether a record may be forwarded under a
destination's ``ConsentPolicy``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "ConsentPolicy",
    "MissingConsent",
    "evaluate",
    "normalize_consent",
    "normalize_consents",
]

MissingConsent = Literal["forward", "filter"]

# Keys are compared after lower-casing and removing '-', '_' and spaces, so "opt-in",
# "opt_in", "Opt In" and "optin" are the same spelling.
_GRANTED = frozenset(
    {
        "true", "yes", "y", "1", "granted", "grant", "allow", "allowed",
        "optin", "optedin", "on", "accepted", "accept",
    }
)  # fmt: skip
_DENIED = frozenset(
    {
        "false", "no", "n", "0", "denied", "deny", "declined", "decline", "rejected", "reject",
        "optout", "optedout", "off", "revoked", "revoke", "withdrawn", "withdraw",
    }
)  # fmt: skip
_STRINGS: dict[str, bool] = {**dict.fromkeys(_GRANTED, True), **dict.fromkeys(_DENIED, False)}
_SEPARATORS = str.maketrans("", "", "-_ ")


def normalize_consent(value: object) -> bool | None:
    """True for a granted consent, False for a denied one, None for missing/unknown.

    bool as is; ints/floats 1 and 0; strings (any case, surrounding whitespace, ``-``,
    ``_`` or spaces between words ignored): true/yes/y/1/granted/grant/allow/allowed/
    opt-in/optin/opted_in/on/accepted/accept and false/no/n/0/denied/deny/declined/
    decline/rejected/reject/opt-out/optout/opted_out/off/revoked/revoke/withdrawn/withdraw.
    Anything else (None, "", "maybe", 2, lists, ...) is None.
    """
    if value is True or value is False:  # bool before int: True == 1
        return value
    if isinstance(value, str):
        hit = _STRINGS.get(value)
        if hit is not None:
            return hit
        return _STRINGS.get(value.strip().lower().translate(_SEPARATORS))
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value == 1:
            return True
        if value == 0:
            return False
    return None


def normalize_consents(consent: Mapping[str, object] | None) -> dict[str, bool]:
    """Purpose -> granted, with purpose names stripped and lower-cased; unknowns dropped."""
    if not consent:
        return {}
    result: dict[str, bool] = {}
    for purpose, value in consent.items():
        if not isinstance(purpose, str):
            continue
        granted = normalize_consent(value)
        if granted is not None:
            key = purpose.strip().lower()
            if key:
                result[key] = granted
    return result


def _purposes(purposes: tuple[str, ...] | list[str] | str) -> tuple[str, ...]:
    if isinstance(purposes, str):
        purposes = (purposes,)
    return tuple(p.strip().lower() for p in purposes if p.strip())


@dataclass(frozen=True)
class ConsentPolicy:
    """Which consents a destination needs before a record may be forwarded.

    ``require``: every one of these purposes must be granted.
    ``any_of``: when non-empty, at least one of these purposes must be granted.
    ``missing``: what a missing/unknown value means for these purposes: ``"filter"``
    (default) treats it as not granted, ``"forward"`` lets it through (an explicit
    denial always filters).
    Purpose names are stripped and lower-cased, like ``normalize_consents`` keys.
    """

    require: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    missing: MissingConsent = "filter"

    def __post_init__(self) -> None:
        object.__setattr__(self, "require", _purposes(self.require))
        object.__setattr__(self, "any_of", _purposes(self.any_of))
        if self.missing not in ("forward", "filter"):
            raise ValueError(f"missing must be 'forward' or 'filter', not {self.missing!r}")


def evaluate(consents: Mapping[str, bool | None], policy: ConsentPolicy) -> str | None:
    """None when the record may be forwarded, else the reason it must not be.

    ``consents`` should come from ``normalize_consents`` (lower-case keys); raw values are
    tolerated (they go through ``normalize_consent``).  Reasons, first failure wins,
    ``require`` checked in order before ``any_of``:
    ``consent 'marketing' denied``, ``consent 'marketing' missing`` (missing="filter"),
    ``none of consents analytics, personalisation granted``.
    With missing="forward" an ``any_of`` group passes when one of its purposes is granted
    or missing; it fails only when all of them are explicitly denied.
    """
    forward_missing = policy.missing == "forward"
    for purpose in policy.require:
        granted = normalize_consent(consents.get(purpose))
        if granted is True:
            continue
        if granted is False:
            return f"consent '{purpose}' denied"
        if not forward_missing:
            return f"consent '{purpose}' missing"
    if policy.any_of:
        for purpose in policy.any_of:
            granted = normalize_consent(consents.get(purpose))
            if granted is True or (granted is None and forward_missing):
                return None
        return f"none of consents {', '.join(policy.any_of)} granted"
    return None
