"""Known differences from LiteLLM's price map: rates where the catalog is right on purpose.

``known_differences.toml`` (shipped beside the catalog) lists each one with the LiteLLM keys it
covers (shell-style patterns), the rates, why our rate stands, the source that says so and the
date it was checked. ``prices compare`` marks every difference it explains; a difference none
explains is *unexplained*, and a pattern that explains nothing is *stale* (LiteLLM changed, or
the catalog did): the test suite fails on either, so the file cannot go stale silently.
"""

from __future__ import annotations

from datetime import date
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from spendstream.pricing.catalog import load_toml_file

SHIPPED_KNOWN = "known_differences.toml"
RATE_LABEL = r"^\*$|^(input|output|cache_read|cache_write)( >\d+k)?$"


class KnownDifference(BaseModel):
    """Rates of some LiteLLM keys that differ from the catalog on purpose."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keys: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
    rates: Annotated[list[Annotated[str, Field(pattern=RATE_LABEL)]], Field(min_length=1)]
    reason: Annotated[str, Field(min_length=10)]
    source: Annotated[str, Field(pattern=r"^https://\S+$")]
    checked: date

    def covers(self, key: str, rate: str) -> str | None:
        """The pattern of ``keys`` that covers ``key`` when ``rate`` is one of ``rates``."""
        if "*" not in self.rates and rate not in self.rates:
            return None
        return next((pattern for pattern in self.keys if fnmatchcase(key, pattern)), None)


class KnownDifferences(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1]
    compared_with: str
    differences: list[KnownDifference] = Field(default_factory=list)


def load_known_differences(path: Path | None = None) -> KnownDifferences:
    """The shipped file, or ``path``; an invalid file is a :class:`PricingError`."""
    return load_toml_file(path, KnownDifferences, SHIPPED_KNOWN)
