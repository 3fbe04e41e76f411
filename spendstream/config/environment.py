"""Which ``SPENDSTREAM_*`` variable holds bad JSON, for a message that names it and the fix.

pydantic-settings decodes a list, table or section given whole in the environment as JSON and,
when that fails, raises ``SettingsError`` naming only the top-level field ("api"), not the
variable (``SPENDSTREAM_API__ALLOWED_HOSTS``): this finds it.
"""

from __future__ import annotations

import json
import types
from collections.abc import Mapping
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel

PREFIX = "SPENDSTREAM_"
DELIMITER = "__"


def _bare(annotation: Any) -> Any:
    """``X`` from ``Annotated[X, ...]`` and ``X | None``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            kept = [a for a in get_args(annotation) if a is not type(None)]
            if len(kept) != 1:
                return annotation
            annotation = kept[0]
        else:
            return annotation


def _field_type(model: type[BaseModel], path: list[str]) -> Any:
    """The type of the field at ``path`` (lower-case names) under ``model``, else None."""
    annotation: Any = model
    for part in path:
        annotation = _bare(annotation)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        field = annotation.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
    return _bare(annotation)


def _example(annotation: Any) -> str:
    origin = get_origin(annotation) or annotation
    if origin not in (list, tuple, set, frozenset):
        return """'{"key": "value"}'"""
    items = [_bare(a) for a in get_args(annotation)]
    return """'[{"key": "value"}]'""" if items and _is_json_typed(items[0]) else """'["a", "b"]'"""


def _is_json_typed(annotation: Any) -> bool:
    origin = get_origin(annotation) or annotation
    if origin in (list, tuple, set, frozenset, dict):
        return True
    return isinstance(origin, type) and issubclass(origin, BaseModel)


def bad_json_variables(model: type[BaseModel], environ: Mapping[str, str]) -> list[str]:
    """One line per ``SPENDSTREAM_*`` variable of a list, table or section that is not JSON:
    ``NAME must be JSON, e.g. '["a", "b"]' (the decoder's complaint)``."""
    found = []
    for name, value in sorted(environ.items()):
        if not name.upper().startswith(PREFIX):
            continue
        path = name[len(PREFIX) :].lower().split(DELIMITER)
        annotation = _field_type(model, path)
        if annotation is None or not _is_json_typed(annotation):
            continue
        try:
            json.loads(value)
        except ValueError as exc:
            found.append(f"{name} must be JSON, e.g. {_example(annotation)} ({exc})")
    return found
