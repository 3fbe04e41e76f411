"""Pure unit tests of the variance split's edge cases and the alert rule (no ClickHouse)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from spendstream.config import ReconcileAlertSettings
from spendstream.reconcile.alerting import exceeds, inert, render
from spendstream.reconcile.ledger_side import LedgerCell
from spendstream.reconcile.lines import TokenType
from spendstream.reconcile.variance import CellVariance, InvoiceCell, Variance, split_cell

D = Decimal


def cells(
    amount: str, tokens: int, ours: str, our_tokens: int, kind: TokenType = "output"
) -> tuple[InvoiceCell, LedgerCell]:
    invoice, ledger = InvoiceCell(), LedgerCell()
    invoice.amount[kind], invoice.tokens[kind] = D(amount), tokens
    ledger.cost[kind], ledger.tokens[kind] = D(ours), our_tokens
    return invoice, ledger


def test_without_token_counts_everything_is_unexplained() -> None:
    invoice, ledger = cells("10", 0, "7", 100)
    v = split_cell(invoice, ledger, metered=False, mapped=False)
    assert v.difference == v.unexplained == D(3) and v.explained == v.difference


def test_tokens_the_provider_did_not_bill_are_never_seen_negative() -> None:
    invoice, ledger = cells("0", 0, "7", 100)
    invoice.amount["other"] = D("0.5")  # web search: no tokens
    v = split_cell(invoice, ledger, metered=True, mapped=True)
    assert (v.never_seen, v.unexplained, v.difference) == (D(-7), D("0.5"), D("-6.5"))
    assert v.attributed_usd == v.invoiced_usd


def test_a_repeating_effective_price_still_adds_up_exactly() -> None:
    invoice, ledger = cells("1", 3, "0.2", 1, "input")  # p = 1/3: not a finite decimal
    ledger.unpriced_tokens["input"] = 1
    v = split_cell(invoice, ledger, metered=True, mapped=False)
    assert v.explained == v.difference == D("0.8")
    assert v.unpriced == v.never_seen == D("0.333333333333333333")
    assert v.price_drift == D("0.8") - 2 * D("0.333333333333333333")


def test_the_rule_fires_both_ways_above_percent_and_amount() -> None:
    rule = ReconcileAlertSettings(percent=D(5), amount=D(1))
    assert exceeds(Variance(invoiced_usd=D(100), our_usd=D(90)), rule)  # we under-estimate
    assert exceeds(Variance(invoiced_usd=D(100), our_usd=D(110)), rule)  # we over-estimate
    assert not exceeds(Variance(invoiced_usd=D(100), our_usd=D(96)), rule)  # 4 %
    assert not exceeds(Variance(invoiced_usd=D(10), our_usd=D("9.2")), rule)  # $0.80
    assert exceeds(Variance(invoiced_usd=D(0), our_usd=D(2)), rule)


def test_messages_keep_provider_text_inert() -> None:
    assert "<" not in inert("<!channel> *gpt*`x`") and "`" not in inert("`x`")
    cell = CellVariance(
        (date(2026, 11, 2), "openai", "", "<https://evil|click>"),
        Variance(invoiced_usd=D(1), our_usd=D(3)),
    )
    title, body = render(cell, {})
    assert "we over-estimate" in title and "<https" not in body and "https://" not in body
    assert "evil" in body


def test_openai_line_items_in_their_observed_forms() -> None:
    from spendstream.reconcile.providers import parse_openai_line_item as parse

    assert parse("gpt-4o-mini-2024-07-18, cached input") == (
        "gpt-4o-mini-2024-07-18", "cache_read", "", "",
    )  # fmt: skip
    assert parse("priority | gpt-5.5, output, long context") == (
        "gpt-5.5", "output", "priority", "long context",
    )  # fmt: skip
    assert parse("gpt-4o, batch input") == ("gpt-4o", "input", "batch", "")
    assert parse("gpt-audio-mini-2025-12-15 audio, input")[:2] == (
        "gpt-audio-mini-2025-12-15", "other",
    )  # fmt: skip
    assert parse("gpt-image-1 text, input")[:2] == ("gpt-image-1", "input")
    assert parse("web search tool calls") == ("", "other", "", "")
    assert parse("whisper-1, audio")[1] == "other"


def test_retry_after_headers() -> None:
    import httpx

    from spendstream.reconcile.fetch import retry_after

    def wait(**headers: str) -> float | None:
        return retry_after(httpx.Response(429, headers=headers))

    assert wait(**{"retry-after": "2"}) == 2.0
    assert wait(**{"x-ratelimit-reset-requests": "6m0s"}) == 360.0
    assert wait(**{"x-ratelimit-reset-tokens": "1.5s"}) == 1.5
    assert wait(**{"x-ratelimit-reset-requests": "20ms"}) == 0.02
    assert wait(**{"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}) is None
    assert wait() is None


def test_a_driver_splits_only_with_the_invoiced_quantity() -> None:
    from spendstream.reconcile.drivers import DriverSums, split_driver

    # 100 searches billed at $0.012; we logged 90 at $0.010 and 5 whose unit had no price.
    split = split_driver("web_search_calls", DriverSums(D("1.2"), D(100), D("0.9"), D(90), D(5)))
    assert (split.price_drift, split.never_seen, split.unpriced) == (
        D("0.18"),
        D("0.06"),
        D("0.06"),
    )
    assert split.price_drift + split.never_seen + split.unpriced == D("1.2") - D("0.9")
    unknown = split_driver("web_search_calls", DriverSums(D("1.2"), None, D("0.9"), D(90)))
    assert (unknown.unexplained, unknown.price_drift, unknown.never_seen) == (D("0.3"), 0, 0)
    unbilled = split_driver("web_search_calls", DriverSums(D(0), D(0), D("0.9"), D(90)))
    assert (unbilled.never_seen, unbilled.unexplained) == (D("-0.9"), 0)
    unmapped = split_driver("unmapped:x", DriverSums(D(2), D(3)))
    assert unmapped.unexplained == D(2) and unmapped.price_drift == 0


def test_invoice_line_items_map_to_our_unit_names() -> None:
    from spendstream.reconcile.drivers import line_driver, unit_driver
    from spendstream.reconcile.lines import InvoiceLine

    def driver(provider: str, item: str, kind: str = "cost") -> str:
        line = InvoiceLine(provider, kind, date(2026, 11, 2), "", item, "other")  # type: ignore[arg-type]
        return line_driver(line)

    assert driver("anthropic", "web_search:") == "web_search_calls"
    assert driver("anthropic", "code_execution:") == "code_execution_hours"
    assert driver("anthropic", "server_tool_use.web_search_requests", "usage") == "web_search_calls"
    assert driver("openai", "Web search tool calls") == "web_search_calls"
    assert driver("openai", "gpt-image-1 image, output") == "unmapped:gpt-image-1 image, output"
    assert driver("bedrock", "web_search:") == "unmapped:web_search:"
    assert unit_driver("web_search_calls.high") == "web_search_calls"
    assert unit_driver("images.1024x1024.hd") == "images"
