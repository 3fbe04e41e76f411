"""JSON from untrusted request bodies, decoded within bounds.

Python's :mod:`json` raises ``RecursionError`` on a document nested a few thousand levels deep
and ``ValueError`` on an integer of more than 4,300 digits, neither of which a route expects
(they were 500s). pydantic-core's parser refuses both, as well as ``NaN``/``Infinity``, invalid
UTF-8 and lone surrogates, with a ``ValueError`` that says where; :func:`decode_json` turns it
into a :class:`JsonBodyError` whose message a 400 can carry.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import from_json

from spendstream.errors import InputError

MAX_DEPTH = 200  # pydantic-core's fixed recursion limit
MAX_INTEGER_DIGITS = 4_300  # Python's int_max_str_digits default, which pydantic-core keeps


class JsonBodyError(InputError, ValueError):
    """A request body that is not JSON the API accepts; the message says where and why."""


def decode_json(body: bytes) -> Any:
    """The JSON value in ``body``; :class:`JsonBodyError` when it is not (bounded) JSON."""
    try:
        return from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        raise JsonBodyError(
            f"the body is not valid JSON: {exc} (JSON bodies nest at most {MAX_DEPTH} levels, "
            f"integers have at most {MAX_INTEGER_DIGITS} digits, no NaN or Infinity)"
        ) from None
