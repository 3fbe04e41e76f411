"""Our side of the reconciliation: the ledger summed per (day, provider, account, model) cell and
canonical token type, with model names and accounts resolved the way invoice lines are.

Token types match the invoices': ``input`` = input - cache read - cache write (uncached),
``cache_read``, ``cache_write``, ``output`` = all output incl. reasoning (providers bill reasoning
as output), with the ledger's cost columns split the same way (``cost_output + cost_reasoning``).
Response-cached calls (the app answered from its own cache, cost 0) never reached the provider,
so no bill can hold them: they are left out, or their tokens would show as variance.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from spendstream.config import ReconcileSettings
from spendstream.events import RESERVED_TAGS
from spendstream.pricing import Pricer
from spendstream.pricing.normalize import model_candidates, provider_names
from spendstream.reconcile.drivers import unit_driver
from spendstream.reconcile.lines import TOKEN_TYPES, TokenType
from spendstream.sinks.access import Reader
from spendstream.sinks.params import Params, string

CellKey = tuple[date, str, str, str]  # (day, provider, account label, model)

LEDGER_SQL = """
SELECT toDate(event_time) AS day, provider, model, response_model, {account} AS account, priced,
    sum(request_count) AS requests,
    sum(input_tokens - cache_read_tokens - cache_write_tokens) AS t_input,
    sum(cache_read_tokens) AS t_cache_read, sum(cache_write_tokens) AS t_cache_write,
    sum(output_tokens) AS t_output,
    sum(cost_input) AS c_input, sum(cost_cache_read) AS c_cache_read,
    sum(cost_cache_write) AS c_cache_write, sum(cost_output + cost_reasoning) AS c_output,
    sum(cost_units) AS c_units, sumIf(cost_total, team != '') AS tagged_cost,
    sumMap(unit_costs) AS u_costs, sumMap(unit_quantities) AS u_quantities,
    sumMap(mapFilter((k, v) -> mapContains(unit_costs, k), unit_quantities)) AS u_priced
FROM ledger FINAL
WHERE event_time >= {{start:DateTime64(3)}} AND event_time < {{end:DateTime64(3)}}{provider}
    AND NOT response_cached
GROUP BY day, provider, model, response_model, account, priced
"""


def _tag_sql(key: str, params: Params) -> str:
    # Reserved tags have their own ledger columns: reading them skips the whole tags map.
    return key if key in RESERVED_TAGS else f"tags[{string(params, key)}]"


class AccountMap:
    """Provider accounts (project / workspace / API key ids) mapped to our tags.

    An invoice line's label is its API key id when mapped, else its account id when mapped,
    else ``""`` (unmapped). A ledger row's label is the first mapped id whose tags all match
    the row's tags, else ``""``. With no mapping everything is ``""``: one cell per model.
    """

    def __init__(self, mapping: Mapping[str, Mapping[str, str]]) -> None:
        self.mapping = dict(mapping)

    def label(self, account: str, api_key: str = "") -> str:
        if api_key and api_key in self.mapping:
            return api_key
        return account if account in self.mapping else ""

    def tags(self, label: str) -> str:
        """``proj_1 (team=search)`` for display; ``(unmapped)`` for the empty label."""
        if not label:
            return "(unmapped)"
        shown = ",".join(f"{k}={v}" for k, v in sorted(self.mapping[label].items()))
        return f"{label} ({shown})"

    def team(self, label: str) -> str:
        """The ``team`` tag an account maps to (``""``: unmapped, or mapped without a team)."""
        return self.mapping.get(label, {}).get("team", "") if label else ""

    def branches(self, params: Params) -> list[tuple[str, str]]:
        """``(SQL condition on the row's tags, label)`` per mapped id, in mapping order (tag
        keys and values bound in ``params``)."""
        return [
            (
                " AND ".join(
                    f"{_tag_sql(k, params)} = {string(params, v)}" for k, v in tags.items()
                )
                or "1",
                label,
            )
            for label, tags in self.mapping.items()
        ]


def account_sql(accounts: Mapping[str, AccountMap], params: Params) -> str:
    """The SQL expression of a ledger row's account label, over every provider's mapping
    (names, tags and labels from the configuration, bound in ``params``)."""
    branches = [
        f"provider IN ({_names_sql(provider, params)}) AND {condition}, {string(params, label)}"
        for provider, mapping in sorted(accounts.items())
        for condition, label in mapping.branches(params)
    ]
    return f"multiIf({', '.join(branches)}, '')" if branches else "''"


def _names_sql(provider: str, params: Params) -> str:
    return ", ".join(string(params, name) for name in provider_names(provider))


def account_maps(section: ReconcileSettings) -> dict[str, AccountMap]:
    """The configured mappings per provider name (API providers and FOCUS bill providers)."""
    named = {"openai": section.openai, "anthropic": section.anthropic, **section.focus}
    return {name: AccountMap(item.mapping) for name, item in named.items() if item.mapping}


def canonical_model(pricer: Pricer, provider: str, model: str, response_model: str = "") -> str:
    """The catalog name of a model (the served ``response_model`` first); for a model the
    catalog does not know, its name without date / version suffixes, so the invoice's dated
    snapshot (``x-2026-01-01``) meets the ledger's alias (``x``)."""
    for name in (response_model, model):
        if name:
            found = pricer.find_model(provider, name)
            if found is not None:
                return found.entry.model
    return model_candidates(response_model or model)[-1]


