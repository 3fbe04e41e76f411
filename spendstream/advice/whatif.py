"""What-if: the real traffic of a period re-rated under changes, without writing the ledger.

Events are summed per (UTC day, team, app, env, feature, provider, model, batch, long-context
bucket) in SQL, from the lean drivers rollups (whole hours and days; the partial hours at the
edges from ``ledger FINAL``, ``sinks.windows``) when every tier threshold is above
``LONG_INPUT_FLOOR`` (their ``long_input`` tells the bucket exactly), else from the ledger.
Each group's token sums are priced with the pricing engine's rates
(:mod:`spendstream.insights.reprice`, exact Decimal), so the figures equal rating every event
again. Changes apply, in the order given, to the groups whose columns match their ``scope``:

- ``model``: the scope's traffic on ``to_model`` (``to_provider``, default its own provider),
  at the price the ledger's pricing gives that model for the group's tags on each day: an
  override of the target model in force for them (an override of the old model does not
  follow the traffic), else its list rates (tier and batch rates included);
- ``batch``: the scope's traffic sent through the batch API (the batch rates of the price in
  force: an override's own ``batch_discount``, else the model's);
- ``cache_read``: a ``share`` (0..1) of each event's uncached input read from the prompt cache
  (at the cache-read rate of the price in force);
- ``rates``: the scope's tokens at the given USD-per-million rates, as a price override with
  those absolute prices would charge them (``input``, ``output``, optional
  ``cache_read``/``cache_write``; batch calls get the model's batch discount; it replaces any
  override in force);
- ``price``: every cost of the scope (units included) times ``1 + percent / 100``, on top of
  whatever price the group has;
- ``drop``: the scope's traffic removed.

``before`` is what the ledger charged (``cost_total``). A group no change touches keeps it. A
re-priced group's ``after`` is ``before`` plus (its tokens under the changes - its tokens as
they were), both priced on one basis: the rates the ledger's pricing applies on the group's day
to its provider, model and tags (``team``, ``app``, ``env``, ``feature``), negotiated overrides
and price versions included. So a change that changes nothing gives ``after == before`` to the
last digit, and a change under an override saves the override's share. Where the ledger has no
price for the old tokens (an unknown model), their ledger token cost stands for them. Events
the app answered from its own cache (``response_cached``) cost nothing and are never re-priced
(``price`` and ``drop`` still apply). A group's new cost is rounded half-even to 1e-18 (exact
unless a share or a percent makes more decimals).

Limits of the one basis: a group is priced as at 00:00 UTC of its day (an override starting
within a day counts from the next), and overrides whose ``tags`` name other keys than the four
above (``user``, ``customer``, free tags) never match a group; the platform/region rows of a
placed call are not told apart (the base rows price both sides of the difference).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from spendstream.advice.model import utc_moment
from spendstream.events import TagKey, TagValue
from spendstream.insights.reprice import (
    BUCKET_SQL,
    TOKEN_SUMS,
    TOKENS,
    ListPrices,
    TokenSums,
    cost_of,
)
from spendstream.pricing import Pricer
from spendstream.pricing.catalog import Rates
from spendstream.pricing.compiled import EXACT, TokenRates
from spendstream.sinks.access import Reader
from spendstream.sinks.migrations import LEAN_DRIVER_TABLES, LONG_INPUT_FLOOR
from spendstream.sinks.windows import spend_source, window_parameters

DIMENSIONS = ("team", "app", "env", "feature", "provider", "model")
# The dimensions that are tags of the events: what a price override's ``tags`` can match here.
TAG_DIMENSIONS = ("team", "app", "env", "feature")
ATTO = Decimal("1e-18")
GROUPS_SQL = (
    f"SELECT toDate(event_time) AS day, {', '.join(DIMENSIONS)}, batch, response_cached, "
    f"{BUCKET_SQL} AS bucket, "
    f"count() AS events, sum(cost_total) AS cost, sum(cost_units) AS units, {TOKEN_SUMS} "
    "FROM ledger FINAL WHERE event_time >= {since:DateTime64(3)} "
    "AND event_time < {until:DateTime64(3)} AND ({team_sql}) "
    f"GROUP BY day, {', '.join(DIMENSIONS)}, batch, response_cached, bucket"
)
ROLLUP_SUMS = ", ".join(f"sum(m_{name}) AS sum_{name}" for name in (*TOKENS, "reasoning_tokens"))
MAX_DAYS = 93


def groups_sql(thresholds: list[int], team_sql: str, from_ledger: bool = False) -> str:
    """The grouped read of :data:`GROUPS_SQL`, from the lean drivers rollups unless a tier
    threshold is at or below ``LONG_INPUT_FLOOR`` (or ``from_ledger``); same groups, same sums."""
    if from_ledger or any(threshold < LONG_INPUT_FLOOR for threshold in thresholds):
        return GROUPS_SQL.replace("{team_sql}", team_sql)
    keys = (*DIMENSIONS, "batch", "response_cached")
    inner = spend_source(
        (*keys, "long_input"),
        team_sql,
        units=True,
        tables=(LEAN_DRIVER_TABLES["hour"], LEAN_DRIVER_TABLES["day"]),
    )
    return (
        f"SELECT day, {', '.join(keys)}, "
        "arrayCount(t -> long_input > t, {thresholds:Array(UInt64)}) AS bucket, "
        "sum(m_events) AS events, sum(m_cost_total) AS cost, sum(m_cost_units) AS units, "
        f"{ROLLUP_SUMS} FROM ({inner}) GROUP BY day, {', '.join(keys)}, bucket"
    )


NOTE = (
    "re-priced traffic at the prices in force (catalog list prices and negotiated overrides): "
    "estimates, never a statement about quality"
)


class WhatIfError(ValueError):
    """A what-if that cannot run; the message says what to change."""


Scope = Annotated[dict[TagKey, TagValue], Field(max_length=6)]


class Change(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["model", "batch", "cache_read", "rates", "price", "drop"]
    scope: Scope = Field(default_factory=dict)
    to_model: str | None = None
    to_provider: str | None = None
    share: Annotated[Decimal, Field(ge=0, le=1)] | None = None
    percent: Annotated[Decimal, Field(ge=-100, le=1000)] | None = None
    rates: Rates | None = None

    @model_validator(mode="after")
    def _fields(self) -> Change:
        needs = {"model": "to_model", "cache_read": "share", "price": "percent", "rates": "rates"}
        wanted = needs.get(self.action)
        if wanted and getattr(self, wanted) is None:
            raise ValueError(f"action {self.action!r} needs {wanted!r}")
        unknown = set(self.scope) - set(DIMENSIONS)
        if unknown:
            raise ValueError(f"scope keys {sorted(unknown)}: use {', '.join(DIMENSIONS)}")
        return self

    def matches(self, group: dict[str, Any]) -> bool:
        return all(group[key] == value for key, value in self.scope.items())


class WhatIfRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime
    until: datetime
    changes: Annotated[list[Change], Field(min_length=1, max_length=20)]
    by: Literal["team", "app", "env", "feature", "provider", "model"] = "team"

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, moment: datetime) -> datetime:
        return utc_moment(moment)


@dataclass
class State:
    """One group under the changes so far."""

    provider: str
    model: str
    batch: bool
    tokens: dict[str, Decimal]
    repriced: bool = False
    rates: Rates | None = None  # a ``rates`` change: the scope's new price
    factor: Decimal = Decimal(1)
    dropped: bool = False
    touched: list[int] = field(default_factory=list)

    def sums(self) -> TokenSums:
        t = self.tokens
        return TokenSums(t["input"], t["output"], t["cache_read"], t["cache_write"], t["reasoning"])


def _bool(value: Any) -> bool:
    return value in (True, 1, "true", "1", "True")


def apply(change: Change, state: State) -> None:
    if change.action == "model":
        state.provider = change.to_provider or state.provider
        state.model = change.to_model or state.model
        state.repriced, state.rates = True, None
    elif change.action == "batch":
        state.batch, state.repriced = True, True
    elif change.action == "cache_read":
        share = change.share or Decimal(0)
        t = state.tokens
        moved = (t["input"] - t["cache_read"] - t["cache_write"]) * share
        t["cache_read"] += moved
        state.repriced = True
    elif change.action == "rates" and change.rates is not None:
        state.rates, state.repriced = change.rates, True
    elif change.action == "price":
        state.factor *= 1 + (change.percent or Decimal(0)) / 100
    elif change.action == "drop":
        state.dropped = True


def group_tags(group: dict[str, Any]) -> dict[str, str]:
    """The tags of a group's events that overrides can match (empty: the event had none)."""
    return {key: str(group[key]) for key in TAG_DIMENSIONS if group[key]}


