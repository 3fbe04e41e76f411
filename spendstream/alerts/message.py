"""Alert message text (Markdown): what crossed, the figures, who drives the spend, and the SQL
to drill down. Rendered once when the alert is created and stored with it, so a retried or
delayed delivery sends exactly what was true at the crossing."""

from __future__ import annotations

from decimal import Decimal

from spendstream.alerts.config import BudgetConfig
from spendstream.alerts.figures import BudgetFigures
from spendstream.matching import scope_text
from spendstream.money import format_money, format_usd
from spendstream.notifications.records import NotificationKind
from spendstream.notifications.text import inert
from spendstream.periods import format_time, period_label


def budget_money(budget: BudgetConfig, value: Decimal) -> str:
    """A budget-level figure in the budget's currency (USD unless ``currency`` is set)."""
    return format_money(value, budget.currency or "USD")


def headline(kind: NotificationKind, threshold: int, figures: BudgetFigures) -> str:
    name = figures.budget.name
    if kind == "forecast":
        limit = budget_money(figures.budget, figures.limit)
        return f"{name}: forecast to exceed its {limit} budget"
    if kind == "spike":
        return f"{name}: spend spike"
    if kind == "reminder":
        return f"{name}: still over {threshold}% of budget (reminder)"
    if kind == "prompt_growth":
        return f"{name}: prompts grew {threshold}% or more week over week (p50 input tokens)"
    if figures.ended:  # evaluated again after it ended: late events crossed it
        budget, start = figures.budget, figures.windows.period_start
        label = period_label(budget.period, budget.timezone, start, budget.fiscal_year_start)
        ended = label.split(" (")[0]  # the period; its zone and bounds are in the body
        return f"{name}: {threshold}% of budget reached for {ended} (ended), crossed by late events"
    return f"{name}: {threshold}% of budget reached"


def render(
    kind: NotificationKind,
    threshold: int,
    figures: BudgetFigures,
    contributors: dict[str, list[tuple[str, Decimal]]],
    drilldown: str,
    why: str | None = None,
) -> tuple[str, str]:
    """``(title, body)`` for one alert; ``why``: Explain's sentence (top drivers), if any."""
    budget, w = figures.budget, figures.windows
    fiscal = budget.fiscal_year_start
    lines = [
        f"**{headline(kind, threshold, figures)}**",
        f"Budget: {inert(budget.name)}"
        + (f" (owner: {inert(budget.owner)})" if budget.owner else ""),
        f"Scope: {inert(scope_text(budget.scope_filters))}",
        f"Period: {period_label(budget.period, budget.timezone, w.period_start, fiscal)}, "
        f"{format_time(w.period_start)} to {format_time(w.period_end)}",
        f"Spend: {budget_money(budget, figures.spend)} of {budget_money(budget, figures.limit)} "
        f"limit ({figures.percent}%)" + (f", {budget.unit} only" if budget.unit else ""),
    ]
    if figures.ended:
        lines.append(
            "Late: this period had ended; events dated inside it arrived afterwards (within "
            "[alerts] late_grace) and took its spend over the threshold"
        )
    if figures.converted is not None:
        lines.append(f"Rate: spend converted from USD at {figures.converted.describe()}")
    if budget.rollover_cap is not None:
        lines.append(
            f"Rollover: {budget_money(budget, figures.carried)} carried from the previous "
            f"period (cap {budget_money(budget, budget.rollover_cap)}) onto the "
            f"{budget_money(budget, budget.limit)} limit"
        )
    forecast = figures.forecast
    if forecast is not None:
        overrun = figures.overrun_at
        lines.append(
            f"Forecast: {budget_money(budget, forecast)} by period end"
            + (f"; limit reached around {format_time(overrun)}" if overrun else "")
        )
    if kind == "prompt_growth" and figures.prompts is not None:
        p = figures.prompts
        lines.append(
            f"Prompts: p50 {p.p50} input tokens per call over the last 7 days ({p.events} calls)"
            f" vs {p.previous_p50} the 7 days before ({p.previous_events} calls)"
        )
    if kind == "spike":
        lines.append(
            f"Spike: {budget_money(budget, figures.recent_spend)} in the last "
            f"{int((w.now - w.spike_start).total_seconds() // 60)} min vs "
            f"{budget_money(budget, figures.baseline_spend)} in the "
            f"{int((w.spike_start - w.baseline_start).total_seconds() // 60)} min before"
        )
    if why:
        lines.append(f"Why: {inert(why)}")
    for dim, top in contributors.items():
        if top:
            shown = ", ".join(
                f"{inert(value) if value else '(none)'} {format_usd(spend)}" for value, spend in top
            )
            lines.append(f"Top {dim}s: {shown}")
    fenced = drilldown.replace("```", "ˋˋˋ")  # scope values cannot close the fence
    lines += ["Drill down (spendstream sql):", f"```\n{fenced}\n```"]
    return f"[spendstream] {headline(kind, threshold, figures)}", "\n".join(lines)