def model_names(pricer: Pricer) -> Callable[[str, str, str], str]:
    """:func:`canonical_model` memoised for one computation (names repeat on every line)."""

    @functools.lru_cache(maxsize=4096)
    def name(provider: str, model: str, response_model: str = "") -> str:
        return canonical_model(pricer, provider, model, response_model)

    return name


@dataclass
class LedgerCell:
    """Ledger sums of one cell: priced tokens and costs per type, unpriced tokens."""

    tokens: dict[TokenType, int] = field(default_factory=lambda: dict.fromkeys(TOKEN_TYPES, 0))
    cost: dict[TokenType, Decimal] = field(
        default_factory=lambda: dict.fromkeys(TOKEN_TYPES, Decimal(0))
    )
    unpriced_tokens: dict[TokenType, int] = field(
        default_factory=lambda: dict.fromkeys(TOKEN_TYPES, 0)
    )
    requests: int = 0
    tagged_cost: Decimal = Decimal(0)
    # Usage units (images, web searches, ...: docs/cost-drivers.md), compared with the invoice's
    # line items that are not tokens: the total, and per driver (reconcile.drivers) our cost,
    # priced quantity and unpriced quantity.
    unit_cost: Decimal = Decimal(0)
    unit_costs: dict[str, Decimal] = field(default_factory=dict)
    unit_quantities: dict[str, Decimal] = field(default_factory=dict)
    unpriced_quantities: dict[str, Decimal] = field(default_factory=dict)

    @property
    def total_cost(self) -> Decimal:
        return sum(self.cost.values(), self.unit_cost)


def _by_driver(into: dict[str, Decimal], value: Any, sign: int = 1) -> None:
    # A Map reads as a dict (clickhouse-connect) or a JSON object of strings (through a worker).
    for unit, amount in dict(value or {}).items():
        driver = unit_driver(str(unit))
        into[driver] = into.get(driver, Decimal(0)) + sign * Decimal(str(amount))


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def ledger_cells(
    reader: Reader,
    pricer: Pricer,
    accounts: Mapping[str, AccountMap],
    start: datetime,
    end: datetime,
    scope: tuple[str, dict[str, Any]] = ("1", {}),
) -> dict[CellKey, LedgerCell]:
    """Ledger sums per cell for ``start <= event_time < end`` (``accounts`` per provider);
    ``scope`` is a SQL condition with its parameters ANDed in (team scoping)."""
    cells: dict[CellKey, LedgerCell] = {}
    if not accounts:
        return cells
    # A bill's provider also claims rows stored under its OpenTelemetry name (spans ingested
    # before those names were mapped: pricing.normalize); a row keeps its own name's bill first.
    homes = {other: name for name in accounts for other in provider_names(name)}
    homes.update({name: name for name in accounts})
    # One ledger scan for every provider: the scan is the cost (docs/benchmarks-reconcile.md).
    where = f" AND provider IN {{providers:Array(String)}} AND ({scope[0]})"
    params = {"start": start, "end": end, "providers": sorted(homes), **scope[1]}
    sql = LEDGER_SQL.format(account=account_sql(accounts, params), provider=where)
    result = reader.query(sql, params)
    canonical = model_names(pricer)
    for row in result.records():
        name = homes[str(row["provider"])]
        model = canonical(name, str(row["model"]), str(row["response_model"]))
        key = (_day(row["day"]), name, str(row["account"]), model)
        cell = cells.setdefault(key, LedgerCell())
        cell.requests += int(row["requests"])
        cell.tagged_cost += Decimal(str(row["tagged_cost"]))
        cell.unit_cost += Decimal(str(row["c_units"]))  # 0 on unpriced rows
        _by_driver(cell.unit_costs, row["u_costs"])
        _by_driver(cell.unit_quantities, row["u_priced"])
        _by_driver(cell.unpriced_quantities, row["u_quantities"])
        _by_driver(cell.unpriced_quantities, row["u_priced"], -1)
        for kind in TOKEN_TYPES:
            count = int(row[f"t_{kind}"])
            if row["priced"] in (True, 1, "true", "1"):
                cell.tokens[kind] += count
                cell.cost[kind] += Decimal(str(row[f"c_{kind}"]))
            else:
                cell.unpriced_tokens[kind] += count
    return cells
