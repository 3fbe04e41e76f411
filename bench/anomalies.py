"""Anomaly detection on 30 days of seasonal synthetic traffic with planted anomalies.

    python -m bench.anomalies [--trials 8] [--variant NAME:sensitivity=5,min_weeks=3]

Traffic: 3 teams × 4 features × 5 users, one model per feature (bench.explain_planted's
prices), every hour for 30 days: requests follow a daily curve (nights at 15 %), weekends at
45 %, a day-to-day factor (σ 5 %) and per-cell noise (lognormal σ 15 %, then Poisson-like
rounding; each cell's noise seeded by trial, hour and cell), tokens per request ±5 %. Each
trial plants one anomaly of one kind for 8 hours, starting on a random day 9-28 between 08:00
and 16:00 UTC, in team ``support``: a volume burst (×3 requests on feature reply), prompt
growth (×3 input tokens on reply), a swap of reply to a 5× pricier model, a new runaway user
(25× a user's requests), a price change (×1.5 on reply), a cache that stops hitting (summary,
70 % cache reads → 0) and a new feature.

Detection runs the worker's own pure core (``spendstream.anomalies``: ``GroupWatch``, which
judges spend and cost per token, and ``step``) hour by hour with two rules, per team and per
(team, feature), ``min_delta_usd`` 2, ``resolve_after`` 2, defaults otherwise. Reported per kind:

- recall: plants with an episode opened on their place while they last;
- precision: such episodes / all episodes of the trials of that kind;
- delay: intervals from the plant's start until the first alert (1 = alerted as soon as
  the first planted hour closed);
- attribution: of the planted delta in the first detected hour (that hour's cost in the
  planted cells minus the same hour generated without the plant, same noise), the share
  Explain gives the planted driver when it compares the hour with the same hour a week
  before (mean and worst).

The ClickHouse read path (hour rollups, episodes, notices) is covered by the tests, not here.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from bench.explain_planted import PLANTS, measures
from spendstream.anomalies import INTERVAL, AnomalyRule, Episode, step
from spendstream.anomalies.signals import GroupWatch
from spendstream.explain.cells import CellKey, Measures
from spendstream.explain.decompose import decompose

START = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday
DAYS = 30
HOURS = DAYS * 24
TEAMS = ("support", "search", "growth")
FEATURES = {"reply": "large", "search": "mid", "triage": "small", "summary": "large"}
USERS = tuple(f"u{i}" for i in range(5))
BASE_REQUESTS = 200  # per user, feature and hour at the daily peak on a weekday
PLANT_HOURS = 8
PLANT_PLACE = {  # the (team, feature) a plant's delta lives in
    "volume_burst": "reply",
    "prompt_growth": "reply",
    "pricier_model": "reply",
    "runaway_user": "reply",
    "price_change": "reply",
    "cache_stops": "summary",
    "new_feature": "autofill",
}
Hour = dict[CellKey, Measures]
# The shipped defaults, and one stricter setting to show the trade-off.
VARIANTS: dict[str, dict[str, str]] = {
    "defaults": {},
    "sensitivity_5": {"sensitivity": "5"},
    "spend_only": {"unit_cost": "false"},  # the detector before the cost-per-token signal
}


@dataclass(frozen=True)
class Plant:
    kind: str
    start: int  # hour index

    def active(self, hour: int) -> bool:
        return self.start <= hour < self.start + PLANT_HOURS


def shape(hour: int) -> float:
    """Requests relative to the weekday peak: a daily curve, quieter weekends."""
    moment = START + timedelta(hours=hour)
    daily = 0.15 + 0.85 * max(0.0, math.sin(math.pi * (moment.hour - 6) / 14))
    return daily * (0.45 if moment.weekday() >= 5 else 1.0)


def traffic_hour(seed: int, hour: int, day_factor: float, plant: Plant) -> Hour:
    """One hour's cells; each cell's noise comes from its own generator (seeded by the trial,
    hour and cell), so the same hour without the plant differs only by the plant."""
    on = plant.active(hour)
    cells: Hour = {}
    for team in TEAMS:
        features = dict(FEATURES)
        if on and plant.kind == "new_feature" and team == "support":
            features["autofill"] = "large"
        for feature, model in features.items():
            here = on and team == "support" and feature == "reply"
            users = USERS + (("u-999",) if here and plant.kind == "runaway_user" else ())
            for user in users:
                rng = random.Random(f"{seed}:{hour}:{team}:{feature}:{user}")
                mean = BASE_REQUESTS * shape(hour) * day_factor * rng.lognormvariate(0, 0.15)
                requests = max(0, round(rng.gauss(mean, math.sqrt(mean))))
                prompt, answer = 2_000 * rng.uniform(0.95, 1.05), 300 * rng.uniform(0.95, 1.05)
                cache_share = 0.7 if feature == "summary" else 0.0
                used, factor = model, Decimal(1)
                if user == "u-999":
                    requests *= 25
                elif here and plant.kind == "volume_burst":
                    requests *= 3
                elif here and plant.kind == "prompt_growth":
                    prompt *= 3
                elif here and plant.kind == "pricier_model":
                    used = "pricier"
                elif here and plant.kind == "price_change":
                    factor = Decimal("1.5")
                if (
                    on
                    and plant.kind == "cache_stops"
                    and team == "support"
                    and feature == "summary"
                ):
                    cache_share = 0.0
                if requests:
                    inputs = round(requests * prompt)
                    cells[(team, "web", "prod", feature, user, "p", used, False)] = measures(
                        requests,
                        inputs,
                        round(requests * answer),
                        round(inputs * cache_share),
                        used,
                        factor,
                    )
    return cells


def rules(settings: dict[str, str]) -> list[AnomalyRule]:
    """The two rules of every trial, with ``settings`` (e.g. sensitivity) over the bench's
    ``min_delta_usd`` of 2."""
    common = {"min_delta_usd": "2", **settings}
    return [
        AnomalyRule.model_validate({"name": "per-team", "group_by": ["team"], **common}),
        AnomalyRule.model_validate(
            {"name": "per-feature", "group_by": ["team", "feature"], **common}
        ),
    ]


def group_of(rule: AnomalyRule, key: CellKey) -> tuple[tuple[str, str], ...]:
    values = {"team": str(key[0]), "feature": str(key[3])}
    return tuple((k, values[k]) for k in rule.group_by)


def detect(hours: list[Hour], rule: AnomalyRule) -> list[Episode]:
    """Every episode the rule opens over the hours (the worker's pure core, hour by hour)."""
    series: dict[tuple[tuple[str, str], ...], dict[datetime, Decimal]] = {}
    tokens: dict[tuple[tuple[str, str], ...], dict[datetime, int]] = {}
    for index, cells in enumerate(hours):
        at = START + INTERVAL * index
        for key, cell in cells.items():
            spend = series.setdefault(group_of(rule, key), {})
            spend[at] = spend.get(at, Decimal(0)) + cell.cost_total
            count = tokens.setdefault(group_of(rule, key), {})
            count[at] = count.get(at, 0) + cell.input_tokens + cell.output_tokens
    opened: list[Episode] = []
    active: dict[tuple[tuple[str, str], ...], Episode] = {}
    watches = {group: GroupWatch(s, tokens[group], rule, START) for group, s in series.items()}
    for index in range(len(hours)):
        at = START + INTERVAL * index
        for group, watch in watches.items():
            verdict = watch.verdict(at)
            current = active.get(group)
            change = step(current, verdict, rule.resolve_after)
            if change == "open":
                active[group] = Episode(
                    "", rule.name, group, (), at, at, None, verdict.expected, verdict.observed,
                    verdict.delta, verdict.baseline.method, (), at, 0,
                )  # fmt: skip
                opened.append(active[group])
            elif change == "continue" and current is not None:
                active[group] = replace(current, last_anomalous_at=at)
            elif change == "end":
                del active[group]
    return opened


def matches(episode: Episode, plant: Plant) -> bool:
    place = dict(episode.group)
    hour = int((episode.started_at - START) / INTERVAL)
    return (
        place.get("team") == "support"
        and place.get("feature", PLANT_PLACE[plant.kind]) == PLANT_PLACE[plant.kind]
        and plant.active(hour)
    )


def attribution(hours: list[Hour], plant: Plant, hour: int, without: Hour) -> float:
    """The share of the planted delta of ``hour`` (its cost minus the same hour's cost without
    the plant, ``without``) that Explain, comparing the hour with a week before, gives the
    planted driver in the planted cells."""
    driver, planted = PLANTS[plant.kind]
    changes = decompose(hours[hour - 168], hours[hour])
    inside = [c for c in changes if planted(c.key) and c.key[0] == "support"]
    attributed = sum((c.parts.get(driver, Decimal(0)) for c in inside), Decimal(0))

    def place_cost(cells: Hour) -> Decimal:
        costs = (m.cost_total for k, m in cells.items() if planted(k) and k[0] == "support")
        return sum(costs, Decimal(0))

    delta = place_cost(hours[hour]) - place_cost(without)
    return float(attributed / delta) if delta else 0.0


@dataclass(frozen=True)
class Simulation:
    seed: int
    plant: Plant
    days: list[float]
    hours: list[Hour]

    def without_plant(self, hour: int) -> Hour:
        return traffic_hour(self.seed, hour, self.days[hour // 24], Plant("none", -1))


def simulate(kind: str, seed: int) -> Simulation:
    """30 days of traffic with one plant of ``kind``."""
    rng = random.Random(seed)
    plant = Plant(kind, rng.randrange(9, 29) * 24 + rng.randrange(8, 17))
    days = [rng.lognormvariate(0, 0.05) for _ in range(DAYS)]
    hours = [traffic_hour(seed, h, days[h // 24], plant) for h in range(HOURS)]
    return Simulation(seed, plant, days, hours)


def trial(sim: Simulation, settings: dict[str, str]) -> dict[str, Any]:
    plant, hours = sim.plant, sim.hours
    episodes = [e for rule in rules(settings) for e in detect(hours, rule)]
    true = [e for e in episodes if matches(e, plant)]
    first = min((int((e.started_at - START) / INTERVAL) for e in true), default=None)
    return {
        "episodes": len(episodes),
        "true": len(true),
        "detected": first is not None,
        "delay": None if first is None else first - plant.start + 1,
        "attribution": None
        if first is None
        else attribution(hours, plant, first, sim.without_plant(first)),
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    found = [r for r in runs if r["detected"]]
    episodes = sum(r["episodes"] for r in runs)
    shares = [r["attribution"] for r in found]
    delays = [r["delay"] for r in found]
    return {
        "recall": round(len(found) / len(runs), 3),
        "precision": round(sum(r["true"] for r in runs) / episodes, 3) if episodes else None,
        "episodes": episodes,
        "delay_mean": round(statistics.fmean(delays), 2) if delays else None,
        "delay_max": max(delays) if delays else None,
        "attribution_mean": round(statistics.fmean(shares), 3) if shares else None,
        "attribution_worst": round(min(shares), 3) if shares else None,
    }


def run(
    trials: int,
    variants: dict[str, dict[str, str]] | None = None,
    kinds: list[str] | None = None,
) -> dict[str, Any]:
    """Per kind (default: every one), per variant of the rules' settings (default: the
    shipped defaults)."""
    variants = variants or VARIANTS
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {v: {} for v in variants}
    for kind in kinds or list(PLANT_PLACE):
        for seed in range(trials):
            sim = simulate(kind, 1_000 * seed + len(kind))
            for name, settings in variants.items():
                runs[name].setdefault(kind, []).append(trial(sim, settings))
    results: dict[str, Any] = {"trials_per_kind": trials, "variants": variants}
    for name in variants:
        results[name] = {kind: summarise(found) for kind, found in runs[name].items()}
        for kind, figures in results[name].items():
            print(f"  {name:<12} {kind:<14} {figures}", flush=True)
    return results


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.anomalies")
    parser.add_argument("--trials", type=int, default=8, help="trials per kind")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME:key=value,key=value (rule settings to compare; default: the defaults)",
    )
    parser.add_argument(
        "--kinds",
        default="",
        help=f"comma list of planted kinds (default all: {', '.join(PLANT_PLACE)})",
    )
    args = parser.parse_args(argv)
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if unknown := set(kinds) - set(PLANT_PLACE):
        parser.error(f"unknown kinds {sorted(unknown)}; choose from {', '.join(PLANT_PLACE)}")
    variants = {
        name: dict(pair.split("=", 1) for pair in pairs.split(",") if pair)
        for name, _, pairs in (v.partition(":") for v in args.variant)
    }
    return run(args.trials, variants or None, kinds or None)


if __name__ == "__main__":
    main()
