"""Alert quality against the generator's ground truth: ``python -m bench.bench_alert_quality``.

What an account manager lives with: for generated histories of several **shapes** (how churners
drift away, how seasonal and how sparse the touches are, how many key accounts; one or more
histories per shape, distinct seeds), each history is landed with the real landing code
(``streaming.landing.land_jsonl_offline``), the warehouse is built from scratch
(``warehouse.build(full_refresh=True)``, the models alone) with the scoring file under test, then
built again, with its data tests, with the mixture weights the weekly population step would have
fitted over the history (``loyalty_monitor.drift.mixture.backfill``), and its churn-risk cases
(``fct_churn_risk_cases`` of ``case_kind`` churn_risk, the drift model's predictions) are scored
against ``ground_truth.json`` beside the old rule alerts (all five rules together, an episode's first day as the opening day). The scorecard
rules no longer alert on their own (they are reasons inside a case), so their episodes are rebuilt
as the old ``fct_churn_alerts`` made them: from the daily flags of ``int_alert_flags`` after the rules'
warm-up, gaps up to ``alerts.episode_cooldown_days`` inside one episode (the fact rules' rebuilt
episodes are checked against today's ``fct_churn_alerts``). ``alerts now`` is today's
``fct_churn_alerts``: the cases plus the action-needed facts.

The cases opened after the customer went silent (``case_kind`` went_silent: "may already have
left", a win-back call) are scored apart (``went_silent``: how many had already left), and the
cases of both kinds together (``all_cases``) beside the model.

**Customer-level figures** (per history, per shape and pooled: counts summed, then ratios):

- **recall**: eligible churners (not erased; drift starting inside the history, at least
  ``ELIGIBLE_AFTER_DAYS`` after the customer's first day in the warehouse) with a case opened
  7-180 days before their churn date (``RECALL_LEAD_DAYS``);
- **median lead**: days from the first such case to the churn date;
- **precision**: of the customers with a case, the share that churned within 180 days of a case's
  opening (``churn_date - opened_on`` in [0, 180]; churn dates after the history's end are in the
  ground truth). It counts customers, not cases;
- **late**: of the customers with a case, those that had already churned when every one of their
  cases opened: they were leaving, but the case came too late to act on (not counted as precise);
- **false-alarm customers per 100 stable customer-years**: distinct never-churning customers with a
  case, per 100 years of stable customers' history after their first ``ELIGIBLE_AFTER_DAYS`` days;
- **value-weighted recall**: recall with each eligible churner weighted by its value at stake on its
  drift start day (``fct_customer_health_daily.value_at_stake``, converted with the scoring file's
  ``reporting.rates``);
- **cases per account manager per month**: cases (not customers) over the account managers of the
  scored customers and the months of the history after the 60-day warm-up.

**The oracle** (``bench/oracle.py``: a Poisson CUSUM with the true rates and the true direction and
size of a drift, not knowing who drifts or when) is scored with the same functions **at an equal
number of alerted customers**: on each history its threshold is the one whose number of alerted
customers is closest to the model's (cases of both kinds), and its alerts are labelled as the
model's cases are (``Silence``, the warehouse's went-silent rule replayed in Python and checked
against the mart: ``silence_check``): those opened after the customer went silent are set aside
(``oracle_went_silent``), so both are judged on the same kind of alert. Every model figure is also given as a share of the oracle's
(``precision 0.45 = 0.62 x oracle``). The oracle sees volumes per generator process, contact roles
and the marks the generator draws from the drift (unanswered calls, NPS class, ...); the same
oracle on volumes per process alone is reported beside it (``oracle_volumes``).

**Threshold sweep**: from ``int_drift_days`` (``drift_probability``, ``observed_days``) the cases the
model would open at other opening probabilities (``SWEEP_PROBABILITIES``; closing at the configured
``risk_cases.close_probability``), without rebuilding, and the oracle at the same numbers of
alerted customers; both unlabelled (cases of both kinds).

**Episode level, per rule** (the old table, kept): recall and lead of alert episodes in the drift,
false-alarm episodes per stable customer-year (outside a rough patch; ``fa/yr all`` counts the
rough-patch episodes too), precision of episodes (on a churner in drift or in a rough patch plus
``ROUGH_PATCH_GRACE_DAYS``), and the loyalty-matrix quadrants.

Results go to ``bench/results/alert_quality.json`` (``--holdout``: ``alert_quality_holdout.json``;
``--quick``: ``alert_quality_quick.json``; ``--reseed N`` puts ``+N`` before ``.json``):
``{"pooled": {...}, "shapes": {shape: {...}}, "histories": [{...}], "definitions": {...}}``; pooled,
each shape and each history hold ``customers`` (``model``, ``oracle``, ``oracle_volumes``, ``rules``,
``alerts_now``, ``went_silent``, ``all_cases``, ``model_vs_oracle``), ``sweep`` (per opening probability: ``model``, ``oracle``) and
``episodes`` (per rule, ``all`` = the five old rules, ``churn_risk`` = the cases); a history also its
``scenario``, ``shape``, ``build_s``, the ``oracle`` thresholds (nats), ``case_check`` (the sweep at the
configured probability reproduces ``fct_churn_risk_cases``) and ``old_rules_check``.

    python -m bench.bench_alert_quality                    the full set: one history per shape
    python -m bench.bench_alert_quality --quick            two small histories (minutes)
    python -m bench.bench_alert_quality --holdout          the held-out set (other seeds, sizes, strengths)
    python -m bench.bench_alert_quality --reseed 1000      the chosen set with other seeds (never seen)
    python -m bench.bench_alert_quality --shapes fade sudden   only histories of these shapes
    python -m bench.bench_alert_quality --only NAME ...    only the scenarios with these names
    python -m bench.bench_alert_quality --scoring my.yml   judge another scoring file
    python -m bench.bench_alert_quality --work DIR         keep histories in DIR and reuse them
    python -m bench.bench_alert_quality --out FILE         write the results there
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import json
import math
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterable

import yaml

from bench import run_main
from loyalty_monitor import scoring as scoring_rules

RESULTS = Path(__file__).parent / "results" / "alert_quality.json"
HOLDOUT_RESULTS = RESULTS.with_name("alert_quality_holdout.json")
QUICK_RESULTS = RESULTS.with_name("alert_quality_quick.json")


def default_results(quick: bool, holdout: bool, reseed: int) -> Path:
    """Where a run writes its results unless ``--out`` says: each set its own file, so that a
    ``--quick`` or reseeded run never overwrites the full set's or the held-out set's results."""
    path = QUICK_RESULTS if quick else HOLDOUT_RESULTS if holdout else RESULTS
    return path.with_name(f"{path.stem}+{reseed}{path.suffix}") if reseed else path
#: The old rule alerts the bench compares (all rules of config/scoring.yml's alerts.rules, as
#: loyalty_monitor.scoring lists them, that fct_churn_alerts had before the drift model):
#: new_high_complaint came later, so the bench leaves it out to keep its results comparable.
RULES_AFTER_THE_DRIFT_MODEL = ("new_high_complaint",)
RULES = tuple(rule for rule in scoring_rules.RULES if rule not in RULES_AFTER_THE_DRIFT_MODEL)
QUADRANTS = ("ambassador", "rationally_loyal", "emotionally_loyal", "at_risk")
# A churner counts for recall when its drift starts at least this many days after its first day;
# stable customer-years are counted after it too.
ELIGIBLE_AFTER_DAYS = 60
# An alert up to this many days after a rough patch ends is about the rough patch (episode level).
ROUGH_PATCH_GRACE_DAYS = 14
# A churner is found by a case opened this many days before its churn date (inclusive) ...
RECALL_LEAD_DAYS = (7, 180)
# ... and a case is right when its customer churns within this many days after it opened.
PRECISION_HORIZON_DAYS = 180
# Cases can open from this many days into a history: the months an account manager lives with.
CASE_WARMUP_DAYS = 60
# A case that opens this many days after the customer was last heard from (its last inbound touch or
# two-way dialogue) is counted apart: on the bench's histories most such customers had already left
# (docs/warehouse.md, "What opens the held-out cases"). A measurement, not yet a rule of the model.
SILENT_DAYS = 60
DAYS_PER_MONTH = 30.44
SWEEP_PROBABILITIES = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7)
SHAPES = ("fade", "sudden", "slow", "sparse", "seasonal", "champion", "calm")


@dataclass(frozen=True)
class Scenario:
    name: str
    shape: str
    customers: int
    start: str
    end: str
    seed: int
    churn_share: float = 0.17
    events_per_customer_month: float | None = None
    churn_shape: str = "fade"
    seasonality: float = 1.0
    segment_mix: tuple[tuple[str, float], ...] | None = None

    def key(self) -> str:
        from loyalty_monitor.generator import GENERATOR_VERSION

        return json.dumps({**asdict(self), "generator_version": GENERATOR_VERSION}, sort_keys=True)

    def generator_kwargs(self) -> dict:
        return {"customers": self.customers, "start": self.start, "end": self.end, "seed": self.seed,
                "churn_share": self.churn_share, "events_per_customer_month": self.events_per_customer_month,
                "churn_shape": self.churn_shape, "seasonality": self.seasonality,
                "segment_mix": dict(self.segment_mix) if self.segment_mix else None}


KEY_ACCOUNTS = (("key", 0.6), ("growth", 0.3), ("standard", 0.1))
# The full set: one history per shape, 250-400 customers, 15-18 months, distinct seeds, the default
# seasonality unless the shape is about seasons.
FULL = (
    Scenario("fade-350x18m-s42", "fade", 350, "2025-05-01", "2026-10-31", 42),
    Scenario("sudden-300x15m-s7", "sudden", 300, "2025-08-01", "2026-10-31", 7, churn_shape="sudden"),
    Scenario("slow-300x18m-s11", "slow", 300, "2025-03-01", "2026-08-31", 11, churn_shape="slow"),
    Scenario("sparse-400x18m-s23", "sparse", 400, "2025-04-01", "2026-09-30", 23, events_per_customer_month=1.0),
    Scenario("seasonal-300x18m-s5", "seasonal", 300, "2025-02-01", "2026-07-31", 5, seasonality=2.5),
    Scenario("champion-250x15m-s13", "champion", 250, "2025-07-01", "2026-09-30", 13, churn_shape="champion",
             segment_mix=KEY_ACCOUNTS),
    Scenario("calm-400x18m-s29", "calm", 400, "2025-05-01", "2026-10-31", 29, churn_share=0.02),
)
# Held out: the same seven shapes with other seeds, sizes, spans and strengths, plus the generator's
# default shape at the size of the issue's own test (600 customers, 18 months), written down before
# their first run. A change is judged on FULL, then confirmed here: a figure that holds on FULL and
# not here did not hold. One setting moved after their first run
# (risk_cases.target_precision_min_customers, docs/warehouse.md), confirmed on the same set reseeded
# (--holdout --reseed 1000); reseed again to judge a change that this set has already seen.
HOLDOUT = (
    Scenario("holdout-default-600x18m-s2026", "fade", 600, "2025-06-01", "2026-11-30", 2026),
    Scenario("holdout-fade-300x16m-s101", "fade", 300, "2025-03-01", "2026-06-30", 101, churn_share=0.13),
    Scenario("holdout-sudden-300x18m-s102", "sudden", 300, "2025-01-01", "2026-06-30", 102, churn_shape="sudden"),
    Scenario("holdout-slow-250x20m-s103", "slow", 250, "2024-11-01", "2026-06-30", 103, churn_share=0.2,
             churn_shape="slow"),
    Scenario("holdout-sparse-300x16m-s104", "sparse", 300, "2025-06-01", "2026-09-30", 104,
             events_per_customer_month=1.5),
    Scenario("holdout-seasonal-300x18m-s105", "seasonal", 300, "2025-04-01", "2026-09-30", 105, seasonality=1.8),
    Scenario("holdout-champion-250x16m-s106", "champion", 250, "2025-05-01", "2026-08-31", 106,
             churn_shape="champion", segment_mix=(("key", 0.5), ("growth", 0.35), ("standard", 0.15))),
    Scenario("holdout-calm-300x15m-s107", "calm", 300, "2025-09-01", "2026-11-30", 107, churn_share=0.03),
)
QUICK = (
    Scenario("quick-fade-160x12m-s7", "fade", 160, "2025-11-01", "2026-10-31", 7, churn_share=0.25),
    Scenario("quick-sudden-140x15m-s3", "sudden", 140, "2025-06-01", "2026-08-31", 3, churn_share=0.2,
             events_per_customer_month=3.5, churn_shape="sudden"),
)


# --- generate, land, build ---------------------------------------------------------------------

def _settings(data_dir: Path, scoring_file: Path):
    from loyalty_core.settings import load_settings

    data_dir.mkdir(parents=True, exist_ok=True)
    return load_settings(data_dir=data_dir, scoring_file=scoring_file, landing_url="", warehouse_path="")


def prepare(scenario: Scenario, work: Path) -> tuple[Path, dict]:
    """Generate and land the history once per scenario (reused from ``work`` when unchanged)."""
    from loyalty_core.settings import load_settings
    from loyalty_monitor.generator import generate
    from streaming.landing import land_jsonl_offline

    home = work / scenario.name
    stamp = home / "scenario.json"
    if stamp.exists() and stamp.read_text() == scenario.key():
        return home, json.loads((home / "history" / "ground_truth.json").read_text())
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    summary = generate(home / "history", **scenario.generator_kwargs())
    landing = load_settings(data_dir=home / "landing-data", landing_url="", warehouse_path="")
    land_jsonl_offline(landing, summary.touchpoints_file, summary.customers_file)
    stamp.write_text(scenario.key())
    return home, json.loads(summary.ground_truth_file.read_text())


class _BuildProgress:
    """A progress line about every 20 seconds while dbt builds (nodes done, the latest one)."""

    def __init__(self, every: float = 20.0) -> None:
        self.started = time.perf_counter()
        self.next = self.started + every
        self.every = every
        self.nodes = 0

    def __call__(self, node) -> None:
        self.nodes += 1
        now = time.perf_counter()
        if now >= self.next:
            self.next = now + self.every
            print(f"\n    build: {self.nodes} nodes done, latest {node.name}, {now - self.started:.0f}s",
                  end="", flush=True)


def build(home: Path, scoring_file: Path, end: str):
    """A fresh warehouse over the scenario's landing zone, built with ``scoring_file``."""
    from loyalty_monitor import warehouse
    from loyalty_monitor.drift import mixture

    data_dir = home / "run"
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = _settings(data_dir, scoring_file)
    landing = Path(settings.landing)
    landing.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(home / "landing-data" / "landing", landing)
    started = time.perf_counter()
    progress = _BuildProgress()
    # the models alone first: the data tests run once, on the warehouse that is judged
    warehouse.build(settings, as_of=end, full_refresh=True, on_node=progress, data_tests=False)
    # the weekly population step's mixture fits over the history, as a running installation would
    # have made them (each from the days before it), then the drift model again with them
    if mixture.backfill(settings):
        warehouse.build(settings, as_of=end, full_refresh=True, on_node=progress)
    else:
        warehouse.run_dbt(settings, ["test", "--exclude", "test_type:unit"], as_of=end,
                          on_node=progress).raise_for_failure()
    if progress.nodes and progress.next > progress.started + progress.every:  # a progress line was printed
        print("\n    build done:", end="")
    return settings, time.perf_counter() - started


