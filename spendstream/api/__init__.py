"""The HTTP API (``/api/v1``): an app factory over its dependencies, served by uvicorn in the
worker (its own thread and event loop) or standalone (``spendstream serve``).

Every route but ``/healthz`` requires a token (:mod:`spendstream.auth`); every query a caller
runs is restricted to the caller's teams in the SQL the server writes.
"""

from spendstream.api.app import create_api
from spendstream.api.common import ApiDeps

__all__ = ["ApiDeps", "create_api"]
