"""The documentation builds and its examples run.

- The MkDocs site builds in strict mode (broken links, pages missing from the navigation and
  missing anchors fail), with its generated reference pages.
- Every code block marked ``<!-- runnable: python -->`` or ``<!-- runnable: shell -->`` in
  README.md and docs/ runs against a real broker and worker: the dev addresses in the text
  (``127.0.0.1:9092``) are replaced by the test's, and shell examples get ``$T`` (an admin
  token) and ``$API`` (the worker's API base URL), as the docs tell readers to set them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from spendstream.anomalies import load_anomalies
from spendstream.config import load_settings
from spendstream.embedded import TansuBroker
from spendstream.quotas.config import load_quotas
from tests.support.worker import WorkerProcess, wait_until

ROOT = Path(__file__).resolve().parent.parent
RUNNABLE = re.compile(r"<!-- runnable: (python|shell) -->\n```[a-z]*\n(.*?)```", re.S)
DEV_BROKER = "127.0.0.1:9092"


def runnable_examples() -> list[tuple[str, str, str]]:
    """``(where, language, code)`` for every marked block."""
    found = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        for index, match in enumerate(RUNNABLE.finditer(path.read_text())):
            found.append((f"{path.relative_to(ROOT)}#{index}", match.group(1), match.group(2)))
    return found


def test_the_site_builds_in_strict_mode(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    done = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for page in ("reference/configuration", "reference/cli", "reference/event-schema"):
        assert (tmp_path / "site" / page / "index.html").exists(), page


def test_there_are_examples_to_run() -> None:
    languages = {language for _, language, _ in runnable_examples()}
    assert languages == {"python", "shell"}


@pytest.mark.integration
def test_readme_and_docs_examples_run(
    tmp_path: Path, broker: TansuBroker, start_worker: Callable[..., WorkerProcess]
) -> None:
    worker = start_worker()
    env = {
        **os.environ,
        "T": worker.admin_token,
        "API": f"{worker.url}/api/v1",
        "XDG_STATE_HOME": str(tmp_path / "state"),  # the SDK's spool stays in the test's dir
    }
    before = int(worker.scalar("SELECT count() FROM ledger FINAL"))
    published = 0
    for where, language, code in runnable_examples():
        code = code.replace(DEV_BROKER, broker.bootstrap_servers)
        if language == "python":
            command = [sys.executable, "-c", code]
        else:  # -f: an HTTP error fails the example
            command = ["bash", "-euo", "pipefail", "-c", code.replace("curl ", "curl -fsS ")]
        done = subprocess.run(
            command, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == 0, f"{where} failed:\n{code}\n{done.stdout}\n{done.stderr}"
        published += code.count("recorder.record(")
    assert published > 0
    wait_until(
        lambda: int(worker.scalar("SELECT count() FROM ledger FINAL")) >= before + published,
        60,
        "the events the examples recorded",
    )


def test_the_readme_configuration_examples_load(tmp_path: Path) -> None:
    """The tour's `spendstream.toml` steps, pasted together, are a valid configuration."""
    readme = (ROOT / "README.md").read_text()
    blocks = [textwrap.dedent(b) for b in re.findall(r"```toml\n(.*?)```", readme, re.S)]
    assert len(blocks) >= 2
    config = tmp_path / "spendstream.toml"
    config.write_text("\n".join(blocks))
    settings = load_settings(config)
    quotas = load_quotas(settings, config)
    assert [b.name for b in quotas.alerting.budgets] == ["search-month"]
    assert [q.name for q in quotas.quotas] == ["support-user-daily"]
    rules = load_anomalies(settings, quotas.alerting, config)
    assert [(r.name, r.group_by) for r in rules] == [("team-spend", ["team"])]