def _d(value: str | dt.date | None) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value)


# --- customer-level scoring --------------------------------------------------------------------

@dataclass
class Population:
    """What customer-level scoring of one history needs besides the alerts."""

    people: dict[str, dict]              # ground-truth rows by customer_id
    first_seen: dict[str, dt.date]       # first day in the warehouse; erased customers are absent
    end: dt.date                         # the history's last day
    weights: dict[str, float] | None = None  # value at stake per eligible churner (reporting currency)
    managers: int = 0                    # account managers of the scored customers
    months: float = 0.0                  # months of the history in which cases can open

    @classmethod
    def from_truth(cls, truth: dict, first_seen: dict, weights: dict | None = None) -> "Population":
        people = {row["customer_id"]: row for row in truth["customers"]}
        start, end = _d(truth["generator"]["start"]), _d(truth["generator"]["end"])
        managers = {people[c]["account_manager_id"] for c in first_seen if c in people}
        months = max(0, (end - start).days + 1 - CASE_WARMUP_DAYS) / DAYS_PER_MONTH
        return cls(people, {c: _d(d) for c, d in first_seen.items()}, end, weights, len(managers), months)

    def eligible(self, customer_id: str) -> bool:
        """A churner the warehouse saw healthy first, whose drift starts inside the history."""
        row, first = self.people.get(customer_id), self.first_seen.get(customer_id)
        if row is None or first is None or not row["churns"]:
            return False
        drift_start = _d(row["drift_start"])
        return drift_start <= self.end and (drift_start - first).days >= ELIGIBLE_AFTER_DAYS


