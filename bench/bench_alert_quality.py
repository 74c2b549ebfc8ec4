"""Alert quality against the generator's ground truth: ``python -m bench.bench_alert_quality``.

For several generated histories (different seeds, customer counts, churn shares, history lengths and
touch densities: every option the generator has), each history is landed with the real landing
code (``streaming.landing.land_jsonl_offline``), the warehouse is built from scratch
(``warehouse.build(full_refresh=True)``) with the scoring file under test, and
``fct_churn_alerts`` / ``fct_loyalty_matrix`` are scored against ``ground_truth.json``:

- **recall**: share of churners alerted between drift start and churn date (the alert episode's
  first day lies in the drift). Churners counted are those not erased, whose drift starts inside the
  history and at least ``ELIGIBLE_AFTER_DAYS`` after their first day (so the warehouse saw them
  healthy first);
- **lead**: median days from that first alert in the drift to the churn date;
- **false alarms / stable customer-year**: alert episodes on customers who never churn, outside a
  rough patch, per year of their history after the rule warm-up (``alerts.warmup_days``);
  ``fa/yr all`` counts the rough-patch episodes too;
- **precision**: share of all alert episodes that start on a churner in drift or on a customer in
  a rough patch (from its start to ``ROUGH_PATCH_GRACE_DAYS`` after its end: alerts that need some
  persistence fire a little after the friction began);
- the **loyalty-matrix quadrants** on the as-of date (the history's last day).

Every figure is given per rule and over all rules, per history and pooled over the histories
(counts summed, medians over the pooled lead times). The point is to judge rules on many plausible
histories, not to tune them to one seed. Results go to bench/results/alert_quality.json.

    python -m bench.bench_alert_quality                    the full set of histories
    python -m bench.bench_alert_quality --quick            two small histories (minutes)
    python -m bench.bench_alert_quality --scoring my.yml   judge another scoring file
    python -m bench.bench_alert_quality --work DIR         keep histories in DIR and reuse them
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

RESULTS = Path(__file__).parent / "results" / "alert_quality.json"
RULES = ("status_drop", "sharp_health_drop", "dialogue_gap", "dunning_escalation", "open_high_complaint")
QUADRANTS = ("ambassador", "rationally_loyal", "emotionally_loyal", "at_risk")
# A churner counts for recall when its drift starts at least this many days after its first day.
ELIGIBLE_AFTER_DAYS = 60
# An alert up to this many days after a rough patch ends is about the rough patch.
ROUGH_PATCH_GRACE_DAYS = 14


@dataclass(frozen=True)
class Scenario:
    name: str
    customers: int
    start: str
    end: str
    seed: int
    churn_share: float = 0.17
    events_per_customer_month: float | None = None

    def key(self) -> str:
        from loyalty_monitor.generator import GENERATOR_VERSION

        return json.dumps({**asdict(self), "generator_version": GENERATOR_VERSION}, sort_keys=True)


# The full set: the demo's shape (500 customers, 18 months, seed 42), a churn-heavy short history, a
# long sparse one, a dense one, and a small one with a low churn share.
FULL = (
    Scenario("demo-500x18m-s42", 500, "2025-05-01", "2026-10-31", 42),
    Scenario("churny-300x12m-s7", 300, "2025-11-01", "2026-10-31", 7, churn_share=0.30),
    Scenario("sparse-300x24m-s11", 300, "2024-11-01", "2026-10-31", 11, events_per_customer_month=3.0),
    Scenario("dense-250x15m-s23", 250, "2025-08-01", "2026-10-31", 23, events_per_customer_month=8.0),
    Scenario("calm-250x18m-s5", 250, "2025-03-01", "2026-08-31", 5, churn_share=0.08),
)
QUICK = (
    Scenario("quick-160x12m-s7", 160, "2025-11-01", "2026-10-31", 7, churn_share=0.25),
    Scenario("quick-140x15m-s3", 140, "2025-06-01", "2026-08-31", 3, churn_share=0.2,
             events_per_customer_month=3.5),
)


def _settings(data_dir: Path, scoring_file: Path):
    from loyalty_monitor.settings import load_settings

    data_dir.mkdir(parents=True, exist_ok=True)
    return load_settings(data_dir=data_dir, scoring_file=scoring_file, landing_url="", warehouse_path="")


def prepare(scenario: Scenario, work: Path) -> tuple[Path, dict]:
    """Generate and land the history once per scenario (reused from ``work`` when unchanged)."""
    from loyalty_monitor.generator import generate
    from loyalty_monitor.settings import load_settings
    from streaming.landing import land_jsonl_offline

    home = work / scenario.name
    stamp = home / "scenario.json"
    if stamp.exists() and stamp.read_text() == scenario.key():
        return home, json.loads((home / "history" / "ground_truth.json").read_text())
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    summary = generate(home / "history", customers=scenario.customers, start=scenario.start,
                       end=scenario.end, seed=scenario.seed, churn_share=scenario.churn_share,
                       events_per_customer_month=scenario.events_per_customer_month)
    landing = load_settings(data_dir=home / "landing-data", landing_url="", warehouse_path="")
    land_jsonl_offline(landing, summary.touchpoints_file, summary.customers_file)
    stamp.write_text(scenario.key())
    return home, json.loads(summary.ground_truth_file.read_text())


def build(home: Path, scoring_file: Path, end: str):
    """A fresh warehouse over the scenario's landing zone, built with ``scoring_file``."""
    from loyalty_monitor import warehouse

    data_dir = home / "run"
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = _settings(data_dir, scoring_file)
    landing = Path(settings.landing)
    landing.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(home / "landing-data" / "landing", landing)
    started = time.perf_counter()
    warehouse.build(settings, as_of=end, full_refresh=True)
    return settings, time.perf_counter() - started


