"""The SDK in apps with several processes, against a real Tansu broker: events recorded in
``multiprocessing`` children started by fork (which end with ``os._exit``, skipping ``atexit``),
and spool slots that dead processes left, replayed by the next Recorder on its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from spendstream.embedded import TansuBroker
from spendstream.producers import Recorder
from tests.support.topic import consume

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parent.parent

# Children that record and return without close() or flush(): a Process using the Recorder the
# parent created before the fork, a Process creating its own, and Pool workers using the
# parent's, the pool closed and joined as docs/sdk.md asks. One more pool task, under a pool
# that `with` terminates, flushes itself (the documented way for that case).
MULTIPROCESSING_APP = """
import json, multiprocessing, os, sys
from spendstream.producers import Recorder
bootstrap, topic, spool_dir, out = sys.argv[1:]
ctx = multiprocessing.get_context("fork")
inherited = Recorder(bootstrap_servers=bootstrap, topic=topic, spool_dir=spool_dir)

def record(recorder, who, count):
    ids = [recorder.record(provider="openai", model="gpt-4o", input_tokens=i, tags={"who": who})
           for i in range(count)]
    with open(os.path.join(out, f"{who}.json"), "w") as handle:
        json.dump({"ids": ids, "pid": os.getpid()}, handle)

def own_recorder(who):
    record(Recorder(bootstrap_servers=bootstrap, topic=topic, spool_dir=spool_dir), who, 300)

def pool_task(who):
    record(inherited, who, 200)

def flushing_task(who):
    record(inherited, who, 200)
    assert inherited.flush(60)

children = [ctx.Process(target=record, args=(inherited, "process-inherited", 300)),
            ctx.Process(target=own_recorder, args=("process-own",))]
for child in children:
    child.start()
for child in children:
    child.join()
with ctx.Pool(2) as pool:
    pool.map(pool_task, [f"pool-{n}" for n in range(4)], chunksize=1)
    pool.close()
    pool.join()
with ctx.Pool(1) as pool:
    pool.map(flushing_task, ["pool-flushed"])
assert [child.exitcode for child in children] == [0, 0]
inherited.close()
"""


def run_script(script: str, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr


def slots_with_records(spool_dir: Path) -> list[Path]:
    return sorted({path.parent for path in spool_dir.rglob("segment-*.spool")})


def test_multiprocessing_fork_children_deliver_what_they_recorded(
    tmp_path: Path, broker: TansuBroker
) -> None:
    out, spool_dir, topic = tmp_path / "out", tmp_path / "spool", "mp"
    out.mkdir()
    run_script(MULTIPROCESSING_APP, broker.bootstrap_servers, topic, str(spool_dir), str(out))
    reports = {path.stem: json.loads(path.read_text()) for path in out.glob("*.json")}
    assert sorted(reports) == sorted(
        ["process-inherited", "process-own", "pool-flushed", *[f"pool-{n}" for n in range(4)]]
    )
    recorded = [event_id for report in reports.values() for event_id in report["ids"]]
    assert None not in recorded and len(set(recorded)) == 300 * 2 + 200 * 5
    # A child that could not deliver before its exit (on a loaded machine) spooled the rest in
    # its slot: replay each slot explicitly, so this test depends on the exit hook only.
    for slot in slots_with_records(spool_dir):
        with Recorder(bootstrap_servers=broker.bootstrap_servers, topic=topic, spool_dir=str(slot)):
            pass
    found = {event_id for _, event_id in consume(broker.bootstrap_servers, topic, len(recorded))}
    missing = {who: sum(i not in found for i in r["ids"]) for who, r in reports.items()}
    assert set(recorded) <= found, f"lost per child: {missing}"
