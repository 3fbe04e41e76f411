"""Variance: invoiced vs our ledger per cell (day x provider x account x model), with the
difference split into causes that add up to it exactly (Decimal).

Per cell and token type ``t`` (``A`` invoiced dollars, ``N`` invoiced tokens, ``L``/``C`` our
priced tokens/cost, ``U`` our unpriced tokens, ``p = A / N`` the invoice's effective unit price):

- ``unpriced``       = U x p                (tokens we logged but could not price)
- ``never_seen``     = (N - L - U) x p      (tokens the provider metered that no event carried;
  negative when we logged tokens the provider did not bill)
- ``hidden``         = the same gap, for output (reasoning) and cache-write tokens, when every
  request was seen (invoiced requests <= ours, or, without request counts, invoiced input-side
  tokens <= ours): the events omitted a token type rather than whole calls
- ``price_drift``    = A - C - unpriced - never_seen - hidden  (= p x L - C: our rate vs theirs)
- ``unexplained``    = every dollar of a (provider, day) for which no token counts were loaded

Line items that are not tokens (web search, code execution, ...) are compared per **driver**
with our usage units (docs/cost-drivers.md) by :func:`spendstream.reconcile.drivers.split_driver`:
price drift and never-seen usage when the invoice carries the driver's quantity, else the
driver's difference is unexplained; unmapped line items stay unexplained. Each cell keeps its
per-driver lines (``tokens`` and one per driver), which add up to the cell.

So ``invoiced - ours = price_drift + never_seen + unpriced + hidden + unexplained`` holds
exactly for every cell and every sum of cells. A ledger model the provider billed no tokens of
(``N = 0``) counts as ``never_seen = -C``. Only (provider, day) pairs present in a loaded report
are compared.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from spendstream.auth.roles import Principal
from spendstream.auth.scope import team_condition
from spendstream.pricing import Pricer
from spendstream.pricing.compiled import EXACT
from spendstream.reconcile.drivers import TOKENS, DriverSums, line_driver, split_driver
from spendstream.reconcile.ledger_side import (
    AccountMap,
    CellKey,
    LedgerCell,
    ledger_cells,
    model_names,
)
from spendstream.reconcile.lines import AMOUNT_QUANTUM, TOKEN_TYPES, InvoiceLine, TokenType
from spendstream.sinks.access import Reader

ZERO = Decimal(0)
HIDDEN_TYPES: tuple[TokenType, ...] = ("output", "cache_write")
SEEN_TYPES: tuple[TokenType, ...] = ("input", "cache_read")


@dataclass
class InvoiceCell:
    amount: dict[TokenType, Decimal] = field(
        default_factory=lambda: dict.fromkeys((*TOKEN_TYPES, "other"), ZERO)
    )
    tokens: dict[TokenType, int] = field(default_factory=lambda: dict.fromkeys(TOKEN_TYPES, 0))
    requests: int = 0
    # The ``other`` amount (and invoiced quantities) per driver (reconcile.drivers).
    drivers: dict[str, DriverSums] = field(default_factory=dict)


@dataclass
class Variance:
    """One row of the variance (a cell or a sum of cells). Signed: invoiced - ours."""

    invoiced_usd: Decimal = ZERO
    our_usd: Decimal = ZERO
    invoiced_tokens: int = 0
    our_tokens: int = 0
    price_drift: Decimal = ZERO
    never_seen: Decimal = ZERO
    unpriced: Decimal = ZERO
    hidden: Decimal = ZERO
    unexplained: Decimal = ZERO
    attributed_usd: Decimal = ZERO  # invoiced dollars our tags attribute (coverage)

    @property
    def difference(self) -> Decimal:
        return self.invoiced_usd - self.our_usd

    @property
    def explained(self) -> Decimal:
        return self.price_drift + self.never_seen + self.unpriced + self.hidden + self.unexplained

    @property
    def percent(self) -> Decimal | None:
        """The difference as a percentage of the invoice (None when nothing was invoiced)."""
        if not self.invoiced_usd:
            return None
        return (self.difference * 100 / self.invoiced_usd).quantize(Decimal("0.01"))

    @property
    def coverage(self) -> Decimal | None:
        if not self.invoiced_usd:
            return None
        return (self.attributed_usd * 100 / self.invoiced_usd).quantize(Decimal("0.01"))

    def add(self, other: Variance) -> None:
        for item in fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))


def _money(value: Decimal) -> Decimal:
    return value.quantize(AMOUNT_QUANTUM, context=EXACT)


def all_seen(invoice: InvoiceCell, ours: LedgerCell) -> bool:
    """Every call the provider metered reached our ledger (see the module docstring)."""
    if invoice.requests:
        return invoice.requests <= ours.requests
    # Input + cache-read on both sides, as documented: cache writes are a hidden-type
    # candidate themselves, so counting ours here would call a call seen because of them.
    billed = invoice.tokens["input"] + invoice.tokens["cache_read"]
    logged = sum(ours.tokens[t] + ours.unpriced_tokens[t] for t in SEEN_TYPES)
    return billed <= logged


def split_tokens(invoice: InvoiceCell, ours: LedgerCell, metered: bool) -> Variance:
    """The token part of a cell (its ``tokens`` driver line)."""
    v = Variance(
        invoiced_usd=sum((invoice.amount[t] for t in TOKEN_TYPES), ZERO),
        our_usd=sum(ours.cost.values(), ZERO),
        invoiced_tokens=sum(invoice.tokens.values()),
        our_tokens=sum(ours.tokens.values()) + sum(ours.unpriced_tokens.values()),
    )
    seen = all_seen(invoice, ours)
    for t in TOKEN_TYPES:
        billed, ours_cost = invoice.amount[t], ours.cost[t]
        if not metered:
            v.unexplained += billed - ours_cost
            continue
        if not invoice.tokens[t]:
            v.never_seen -= ours_cost
            v.unexplained += billed
            continue
        price = EXACT.divide(billed, invoice.tokens[t])
        unpriced = _money(EXACT.multiply(ours.unpriced_tokens[t], price))
        gap = invoice.tokens[t] - ours.tokens[t] - ours.unpriced_tokens[t]
        gap_value = _money(EXACT.multiply(gap, price))
        if t in HIDDEN_TYPES and seen and gap > 0:
            v.hidden += gap_value
        else:
            v.never_seen += gap_value
        v.unpriced += unpriced
        v.price_drift += billed - ours_cost - unpriced - gap_value
    return v


@dataclass
class DriverLine:
    """One driver of a cell (or a sum of cells): its variance and quantities (``None``: the
    invoice carries no quantity for it; token drivers count tokens in the variance instead)."""

    variance: Variance
    invoiced_quantity: Decimal | None = None
    our_quantity: Decimal = ZERO

    def add(self, other: DriverLine) -> None:
        self.variance.add(other.variance)
        mine, theirs = self.invoiced_quantity, other.invoiced_quantity
        self.invoiced_quantity = None if mine is None or theirs is None else mine + theirs
        self.our_quantity += other.our_quantity


def split_drivers(invoice: InvoiceCell, ours: LedgerCell, metered: bool) -> dict[str, DriverLine]:
    """The cell's lines per driver (``tokens`` first); their variances add up to the cell's."""
    lines = {TOKENS: DriverLine(split_tokens(invoice, ours, metered))}
    names = set(invoice.drivers) | set(ours.unit_costs) | set(ours.unit_quantities)
    names |= set(ours.unpriced_quantities)
    for name in sorted(names):
        billed = invoice.drivers.get(name, DriverSums())
        sums = DriverSums(
            invoiced=billed.invoiced,
            quantity=billed.quantity,
            cost=ours.unit_costs.get(name, ZERO),
            ours=ours.unit_quantities.get(name, ZERO),
            unpriced=ours.unpriced_quantities.get(name, ZERO),
        )
        split = split_driver(name, sums)
        v = Variance(
            invoiced_usd=sums.invoiced,
            our_usd=sums.cost,
            price_drift=split.price_drift,
            never_seen=split.never_seen,
            unpriced=split.unpriced,
            unexplained=split.unexplained,
        )
        lines[name] = DriverLine(v, sums.quantity, sums.ours + sums.unpriced)
    # Amounts set on the cell directly (not through a driver) and unit costs no driver holds.
    mapped_usd = sum((d.invoiced for d in invoice.drivers.values()), ZERO)
    billed_rest = invoice.amount["other"] - mapped_usd
    our_rest = ours.unit_cost - sum(ours.unit_costs.values(), ZERO)
    if billed_rest or our_rest:
        rest = Variance(invoiced_usd=billed_rest, our_usd=our_rest)
        rest.unexplained = billed_rest - our_rest
        lines["other"] = DriverLine(rest)
    return lines


def split_cell(invoice: InvoiceCell, ours: LedgerCell, metered: bool, mapped: bool) -> Variance:
    """The variance of one cell; ``metered``: token counts were loaded for its provider/day."""
    return cell_variance(split_drivers(invoice, ours, metered), ours, mapped)


def cell_variance(lines: Mapping[str, DriverLine], ours: LedgerCell, mapped: bool) -> Variance:
    """The sum of a cell's driver lines, with the invoiced dollars our tags attribute."""
    v = Variance()
    for line in lines.values():
        v.add(line.variance)
    if mapped:
        v.attributed_usd = v.invoiced_usd
    elif ours.total_cost:
        v.attributed_usd = _money(
            EXACT.divide(EXACT.multiply(v.invoiced_usd, ours.tagged_cost), ours.total_cost)
        )
    return v


