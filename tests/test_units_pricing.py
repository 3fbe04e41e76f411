"""Usage units on the event and their prices: every figure below is typed from the provider's
price page and computed by hand here (Decimal, exact), independent of the catalog file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from spendstream.cli.prices import prices_app
from spendstream.config import load_settings
from spendstream.events import EventError, UsageEvent, derived_event_id, parse_event
from spendstream.pricing import Pricer, PricingError, default_pricer, load_pricer
from spendstream.pricing.catalog import load_catalog
from tests.support.units import VECTOR_OVERRIDE_TOML

D = Decimal
WHEN = datetime(2025, 11, 1, 12, tzinfo=UTC)


def rate(model: str, units: dict[str, Any], provider: str = "openai", **fields: Any) -> Any:
    event = UsageEvent(provider=provider, model=model, event_time=WHEN, units=units, **fields)
    return default_pricer().rate(event)


def payload(**fields: Any) -> bytes:
    base = {"event_id": "e1", "provider": "openai", "model": "dall-e-3"}
    return json.dumps({**base, **fields}).encode()


# --- the event field -------------------------------------------------------------------------


def test_units_parse_exactly_from_integers_and_decimal_strings() -> None:
    event = parse_event(payload(units={"images.1024x1024.hd": 2, "audio_seconds": "93.5"}))
    assert event.units == {"images.1024x1024.hd": D(2), "audio_seconds": D("93.5")}
    again = parse_event(event.to_json_bytes())
    assert again.units == event.units


@pytest.mark.parametrize(
    ("units", "fragment"),
    [
        ({"audio_seconds": 93.5}, "decimal strings"),  # a JSON float is not exact
        ({"images": -1}, "greater than or equal to 0"),
        ({"images": True}, "non-negative integer or a decimal string"),
        ({"images": "1e3"}, "non-negative integer or a decimal string"),
        ({"images": True}, "at most 9 decimal places and at most 1000000000000"),
        # A well-formed decimal string names the rule it breaks (hostile report 13, item 9c).
        ({"images": "0.0000000001"}, "has 10 decimal places; at most 9"),
        ({"images": "2.000000000000"}, "has 12 decimal places; at most 9"),
        ({"images": "99999999999999999999"}, "over the largest quantity, 1000000000000"),
        ({"images": 10**13}, "less than or equal to"),
        ({"Images": 1}, "units.Images"),
        ({"images..hd": 1}, "should match pattern"),
        ({f"custom_{i}": 1 for i in range(17)}, "at most 16"),
    ],
)
def test_invalid_units_are_refused_with_the_reason(units: dict[str, Any], fragment: str) -> None:
    with pytest.raises(EventError) as caught:
        parse_event(payload(units=units))
    assert fragment in caught.value.reason


def test_token_only_events_keep_their_wire_form_and_derived_ids() -> None:
    event = UsageEvent(provider="openai", model="gpt-4o", event_time=WHEN, input_tokens=5)
    assert b"units" not in event.to_json_bytes()  # older workers still read it
    spelled = [
        UsageEvent(provider="openai", model="m", event_time=WHEN, units={"images": value})
        for value in (2, D("2.0"), "2")
    ]
    assert len({derived_event_id(event) for event in spelled}) == 1
    assert derived_event_id(spelled[0]) != derived_event_id(event)


# --- catalog prices, by hand --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "units", "expected"),
    [
        # DALL-E 3: $0.040 standard 1024x1024, $0.080 hd 1024x1024, $0.120 hd 1792x1024
        ("dall-e-3", {"images.1024x1024.standard": 3}, 3 * D("0.040")),
        ("dall-e-3", {"images.1024x1024.hd": 2, "images.1792x1024.hd": 1}, D("0.160") + D("0.12")),
        # DALL-E 2 has no quality: a quality variant falls back to the size price ($0.018)
        ("dall-e-2", {"images.512x512.standard": 5}, 5 * D("0.018")),
        # GPT Image 1: $0.167 high 1024x1024, $0.016 low 1536x1024
        ("gpt-image-1", {"images.1024x1024.high": 1, "images.1536x1024.low": 4}, D("0.231")),
        # Whisper: $0.006 per minute; 93.5 s = 93.5 / 60 min
        ("whisper-1", {"audio_seconds": "93.5"}, D("93.5") * D("0.006") / 60),
        # TTS: $15 / $30 per million characters
        ("tts-1", {"tts_characters": 1234}, D(1234) * 15 / 1_000_000),
        ("tts-1-hd", {"tts_characters": 1234}, D(1234) * 30 / 1_000_000),
        # gpt-4o-transcribe: $6 per million audio input tokens
        ("gpt-4o-transcribe", {"audio_input_tokens": 1200}, D(1200) * 6 / 1_000_000),
        ("gpt-4o-mini-tts", {"audio_output_tokens": 777}, D(777) * 12 / 1_000_000),
        # OpenAI built-in tools for any model: $10/1k web search, $2.50/1k file search, $0.10/GB-day
        ("gpt-5", {"web_search_calls": 3}, 3 * D(10) / 1000),
        ("vector-store", {"file_search_calls": 7, "vector_storage_gb_days": "1.5"}, D("0.1675")),
        # gpt-4o web search by context size: $30 low, $50 high per 1k; fine-tuning $25/M
        ("gpt-4o-2024-08-06", {"web_search_calls.high": 2}, 2 * D(50) / 1000),
        ("gpt-4o", {"web_search_calls.low": 2, "training_tokens": 2_000_000}, D("50.06")),
        ("gpt-4o-mini", {"training_tokens": 1_000_001}, D(1_000_001) * 3 / 1_000_000),
        ("gpt-4o-mini", {"web_search_calls.medium": 1}, D("27.50") / 1000),
    ],
)
def test_catalog_unit_prices_match_hand_computation(
    model: str, units: dict[str, Any], expected: Decimal
) -> None:
    rating = rate(model, units)
    assert rating.priced, rating.unpriced_reason
    assert rating.cost_units == expected.quantize(D("1e-18"))
    assert rating.cost_total == rating.cost_units  # no tokens on these events
    assert [unit.unit for unit in rating.units] == sorted(units)


def test_anthropic_web_search_and_tokens_add_up() -> None:
    # claude-sonnet-4-5: $3 / $15 per million tokens; web search $10 per 1,000 searches
    rating = rate(
        "claude-sonnet-4-5",
        {"web_search_calls": 4},
        provider="anthropic",
        input_tokens=10_000,
        output_tokens=2_000,
    )
    tokens = D(10_000) * 3 / 1_000_000 + D(2_000) * 15 / 1_000_000
    assert rating.cost_total == tokens + 4 * D(10) / 1000
    assert rating.units[0].price_ref == "anthropic/*@2025-05-22"


def test_google_imagen_and_grounding() -> None:
    assert rate("imagen-4.0-generate-001", {"images": 3}, provider="gemini").cost_total == D("0.12")
    grounded = rate("gemini-2.5-flash", {"web_search_calls": 1}, provider="google")
    assert grounded.units[0].cost == D(35) / 1000


def test_effective_dating_applies_to_units() -> None:
    before = UsageEvent(
        provider="openai",
        model="gpt-image-1",
        event_time=datetime(2025, 4, 22, tzinfo=UTC),
        units={"images.1024x1024.low": 1},
    )
    rating = default_pricer().rate(before)
    assert not rating.priced and "'images.1024x1024.low'" in rating.unpriced_reason
    # gpt-4o fine-tuning before web search existed: the 2024 row prices training, not search
    early = UsageEvent(
        provider="openai",
        model="gpt-4o",
        event_time=datetime(2025, 1, 1, tzinfo=UTC),
        units={"training_tokens": 1_000_000},
    )
    assert default_pricer().rate(early).units[0].price_ref == "openai/gpt-4o@2024-08-20"


def test_a_unit_nobody_prices_makes_the_event_unpriced_never_zero() -> None:
    rating = rate("gpt-4o", {"vector_queries": 40}, input_tokens=100)
    assert not rating.priced
    assert rating.cost_total == 0
    assert "no price for unit 'vector_queries' of openai/gpt-4o" in rating.unpriced_reason
    # dall-e-3 prices sizes and qualities, not a bare image count
    bare = rate("dall-e-3", {"images": 1})
    assert not bare.priced and "'images'" in bare.unpriced_reason
    # a zero quantity needs no price
    assert rate("gpt-4o", {"vector_queries": 0}, input_tokens=100).priced


def test_tokens_on_a_units_only_model_stay_unpriced() -> None:
    rating = rate("dall-e-3", {"images.1024x1024.hd": 1}, input_tokens=50)
    assert not rating.priced and "unknown model 'dall-e-3'" in rating.unpriced_reason


# --- overrides ----------------------------------------------------------------------------------


def test_custom_units_priced_by_overrides() -> None:
    pricer = Pricer.from_config(
        {
            "overrides": [
                {
                    "name": "qdrant-selfhosted",
                    "provider": "self-hosted",
                    "model": "qdrant",
                    "unit_prices": {"vector_queries": {"price": D("0.40"), "per": 1000}},
                },
                {
                    "name": "gpu-pool",
                    "provider": "self-hosted",
                    "model": "*",
                    "unit_prices": {"gpu_hours": {"price": D("2.10")}},
                },
            ]
        }
    )
    event = UsageEvent(
        provider="self-hosted",
        model="qdrant",
        event_time=WHEN,
        units={"vector_queries": 40, "gpu_hours": "0.25"},
    )
    rating = pricer.rate(event)
    assert rating.priced, rating.unpriced_reason
    costs = {unit.unit: unit.cost for unit in rating.units}
    assert costs == {"vector_queries": D("0.016"), "gpu_hours": D("0.525")}
    refs = {unit.price_ref for unit in rating.units}
    assert refs == {
        "self-hosted/qdrant+override:qdrant-selfhosted",
        "self-hosted/qdrant+override:gpu-pool",
    }
    other = event.model_copy(update={"units": {"custom_widgets": D(1)}})
    assert "no price for unit 'custom_widgets'" in pricer.rate(other).unpriced_reason


def test_override_unit_prices_beat_the_catalog_and_discounts_scale_it() -> None:
    pricer = Pricer.from_config(
        {
            "overrides": [
                {
                    "name": "dalle-deal",
                    "provider": "openai",
                    "model": "dall-e-3",
                    "unit_prices": {"images.1024x1024": {"price": D("0.030")}},
                    "effective_from": datetime(2025, 6, 1, tzinfo=UTC),
                },
                {"name": "openai-15", "provider": "openai", "model": "*", "discount": D("0.15")},
            ]
        }
    )
    hd = UsageEvent(
        provider="openai", model="dall-e-3", event_time=WHEN, units={"images.1024x1024.hd": 2}
    )
    # the negotiated size price covers every quality of that size (variant fallback)
    assert pricer.rate(hd).cost_total == D("0.060")
    earlier = hd.model_copy(update={"event_time": datetime(2025, 1, 1, tzinfo=UTC)})
    # before the deal: the 15 % discount off the catalog's $0.080
    assert pricer.rate(earlier).cost_total == 2 * D("0.080") * D("0.85")
    search = UsageEvent(
        provider="openai",
        model="gpt-5",
        event_time=WHEN,
        units={"web_search_calls": 1000},
        input_tokens=1_000_000,
    )
    rating = pricer.rate(search)
    # gpt-5 $1.25 per million input tokens and $10 per 1k searches, both 15 % off
    assert rating.cost_total == (D("1.25") + D(10)) * D("0.85")
    assert rating.units[0].price_ref == "openai/*@2025-03-11+override:openai-15"


def test_units_only_override_needs_prices_and_keeps_token_rules() -> None:
    with pytest.raises(PricingError, match="unit_prices"):
        Pricer.from_config({"overrides": [{"name": "x", "provider": "openai", "model": "gpt-4o"}]})
    with pytest.raises(PricingError, match="per"):
        Pricer.from_config(
            {
                "overrides": [
                    {
                        "name": "x",
                        "provider": "p",
                        "model": "m",
                        "unit_prices": {"vector_queries": {"price": 1, "per": 0}},
                    }
                ]
            }
        )


def test_every_catalog_unit_entry_names_a_source_and_valid_units() -> None:
    catalog = load_catalog()
    assert len(catalog.units) >= 15
    for entry in catalog.units:
        assert entry.source.startswith("https://")
        for row in entry.prices:
            assert all(rate.price >= 0 and rate.per > 0 for rate in row.rates.values())


def test_prices_units_lists_catalog_and_override_unit_prices(tmp_path: Path) -> None:
    config = tmp_path / "spendstream.toml"
    config.write_text(VECTOR_OVERRIDE_TOML)
    ran = CliRunner().invoke(prices_app, ["units", "-c", str(config), "-f", "json"])
    assert ran.exit_code == 0, ran.output
    lines = [json.loads(line) for line in ran.output.splitlines()]
    assert {
        "provider": "self-hosted",
        "model": "qdrant",
        "unit": "vector_queries",
        "price": "0.4",
        "per": "1000",
        "since": "",
        "source": "override qdrant",
    } in lines
    whisper = [line for line in lines if line["model"] == "whisper-1"]
    assert [(w["unit"], w["price"], w["per"]) for w in whisper] == [
        ("audio_seconds", "0.006", "60")
    ]
    early = CliRunner().invoke(
        prices_app, ["units", "--at", "2023-01-01", "-p", "openai", "-f", "json"]
    )
    assert early.exit_code == 0 and "dall-e-3" not in early.output and "dall-e-2" in early.output


def test_unquoted_dotted_unit_names_in_toml_mean_the_same_unit(tmp_path: Path) -> None:
    config = tmp_path / "spendstream.toml"
    config.write_text(
        """
