"""An SDK-only Python environment, built in seconds without a package index.

``pip install spendstream`` (no extra) gives the whole package with only the core dependencies
of ``pyproject.toml``. :func:`sdk_venv` builds the same import environment: a fresh virtualenv
(no site-packages of the test's own environment) whose one ``.pth`` file names a directory of
links to this checkout's ``spendstream`` package and to the installed distributions of the core
dependencies and their own requirements, nothing else. Anything the SDK imports beyond them
(``structlog``, ``faust``, ``clickhouse_connect``, ...) fails there as on a user's machine.
The distributions are the ones already installed here, so no index or cache is needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def core_requirements() -> list[str]:
    """``[project] dependencies`` of this checkout's pyproject.toml (the SDK's)."""
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return list(tomllib.load(handle)["project"]["dependencies"])


def closure(requirements: Iterable[str]) -> list[metadata.Distribution]:
    """The installed distributions of ``requirements`` and, recursively, of their own
    requirements (markers evaluated here, requested extras such as ``httpx[http2]`` honoured)."""
    found: dict[str, metadata.Distribution] = {}
    extras_seen: dict[str, set[str]] = {}
    pending = list(requirements)
    while pending:
        requirement = Requirement(pending.pop())
        name = canonicalize_name(requirement.name)
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        new = ({""} | requirement.extras) - extras_seen.setdefault(name, set())
        if not new:
            continue
        extras_seen[name] |= new
        found.setdefault(name, metadata.distribution(requirement.name))
        for text in found[name].requires or []:
            marker = Requirement(text).marker
            if marker is None or any(marker.evaluate({"extra": extra}) for extra in new):
                pending.append(text.split(";")[0])
    return list(found.values())


def _link_distribution(dist: metadata.Distribution, into: Path) -> None:
    """Link every top-level entry of ``dist`` (packages, modules, its .dist-info) into ``into``."""
    tops = {Path(str(file)).parts[0] for file in dist.files or ()}
    for top in sorted(tops - {"..", "__pycache__"}):
        target, link = Path(str(dist.locate_file(top))), into / top
        if target.exists() and not link.exists():
            link.symlink_to(target)


def sdk_venv(where: Path, extra_requirements: Iterable[str] = ()) -> Path:
    """A virtualenv at ``where`` with the SDK and its core dependencies (plus
    ``extra_requirements``, e.g. ``litellm``) importable, nothing more; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    links = where / "sdk-links"
    links.mkdir()
    (links / "spendstream").symlink_to(ROOT / "spendstream")
    for dist in closure([*core_requirements(), *extra_requirements]):
        _link_distribution(dist, links)
    (Path(site) / "spendstream-sdk.pth").write_text(f"{links}\n")
    return python


def clean_env(**extra: str) -> dict[str, str]:
    """An environment for the SDK venv's processes: no PYTHONPATH, no user site-packages."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    return {**env, "PYTHONNOUSERSITE": "1", **extra}
