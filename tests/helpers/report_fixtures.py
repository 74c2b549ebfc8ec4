"""A small handmade warehouse with the mart columns of docs/design.md, for the report tests.

It lets the report be tested section by section (including empty and missing marts) without
running the whole pipeline; test_report.py also renders from a warehouse the pipeline built.
"""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import duckdb
import pyarrow as pa

from loyalty_monitor import gate_runs

EVIL_NAME = '<script>window.__pwned = 1</script>Evil & Sons <b>bold</b>'
EVIL_NOTE = 'Call me <img src=x onerror="window.__pwned = 2"> about <a href="http://evil.example/">this</a>'
END = dt.date(2026, 6, 30)
#: Units of the reporting currency (EUR) per unit of each customer currency, as scoring.yml has them.
RATES = {"EUR": 1.0, "DKK": 0.134, "PLN": 0.2326}
#: A currency without a rate: its alerts have no value in the reporting currency.
NO_RATE_CURRENCY = "XTS"
SEGMENTS = ("key", "growth", "standard")
MANAGERS = [("AM1", "Anna Møller", "anna@example.com"), ("AM2", "Bo Jensen", "bo@example.com"),
            ("AM3", "Ewa Nowak", "ewa@example.com")]
DEPARTMENTS = ("sales", "service", "support", "finance", "reception")


