"""What the web app reads: the ``published`` marts, through a read-only DuckDB connection per request.

Every function takes the user and returns only what that user may see: an account manager the
customers whose ``account_manager_email`` is theirs, leadership and data engineers everyone.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any, Iterator

import duckdb
import pyarrow as pa

from loyalty_core.marts import MartsError, connect_duckdb
from loyalty_core.settings import Settings
from loyalty_monitor.access import User

P = "published"


class WarehouseUnavailable(RuntimeError):
    """No published warehouse yet, or a writer (a dbt build, a publish) holds the file right now."""


@contextlib.contextmanager
def reader(settings: Settings) -> Iterator[Any]:

    if settings.dbt_target != "duckdb":
        # the marts are elsewhere: a DuckDB file left from before the switch would show old data
        raise WarehouseUnavailable(
            f"The web app reads the DuckDB warehouse only, and the pipeline publishes to {settings.dbt_target} "
            f"(LOYALTY_DBT_TARGET={settings.dbt_target}): run the web app against a pipeline on DuckDB "
            "(docs/deployment.md, \"The warehouse engine\").")
    path = settings.warehouse
    if not path.exists():
        raise WarehouseUnavailable("There is no warehouse yet: the pipeline has not run (`loyalty run`).")
    try:
        con = connect_duckdb(settings, read_only=True)
    except (MartsError, duckdb.Error) as exc:
        raise WarehouseUnavailable("The warehouse is being updated right now; try again in a minute.") from exc
    try:
        yield con
    finally:
        con.close()


def _rows(cursor: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _has(con: Any, table: str) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables where table_schema = ? and "
                            "table_name = ?", [P, table]).fetchone()[0])


def _scope(user: User, alias: str = "c") -> tuple[str, list[Any]]:
    """SQL condition and parameters: the customers ``user`` may see."""
    if user.sees_everyone:
        return "true", []
    return f"lower({alias}.account_manager_email) = ?", [user.email]


def _lifecycle(con: Any) -> str:
    """The case table: fct_case_lifecycle, or the bare cases of a warehouse published before it."""
    if _has(con, "fct_case_lifecycle"):
        return f"{P}.fct_case_lifecycle"
    return (f"(select *, 'new' as lifecycle_state, cast(null as date) as snoozed_until, null as snooze_reason, "
            f"null as close_outcome, null as close_note, cast(null as timestamp) as state_changed_at, "
            f"null as state_changed_by, cast(null as timestamp) as last_event_at, null as feedback_verdict, "
            f"case_status = 'open' as needs_action, cast(null as double) as probability_now, "
            f"cast(null as date) as probability_now_on "
            f"from {P}.fct_churn_risk_cases)")


def latest_day(con: Any) -> dt.date | None:
    return con.execute(f"select max(as_of_date) from {P}.fct_customer_health_daily").fetchone()[0]


def customers(con: Any, user: User, days: int = 90) -> list[dict[str, Any]]:
    """The user's customers with status, health and its trend, open case, value at stake and last dialogue."""
    where, params = _scope(user)
    rows = _rows(con.execute(f"""
        with latest as (select max(as_of_date) as day from {P}.fct_customer_health_daily),
        health as (
            select h.* from {P}.fct_customer_health_daily as h inner join latest on h.as_of_date = latest.day
        ),
        dialogue as (
            select customer_id, max(occurred_at) as last_dialogue_at
            from {P}.fct_touchpoints where is_two_way_dialogue group by customer_id
        ),
        open_case as (select * from {_lifecycle(con)} where case_status = 'open')
        select c.customer_id, c.customer_name, c.segment, c.account_manager_name, c.account_manager_email,
               health.status, health.health_score, health.drivers as health_drivers,
               health.value_at_stake, coalesce(health.currency, c.currency) as currency,
               health.days_since_dialogue, dialogue.last_dialogue_at,
               open_case.case_id, open_case.lifecycle_state, open_case.drivers as case_drivers,
               open_case.expected_value_at_risk, open_case.severity as case_severity,
               open_case.snoozed_until, open_case.close_outcome, open_case.last_event_at,
               open_case.state_changed_at, open_case.opened_on, open_case.case_kind,
               open_case.probability_at_open, open_case.probability_now, open_case.probability_now_on
        from {P}.dim_customers as c
        left join health on health.customer_id = c.customer_id
        left join dialogue on dialogue.customer_id = c.customer_id
        left join open_case on open_case.customer_id = c.customer_id
        where {where}
        order by c.customer_name""", params))
    trend = health_trends(con, [r["customer_id"] for r in rows], days)
    for row in rows:
        row["trend"] = trend.get(row["customer_id"], [])
    return rows


