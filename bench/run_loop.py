"""One SDK process of ``bench.run_quota``: a looping agent step inside one run until its quota
stops it.

``python -m bench.run_loop BOOTSTRAP SPOOL --run-id R --agent A --pause 0.05 --start-at T``

Waits for a fresh admission view, sleeps until the UNIX time ``T`` (so several processes start
together), then loops ``guard()`` + ``record()`` inside ``recorder.run(run_id=R)`` every
``--pause`` seconds until ``QuotaExceeded`` (or ``--max-seconds``), and prints one JSON line:
the steps it made, its own running cost, and whether (and why) it was stopped.
"""

from __future__ import annotations

import argparse
import json
import time

from spendstream.logs import configure_logging
from spendstream.producers import QuotaExceeded
from tests.support.admission_load import fresh_recorder

MODEL = "gpt-4o"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("bootstrap")
    parser.add_argument("spool")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--agent", required=True)
    parser.add_argument("--pause", type=float, default=0.05)
    parser.add_argument("--start-at", type=float, default=0.0)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--input-tokens", type=int, default=2_000)
    args = parser.parse_args()
    configure_logging("warning", "json")  # stderr: stdout carries the result line
    recorder = fresh_recorder(args.bootstrap, args.spool, MODEL, {"agent": args.agent}, 10.0)
    time.sleep(max(0.0, args.start_at - time.time()))
    stop_at = time.time() + args.max_seconds
    result: dict[str, object] = {"stopped": False, "reason": ""}
    with recorder.run(agent=args.agent, run_id=args.run_id) as run:
        try:
            while time.time() < stop_at:
                with recorder.guard(MODEL):
                    recorder.record(
                        provider="openai",
                        model=MODEL,
                        input_tokens=args.input_tokens,
                        output_tokens=args.input_tokens // 10,
                    )
                time.sleep(args.pause)
        except QuotaExceeded as exceeded:
            result.update(stopped=True, reason=exceeded.decision.reason, at=time.time())
        result.update(steps=run.steps, cost=str(run.cost))
    recorder.flush(30)
    recorder.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