def token_cost(
    group: dict[str, Any], state: State, prices: ListPrices
) -> tuple[Decimal | None, str]:
    """The group's tokens under ``state``, priced as the ledger's pricing would price them on
    the group's day for its tags (overrides and price versions included); a ``rates`` change
    prices them like an override with those absolute prices. (None, why) without a price."""
    row = {**group, "batch": state.batch}
    if state.rates is None:
        rates = prices.effective(state.provider, state.model, row, group_tags(group))
    else:
        model = prices.model(state.provider, state.model)
        discount = model.batch_discount if model is not None else Decimal(0)
        rates = TokenRates.from_rates(state.rates, 1 - discount if state.batch else Decimal(1))
    if rates is not None:
        return cost_of(state.sums(), rates), ""
    if prices.model(state.provider, state.model) is None:
        return None, f"{state.provider}/{state.model} is not in the price catalog"
    return None, f"{state.provider}/{state.model} has no price on {group['day']}"


def after_cost(group: dict[str, Any], original: State, state: State, prices: ListPrices) -> Decimal:
    """The group's cost under its final state (see the module doc)."""
    if state.dropped:
        return Decimal(0)
    cost = Decimal(str(group["cost"]))
    if state.repriced and not _bool(group["response_cached"]):
        new, why = token_cost(group, state, prices)
        if new is None:
            raise WhatIfError(why)
        old, _ = token_cost(group, original, prices)
        if old is None:  # the ledger had no price for them: its token cost is what it charged
            old = cost - Decimal(str(group["units"]))
        cost += new - old
    return (cost * state.factor).quantize(ATTO, ROUND_HALF_EVEN)