def invoice_cells(
    lines: Iterable[InvoiceLine], pricer: Pricer, accounts: Mapping[str, AccountMap]
) -> tuple[dict[CellKey, InvoiceCell], set[tuple[str, date]], set[tuple[str, date]]]:
    """Invoice sums per cell, the (provider, day) pairs reported, and those with token counts."""
    cells: dict[CellKey, InvoiceCell] = {}
    reported: set[tuple[str, date]] = set()
    metered: set[tuple[str, date]] = set()
    canonical = model_names(pricer)
    lines = list(lines)
    # Token counts of a usage report win over the quantities a cost report carries (OpenAI's
    # ``quantity``): the same tokens must not count twice.
    usage_days = {(line.provider, line.day) for line in lines if line.kind == "usage"}
    for line in lines:
        counted = line.kind != "cost" or (line.provider, line.day) not in usage_days
        mapping = accounts.get(line.provider) or AccountMap({})
        model = canonical(line.provider, line.model, "") if line.model else ""
        key = (line.day, line.provider, mapping.label(line.account, line.api_key), model)
        cell = cells.setdefault(key, InvoiceCell())
        reported.add((line.provider, line.day))
        if line.kind in ("cost", "focus"):
            cell.amount[line.token_type] += line.amount_usd
            if line.token_type == "other":
                cell.drivers.setdefault(line_driver(line), DriverSums()).invoiced += line.amount_usd
        quantity_line = line.kind == "usage" or (line.kind == "cost" and counted)
        if quantity_line and line.token_type == "other" and line.tokens:
            # an invoiced quantity (web searches)
            sums = cell.drivers.setdefault(line_driver(line), DriverSums())
            sums.quantity = (sums.quantity or ZERO) + line.tokens
        if counted and line.token_type != "other" and (line.kind == "usage" or line.tokens):
            cell.tokens[line.token_type] += line.tokens
            metered.add((line.provider, line.day))
        cell.requests += line.requests
    return cells, reported, metered