def customer_counts(cases: Iterable[tuple[str, dt.date | str]], population: Population) -> dict:
    """Counts (not yet ratios) of one history's cases ``(customer_id, opened_on)``, to be pooled."""
    by_customer: dict[str, list[dt.date]] = {}
    for customer_id, opened in cases:
        if customer_id in population.first_seen and customer_id in population.people:
            by_customer.setdefault(customer_id, []).append(_d(opened))
    low, high = RECALL_LEAD_DAYS
    out = {"cases": sum(len(v) for v in by_customer.values()), "alerted_customers": len(by_customer),
           "precise_customers": 0, "late_customers": 0, "stable_alerted_customers": 0, "eligible_churners": 0,
           "recalled_churners": 0, "lead_days": [], "stable_customer_years": 0.0,
           "eligible_value": 0.0, "recalled_value": 0.0, "valued": population.weights is not None,
           "eligible_without_value": 0,
           "manager_months": population.managers * population.months}
    for customer_id, first in population.first_seen.items():
        row = population.people.get(customer_id)
        if row is None:
            continue
        opened = sorted(by_customer.get(customer_id, ()))
        churn = _d(row["churn_date"]) if row["churns"] else None
        if opened and churn is not None and any(0 <= (churn - day).days <= PRECISION_HORIZON_DAYS for day in opened):
            out["precise_customers"] += 1
        elif opened and churn is not None and all(day > churn for day in opened):
            out["late_customers"] += 1  # leaving, but the case came after the customer had left
        if not row["churns"]:
            out["stable_alerted_customers"] += bool(opened)
            out["stable_customer_years"] += max(0, (population.end - first).days + 1 - ELIGIBLE_AFTER_DAYS) / 365.25
            continue
        if not population.eligible(customer_id):
            continue
        weight = (population.weights or {}).get(customer_id)
        if weight is None:  # no value at stake on its drift start day (or no rate for its currency)
            out["eligible_without_value"] += population.weights is not None
            weight = 0.0
        out["eligible_churners"] += 1
        out["eligible_value"] += weight
        leads = [(churn - day).days for day in opened if low <= (churn - day).days <= high]
        if leads:
            out["recalled_churners"] += 1
            out["recalled_value"] += weight
            out["lead_days"].append(max(leads))  # the first such case
    out["stable_customer_years"] = round(out["stable_customer_years"], 4)
    return out


def silent_case_counts(last_heard: Iterable[tuple], population: Population,
                       silent_days: int = SILENT_DAYS) -> dict:
    """Cases (not customers) by what became of their customer: ``precise`` (churned 0-180 days after
    the opening), ``late`` (had churned before it), ``stayed`` (never churned), ``other`` (churned
    later); ``all_<kind>`` counts every case, ``silent_<kind>`` those opened at least
    ``silent_days`` after the customer was last heard from (``last_heard`` None: never).
    ``last_heard``: ``(customer_id, opened_on, last_heard_on)`` per case."""
    kinds = ("precise", "late", "stayed", "other")
    out = {f"{prefix}_{kind}": 0 for prefix in ("all", "silent") for kind in kinds}
    for customer_id, opened, heard in last_heard:
        row = population.people.get(customer_id)
        if row is None or customer_id not in population.first_seen:
            continue
        opened, heard = _d(opened), _d(heard)
        churn = _d(row["churn_date"]) if row["churns"] else None
        if churn is None:
            kind = "stayed"
        elif opened > churn:
            kind = "late"
        elif (churn - opened).days <= PRECISION_HORIZON_DAYS:
            kind = "precise"
        else:
            kind = "other"
        out[f"all_{kind}"] += 1
        out[f"silent_{kind}"] += heard is None or (opened - heard).days >= silent_days
    return out


@dataclass
class Silence:
    """The warehouse's went-silent label (``int_case_openings.went_silent``), replayed in Python so
    that the oracle's alerts are labelled as the model's cases are: nothing heard from the customer
    (an inbound touch or a two-way dialogue) for at least ``min_days``, a silence whose chance under
    the customer's rhythm (the days heard from in the year up to the last one, from its first day
    if later: a Poisson rate) is at most ``chance``; no rhythm to judge when it was known for fewer
    than ``rhythm_min_days`` up to its last such day, or not heard from in the year before."""

    heard: dict[str, list[dt.date]]      # each customer's days with such a touch, sorted, distinct
    first_seen: dict[str, dt.date]
    min_days: int = 30
    chance: float = 0.01
    rhythm_min_days: int = 60

    @classmethod
    def from_scoring(cls, heard: dict, first_seen: dict, scoring: dict) -> Silence:
        rc = scoring["risk_cases"]
        return cls({c: sorted({_d(d) for d in days}) for c, days in heard.items()},
                   {c: _d(d) for c, d in first_seen.items()}, int(rc.get("went_silent_min_days", 30)),
                   float(rc.get("went_silent_chance", 0.01)), int(rc.get("warmup_days", 60)))

    def went_silent(self, customer_id: str, day: dt.date | str) -> bool:
        day, first = _d(day), self.first_seen.get(customer_id)
        days = self.heard.get(customer_id, [])
        if self.chance <= 0 or first is None:
            return False
        last_index = bisect.bisect_right(days, day) - 1
        if last_index < 0 or (day - days[last_index]).days >= 365:
            return False
        last = days[last_index]
        silent = (day - last).days
        in_year = last_index + 1 - bisect.bisect_right(days, last - dt.timedelta(days=365))
        rhythm_days = min(365, (last - first).days + 1)
        return (silent >= self.min_days and rhythm_days >= self.rhythm_min_days
                and silent * in_year >= -math.log(self.chance) * rhythm_days)

    def split(self, alerts: Iterable[tuple]) -> tuple[list[tuple], list[tuple]]:
        """``alerts`` ``(customer_id, day)`` as (churn-risk ones, went-silent ones)."""
        kept, silent = [], []
        for customer_id, day in alerts:
            (silent if self.went_silent(customer_id, day) else kept).append((customer_id, day))
        return kept, silent


def pool_customer_counts(all_counts: Iterable[dict]) -> dict:
    pooled: dict = {}
    for counts in all_counts:
        for key, value in counts.items():
            if isinstance(value, list):
                pooled.setdefault(key, []).extend(value)
            elif isinstance(value, bool):
                pooled[key] = pooled.get(key, True) and value
            else:
                pooled[key] = pooled.get(key, 0) + value
    return pooled


