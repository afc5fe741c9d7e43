"""Value equality that also compares types, for the differential tests (generated code vs reference)."""

from __future__ import annotations

from typing import Any


def same(a: Any, b: Any) -> bool:
    """Equal values of the same types, recursively (1 == 1.0 == True would hide a wrong type)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and a != a:
        return b != b
    return bool(a == b)
