"""Every SDK entry point, run inside an SDK-only virtualenv by tests/test_sdk_install.py.

Usage: ``python sdk_probe.py BOOTSTRAP SPOOL_DIR [litellm]``. Imports nothing from ``tests``
(not on the path there). Prints one JSON object with what each entry point returned; any
exception (a missing module first of all) ends it with a traceback and a non-zero status.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys
import time
from typing import Any

WORKER_ONLY = ("structlog", "faust", "clickhouse_connect", "typer", "fastapi", "apprise", "chdb")
OPENAI = {
    "model": "gpt-4o-2024-08-06",
    "usage": {
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "prompt_tokens_details": {"cached_tokens": 20},
    },
}
ANTHROPIC = {
    "model": "claude-sonnet-4-5",
    "usage": {"input_tokens": 50, "output_tokens": 5, "cache_read_input_tokens": 7},
}


def core(bootstrap: str, spool: str) -> dict[str, Any]:
    from spendstream.producers import QuotaExceeded, Recorder, extract_usage, prompt_hash, tags

    out: dict[str, Any] = {
        "worker_modules_present": [m for m in WORKER_ONLY if importlib.util.find_spec(m)],
        "openai_usage": extract_usage(OPENAI).model_dump(),
        "anthropic_usage": extract_usage(ANTHROPIC, "anthropic").model_dump(),
        "prompt_hash": prompt_hash([{"role": "user", "content": "hi"}]),
    }
    options = {"bootstrap_servers": bootstrap, "spool_dir": spool, "default_tags": {"app": "sdk"}}
    with Recorder(admission=True, **options) as recorder:
        with tags(team="support", user="bob"):
            out["recorded"] = recorder.record(provider="openai", model="gpt-4o", usage=OPENAI)
        out["recorded_anthropic"] = recorder.record(
            provider="anthropic", model="claude-sonnet-4-5", usage=ANTHROPIC, tags={"team": "x"}
        )
        out["outcome"] = recorder.outcome("ticket_resolved", value="2.5", team="support")
        deadline = time.monotonic() + 60  # the test published a snapshot: wait for the feed
        while (bob := recorder.admit("gpt-4o", 100, team="support", user="bob")).stale:
            assert time.monotonic() < deadline, "no quota snapshot from the decisions topic"
            time.sleep(0.2)
        out["bob"] = {"allowed": bob.allowed, "quota": bob.quota, "key": bob.key}
        amy = recorder.admit("gpt-4o", 100, team="support", user="amy")
        out["amy"] = {"allowed": amy.allowed, "quota": amy.quota}
        try:
            with recorder.guard("gpt-4o", team="support", user="bob"):
                out["guard"] = "entered"
        except QuotaExceeded as refused:
            out["guard"] = f"refused by {refused.decision.quota}"
        out["flushed"] = recorder.flush(30)
    return out


def with_litellm(bootstrap: str, spool: str) -> dict[str, Any]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no download at import
    import litellm

    from spendstream.producers import Recorder
    from spendstream.producers.litellm_callback import SpendstreamCallback

    recorder = Recorder(bootstrap_servers=bootstrap, spool_dir=spool)
    litellm.callbacks = [SpendstreamCallback(recorder)]
    response = litellm.ModelResponse(
        model="gpt-4o-mini",
        choices=[{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        usage=litellm.Usage(prompt_tokens=40, completion_tokens=4, total_tokens=44),
    )

    async def call() -> None:
        await litellm.acompletion(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            mock_response=response,
            metadata={"user_api_key_team_alias": "search"},
        )
        deadline = time.monotonic() + 30
        while recorder.stats().recorded < 1:
            assert time.monotonic() < deadline, "LiteLLM did not call the callback"
            await asyncio.sleep(0.05)

    asyncio.run(call())
    flushed = recorder.flush(30)
    recorder.close()
    return {"litellm_recorded": recorder.stats().recorded, "flushed": flushed}


if __name__ == "__main__":
    bootstrap, spool = sys.argv[1], sys.argv[2]
    probe = with_litellm if sys.argv[3:] == ["litellm"] else core
    print(json.dumps(probe(bootstrap, spool), default=str))