def _ratio(numerator: float, denominator: float, digits: int = 3) -> float | None:
    return round(numerator / denominator, digits) if denominator else None


def customer_figures(counts: dict) -> dict:
    """Ratios from customer-level counts (one history or several pooled)."""
    if not counts:
        return {}
    leads = counts["lead_days"]
    return {
        "alerted_customers": counts["alerted_customers"],
        "cases": counts["cases"],
        "precision": _ratio(counts["precise_customers"], counts["alerted_customers"]),
        "recall": _ratio(counts["recalled_churners"], counts["eligible_churners"]),
        "median_lead_days": statistics.median(leads) if leads else None,
        "false_alarm_customers_per_100_stable_years": _ratio(100 * counts["stable_alerted_customers"],
                                                             counts["stable_customer_years"], 2),
        "value_weighted_recall": (_ratio(counts["recalled_value"], counts["eligible_value"])
                                  if counts["valued"] else None),
        "cases_per_manager_month": _ratio(counts["cases"], counts["manager_months"]),
        "precise_customers": counts["precise_customers"],
        "late_share": _ratio(counts.get("late_customers", 0), counts["alerted_customers"]),
        "late_customers": counts.get("late_customers", 0),
        "eligible_churners": counts["eligible_churners"],
        "recalled_churners": counts["recalled_churners"],
        "eligible_without_value": counts.get("eligible_without_value", 0),
        "stable_alerted_customers": counts["stable_alerted_customers"],
        "stable_customer_years": round(counts["stable_customer_years"], 1),
    }


RELATIVE = ("precision", "recall", "median_lead_days", "value_weighted_recall",
            "false_alarm_customers_per_100_stable_years")


def relative(model: dict, oracle: dict) -> dict:
    """Each model figure as a share of the oracle's (false alarms: above 1 is worse)."""
    out = {}
    for key in RELATIVE:
        a, b = model.get(key), oracle.get(key)
        out[key] = round(a / b, 2) if a is not None and b else None
    return out


# --- the model's cases at other probabilities (from int_drift_days) ------------------------------

def derived_opening(rc: dict) -> bool:
    """Whether the scoring file derives the opening probability each run (a target precision or a
    budget) instead of fixing it."""
    return bool(rc.get("target_precision") or rc.get("cases_per_manager_per_month"))


def opening_rule(rc: dict) -> str:
    """How the scoring file opens cases, in a few words (the label of the model's rows)."""
    if rc.get("target_precision"):
        return f"precision {float(rc['target_precision']):g}"
    if rc.get("cases_per_manager_per_month"):
        return f"{float(rc['cases_per_manager_per_month']):g}/AM/month"
    return f"p>={float(rc['open_probability']):g}"


def cases_at(rows: Iterable[tuple], open_probability: float, close_probability: float,
             warmup_days: int) -> list[tuple[str, dt.date]]:
    """The cases ``fct_churn_risk_cases`` would hold if they opened at ``open_probability``.

    ``rows``: ``(customer_id, as_of_date, drift_probability, observed_days)`` sorted by customer and
    day. As in the model: a run is consecutive days at or above the closing probability (at most the
    opening one); a case opens on the run's first day at or above the opening probability with at
    least ``warmup_days`` observed days; one case per run.
    """
    close = min(close_probability, open_probability)
    out: list[tuple[str, dt.date]] = []
    current = previous = None
    opened = False
    for customer_id, day, probability, observed in rows:
        day = _d(day)
        if customer_id != current:
            current, previous, opened = customer_id, None, False
        if probability is None or probability < close:
            continue
        if previous is None or (day - previous).days > 1:
            opened = False
        previous = day
        if not opened and probability >= open_probability and observed is not None and observed >= warmup_days:
            out.append((customer_id, day))
            opened = True
    return out


# --- one history -------------------------------------------------------------------------------

def _columns(con, table: str) -> set[str]:
    schema, name = table.split(".")
    return {r[0] for r in con.execute("select column_name from information_schema.columns "
                                      "where table_schema = ? and table_name = ?", [schema, name]).fetchall()}


def read_warehouse(settings, truth: dict, end: dt.date, scoring: dict) -> dict:
    """Everything the scoring needs from one built warehouse."""
    from loyalty_monitor import warehouse

    con = warehouse.connect(settings)
    try:
        alerts_now = con.execute("select customer_id, rule, alert_date from build.fct_churn_alerts").fetchall()
        old_alerts = _old_rule_episodes(con, int(scoring["alerts"]["episode_cooldown_days"]))
        kind = "case_kind" if "case_kind" in _columns(con, "build.fct_churn_risk_cases") else "'churn_risk'"
        every_case = con.execute(f"select customer_id, opened_on, {kind} from build.fct_churn_risk_cases").fetchall()
        cases = [(c, d) for c, d, k in every_case if k == "churn_risk"]
        went_silent = [(c, d) for c, d, k in every_case if k == "went_silent"]
        last_heard = con.execute(
            "select cases.customer_id, cases.opened_on, max(touches.event_date) "
            "from build.fct_churn_risk_cases as cases left join build.int_touchpoints as touches "
            "on touches.customer_id = cases.customer_id and touches.event_date <= cases.opened_on "
            "and (touches.direction = 'inbound' or touches.is_two_way_dialogue) "
            "group by cases.customer_id, cases.opened_on").fetchall()
        predicted = set(cases)
        last_heard = [row for row in last_heard if (row[0], row[1]) in predicted]
        heard: dict[str, list[dt.date]] = {}
        for customer_id, day in con.execute(
                "select customer_id, event_date from build.int_touchpoints "
                "where direction = 'inbound' or is_two_way_dialogue group by 1, 2").fetchall():
            heard.setdefault(customer_id, []).append(day)
        first_seen = dict(con.execute(
            "select customer_id, min(as_of_date) from build.fct_customer_health_daily group by customer_id").fetchall())
        quadrants = dict(con.execute(
            "select quadrant, count(*) from build.fct_loyalty_matrix where period_end_date = ? group by quadrant",
            [end]).fetchall())
        quadrants_all = dict(con.execute(
            "select quadrant, count(*) from build.fct_loyalty_matrix group by quadrant").fetchall())
        drift_rows, drift_note = _drift_rows(con, scoring)
        values = _values_at_drift_start(con, truth, first_seen, end, scoring)
    finally:
        con.close()
    return {"alerts": old_alerts, "alerts_now": alerts_now, "cases": cases, "went_silent": went_silent,
            "all_cases": [(c, d) for c, d, _ in every_case], "last_heard": last_heard, "heard": heard,
            "first_seen": first_seen,
            "quadrants": quadrants,
            "quadrants_all": quadrants_all, "drift_rows": drift_rows, "drift_note": drift_note,
            "values": values}


def rule_episodes(flagged: Iterable[tuple], cooldown_days: int) -> list[tuple[str, str, dt.date]]:
    """Alert episodes ``(customer_id, rule, alert_date)`` from the days a rule held
    ``(customer_id, rule, day)``: as the old fct_churn_alerts, gaps of up to ``cooldown_days`` do not
    end an episode."""
    out = []
    last: dict[tuple[str, str], dt.date] = {}
    for customer_id, rule, day in sorted((c, r, _d(d)) for c, r, d in flagged):
        previous = last.get((customer_id, rule))
        if previous is None or (day - previous).days > cooldown_days:
            out.append((customer_id, rule, day))
        last[(customer_id, rule)] = day
    return out


def _old_rule_episodes(con, cooldown_days: int) -> list[tuple[str, str, dt.date]]:
    """The old rule alerts (all five rules, as fct_churn_alerts had them before the drift model),
    rebuilt from their daily flags in int_alert_flags (after the rules' warm-up)."""
    columns = _columns(con, "build.int_alert_flags")
    rules = [rule for rule in RULES if rule in columns]
    warm = "past_warmup and " if "past_warmup" in columns else ""
    flagged = con.execute(" union all ".join(
        f"select customer_id, '{rule}', as_of_date from build.int_alert_flags where {warm}{rule}"
        for rule in rules)).fetchall() if rules else []
    return rule_episodes(flagged, cooldown_days)


