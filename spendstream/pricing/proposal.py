"""A newer LiteLLM price map as a *proposal* for the catalog: what would change, from when.

Nothing here writes the catalog. :func:`propose` turns the unexplained differences of a
comparison (rates that differ and no known difference explains) into proposed rows, each with
the effective date it would take; :func:`proposal_toml` renders them as TOML rows to review and
paste (``[[models.prices]]`` for a base price, ``[[platforms]]`` for a platform price). Each
proposal is then either adopted (paste the row) or rejected (add a ``known_differences`` entry
saying why the catalog's rate stands). See docs/pricing.md "Updating from LiteLLM".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from spendstream.money import decimal_text
from spendstream.pricing.compare import Comparison, RateDifference
from spendstream.pricing.rating import Pricer

BASE_RATES = ("input", "output", "cache_read", "cache_write")


def _current_rates(pricer: Pricer, proposal: Proposal) -> dict[str, Decimal]:
    """The base rates of the row the proposal would follow (empty when there is none)."""
    platform, _, region = proposal.label.partition("/")
    compiled, _placement = pricer.find_placed(
        proposal.provider, proposal.model, platform or None, region or None
    )
    if compiled is None or not compiled.rows:
        return {}
    row = compiled.rows[-1]
    values = {name: getattr(row, name) for name in BASE_RATES}
    return {name: value for name, value in values.items() if value is not None}


@dataclass
class Proposal:
    """New rates for one catalog model at one placement (``label``: ``azure/eu``; '' = base)."""

    provider: str
    model: str
    label: str
    effective_from: date
    changes: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)  # rate: (ours, new)
    litellm_keys: set[str] = field(default_factory=set)

    @property
    def where(self) -> str:
        return f"{self.provider}/{self.model}" + (f"[{self.label}]" if self.label else "")


def propose(comparison: Comparison, effective_from: date) -> list[Proposal]:
    """One proposal per catalog model and placement with unexplained differences. When several
    LiteLLM keys give one rate different values, the first key's value is proposed and the
    others are listed, so the reviewer sees the conflict."""
    proposals: dict[tuple[str, str, str], Proposal] = {}
    for difference in comparison.unexplained:
        key = (difference.provider, difference.catalog_model, _label(difference))
        proposal = proposals.setdefault(key, Proposal(*key, effective_from))
        proposal.litellm_keys.add(difference.litellm_key)
        proposal.changes.setdefault(difference.rate, (difference.catalog, difference.litellm))
    return [proposals[key] for key in sorted(proposals)]


def _label(difference: RateDifference) -> str:
    """The placement a new row should price: the platform rows compared, else the placement of
    the LiteLLM key when it is not the provider's own API (a new platform row)."""
    if difference.price_label:
        return difference.price_label
    if difference.platform in ("api", "bedrock") and not difference.region:
        return ""
    return (
        f"{difference.platform}/{difference.region}" if difference.region else difference.platform
    )


def proposal_toml(proposals: Sequence[Proposal], pricer: Pricer) -> str:
    """The proposals as complete catalog rows (TOML) to review: the row in force today with the
    proposed rates put in; long-context tier rates are listed in a comment, to edit by hand."""
    out: list[str] = []
    for proposal in proposals:
        changed = {name: new for name, (_ours, new) in proposal.changes.items()}
        tiers = {name: value for name, value in changed.items() if name not in BASE_RATES}
        rates = {**_current_rates(pricer, proposal), **changed}
        rates = {name: value for name, value in rates.items() if name in BASE_RATES}
        if not any(name in BASE_RATES for name in changed):
            rates = {}
        keys = ", ".join(sorted(proposal.litellm_keys))
        out.append(f"# {proposal.where}: from LiteLLM {keys}")
        if tiers:
            shown = ", ".join(f"{name} = {decimal_text(value)}" for name, value in tiers.items())
            out.append(f"# long-context tier rates to edit by hand: {shown}")
        if not rates:
            out.append("")
            continue
        if proposal.label:
            platform, _, region = proposal.label.partition("/")
            out += [
                "[[platforms]]",
                f'provider = "{proposal.provider}"',
                f'platform = "{platform}"',
                f'regions = ["{region or "*"}"]',
                f'models = ["{proposal.model}"]',
                'source = "https://"  # the provider page that confirms these rates',
                "[[platforms.prices]]",
            ]
        else:
            out.append(
                f"# append to the [[models]] entry of {proposal.where}; keep its other rates"
            )
            out.append("[[models.prices]]")
        out.append(f"effective_from = {proposal.effective_from.isoformat()}")
        out += [f"{name} = {decimal_text(value)}" for name, value in rates.items()]
        out.append("")
    return "\n".join(out)
