"""`spendstream prices list|show|check` through Typer's test runner, and their data functions."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spendstream.cli.prices import prices_app
from spendstream.pricing import PricingError, default_pricer
from spendstream.pricing.listing import check_override_file, price_list, show_model

runner = CliRunner()
WIDE = {"COLUMNS": "250", "SPENDSTREAM_CONFIG": ""}

GOOD = """
[[overrides]]
name = "acme-sonnet"
provider = "anthropic"
model = "claude-sonnet-4-5-20250929"
effective_from = 2025-10-01
tags = { team = "research" }
input = 2.70
output = 13.50

[[overrides]]
name = "openai-ea"
provider = "openai"
model = "*"
discount = 0.15
"""


def test_price_list_data() -> None:
    pricer = default_pricer()
    now = price_list(pricer)
    assert len(now) == len(pricer.catalog.models)
    azure = price_list(pricer, "azure")
    assert azure and {line.provider for line in azure} == {"openai"}
    june_2024 = {
        line.model: line for line in price_list(pricer, at=datetime(2024, 6, 1, tzinfo=UTC))
    }
    assert june_2024["gpt-4o"].input == Decimal(5)
    assert "gpt-5" not in june_2024  # not released yet
    with pytest.raises(PricingError, match="unknown provider 'nope'"):
        price_list(pricer, "nope")


def test_show_model_data() -> None:
    details = show_model(default_pricer(), "claude-sonnet-4-5-20250929")
    assert [detail.entry.key for detail in details] == [
        "anthropic/claude-sonnet-4-5",
        "bedrock/claude-sonnet-4-5",
    ]
    history = show_model(default_pricer(), "gpt-4o-2024-08-06", "openai")[0].lines
    assert [line.input for line in history] == [Decimal(5), Decimal("2.50")]
    with pytest.raises(PricingError, match="unknown model 'gpt-99'"):
        show_model(default_pricer(), "gpt-99")


def test_cli_list() -> None:
    result = runner.invoke(prices_app, ["list", "--provider", "bedrock"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "nova-pro" in result.output and "llama3-1-70b-instruct" in result.output
    assert "gpt-4o" not in result.output
    old = runner.invoke(
        prices_app, ["list", "--provider", "openai", "--at", "2024-06-01"], env=WIDE
    )
    assert old.exit_code == 0 and "2024-05-13" in old.output and "gpt-5" not in old.output
    bad = runner.invoke(prices_app, ["list", "--at", "June"], env=WIDE)
    assert bad.exit_code == 1 and "Invalid isoformat" in bad.output


def test_cli_show_with_config_overrides(tmp_path: Path) -> None:
    (tmp_path / "prices.toml").write_text(GOOD)
    config = tmp_path / "spendstream.toml"
    config.write_text('[pricing]\noverrides_file = "prices.toml"\n')
    result = runner.invoke(
        prices_app, ["show", "claude-sonnet-4-5", "-p", "anthropic", "-c", str(config)], env=WIDE
    )
    assert result.exit_code == 0, result.output
    assert "2025-09-29" in result.output and ">200,000: 6/22.5" in result.output
    assert "override acme-sonnet: 2.7/13.5 for team=research" in result.output
    unknown = runner.invoke(prices_app, ["show", "gpt-99"], env=WIDE)
    assert unknown.exit_code == 1 and "unknown model 'gpt-99'" in unknown.output


def test_cli_check(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    assert [o.model for o in check_override_file(good)] == ["claude-sonnet-4-5", "*"]
    result = runner.invoke(prices_app, ["check", str(good)], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "2 override(s) OK" in result.output and "15 % off" in result.output
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace("discount = 0.15", "discount = 0.15\ninput = 1"))
    result = runner.invoke(prices_app, ["check", str(bad)], env=WIDE)
    assert result.exit_code == 1
    assert str(bad) in result.output and "overrides[1]" in result.output
    assert "keep either the discount or the absolute prices" in result.output
    unknown = tmp_path / "unknown.toml"
    unknown.write_text(GOOD.replace('model = "*"', 'model = "gpt-99"'))
    result = runner.invoke(prices_app, ["check", str(unknown)], env=WIDE)
    assert result.exit_code == 1 and "model 'gpt-99'" in result.output


@pytest.mark.parametrize("command", [["list"], ["units"], ["show", "gpt-4o"]])
def test_cli_invalid_pricing_config_is_an_error_not_a_traceback(
    tmp_path: Path, command: list[str]
) -> None:
    config = tmp_path / "spendstream.toml"
    config.write_text('[[pricing.overrides]]\nname = "x"\nprovider = "openai"\nmodel = "m"\n')
    result = runner.invoke(prices_app, [*command, "-c", str(config)], env=WIDE)
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "override 'x' needs input and output prices" in result.output
