"""The SDK in apps with several processes, against a real Tansu broker: events recorded in
``multiprocessing`` children started by fork (which end with ``os._exit``, skipping ``atexit``),
and spool slots that dead processes left, replayed by the next Recorder on its own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from spendstream.embedded import TansuBroker, free_port
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


# Broker unreachable: a forked child records and closes (its events wait in its slot, slot-1),
# then the parent does the same (the base slot). Both processes are gone afterwards.
STRANDING_APP = """
import json, os, sys
from spendstream.producers import Recorder
bootstrap, topic, spool_dir = sys.argv[1:]
recorder = Recorder(bootstrap_servers=bootstrap, topic=topic, spool_dir=spool_dir,
                    connect_timeout_ms=300)
parent = [recorder.record(provider="openai", model="m", input_tokens=i) for i in range(100)]
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    child = [recorder.record(provider="openai", model="m", input_tokens=i) for i in range(200)]
    slot = recorder.stats().spool_dir
    recorder.close()
    os.write(write, json.dumps({"ids": child, "slot": slot}).encode())
    os._exit(0)
os.close(write)
with os.fdopen(read, "rb") as pipe:
    child = json.loads(pipe.read())  # until the child's exit closes its end
assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
recorder.close()
print(json.dumps({"parent": parent, "child": child["ids"], "child_slot": child["slot"],
                  "parent_slot": recorder.stats().spool_dir}))
"""


def test_a_later_recorder_replays_slots_that_dead_processes_left(
    tmp_path: Path, broker: TansuBroker
) -> None:
    spool_dir, topic = tmp_path / "spool", "stranded"
    result = subprocess.run(
        [sys.executable, "-c", STRANDING_APP, f"127.0.0.1:{free_port()}", topic, str(spool_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["parent_slot"], report["child_slot"]) == (
        str(spool_dir),
        str(spool_dir / "slot-1"),
    )
    assert slots_with_records(spool_dir) == [spool_dir, spool_dir / "slot-1"]
    expected = set(report["parent"]) | set(report["child"])
    assert len(expected) == 300
    # One Recorder, alone: it takes the base slot and replays it, and slot-1 too.
    with Recorder(
        bootstrap_servers=broker.bootstrap_servers, topic=topic, spool_dir=str(spool_dir)
    ) as recorder:
        found = {event_id for _, event_id in consume(broker.bootstrap_servers, topic, 300)}
        assert recorder.flush(30)
    assert expected <= found, f"{len(expected - found)} of the 300 spooled events not replayed"
    assert recorder.stats().replayed >= 300
    assert slots_with_records(spool_dir) == []