def simulate(
    reader: Reader,
    pricer: Pricer,
    request: WhatIfRequest,
    team_sql: str = "1",
    team_params: dict[str, Any] | None = None,
    from_ledger: bool = False,
) -> dict[str, Any]:
    """Before and after per ``by`` value, per day, per change and in total (``from_ledger``:
    group ``ledger FINAL`` rather than the rollups; the same figures, slower)."""
    if request.until <= request.since:
        raise WhatIfError("until must be after since")
    if (request.until - request.since).days > MAX_DAYS:
        raise WhatIfError(f"a what-if covers at most {MAX_DAYS} days")
    prices = ListPrices(pricer)
    params = {
        "since": request.since,
        "until": request.until,
        "thresholds": prices.thresholds,
        **window_parameters(request.since, request.until),
        **(team_params or {}),
    }
    sql = groups_sql(prices.thresholds, team_sql, from_ledger)
    groups = reader.query(sql, params).records()
    by_scope: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    by_day: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    change_events = [0 for _ in request.changes]
    change_sums = [[Decimal(0), Decimal(0)] for _ in request.changes]
    total = [Decimal(0), Decimal(0)]
    with localcontext(EXACT):
        for group in groups:
            sums = TokenSums.of(group)
            tokens = {
                "input": Decimal(sums.input_tokens),
                "output": Decimal(sums.output_tokens),
                "cache_read": Decimal(sums.cache_read_tokens),
                "cache_write": Decimal(sums.cache_write_tokens),
                "reasoning": Decimal(sums.reasoning_tokens),
            }
            original = State(group["provider"], group["model"], _bool(group["batch"]), tokens)
            state = State(original.provider, original.model, original.batch, dict(tokens))
            for index, change in enumerate(request.changes):
                if change.matches(group):
                    apply(change, state)
                    state.touched.append(index)
            before = Decimal(str(group["cost"]))
            after = after_cost(group, original, state, prices) if state.touched else before
            for bucket in (by_scope[group[request.by]], by_day[str(group["day"])[:10]], total):
                bucket[0] += before
                bucket[1] += after
            for index in set(state.touched):
                change_events[index] += int(group["events"])
                change_sums[index][0] += before
                change_sums[index][1] += after

    def rows(table: dict[str, list[Decimal]]) -> list[list[Any]]:
        return [[key, b, a, a - b] for key, (b, a) in sorted(table.items())]

    columns = ["before_usd", "after_usd", "change_usd"]
    return {
        "since": request.since,
        "until": request.until,
        "before_usd": total[0],
        "after_usd": total[1],
        "change_usd": total[1] - total[0],
        "by_scope": {"columns": [request.by, *columns], "rows": rows(by_scope)},
        "by_day": {"columns": ["day", *columns], "rows": rows(by_day)},
        "changes": [
            {
                **change.model_dump(mode="json", exclude_none=True),
                "events": events,
                "before_usd": before,
                "after_usd": after,
                "change_usd": after - before,
            }
            for change, events, (before, after) in zip(
                request.changes, change_events, change_sums, strict=True
            )
        ],
        "note": NOTE,
    }
