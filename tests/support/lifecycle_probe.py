"""Run a real worker in this process, use it, stop it with SIGTERM, then report what is left.

``python -m tests.support.lifecycle_probe CONFIG`` prints one JSON object: the threads still
alive, the sockets still open (compared with before the worker), whether a second chDB data
directory can be opened (chDB refuses another directory while any client of the first is open)
and what the worker answered while it ran. Run as a process of its own so that no other test's
threads, sockets or chDB clients are counted.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from spendstream.config import load_settings
from spendstream.events import UsageEvent
from spendstream.sinks.client import connect
from spendstream.worker.build import run_worker


def open_sockets() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


def use_then_stop(url: str, token_file: Path, seen: dict[str, Any]) -> None:
    """Wait for the API, read /metrics with the admin token, ingest one event, then SIGTERM."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    seen["metrics"] = httpx.get(f"{url}/metrics", headers=headers, timeout=10).status_code
    event = UsageEvent(provider="openai", model="gpt-4o-mini", input_tokens=10)
    answer = httpx.post(
        f"{url}/api/v1/events",
        headers={**headers, "Content-Type": "application/json"},
        content=event.to_json_bytes(),
        timeout=30,
    )
    seen["ingest"] = answer.status_code
    os.kill(os.getpid(), signal.SIGTERM)


def main(config: Path) -> None:
    settings = load_settings(config)
    sockets_before = open_sockets()
    seen: dict[str, Any] = {}
    url = f"http://{settings.worker.web_host}:{settings.worker.web_port}"
    token_file = Path(settings.api.admin_token_file or "")
    user = threading.Thread(target=use_then_stop, args=(url, token_file, seen), name="probe")
    user.start()
    started = time.monotonic()
    run_worker(settings)
    seen["run_s"] = round(time.monotonic() - started, 1)
    user.join()
    time.sleep(0.5)  # a closed socket's descriptor is released by the thread that owned it
    seen["threads"] = sorted(
        t.name for t in threading.enumerate() if t is not threading.current_thread()
    )
    seen["sockets"] = len(open_sockets() - sockets_before)
    try:
        other = connect(f"chdb://{config.parent / 'another-directory'}")
        other.query("SELECT 1")
        other.close()
        seen["second_directory"] = "opened"
    except Exception as exc:  # chDB: a client of the worker's directory is still open
        seen["second_directory"] = f"{type(exc).__name__}: {exc}"[:300]
    print(json.dumps(seen), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
