"""`spendstream prices compare FILE` against a generated LiteLLM-format price map.

The map is generated from the raw catalog TOML (per-token JSON floats, as LiteLLM publishes
them), then a few rates are changed: exactly those must be listed, nothing else.
"""

from __future__ import annotations

import json
import tomllib
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from spendstream.cli.prices import prices_app
from spendstream.pricing import default_pricer
from spendstream.pricing.compare import compare_with_litellm, load_litellm_map

RAW: dict[str, Any] = tomllib.loads(
    resources.files("spendstream.pricing").joinpath("catalog.toml").read_text(),
    parse_float=Decimal,
)
# The catalog's Google rows are Gemini API prices (Vertex AI has platform rows of its own).
LITELLM_PROVIDER = {"google": "gemini", "bedrock": "bedrock_converse"}
TODAY = date(2026, 11, 30)


def per_token(per_million: Decimal) -> float:
    """A JSON float as LiteLLM writes it (2.5e-06): inexact as binary, exact as text."""
    return float(per_million / 1_000_000)


def litellm_map() -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {"sample_spec": {"litellm_provider": "one of many"}}
    for model in RAW["models"]:
        row = [r for r in model["prices"] if r["effective_from"] <= TODAY][-1]
        entry: dict[str, Any] = {
            "litellm_provider": LITELLM_PROVIDER.get(model["provider"], model["provider"]),
            "mode": model.get("kind", "chat"),
            "input_cost_per_token": per_token(row["input"]),
            "output_cost_per_token": per_token(row["output"]),
        }
        if "cache_read" in row:
            entry["cache_read_input_token_cost"] = per_token(row["cache_read"])
        for tier in row.get("tiers", []):
            size = f"_above_{tier['above_input_tokens'] // 1000}k_tokens"
            entry["input_cost_per_token" + size] = per_token(tier["input"])
            entry["output_cost_per_token" + size] = per_token(tier["output"])
        # Bedrock reuses Anthropic's model names; LiteLLM prefixes them.
        key = f"bedrock/{model['model']}" if model["provider"] == "bedrock" else model["model"]
        entries[key] = entry
    return entries


def drifted(entries: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    changed = json.loads(json.dumps(entries))
    # LiteLLM still listing Mistral Large 2's price under the -latest name:
    changed["mistral/mistral-large-latest"] = {
        "litellm_provider": "mistral",
        "input_cost_per_token": 2e-06,
        "output_cost_per_token": 6e-06,
    }
    changed["gpt-4o"]["cache_read_input_token_cost"] = 1.5e-06
    changed["gemini-2.5-pro"]["output_cost_per_token_above_200k_tokens"] = 1.6e-05
    changed["claude-haiku-4-5"]["cache_creation_input_token_cost"] = 1.25e-06  # = catalog
    changed["some-new-model"] = {"litellm_provider": "openai", "input_cost_per_token": 1e-06}
    changed["llama-x"] = {"litellm_provider": "ollama", "input_cost_per_token": 0.0}
    return changed


def write(path: Path, entries: dict[str, dict[str, Any]]) -> Path:
    path.write_text(json.dumps(entries, indent=2))
    return path


def test_identical_map_has_no_difference(tmp_path: Path) -> None:
    at = datetime(2026, 11, 30, tzinfo=UTC)
    result = compare_with_litellm(
        default_pricer(), load_litellm_map(write(tmp_path / "m.json", litellm_map())), at
    )
    assert result.differences == []
    assert result.compared == len(RAW["models"])
    assert result.unknown == ["sample_spec"]


def test_compare_lists_exactly_the_changed_rates(tmp_path: Path) -> None:
    path = write(tmp_path / "model_prices_and_context_window.json", drifted(litellm_map()))
    at = datetime(2026, 11, 30, tzinfo=UTC)
    result = compare_with_litellm(default_pricer(), load_litellm_map(path), at)
    found = {(d.litellm_key, d.rate): (d.catalog, d.litellm) for d in result.differences}
    assert found == {
        ("mistral/mistral-large-latest", "input"): (Decimal("0.5"), Decimal(2)),
        ("mistral/mistral-large-latest", "output"): (Decimal("1.5"), Decimal(6)),
        ("gpt-4o", "cache_read"): (Decimal("1.25"), Decimal("1.5")),
        ("gemini-2.5-pro", "output >200k"): (Decimal(15), Decimal(16)),
    }
    assert sorted(result.unknown) == ["llama-x", "sample_spec", "some-new-model"]

    runner = CliRunner()
    args = ["compare", str(path), "--at", "2026-11-30"]
    table = runner.invoke(prices_app, args, env={"COLUMNS": "60", "SPENDSTREAM_CONFIG": ""})
    assert table.exit_code == 0, table.output
    assert "mistral/mistral-large-latest" in table.output and "3 of" in table.output
    lines = runner.invoke(prices_app, [*args, "-f", "json"], env={"SPENDSTREAM_CONFIG": ""})
    records = [json.loads(line) for line in lines.output.splitlines()]
    assert {(r["litellm model"], r["rate"], r["difference"]) for r in records} == {
        ("mistral/mistral-large-latest", "input", "1.5"),
        ("mistral/mistral-large-latest", "output", "4.5"),
        ("gpt-4o", "cache_read", "0.25"),
        ("gemini-2.5-pro", "output >200k", "1"),
    }
    csv_out = runner.invoke(prices_app, [*args, "-f", "csv"], env={"SPENDSTREAM_CONFIG": ""})
    assert csv_out.output.splitlines()[0].startswith("provider,litellm model,catalog model")
    assert len(csv_out.output.splitlines()) == 5


def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = CliRunner().invoke(prices_app, ["compare", str(bad)], env={"SPENDSTREAM_CONFIG": ""})
    assert result.exit_code == 1 and "not JSON" in result.output
