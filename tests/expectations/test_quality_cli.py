"""``loyalty validate`` as a data engineer runs it: a real subprocess on real landed files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
from quality_builders import customer_ids, customer_record, day_of_touchpoints, land_customers, land_touchpoints
from test_quality_gate import AS_OF, build_marts

from loyalty_core.settings import load_settings

CUSTOMERS = customer_ids(30)
DAY = datetime.now(timezone.utc).date() - timedelta(days=1)


def _validate(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    env.update(LOYALTY_DATA_DIR=str(data_dir), LOYALTY_ALERT_CHANNELS="file")
    return subprocess.run([sys.executable, "-m", "loyalty_monitor.cli", "validate", *args],
                          cwd=data_dir, env=env, capture_output=True, text=True, timeout=180)


def test_validate_fails_with_exit_1_names_the_expectation_and_notifies(data_dir):
    """Every survey answer of the batch is out of range: a broken producer, not a few bad rows."""
    settings = load_settings(data_dir=data_dir)
    land_customers(settings, [customer_record(c) for c in CUSTOMERS])
    records = day_of_touchpoints(DAY, 10, CUSTOMERS)
    surveys = [i for i, r in enumerate(records) if r["event_type"] == "survey_response"]
    land_touchpoints(settings, records, rows_patch={i: {"nps_score": -1} for i in surveys})

    duckdb.connect(str(settings.warehouse)).close()  # a warehouse exists: the run is copied into it
    run = _validate(data_dir, "--stage", "landing", "--format", "json")
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    assert report["passed"] is False
    (landing,) = report["results"]
    failed = [(f["suite"], f["expectation"], f["column"], f["severity"]) for f in landing["critical_failures"]]
    assert failed == [("quarantine", "failing_row_share", None, "critical"),
                      ("landed_touchpoints", "expect_column_values_to_be_between", "nps_score", "critical")]
    assert landing["quarantined"] == [] and not (data_dir / "quality" / "quarantine.parquet").exists()
    assert Path(landing["docs_path"]).is_file()
    assert "Traceback" not in run.stderr

    outbox = data_dir / "alerts" / "outbox"
    notices = [json.loads(p.read_text()) for p in outbox.glob("*.json")]
    assert len(notices) == 1, run.stderr
    notice = json.dumps(notices[0])
    assert "quality gate landing FAILED" in notice and "nps_score" in notice

    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:  # where the leadership report reads the gate's runs
        recorded = con.execute("select run_id, stage, passed, critical from ops.quality_runs").fetchall()
    finally:
        con.close()
    assert recorded == [(landing["run_id"], "landing", False, 2)]


def test_validate_dates_table_output_exit_0_on_clean_data(data_dir):
    settings = load_settings(data_dir=data_dir)
    land_customers(settings, [customer_record(c) for c in CUSTOMERS])
    land_touchpoints(settings, day_of_touchpoints(DAY, 10, CUSTOMERS))

    run = _validate(data_dir, "--dates", str(DAY))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "landing gate: PASSED" in run.stdout
    assert f"Data Docs: file://{data_dir / 'quality' / 'data_docs' / 'index.html'}" in run.stdout
    assert "marts not checked: no warehouse" in run.stderr  # said, not silently skipped
    assert not settings.warehouse.exists()  # recording the run did not create an empty one
    assert not (data_dir / "alerts" / "outbox").exists()


def test_validate_checks_the_latest_built_day_of_the_marts_by_default(data_dir):
    """Marts built as of a past day (the demo and the daily run build as of yesterday): without
    --as-of the gate checks that day, not today, of which no health row can exist."""
    settings = load_settings(data_dir=data_dir)
    build_marts(settings)
    run = _validate(data_dir, "--stage", "marts", "--format", "json")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"marts as of {AS_OF}, the latest day built in build" in run.stderr
    (marts,) = json.loads(run.stdout)["results"]
    assert marts["rows"]["mart_health"] == 20
    # a day asked for is checked as asked: none of its health rows exist
    asked = _validate(data_dir, "--stage", "marts", "--as-of", str(AS_OF + timedelta(days=1)), "--no-notify")
    assert asked.returncode == 1 and "marts gate: FAILED" in asked.stdout, asked.stdout + asked.stderr


def test_validate_rejects_a_malformed_date_in_one_line(data_dir):
    run = _validate(data_dir, "--dates", "2026-13-01")
    assert run.returncode == 2 and "expected YYYY-MM-DD" in run.stderr
    assert "Traceback" not in run.stderr


def test_validate_quarantines_a_bad_row_lists_it_and_accepts_it_by_id(data_dir):
    """One bad answer among 90 touches: exit 0, the row is set aside and the data engineers told;
    `--quarantined` shows why and its values; `--release` cannot let it in (it still fails);
    `--accept` works on rows (the old whole-file form is refused with a pointer)."""
    settings = load_settings(data_dir=data_dir)
    land_customers(settings, [customer_record(c) for c in CUSTOMERS])
    records = day_of_touchpoints(DAY, 10, CUSTOMERS)
    survey = next(i for i, r in enumerate(records) if r["event_type"] == "survey_response")
    land_touchpoints(settings, records, rows_patch={survey: {"nps_score": -1}})

    run = _validate(data_dir, "--stage", "landing")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "landing gate: PASSED" in run.stdout
    assert "1 row(s) set aside in quarantine" in run.stdout and "nps_score" in run.stdout
    # the row in columns that stay apart however long a name is ("set asidelanded_touchpoints" before)
    set_aside = next(line for line in run.stdout.splitlines() if line.strip().startswith("set aside"))
    assert re.match(r"  set aside  +landed_touchpoints  +expect_column_values_to_be_between  +nps_score  +1 of 90 rows",
                    set_aside), set_aside
    (notice,) = [json.loads(p.read_text()) for p in (data_dir / "alerts" / "outbox").glob("*.json")]
    assert "1 row(s) quarantined, the run goes on" in notice["subject"]
    assert "loyalty validate --release 1" in json.dumps(notice)

    listed = _validate(data_dir, "--quarantined", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)["quarantined"]
    assert row["quarantine_id"] == 1 and row["status"] == "quarantined"
    assert row["expectation"] == "landed_touchpoints.expect_column_values_to_be_between on nps_score"
    assert "NPS is 0-10" in row["reason"] and "nps_score = -1" in row["reason"]
    assert row["original"]["nps_score"] == -1 and row["original"]["event_id"] == records[survey]["event_id"]
    table = _validate(data_dir, "--quarantined")
    assert f"#1 quarantined touchpoint {records[survey]['event_id']}" in table.stdout
    assert '"nps_score": -1' in table.stdout

    release = _validate(data_dir, "--release", "1", "--reason", "checked the suite")
    assert release.returncode == 1 and "#1 still quarantined: NPS is 0-10" in release.stdout, release.stdout

    old_form = _validate(data_dir, "--accept", "national holiday, switchboard closed")
    assert old_form.returncode == 2 and "--accept-files" in old_form.stderr
    assert _validate(data_dir, "--accept", "1").returncode == 2  # no reason given
    accepted = _validate(data_dir, "--accept", "1", "--reason", "-1 is the survey tool's 'no answer'",
                         "--by", "anna")
    assert accepted.returncode == 0 and "accepted as they are: 1" in accepted.stdout, accepted.stdout
    assert "no quarantined rows" in _validate(data_dir, "--quarantined").stdout
    (row,) = json.loads(_validate(data_dir, "--quarantined", "--status", "accepted", "--format", "json").stdout)["quarantined"]
    assert row["released_by"] == "anna" and row["release_reason"] == "-1 is the survey tool's 'no answer'"