[[pricing.overrides]]
name = "deal"
provider = "openai"
model = "dall-e-3"
[pricing.overrides.unit_prices]
images.1024x1024.hd = { price = 0.05 }
"images.1024x1024.standard" = { price = 0.03 }
"""
    )
    pricer = load_pricer(load_settings(config))
    assert set(pricer.overrides[0].unit_prices) == {
        "images.1024x1024.hd",
        "images.1024x1024.standard",
    }


def test_an_absurd_unit_cost_is_unpriced_not_summed() -> None:
    # 10^12 training tokens at $25 per million is $25,000,000: a bill.
    assert rate("gpt-4o", {"training_tokens": 10**12}).cost_total == D(25_000_000)
    # 10^7 GPU hours at $1,000,000 is $10^13: a wrong quantity or price, kept out of the sums.
    pricer = Pricer.from_config(
        {
            "overrides": [
                {
                    "name": "gpu",
                    "provider": "self-hosted",
                    "model": "*",
                    "unit_prices": {"gpu_hours": {"price": 1_000_000}},
                }
            ]
        }
    )
    event = UsageEvent(
        provider="self-hosted", model="vllm", event_time=WHEN, units={"gpu_hours": D(10**7)}
    )
    absurd = pricer.rate(event)
    assert not absurd.priced and absurd.cost_total == 0
    assert "would cost 10000000000000.00 USD" in absurd.unpriced_reason
    fine = event.model_copy(update={"units": {"gpu_hours": D(10**6)}})
    assert pricer.rate(fine).cost_total == D(10**12)
