"""Rating: usage event + price catalog (+ overrides) -> exact cost by token type (Decimal, USD).

Cost rule (events carry "input includes cached" and "output includes reasoning", see events.py):

- ``cost_input``       = (input - cache_read - cache_write) x input rate
- ``cost_cache_read``  = cache_read x cache_read rate (input rate if the model has none)
- ``cost_cache_write`` = (cache_write - cache_write_1h) x cache_write rate (input rate if the
  model has none; Anthropic: the 5-minute write price) + cache_write_1h x cache_write_1h rate
  (Anthropic's 1-hour write price; the cache_write rate where the row has none). Its 1-hour part
  is also kept alone as ``cost_cache_write_1h`` (not added to the total again).
- with a separate reasoning rate: ``cost_output`` = (output - reasoning) x output rate and
  ``cost_reasoning`` = reasoning x reasoning rate; otherwise (every shipped model)
  ``cost_output`` = output x output rate and ``cost_reasoning`` = 0.
- Long context: when ``input_tokens`` exceeds a tier's threshold, that tier's rates apply to every
  token of the event. Batch events get the model's batch discount on every rate.
- A ``response_cached`` event (the app answered from its own cache) costs nothing: every cost is
  0 and ``cost_avoided`` holds what the call would have cost under the same rule.

Each cost is quantized to 1e-18 USD (the ledger's Decimal(38, 18)); every token is counted once.
Usage units (images, audio, search calls, ...) are priced by :mod:`spendstream.pricing.units`;
``cost_total`` includes them. An event whose model has no token price but whose tokens are all 0
is priced by its units alone.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from spendstream.events import UsageRecord
from spendstream.pricing.catalog import Catalog, PricingError, load_catalog
from spendstream.pricing.compiled import (
    CompiledModel,
    OverridePlan,
    PricePoint,
    plan_override,
    specificity,
)
from spendstream.pricing.costs import Rating, apply_rates
from spendstream.pricing.normalize import model_candidates, provider_key
from spendstream.pricing.overrides import (
    Override,
    check_unique_names,
    load_override_file,
    parse_pricing_config,
    resolve_path,
)
from spendstream.pricing.platforms import DIRECT_API, Placement, PlatformIndex, placement_of
from spendstream.pricing.units import CompiledUnits, UnitIndex, rate_units

RESOLVE_CACHE_SIZE = 16_384

# Standard logging, not structlog: the SDK prices events too (admission) and must not need the
# worker extra; the worker routes standard records through its own renderer.
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Resolution:
    """What an event's provider/model names resolve to (cached per distinct name pair)."""

    model_key: str  # provider/model after normalisation (reported provider when unknown)
    model: CompiledModel | None
    plans: tuple[OverridePlan, ...]  # matching overrides, most specific first
    unknown_reason: str
    unit_entries: tuple[CompiledUnits, ...] = ()  # catalog unit prices: the model's, then "*"
    placement: Placement = DIRECT_API


def _canonical_json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"cannot hash {type(value).__name__}")


