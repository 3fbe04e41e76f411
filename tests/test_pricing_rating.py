"""Rating semantics: token accounting per provider, effective dating, tiers, batch, precision."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spendstream.events import UsageEvent
from spendstream.pricing import Pricer, PricingError, default_pricer
from spendstream.pricing.overrides import Override
from spendstream.pricing.scaled import ScaledPricer

M = Decimal(1_000_000)
D = Decimal


def rate(**fields: Any) -> Any:
    return default_pricer().rate(UsageEvent(**fields))


def test_openai_cached_tokens_are_a_subset_of_prompt_tokens() -> None:
    # OpenAI usage: prompt_tokens=1000 with prompt_tokens_details.cached_tokens=400.
    rating = rate(
        provider="openai",
        model="gpt-4o",
        input_tokens=1000,
        cache_read_tokens=400,
        output_tokens=50,
        event_time=datetime(2025, 1, 1, tzinfo=UTC),
    )
    assert rating.cost_input == 600 * D("2.50") / M
    assert rating.cost_cache_read == 400 * D("1.25") / M
    assert rating.cost_output == 50 * D("10") / M
    assert rating.cost_total == (600 * D("2.50") + 400 * D("1.25") + 50 * D(10)) / M


def test_anthropic_cache_tokens_reported_beside_input_are_not_double_counted() -> None:
    # Anthropic usage: input_tokens=100, cache_read_input_tokens=5000,
    # cache_creation_input_tokens=200; the event normalises input to include both (5300).
    rating = rate(
        provider="anthropic",
        model="claude-sonnet-4-5-20250929",
        input_tokens=100 + 5000 + 200,
        cache_read_tokens=5000,
        cache_write_tokens=200,
        output_tokens=300,
    )
    assert rating.cost_input == 100 * D(3) / M
    assert rating.cost_cache_read == 5000 * D("0.30") / M
    assert rating.cost_cache_write == 200 * D("3.75") / M  # the 5-minute write price
    assert rating.cost_output == 300 * D(15) / M
    assert rating.cost_reasoning == 0


def test_gemini_thoughts_are_billed_as_output() -> None:
    # Gemini usage: candidatesTokenCount=200, thoughtsTokenCount=800 -> output 1000 incl. 800.
    rating = rate(
        provider="google",
        model="gemini-2.5-flash",
        input_tokens=100,
        output_tokens=1000,
        reasoning_tokens=800,
    )
    assert rating.cost_output == 1000 * D("2.50") / M
    assert rating.cost_reasoning == 0


def write_catalog(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(
        'schema_version = 1\ncurrency = "USD"\n[providers.lab]\nbatch_discount = 0.5\n' + body
    )
    return path


def test_separately_billed_reasoning_is_taken_out_of_output(tmp_path: Path) -> None:
    catalog = write_catalog(
        tmp_path,
        """
