"""Explain's attribution of planted changes, on synthetic cells with noise (no ClickHouse).

    python -m bench.explain_planted [--trials 20]

Each trial draws a day of traffic (3 teams × 2 apps × 4 features × 20 users, one model per
feature, batch calls on one feature, cache reads on another) and the same day a week later
with ±10 % noise on requests and ±5 % on tokens per request, then plants one change on the
later day. Reported per kind: the share of the planted place's delta that Explain attributes to
the planted driver (mean and worst over the trials), and how often the sentence's first
highlight names that driver. Anomaly detection (recall, precision, delay) is not measured here:
``[[anomalies]]`` is not built yet.
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from spendstream.explain.cells import CellKey, Measures
from spendstream.explain.decompose import (
    CACHE,
    INPUT,
    MIX,
    NEW,
    PRICE,
    VOLUME,
    decompose,
)
from spendstream.explain.report import highlights

PRICES = {  # per token: input, cache read, output
    "small": (Decimal("0.00000015"), Decimal("0.000000075"), Decimal("0.0000006")),
    "mid": (Decimal("0.0000025"), Decimal("0.00000125"), Decimal("0.00001")),
    "large": (Decimal("0.000003"), Decimal("0.0000003"), Decimal("0.000015")),
    "pricier": (Decimal("0.000015"), Decimal("0.0000015"), Decimal("0.000075")),
}
FEATURES = {"reply": "large", "search": "mid", "triage": "small", "summary": "mid"}
Day = dict[CellKey, Measures]


def measures(
    requests: int, inputs: int, outputs: int, cached: int, model: str, factor: Decimal
) -> Measures:
    p_in, p_cache, p_out = (price * factor for price in PRICES[model])
    uncached = (inputs - cached) * p_in
    cache_cost = cached * p_cache
    output = outputs * p_out
    return Measures(
        requests,
        inputs,
        outputs,
        cached,
        uncached,
        cache_cost,
        output,
        uncached + cache_cost + output,
    )


def day(rng: random.Random, plant: str | None) -> Day:
    cells: Day = {}
    users = [f"u{i}" for i in range(20)]
    for team in ("support", "search", "growth"):
        for app in ("web", "bot"):
            features = dict(FEATURES)
            if plant == "new_feature" and team == "support" and app == "web":
                features["autofill"] = "large"
            for feature, model in features.items():
                population = users + (
                    ["u-999"]
                    if plant == "runaway_user"
                    and team == "support"
                    and app == "web"
                    and feature == "reply"
                    else []
                )
                for user in population:
                    planted_here = team == "support" and app == "web" and feature == "reply"
                    requests = max(1, round(40 * rng.uniform(0.9, 1.1)))
                    prompt, answer = 2_000 * rng.uniform(0.95, 1.05), 300 * rng.uniform(0.95, 1.05)
                    cache_share, batch = (0.7 if feature == "summary" else 0.0), feature == "search"
                    used, factor = model, Decimal(1)
                    if user == "u-999":
                        requests *= 25
                    elif planted_here and plant == "volume_burst":
                        requests *= 3
                    elif planted_here and plant == "prompt_growth":
                        prompt *= 3
                    elif planted_here and plant == "pricier_model":
                        used = "pricier"
                    elif planted_here and plant == "price_change":
                        factor = Decimal("1.5")
                    if (
                        plant == "cache_stops"
                        and team == "support"
                        and app == "web"
                        and feature == "summary"
                    ):
                        cache_share = 0.0
                    inputs = round(requests * prompt)
                    cached = round(inputs * cache_share)
                    outputs = round(requests * answer)
                    split = round(requests * 0.5) if batch else 0
                    for is_batch, share in ((False, requests - split), (True, split)):
                        if share:
                            part = Decimal(share) / requests
                            cells[(team, app, "prod", feature, user, "p", used, is_batch)] = (
                                measures(
                                    share,
                                    round(inputs * part),
                                    round(outputs * part),
                                    round(cached * part),
                                    used,
                                    factor * (Decimal("0.5") if is_batch else 1),
                                )
                            )
    return cells


PLANTS: dict[str, tuple[str, Callable[[CellKey], bool]]] = {
    "volume_burst": (VOLUME, lambda k: k[:4] == ("support", "web", "prod", "reply")),
    "prompt_growth": (INPUT, lambda k: k[:4] == ("support", "web", "prod", "reply")),
    "pricier_model": (MIX, lambda k: k[:4] == ("support", "web", "prod", "reply")),
    "runaway_user": (NEW, lambda k: k[4] == "u-999"),
    "price_change": (PRICE, lambda k: k[:4] == ("support", "web", "prod", "reply")),
    "cache_stops": (CACHE, lambda k: k[:4] == ("support", "web", "prod", "summary")),
    "new_feature": (NEW, lambda k: k[3] == "autofill"),
}


def trial(kind: str, seed: int) -> tuple[float, bool]:
    driver, planted = PLANTS[kind]
    before, after = day(random.Random(seed), None), day(random.Random(seed + 10_000), kind)
    changes = decompose(before, after)
    inside = [c for c in changes if planted(c.key)]
    delta = sum((c.delta for c in inside), Decimal(0))
    attributed = sum((c.parts.get(driver, Decimal(0)) for c in inside), Decimal(0))
    whole = sum((c.delta for c in changes), Decimal(0))
    top = highlights(changes, whole, 1)
    return float(attributed / delta), bool(top) and top[0].driver == driver


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.explain_planted")
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    for kind in PLANTS:
        shares, named = zip(*(trial(kind, seed) for seed in range(args.trials)), strict=True)
        results[kind] = {
            "attributed_mean": round(statistics.mean(shares), 3),
            "attributed_worst": round(min(shares), 3),
            "sentence_names_it": f"{sum(named)}/{len(named)}",
        }
        print(f"  {kind:<14} {results[kind]}", flush=True)
    return results


if __name__ == "__main__":
    main()
