"""Running the real ``spendstream`` command line in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def spendstream(
    *args: str, cwd: Path, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m spendstream ARGS`` in ``cwd`` (``env`` added to the environment); output
    captured as text, wide terminal."""
    return subprocess.run(
        [sys.executable, "-m", "spendstream", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "300", **(env or {})},
    )
