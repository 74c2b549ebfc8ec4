"""``loyalty validate`` as a data engineer runs it: a real subprocess on real landed files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from loyalty_monitor.settings import load_settings
from quality_builders import customer_ids, customer_record, day_of_touchpoints, land_customers, land_touchpoints

CUSTOMERS = customer_ids(30)
DAY = datetime.now(timezone.utc).date() - timedelta(days=1)


def _validate(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    env.update(LOYALTY_DATA_DIR=str(data_dir), LOYALTY_ALERT_CHANNELS="file")
    return subprocess.run([sys.executable, "-m", "loyalty_monitor.cli", "validate", *args],
                          cwd=data_dir, env=env, capture_output=True, text=True, timeout=180)


def test_validate_fails_with_exit_1_names_the_expectation_and_notifies(data_dir):
    settings = load_settings(data_dir=data_dir)
    land_customers(settings, [customer_record(c) for c in CUSTOMERS])
    records = day_of_touchpoints(DAY, 10, CUSTOMERS)
    survey = next(i for i, r in enumerate(records) if r["event_type"] == "survey_response")
    land_touchpoints(settings, records, rows_patch={survey: {"nps_score": -1}})

    run = _validate(data_dir, "--stage", "landing", "--format", "json")
    assert run.returncode == 1, run.stderr
    report = json.loads(run.stdout)
    assert report["passed"] is False
    (landing,) = report["results"]
    failed = [(f["suite"], f["expectation"], f["column"], f["severity"]) for f in landing["critical_failures"]]
    assert failed == [("landed_touchpoints", "expect_column_values_to_be_between", "nps_score", "critical")]
    assert Path(landing["docs_path"]).is_file()
    assert "Traceback" not in run.stderr

    outbox = data_dir / "alerts" / "outbox"
    notices = [json.loads(p.read_text()) for p in outbox.glob("*.json")]
    assert len(notices) == 1, run.stderr
    notice = json.dumps(notices[0])
    assert "quality gate landing FAILED" in notice and "nps_score" in notice


def test_validate_dates_table_output_exit_0_on_clean_data(data_dir):
    settings = load_settings(data_dir=data_dir)
    land_customers(settings, [customer_record(c) for c in CUSTOMERS])
    land_touchpoints(settings, day_of_touchpoints(DAY, 10, CUSTOMERS))

    run = _validate(data_dir, "--dates", str(DAY))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "landing gate: PASSED" in run.stdout
    assert f"Data Docs: file://{data_dir / 'quality' / 'data_docs' / 'index.html'}" in run.stdout
    assert "marts not checked: no warehouse" in run.stderr  # said, not silently skipped
    assert not (data_dir / "alerts" / "outbox").exists()


def test_validate_rejects_a_malformed_date_in_one_line(data_dir):
    run = _validate(data_dir, "--dates", "2026-13-01")
    assert run.returncode == 2 and "expected YYYY-MM-DD" in run.stderr
    assert "Traceback" not in run.stderr
