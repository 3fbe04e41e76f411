"""Parsers of the providers' admin API responses (saved pages or fetched) into invoice lines.

Shapes (documented by the providers; every page is ``{data: [bucket...], has_more, next_page}``):

- OpenAI Costs API ``/v1/organization/costs``: buckets ``{start_time, end_time, results}`` of
  ``organization.costs.result`` ``{amount: {value, currency}, line_item, project_id, api_key_id,
  quantity}`` (``quantity``: the units billed, tokens for token line items); a line item
  reads ``"<model>, <input|cached input|output>"`` (``batch`` before the kind for batch usage).
- OpenAI Usage API ``/v1/organization/usage/completions`` / ``embeddings``: results with
  ``input_tokens`` (including cached and cache writes), ``input_cached_tokens``,
  ``input_cache_write_tokens`` and ``input_uncached_tokens`` (current API), ``output_tokens``,
  ``num_model_requests``, ``model``, ``project_id``, ``api_key_id``, ``batch``.
- Anthropic ``/v1/organizations/cost_report``: buckets ``{starting_at, ending_at, results}`` with
  ``amount`` in cents as a decimal string, ``currency``, ``cost_type``, ``token_type``, ``model``,
  ``service_tier``, ``context_window``, ``workspace_id``, ``description``.
- Anthropic ``/v1/organizations/usage_report/messages``: results with ``uncached_input_tokens``,
  ``cache_read_input_tokens``, ``cache_creation.ephemeral_5m_input_tokens`` / ``_1h_``,
  ``output_tokens``, ``server_tool_use.web_search_requests`` (the invoiced quantity of web
  searches), ``model``, ``workspace_id``, ``api_key_id``, ``service_tier``, ``context_window``
  (no request count).

JSON must be parsed with ``parse_float=Decimal`` (:func:`load_json`): amounts never pass through
a float.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from spendstream.reconcile.lines import InvoiceLine, Kind, ReportError, TokenType, combine

Bucket = tuple[str, str, date]  # (provider, kind, day): the unit a corrected report replaces

OPENAI_KINDS: dict[str, TokenType] = {
    "input": "input",
    "cached input": "cache_read",
    "output": "output",
}
ANTHROPIC_TOKEN_TYPES: dict[str, TokenType] = {
    "uncached_input_tokens": "input",
    "cache_read_input_tokens": "cache_read",
    "cache_creation.ephemeral_5m_input_tokens": "cache_write",
    "cache_creation.ephemeral_1h_input_tokens": "cache_write",
    "output_tokens": "output",
}
CENTS = Decimal(100)


@dataclass
class Parsed:
    """Lines of one report (summed per key) and the buckets it covers (also the empty ones)."""

    lines: list[InvoiceLine] = field(default_factory=list)
    buckets: set[Bucket] = field(default_factory=set)


def load_json(path: Path) -> Any:
    """A saved API response, numbers as Decimal/int (never float)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path}: not a readable JSON response: {exc}") from None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _decimal(value: Any, where: str) -> Decimal:
    try:
        return Decimal(str(value)) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise ReportError(f"{where}: amount {value!r} is not a number") from None


def _int(value: Any) -> int:
    return int(value or 0)


def _buckets(page: Any, where: str) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    if not isinstance(page, dict) or not isinstance(page.get("data"), list):
        raise ReportError(f"{where}: expected a page {{data: [...], has_more, next_page}}")
    for bucket in page["data"]:
        yield bucket, list(bucket.get("results") or [])


def _day_unix(bucket: dict[str, Any], where: str) -> date:
    try:
        return datetime.fromtimestamp(int(bucket["start_time"]), UTC).date()
    except (KeyError, TypeError, ValueError):
        raise ReportError(f"{where}: bucket without a unix start_time") from None


def _day_iso(bucket: dict[str, Any], where: str) -> date:
    try:
        return datetime.fromisoformat(str(bucket["starting_at"]).replace("Z", "+00:00")).date()
    except (KeyError, ValueError):
        raise ReportError(f"{where}: bucket without an RFC 3339 starting_at") from None


def _openai_kind(results: Iterable[dict[str, Any]]) -> Kind | None:
    for result in results:
        obj = str(result.get("object", ""))
        if obj == "organization.costs.result":
            return "cost"
        if obj.startswith("organization.usage."):
            return "usage"
    return None


