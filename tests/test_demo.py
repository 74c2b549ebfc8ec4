"""The main job, `loyalty demo`, at a reduced size, as a real subprocess; then its outputs on disk.

It starts its own embedded broker (not the session one) because that is what a newcomer's run does,
and runs a second time to prove leftovers from the first run (a warehouse, an outbox, a broker state
file) never make it fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from loyalty_monitor.settings import load_settings

CUSTOMERS, MONTHS = 40, 6


def run_demo(data_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOYALTY_")}
    env.update(LOYALTY_DATA_DIR=str(data_dir), COLUMNS="200")
    return subprocess.run([str(Path(sys.executable).parent / "loyalty"), "demo", "--customers", str(CUSTOMERS),
                           "--months", str(MONTHS), *extra],
                          capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
def test_demo_runs_end_to_end_and_leaves_its_outputs(data_dir: Path):
    done = run_demo(data_dir)
    out = done.stdout
    assert done.returncode == 0, f"{out[-4000:]}\n{done.stderr[-4000:]}"
    for step in ("start the embedded Kafka broker", "produce the history to Kafka",
                 "consume: land the events as Parquet", "run the pipeline DAG", "write the leadership report"):
        assert f"✓ {step}" in out, step
    assert "unavailable" not in out and "failed" not in out

    settings = load_settings(data_dir=data_dir)
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        customers = con.execute("select count(*) from published.dim_customers").fetchone()[0]
        health_days = con.execute("select count(distinct as_of_date) from published.fct_customer_health_daily"
                                  ).fetchone()[0]
        statuses = dict(con.execute(
            "select status, count(*) from published.fct_customer_health_daily "
            "where as_of_date = (select max(as_of_date) from published.fct_customer_health_daily) "
            "group by 1").fetchall())
        alerts = con.execute("select count(*) from published.fct_churn_alerts").fetchone()[0]
    finally:
        con.close()
    assert 0 < customers <= CUSTOMERS
    assert health_days > 150  # the daily series covers the whole history, not just the last day
    assert alerts > 0
    # The printed summary tells the same numbers the warehouse holds.
    assert (f"Red ▲ {statuses.get('red', 0)}, Yellow ◆ {statuses.get('yellow', 0)}, "
            f"Green ● {statuses.get('green', 0)}") in out
    assert f"Churn-risk alerts raised over the history: {alerts}" in out
    assert "Top value at risk:" in out

    report = data_dir / "reports" / "leadership-report.html"
    html = report.read_text()
    assert str(report) in out
    assert '<section id="portfolio"' in html and "No data." not in html.split('id="quality"')[0]
    assert "<script" not in html
    data_docs = list((data_dir / "quality").glob("**/index.html"))
    assert data_docs and any(str(p) in out for p in data_docs)
    outbox = data_dir / "alerts" / "outbox"
    assert any(p.is_file() for p in outbox.rglob("*")), "no alert notification in the file sink"
    assert not (data_dir / "run" / "broker.json").exists()  # the demo stopped its broker

    # Second run: reuses the generated history and cleans what the first run derived from the broker.
    again = run_demo(data_dir)
    assert again.returncode == 0, f"{again.stdout[-4000:]}\n{again.stderr[-4000:]}"
    assert "reused the history" in again.stdout
    assert "cleaned:" in again.stdout
