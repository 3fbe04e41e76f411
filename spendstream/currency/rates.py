"""Exchange rates from USD (the ledger's currency) to the currencies people read, and exact
conversion with them. Pure: no storage, no I/O (``currency.store`` keeps imported rates).

A rate is the number of units of a currency one US dollar buys on a day (``EUR 0.9213``):
converting is a multiplication, so a converted figure is exact (Decimal, no rounding until it is
shown). A :class:`RateTable` is effective-dated: the rate in force on a day is the newest rate
dated on or before it, if it is at most ``max_age_days`` old (a weekend or a holiday without a
published rate uses the last working day's); otherwise, or with no rate at all, asking for the
day raises :class:`MissingRate`, which names the day. A configured fixed rate is in force on
every day. There is never an implicit rate of 1.
"""

from __future__ import annotations

import bisect
import csv
import io
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation, localcontext

from spendstream.errors import ConflictError, InputError
from spendstream.moments import bounded_day

BASE_CURRENCY = "USD"
CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")
RATE_PLACES = 12  # digits after the point a rate may have (the fx_rates column's scale)
MAX_PROBLEMS = 20  # problems listed per rejected file


class MissingRate(ConflictError):
    """No rate of ``currency`` is in force on ``day``: nothing is converted with a guess."""

    def __init__(self, currency: str, day: date, newest: date | None, max_age_days: int) -> None:
        if newest is None:
            known = f"no {currency} rate is known on or before it"
        else:
            known = (
                f"the newest earlier {currency} rate is of {newest.isoformat()}, more than "
                f"{max_age_days} days before"
            )
        super().__init__(
            f"no USD->{currency} exchange rate in force on {day.isoformat()} ({known}); fix: "
            f"import the day's rate (spendstream rates import rates.csv, or POST /api/v1/rates) "
            f'or configure one: [currency] fixed_rates = {{ {currency} = "0.92" }}'
        )
        self.currency = currency
        self.day = day


class RateFileError(InputError):
    """A rates file that cannot be imported; the message lists each bad line and its fix."""


@dataclass(frozen=True, slots=True)
class Rate:
    """``per_usd`` units of ``currency`` for one USD, dated ``day`` (``fixed``: a configured
    rate in force every day; ``day`` is then the day it was asked for)."""

    currency: str
    day: date
    per_usd: Decimal
    fixed: bool = False

    def describe(self) -> str:
        """``1 USD = 0.9213 EUR on 2026-12-04`` or ``1 USD = 0.92 EUR (fixed rate)``."""
        text = f"1 USD = {self.per_usd.normalize():f} {self.currency}"
        return f"{text} (fixed rate)" if self.fixed else f"{text} on {self.day.isoformat()}"


def convert(usd: Decimal, rate: Rate) -> Decimal:
    """``usd`` in ``rate.currency``, exactly (a product of two Decimals, never rounded)."""
    with localcontext() as context:
        context.prec = 80  # the ledger's 38 digits times a 28-digit rate fit without rounding
        return usd * rate.per_usd


@dataclass(frozen=True)
class Converted:
    """An amount converted day by day, with every rate used (oldest first)."""

    currency: str
    amount: Decimal
    rates: tuple[Rate, ...]

    def describe(self) -> str:
        """The rate beside a converted figure: the one rate, or the span and the latest."""
        if not self.rates:
            return "no spend to convert"
        first, last = self.rates[0], self.rates[-1]
        if first == last or last.fixed:
            return last.describe()
        return (
            f"daily rates of {first.day.isoformat()} to {last.day.isoformat()}, "
            f"latest {last.describe()}"
        )


class RateTable:
    """The rates of one currency, effective-dated (see the module docstring)."""

    def __init__(
        self,
        currency: str,
        rates: Mapping[date, Decimal] | None = None,
        fixed: Decimal | None = None,
        max_age_days: int = 4,
    ) -> None:
        self.currency = currency
        self.fixed = fixed
        self.max_age_days = max_age_days
        ordered = sorted((rates or {}).items())
        self.days = [day for day, _ in ordered]
        self.values = [value for _, value in ordered]

    def rate_on(self, day: date) -> Rate:
        """The rate in force on ``day``; raises :class:`MissingRate` when none is."""
        if self.fixed is not None:
            return Rate(self.currency, day, self.fixed, fixed=True)
        at = bisect.bisect_right(self.days, day) - 1
        if at < 0:
            raise MissingRate(self.currency, day, None, self.max_age_days)
        dated = self.days[at]
        if day - dated > timedelta(days=self.max_age_days):
            raise MissingRate(self.currency, day, dated, self.max_age_days)
        return Rate(self.currency, dated, self.values[at])

    def convert_daily(self, usd_by_day: Mapping[date, Decimal]) -> Converted:
        """The sum of each day's USD amount at that day's rate, exactly. Days with nothing to
        convert need no rate; the first day that has an amount but no rate raises."""
        total = Decimal(0)
        used: list[Rate] = []
        for day in sorted(usd_by_day):
            usd = usd_by_day[day]
            if not usd:
                continue
            rate = self.rate_on(day)
            total += convert(usd, rate)
            if not used or used[-1] != rate:
                used.append(rate)
        return Converted(self.currency, total, tuple(used))