[[models]]
provider = "lab"
model = "thinker"
source = "https://example.com/prices"
[[models.prices]]
effective_from = 2025-01-01
input = 1
output = 2
reasoning = 7
""",
    )
    pricer = Pricer.from_config({"catalog_file": str(catalog)})
    rating = pricer.rate(
        UsageEvent(
            provider="lab",
            model="thinker",
            input_tokens=10,
            output_tokens=1000,
            reasoning_tokens=600,
        )
    )
    assert rating.cost_output == 400 * D(2) / M
    assert rating.cost_reasoning == 600 * D(7) / M
    assert rating.cost_total == (10 * 1 + 400 * 2 + 600 * 7) / M


def test_price_change_splits_events_at_the_effective_date() -> None:
    change = datetime(2024, 10, 2, tzinfo=UTC)
    usage = {"provider": "openai", "model": "gpt-4o", "input_tokens": 10**5, "output_tokens": 10**4}
    before = rate(event_time=change - timedelta(microseconds=1), **usage)
    at = rate(event_time=change, **usage)
    after = rate(event_time=change + timedelta(days=300), **usage)
    assert before.price_ref == "openai/gpt-4o@2024-05-13"
    assert before.cost_input == D("0.5") and before.cost_output == D("0.15")
    assert at.price_ref == after.price_ref == "openai/gpt-4o@2024-10-02"
    assert at.cost_input == D("0.25") and at.cost_output == D("0.1")
    # An event stamped in another zone is compared in UTC: 2024-10-01T22:00-03:00 is after D.
    west = timezone(timedelta(hours=-3))
    assert rate(event_time=datetime(2024, 10, 1, 22, tzinfo=west), **usage).cost_input == D("0.25")
    # o3's 80 % cut on 2025-06-10.
    o3 = {"provider": "openai", "model": "o3", "input_tokens": 10**6, "output_tokens": 0}
    assert rate(event_time=datetime(2025, 6, 9, 23, tzinfo=UTC), **o3).cost_input == 10
    assert rate(event_time=datetime(2025, 6, 10, 0, tzinfo=UTC), **o3).cost_input == 2


def test_event_before_the_first_price_is_unpriced() -> None:
    rating = rate(
        provider="anthropic",
        model="claude-sonnet-4-5",
        input_tokens=10,
        event_time=datetime(2025, 9, 28, tzinfo=UTC),
    )
    assert not rating.priced
    assert "no price for anthropic/claude-sonnet-4-5 in force at 2025-09-28" in (
        rating.unpriced_reason
    )
    assert "catalog prices start 2025-09-29" in rating.unpriced_reason


def test_long_context_tier_is_chosen_by_input_tokens() -> None:
    base = {"provider": "anthropic", "model": "claude-sonnet-4-5", "output_tokens": 1000}
    at_limit = rate(input_tokens=200_000, cache_read_tokens=100_000, **base)
    above = rate(input_tokens=200_001, cache_read_tokens=100_000, **base)
    assert at_limit.price_ref == "anthropic/claude-sonnet-4-5@2025-09-29"
    assert above.price_ref == "anthropic/claude-sonnet-4-5@2025-09-29>200000"
    assert at_limit.cost_input == 100_000 * D(3) / M
    assert above.cost_input == 100_001 * D(6) / M
    assert above.cost_cache_read == 100_000 * D("0.60") / M
    assert above.cost_output == 1000 * D("22.50") / M
    pro = rate(provider="google", model="gemini-2.5-pro", input_tokens=250_000, output_tokens=10)
    assert pro.cost_input == 250_000 * D("2.50") / M and pro.cost_output == 10 * D(15) / M


def test_batch_discount() -> None:
    usage = {"input_tokens": 10**6, "output_tokens": 10**6}
    standard = rate(provider="openai", model="gpt-4o-mini", **usage)
    batched = rate(provider="openai", model="gpt-4o-mini", batch=True, **usage)
    assert batched.cost_total * 2 == standard.cost_total == D("0.75")
    assert batched.price_ref == standard.price_ref
    long_batch = rate(
        provider="google", model="gemini-2.5-pro", batch=True, input_tokens=300_000, output_tokens=0
    )
    assert long_batch.cost_input == 300_000 * D("2.50") / M / 2
    # A model without a batch price is billed at its standard price.
    v1 = {"provider": "bedrock", "model": "amazon.titan-embed-text-v1", "input_tokens": 10**6}
    assert rate(batch=True, **v1).cost_input == rate(**v1).cost_input == D("0.10")


def test_embeddings_bill_input_only() -> None:
    rating = rate(
        provider="openai", model="text-embedding-3-small", operation="embeddings", input_tokens=5000
    )
    assert rating.cost_input == 5000 * D("0.02") / M
    assert rating.cost_total == rating.cost_input


def test_costs_are_exact_decimals_at_ledger_scale() -> None:
    tiny = rate(provider="bedrock", model="nova-micro", input_tokens=1, cache_read_tokens=1)
    assert tiny.cost_cache_read == D("0.00000000875")
    assert tiny.cost_cache_read.as_tuple().exponent == -18
    huge = rate(provider="openai", model="gpt-5-pro", input_tokens=0, output_tokens=10**12)
    assert huge.cost_output == D(120_000_000)
    assert isinstance(huge.cost_total, Decimal)


def test_rating_is_pure_and_thread_safe() -> None:
    pricer = default_pricer()
    events = [
        UsageEvent(provider=p, model=m, input_tokens=n * 1000 + 7, output_tokens=n)
        for n in range(1, 40)
        for p, m in [("openai", "gpt-4.1"), ("bedrock", "us.amazon.nova-pro-v1:0")]
    ]
    expected = [pricer.rate(event) for event in events]
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = [list(pool.map(pricer.rate, events)) for _ in range(8)]
    assert all(result == expected for result in results)


def test_catalog_digest_is_stable_and_tracks_content(tmp_path: Path) -> None:
    assert default_pricer().catalog_digest == Pricer.from_config({}).catalog_digest
    body = """
