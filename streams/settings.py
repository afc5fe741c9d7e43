"""The building blocks of every settings model: a strict, frozen pydantic base and the error that
names the offending field.

`streams.config` (the whole file) and each destination's settings model (in its module under
`streams.destinations`) both build on these, so neither has to import the other for them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Model(BaseModel):
    """A settings section: unknown keys are errors (a typo is never silently ignored), values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldError(ValueError):
    """A validation error about one field; `loc` is its path relative to the model that raised it
    (`streams.config.load_config` prefixes the model's own path)."""

    def __init__(self, loc: tuple[str, ...], msg: str) -> None:
        super().__init__(msg)
        self.loc = loc