def _drift_rows(con, scoring: dict) -> tuple[list[tuple] | None, str | None]:
    """``(customer_id, as_of_date, drift_probability, observed_days)`` from int_drift_days (the
    probability from evidence_milli and the prior when the column is missing)."""
    columns = _columns(con, "build.int_drift_days")
    if not columns:
        return None, "build.int_drift_days not found: no sweep"
    if "drift_probability" in columns:
        probability = "drift_probability"
    elif "evidence_milli" in columns:
        share = float(scoring["drift"]["prior_drift_share"])
        probability = f"1 / (1 + exp(-(evidence_milli / 1000.0 + ln({share} / (1 - {share})))))"
    else:
        return None, "int_drift_days has neither drift_probability nor evidence_milli: no sweep"
    if "observed_days" in columns:
        observed = "observed_days"
    else:
        observed = "datediff('day', min(as_of_date) over (partition by customer_id), as_of_date)"
    rows = con.execute(f"select customer_id, as_of_date, {probability}, {observed} from build.int_drift_days "
                       "order by customer_id, as_of_date").fetchall()
    return rows, None


def _values_at_drift_start(con, truth: dict, first_seen: dict, end: dt.date, scoring: dict) -> dict[str, float]:
    """Each churner's value at stake on its drift start day, in the reporting currency."""
    rates = scoring.get("reporting", {}).get("rates", {})
    wanted = {row["customer_id"]: _d(row["drift_start"]) for row in truth["customers"]
              if row["churns"] and row["customer_id"] in first_seen and _d(row["drift_start"]) <= end}
    if not wanted:
        return {}
    rows = con.execute(
        "select customer_id, as_of_date, value_at_stake, currency from build.fct_customer_health_daily "
        f"where customer_id in ({', '.join('?' * len(wanted))}) order by customer_id, as_of_date",
        list(wanted)).fetchall()
    out: dict[str, float] = {}
    for customer_id, day, value, currency in rows:
        # the drift start day, or the customer's first day after it
        if customer_id in out or day < wanted[customer_id] or value is None:
            continue
        rate = rates.get(currency)
        if rate is not None:
            out[customer_id] = float(value) * float(rate)
    return out


def evaluate(read: dict, truth: dict, end: dt.date, scoring: dict, oracle=None, volume_oracle=None) -> dict:
    """Counts of one history (model, oracles, rules, sweep, episodes), so that histories can be pooled.

    ``oracle`` (bench.oracle.Oracle) is the ceiling the model is compared with; ``volume_oracle``
    (volumes per process only, no roles or marks) is reported beside it."""
    from bench.oracle import WARMUP_DAYS

    population = Population.from_truth(truth, read["first_seen"], read["values"])
    model = customer_counts(read["cases"], population)
    all_cases = read.get("all_cases", read["cases"])
    silence = Silence.from_scoring(read.get("heard") or {}, read["first_seen"], scoring)
    # the oracles alert as many customers as the model's cases of both kinds, and their alerts
    # opened after the customer went silent are set aside as the model's are
    budget = len({c for c, _ in all_cases if c in population.first_seen and c in population.people})

    def oracle_counts(alerts: list[tuple]) -> tuple[dict, dict]:
        kept, silent = silence.split(alerts)
        return customer_counts(kept, population), customer_counts(silent, population)

    rules = customer_counts([(c, day) for c, _, day in read["alerts"]], population)
    now = customer_counts([(c, day) for c, _, day in read["alerts_now"]], population)
    scored = sorted(population.first_seen)
    went_silent = read.get("went_silent") or []
    out = {"model": model, "rules": rules, "alerts_now": now, "oracle": None, "oracle_equal_recall": None,
           "went_silent": customer_counts(went_silent, population),
           "all_cases": customer_counts(all_cases, population),
           "silent": silent_case_counts(read.get("last_heard") or (), population),
           "oracle_volumes": None,
           "oracle_info": None, "sweep": [],
           "case_check": None,
           "episodes": score(list(read["alerts"]) + [(c, "churn_risk", d) for c, d in read["cases"]]
                             + [(c, "went_silent", d) for c, d in went_silent],
                             read["first_seen"], truth, end, int(scoring["alerts"]["warmup_days"]),
                             read["quadrants"], read["quadrants_all"])}
    _, silent = silence.split(all_cases)
    out["silence_check"] = {"reproduced": sorted(silent) == sorted(read.get("went_silent") or []),
                            "went_silent_cases": len(read.get("went_silent") or []),
                            "differing": len(set(silent) ^ set(read.get("went_silent") or []))}
    if oracle is not None:
        threshold = oracle.threshold_for(budget, scored)
        out["oracle"], out["oracle_went_silent"] = oracle_counts(oracle.alerts(threshold, scored))
        out["oracle_info"] = {"threshold_nats": round(threshold, 3) if math.isfinite(threshold) else None,
                              "alerted_customers": out["oracle"]["alerted_customers"],
                              "roles": oracle.roles, "marks": oracle.marks, "warmup_days": WARMUP_DAYS}
        out["oracle_equal_recall"] = oracle_at_recall(oracle, scored, population, model["recalled_churners"],
                                                      silence)
    if volume_oracle is not None:
        threshold = volume_oracle.threshold_for(budget, scored)
        out["oracle_volumes"] = oracle_counts(volume_oracle.alerts(threshold, scored))[0]
        if out["oracle_info"] is not None:
            out["oracle_info"]["volumes_threshold_nats"] = round(threshold, 3) if math.isfinite(threshold) else None
    # the rebuilt episodes of the fact rules that still alert must equal fct_churn_alerts' rows
    facts = sorted((c, r, _d(d)) for c, r, d in read["alerts_now"] if r in RULES)
    rebuilt = sorted(e for e in read["alerts"] if e[1] in {r for _, r, _ in facts})
    out["old_rules_check"] = {"fact_rules_in_alerts": sorted({r for _, r, _ in facts}),
                              "reproduced": facts == rebuilt, "differing": len(set(facts) ^ set(rebuilt))}
    rc = scoring["risk_cases"]
    if read["drift_rows"] is not None:
        if derived_opening(rc):  # the mart's opening probability is derived each run: nothing fixed to replay
            out["case_check"] = {"note": f"opening probability derived each run ({opening_rule(rc)}); "
                                         "the sweep below is at fixed probabilities"}
        else:
            configured = sorted(cases_at(read["drift_rows"], float(rc["open_probability"]),
                                         float(rc["close_probability"]), int(rc["warmup_days"])))
            actual = sorted((c, _d(d)) for c, d in all_cases)
            out["case_check"] = {"reproduced": configured == actual, "sweep_cases": len(configured),
                                 "mart_cases": len(actual),
                                 "differing": len(set(configured) ^ set(actual))}
        for probability in SWEEP_PROBABILITIES:
            point = {"open_probability": probability,
                     "model": customer_counts(cases_at(read["drift_rows"], probability, float(rc["close_probability"]),
                                                       int(rc["warmup_days"])), population)}
            if oracle is not None:
                h = oracle.threshold_for(point["model"]["alerted_customers"], scored)
                point["oracle"] = customer_counts(oracle.alerts(h, scored), population)
            out["sweep"].append(point)
    elif read.get("drift_note"):
        out["case_check"] = {"note": read["drift_note"]}
    return out


