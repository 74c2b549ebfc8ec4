"""The alert-quality bench's scoring and its oracle, on small handcrafted inputs (no warehouse build).

bench/bench_alert_quality.py scores churn-risk cases and old rule alerts against the generator's
ground truth at customer level; bench/oracle.py is the CUSUM with the true parameters it compares
the model with. These tests pin the definitions on histories small enough to count by hand.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench import bench_alert_quality as aq
from bench import oracle as oc
from bench.__main__ import QUICK_ARGS, runs
from loyalty_monitor.generator import generate

D = dt.date.fromisoformat
START, END = D("2025-01-01"), D("2025-12-31")


def person(customer_id: str, *, churn: str | None = None, drift: str | None = None, manager: str = "AM01",
           rough: tuple[str, str] | None = None, segment: str = "growth", gaps: dict | None = None) -> dict:
    return {"customer_id": customer_id, "segment": segment, "account_manager_id": manager, "added_at": None,
            "churns": churn is not None, "drift_start": drift, "churn_date": churn, "deleted": False,
            "deleted_at": None, "rough_patch_start": rough[0] if rough else None,
            "rough_patch_end": rough[1] if rough else None, "rhythm": 1.0,
            "healthy_mean_gap_days": gaps or {p: 100.0 for p in oc.PROCESSES}}


def truth_of(*people: dict, **generator) -> dict:
    return {"generator": {"start": START.isoformat(), "end": END.isoformat(), **generator},
            "customers": list(people)}


def population(truth: dict, first_seen: dict | None = None, weights: dict | None = None) -> aq.Population:
    seen = first_seen or {row["customer_id"]: START for row in truth["customers"]}
    return aq.Population.from_truth(truth, seen, weights)


# --- customer-level scoring ----------------------------------------------------------------------

def test_a_churner_alerted_30_days_before_its_churn_is_recalled_with_lead_30():
    truth = truth_of(person("C1", drift="2025-07-01", churn="2025-10-01"))
    counts = aq.customer_counts([("C1", D("2025-09-01"))], population(truth))
    figures = aq.customer_figures(counts)
    assert counts["eligible_churners"] == 1 and counts["recalled_churners"] == 1
    assert figures["recall"] == 1.0 and figures["median_lead_days"] == 30
    assert figures["precision"] == 1.0


def test_an_alert_200_days_before_the_churn_is_neither_recall_nor_precision():
    truth = truth_of(person("C1", drift="2025-08-01", churn="2025-12-20"))
    figures = aq.customer_figures(aq.customer_counts([("C1", D("2025-06-03"))], population(truth)))
    assert figures["recall"] == 0.0 and figures["median_lead_days"] is None
    assert figures["precision"] == 0.0  # 200 days > the 180-day horizon


def test_a_case_opened_after_the_customer_left_is_late_not_precise():
    truth = truth_of(person("C1", drift="2025-05-01", churn="2025-08-01"), person("C2"))
    counts = aq.customer_counts([("C1", D("2025-08-20")), ("C2", D("2025-08-20"))], population(truth))
    figures = aq.customer_figures(counts)
    assert figures["precision"] == 0.0 and figures["recall"] == 0.0
    assert figures["late_customers"] == 1 and figures["late_share"] == 0.5


def test_the_recall_window_is_7_to_180_days_and_the_first_such_case_gives_the_lead():
    truth = truth_of(person("C1", drift="2025-06-01", churn="2025-10-01"),
                     person("C2", drift="2025-06-01", churn="2025-10-01"))
    cases = [("C1", D("2025-09-27")),                         # 4 days before: too late for recall
             ("C2", D("2025-07-03")), ("C2", D("2025-09-01"))]  # 90 and 30 days before
    counts = aq.customer_counts(cases, population(truth))
    assert counts["recalled_churners"] == 1 and counts["lead_days"] == [90]
    # both are precise: churned within 180 days of a case (0 to 180 days after it opened)
    assert counts["precise_customers"] == 2


def test_a_stable_customers_case_is_a_false_alarm_per_100_stable_customer_years():
    truth = truth_of(person("S1"), person("S2", rough=("2025-05-01", "2025-06-15")))
    counts = aq.customer_counts([("S2", D("2025-05-20"))], population(truth))
    figures = aq.customer_figures(counts)
    years = 2 * (365 - aq.ELIGIBLE_AFTER_DAYS) / 365.25
    assert counts["stable_alerted_customers"] == 1 and figures["precision"] == 0.0
    assert figures["false_alarm_customers_per_100_stable_years"] == round(100 / years, 2)


def test_precision_counts_customers_not_cases():
    truth = truth_of(person("C1", drift="2025-07-01", churn="2025-11-01"), person("S1"))
    cases = [("C1", D("2025-08-01")), ("C1", D("2025-09-01")), ("C1", D("2025-10-01")), ("S1", D("2025-06-01"))]
    figures = aq.customer_figures(aq.customer_counts(cases, population(truth)))
    assert figures["cases"] == 4 and figures["alerted_customers"] == 2
    assert figures["precision"] == 0.5


def test_eligibility_needs_60_days_of_history_before_the_drift_and_a_drift_inside_the_history():
    truth = truth_of(person("EARLY", drift="2025-02-15", churn="2025-05-01"),
                     person("LATE", drift="2026-01-10", churn="2026-02-10"),
                     person("OK", drift="2025-06-01", churn="2025-08-01"),
                     person("ERASED", drift="2025-06-01", churn="2025-08-01"))
    seen = {"EARLY": START, "LATE": START, "OK": START}  # ERASED: not in the warehouse
    pop = population(truth, seen)
    assert [c for c in ("EARLY", "LATE", "OK", "ERASED") if pop.eligible(c)] == ["OK"]
    counts = aq.customer_counts([("ERASED", D("2025-07-01")), ("LATE", D("2025-12-01"))], pop)
    # an erased customer's case is not scored; LATE churns within 180 days of its case: precise
    assert counts["alerted_customers"] == 1 and counts["precise_customers"] == 1
    assert counts["eligible_churners"] == 1


def test_value_weighted_recall_and_cases_per_account_manager_month():
    truth = truth_of(person("BIG", drift="2025-06-01", churn="2025-09-01", manager="AM01"),
                     person("SMALL", drift="2025-06-01", churn="2025-09-01", manager="AM02"))
    pop = population(truth, weights={"BIG": 900_000.0, "SMALL": 100_000.0})
    figures = aq.customer_figures(aq.customer_counts([("BIG", D("2025-08-01"))], pop))
    assert figures["recall"] == 0.5 and figures["value_weighted_recall"] == 0.9
    months = (365 - aq.CASE_WARMUP_DAYS) / aq.DAYS_PER_MONTH
    assert figures["cases_per_manager_month"] == round(1 / (2 * months), 3)


def test_pooling_sums_counts_before_taking_ratios():
    one = truth_of(person("C1", drift="2025-06-01", churn="2025-09-01"), person("S1"))
    two = truth_of(person("C2", drift="2025-06-01", churn="2025-09-01"), person("S2"), person("S3"))
    a = aq.customer_counts([("C1", D("2025-08-01"))], population(one))                       # 1 of 1
    b = aq.customer_counts([("S2", D("2025-08-01")), ("S3", D("2025-08-01"))], population(two))  # 0 of 2
    pooled = aq.customer_figures(aq.pool_customer_counts([a, b]))
    assert pooled["precision"] == round(1 / 3, 3)  # not the mean of 1.0 and 0.0
    assert pooled["recall"] == 0.5 and pooled["median_lead_days"] == 31


def test_relative_gives_each_model_figure_as_a_share_of_the_oracles():
    model = {"precision": 0.45, "recall": 0.3, "median_lead_days": 40, "value_weighted_recall": None,
             "false_alarm_customers_per_100_stable_years": 6.0}
    oracle = {"precision": 0.6, "recall": 0.5, "median_lead_days": 50, "value_weighted_recall": 0.5,
              "false_alarm_customers_per_100_stable_years": 3.0}
    assert aq.relative(model, oracle) == {"precision": 0.75, "recall": 0.6, "median_lead_days": 0.8,
                                          "value_weighted_recall": None,
                                          "false_alarm_customers_per_100_stable_years": 2.0}


def test_cases_at_other_probabilities_open_once_per_run_and_close_below_the_close_probability():
    day = [START + dt.timedelta(days=i) for i in range(12)]
    p = [0.1, 0.75, 0.8, 0.5, 0.2, 0.65, 0.95, 0.4, 0.35, 0.72, 0.1, 0.9]
    observed = [0, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71]
    rows = [("C1", d, q, o) for d, q, o in zip(day, p, observed)]
    assert aq.cases_at(rows, 0.7, 0.3, 60) == [("C1", day[1]), ("C1", day[6]), ("C1", day[11])]
    # at 0.6 the second run opens a day earlier
    assert aq.cases_at(rows, 0.6, 0.3, 60) == [("C1", day[1]), ("C1", day[5]), ("C1", day[11])]
    # no case in the warm-up; a high probability then opens on the first day after it
    young = [("C2", d, 0.9, o) for d, o in zip(day[:4], (58, 59, 60, 61))]
    assert aq.cases_at(young, 0.7, 0.3, 60) == [("C2", day[2])]


def test_rule_episodes_merge_days_within_the_cooldown():
    flagged = [("C1", "status_drop", D("2025-03-01")), ("C1", "status_drop", D("2025-03-10")),
               ("C1", "status_drop", D("2025-04-01")), ("C1", "dialogue_gap", D("2025-03-05"))]
    assert aq.rule_episodes(flagged, 14) == [("C1", "dialogue_gap", D("2025-03-05")),
                                             ("C1", "status_drop", D("2025-03-01")),
                                             ("C1", "status_drop", D("2025-04-01"))]


# --- the oracle ----------------------------------------------------------------------------------

def test_cusum_resets_at_zero_and_alerts_rearm_only_after_it_returns_there():
    s = oc.cusum([1.0, -3.0, 2.0, 2.0, -1.0, 2.0, -5.0, 4.0])
    assert s.tolist() == [1.0, 0.0, 2.0, 4.0, 3.0, 5.0, 0.0, 4.0]
    assert oc.crossings(s, 3.5, warmup=0) == [3, 7]   # index 5 is the same excursion
    assert oc.crossings(s, 3.5, warmup=4) == [5, 7]   # already above at the end of the warm-up


def test_the_daily_log_likelihood_ratio_is_poisson():
    counts, expected = np.array([[0.0, 2.0], [1.0, 0.0]]), np.array([[0.5, 0.5], [0.1, 0.1]])
    llr = oc.daily_llr(counts, expected, [0.5, 2.0])
    assert llr[0] == pytest.approx(0.5 * 0.5 + math.log(2.0) - 0.1)
    assert llr[1] == pytest.approx(2 * math.log(0.5) + 0.5 * 0.5 - 0.1)


GENERATOR = {"seasonality": 0.0, "churn_shape": "fade", "drift_progress": "linear",
             "drift_rate_at_churn": {"sales": 0.2, "reception": 1.0, "service": 0.4, "order": 0.33,
                                     "dunning": 4.0, "complaint": 4.0, "survey": 0.7, "management": 0.15,
                                     "other": 0.5},
             "orders_stop_at_drift": 0.6, "stops_at_drift": {"order": 0.6, "management": None},
             "friction_at_churn": 1.0, "follow_up_share": {"growth": 0.0},
             "planned_processes": ["sales", "order", "management", "survey"],
             "role_model": {"healthy_top_share": 0.5}}


def test_true_drift_ratios_per_shape():
    row = person("C1")
    fade = oc.stream_rates(GENERATOR, row, roles=False, marks=False)
    assert fade["sales"][1] == pytest.approx(0.6)                            # 1 + (0.2 - 1) / 2
    assert fade["order"][1] == pytest.approx(0.6 - 0.67 * 0.6 ** 2 / 2, abs=1e-3)  # stops at 60 %
    assert fade["reception"][1] == pytest.approx(1.0)
    sudden = oc.stream_rates({**GENERATOR, "churn_shape": "sudden", "drift_progress": "step",
                              "stops_at_drift": {"order": 0.0}, "orders_stop_at_drift": 0.0}, row,
                             roles=False, marks=False)
    assert sudden["sales"][1] == pytest.approx(0.2) and sudden["dunning"][1] == pytest.approx(4.0)
    assert sudden["order"][1] == oc.RATIO_FLOOR and sudden["order"][0] == pytest.approx(1 / 100)  # stopped: floored
    full = oc.stream_rates(GENERATOR, row)
    assert set(full) == set(oc.streams())
    assert full["sales_senior"][1] < fade["sales"][1] < full["sales_rest"][1]  # contacts narrow
    assert full["survey_rest_detractor"][1] > 1 > full["survey_rest_promoter"][1]


def _rhythm(first: dt.date, last: dt.date, gap: int, process: str) -> list[oc.Event]:
    """A touch every ``gap`` days, moved off weekends to the Monday (as the generator does)."""
    out, day, n = [], first, 0
    while day <= last:
        d = day + dt.timedelta(days=(7 - day.weekday()) % 7 if day.weekday() >= 5 else 0)
        if d <= last:
            out.append(oc.Event(d, process, "decision_maker" if n % 2 else "user", ""))
        day += dt.timedelta(days=gap)
        n += 1
    return out


@pytest.mark.parametrize("roles, marks", [(False, False), (True, True)])
def test_the_oracle_crosses_for_a_customer_whose_touches_stop_and_not_for_one_that_keeps_its_rhythm(roles, marks):
    gaps = {p: 100_000.0 for p in oc.PROCESSES} | {"sales": 5.0, "order": 10.0}
    truth = truth_of(person("STEADY", gaps=gaps), person("GOES", gaps=gaps, drift="2025-07-01", churn="2025-10-01"),
                     **GENERATOR)
    stop = D("2025-07-20")
    events = {"STEADY": _rhythm(START, END, 5, "sales") + _rhythm(START, END, 10, "order"),
              "GOES": _rhythm(START, stop, 5, "sales") + _rhythm(START, stop, 10, "order")}
    oracle = oc.Oracle(truth, events, roles=roles, marks=marks)
    steady, goes = oracle.traces["STEADY"], oracle.traces["GOES"]
    assert steady.peak < 3.0
    alerts = oracle.alerts(5.0)
    assert [c for c, _ in alerts] == ["GOES"]
    opened = alerts[0][1]
    assert stop < opened < stop + dt.timedelta(days=60)
    # at the threshold for one alerted customer, it is the one that went quiet
    assert oracle.alerted_customers(oracle.threshold_for(1)) == 1
    assert {c for c, _ in oracle.alerts(oracle.threshold_for(1))} == {"GOES"}
    assert goes.peak > steady.peak


def test_the_oracle_at_equal_recall_alerts_the_fewest_customers_that_recall_as_many_churners():
    gaps = {p: 100_000.0 for p in oc.PROCESSES} | {"sales": 5.0, "order": 10.0}
    truth = truth_of(person("STEADY", gaps=gaps), person("GOES", gaps=gaps, drift="2025-07-01", churn="2025-12-20"),
                     person("PAUSES", gaps=gaps), **GENERATOR)
    stop, pause, back = D("2025-07-20"), D("2025-03-01"), D("2025-11-30")
    both = _rhythm(START, END, 5, "sales") + _rhythm(START, END, 10, "order")
    events = {"STEADY": both, "GOES": [e for e in both if e.day < stop],
              "PAUSES": [e for e in both if not pause <= e.day < back]}
    oracle = oc.Oracle(truth, events)
    assert oracle.traces["PAUSES"].peak > oracle.traces["GOES"].peak > oracle.traces["STEADY"].peak
    people, scored = population(truth), ["GOES", "PAUSES", "STEADY"]
    # the stable customer's long pause ranks first: one churner recalled takes two alerted customers
    one = aq.oracle_at_recall(oracle, scored, people, recalled=1)
    assert (one["alerted_customers"], one["recalled_churners"], one["precise_customers"]) == (2, 1, 1)
    none = aq.oracle_at_recall(oracle, scored, people, recalled=0)
    assert (none["alerted_customers"], none["recalled_churners"]) == (0, 0)
    # asked for more than it can reach, it takes all its alerts
    assert aq.oracle_at_recall(oracle, scored, people, recalled=2)["recalled_churners"] == 1
    figures = aq.report({"model": one, "rules": one, "oracle": one, "oracle_equal_recall": one, "sweep": [],
                         "episodes": aq.pool([])})["customers"]
    assert figures["model_vs_oracle_equal_recall"]["precision"] == 1.0


def test_events_map_back_to_the_generators_processes():
    def rec(event_type, department, payload=None, role="user"):
        return {"event_type": event_type, "department": department, "payload": payload or {}, "contact_role": role}

    assert oc.process_of(rec("order", "sales")) == "order"
    assert oc.process_of(rec("call", "sales")) == "sales"
    assert oc.process_of(rec("meeting", "management")) == "management"
    assert oc.process_of(rec("call", "reception")) == "reception"
    assert oc.process_of(rec("complaint", "service")) == "complaint"
    assert oc.process_of(rec("service_visit", "service")) == "service"
    assert oc.process_of(rec("survey_response", "support")) == "survey"
    assert oc.process_of(rec("dunning_contact", "finance", {"stage": "reminder"})) == "dunning"
    assert oc.process_of(rec("dunning_contact", "finance", {"stage": "second_reminder"})) is None
    assert oc.mark_of("sales", rec("call", "sales", {"answered": False})) == "unanswered"
    assert oc.mark_of("survey", rec("survey_response", "support", {"nps_score": 6})) == "detractor"
    assert oc.stream_of("sales", "executive", "unanswered") == "sales_senior_unanswered"
    assert oc.stream_of("sales", "executive", "unanswered", roles=False, marks=False) == "sales"


def test_read_events_maps_every_valid_touch_of_a_generated_history(tmp_path):
    from loyalty_monitor.generator import generate

    summary = generate(tmp_path, customers=12, start="2025-01-01", end="2025-04-30", seed=3)
    events = oc.read_events(summary.touchpoints_file)
    mapped = sum(len(v) for v in events.values())
    escalations = sum(1 for line in summary.touchpoints_file.read_text().splitlines()
                      if '"dunning_contact"' in line and '"stage":"reminder"' not in line)
    # opportunities (contract 1.1) are no touches: the oracle, like the warehouse, leaves them out
    opportunities = sum(1 for line in summary.touchpoints_file.read_text().splitlines()
                        if '"event_type":"opportunity"' in line)
    assert opportunities > 0
    # every valid event is counted once (duplicates and malformed lines dropped), but escalations
    assert mapped <= summary.valid_events
    assert mapped >= summary.valid_events - escalations - opportunities
    assert all(e.process in oc.PROCESSES for v in events.values() for e in v)


def test_a_champion_drift_stops_executive_meetings_but_they_are_usual_when_healthy():
    champion = {**GENERATOR, "churn_shape": "champion", "friction_at_churn": 0.4,
                "stops_at_drift": {"order": 0.8, "management": 0.0}, "orders_stop_at_drift": 0.8,
                "drift_rate_at_churn": {**GENERATOR["drift_rate_at_churn"], "management": 0.0, "sales": 0.6}}
    rates = oc.stream_rates(champion, person("C1"))
    assert rates["management"] == (pytest.approx(1 / 100), oc.RATIO_FLOOR)
    assert rates["sales_senior"][1] == oc.RATIO_FLOOR and rates["sales_rest"][1] > 1  # the champion left at once


def test_the_held_out_histories_cover_every_shape_with_seeds_and_names_of_their_own(tmp_path):
    """Held out means a history of its own: no seed or name of the tuned sets."""
    assert {s.shape for s in aq.HOLDOUT} == set(aq.SHAPES)
    assert not {s.seed for s in aq.HOLDOUT} & {s.seed for s in aq.FULL + aq.QUICK}
    assert len({s.name for s in aq.HOLDOUT + aq.FULL + aq.QUICK}) == len(aq.HOLDOUT + aq.FULL + aq.QUICK)
    for scenario in aq.HOLDOUT:  # the generator takes each (five customers of it, to be quick)
        summary = generate(tmp_path / scenario.name, **{**scenario.generator_kwargs(), "customers": 5})
        assert (summary.start.isoformat(), summary.end.isoformat()) == (scenario.start, scenario.end)


def test_reseeding_keeps_each_scenarios_shape_and_size_and_moves_only_its_seed_and_name():
    picked = aq.select(aq.FULL, shapes=["sparse", "calm"], reseed=1000)
    originals = aq.select(aq.FULL, shapes=["sparse", "calm"])
    assert [s.shape for s in picked] == ["sparse", "calm"]
    for new, old in zip(picked, originals, strict=True):
        assert (new.seed, new.name) == (old.seed + 1000, f"{old.name}+1000")
        assert replace(new, name=old.name, seed=old.seed) == old
    assert aq.stored_seeds_reused(picked) == []
    # --only takes a name as printed by a reseeded run, or as stored
    assert aq.select(aq.HOLDOUT, only=["holdout-calm-300x15m-s107+5"], reseed=5) == \
        aq.select(aq.HOLDOUT, only=["holdout-calm-300x15m-s107"], reseed=5)
    assert [s.seed for s in aq.select(aq.HOLDOUT, only=["holdout-calm-300x15m-s107"], reseed=5)] == [112]
    assert aq.select(aq.QUICK, only=["no such history"]) == ()
    # a reseed that lands on a stored history's seed is named (fade s42 + 59 = the held-out fade's 101)
    assert aq.stored_seeds_reused(aq.select(aq.FULL, shapes=["fade"], reseed=59)) == ["fade-350x18m-s42+59"]


def test_each_set_writes_its_own_results_file_so_a_quick_run_keeps_the_full_sets():
    paths = {aq.default_results(quick, holdout, reseed)
             for quick, holdout in [(False, False), (True, False), (False, True)] for reseed in (0, 2000)}
    assert len(paths) == 6
    assert aq.default_results(False, False, 0).name == "alert_quality.json"
    assert aq.default_results(False, True, 0).name == "alert_quality_holdout.json"
    assert aq.default_results(False, True, 2000).name == "alert_quality_holdout+2000.json"


def test_the_bench_names_the_held_out_histories_when_none_matches(capsys):
    with pytest.raises(SystemExit) as stopped:
        aq.main(["--holdout", "--only", "no-such-history"])
    assert stopped.value.code == 2
    assert "holdout-calm-300x15m-s107" in capsys.readouterr().err


def test_a_full_bench_run_judges_alert_quality_on_the_tuned_and_the_held_out_histories():
    full = runs(["bench_alert_quality", "bench_demo"], quick=False)
    assert full == [("bench_alert_quality", []), ("bench_alert_quality", ["--holdout"]), ("bench_demo", [])]
    quick = runs(["bench_alert_quality", "bench_demo"], quick=True)
    assert quick == [("bench_alert_quality", QUICK_ARGS["bench_alert_quality"]), ("bench_demo", [])]


def test_cases_opened_long_after_the_customer_was_last_heard_from_are_counted_apart_by_outcome():
    truth = truth_of(person("GONE", churn="2025-06-30", drift="2025-04-01"),
                     person("TALKS", churn="2025-06-30", drift="2025-04-01"),
                     person("STAYS"), person("LATER", churn="2025-12-31", drift="2025-09-01"))
    pop = population(truth)
    cases = [("GONE", D("2025-07-20"), D("2025-05-01")),    # 80 days silent, after the churn: late
             ("TALKS", D("2025-05-15"), D("2025-05-10")),   # heard 5 days before, churns 46 days on
             ("STAYS", D("2025-09-01"), None),              # never heard from, never churns
             ("STAYS", D("2025-03-01"), D("2025-01-05")),   # 55 days: under the 60
             ("LATER", "2025-02-01", "2025-01-01"),         # churns 333 days after: neither
             ("UNKNOWN", D("2025-05-01"), None)]            # not in the population: not counted
    counts = aq.silent_case_counts(cases, pop, silent_days=60)
    assert counts == {"all_precise": 1, "all_late": 1, "all_stayed": 2, "all_other": 1,
                      "silent_precise": 0, "silent_late": 1, "silent_stayed": 1, "silent_other": 0}
    assert aq.pool_customer_counts([counts, counts])["silent_late"] == 2


def test_the_went_silent_label_needs_a_silence_unlikely_under_the_customers_own_rhythm():
    every_3_days = [START + dt.timedelta(days=3 * i) for i in range(120)]
    monthly = [START + dt.timedelta(days=30 * i) for i in range(13)]               # until 2025-12-27
    heard = {"CHATTY": [d for d in every_3_days if d < D("2025-09-01")], "MONTHLY": monthly,
             "NEW": [D("2025-08-20"), D("2025-09-01")]}
    seen = {"CHATTY": START, "MONTHLY": START, "NEW": D("2025-08-20")}
    scoring = {"risk_cases": {"went_silent_min_days": 30, "went_silent_chance": 0.01, "warmup_days": 60}}
    silence = aq.Silence.from_scoring(heard, seen, scoring)
    last = max(heard["CHATTY"])                                                   # 2025-08-29
    # 29 days without a word from a customer heard from every third day: under the 30-day minimum
    assert not silence.went_silent("CHATTY", last + dt.timedelta(days=29))
    assert silence.went_silent("CHATTY", last + dt.timedelta(days=30))
    # a month between touches is its rhythm (13 days in the 361 days up to the last: every 27.8
    # days): 120 days of silence is not unlikely enough (exp(-120 / 27.8) = 0.013), 130 days is
    assert not silence.went_silent("MONTHLY", max(monthly) + dt.timedelta(days=120))
    assert silence.went_silent("MONTHLY", max(monthly) + dt.timedelta(days=130))
    # a customer known for less than the warm-up up to its last touch has no rhythm to judge
    assert not silence.went_silent("NEW", D("2025-11-30"))
    assert not silence.went_silent("UNKNOWN", D("2025-11-30"))
    # nor one not heard from in the year before the day
    assert not silence.went_silent("CHATTY", last + dt.timedelta(days=365))
    kept, silent = silence.split([("CHATTY", last + dt.timedelta(days=10)), ("CHATTY", last + dt.timedelta(days=40))])
    assert (kept, silent) == ([("CHATTY", last + dt.timedelta(days=10))], [("CHATTY", last + dt.timedelta(days=40))])
    off = aq.Silence.from_scoring(heard, seen, {"risk_cases": {**scoring["risk_cases"], "went_silent_chance": 0}})
    assert not off.went_silent("CHATTY", last + dt.timedelta(days=60))


def test_a_quick_bench_run_never_writes_over_a_full_runs_results():
    """Where each benchmark's full run writes its results (its module's RESULTS), the quick run of
    ``python -m bench --quick`` does not, except where both are the same measurement (BG/NBD on
    CDNOW has one size) or results are merged by size (the warehouse benchmark)."""
    import importlib

    same_or_merged = {"bench_bgnbd", "bench_warehouse"}
    assert aq.default_results(True, False, 0) != aq.RESULTS
    for name, quick in QUICK_ARGS.items():
        full_out = getattr(importlib.import_module(f"bench.{name}"), "RESULTS", None)
        if full_out is None or name in same_or_merged or name == "bench_alert_quality":
            continue
        assert "--out" in quick, f"python -m bench --quick would overwrite {full_out} with {name}'s quick figures"
        assert Path(quick[quick.index("--out") + 1]) != full_out, name


def _descendants(pid: int) -> set[int]:
    """The processes below ``pid`` (from /proc: children, their children, ...)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_benchmark_stopped_by_sigterm_stops_its_broker_and_removes_its_temporary_files(tmp_path):
    """`make bench` killed by a CI timeout: the running benchmark (here the ingest one, which starts
    an embedded Tansu broker and fills a temporary directory) unwinds as on Ctrl-C instead of leaving
    the broker running and its files behind."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    bench = subprocess.Popen([sys.executable, "-m", "bench", "--quick", "ingest"], env=env,
                             cwd=Path(aq.__file__).parents[1], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, start_new_session=True)
    deadline, below = time.monotonic() + 300, set()
    while time.monotonic() < deadline and bench.poll() is None:
        below = _descendants(bench.pid)
        brokers = [p for p in below if "tansu" in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")]
        if brokers and list(tmp_path.glob("bench-ingest-*")):
            break
        time.sleep(0.2)
    assert brokers, "the benchmark should have started its broker"
    # as `timeout` or a CI runner stops a job: SIGTERM to the whole process group (the broker
    # included); `python -m bench` passes it on to the benchmark too, which must clean up once
    os.killpg(bench.pid, signal.SIGTERM)
    out, _ = bench.communicate(timeout=120)
    assert bench.returncode == 128 + signal.SIGTERM, out[-2000:]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_running(p) for p in below):
        time.sleep(0.2)
    left = {p: Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ")[:200] for p in below if _running(p)}
    assert not left, f"processes of the benchmark outlived it: {left}"
    assert list(tmp_path.iterdir()) == [], "the benchmark left its temporary files"
