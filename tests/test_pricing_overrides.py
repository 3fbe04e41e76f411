"""Negotiated-price overrides: precedence, tag scope, effective dates, config and file errors."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spendstream.events import UsageEvent
from spendstream.pricing import Pricer, PricingError, default_pricer, overrides

M = Decimal(1_000_000)
D = Decimal
WHEN = datetime(2025, 11, 1, tzinfo=UTC)


def sonnet(**fields: Any) -> UsageEvent:
    base: dict[str, Any] = {
        "provider": "anthropic",
        "model": "claude-sonnet-4-5-20250929",
        "input_tokens": 10**5,
        "output_tokens": 10**4,
        "event_time": WHEN,
    }
    return UsageEvent(**{**base, **fields})


def absolute(name: str, input_: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "anthropic",
        "model": "claude-sonnet-4-5",
        "input": D(input_),
        "output": D(10),
        **extra,
    }


def pricer(*overrides: dict[str, Any]) -> Pricer:
    return Pricer.from_config({"overrides": list(overrides)})


def test_override_beats_catalog_and_is_named_in_price_ref() -> None:
    # The override names a dated snapshot; it is normalised like event names.
    p = pricer(absolute("acme", "2.70", model="claude-sonnet-4-5-20250929"))
    rating = p.rate(sonnet())
    assert rating.price_ref == "anthropic/claude-sonnet-4-5+override:acme"
    assert rating.cost_input == 10**5 * D("2.70") / M
    assert rating.cost_output == 10**4 * D(10) / M
    # Cache rates left out of an absolute override are billed at its input rate.
    cached = p.rate(sonnet(cache_read_tokens=1000, cache_write_tokens=1000))
    assert cached.cost_cache_read == cached.cost_cache_write == 1000 * D("2.70") / M
    # Other models keep catalog prices.
    haiku = p.rate(sonnet(model="claude-haiku-4-5"))
    assert haiku.price_ref == "anthropic/claude-haiku-4-5@2025-10-15"


def test_tag_scope() -> None:
    p = pricer(absolute("research", "1", tags={"team": "research"}))
    assert p.rate(sonnet(tags={"team": "research", "app": "x"})).cost_input == D("0.1")
    assert p.rate(sonnet(tags={"team": "search"})).cost_input == D("0.3")
    assert p.rate(sonnet()).cost_input == D("0.3")


def test_effective_window() -> None:
    p = pricer(
        absolute(
            "q4",
            "1",
            effective_from=datetime(2025, 10, 1, tzinfo=UTC),
            effective_until=datetime(2026, 1, 1, tzinfo=UTC),
        )
    )
    assert p.rate(sonnet(event_time=datetime(2025, 9, 30, 23, 59, tzinfo=UTC))).cost_input == D(
        "0.3"
    )
    assert p.rate(sonnet(event_time=datetime(2025, 10, 1, tzinfo=UTC))).cost_input == D("0.1")
    assert p.rate(sonnet(event_time=datetime(2026, 1, 1, tzinfo=UTC))).cost_input == D("0.3")


def test_precedence_most_specific_wins() -> None:
    p = Pricer.from_config(
        {
            "overrides": [
                absolute("scoped", "1", tags={"team": "research"}),
                absolute("plain", "2"),
                absolute("plain-2026", "2.5", effective_from=datetime(2026, 1, 1, tzinfo=UTC)),
                {"name": "all", "provider": "anthropic", "model": "*", "discount": D("0.5")},
                absolute("plain-again", "2.2"),
            ]
        }
    )
    assert p.rate(sonnet(tags={"team": "research"})).price_ref.endswith("override:scoped")
    # Equal specificity: the later one in the list wins.
    assert p.rate(sonnet()).price_ref.endswith("override:plain-again")
    # A later effective_from beats an earlier (or open) start once in force.
    assert p.rate(sonnet(event_time=datetime(2026, 2, 1, tzinfo=UTC))).price_ref.endswith(
        "override:plain-2026"
    )
    # A named model beats '*'; '*' still covers other models of the provider.
    haiku = p.rate(sonnet(model="claude-haiku-4-5"))
    assert haiku.price_ref == "anthropic/claude-haiku-4-5@2025-10-15+override:all"
    assert haiku.cost_input == 10**5 * D(1) / M / 2


def test_discount_scales_catalog_rows_tiers_and_batch() -> None:
    p = pricer({"name": "ea", "provider": "openai", "model": "*", "discount": D("0.2")})
    old = UsageEvent(
        provider="openai",
        model="gpt-4o",
        input_tokens=10**6,
        event_time=datetime(2024, 6, 1, tzinfo=UTC),
    )
    assert p.rate(old).cost_input == D(4)  # 5.00 list in June 2024, 20 % off
    assert p.rate(old).price_ref == "openai/gpt-4o@2024-05-13+override:ea"
    assert p.rate(old.model_copy(update={"batch": True})).cost_input == D(2)
    azure = old.model_copy(update={"provider": "azure", "event_time": WHEN})
    assert p.rate(azure).cost_input == D(2)  # an openai override covers azure events
    g = pricer({"name": "g", "provider": "google", "model": "gemini-2.5-pro", "discount": D("0.1")})
    long = g.rate(
        UsageEvent(provider="google", model="gemini-2.5-pro", input_tokens=300_000, event_time=WHEN)
    )
    assert long.price_ref == "google/gemini-2.5-pro@2025-06-17>200000+override:g"
    assert long.cost_input == 300_000 * D("2.50") * D("0.9") / M


def test_provider_specific_override_and_unknown_models() -> None:
    p = pricer(
        {"name": "az", "provider": "azure", "model": "gpt-4o", "input": D(2), "output": D(8)},
        {
            "name": "self",
            "provider": "vllm",
            "model": "llama-internal",
            "input": D("0.05"),
            "output": D("0.05"),
            "batch_discount": D("0.5"),
        },
    )
    event = UsageEvent(provider="azure", model="gpt-4o", input_tokens=10**6, event_time=WHEN)
    assert p.rate(event).cost_input == D(2)
    assert p.rate(event.model_copy(update={"provider": "openai"})).cost_input == D("2.5")
    internal = UsageEvent(
        provider="vllm", model="hosted/llama-internal", input_tokens=10**6, batch=True
    )
    rating = p.rate(internal)
    assert rating.priced and rating.cost_input == D("0.025")
    assert rating.price_ref == "vllm/llama-internal+override:self"


def test_absolute_override_batch_and_reasoning() -> None:
    p = pricer(
        absolute("a", "2", reasoning=D(20)),
        absolute("b", "2", batch_discount=D(0), tags={"team": "nobatch"}),
    )
    rating = p.rate(sonnet(batch=True, output_tokens=1000, reasoning_tokens=400))
    assert rating.cost_input == 10**5 * D(1) / M  # catalog's 50 % batch discount by default
    assert rating.cost_output == 600 * D(5) / M
    assert rating.cost_reasoning == 400 * D(10) / M
    flat = p.rate(sonnet(batch=True, tags={"team": "nobatch"}))
    assert flat.cost_input == 10**5 * D(2) / M


def test_digest_reflects_overrides() -> None:
    plain = default_pricer().catalog_digest
    one = pricer(absolute("a", "2")).catalog_digest
    assert one != plain
    assert one == pricer(absolute("a", "2")).catalog_digest
    assert one != pricer(absolute("a", "2.01")).catalog_digest


def test_overrides_file_relative_to_config_dir(tmp_path: Path) -> None:
    (tmp_path / "prices.toml").write_text(
        '[[overrides]]\nname = "f"\nprovider = "anthropic"\nmodel = "claude-sonnet-4-5"\n'
        "input = 1.5\noutput = 7.5\n"
    )
    p = Pricer.from_config(
        {"overrides_file": "prices.toml", "overrides": [absolute("inline", "1", tags={"a": "b"})]},
        base_dir=tmp_path,
    )
    assert p.rate(sonnet()).price_ref.endswith("override:f")
    assert p.rate(sonnet(tags={"a": "b"})).price_ref.endswith("override:inline")


@pytest.mark.parametrize(
    ("pricing", "expected"),
    [
        ({"overides_file": "x"}, ["pricing.overides_file", "unknown key"]),
        ({"overrides": [absolute("x", "1", discount=D("0.1"))]}, ["sets both discount and input"]),
        (
            {"overrides": [{"name": "x", "provider": "openai", "model": "gpt-4o", "input": 1}]},
            ["needs input and output prices", "or a discount"],
        ),
        (
            {
                "overrides": [
                    {"name": "x", "provider": "openai", "model": "*", "input": 1, "output": 1}
                ]
            },
            ["model = '*' only works with a discount"],
        ),
        (
            {
                "overrides": [
                    absolute(
                        "x",
                        "1",
                        effective_from=datetime(2026, 1, 1, tzinfo=UTC),
                        effective_until=datetime(2025, 1, 1, tzinfo=UTC),
                    )
                ]
            },
            ["effective_until must be after effective_from"],
        ),
        (
            {"overrides": [{"name": "x", "provider": "openai", "model": "gpt-9", "discount": 0.1}]},
            [
                "config [pricing].overrides",
                "model 'gpt-9'",
                "not in the catalog",
                "give input and output prices",
            ],
        ),
        ({"overrides": [absolute("x", "1"), absolute("x", "2")]}, ["'x' is used twice"]),
        ({"overrides": [absolute("x", "1", output=D(-1))]}, ["output", "must not be negative"]),
        ({"overrides": [absolute("x", "1", discount=D(1))]}, ["discount", "fraction below 1"]),
        ({"overrides_file": "/nonexistent/prices.toml"}, ["/nonexistent/prices.toml", "not found"]),
    ],
)
def test_config_errors_name_key_and_fix(pricing: dict[str, Any], expected: list[str]) -> None:
    with pytest.raises(PricingError) as caught:
        Pricer.from_config(pricing)
    for fragment in expected:
        assert fragment in str(caught.value)


def test_override_file_errors_name_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        '[[overrides]]\nname = "ok"\nprovider = "openai"\nmodel = "gpt-4o"\ninput = 1\noutput = 2\n'
        '[[overrides]]\nname = "bad"\nprovider = "openai"\nmodel = "gpt-4o"\ninput = "abc"\n'
        "output = 2\nouptut = 3\n"
    )
    with pytest.raises(PricingError) as caught:
        Pricer.from_config({"overrides_file": str(path)})
    message = str(caught.value)
    assert str(path) in message
    assert "overrides[1](openai/gpt-4o).input = 'abc'" in message
    assert "write a number" in message
    assert "overrides[1](openai/gpt-4o).ouptut" in message and "unknown key" in message
    path.write_text("[[overrides]\n")
    with pytest.raises(PricingError, match="invalid TOML"):
        Pricer.from_config({"overrides_file": str(path)})


def test_documented_override_example_is_valid(tmp_path: Path) -> None:
    """The file format shown in the overrides module docstring parses and prices as described."""
    doc = overrides.__doc__ or ""
    example = textwrap.dedent(doc.split("::\n", 1)[1].split("\nThe ``[pricing]``", 1)[0])
    path = tmp_path / "prices.toml"
    path.write_text(example)
    p = Pricer.from_config({"overrides_file": str(path)})
    rating = p.rate(sonnet(tags={"team": "research"}, event_time=datetime(2025, 6, 1, tzinfo=UTC)))
    assert rating.price_ref == "anthropic/claude-sonnet-4-5+override:acme-anthropic-2025"
    assert rating.cost_input == 10**5 * D("2.70") / M
    assert p.rate(sonnet(event_time=datetime(2026, 1, 1, tzinfo=UTC))).cost_input == D("0.3")
