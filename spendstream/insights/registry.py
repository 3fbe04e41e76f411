"""The insights by name, and the one entry point that runs them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import localcontext

from spendstream.insights import caching, governance, models, outcomes, prompts
from spendstream.insights.base import Context, InsightError, InsightResult
from spendstream.pricing.compiled import EXACT


@dataclass(frozen=True)
class Insight:
    name: str
    description: str
    run: Callable[[Context], InsightResult]


INSIGHTS: dict[str, Insight] = {
    insight.name: insight
    for insight in (
        Insight(
            "rightsize",
            "per feature and model: spend, p50/p95 tokens, the same traffic re-priced on "
            "cheaper models of the provider's lower tiers (price estimates, not quality)",
            models.rightsize,
        ),
        Insight(
            "batch",
            "non-interactive features: spend not sent as batch and the batch discount saving",
            models.batch,
        ),
        Insight(
            "caching",
            "realised prompt-cache savings, prompt-cache opportunity, response-cache savings, "
            "identical requests paid twice",
            caching.caching,
        ),
        Insight(
            "prompts", "input tokens per event per feature and week (p50/p95)", prompts.prompts
        ),
        Insight("prompt_growth", "features whose p50 prompt grew fastest", prompts.prompt_growth),
        Insight(
            "truncation",
            "share and spend of responses cut at max_tokens (finish_reason = length)",
            prompts.truncation,
        ),
        Insight(
            "embeddings",
            "embedding spend per feature and re-embedding of identical content",
            caching.embeddings,
        ),
        Insight(
            "outcomes",
            "cost per outcome per day, feature and model (outcomes from recorder.outcome)",
            outcomes.outcomes,
        ),
        Insight(
            "governance",
            "coverage of required tags as a share of spend, per tag and week, with its trend",
            governance.governance,
        ),
        Insight(
            "untagged",
            "the sources (team or unallocated, app, user) of spend lacking required tags",
            governance.untagged,
        ),
    )
}


def run_insight(name: str, context: Context) -> InsightResult:
    """Run insight ``name``; InsightError names the valid ones. Decimal arithmetic is exact."""
    insight = INSIGHTS.get(name)
    if insight is None:
        raise InsightError(f"no insight {name!r}; choose from {', '.join(INSIGHTS)}")
    with localcontext(EXACT):
        return insight.run(context)
