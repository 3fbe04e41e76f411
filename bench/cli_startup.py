"""CLI cold start: wall clock and CPU of fresh ``spendstream`` processes, ``-X importtime`` totals.

``python -m bench.cli_startup`` prints JSON; ``make bench`` runs it as the ``cli`` stage. Each
command runs in a new interpreter, ``runs`` times after one warm-up (the OS file cache is warm,
as for a person typing commands), and reports min, median and max wall time, median CPU time
(user + system, less bent by other processes on a loaded machine) and the load average.

Measured, in order:

- ``--help``, ``report --help``, ``sql --help``: the start-up cost the CLI itself adds;
- ``report`` and ``sql "SELECT 1"`` straight on a ``chdb://`` directory (a small generated
  ledger): the command opens chDB in its own process;
- the same two through a running API (``spendstream serve`` on that directory, announced in the
  directory's state file as a worker announces itself): the command is an HTTP client, and its
  config (``[clickhouse] dsn`` only) is one the quick settings read takes and the command lines
  are plain forms (``spendstream.client_settings``, ``spendstream.cli.quick``: neither the
  settings model nor Typer's pydantic parsing runs).

Python modules are byte-compiled once into a private cache (``PYTHONPYCACHEPREFIX``), as an
installed package is; with ``PYTHONDONTWRITEBYTECODE`` set and no cache, every run would compile
spendstream's own sources again (~100 ms more). ``--compare DIR`` runs every command alternately
against the spendstream package in ``DIR`` (e.g. an older commit's ``git archive``), for a before
/ after ratio measured in the same minutes.

``--data DIR --database NAME`` measures instead ``report --by team`` (30 days) through an API
served on a kept ledger (e.g. a copy of the 10 M-event one: the server writes a token there),
cold runs with their p95, and the server's own answer (``GET /api/v1/spend``, warm) beside.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import percentile
from bench.reports import SPAN_DAYS
from spendstream.cli.dev import wait_healthy
from spendstream.embedded import free_port
from spendstream.sinks.access import state_file

SPENDSTREAM = (sys.executable, "-m", "spendstream")  # the config comes from $SPENDSTREAM_CONFIG
RUNS = 10
ROWS = 20_000
HELP = (("--help",), ("report", "--help"), ("sql", "--help"))
READS = (("report",), ("sql", "SELECT 1"))
TOTAL = re.compile(r"import time:\s+\d+ \|\s+(\d+) \| (\S+)$")
PREPARE = """
import sys
from datetime import UTC, datetime
from bench.reports import generate
from spendstream.sinks.client import connect
from spendstream.worker.schema import migrate
client = connect(sys.argv[1], "spendstream")
migrate(client)
generate(client, int(sys.argv[2]), datetime.now(UTC).replace(microsecond=0), int(sys.argv[3]))
"""


def cli_env(cache: Path | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every measured process: bytecode cached in ``cache``; ``None`` (a
    smoke run) keeps the bytecode the interpreter already has (a fresh private cache compiles
    every module a command imports again, ~10 CPU-s for the first command that reads)."""
    if cache is None:
        return {**os.environ, "COLUMNS": "200", **(extra or {})}
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(cache), "COLUMNS": "200", **(extra or {})}