def check_currency(code: str) -> str:
    """An ISO 4217 code other than USD (the ledger's own), upper case; ValueError otherwise."""
    if not CURRENCY_PATTERN.match(code):
        raise ValueError(f"{code!r} is not a currency code: write three capital letters, e.g. EUR")
    if code == BASE_CURRENCY:
        raise ValueError("USD is the ledger's own currency: it needs no rate")
    return code


def check_rate(value: object) -> Decimal:
    """A positive, finite rate with at most :data:`RATE_PLACES` decimals; ValueError otherwise."""
    try:
        rate = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if not rate.is_finite() or rate <= 0:
        raise ValueError(f"{value!r} is not a positive number")
    if -rate.as_tuple().exponent > RATE_PLACES:  # type: ignore[operator]
        raise ValueError(f"{value!r} has more than {RATE_PLACES} decimals")
    if rate.adjusted() >= 38 - RATE_PLACES:
        raise ValueError(f"{value!r} is too large for a rate")
    return rate


@dataclass(frozen=True, slots=True)
class ImportedRate:
    currency: str
    day: date
    per_usd: Decimal


RATE_FIX = "write units of the currency one USD buys, e.g. 0.9213 for EUR"
COLUMNS = ("date", "currency", "rate")


def parse_rates_csv(text: str, name: str = "rates.csv") -> list[ImportedRate]:
    """Daily rates from CSV text with a header naming ``date,currency,rate`` (other columns
    are ignored): ``2026-12-04,EUR,0.9213`` means one USD bought 0.9213 EUR that day. Raises
    :class:`RateFileError` listing each bad line (file, line, column, value, fix); a file with
    any bad line imports nothing."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = [cell.strip().lower() for cell in next(reader, [])]
    missing = [column for column in COLUMNS if column not in header]
    if missing:
        raise RateFileError(
            f"{name}: the header {header or '(empty file)'} lacks {', '.join(missing)}; fix: "
            "start the file with the line date,currency,rate"
        )
    where = {column: header.index(column) for column in COLUMNS}
    problems: list[str] = []
    found: dict[tuple[str, date], ImportedRate] = {}
    for line, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        cells = {c: row[i].strip() if i < len(row) else "" for c, i in where.items()}
        try:
            day = date.fromisoformat(cells["date"])
        except ValueError:
            problems.append(f"{name} line {line}: date = {cells['date']!r}; fix: YYYY-MM-DD")
            continue
        try:
            bounded_day(day)
        except ValueError as exc:
            problems.append(f"{name} line {line}: date: {exc}")
            continue
        try:
            currency = check_currency(cells["currency"].upper())
        except ValueError as exc:
            problems.append(f"{name} line {line}: currency: {exc}")
            continue
        try:
            rate = check_rate(cells["rate"])
        except ValueError as exc:
            problems.append(f"{name} line {line}: rate: {exc}; fix: {RATE_FIX}")
            continue
        earlier = found.get((currency, day))
        if earlier is not None and earlier.per_usd != rate:
            problems.append(
                f"{name} line {line}: a second {currency} rate for {day} ({rate} after "
                f"{earlier.per_usd}); fix: keep one line per currency and day"
            )
        found[(currency, day)] = ImportedRate(currency, day, rate)
    if problems:
        shown = problems[:MAX_PROBLEMS]
        more = len(problems) - len(shown)
        raise RateFileError(
            "\n".join(
                [f"{name}: nothing imported", *shown, *([f"... and {more} more"] if more else [])]
            )
        )
    if not found:
        raise RateFileError(
            f"{name}: no rates in the file; fix: add lines like 2026-12-04,EUR,0.92"
        )
    return sorted(found.values(), key=lambda r: (r.currency, r.day))


def table_of(
    currency: str, rates: Iterable[ImportedRate], fixed: Decimal | None, max_age_days: int
) -> RateTable:
    """The table of ``currency`` from stored or parsed rates (a fixed rate wins)."""
    return RateTable(
        currency,
        {r.day: r.per_usd for r in rates if r.currency == currency},
        fixed,
        max_age_days,
    )