def build_fixture_warehouse(path: Path, customers: int = 60, days: int = 120, seed: int = 7,
                            with_quality_runs: bool = True, with_forecast_audit: bool = False,
                            with_forecast_section: bool = False) -> Path:
    """Churners (a fifth, and customer 0) fall from green to red in the second half; their alerts
    are in EUR, DKK or PLN (value_at_stake_reporting in EUR), some raised while still yellow, one a
    went-silent case. Three
    customers who recovered keep an old open alert (stale, green today), one in a currency without a
    rate. ``with_forecast_audit`` adds a published fct_forecast_audit (company figures);
    ``with_forecast_section`` adds it with fct_forecast_calibration and fct_open_pipeline too (the
    report's forecast section): what is still open on END differs from the quarter's opening
    pipeline, and one silent opportunity belongs to a manager master data does not name (AM77)."""
    with_forecast_audit = with_forecast_audit or with_forecast_section
    rng = random.Random(seed)
    con = duckdb.connect(str(path))
    con.execute("create schema published; create schema ops")
    con.execute("""create table published.dim_customers (customer_id varchar, customer_name varchar,
        segment varchar, country varchar, account_manager_id varchar, account_manager_name varchar,
        account_manager_email varchar, annual_potential double, currency varchar, updated_at timestamp)""")
    con.execute("""create table published.fct_customer_health_daily (customer_id varchar, as_of_date date,
        health_score double, dialogue_score double, stakeholder_score double, service_score double,
        financial_score double, commercial_score double, status varchar, drivers varchar,
        days_since_dialogue integer, usual_gap_days double, gap_ratio double, segment varchar,
        account_manager_id varchar)""")
    con.execute("""create table published.fct_churn_alerts (alert_id varchar, customer_id varchar,
        customer_name varchar, account_manager_id varchar, account_manager_name varchar,
        account_manager_email varchar, rule varchar, severity varchar, alert_date date,
        episode_end_date date, health_score double, status varchar, drivers varchar,
        suggested_action varchar, value_at_stake double, currency varchar, segment varchar,
        alert_kind varchar, probability double, value_at_stake_reporting double, reporting_currency varchar,
        expected_value_at_risk double, reasons varchar)""")
    con.execute("""create table published.fct_touchpoints (event_id varchar, customer_id varchar,
        occurred_at timestamptz, event_date date, event_type varchar, department varchar, direction varchar,
        note varchar, is_two_way_dialogue boolean, contact_kind varchar)""")
    con.execute("""create table published.fct_loyalty_matrix (customer_id varchar, period_month date,
        period_end_date date, rational_loyalty double, emotional_loyalty double, quadrant varchar)""")
    con.execute("""create table published.fct_sales_platform (period_month date, period_end_date date,
        segment varchar, country varchar, customers integer, breadth_share double,
        height_potential_share double, depth_loyalty double, ambassador_share double,
        customers_red integer, customers_yellow integer, customers_green integer)""")
    con.execute("""create table published.fct_account_manager_activity (account_manager_id varchar,
        account_manager_name varchar, week_start date, calls integer, meetings integer,
        calls_planned integer, meetings_planned integer, customers_no_dialogue_30d integer,
        customers_no_dialogue_60d integer, customers_no_dialogue_90d integer)""")

    rows: dict[str, list[list]] = {}

    def add(table: str, *values) -> None:
        rows.setdefault(table, []).append(list(values))

    start = END - dt.timedelta(days=days - 1)
    churners = set(rng.sample(range(4, customers), customers // 5))
    event_no = 0
    for i in range(customers):
        cid = f"C{i:04d}"
        name = EVIL_NAME if i == 0 else f"Customer {i} A/S"
        segment = SEGMENTS[i % 3]
        am = MANAGERS[i % len(MANAGERS)]
        potential = float(rng.randint(20, 900) * 1000)
        if i in (1, 2, 3):
            potential = 4_000_000.0  # the recovered customers' stale alerts rank among the largest
        currency = ("EUR", "DKK", "PLN")[i % 3] if i else "EUR"
        add("published.dim_customers", cid, name, segment, "DK", *am, potential, currency, dt.datetime(2026, 1, 1))
        churns = i in churners or i == 0
        health_rows = []
        for d in range(days):
            day = start + dt.timedelta(days=d)
            decline = max(0, d - days // 2) * (1.2 if churns else 0.0)
            score = max(0.0, min(100.0, 82 - decline + rng.uniform(-6, 6)))
            status = "green" if score >= 65 else ("yellow" if score >= 40 else "red")
            drivers = ("no two-way dialogue for 74 days, usually every 21; unpaid invoice at collection call"
                       if status != "green" else "")
            health_rows.append([cid, day, score, score, score, score, score, score, status, drivers,
                                int(decline), 21.0, 1 + decline / 20, segment, am[0]])
        rows.setdefault("published.fct_customer_health_daily", []).extend(health_rows)
        tps = []
        for d in range(0, days, 9 if not churns else 23):
            event_no += 1
            day = start + dt.timedelta(days=d + rng.randint(0, 3))
            note = EVIL_NOTE if i == 0 else f"talked about order {event_no}"
            tps.append([f"E{event_no}", cid, dt.datetime.combine(day, dt.time(10), dt.timezone.utc), day,
                        "call", DEPARTMENTS[event_no % len(DEPARTMENTS)], "outbound", note,
                        event_no % 4 != 0, "caring"])
        rows.setdefault("published.fct_touchpoints", []).extend(tps)
        for month_end in (END - dt.timedelta(days=30), END):
            rational, emotional = rng.uniform(0, 100), rng.uniform(0, 100)
            quadrant = ("ambassador" if rational >= 65 and emotional >= 65 else "rationally_loyal"
                        if rational >= 65 else "emotionally_loyal" if emotional >= 65 else "at_risk")
            add("published.fct_loyalty_matrix", cid, month_end.replace(day=1), month_end, rational, emotional,
                quadrant)
        if churns:
            alert_day = start + dt.timedelta(days=days // 2 + rng.randint(5, 50))
            # The alert tells the status on its day: early alerts caught customers still yellow.
            then = next(h for h in health_rows if h[1] == alert_day)
            reporting = potential * RATES[currency]
            # the first churner's case opened after it went silent: it may already have left
            add("published.fct_churn_alerts", f"A-{cid}", cid, name, *am,
                "went_silent" if i == min(churners) else "churn_risk",
                rng.choice(["high", "medium"]), alert_day, None, then[2], "yellow" if i % 2 else "red",
                "two-way dialogue: 1 in the last 90 days, usually 9.4, the last one 74 days ago",
                "call the decision maker this week", potential, currency, segment, "risk_case", 0.8, reporting,
                "EUR", 0.8 * reporting, "health fell below its own norm")
        elif i in (1, 2, 3):
            # Recovered long ago, alert never closed: stale, and green today; one has no rate.
            alert_day = start + dt.timedelta(days=3 * i)
            cur = NO_RATE_CURRENCY if i == 3 else currency
            reporting = None if i == 3 else potential * RATES[currency]
            add("published.fct_churn_alerts", f"A-{cid}", cid, name, *am, "dunning_escalation", "medium",
                alert_day, None, 55.0, "yellow", "unpaid invoice at collection call", "call about the invoice",
                potential, cur, segment, "action_needed", 1.0, reporting, "EUR", reporting, None)
    for seg in SEGMENTS:
        for country, share in (("DK", 0.6), ("PL", 0.4)):
            n = round(customers / 3 * share)
            add("published.fct_sales_platform", END.replace(day=1), END, seg, country, n, n / customers,
                rng.uniform(0.2, 0.9), rng.uniform(40, 80), rng.uniform(0.1, 0.4), n // 4, n // 4,
                n - 2 * (n // 4))
    for am_id, am_name, _ in MANAGERS:
        for w in range(days // 7):
            week = start + dt.timedelta(days=7 * w)
            add("published.fct_account_manager_activity", am_id, am_name, week, rng.randint(4, 14),
                rng.randint(1, 5), 10, 3, rng.randint(0, 5), rng.randint(0, 3), rng.randint(0, 2))
    if with_quality_runs:  # as the pipeline records them (loyalty_monitor.gate_runs)
        con.execute(f"create table {gate_runs.TABLE} ("
                    + ", ".join(f"{name} {kind}" for name, kind in gate_runs.COLUMNS.items()) + ")")
        for d in range(0, days, 3):
            day = start + dt.timedelta(days=d)
            failed = d % 30 == 0
            add(gate_runs.TABLE, f"R{d}", "landing" if d % 2 else "marts", dt.datetime.combine(day, dt.time(6)),
                not failed, int(failed), d % 2, 0, "touchpoints: expect_column_values_to_not_be_null on "
                "customer_id: 12 unexpected" if failed else None, day - dt.timedelta(days=1), day, 3.5)
    if with_forecast_audit:
        con.execute("""create table published.fct_forecast_audit (scope varchar, account_manager_id varchar,
            period_type varchar, period_start date, period_end date, closed_deals integer, won_deals integer,
            forecasts integer, stated_mean double, realised_rate double, pipeline_deals integer,
            pipeline_value_reporting double, pipeline_stated_value double, pipeline_track_record_value double,
            reporting_currency varchar, judgement varchar, optimism_bias double, bias_standard_error double,
            brier_score double, reliability double, slipped_share double)""")
        quality = [0.21, 0.03, 0.24, 0.04, 0.2]  # optimism, its standard error, Brier, reliability, slipped
        for scope, am_id in (("company", None), ("manager", "AM1")):
            add("published.fct_forecast_audit", scope, am_id, "quarter", dt.date(2026, 4, 1), dt.date(2026, 6, 30),
                30, 12, 90, 0.61, 0.40, 25, 2_000_000.0, 1_240_000.0, 810_000.0, "EUR", "optimistic", *quality)
            add("published.fct_forecast_audit", scope, am_id, "quarter", dt.date(2026, 1, 1), dt.date(2026, 3, 31),
                20, 9, 60, 0.58, 0.45, 20, 1_500_000.0, 900_000.0, 700_000.0, "EUR", "unclear", *quality)
            add("published.fct_forecast_audit", scope, am_id, "track_record", dt.date(2024, 7, 1), END,
                160, 66, 480, 0.62, 0.41, None, None, None, None, "EUR", "optimistic", *quality)
    if with_forecast_section:
        con.execute("""create table published.fct_forecast_calibration (scope varchar, account_manager_id varchar,
            period_type varchar, band_number integer, band_low double, band_high double, forecasts integer,
            stated_mean double, realised_rate double, enough_forecasts boolean)""")
        for scope, am_id in (("company", None), ("manager", "AM1")):
            for band, (low, stated, won) in enumerate(((0.2, 0.3, 0.2), (0.5, 0.6, 0.4), (0.8, 0.85, 0.6))):
                add("published.fct_forecast_calibration", scope, am_id, "track_record", band, low, low + 0.2,
                    160, stated, won, True)
        con.execute("""create table published.fct_open_pipeline (opportunity_id varchar, customer_id varchar,
            customer_name varchar, account_manager_id varchar, as_of_date date, pipeline_stage varchar,
            stated_probability double, amount double, currency varchar, amount_reporting double,
            stated_value_reporting double, track_record_value_reporting double, reporting_currency varchar,
            expected_close_date date, in_current_quarter boolean, is_overdue boolean,
            days_since_dialogue integer, without_dialogue boolean, silence_words varchar)""")
        # Still open on END: 300,000 + 200,000 stated, 220,000 + 110,000 by track record.
        for opp, cid, am_id, amount, stated, track, silent in (
                ("OPP-1", "C0004", "AM1", 500_000.0, 300_000.0, 220_000.0, True),
                ("OPP-2", "C0005", "AM77", 400_000.0, 200_000.0, 110_000.0, True),
                ("OPP-3", "C0006", "AM2", 100_000.0, 50_000.0, 40_000.0, False)):
            add("published.fct_open_pipeline", opp, cid, f"Customer {cid[1:].lstrip('0')} A/S", am_id, END,
                "proposal", stated / amount, amount, "EUR", amount, stated, track, "EUR",
                END if opp != "OPP-3" else END + dt.timedelta(days=60), opp != "OPP-3", False,
                60 if silent else 3, silent, "no two-way dialogue for 60 days" if silent else None)
    for table, values in rows.items():
        _bulk_insert(con, table, values)
    con.close()
    return path


def _bulk_insert(con: duckdb.DuckDBPyConnection, table: str, values: list[list]) -> None:
    """Row-by-row inserts take a minute on a loaded machine; one Arrow batch takes milliseconds."""
    schema, name = table.split(".")
    columns = [r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
        "order by ordinal_position", [schema, name]).fetchall()]
    batch = pa.table({c: [row[i] for row in values] for i, c in enumerate(columns)})
    con.register("fixture_rows", batch)
    con.execute(f"insert into {table} select * from fixture_rows")
    con.unregister("fixture_rows")
