"""A SIGTERM that reaches the worker after its API answers health but before Faust installs its
signal handlers stops it cleanly (exit 0) instead of killing it (exit -15): a test that stopped
a worker it had just seen healthy failed on CI that way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from spendstream.embedded import TansuBroker

pytestmark = pytest.mark.integration

# Faust on a real broker, the SIGTERM sent while only PendingStop watches (as the worker's API
# thread is up and Faust is not yet started).
EARLY_SIGTERM = """
import os, signal, sys
import faust
from spendstream.worker.stop_signals import FaustWorker, PendingStop

app = faust.App("stop-signals", broker="kafka://" + sys.argv[1], datadir=sys.argv[2],
                web_enabled=False, broker_session_timeout=6, broker_heartbeat_interval=1)
pending = PendingStop()
pending.watch()
os.kill(os.getpid(), signal.SIGTERM)
print("survived the early signal", flush=True)
FaustWorker(app, pending=pending, loglevel="warning", quiet=True,
            override_logging=False).execute_from_commandline()
"""


def test_a_sigterm_before_faust_is_up_stops_the_worker_cleanly(
    tmp_path: Path, broker: TansuBroker
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", EARLY_SIGTERM, broker.bootstrap_servers, str(tmp_path / "faust")],
        capture_output=True,
        text=True,
        timeout=120,  # without the noted signal handed to Faust, the worker runs for ever
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "survived the early signal" in done.stdout
