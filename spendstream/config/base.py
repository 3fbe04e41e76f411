"""The base of every configuration section: strict models and the error type."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from spendstream.errors import InputError


class ConfigError(InputError):
    """Invalid configuration; the message says where and how to fix it."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")
