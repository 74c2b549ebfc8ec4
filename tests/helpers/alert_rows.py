"""Alert rows as ``published.fct_churn_alerts`` holds them (the design.md columns), written into a
small real DuckDB warehouse: what the alerting, case and CLI tests dispatch."""

from __future__ import annotations

import datetime as dt

import duckdb

from loyalty_core.settings import Settings

AS_OF = dt.date(2026, 3, 12)  # a Thursday; ISO week 11 runs 9-15 March


def alert(alert_id: str, manager: str, value: float, day: dt.date = AS_OF, **extra) -> dict:
    row = {
        "alert_id": alert_id, "customer_id": f"C-{alert_id}", "customer_name": f"Customer {alert_id}",
        "account_manager_id": manager, "account_manager_name": f"Manager {manager}",
        "account_manager_email": f"{manager.lower()}@example.com", "rule": "churn_risk",
        "severity": "high", "alert_date": day, "episode_end_date": None, "health_score": 38.5,
        "status": "red", "drivers": "no dialogue for 64 days (usual 14); 2 unanswered calls",
        "suggested_action": "call the decision maker this week", "value_at_stake": value,
        "currency": "EUR", "segment": "key account", "alert_kind": "risk_case", "probability": 0.8,
        "value_at_stake_reporting": value, "reporting_currency": "EUR",
        "expected_value_at_risk": None if value is None else 0.8 * value, "reasons": "health fell below its own norm",
    }
    row.update(extra)
    return row


def write_alerts(settings: Settings, rows: list[dict]) -> None:
    con = duckdb.connect(str(settings.warehouse))
    con.execute("create schema if not exists published")
    con.execute("""create or replace table published.fct_churn_alerts (
        alert_id varchar, customer_id varchar, customer_name varchar, account_manager_id varchar,
        account_manager_name varchar, account_manager_email varchar, rule varchar, severity varchar,
        alert_date date, episode_end_date date, health_score double, status varchar, drivers varchar,
        suggested_action varchar, value_at_stake double, currency varchar, segment varchar,
        alert_kind varchar, probability double, value_at_stake_reporting double, reporting_currency varchar,
        expected_value_at_risk double, reasons varchar)""")
    cols = list(rows[0]) if rows else []
    for row in rows:
        con.execute(f"insert into published.fct_churn_alerts ({', '.join(cols)}) values "
                    f"({', '.join('?' for _ in cols)})", [row[c] for c in cols])
    con.close()