def openai_cost_line(day: date, result: dict[str, Any], where: str) -> InvoiceLine:
    amount = result.get("amount") or {}
    currency = str(amount.get("currency", "usd")).lower()
    if currency != "usd":
        raise ReportError(f"{where}: currency {currency!r}; only USD bills are supported")
    item = _text(result.get("line_item"))
    model, token_type, tier, window = parse_openai_line_item(item)
    return InvoiceLine(
        provider="openai",
        kind="cost",
        day=day,
        model=model,
        line_item=item,
        token_type=token_type,
        account=_text(result.get("project_id")),
        api_key=_text(result.get("api_key_id")),
        service_tier=tier,
        context_window=window,
        amount_usd=_decimal(amount.get("value", 0), where),
        # The units billed (tokens for token line items), when the report carries them.
        tokens=_int(_decimal(result.get("quantity") or 0, where)),
    )


def parse_openai_line_item(item: str) -> tuple[str, TokenType, str, str]:
    """``(model, token type, service tier, context)`` of a Costs API line item.

    Seen forms: ``"gpt-4o-mini-2024-07-18, cached input"``, ``"priority | gpt-5, output,
    long context"``, ``"gpt-audio-mini-2025-12-15 audio, input"`` and free text such as
    ``"web search tool calls"``. Text tokens map to a token type; audio or image tokens and free
    text are ``other`` (our ledger does not price them apart), with the model kept when known.
    """
    head, _, rest = item.partition(", ")
    if not rest:
        return "", "other", "", ""
    tier = ""
    if " | " in head:
        tier, head = (part.strip() for part in head.split(" | ", 1))
    model, _, modality = head.strip().partition(" ")
    kind, *qualifiers = (part.strip().lower() for part in rest.split(","))
    if kind.startswith("batch "):
        tier, kind = "batch", kind.removeprefix("batch ")
    token_type = OPENAI_KINDS.get(kind, "other") if modality in ("", "text") else "other"
    return model, token_type, tier, ", ".join(qualifiers)


def openai_usage_lines(day: date, result: dict[str, Any]) -> list[InvoiceLine]:
    embeddings = str(result.get("object", "")).endswith("embeddings.result")
    cached = _int(result.get("input_cached_tokens"))
    written = _int(result.get("input_cache_write_tokens"))
    # The current API reports uncached input itself; older reports only the total.
    uncached = result.get("input_uncached_tokens")
    base = InvoiceLine(
        provider="openai",
        kind="usage",
        day=day,
        model=_text(result.get("model")),
        line_item=("embeddings." if embeddings else "") + "input_uncached_tokens",
        token_type="input",
        account=_text(result.get("project_id")),
        api_key=_text(result.get("api_key_id")),
        service_tier="batch" if result.get("batch") else "",
        tokens=(
            _int(uncached)
            if uncached is not None
            else _int(result.get("input_tokens")) - cached - written
        ),
        # The request count rides on the input line only, so sums count each request once.
        requests=_int(result.get("num_model_requests")),
    )
    if embeddings:
        return [base]
    output = _int(result.get("output_tokens"))
    lines = [
        base,
        replace(
            base,
            line_item="input_cached_tokens",
            token_type="cache_read",
            tokens=cached,
            requests=0,
        ),
        replace(base, line_item="output_tokens", token_type="output", tokens=output, requests=0),
    ]
    if written:  # a line only when reported, so older reports load as before
        lines.append(
            replace(
                base,
                line_item="input_cache_write_tokens",
                token_type="cache_write",
                tokens=written,
                requests=0,
            )
        )
    return lines


def _anthropic_kind(results: Iterable[dict[str, Any]]) -> Kind | None:
    for result in results:
        if "amount" in result:
            return "cost"
        if "uncached_input_tokens" in result or "output_tokens" in result:
            return "usage"
    return None


