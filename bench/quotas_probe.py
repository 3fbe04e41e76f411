"""An SDK process for the quota reaction-time bench: for each key read from stdin, ask
``admit()`` in a loop (every 0.2 ms) and print the UNIX time at which it first denied.

``python -m bench.quotas_probe BOOTSTRAP SPOOL`` prints ``ready`` once its view is fresh, then
answers each input line ``trial=N`` with ``N DENIED_AT``.
"""

from __future__ import annotations

import sys
import time

from spendstream.logs import configure_logging
from spendstream.producers import Recorder


def main() -> None:
    configure_logging("warning", "json")  # stderr: stdout carries the answers
    recorder = Recorder(
        bootstrap_servers=sys.argv[1], spool_dir=sys.argv[2], admission=True, linger_ms=0
    )
    while recorder.admit("m", app="react", trial="warmup").stale:
        time.sleep(0.05)
    print("ready", flush=True)
    for line in sys.stdin:
        trial = line.strip().split("=", 1)[1]
        deadline = time.time() + 30
        while recorder.admit("m", app="react", trial=trial).allowed and time.time() < deadline:
            time.sleep(0.0002)
        print(trial, time.time(), flush=True)
    recorder.close()


if __name__ == "__main__":
    main()
