"""The catalog against LiteLLM 1.110.2's price map: every difference explained (fixed or listed
in known_differences.toml), no known difference stale, and a newer map taken as a proposal.

``tests/fixtures/litellm_1.110.2_prices.json`` holds the per-token rates of the providers the
catalog covers, copied with their exact text from the map in the litellm 1.110.2 wheel
(``litellm/model_prices_and_context_window_backup.json``)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import tomllib
from datetime import UTC, date, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from spendstream.cli.prices import prices_app
from spendstream.pricing import default_pricer
from spendstream.pricing.catalog import PlatformRule, PriceRow
from spendstream.pricing.compare import Comparison, compare_with_litellm, load_litellm_map
from spendstream.pricing.known import KnownDifferences, load_known_differences
from spendstream.pricing.proposal import proposal_toml, propose

FIXTURE = Path(__file__).parent / "fixtures" / "litellm_1.110.2_prices.json"
AT = datetime(2026, 12, 6, tzinfo=UTC)
ENV = {"SPENDSTREAM_CONFIG": "", "COLUMNS": "200"}
IN_SCOPE = ("openai", "anthropic", "google", "mistral", "bedrock")


def compare(known: KnownDifferences | None = None, path: Path = FIXTURE) -> Comparison:
    return compare_with_litellm(
        default_pricer(), load_litellm_map(path), AT, known or load_known_differences()
    )


def test_the_fixture_is_litellm_1_110_2s_own_map() -> None:
    spec = importlib.util.find_spec("litellm")
    assert spec is not None and spec.submodule_search_locations  # a dev dependency
    installed = Path(next(iter(spec.submodule_search_locations)))
    full = json.loads(
        (installed / "model_prices_and_context_window_backup.json").read_text(),
        parse_float=Decimal,
    )
    ours = json.loads(FIXTURE.read_text(), parse_float=Decimal)
    if full.get("gpt-4o", {}).get("litellm_provider") != "openai" or len(full) < 2_000:
        pytest.fail("unexpected LiteLLM map layout")
    version = importlib.metadata.version("litellm")
    if version != "1.110.2":  # another version: the fixture stays the reference of the suite
        pytest.skip(f"litellm {version} installed; the fixture is 1.110.2's map")
    for key, entry in ours.items():
        assert {name: full[key][name] for name in entry} == entry, key


def test_every_difference_on_the_litellm_map_is_explained() -> None:
    result = compare()
    assert result.compared > 300
    unexplained = [(d.litellm_key, d.rate, d.catalog, d.litellm) for d in result.unexplained]
    assert unexplained == []
    assert [pattern for _entry, pattern in result.stale] == []
    assert {d.provider for d in result.differences} <= set(IN_SCOPE)
    # Platform rows made most of the 448 differences of the previous catalog go away: the
    # Azure data zones and Bedrock geo profiles now agree with LiteLLM.
    keys = {d.litellm_key for d in result.differences}
    for agreed in ("azure/eu/gpt-4o-2024-08-06", "eu.anthropic.claude-haiku-4-5-20251001-v1:0"):
        assert agreed not in keys
    assert len(result.differences) == 100 and len(keys) == 63


def test_a_difference_no_known_entry_covers_is_unexplained() -> None:
    shipped = load_known_differences()
    mistral_nemo = [e for e in shipped.differences if "mistral/open-mistral-nemo" not in e.keys]
    result = compare(shipped.model_copy(update={"differences": mistral_nemo}))
    assert {(d.litellm_key, d.rate) for d in result.unexplained} == {
        ("mistral/open-mistral-nemo", rate) for rate in ("input", "output", "cache_read")
    }


def test_a_known_difference_that_explains_nothing_is_stale(tmp_path: Path) -> None:
    entries: dict[str, Any] = json.loads(FIXTURE.read_text(), parse_float=Decimal)
    entries["mistral/open-mistral-nemo"].update(
        input_cost_per_token=Decimal("1.5E-7"),
        output_cost_per_token=Decimal("1.5E-7"),
    )
    del entries["mistral/open-mistral-nemo"]["cache_read_input_token_cost"]
    path = tmp_path / "newer.json"
    path.write_text(json.dumps(entries, default=str).replace('"1.5E-7"', "1.5E-7"))
    result = compare(path=path)
    assert result.unexplained == []
    assert [pattern for _entry, pattern in result.stale] == ["mistral/open-mistral-nemo"]
    strict = CliRunner().invoke(prices_app, ["compare", str(path), "--strict"], env=ENV)
    assert strict.exit_code == 1 and "stale known difference 'mistral/open-mistral-nemo'" in (
        strict.output
    )


def test_compare_command_marks_what_explains_each_difference() -> None:
    runner = CliRunner()
    args = ["compare", str(FIXTURE), "--at", "2026-12-06", "--strict"]
    table = runner.invoke(prices_app, args, env=ENV)
    assert table.exit_code == 0, table.output
    assert "100 rates, 0 unexplained, 0 stale known" in table.output
    lines = runner.invoke(prices_app, [*args, "-f", "json"], env=ENV).output.splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 100 and all(r["explained by"] != "UNEXPLAINED" for r in records)
    nemo = [r for r in records if r["litellm model"] == "mistral/open-mistral-nemo"]
    assert nemo and nemo[0]["explained by"].startswith("The catalog prices Mistral NeMo")
    eu = [r for r in records if r["litellm model"] == "azure/eu/gpt-4o-mini"]
    assert {r["priced as"] for r in eu} == {"azure/eu"}


def test_update_proposes_changes_with_their_date_and_applies_nothing(tmp_path: Path) -> None:
    entries: dict[str, Any] = json.loads(FIXTURE.read_text())
    entries["azure/eu/gpt-4.1"]["input_cost_per_token"] = 2.3e-06  # data-zone price rise
    entries["gpt-4o"]["output_cost_per_token"] = 1.2e-05
    path = tmp_path / "newer.json"
    path.write_text(json.dumps(entries))
    catalog = resources.files("spendstream.pricing").joinpath("catalog.toml").read_bytes()

    result = compare(path=path)
    proposals = propose(result, date(2027, 1, 1))
    assert [(p.where, p.changes) for p in proposals] == [
        ("openai/gpt-4.1[azure/eu]", {"input": (Decimal("2.20"), Decimal("2.3"))}),
        ("openai/gpt-4o", {"output": (Decimal("10.00"), Decimal(12))}),
    ]
    rows = tomllib.loads(proposal_toml(proposals, default_pricer()), parse_float=Decimal)
    rule = rows["platforms"][0]
    PlatformRule.model_validate({**rule, "source": "https://azure.microsoft.com/pricing"})
    assert rule["regions"] == ["eu"] and rule["prices"][0]["input"] == Decimal("2.3")
    assert rule["prices"][0]["output"] == Decimal("8.80")  # today's rate kept
    base = PriceRow.model_validate(rows["models"]["prices"][0])
    assert (base.input, base.output, base.cache_read) == (Decimal("2.50"), 12, Decimal("1.25"))
    assert base.effective_from == datetime(2027, 1, 1, tzinfo=UTC)

    args = ["update", str(path), "--effective", "2027-01-01"]
    out = CliRunner().invoke(prices_app, args, env=ENV)
    assert out.exit_code == 0, out.output
    assert "2 proposed change(s); none applied" in out.output and "2027-01-01" in out.output
    after = resources.files("spendstream.pricing").joinpath("catalog.toml").read_bytes()
    assert after == catalog
