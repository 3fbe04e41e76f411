"""Optional py-spy profiling of the benchmarked worker (``python -m bench --profile``).

``py-spy record -f raw`` writes collapsed stacks (``frame;frame;… count``); :func:`hot_frames`
turns them into the frames with the most samples, by self time and by inclusive time.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    """The venv's py-spy, else one on PATH (None: profiling unavailable)."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start_recording(pid: int, out: Path, rate: int = 50) -> subprocess.Popen[bytes] | None:
    """Sample ``pid`` until it exits, only threads holding the GIL (``--gil``: where the
    Python-bound time goes); raw stacks to ``out``."""
    binary = py_spy()
    if binary is None:
        return None
    log = out.with_suffix(".log").open("wb")
    return subprocess.Popen(
        [binary, "record", "--gil", "-p", str(pid), "-f", "raw", "-r", str(rate), "-o", str(out)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _name(frame: str) -> str:
    """``function (path/to/module.py:123)`` → ``function (module.py)``: lines merged."""
    function, _, where = frame.partition(" (")
    return f"{function} ({Path(where.split(':')[0]).name})" if where else function


def hot_frames(raw: Path, top: int = 15) -> dict[str, Any]:
    """The ``top`` frames by self and by inclusive share of the samples in ``raw``."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_name(frame) for frame in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    share = 100 / total if total else 0.0
    return {
        "samples": total,
        "self_pct": [[frame, round(n * share, 1)] for frame, n in own.most_common(top)],
        "inclusive_pct": [[frame, round(n * share, 1)] for frame, n in inclusive.most_common(top)],
    }
