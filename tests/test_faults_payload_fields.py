"""Fault injection, end to end: producers that add their own payload fields whose names another
event type defines. The contract allows unknown payload fields and keeps them (docs/event-contract.md,
"Compatibility rules"); a help desk that sends its ticket stage on every complaint
(``"stage": "escalated"``) and a mail system that sends a ``"severity"`` with every e-mail are
therefore valid producers. Their fields used to land in the typed ``stage`` and ``severity``
columns, fail the landing gate's critical "dunning stage" and "complaint severity" checks on
every such row, exceed the quarantine's share and stop the daily run for every customer.

A small generated history with both producers' fields goes through the real broker, the real
consumer and the real ``loyalty run`` (Airflow ``dag.test()``, Great Expectations, dbt on DuckDB):
the run passes, nothing is quarantined, every customer is published, and the fields are kept.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import duckdb
import pytest
from alerting_servers import airflow_test_environment

airflow_test_environment()

import pipeline_world  # noqa: E402
from pipeline_world import loyalty  # noqa: E402

from loyalty_core.landing_zone import LandingZone  # noqa: E402
from loyalty_core.settings import PROJECT_ROOT  # noqa: E402

pytestmark = [pytest.mark.faults, pytest.mark.slow]

START = dt.date(2025, 11, 1)
END = dt.date(2026, 1, 31)
FOREIGN = {"complaint": {"stage": "escalated"}, "email": {"severity": "normal"}}


def _add_foreign_fields(line: str) -> str:
    try:
        record = json.loads(line)
    except ValueError:
        return line  # the generator's deliberately broken lines stay as they are
    if isinstance(record, dict) and isinstance(record.get("payload"), dict) and record.get("event_type") in FOREIGN:
        record["payload"].update(FOREIGN[record["event_type"]])
        return json.dumps(record)
    return line


def test_payload_fields_named_like_another_types_fields_do_not_stop_the_run(broker, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        settings, env = pipeline_world.enter(mp, broker, data_dir, PROJECT_ROOT / "config" / "scoring.yml",
                                             f"{os.getpid()}-foreign", LOYALTY_ALERT_CHANNELS="file")
        gen = tmp_path / "generated"
        loyalty(env, "generate", "--customers", "20", "--seed", "5", "--start", START.isoformat(),
                "--end", END.isoformat(), "--out", str(gen))
        touchpoints = gen / "touchpoints.jsonl"
        lines = touchpoints.read_text().splitlines()
        changed = [_add_foreign_fields(line) for line in lines]
        assert sum(a != b for a, b in zip(lines, changed)) >= 10, "the history has complaints and e-mails"
        touchpoints.write_text("\n".join(changed) + "\n")
        loyalty(env, "produce", str(gen / "customers.jsonl"), "--topic", settings.topic_customers)
        loyalty(env, "produce", str(touchpoints), "--topic", settings.topic_touchpoints)
        loyalty(env, "consume", "--until-idle")

        run = loyalty(env, "run", "--as-of", END.isoformat(), check=False, timeout=900)

    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    quarantine = Path(settings.data_dir) / "quality" / "quarantine.parquet"
    if quarantine.exists():
        held = duckdb.sql(f"select reason from '{quarantine}' where reason like '%stage%' "
                          "or reason like '%severity%'").fetchall()
        assert held == [], held
    landed = LandingZone.from_settings(settings).read("touchpoints").to_pylist()
    complaints = [r for r in landed if r["event_type"] == "complaint"]
    assert complaints and all(r["stage"] is None and r["severity"] in ("low", "medium", "high") for r in complaints)
    assert all(json.loads(r["payload_json"])["stage"] == "escalated" for r in complaints), "the field is kept"
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        published = con.execute("select count(distinct customer_id) from published.fct_customer_health_daily "
                                "where as_of_date = ?", [END]).fetchone()[0]
    finally:
        con.close()
    assert published > 0