def oracle_at_recall(oracle, scored: list[str], population: Population, recalled: int,
                     silence: Silence | None = None) -> dict:
    """The oracle's counts at the fewest alerted customers with which it recalls at least
    ``recalled`` churners (the model's): the issue's "precision at equal recall". Recall grows with
    the number of alerted customers (almost always: an earlier crossing can move a case out of the
    7-180-day window), so the fewest is found by bisection over the number alerted; when the oracle
    never recalls as many, all its alerts are taken. With ``silence``, the alerts opened after the
    customer went silent are set aside (as the model's are) before counting."""
    def counts(n: int) -> dict:
        alerts = oracle.alerts(oracle.threshold_for(n, scored), scored) if n else []
        return customer_counts(silence.split(alerts)[0] if silence else alerts, population)

    low, high = 0, oracle.alerted_customers(0.0, scored)
    if counts(high)["recalled_churners"] < recalled:
        return counts(high)
    while low < high:
        middle = (low + high) // 2
        if counts(middle)["recalled_churners"] >= recalled:
            high = middle
        else:
            low = middle + 1
    return counts(low)


def pool_history_counts(all_counts: list[dict]) -> dict:
    """Customer-level and episode counts of several histories, summed."""
    def pooled(key: str) -> dict:
        parts = [c[key] for c in all_counts if c.get(key)]
        return pool_customer_counts(parts) if parts and len(parts) == len(all_counts) else {}

    out = {"model": pooled("model"), "rules": pooled("rules"), "alerts_now": pooled("alerts_now"),
           "oracle": pooled("oracle"), "oracle_equal_recall": pooled("oracle_equal_recall"),
           "oracle_volumes": pooled("oracle_volumes"), "silent": pooled("silent"), "sweep": [],
           "went_silent": pooled("went_silent"), "all_cases": pooled("all_cases"),
           "oracle_went_silent": pooled("oracle_went_silent"),
           "episodes": pool([c["episodes"] for c in all_counts])}
    if all_counts and all(len(c["sweep"]) == len(SWEEP_PROBABILITIES) for c in all_counts):
        for i, probability in enumerate(SWEEP_PROBABILITIES):
            points = [c["sweep"][i] for c in all_counts]
            out["sweep"].append({"open_probability": probability,
                                 "model": pool_customer_counts(p["model"] for p in points),
                                 "oracle": (pool_customer_counts(p["oracle"] for p in points)
                                            if all("oracle" in p for p in points) else {})})
    return out


def report(counts: dict) -> dict:
    """Figures (ratios) from counts of one history or of pooled ones."""
    model, oracle = customer_figures(counts["model"]), customer_figures(counts.get("oracle") or {})
    at_recall = customer_figures(counts.get("oracle_equal_recall") or {})
    return {
        "customers": {"model": model, "oracle": oracle, "rules": customer_figures(counts["rules"]),
                      "alerts_now": customer_figures(counts.get("alerts_now") or {}),
                      "went_silent": customer_figures(counts.get("went_silent") or {}),
                      "all_cases": customer_figures(counts.get("all_cases") or {}),
                      "oracle_went_silent": customer_figures(counts.get("oracle_went_silent") or {}),
                      "oracle_volumes": customer_figures(counts.get("oracle_volumes") or {}),
                      "oracle_equal_recall": at_recall,
                      "model_vs_oracle": relative(model, oracle) if oracle else {},
                      "model_vs_oracle_equal_recall": relative(model, at_recall) if at_recall else {}},
        "sweep": [{"open_probability": p["open_probability"], "model": customer_figures(p["model"]),
                   "oracle": customer_figures(p.get("oracle") or {})} for p in counts["sweep"]],
        "episodes": summarise(counts["episodes"]),
        "silent_at_opening": {"silent_days": SILENT_DAYS, **(counts.get("silent") or {})},
    }


# --- episode level, per rule (the old table) ------------------------------------------------------

def score(alerts: list[tuple], first_seen: dict, truth: dict, end: dt.date, warmup_days: int,
          quadrants: dict, quadrants_all: dict) -> dict:
    """Counts from alert episodes ``(customer_id, rule, alert_date)`` and each customer's first day."""
    people = {row["customer_id"]: row for row in truth["customers"]}
    by_customer: dict[str, list[tuple[str, dt.date]]] = {}
    for customer_id, rule, alert_date in alerts:
        by_customer.setdefault(customer_id, []).append((rule, _d(alert_date)))

    def in_drift(row: dict, day: dt.date) -> bool:
        return bool(row["churns"]) and _d(row["drift_start"]) <= day <= _d(row["churn_date"])

    def in_rough_patch(row: dict, day: dt.date) -> bool:
        start = _d(row.get("rough_patch_start"))
        return start is not None and start <= day <= _d(row["rough_patch_end"]) + dt.timedelta(
            days=ROUGH_PATCH_GRACE_DAYS)

    rules = ("all",) + RULES + ("churn_risk",) + tuple(sorted({r for _, r, _ in alerts} - set(RULES) - {"churn_risk"}))
    out = {rule: {"episodes": 0, "true_episodes": 0, "stable_false_episodes": 0, "stable_episodes": 0,
                  "alerted_churners": 0, "lead_days": []} for rule in rules}
    eligible = stable_years = 0.0
    for customer_id, row in people.items():
        first = _d(first_seen.get(customer_id))
        if first is None:  # erased (tombstone) or never seen: not in any mart
            continue
        episodes = by_customer.get(customer_id, [])
        for rule, day in episodes:
            true = in_drift(row, day) or in_rough_patch(row, day)
            for key in (("all", rule) if rule in RULES else (rule,)):
                out.setdefault(key, {"episodes": 0, "true_episodes": 0, "stable_false_episodes": 0,
                                     "stable_episodes": 0, "alerted_churners": 0, "lead_days": []})
                out[key]["episodes"] += 1
                out[key]["true_episodes"] += true
                if not row["churns"]:
                    out[key]["stable_episodes"] += 1
                    out[key]["stable_false_episodes"] += not true
        if not row["churns"]:
            stable_years += max(0, (end - first).days + 1 - warmup_days) / 365.25
            continue
        drift_start, churn_date = _d(row["drift_start"]), _d(row["churn_date"])
        if drift_start > end or (drift_start - first).days < ELIGIBLE_AFTER_DAYS:
            continue
        eligible += 1
        for key in out:
            days = [day for rule, day in episodes
                    if (rule == key or (key == "all" and rule in RULES)) and drift_start <= day <= churn_date]
            if days:
                out[key]["alerted_churners"] += 1
                out[key]["lead_days"].append((churn_date - min(days)).days)
    return {"eligible_churners": int(eligible), "stable_customer_years": round(stable_years, 3),
            "rules": out, "quadrants_at_end": quadrants, "quadrants_all_months": quadrants_all}


def summarise(counts: dict) -> dict:
    """Ratios from episode counts (one history or several pooled)."""
    eligible, years = counts["eligible_churners"], counts["stable_customer_years"]
    rules = {}
    for rule, c in counts["rules"].items():
        rules[rule] = {
            "episodes": c["episodes"],
            "recall": round(c["alerted_churners"] / eligible, 3) if eligible else None,
            "alerted_churners": c["alerted_churners"],
            "median_lead_days": statistics.median(c["lead_days"]) if c["lead_days"] else None,
            "false_alarms_per_stable_year": round(c["stable_false_episodes"] / years, 3) if years else None,
            "episodes_per_stable_year": round(c["stable_episodes"] / years, 3) if years else None,
            "precision": round(c["true_episodes"] / c["episodes"], 3) if c["episodes"] else None,
        }

    def shares(q: dict) -> dict:
        total = sum(q.values())
        return {name: round(q.get(name, 0) / total, 3) if total else None for name in QUADRANTS}
    return {"eligible_churners": eligible, "stable_customer_years": round(years, 1), "rules": rules,
            "quadrant_shares_at_end": shares(counts["quadrants_at_end"]),
            "quadrant_shares_all_months": shares(counts["quadrants_all_months"])}


