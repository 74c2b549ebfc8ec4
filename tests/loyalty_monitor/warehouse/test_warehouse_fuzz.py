"""Odd input that nobody planned for, through the whole daily chain: 600 random mutations of a generated
history's own touchpoints (seeded: tests/helpers/fuzz.py) are landed beside it. Each is landed or
written to the landing zone's rejects with its error code; what the contract lets through (unknown
extra fields, odd but legal identifiers such as an emoji or a date as a customer_id, a missing
optional field) goes through the dbt build with its data tests, the BG/NBD step, both quality gates,
publishing and alert dispatch without an error, and the gate tells the data engineers about the odd
customers instead of staying silent."""

from __future__ import annotations

import json
import random
from pathlib import Path

import duckdb
import pytest
from fuzz import encode, mutate_record
from warehouse_history import land, make_history, warehouse_settings

from loyalty_core.contract import ERROR_CODES
from loyalty_monitor import pipeline, warehouse
from streaming.landing import offline_source

pytestmark = pytest.mark.faults

MUTATIONS = 600


def test_mutated_touchpoints_never_stop_the_daily_chain_and_the_gate_names_them(tmp_path):
    history = make_history(tmp_path / "history", customers=25, start="2025-11-01", end="2026-03-31", seed=3)
    lines = history.touchpoints.read_text(encoding="utf-8").splitlines()
    rng = random.Random("warehouse-fuzz")
    mutated = []
    for n in range(MUTATIONS):
        record = json.loads(rng.choice(lines))
        record["event_id"] = f"fz-{n}"  # may be mutated away again: then the line is rejected
        mutated.append(encode(mutate_record(rng, record)).decode("utf-8", "surrogatepass"))
    with history.touchpoints.open("a", encoding="utf-8", errors="surrogatepass") as fh:
        fh.write("\n".join(mutated) + "\n")

    settings = warehouse_settings(tmp_path / "data")
    land(settings, history.touchpoints, history.customers)
    rejected = [json.loads(line) for line in
                (Path(settings.landing) / "_rejected" / f"touchpoints-{offline_source(history.touchpoints)}.jsonl")
                .read_text().split("\n") if line]
    assert {r["error_code"] for r in rejected} <= set(ERROR_CODES), "a reject outside the contract's codes"
    assert all(r["error_detail"] for r in rejected)

    landed_rows = duckdb.connect().execute(
        f"select count(*) from read_parquet('{settings.landing}/touchpoints/**/*.parquet')").fetchone()[0]
    # every line is accounted for: landed, or rejected with its reason
    assert landed_rows + len(rejected) == len(lines) + MUTATIONS

    result = warehouse.build(settings, as_of=history.end)
    assert result.success, result.error
    warehouse.release_duckdb()
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        landed = con.execute("select count(*) from build.stg_landing__touchpoints where event_id like 'fz-%'"
                             ).fetchone()[0]
        odd_customers = con.execute(
            "select count(distinct customer_id) from build.int_touchpoints where event_id like 'fz-%' "
            "and customer_id not in (select customer_id from build.int_customers where has_master_data)"
        ).fetchone()[0]
    finally:
        con.close()
    assert landed > 20 and len(rejected) > MUTATIONS // 2  # the mutations hit, and some pass the contract

    landing_gate = pipeline.check_landing(settings, history.end)
    assert landing_gate["passed"]
    assert odd_customers > 0
    assert any("customer_id" in w for w in landing_gate["warnings"]), landing_gate["warnings"]
    assert pipeline.fit_population(settings, history.end, {"full_refresh": False})["customers"] > 0
    assert pipeline.check_marts(settings, history.end)["passed"]
    pipeline.publish(settings, history.end)
    dispatched = pipeline.dispatch_alerts(settings, history.end)
    assert dispatched["failed"] == 0