def anthropic_cost_line(day: date, result: dict[str, Any], where: str) -> InvoiceLine:
    currency = str(result.get("currency") or "USD").upper()
    if currency != "USD":
        raise ReportError(f"{where}: currency {currency!r}; only USD bills are supported")
    raw_type = _text(result.get("token_type"))
    cost_type = _text(result.get("cost_type")) or "tokens"
    token_type = ANTHROPIC_TOKEN_TYPES.get(raw_type, "other") if cost_type == "tokens" else "other"
    return InvoiceLine(
        provider="anthropic",
        kind="cost",
        day=day,
        model=_text(result.get("model")),
        line_item=raw_type if token_type != "other" else cost_type + ":" + raw_type,
        token_type=token_type,
        account=_text(result.get("workspace_id")),
        service_tier=_text(result.get("service_tier")),
        context_window=_text(result.get("context_window")),
        amount_usd=_decimal(result.get("amount", "0"), where) / CENTS,
    )


def anthropic_usage_lines(day: date, result: dict[str, Any]) -> list[InvoiceLine]:
    creation = result.get("cache_creation") or {}
    counts = {
        "uncached_input_tokens": result.get("uncached_input_tokens"),
        "cache_read_input_tokens": result.get("cache_read_input_tokens"),
        "cache_creation.ephemeral_5m_input_tokens": creation.get("ephemeral_5m_input_tokens"),
        "cache_creation.ephemeral_1h_input_tokens": creation.get("ephemeral_1h_input_tokens"),
        "output_tokens": result.get("output_tokens"),
    }
    base = InvoiceLine(
        provider="anthropic",
        kind="usage",
        day=day,
        model=_text(result.get("model")),
        line_item="",
        token_type="other",
        account=_text(result.get("workspace_id")),
        api_key=_text(result.get("api_key_id")),
        service_tier=_text(result.get("service_tier")),
        context_window=_text(result.get("context_window")),
    )
    lines = [
        replace(base, line_item=name, token_type=ANTHROPIC_TOKEN_TYPES[name], tokens=_int(value))
        for name, value in counts.items()
    ]
    # Server tool calls: the invoiced quantity of a cost driver (reconcile.drivers), a line only
    # when non-zero so reports without tool use load as before.
    searches = _int((result.get("server_tool_use") or {}).get("web_search_requests"))
    if searches:
        lines.append(
            replace(base, line_item="server_tool_use.web_search_requests", tokens=searches)
        )
    return lines


def kind_from_name(where: str) -> Kind | None:
    """``cost`` or ``usage`` when the file (or endpoint) name says which and not both."""
    name = where.rsplit("/", 1)[-1].lower()
    said = [kind for kind in ("cost", "usage") if kind in name]
    return "cost" if said == ["cost"] else "usage" if said == ["usage"] else None


def parse_pages(
    provider: str, pages: Iterable[tuple[str, Any]], kind: Kind | None = None
) -> Parsed:
    """Parse every page (``(where, page)``: where names the file or URL for errors).

    A page's kind (cost or usage report) is read from its results; a page whose buckets are all
    empty takes ``kind`` (the endpoint it was fetched from), else its file name's (``*cost*``
    or ``*usage*``), else it is refused: its empty days replace stored days of that kind, and a
    guess could withdraw the other kind's lines."""
    if provider not in ("openai", "anthropic"):
        raise ReportError(f"provider {provider!r}: API reports exist for openai and anthropic")
    detect = _openai_kind if provider == "openai" else _anthropic_kind
    parsed = Parsed()
    lines: list[InvoiceLine] = []
    for where, page in pages:
        buckets = list(_buckets(page, where))
        page_kind = detect(r for _, results in buckets for r in results)
        page_kind = page_kind or kind or kind_from_name(where)
        if page_kind is None and buckets:
            raise ReportError(
                f"{where}: every bucket is empty, so nothing says whether this is a cost or a "
                "usage report; name the file *cost*.json or *usage*.json"
            )
        for bucket, results in buckets:
            day = _day_unix(bucket, where) if provider == "openai" else _day_iso(bucket, where)
            for result in results:
                lines += _lines(provider, page_kind, day, result, where)
            if page_kind is not None:
                parsed.buckets.add((provider, page_kind, day))
    parsed.lines = combine(lines)
    return parsed


def _lines(
    provider: str, kind: Kind | None, day: date, result: dict[str, Any], where: str
) -> list[InvoiceLine]:
    if provider == "openai":
        if kind == "cost":
            return [openai_cost_line(day, result, where)]
        return openai_usage_lines(day, result)
    if kind == "cost":
        return [anthropic_cost_line(day, result, where)]
    return anthropic_usage_lines(day, result)