@dataclass(frozen=True)
class CellVariance:
    key: CellKey
    variance: Variance
    drivers: Mapping[str, DriverLine] = field(default_factory=dict)


def compute_variance(
    reader: Reader,
    lines: list[InvoiceLine],
    pricer: Pricer,
    accounts: Mapping[str, AccountMap],
    start: date,
    end: date,
    caller: Principal | None = None,
) -> list[CellVariance]:
    """Every cell of ``start <= day < end`` present in a loaded report, sorted by key.

    A team-scoped ``caller`` sees only cells of accounts mapped to one of its teams, computed
    from ledger rows of its teams (:func:`spendstream.auth.scope.team_condition`)."""
    invoiced, reported, metered = invoice_cells(lines, pricer, accounts)
    begin = datetime(start.year, start.month, start.day, tzinfo=UTC)
    finish = datetime(end.year, end.month, end.day, tzinfo=UTC)
    providers = {provider: accounts.get(provider) or AccountMap({}) for provider, _ in reported}
    scope = team_condition(caller) if caller is not None else ("1", {})
    teams = caller.teams if caller is not None else None
    ours = ledger_cells(reader, pricer, providers, begin, finish, scope) if providers else {}
    keys = set(invoiced) | {k for k in ours if (k[1], k[0]) in reported}
    if teams is not None:
        keys = {k for k in keys if providers[k[1]].team(k[2]) in teams}
    result = []
    for key in sorted(keys):
        day, provider, label, _model = key
        mine = ours.get(key, LedgerCell())
        parts = split_drivers(invoiced.get(key, InvoiceCell()), mine, (provider, day) in metered)
        result.append(CellVariance(key, cell_variance(parts, mine, bool(label)), parts))
    return result


def day_range(since: datetime, until: datetime) -> tuple[date, date]:
    """Whole UTC days covering ``[since, until)``: invoices are daily."""
    start = since.astimezone(UTC).date()
    end_moment = until.astimezone(UTC)
    end = end_moment.date()
    if end_moment.time() != datetime.min.time() or end == start:
        end += timedelta(days=1)
    return start, end