def _d(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def evaluate(settings, truth: dict, end: dt.date, warmup_days: int) -> dict:
    """Counts (not yet ratios) of one history, so that histories can be pooled."""
    from loyalty_monitor import warehouse

    con = warehouse.connect(settings)
    try:
        alerts = con.execute("select customer_id, rule, alert_date from build.fct_churn_alerts").fetchall()
        first_seen = dict(con.execute(
            "select customer_id, min(as_of_date) from build.fct_customer_health_daily group by customer_id").fetchall())
        quadrants = dict(con.execute(
            "select quadrant, count(*) from build.fct_loyalty_matrix where period_end_date = ? group by quadrant",
            [end]).fetchall())
        quadrants_all = dict(con.execute(
            "select quadrant, count(*) from build.fct_loyalty_matrix group by quadrant").fetchall())
    finally:
        con.close()
    return score(alerts, first_seen, truth, end, warmup_days, quadrants, quadrants_all)


def score(alerts: list[tuple], first_seen: dict, truth: dict, end: dt.date, warmup_days: int,
          quadrants: dict, quadrants_all: dict) -> dict:
    """Counts from alert episodes ``(customer_id, rule, alert_date)`` and each customer's first day."""
    people = {row["customer_id"]: row for row in truth["customers"]}
    by_customer: dict[str, list[tuple[str, dt.date]]] = {}
    for customer_id, rule, alert_date in alerts:
        by_customer.setdefault(customer_id, []).append((rule, alert_date))

    def in_drift(row: dict, day: dt.date) -> bool:
        return bool(row["churns"]) and _d(row["drift_start"]) <= day <= _d(row["churn_date"])

    def in_rough_patch(row: dict, day: dt.date) -> bool:
        start = _d(row.get("rough_patch_start"))
        return start is not None and start <= day <= _d(row["rough_patch_end"]) + dt.timedelta(
            days=ROUGH_PATCH_GRACE_DAYS)

    rules = ("all",) + RULES
    out = {rule: {"episodes": 0, "true_episodes": 0, "stable_false_episodes": 0, "stable_episodes": 0,
                  "alerted_churners": 0, "lead_days": []} for rule in rules}
    eligible = stable_years = 0.0
    for customer_id, row in people.items():
        first = first_seen.get(customer_id)
        if first is None:  # erased (tombstone) or never seen: not in any mart
            continue
        episodes = by_customer.get(customer_id, [])
        for rule, day in episodes:
            true = in_drift(row, day) or in_rough_patch(row, day)
            for key in ("all", rule):
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
        for key in rules:
            days = [day for rule, day in episodes if (key == "all" or rule == key) and drift_start <= day <= churn_date]
            if days:
                out[key]["alerted_churners"] += 1
                out[key]["lead_days"].append((churn_date - min(days)).days)
    return {"eligible_churners": int(eligible), "stable_customer_years": round(stable_years, 3),
            "rules": out, "quadrants_at_end": quadrants, "quadrants_all_months": quadrants_all}


def summarise(counts: dict) -> dict:
    """Ratios from counts (one history or several pooled)."""
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


def _fmt(value, pattern: str) -> str:
    return "-" if value is None else format(value, pattern)


def print_table(title: str, summary: dict) -> None:
    print(f"\n{title}: {summary['eligible_churners']} churners, {summary['stable_customer_years']} stable customer-years")
    print(f"  {'rule':<20} {'episodes':>8} {'recall':>7} {'lead d':>7} {'fa/yr':>6} {'fa/yr all':>9} {'precision':>9}")
    for rule, r in summary["rules"].items():
        print(f"  {rule:<20} {r['episodes']:>8} {_fmt(r['recall'], '7.0%')} {_fmt(r['median_lead_days'], '7.0f')} "
              f"{_fmt(r['false_alarms_per_stable_year'], '6.2f')} {_fmt(r['episodes_per_stable_year'], '9.2f')} "
              f"{_fmt(r['precision'], '9.0%')}")
    for key, label in (("quadrant_shares_at_end", "quadrants at end"), ("quadrant_shares_all_months", "all months")):
        shares = summary[key]
        print(f"  {label:<17} " + "  ".join(f"{q} {_fmt(shares[q], '.0%')}" for q in QUADRANTS))


def main(argv: list[str] | None = None) -> int:
    from loyalty_monitor.settings import PROJECT_ROOT

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="\n".join(__doc__.rstrip().splitlines()[-4:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="two small histories instead of the full set")
    parser.add_argument("--scoring", type=Path, default=PROJECT_ROOT / "config" / "scoring.yml",
                        help="scoring file to judge (default: config/scoring.yml)")
    parser.add_argument("--work", type=Path, help="keep generated and landed histories here and reuse them")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="only the scenarios with these names")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    args = parser.parse_args(argv)

    scenarios = QUICK if args.quick else FULL
    if args.only:
        scenarios = tuple(s for s in scenarios if s.name in args.only)
        if not scenarios:
            parser.error("no scenario has one of those names")
    scoring = yaml.safe_load(args.scoring.read_text())
    warmup = int(scoring["alerts"]["warmup_days"])
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-alert-quality-"))
    work.mkdir(parents=True, exist_ok=True)
    results, all_counts = [], []
    try:
        for scenario in scenarios:
            print(f"\n{scenario.name}: generate and land ...", end="", flush=True)
            started = time.perf_counter()
            home, truth = prepare(scenario, work)
            print(f" {time.perf_counter() - started:.0f}s; build ...", end="", flush=True)
            settings, seconds = build(home, args.scoring.resolve(), scenario.end)
            print(f" {seconds:.0f}s", flush=True)
            counts = evaluate(settings, truth, dt.date.fromisoformat(scenario.end), warmup)
            all_counts.append(counts)
            summary = summarise(counts)
            print_table(scenario.name, summary)
            results.append({"scenario": asdict(scenario), "build_s": round(seconds, 1), **summary})
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    overall = summarise(pool(all_counts))
    print_table(f"POOLED over {len(results)} histories", overall)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"scoring_file": str(args.scoring), "quick": args.quick,
                                    "eligible_after_days": ELIGIBLE_AFTER_DAYS,
                                    "rough_patch_grace_days": ROUGH_PATCH_GRACE_DAYS,
                                    "pooled": overall, "histories": results}, indent=1) + "\n")
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