def pool(all_counts: list[dict]) -> dict:
    pooled = {"eligible_churners": 0, "stable_customer_years": 0.0, "rules": {},
              "quadrants_at_end": {}, "quadrants_all_months": {}}
    for counts in all_counts:
        pooled["eligible_churners"] += counts["eligible_churners"]
        pooled["stable_customer_years"] += counts["stable_customer_years"]
        for rule, c in counts["rules"].items():
            target = pooled["rules"].setdefault(rule, {k: ([] if isinstance(v, list) else 0) for k, v in c.items()})
            for k, v in c.items():
                target[k] += v
        for key in ("quadrants_at_end", "quadrants_all_months"):
            for q, n in counts[key].items():
                pooled[key][q] = pooled[key].get(q, 0) + n
    return pooled


# --- printing ----------------------------------------------------------------------------------

def _fmt(value, pattern: str) -> str:
    width = "".join(ch for ch in pattern.split(".")[0] if ch.isdigit())
    return f"{'-':>{width or 1}}" if value is None else format(value, pattern)


def print_table(title: str, summary: dict) -> None:
    """The episode-level table per rule."""
    print(f"  episodes per rule: {summary['eligible_churners']} churners, "
          f"{summary['stable_customer_years']} stable customer-years")
    print(f"    {'rule':<20} {'episodes':>8} {'recall':>7} {'lead d':>7} {'fa/yr':>6} {'fa/yr all':>9} "
          f"{'precision':>9}")
    for rule, r in summary["rules"].items():
        rule = "old rules (all)" if rule == "all" else rule
        print(f"    {rule:<20} {r['episodes']:>8} {_fmt(r['recall'], '7.0%')} {_fmt(r['median_lead_days'], '7.0f')} "
              f"{_fmt(r['false_alarms_per_stable_year'], '6.2f')} {_fmt(r['episodes_per_stable_year'], '9.2f')} "
              f"{_fmt(r['precision'], '9.0%')}")
    for key, label in (("quadrant_shares_at_end", "quadrants at end"), ("quadrant_shares_all_months", "all months")):
        shares = summary[key]
        print(f"    {label:<17} " + "  ".join(f"{q} {_fmt(shares[q], '.0%')}" for q in QUADRANTS))


def _customer_row(label: str, f: dict) -> str:
    return (f"    {label:<25} {_fmt(f.get('alerted_customers'), '7d')} {_fmt(f.get('cases'), '6d')} "
            f"{_fmt(f.get('precision'), '6.2f')} {_fmt(f.get('recall'), '6.2f')} "
            f"{_fmt(f.get('median_lead_days'), '6.0f')} "
            f"{_fmt(f.get('false_alarm_customers_per_100_stable_years'), '8.1f')} "
            f"{_fmt(f.get('value_weighted_recall'), '7.2f')} {_fmt(f.get('cases_per_manager_month'), '8.2f')}")


def print_customers(title: str, figures: dict, rule: str, oracle_info: dict | None = None) -> None:
    c = figures["customers"]
    m = c["model"]
    print(f"\n{title}: {m['eligible_churners']} eligible churners, {m['stable_customer_years']} stable customer-years")
    print(f"    {'customer level':<25} {'alerted':>7} {'cases':>6} {'prec':>6} {'recall':>6} {'lead d':>6} "
          f"{'FA/100y':>8} {'v-recl':>7} {'case/AM/mo':>8}")
    print(_customer_row(f"model ({rule})", m))
    if c["oracle"]:
        label = "oracle (equal alerted)"
        if oracle_info and oracle_info.get("threshold_nats") is not None:
            label = f"oracle (h={oracle_info['threshold_nats']:.1f} nats)"
        print(_customer_row(label, c["oracle"]))
    if c.get("oracle_equal_recall"):
        print(_customer_row("oracle (equal recall)", c["oracle_equal_recall"]))
    if c.get("oracle_volumes"):
        print(_customer_row("oracle, volumes only", c["oracle_volumes"]))
    print(_customer_row("old rules (all five)", c["rules"]))
    if c.get("alerts_now"):
        print(_customer_row("alerts now (cases+facts)", c["alerts_now"]))
    if c.get("all_cases"):
        print(_customer_row("cases of both kinds", c["all_cases"]))
    for key, who in (("went_silent", "model"), ("oracle_went_silent", "oracle")):
        gone = c.get(key) or {}
        if gone.get("alerted_customers"):
            print(f"    went silent, apart ({who}): {gone['alerted_customers']} customers, "
                  f"{gone['late_customers']} had already left, {gone['precise_customers']} left within "
                  f"{PRECISION_HORIZON_DAYS} days, {gone['stable_alerted_customers']} never churned")
    if m.get("alerted_customers"):
        print(f"    of the alerted customers: {m['precise_customers']} churned within {PRECISION_HORIZON_DAYS} days "
              f"of the case (precision), {m['late_customers']} had already left when it opened (late), "
              f"{m['stable_alerted_customers']} never churned")
    silent = figures.get("silent_at_opening") or {}
    if silent.get("all_late") is not None:
        print(f"    cases opened {silent['silent_days']}+ days after the customer was last heard from: "
              + ", ".join(f"{silent['silent_' + k]} of {silent['all_' + k]} {k}" for k in ("late", "precise", "stayed"))
              + " (a measurement, not a rule of the model)")
    rel = c["model_vs_oracle"]
    if rel:
        print(f"    model = x oracle:         precision {_fmt(rel['precision'], '.2f')}  "
              f"recall {_fmt(rel['recall'], '.2f')}  "
              f"lead {_fmt(rel['median_lead_days'], '.2f')}  value-recall {_fmt(rel['value_weighted_recall'], '.2f')}  "
              f"false alarms {_fmt(rel['false_alarm_customers_per_100_stable_years'], '.2f')}")
    at_recall = c.get("model_vs_oracle_equal_recall")
    if at_recall:
        print(f"    at equal recall:          precision {_fmt(at_recall['precision'], '.2f')} x the oracle's "
              f"(the oracle alerts {c['oracle_equal_recall']['alerted_customers']} customers for "
              f"recall {_fmt(c['oracle_equal_recall']['recall'], '.2f')})")
    if figures["sweep"]:
        print("    sweep   open p:" + "".join(f"{p['open_probability']:>18g}" for p in figures["sweep"]))
        for who in ("model", "oracle"):
            if not figures["sweep"][0][who]:
                continue
            cells = [f"{_fmt(p[who].get('alerted_customers'), '3d')} "
                     f"{_fmt(p[who].get('precision'), '.2f')}/{_fmt(p[who].get('recall'), '.2f')}/"
                     f"{_fmt(p[who].get('false_alarm_customers_per_100_stable_years'), '.0f')}"
                     for p in figures["sweep"]]
            print(f"    {who:<6} n p/r/FA:" + "".join(f"{cell:>18}" for cell in cells))


def print_overview(rows: list[tuple[str, int, dict]]) -> None:
    """One line per shape and the pool: model vs oracle vs old rules."""
    print("\nOVERVIEW (customer level; oracle at the model's number of alerted customers)")
    print(f"  {'':<10} {'hist':>4} {'elig':>5} | {'model: alert':>12} {'prec':>5} {'recall':>6} {'lead':>5} "
          f"{'FA/100y':>7} "
          f"| {'oracle: prec':>12} {'recall':>6} {'lead':>5} {'FA/100y':>7} | {'rules: alert':>12} {'prec':>5} "
          f"{'recall':>6} {'lead':>5} {'FA/100y':>7} | {'model = x oracle: prec':>22} {'recall':>6} {'prec at = recall':>16}")
    for label, n, figures in rows:
        c = figures["customers"]
        m, o, r = c["model"], c["oracle"] or {}, c["rules"]

        def cells(f: dict, alert: bool) -> str:
            head = f"{_fmt(f.get('alerted_customers'), '12d')} " if alert else ""
            return (head + f"{_fmt(f.get('precision'), '5.2f')} {_fmt(f.get('recall'), '6.2f')} "
                    f"{_fmt(f.get('median_lead_days'), '5.0f')} "
                    f"{_fmt(f.get('false_alarm_customers_per_100_stable_years'), '7.1f')}")
        rel, at_recall = c["model_vs_oracle"] or {}, c.get("model_vs_oracle_equal_recall") or {}
        print(f"  {label:<10} {n:>4} {m.get('eligible_churners', 0):>5} | {cells(m, True)} | {'':>7}{cells(o, False)} "
              f"| {cells(r, True)} | {_fmt(rel.get('precision'), '22.2f')} {_fmt(rel.get('recall'), '6.2f')} "
              f"{_fmt(at_recall.get('precision'), '16.2f')}")


