"""Reference data the native core reads, built from the Python libraries (stub until the phone tables land)."""

from typing import Any


def phone_tables() -> dict[str, Any]:
    return {}
