"""``prompt_hash``: a fingerprint of a request, so repeated prompts can be found without the text.

The text never leaves the app: only 32 hex digits of SHA-256 travel on the event. Normalisation
(so equal requests hash equal however they were built): the request is taken as JSON (messages,
an input string or list, any JSON-like value; SDK objects with ``model_dump()``/``to_dict()``
are converted first), mapping keys are sorted, every string is NFC-normalised with surrounding
whitespace stripped and inner whitespace runs collapsed to one space. Pass the same extra parts
(``system``, ``tools``, the model) when they belong to what makes two requests identical.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

_SPACES = re.compile(r"\s+")


def _normal(value: Any) -> Any:
    if isinstance(value, str):
        return _SPACES.sub(" ", unicodedata.normalize("NFC", value)).strip()
    if isinstance(value, Mapping):
        return {str(key): _normal(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_normal(item) for item in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    for method in ("model_dump", "to_dict"):
        if callable(getattr(value, method, None)):
            return _normal(getattr(value, method)())
    raise TypeError(f"cannot hash a {type(value).__name__} prompt; pass JSON-like data")


def prompt_hash(request: Any, **parts: Any) -> str:
    """32 hex digits identifying the normalised ``request`` (plus named ``parts``)."""
    payload = {"request": _normal(request), **{key: _normal(v) for key, v in parts.items()}}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:32]
