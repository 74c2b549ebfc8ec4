"""Alert dispatch cost: ``python -m bench.bench_alerting [--alerts N]``.

Prints, measured in the same run on the same machine:
- dispatch of N due alerts to the file sink (render + deliver + ``ops.alert_state`` bookkeeping, with
  the weekly cap off) against a baseline that only renders and delivers the same N messages: the
  price of idempotency (target: at most 3x the baseline);
- a rerun of the same dispatch (everything already handled: nothing is sent) against the first
  dispatch (target: under 0.25x, a rerun must be cheap because Airflow retries and backfills rerun).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from bench import positive_int, run_main

AS_OF = dt.date(2026, 3, 12)
TARGET_OVERHEAD = 3.0
TARGET_RERUN = 0.25


def make_alerts(n: int) -> list[dict]:
    """N due alerts with every column of ``published.fct_churn_alerts`` that dispatch reads
    (``messages.ALERT_COLUMNS``), of both kinds: even ones churn-risk cases, odd ones facts."""
    alerts = []
    for i in range(n):
        value = float(1000 + i)
        case = i % 2 == 0
        probability = 0.6 if case else 1.0
        alerts.append({
            "alert_id": f"bench-{i:07d}", "customer_id": f"C{i:06d}", "customer_name": f"Customer {i} A/S",
            "account_manager_id": f"AM{i % 25:02d}", "account_manager_name": f"Manager {i % 25}",
            "account_manager_email": f"am{i % 25}@example.com",
            "rule": "churn_risk" if case else "dunning_escalation", "severity": "high",
            "alert_date": AS_OF - dt.timedelta(days=i % 5), "episode_end_date": None, "health_score": 41.0,
            "status": "red", "drivers": "no dialogue for 64 days (usual 14); 2 unanswered calls; dunning call",
            "suggested_action": "Call the decision maker this week.", "value_at_stake": value,
            "currency": "EUR", "segment": "key", "alert_kind": "risk_case" if case else "action_needed",
            "probability": probability, "value_at_stake_reporting": value, "reporting_currency": "EUR",
            "expected_value_at_risk": probability * value,
            "reasons": "health fell below its own norm" if case else None,
        })
    return alerts


def write_mart(path: Path, alerts: list[dict]) -> None:
    import duckdb
    import pandas as pd

    con = duckdb.connect(str(path))
    con.execute("create schema if not exists published")
    frame = pd.DataFrame(alerts)  # noqa: F841 - read by DuckDB's replacement scan
    con.execute("create or replace table published.fct_churn_alerts as select * from frame")
    con.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=positive_int, default=2000)
    args = parser.parse_args()

    from loyalty_core.settings import load_settings
    from loyalty_monitor.alerting import AlertPolicy, dispatch_alerts
    from loyalty_monitor.alerting.channels import FileChannel
    from loyalty_monitor.alerting.messages import render_alerts

    alerts = make_alerts(args.alerts)
    policy = AlertPolicy(dispatch_window_days=7, max_per_manager_per_week=10**9)
    with tempfile.TemporaryDirectory(prefix="bench-alerting-") as tmp:
        root = Path(tmp)
        baseline_channel = FileChannel(root / "baseline-outbox", "bench@example.com")
        started = time.perf_counter()
        for alert in alerts:
            baseline_channel.send(render_alerts([alert], f"{alert['alert_id']}.file"))
        baseline = time.perf_counter() - started

        settings = load_settings(data_dir=root / "data")
        settings.data_dir.mkdir()
        write_mart(settings.warehouse, alerts)
        channel = FileChannel(settings.data_dir / "alerts" / "outbox", "bench@example.com")
        started = time.perf_counter()
        first = dispatch_alerts(settings, AS_OF, channels=[channel], policy=policy)
        dispatch = time.perf_counter() - started
        started = time.perf_counter()
        again = dispatch_alerts(settings, AS_OF, channels=[channel], policy=policy)
        rerun = time.perf_counter() - started

    assert first.sent == args.alerts and again.sent == 0, (first.summary(), again.summary())
    overhead, rerun_ratio = dispatch / baseline, rerun / dispatch
    print(f"alerts: {args.alerts:,}")
    print(f"baseline render+deliver: {baseline:.2f} s ({args.alerts / baseline:,.0f} alerts/s)")
    print(f"dispatch with alert state: {dispatch:.2f} s ({args.alerts / dispatch:,.0f} alerts/s): "
          f"{overhead:.2f}x baseline (target <= {TARGET_OVERHEAD}x) "
          f"{'OK' if overhead <= TARGET_OVERHEAD else 'MISSED'}")
    print(f"rerun (nothing to send): {rerun:.2f} s: {rerun_ratio:.2f}x the first dispatch "
          f"(target < {TARGET_RERUN}x) {'OK' if rerun_ratio < TARGET_RERUN else 'MISSED'}")
    return 0


if __name__ == "__main__":
    run_main(main)
