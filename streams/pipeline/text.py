"""Text clean-up shared by the identifier normalisations (:mod:`.identity`, :mod:`.phone`)."""

from __future__ import annotations

# Characters str.strip() does not remove but that end up in copy-pasted identifiers.
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"


def trim(value: str) -> str:
    """``value`` without surrounding whitespace and zero-width characters."""
    value = value.strip()
    if value and (value[0] in _INVISIBLE or value[-1] in _INVISIBLE):
        value = value.strip(_INVISIBLE).strip()
    return value