# --- which histories -----------------------------------------------------------------------------

def select(scenarios: tuple[Scenario, ...], only: list[str] | None = None, shapes: list[str] | None = None,
           reseed: int = 0) -> tuple[Scenario, ...]:
    """The scenarios named in ``only`` (with or without their ``+reseed``) and of ``shapes`` (all when
    None), each seed moved by ``reseed``: the same shapes and sizes, histories never seen (their
    names get ``+reseed``)."""
    suffix = f"+{reseed}" if reseed else ""
    picked = tuple(s for s in scenarios
                   if (not only or s.name in only or s.name + suffix in only) and (not shapes or s.shape in shapes))
    if reseed:
        picked = tuple(replace(s, name=s.name + suffix, seed=s.seed + reseed) for s in picked)
    return picked


def stored_seeds_reused(scenarios: tuple[Scenario, ...]) -> list[str]:
    """Scenarios whose seed is also one of the stored sets' (a reseed landing on another history's
    seed: that history is not new)."""
    stored = {s.seed for s in FULL + QUICK + HOLDOUT}
    return [s.name for s in scenarios if s.seed in stored]


# --- main --------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    from bench.oracle import Oracle, read_events
    from loyalty_core.settings import PROJECT_ROOT

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="\n".join(__doc__.rstrip().splitlines()[-9:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--quick", action="store_true", help="two small histories instead of the full set")
    which.add_argument("--holdout", action="store_true",
                       help="the held-out set (other seeds, sizes and strengths) instead of the full set")
    parser.add_argument("--scoring", type=Path, default=PROJECT_ROOT / "config" / "scoring.yml",
                        help="scoring file to judge (default: config/scoring.yml)")
    parser.add_argument("--work", type=Path, help="keep generated and landed histories here and reuse them")
    parser.add_argument("--reseed", type=int, default=0, metavar="N",
                        help="add N to every scenario's seed: the same shapes, histories never seen (names get +N)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only the scenarios with these names")
    parser.add_argument("--shapes", nargs="+", metavar="SHAPE", choices=SHAPES,
                        help=f"only histories of these shapes ({', '.join(SHAPES)})")
    parser.add_argument("--out", type=Path,
                        help=f"results file (default {RESULTS}, with --holdout {HOLDOUT_RESULTS}, with --quick {QUICK_RESULTS}; "
                             "--reseed N adds +N to the name)")
    args = parser.parse_args(argv)

    chosen = QUICK if args.quick else HOLDOUT if args.holdout else FULL
    out = args.out or default_results(args.quick, args.holdout, args.reseed)
    scenarios = select(chosen, args.only, args.shapes, args.reseed)
    if not scenarios:
        parser.error("no scenario matches --only/--shapes (names: "
                     + ", ".join(s.name for s in chosen) + ")")
    reused = stored_seeds_reused(scenarios) if args.reseed else []
    if reused:
        print(f"note: with --reseed {args.reseed}, {', '.join(reused)} take the seed of a stored history: "
              "pick another N for histories nothing has seen", flush=True)
    scoring = yaml.safe_load(args.scoring.read_text())
    open_probability = float(scoring["risk_cases"]["open_probability"])
    rule = opening_rule(scoring["risk_cases"])
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-alert-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    histories, all_counts = [], []
    try:
        for n, scenario in enumerate(scenarios, 1):
            print(f"\n[{n}/{len(scenarios)}] {scenario.name}: generate and land ...", end="", flush=True)
            started = time.perf_counter()
            home, truth = prepare(scenario, work)
            print(f" {time.perf_counter() - started:.0f}s; oracle ...", end="", flush=True)
            started = time.perf_counter()
            events = read_events(home / "history" / "touchpoints.jsonl")
            oracle = Oracle(truth, events)
            volume_oracle = Oracle(truth, events, roles=False, marks=False)
            print(f" {time.perf_counter() - started:.0f}s; build ...", end="", flush=True)
            settings, seconds = build(home, args.scoring.resolve(), scenario.end)
            print(f" {seconds:.0f}s", flush=True)
            end = dt.date.fromisoformat(scenario.end)
            counts = evaluate(read_warehouse(settings, truth, end, scoring), truth, end, scoring, oracle,
                              volume_oracle)
            all_counts.append((scenario, counts))
            figures = report(counts)
            print_customers(scenario.name, figures, rule, counts["oracle_info"])
            if counts["case_check"] and counts["case_check"].get("note"):
                print(f"    note: {counts['case_check']['note']}")
            if counts["case_check"] and not counts["case_check"].get("reproduced", True):
                print(f"    note: the sweep at p={open_probability:g} differs from fct_churn_risk_cases: "
                      f"{counts['case_check']}")
            if not counts["old_rules_check"]["reproduced"]:
                print("    note: the rebuilt fact-rule episodes differ from fct_churn_alerts: "
                      f"{counts['old_rules_check']}")
            if not counts["silence_check"]["reproduced"]:
                print("    note: the went-silent label replayed in Python differs from fct_churn_risk_cases: "
                      f"{counts['silence_check']}")
            print_table(scenario.name, figures["episodes"])
            histories.append({"scenario": asdict(scenario), "shape": scenario.shape, "build_s": round(seconds, 1),
                              "oracle": counts["oracle_info"], "case_check": counts["case_check"],
                              "old_rules_check": counts["old_rules_check"],
                              "silence_check": counts["silence_check"], **figures})
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    shapes = {}
    overview = []
    for shape in dict.fromkeys(s.shape for s, _ in all_counts):
        group = [c for s, c in all_counts if s.shape == shape]
        shapes[shape] = {"histories": [s.name for s, _ in all_counts if s.shape == shape],
                         **report(pool_history_counts(group))}
        overview.append((shape, len(group), shapes[shape]))
    pooled = report(pool_history_counts([c for _, c in all_counts]))
    for shape, figures in shapes.items():
        if len(figures["histories"]) > 1:
            print_customers(f"SHAPE {shape} ({len(figures['histories'])} histories)", figures, rule)
    print_customers(f"POOLED over {len(histories)} histories", pooled, rule)
    print_table("POOLED", pooled["episodes"])
    print_overview(overview + [("POOLED", len(histories), pooled)])
    out.parent.mkdir(parents=True, exist_ok=True)
    definitions = {"eligible_after_days": ELIGIBLE_AFTER_DAYS, "recall_lead_days": list(RECALL_LEAD_DAYS),
                   "precision_horizon_days": PRECISION_HORIZON_DAYS, "case_warmup_days": CASE_WARMUP_DAYS,
                   "rough_patch_grace_days": ROUGH_PATCH_GRACE_DAYS, "sweep_probabilities": list(SWEEP_PROBABILITIES),
                   "open_probability": open_probability,
                   "close_probability": float(scoring["risk_cases"]["close_probability"]),
                   "oracle": "bench/oracle.py: Poisson CUSUM with the true rates and drift ratios, threshold "
                             "matched to the model's number of alerted customers per history"}
    out.write_text(json.dumps({"scoring_file": str(args.scoring), "quick": args.quick, "holdout": args.holdout,
                               "reseed": args.reseed, "definitions": definitions, "pooled": pooled,
                               "shapes": shapes, "histories": histories}, indent=1, default=str) + "\n")
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    run_main(main)
