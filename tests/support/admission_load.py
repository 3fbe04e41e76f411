"""An SDK process for quota tests and benchmarks: threads that admit, then record, in a loop.

``python -m tests.support.admission_load BOOTSTRAP SPOOL --threads 4 --seconds 10 --pause 0.05
--model M --input-tokens N --tag team=support --tag user=bob [--estimated-tokens N]``

Waits until its admission view is fresh (a snapshot heard), then runs and prints one JSON line:
calls allowed and recorded, calls denied, the UNIX time of the first denial, the last reason.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Any

from spendstream.logs import configure_logging
from spendstream.producers import Recorder


def fresh_recorder(
    bootstrap: str, spool: str, model: str, tags: dict[str, Any], stale_after_s: float = 5.0
) -> Recorder:
    """A recorder with admission, once its view is fresh (a snapshot heard; 60 s at most)."""
    recorder = Recorder(
        bootstrap_servers=bootstrap,
        spool_dir=spool,
        admission=True,
        admission_stale_after_s=stale_after_s,
        linger_ms=5,
    )
    deadline = time.time() + 60
    while recorder.admit(model, **tags).stale and time.time() < deadline:
        time.sleep(0.05)
    return recorder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("spool")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pause", type=float, default=0.05)
    parser.add_argument("--provider", default="anthropic")
    parser.add_argument("--model", default="claude-sonnet-4-5")
    parser.add_argument("--input-tokens", type=int, default=400)
    parser.add_argument("--output-tokens", type=int, default=40)
    parser.add_argument("--estimated-tokens", type=int, default=0)
    parser.add_argument("--tag", action="append", default=[])
    args = parser.parse_args()
    configure_logging("warning", "json")  # stderr: stdout carries the result line
    tags = dict(item.split("=", 1) for item in args.tag)
    recorder = fresh_recorder(args.bootstrap, args.spool, args.model, tags)
    stats: dict[str, Any] = {"allowed": 0, "denied": 0, "first_denied": None, "reason": ""}
    lock = threading.Lock()
    stop_at = time.time() + args.seconds

    def loop() -> None:
        while time.time() < stop_at:
            decision = recorder.admit(
                args.model, args.estimated_tokens, provider=args.provider, **tags
            )
            if decision.allowed:
                recorder.record(
                    provider=args.provider,
                    model=args.model,
                    input_tokens=args.input_tokens,
                    output_tokens=args.output_tokens,
                    tags=tags,
                )
            with lock:
                if decision.allowed:
                    stats["allowed"] += 1
                else:
                    stats["denied"] += 1
                    stats["first_denied"] = stats["first_denied"] or time.time()
                    stats["reason"] = decision.reason
            time.sleep(args.pause)

    threads = [threading.Thread(target=loop) for _ in range(args.threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    recorder.flush(30)
    recorder.close()
    print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
