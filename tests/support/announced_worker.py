"""A stand-in for a worker's API that the CLI finds as it finds a worker: the two routes `report`
and `sql` call, served in the test process and announced in the chDB directory's state file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, HTTPException, Request

from tests.support.http_app import ServedApp, TokenAuthenticator

# `sql` queries the stand-in refuses as the worker's API would: (status, detail).
REFUSALS = {"refuse": (400, "refused: function file is not allowed"), "busy": (503, "busy")}
REFUSALS["boom"] = (500, "internal error (error id 0123)")


def worker_stand_in() -> APIRouter:
    """The two routes `report` and `sql` call, answering as the worker's API does."""
    router = APIRouter(prefix="/api/v1")

    @router.get("/spend")
    async def spend(request: Request) -> dict[str, Any]:
        by = request.query_params.getlist("by")
        if "bad" in by:
            raise HTTPException(400, "unknown dimension 'bad'")
        columns = [*by, "cost_usd", "asked"]
        return {"columns": columns, "rows": [[*["search"] * len(by), "12.5", str(request.url)]]}

    @router.post("/sql")
    async def sql(request: Request) -> dict[str, Any]:
        body = await request.json()
        if body["query"] in REFUSALS:
            raise HTTPException(*REFUSALS[body["query"]])
        return {"columns": ["asked"], "rows": [[body["query"]]]}

    return router


@pytest.fixture
def announced_worker(tmp_path: Path) -> Iterator[Path]:
    """A directory whose chDB data a live "worker" owns (this test process, serving the stand-in
    routes), announced in the state file as ``spendstream worker`` announces itself."""
    directory = tmp_path / "clickhouse"
    (tmp_path / "spendstream.toml").write_text(f'[clickhouse]\ndsn = "chdb://{directory}"\n')
    with ServedApp(TokenAuthenticator({}), worker_stand_in()) as served:
        state = tmp_path / "clickhouse.worker.json"
        state.write_text(json.dumps({"pid": os.getpid(), "url": served.url}))
        yield tmp_path
