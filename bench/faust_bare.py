"""A bare Faust agent (``take_events``, no processing): the second reference for the worker.

Run as a subprocess: ``python -m bench.faust_bare BOOTSTRAP TOPIC COUNT OUT_JSON``. It uses the
worker's Faust app settings (``stream.app.create_app``) and batch size and window and writes
``{"rate", "first_batch", "first_at", "done_at"}`` to OUT_JSON once COUNT events arrived; the
parent then stops it with SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import uuid
from pathlib import Path
from typing import cast

import faust

from bench.common import steady_rate
from spendstream.config import KafkaSettings, Settings, WorkerSettings
from spendstream.embedded import free_port
from spendstream.stream.app import create_app


def build(bootstrap: str, topic: str, count: int, out: Path) -> faust.App:
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap),
        worker=WorkerSettings(app_id=f"bench-bare-{uuid.uuid4().hex[:8]}", web_port=free_port()),
    )
    worker = settings.worker
    app = create_app(settings)  # the worker's own Faust settings
    source = app.topic(topic, value_serializer="raw")
    started_at = time.time()

    @app.agent(source)
    async def count_events(stream: faust.StreamT[bytes]) -> None:
        seen, first_at, first_batch = 0, 0.0, 0
        batches = cast(faust.Stream[bytes], stream).take_events(
            worker.batch_size, within=worker.batch_within_s
        )
        async for events in batches:
            seen += len(events)
            if not first_at:
                first_at, first_batch = time.time(), len(events)
            if seen >= count:
                done_at = time.time()
                result = {
                    "rate": steady_rate(seen, (first_at, first_batch), done_at, started_at),
                    "first_batch": first_batch,
                    "first_at": first_at,
                    "done_at": done_at,
                }
                partial = out.with_suffix(".tmp")
                partial.write_text(json.dumps(result))
                partial.replace(out)  # atomic: the parent never reads half a file

    return app


def main() -> None:
    bootstrap, topic, count, out = sys.argv[1:5]
    app = build(bootstrap, topic, int(count), Path(out))
    worker = faust.Worker(app, loglevel="warning", quiet=True)
    with contextlib.suppress(SystemExit):  # Faust exits the process when stopped
        worker.execute_from_commandline()


if __name__ == "__main__":
    main()