def health_trends(con: Any, customer_ids: list[str], days: int) -> dict[str, list[float]]:
    if not customer_ids:
        return {}

    wanted = pa.table({"customer_id": customer_ids})  # noqa: F841 - read by DuckDB's replacement scan
    out: dict[str, list[float]] = {}
    for customer_id, score in con.execute(f"""
            select h.customer_id, h.health_score
            from {P}.fct_customer_health_daily as h
            inner join wanted on wanted.customer_id = h.customer_id
            where h.as_of_date > (select max(as_of_date) from {P}.fct_customer_health_daily) - {int(days)}
            order by h.customer_id, h.as_of_date""").fetchall():
        out.setdefault(customer_id, []).append(float(score) if score is not None else 0.0)
    return out


def customer(con: Any, customer_id: str) -> dict[str, Any] | None:
    rows = _rows(con.execute(f"select * from {P}.dim_customers where customer_id = ?", [customer_id]))
    return rows[0] if rows else None


def may_see(user: User, customer_row: dict[str, Any]) -> bool:
    return user.sees_everyone or (customer_row.get("account_manager_email") or "").strip().lower() == user.email


AREAS = ("dialogue_score", "stakeholder_score", "service_score", "financial_score", "commercial_score")


def customer_detail(con: Any, customer_id: str, days: int = 180, touches: int = 200) -> dict[str, Any]:
    """Everything the customer page shows (the caller checked may_see)."""
    health = _rows(con.execute(f"""
        select as_of_date, health_score, {', '.join(AREAS)}, status, drivers, days_since_dialogue, value_at_stake,
               currency
        from {P}.fct_customer_health_daily
        where customer_id = ? and as_of_date > (select max(as_of_date) from {P}.fct_customer_health_daily) - {int(days)}
        order by as_of_date""", [customer_id]))
    touchpoints = _rows(con.execute(f"""
        select occurred_at, event_type, department, direction, contact_role, contact_kind, kind_rule,
               is_two_way_dialogue, note, comment, severity, dunning_stage, amount, currency, nps_score, answered
        from {P}.fct_touchpoints where customer_id = ?
        order by occurred_at desc limit {int(touches)}""", [customer_id]))
    cases = _rows(con.execute(f"select * from {_lifecycle(con)} where customer_id = ? order by opened_on desc",
                              [customer_id]))
    matrix = _rows(con.execute(f"""
        select period_end_date, rational_loyalty, emotional_loyalty, quadrant
        from {P}.fct_loyalty_matrix where customer_id = ? order by period_end_date desc limit 1""",
                               [customer_id])) if _has(con, "fct_loyalty_matrix") else []
    return {"health": health, "latest": health[-1] if health else None, "touchpoints": touchpoints,
            "cases": cases, "matrix": matrix[0] if matrix else None}


def queue(con: Any, user: User) -> list[dict[str, Any]]:
    """Open cases the user may see, highest expected value at risk first."""
    where, params = _scope(user)
    return _rows(con.execute(f"""
        select c.* from {_lifecycle(con)} as c
        where c.case_status = 'open' and c.lifecycle_state <> 'closed' and {where}
        order by c.expected_value_at_risk desc nulls last, c.opened_on""", params))


def case(con: Any, case_id: str) -> dict[str, Any] | None:
    rows = _rows(con.execute(f"select * from {_lifecycle(con)} where case_id = ?", [case_id]))
    return rows[0] if rows else None


def known_person(con: Any, email: str) -> bool:
    """Whether ``email`` manages a customer (for issuing sign-in links)."""
    return bool(con.execute(f"select count(*) from {P}.dim_customers where lower(account_manager_email) = ?",
                            [email.strip().lower()]).fetchone()[0])