def timed(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """One run: (wall ms, CPU ms of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(args, capture_output=True, check=True, env=env, cwd=cwd, timeout=120)
    wall = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


def figures(times: list[tuple[float, float]]) -> dict[str, Any]:
    walls = sorted(wall for wall, _ in times)
    return {
        "min_ms": round(walls[0], 1),
        "median_ms": round(statistics.median(walls), 1),
        "max_ms": round(walls[-1], 1),
        "cpu_median_ms": round(statistics.median(cpu for _, cpu in times), 1),
    }


def measure(
    args: tuple[str, ...],
    env: dict[str, str],
    cwd: Path,
    runs: int,
    compare: Path | None,
    warm: bool = True,
) -> dict[str, Any]:
    """``runs`` cold starts of ``args`` (alternating with ``compare``'s when given), after one
    warm-up run each unless ``warm`` is False (a smoke run: figures are not kept)."""
    times = alternated([*SPENDSTREAM, *args], env, cwd, runs, compare, warm)
    out: dict[str, Any] = {name: figures(found) for name, found in times.items()}
    out["load_average"] = round(os.getloadavg()[0], 2)
    if warm or args == HELP[0]:  # a smoke run traces the imports of one command only
        out["slowest_imports_ms"] = import_ms(args, env, cwd)
    return out


def alternated(
    launch: list[str],
    env: dict[str, str],
    cwd: Path,
    runs: int,
    compare: Path | None,
    warm: bool = True,
) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) ms of ``runs`` cold starts of ``launch`` as "now", alternating with the same
    command on ``compare``'s code as "compared" when given, after one warm-up run each unless
    ``warm`` is False."""
    envs = {"now": env}
    if compare is not None:  # PYTHONPATH comes before the editable install's finder
        envs["compared"] = {**env, "PYTHONPATH": str(compare)}
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in envs}
    for each in envs.values() if warm else ():
        timed(launch, each, cwd)  # warm the file and bytecode caches
    for _ in range(runs):
        for name, each in envs.items():
            times[name].append(timed(launch, each, cwd))
    return times


def import_ms(args: tuple[str, ...], env: dict[str, str], cwd: Path) -> dict[str, float]:
    """Cumulative ``-X importtime`` of the five slowest top-level imports (inflated by the
    tracing itself; a ranking, not a budget)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *SPENDSTREAM[1:], *args],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )
    top: dict[str, float] = {}
    for line in done.stderr.splitlines():
        found = TOTAL.match(line)
        if found and not line.split("|")[2].startswith("  "):  # top level only
            top[found.group(2)] = int(found.group(1)) / 1000
    return dict(sorted(top.items(), key=lambda item: -item[1])[:5])


@contextmanager
def serving(directory: Path, env: dict[str, str], cwd: Path) -> Iterator[str]:
    """``spendstream serve`` on ``directory``, announced as its worker; yields an admin token."""
    created = subprocess.run(
        [*SPENDSTREAM, "tokens", "create", "--name", "bench", "--role", "admin"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=cwd,
    )
    token = created.stdout.strip().splitlines()[-1]
    port = free_port()
    server = subprocess.Popen(
        [*SPENDSTREAM, "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
    )
    state = state_file(directory)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", server, timeout_s=120)
        state.write_text(json.dumps({"pid": server.pid, "url": f"http://127.0.0.1:{port}"}))
        yield token
    finally:
        state.unlink(missing_ok=True)
        server.terminate()
        server.wait(30)


def python_ms(env: dict[str, str], cwd: Path, runs: int) -> dict[str, Any]:
    """The floor: a bare interpreter start."""
    return figures([timed([sys.executable, "-c", "pass"], env, cwd) for _ in range(runs)])


def run(
    runs: int = RUNS,
    rows: int = ROWS,
    compare: Path | None = None,
    warm: bool = True,
    span_days: int = SPAN_DAYS,
) -> dict[str, Any]:
    """``warm`` False is a smoke run: no warm-up runs and no private bytecode cache."""
    with tempfile.TemporaryDirectory(prefix="spendstream-cli-bench-") as scratch:
        work = Path(scratch)
        directory = work / "clickhouse"
        config = work / "spendstream.toml"
        config.write_text(f'[clickhouse]\ndsn = "chdb://{directory}"\n')
        cache = work / "pycache" if warm else None
        env = cli_env(cache, {"SPENDSTREAM_CONFIG": str(config)})
        out: dict[str, Any] = {"runs": runs, "ledger_rows": rows}
        out["python -c pass"] = python_ms(env, work, runs)
        for args in HELP:
            out[" ".join(args)] = measure(args, env, work, runs, compare, warm)
        root = str(Path(__file__).resolve().parent.parent)
        prepare = [sys.executable, "-c", PREPARE, f"chdb://{directory}", str(rows), str(span_days)]
        subprocess.run(
            prepare, check=True, env={**env, "PYTHONPATH": root}, timeout=600, capture_output=True
        )
        for args in READS:
            out[f"{' '.join(args)} (chdb:// directly)"] = measure(
                args, env, work, runs, compare, warm
            )
        with serving(directory, env, work) as token:
            through = {**env, "SPENDSTREAM_TOKEN": token}
            for args in READS:
                name = f"{' '.join(args)} (through the API)"
                out[name] = measure(args, through, work, runs, compare, warm)
    return out


def p95(values: list[float]) -> float:
    return round(percentile(values, 0.95), 1)


def kept_ledger(data: Path, database: str, runs: int, compare: Path | None) -> dict[str, Any]:
    """``report --by team`` through an API on the kept ledger ``data``: cold runs (wall and CPU,
    p50 / p95) and the server's answer alone."""
    import urllib.request

    with tempfile.TemporaryDirectory(prefix="spendstream-cli-bench-") as scratch:
        work = Path(scratch)
        config = work / "spendstream.toml"
        config.write_text(f'[clickhouse]\ndsn = "chdb://{data}"\ndatabase = "{database}"\n')
        env = cli_env(work / "pycache", {"SPENDSTREAM_CONFIG": str(config)})
        args = ("report", "--by", "team", "--since", "30d")
        with serving(data, env, work) as token:
            through = {**env, "SPENDSTREAM_TOKEN": token}
            times = alternated([*SPENDSTREAM, *args], through, work, runs, compare)
            url = json.loads(state_file(data).read_text())["url"]
            asked = urllib.request.Request(
                f"{url}/api/v1/spend?by=team&since=30d",
                headers={"Authorization": f"Bearer {token}"},
            )
            answers = []
            for _ in range(runs):
                started = time.perf_counter()
                with urllib.request.urlopen(asked, timeout=60) as answer:
                    answer.read()
                answers.append((time.perf_counter() - started) * 1000)
    out: dict[str, Any] = {"command": " ".join(args), "runs": runs}
    for name, found in times.items():
        out[name] = figures(found) | {
            "p95_ms": p95([wall for wall, _ in found]),
            "cpu_p95_ms": p95([cpu for _, cpu in found]),
        }
    out["server_answer"] = {
        "median_ms": round(statistics.median(answers), 1),
        "p95_ms": p95(answers),
    }
    out["load_average"] = round(os.getloadavg()[0], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--rows", type=int, default=ROWS, help="generated ledger rows")
    parser.add_argument("--compare", type=Path, help="a directory holding another spendstream/")
    parser.add_argument("--data", type=Path, help="a kept chDB directory: report through its API")
    parser.add_argument("--database", default="spendstream", help="the kept ledger's database")
    args = parser.parse_args()
    if args.data is not None:
        found = kept_ledger(args.data.resolve(), args.database, args.runs, args.compare)
    else:
        found = run(args.runs, args.rows, args.compare)
    print(json.dumps(found, indent=2))


if __name__ == "__main__":
    main()
