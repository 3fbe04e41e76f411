"""A FastAPI app served by uvicorn on loopback for testing feature routers over real HTTP, with a
small bearer-token :class:`~spendstream.auth.http.Authenticator` (the real API builds its own)."""

from __future__ import annotations

import threading
from collections.abc import Mapping

import uvicorn
from fastapi import APIRouter, FastAPI, HTTPException, Request

from spendstream.api.errors import install_error_mapping
from spendstream.auth.roles import Principal
from spendstream.embedded import free_port
from tests.support.worker import wait_until


class TokenAuthenticator:
    """``Authorization: Bearer <token>`` looked up in a fixed table."""

    def __init__(self, tokens: Mapping[str, Principal]) -> None:
        self.tokens = dict(tokens)

    def authenticate(self, request: Request) -> Principal:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        principal = self.tokens.get(token) if scheme.lower() == "bearer" else None
        if principal is None:
            raise HTTPException(status_code=401, detail="missing or unknown bearer token")
        return principal


class ServedApp:
    """``routers`` mounted on a FastAPI app, served on 127.0.0.1 in a thread."""

    def __init__(self, authenticator: TokenAuthenticator, *routers: APIRouter) -> None:
        app = FastAPI()
        app.state.authenticator = authenticator
        install_error_mapping(app)  # as create_api does
        for router in routers:
            app.include_router(router)
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServedApp:
        self.thread.start()
        wait_until(lambda: self.server.started, 30, "uvicorn started")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)