class Pricer:
    """Prices events from a catalog plus negotiated overrides. Immutable and thread-safe."""

    def __init__(self, catalog: Catalog, overrides: Sequence[Override] = ()) -> None:
        self.catalog = catalog
        self.overrides: tuple[Override, ...] = tuple(overrides)
        self._providers: dict[str, str] = {}
        for name, info in catalog.providers.items():
            self._providers[name] = name
            self._providers.update(dict.fromkeys(info.aliases, name))
        self._models: dict[tuple[str, str], CompiledModel] = {}
        for entry in catalog.models:
            compiled = CompiledModel.build(entry, catalog.batch_discount(entry))
            for name in (entry.model, *entry.aliases):
                self._models[(entry.provider, name)] = compiled
        self._placed = PlatformIndex(catalog)
        self._units = UnitIndex(catalog)
        self._check_overrides()
        payload = {
            "catalog": {
                **catalog.model_dump(exclude={"models"}),
                "models": sorted(
                    (entry.model_dump() for entry in catalog.models),
                    key=lambda item: (item["provider"], item["model"]),
                ),
            },
            "overrides": [override.model_dump() for override in self.overrides],
        }
        canonical = json.dumps(payload, sort_keys=True, default=_canonical_json)
        self.catalog_digest: str = hashlib.sha256(canonical.encode()).hexdigest()[:16]
        self._resolve = functools.lru_cache(maxsize=RESOLVE_CACHE_SIZE)(self._resolve_names)

    @classmethod
    def from_config(cls, pricing: dict[str, Any], base_dir: Path | None = None) -> Pricer:
        """Build from the config's ``[pricing]`` table (``Settings.pricing``).

        Relative paths are taken from ``base_dir`` (pass the config file's folder), else the
        current directory. Raises :class:`PricingError` naming the file, the key and the fix.
        """
        config = parse_pricing_config(pricing)
        catalog_path = resolve_path(config.catalog_file, base_dir) if config.catalog_file else None
        catalog = load_catalog(catalog_path)
        overrides: list[Override] = []
        if config.overrides_file:
            path = resolve_path(config.overrides_file, base_dir)
            overrides.extend(validate_overrides(catalog, load_override_file(path), str(path)))
        inline = "config [pricing].overrides"
        check_unique_names(config.overrides, inline)
        overrides.extend(validate_overrides(catalog, config.overrides, inline))
        check_unique_names(overrides, "config [pricing] (overrides_file and inline overrides)")
        pricer = cls(catalog, overrides)
        log.info(
            "pricing loaded: models=%d overrides=%d catalog=%s digest=%s",
            len(catalog.models),
            len(overrides),
            catalog_path or "shipped",
            pricer.catalog_digest,
        )
        return pricer

    # --- name resolution -------------------------------------------------------------------

    def canonical_provider(self, provider: str) -> str | None:
        """The catalog provider for a reported provider name or alias, or None."""
        return self._providers.get(provider_key(provider))

    def find_model(self, provider: str, model: str) -> CompiledModel | None:
        """The catalog model a reported (provider, model) pair resolves to, or None."""
        canonical = self.canonical_provider(provider)
        if canonical is None:
            return None
        for candidate in model_candidates(model):
            found = self._models.get((canonical, candidate))
            if found is not None:
                return found
        return None

    def find_placed(
        self, provider: str, model: str, platform: str | None = None, region: str | None = None
    ) -> tuple[CompiledModel | None, Placement]:
        """The catalog rows a call is priced from (pricing.platforms): the model's rows for its
        placement, else its base rows; None when the model is unknown."""
        compiled = self.find_model(provider, model)
        canonical = self.canonical_provider(provider)
        placement = placement_of(provider, model, canonical, platform, region)
        if compiled is None:
            return None, placement
        return self._placed.lookup(compiled, placement), placement

    def _resolve_names(
        self,
        provider: str,
        model: str,
        response_model: str | None,
        platform: str | None = None,
        region: str | None = None,
    ) -> Resolution:
        # The served model (response_model) is what is billed, when we know it; the requested
        # id may carry the placement (azure/eu/...) that the served name lacks.
        if response_model:
            canonical = self.canonical_provider(provider)
            requested = placement_of(provider, model, canonical, platform, region)
            served = self._resolve_one(
                provider, response_model, requested.platform, requested.region or None
            )
            # Known to us: a catalog model, an override, or unit prices of its own (a
            # provider-wide "*" unit entry says nothing about this model).
            own_units = any(not entry.key.endswith("/*") for entry in served.unit_entries)
            if served.model is not None or served.plans or own_units:
                return served
        return self._resolve_one(provider, model, platform, region)

    def _resolve_one(
        self, provider: str, model: str, platform: str | None = None, region: str | None = None
    ) -> Resolution:
        reported = provider_key(provider)
        canonical = self._providers.get(reported)
        compiled, placement = self.find_placed(provider, model, platform, region)
        name = compiled.entry.model if compiled else _plain_name(model)
        home = canonical or reported
        model_key = f"{home}/{name}"
        ranked = sorted(
            (
                (specificity(override, order), override)
                for order, override in enumerate(self.overrides)
                if override.provider in (reported, canonical) and override.model in ("*", name)
            ),
            key=lambda item: item[0],
            reverse=True,
        )
        plans = tuple(plan_override(override, model_key, compiled) for _key, override in ranked)
        names = [compiled.entry.model] if compiled else []
        units = self._units.lookup(canonical, [*names, *model_candidates(model)])
        if canonical is None:
            reason = f"unknown model {model!r} for provider {provider!r} (provider not in catalog)"
        else:
            reason = f"unknown model {model!r} for provider {provider!r}"
        return Resolution(model_key, compiled, plans, "" if compiled else reason, units, placement)

    def override_model_name(self, override: Override) -> str:
        """The model name an override matches against (catalog name when it resolves)."""
        if override.model == "*":
            return "*"
        compiled = self.find_model(override.provider, override.model)
        return compiled.entry.model if compiled else _plain_name(override.model)

    def _check_overrides(self) -> None:
        normalised: list[Override] = []
        for override in self.overrides:
            name = self.override_model_name(override)
            if override.discount is not None:
                if self.canonical_provider(override.provider) is None:
                    raise PricingError(
                        f"override {override.name!r}: provider {override.provider!r} is not in "
                        "the catalog, so a discount has no list price to apply to; give input "
                        "and output prices instead"
                    )
                if (
                    name != "*"
                    and self.find_model(override.provider, override.model) is None
                    and not self._units.has_model(
                        self.canonical_provider(override.provider), model_candidates(name)
                    )
                ):
                    raise PricingError(
                        f"override {override.name!r}: model {override.model!r} of provider "
                        f"{override.provider!r} is not in the catalog, so a discount has no list "
                        "price to apply to; give input and output prices, or fix the model name "
                        "(see `spendstream prices list`)"
                    )
            normalised.append(override.model_copy(update={"model": name}))
        self.overrides = tuple(normalised)

    # --- rating ----------------------------------------------------------------------------

    def rate(self, event: UsageRecord) -> Rating:
        """Price one event. Pure: the same event always gets the same rating."""
        rating = self._rate(event)
        if not event.response_cached or not rating.priced:
            return rating
        return Rating(
            priced=True,
            price_ref=rating.price_ref,
            model_key=rating.model_key,
            cost_avoided=rating.cost_total,
            placement=rating.placement,
        )

    def resolve(self, event: UsageRecord) -> Resolution:
        """What ``event``'s names resolve to (cached per distinct names)."""
        return self._resolve(
            event.provider, event.model, event.response_model, event.platform, event.region
        )

    def _rate(self, event: UsageRecord) -> Rating:
        resolution = self.resolve(event)
        rating = self._rate_tokens(event, resolution)
        if not event.units or not (rating.priced or _units_only(event, rating)):
            return rating
        units, reason = rate_units(
            event.units,
            when=event.event_time,
            tags=event.tags,
            model_key=resolution.model_key,
            plans=resolution.plans,
            entries=resolution.unit_entries,
        )
        if reason:
            return Rating(
                priced=False,
                price_ref="",
                unpriced_reason=reason,
                model_key=rating.model_key,
                placement=rating.placement,
            )
        if not rating.priced:  # no token price needed: the event has no tokens
            refs = sorted({unit.price_ref for unit in units})
            return Rating(
                priced=True,
                price_ref=" ".join(refs),
                model_key=rating.model_key,
                units=units,
                placement=rating.placement,
            )
        return Rating(  # dataclasses.replace costs more than the whole unit rating
            True,
            rating.price_ref,
            rating.cost_input,
            rating.cost_output,
            rating.cost_cache_read,
            rating.cost_cache_write,
            rating.cost_reasoning,
            model_key=rating.model_key,
            units=units,
            placement=rating.placement,
            cost_cache_write_1h=rating.cost_cache_write_1h,
        )

    def price_point(
        self, provider: str, model: str, when: datetime, tags: dict[str, str]
    ) -> tuple[PricePoint, Decimal] | None:
        """The price :meth:`rate` would apply to tokens of a ``provider``/``model`` call at
        ``when`` with ``tags`` (the most specific override in force that prices tokens, else
        the catalog row in force), with its batch discount; None when there is none."""
        return self._point(self._resolve(provider, model, None), when, tags)

    @staticmethod
    def _point(
        resolution: Resolution, when: datetime, tags: dict[str, str]
    ) -> tuple[PricePoint, Decimal] | None:
        compiled = resolution.model
        index = compiled.index_at(when) if compiled is not None else -1
        for plan in resolution.plans:
            override = plan.override
            if override.in_force(when) and override.tags_match(tags):
                point = plan.point(index)
                if point is not None:
                    return point, plan.batch_discount
        if compiled is None or index < 0:
            return None
        return compiled.points[index], compiled.batch_discount

    def _rate_tokens(self, event: UsageRecord, resolution: Resolution) -> Rating:
        when = event.event_time
        found = self._point(resolution, when, event.tags)
        if found is not None:
            ref, rates = found[0].select(event.input_tokens, event.batch)
            return apply_rates(rates, event, ref, resolution.model_key, resolution.placement)
        compiled = resolution.model
        if compiled is None:
            return Rating(
                priced=False,
                price_ref="",
                unpriced_reason=resolution.unknown_reason,
                model_key=resolution.model_key,
                placement=resolution.placement,
            )
        first = compiled.starts[0].date().isoformat()
        return Rating(
            priced=False,
            price_ref="",
            unpriced_reason=(
                f"no price for {compiled.entry.key} in force at {when.isoformat()} "
                f"(catalog prices start {first})"
            ),
            model_key=resolution.model_key,
            placement=resolution.placement,
        )


def validate_overrides(catalog: Catalog, overrides: list[Override], where: str) -> list[Override]:
    """``overrides`` checked against ``catalog``, model names normalised to catalog names.

    Errors are prefixed with ``where`` (the file or config table they came from).
    """
    try:
        return list(Pricer(catalog, overrides).overrides)
    except PricingError as exc:
        raise PricingError(f"{where}: {exc}") from None


def _units_only(event: UsageRecord, rating: Rating) -> bool:
    """True when an unpriced token rating does not matter: the event has units and no tokens."""
    tokens = (event.input_tokens, event.output_tokens, event.cache_read_tokens)
    return not rating.priced and bool(event.units) and not any(tokens)


def _plain_name(model: str) -> str:
    """A name that is not in the catalog, compared as reported minus any path prefix."""
    return model.strip().lower().rsplit("/", 1)[-1]


@functools.cache
def default_pricer() -> Pricer:
    """The shipped catalog without overrides (built once per process)."""
    return Pricer(load_catalog())
