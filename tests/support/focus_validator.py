"""The FinOps Foundation's ``focus-validator`` (PyPI 1.0.0: FOCUS 1.0 rules) in its own
virtualenv, ``.venv-focus`` at the repository root (gitignored), built on first use from
``focus-validator.txt`` (``make focus-validator`` builds the same; a file lock lets parallel
test workers share one build).

The validator's "1.0" rule set predates FOCUS 1.0's final column names in five rules;
:data:`CORRECTIONS` rewrites exactly those (each must match, so a new validator release fails
loudly instead of silently running other rules) and nothing else:

- ``Provider``, ``Publisher``, ``InvoiceIssuer``, ``ResourceID`` are the 1.0-preview IDs; FOCUS
  1.0 (``specification/columns/provider.md`` etc. at tag ``v1.0``) names them ``ProviderName``,
  ``PublisherName``, ``InvoiceIssuerName``, ``ResourceId``.
- ``SkuPriceId_Nullable`` queries ``ChargeType``, renamed ``ChargeCategory`` in 1.0 (the
  unmodified rule fails on any 1.0 file with ``KeyError('ChargeType')``).

It runs with the package directory as its working directory: its currency-code check reads the
ISO 4217 list it ships through a relative path.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-focus"
REQUIREMENTS = Path(__file__).with_name("focus-validator.txt")
STAMP = VENV / ".installed"

RENAMED = {
    "Provider": "ProviderName",
    "Publisher": "PublisherName",
    "InvoiceIssuer": "InvoiceIssuerName",
    "ResourceID": "ResourceId",
}
CORRECTIONS: dict[str, tuple[str, str]] = {
    **{
        f"{old}_{check}.yaml": (f"column_id: {old}\n", f"column_id: {new}\n")
        for old, new in RENAMED.items()
        for check in ("Required", "IsString", "NotNull" if old != "ResourceID" else "Nullable")
    },
    "SkuPriceId_Nullable.yaml": ("WHEN ChargeType IN", "WHEN ChargeCategory IN"),
}


def _digest() -> str:
    return hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()


def ensure_validator() -> Path:
    """The validator's virtualenv, built (pip, from the registry) unless already current."""
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with (ROOT / ".venv-focus.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not STAMP.exists() or STAMP.read_text() != _digest():
            shutil.rmtree(VENV, ignore_errors=True)
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", str(VENV)], check=True)
            pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
            subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
            STAMP.write_text(_digest())
    return VENV


def package_dir(env: Path) -> Path:
    found = sorted(env.glob("lib/python*/site-packages/focus_validator"))
    if not found:
        raise FileNotFoundError(f"no focus_validator package in {env}")
    return found[0]


def corrected_rules(env: Path, destination: Path) -> Path:
    """The validator's own FOCUS 1.0 rules with :data:`CORRECTIONS` applied, as a rule-set
    directory (``destination/1.0/*.yaml``)."""
    source = package_dir(env) / "rules" / "version_sets" / "1.0"
    target = destination / "1.0"
    shutil.copytree(source, target)
    for name, (old, new) in CORRECTIONS.items():
        path = target / name
        text = path.read_text()
        if old not in text:
            raise AssertionError(f"validator rule {name} changed: {old!r} not found")
        path.write_text(text.replace(old, new))
    return destination


@dataclass(frozen=True)
class Report:
    """The validator's verdict: every check it ran, and those that failed or errored."""

    checks: tuple[str, ...]
    failed: tuple[str, ...]
    skipped: int


def validate(data: Path, work: Path, corrected: bool = True) -> Report:
    """Run the validator (FOCUS 1.0; its rules with :data:`CORRECTIONS`, or as shipped) on
    ``data``; its JUnit report parsed."""
    env = ensure_validator()
    shipped = package_dir(env) / "rules" / "version_sets"
    rules = corrected_rules(env, work / "rules") if corrected else shipped
    out = work / "validator.xml"
    subprocess.run(
        [
            str(env / "bin" / "focus-validator"),
            "--data-file",
            str(data),
            "--validate-version",
            "1.0",
            "--rule-set-path",
            str(rules),
            "--output-type",
            "unittest",
            "--output-destination",
            str(out),
        ],
        check=True,
        cwd=package_dir(env).parent,
    )
    root = ET.parse(out).getroot()
    checks, failed = [], []
    for case in root.iter("testcase"):
        name = case.get("name", "")
        checks.append(name)
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(name)
    return Report(tuple(checks), tuple(failed), int(root.get("skipped", "0")))
