"""A full refresh built in customer batches gives exactly the rows of one built in one go.

On DuckDB a full refresh builds the customer-day tables (int_customer_days, int_customer_windows,
fct_dialogue_daily, fct_customer_health_daily, int_alert_flags, int_drift_days) in batches of customers when they
would hold more than ``settings.customer_batch_rows`` rows (macros/customer_batches.sql), so that
its memory does not grow with the history. A small history with a tiny batch size is built in many
batches, in one batch, and by daily runs after a batched build; every table compares equal, row
for row.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from warehouse_history import history_in_two_landings, land, land_as_partition, snapshot

from loyalty_monitor import warehouse

START, CUT, END = "2026-01-01", dt.date(2026, 6, 20), "2026-07-31"
BATCHED = ("int_customer_days", "int_customer_windows", "fct_dialogue_daily", "fct_customer_health_daily",
           "int_alert_flags", "int_drift_days")
COMPARED = BATCHED + ("dim_customers", "fct_touchpoints", "fct_loyalty_matrix", "fct_sales_platform",
                      "fct_account_manager_activity", "fct_churn_alerts", "fct_churn_risk_cases",
                      "int_portfolio_days")
TINY_BATCH = 600  # customer-days: this history's ~8,000 become about a dozen batches


def _snapshot(settings) -> dict[str, list[tuple]]:
    return snapshot(settings, COMPARED)


def _batches_run(settings, model: str) -> int:
    """How many batches the last build of `model` ran in, from the SQL dbt ran (1: not batched)."""
    compiled = next(Path(settings.data_dir, "dbt-target", "run").rglob(f"{model}.sql")).read_text()
    found = re.search(r"/\* customer batch 1 of (\d+) \*/", compiled)
    return int(found.group(1)) if found else 1


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    return history_in_two_landings(tmp_path_factory, customers=40, seed=5, start=START, end=END, cut=CUT)


def test_batched_full_refresh_equals_one_batch_and_daily_runs(landed):
    _, parts, settings, scratch = landed
    batched = settings.replace(customer_batch_rows=TINY_BATCH)
    one_go = settings.replace(customer_batch_rows=0)

    land(settings, parts / "tp1.jsonl", parts / "cu1.jsonl")
    warehouse.build(batched, as_of=CUT, full_refresh=True)
    assert all(_batches_run(batched, model) > 5 for model in BATCHED)
    land_as_partition(settings, scratch, parts / "tp2.jsonl", parts / "cu2.jsonl", partition=1)
    warehouse.build(batched, as_of=END)  # a daily run (late events, new days) on batched tables
    assert _batches_run(batched, "int_customer_days") == 1, "a daily run is never batched"
    daily = _snapshot(settings)

    warehouse.build(one_go, as_of=END, full_refresh=True)
    assert _batches_run(one_go, "int_customer_days") == 1
    whole = _snapshot(settings)

    warehouse.build(batched, as_of=END, full_refresh=True)
    assert all(_batches_run(batched, model) > 5 for model in BATCHED)
    in_batches = _snapshot(settings)

    for table in COMPARED:
        assert len(whole[table]) > 0, table
        assert in_batches[table] == whole[table], f"{table}: the batched full refresh differs"
        assert daily[table] == whole[table], f"{table}: daily runs after a batched build differ"