[[models]]
provider = "lab"
model = "m"
source = "https://example.com/prices"
[[models.prices]]
effective_from = 2025-01-01
input = {input}
output = 2
"""
    first = Pricer.from_config(
        {"catalog_file": str(write_catalog(tmp_path, body.format(input="1.0")))}
    )
    same = Pricer.from_config(
        {"catalog_file": str(write_catalog(tmp_path, body.format(input="1")))}
    )
    other = Pricer.from_config(
        {"catalog_file": str(write_catalog(tmp_path, body.format(input="1.1")))}
    )
    assert first.catalog_digest == same.catalog_digest  # formatting is not content
    assert first.catalog_digest != other.catalog_digest


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '[[models]]\nprovider = "lab"\nmodel = "m"\nsource = "https://x.example"\n'
            "[[models.prices]]\neffective_from = 2025-01-01\ninput = 1\noutput = 2\n"
            "[[models.prices]]\neffective_from = 2025-01-01\ninput = 2\noutput = 2\n",
            ["models[0](lab/m).prices", "share effective_from", "merge the rows"],
        ),
        (
            '[[models]]\nprovider = "other"\nmodel = "m"\nsource = "https://x.example"\n'
            "[[models.prices]]\neffective_from = 2025-01-01\ninput = 1\noutput = 2\n",
            ["no [providers.other] table; add one"],
        ),
        (
            '[[models]]\nprovider = "lab"\nmodel = "m"\nsource = "https://x.example"\n'
            "[[models.prices]]\neffective_from = 2025-01-01\ninput = 1\noutput = 2000000.5\n",
            ["models[0](lab/m).prices[0].output = 2000000.5:", "per *million* tokens"],
        ),
        (
            '[[models]]\nprovider = "lab"\nmodel = "m"\nsource = "https://x.example"\n'
            "aliases = ['n']\n[[models.prices]]\neffective_from = 2025-01-01\ninput = 1\n"
            'output = 2\n[[models]]\nprovider = "lab"\nmodel = "n"\nsource = "https://x.example"\n'
            "[[models.prices]]\neffective_from = 2025-01-01\ninput = 1\noutput = 2\n",
            ["lab/n is claimed by 'm' and 'n'"],
        ),
    ],
)
def test_catalog_file_errors_name_key_and_fix(
    tmp_path: Path, body: str, expected: list[str]
) -> None:
    path = write_catalog(tmp_path, body)
    with pytest.raises(PricingError) as caught:
        Pricer.from_config({"catalog_file": str(path)})
    assert str(path) in str(caught.value)
    for fragment in expected:
        assert fragment in str(caught.value)


def test_1h_cache_writes_cost_the_1h_rate_of_the_row_tier_batch_and_scaled_path() -> None:
    """Hostile report 13, item 3: claude-sonnet-4-5 writes are $3.75/M for 5 minutes and $6/M
    for 1 hour ($7.50 / $12 above 200k input tokens, half in batch); an override without a
    1-hour rate keeps its own write rate for both."""
    base = {"provider": "anthropic", "model": "claude-sonnet-4-5", "output_tokens": 50}
    when = datetime(2026, 11, 3, tzinfo=UTC)
    cases = [
        (
            {"input_tokens": 300, "cache_write_tokens": 200, "cache_write_1h_tokens": 200},
            D(12) / 10**4,
        ),
        ({"input_tokens": 300, "cache_write_tokens": 200}, D("0.00075")),
        (
            {"input_tokens": 300, "cache_write_tokens": 200, "cache_write_1h_tokens": 50},
            150 * D("3.75") / M + 50 * D(6) / M,
        ),
        (
            {"input_tokens": 300_000, "cache_write_tokens": 1_000, "cache_write_1h_tokens": 400},
            600 * D("7.50") / M + 400 * D(12) / M,
        ),
        (
            {
                "input_tokens": 300,
                "cache_write_tokens": 200,
                "cache_write_1h_tokens": 200,
                "batch": True,
            },
            200 * D(3) / M,
        ),
    ]
    pricer = default_pricer()
    for fields, expected in cases:
        event = UsageEvent(**base, **fields, event_time=when)
        rating = pricer.rate(event)
        assert rating.cost_cache_write == expected, fields
        hour = fields.get("cache_write_1h_tokens", 0)
        assert rating.cost_cache_write_1h <= rating.cost_cache_write
        assert (rating.cost_cache_write_1h == 0) == (hour == 0)
        assert ScaledPricer(pricer).rate(event).cost_total == rating.cost_total
    negotiated = Override(
        name="acme",
        provider="anthropic",
        model="claude-sonnet-4-5",
        input=2,
        output=10,
        cache_write=3,
    )
    event = UsageEvent(**base, input_tokens=300, cache_write_tokens=200, cache_write_1h_tokens=200)
    assert Pricer(pricer.catalog, [negotiated]).rate(event).cost_cache_write == 200 * D(3) / M
