"""What the web app reads: the ``published`` marts, through the warehouse's reader
(``loyalty_core.marts.open_marts``: the DuckDB file read-only, PostgreSQL or Spark, whichever
``LOYALTY_DBT_TARGET`` names), one connection per request.

Every function takes the user and returns only what that user may see: an account manager the
customers whose ``account_manager_email`` is theirs, leadership and data engineers everyone. The
SQL is the readers' portable subset (``?`` placeholders, ANSI types), so the same pages come from
every engine.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any, Iterator

import duckdb

from loyalty_core.marts import MartsError, MartsReader, engine_of, never_built, open_marts
from loyalty_core.settings import Settings
from loyalty_monitor.access import User
from loyalty_monitor.alerting.messages import closed_dialogue_sql

P = "published"


class WarehouseUnavailable(RuntimeError):
    """No published warehouse yet, a writer (a dbt build, a publish) holds the DuckDB file right
    now, or the warehouse server cannot be reached."""


@contextlib.contextmanager
def reader(settings: Settings) -> Iterator[MartsReader]:
    try:
        engine = engine_of(settings)
    except MartsError as exc:
        raise WarehouseUnavailable(str(exc)) from exc
    if never_built(settings):
        raise WarehouseUnavailable("There is no warehouse yet: the pipeline has not run (`loyalty run`).")
    try:
        con = open_marts(settings, read_only=True)
    except (MartsError, duckdb.Error) as exc:
        if engine == "duckdb":
            raise WarehouseUnavailable("The warehouse is being updated right now; try again in a minute.") from exc
        raise WarehouseUnavailable(f"The warehouse cannot be reached right now ({exc}). Try again in a minute; "
                                   "if it stays, tell your data engineers.") from exc
    try:
        if not con.table_exists(P, "dim_customers"):
            raise WarehouseUnavailable("Nothing is published yet: the pipeline has not run (`loyalty run`).")
        yield con
    finally:
        con.close()


def _has(con: MartsReader, table: str) -> bool:
    return con.table_exists(P, table)


def _scope(user: User, alias: str = "c") -> tuple[str, list[Any]]:
    """SQL condition and parameters: the customers ``user`` may see."""
    if user.sees_everyone:
        return "true", []
    return f"lower({alias}.account_manager_email) = ?", [user.email]


def _lifecycle(con: MartsReader) -> str:
    """The case table: fct_case_lifecycle, or the bare cases of a warehouse published before it."""
    if _has(con, "fct_case_lifecycle"):
        return f"{P}.fct_case_lifecycle"
    return (f"(select *, 'new' as lifecycle_state, cast(null as date) as snoozed_until, null as snooze_reason, "
            f"null as close_outcome, null as close_note, cast(null as timestamp) as state_changed_at, "
            f"null as state_changed_by, cast(null as timestamp) as last_event_at, null as feedback_verdict, "
            f"case_status = 'open' as needs_action, cast(null as double precision) as probability_now, "
            f"cast(null as date) as probability_now_on "
            f"from {P}.fct_churn_risk_cases)")


def latest_day(con: MartsReader) -> dt.date | None:
    return con.execute(f"select max(as_of_date) from {P}.fct_customer_health_daily").fetchone()[0]


def customers(con: MartsReader, user: User, days: int = 90) -> list[dict[str, Any]]:
    """The user's customers with status, health and its trend, open case, value at stake and last dialogue."""
    where, params = _scope(user)
    rows = con.query(f"""
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
               open_case.expected_value_at_risk, open_case.reporting_currency,
               -- today's probability: the one the page shows beside it (expected_value_at_risk is
               -- the opening day's, by which dispatch ranked the alerts)
               coalesce(open_case.probability_now, open_case.probability_at_open) * open_case.value_at_stake_reporting as value_at_risk_now,
               open_case.severity as case_severity,
               open_case.snoozed_until, open_case.close_outcome, open_case.last_event_at,
               open_case.state_changed_at, open_case.opened_on, open_case.case_kind,
               open_case.probability_at_open, open_case.probability_now, open_case.probability_now_on
        from {P}.dim_customers as c
        left join health on health.customer_id = c.customer_id
        left join dialogue on dialogue.customer_id = c.customer_id
        left join open_case on open_case.customer_id = c.customer_id
        where {where}
        order by c.customer_name, c.customer_id""", params)
    trend = health_trends(con, user, days)
    for row in rows:
        row["trend"] = trend.get(row["customer_id"], [])
    return rows


def _since(con: MartsReader, days: int) -> dt.date:
    """The first day of the last ``days`` days of the marts (a parameter: date arithmetic is spelled
    differently on every engine)."""
    latest = latest_day(con) or dt.date.today()
    return latest - dt.timedelta(days=int(days) - 1)


def health_trends(con: MartsReader, user: User, days: int) -> dict[str, list[float]]:
    """The health score of the last ``days`` days of every customer ``user`` may see."""
    where, params = _scope(user)
    out: dict[str, list[float]] = {}
    for row in con.query(f"""
            select h.customer_id, h.health_score
            from {P}.fct_customer_health_daily as h
            inner join {P}.dim_customers as c on c.customer_id = h.customer_id
            where h.as_of_date >= ? and {where}
            order by h.customer_id, h.as_of_date""", [_since(con, days), *params]):
        score = row["health_score"]
        out.setdefault(row["customer_id"], []).append(float(score) if score is not None else 0.0)
    return out


def customer(con: MartsReader, customer_id: str) -> dict[str, Any] | None:
    rows = con.query(f"select * from {P}.dim_customers where customer_id = ?", [customer_id])
    return rows[0] if rows else None


def may_see(user: User, customer_row: dict[str, Any]) -> bool:
    return user.sees_everyone or (customer_row.get("account_manager_email") or "").strip().lower() == user.email


AREAS = ("dialogue_score", "stakeholder_score", "service_score", "financial_score", "commercial_score")


def customer_detail(con: MartsReader, customer_id: str, days: int = 180, touches: int = 200) -> dict[str, Any]:
    """Everything the customer page shows (the caller checked may_see)."""
    health = con.query(f"""
        select as_of_date, health_score, {', '.join(AREAS)}, status, drivers, days_since_dialogue, value_at_stake,
               currency
        from {P}.fct_customer_health_daily
        where customer_id = ? and as_of_date >= ?
        order by as_of_date""", [customer_id, _since(con, days)])
    touchpoints = con.query(f"""
        select occurred_at, event_type, department, direction, contact_role, contact_kind, kind_rule,
               is_two_way_dialogue, note, comment, severity, dunning_stage, amount, currency, nps_score, answered
        from {P}.fct_touchpoints where customer_id = ?
        order by occurred_at desc, event_id limit {int(touches)}""", [customer_id])
    # the dialogue on the day the model closed a case (messages.model_closed_words): a customer far
    # quieter than usual then had not recovered, whatever the probability did
    quiet = closed_dialogue_sql("c", P) if _has(con, "fct_dialogue_daily") else ("", "")
    cases = con.query(f"select c.*{quiet[0]} from {_lifecycle(con)} as c {quiet[1]} "
                      "where c.customer_id = ? order by c.opened_on desc, c.case_id", [customer_id])
    matrix = con.query(f"""
        select period_end_date, rational_loyalty, emotional_loyalty, quadrant
        from {P}.fct_loyalty_matrix where customer_id = ? order by period_end_date desc limit 1""",
                       [customer_id]) if _has(con, "fct_loyalty_matrix") else []
    return {"health": health, "latest": health[-1] if health else None, "touchpoints": touchpoints,
            "cases": cases, "matrix": matrix[0] if matrix else None}


def queue(con: MartsReader, user: User) -> list[dict[str, Any]]:
    """Open cases the user may see, highest expected value at risk today first (today's probability x
    the value at stake in the reporting currency)."""
    where, params = _scope(user)
    return con.query(f"""
        select c.*, coalesce(c.probability_now, c.probability_at_open) * c.value_at_stake_reporting as value_at_risk_now from {_lifecycle(con)} as c
        where c.case_status = 'open' and c.lifecycle_state <> 'closed' and {where}
        order by value_at_risk_now desc nulls last, c.opened_on, c.case_id""", params)


def action_needed(con: MartsReader, user: User, customer_id: str | None = None) -> list[dict[str, Any]]:
    """The action-needed alerts (facts, not predictions: an unresolved high-severity complaint,
    dunning escalation without caring contact; fct_churn_alerts, alert_kind 'action_needed') whose
    fact still holds on the latest day, of the customers ``user`` may see, or of one customer;
    newest first. They are sent apart from the churn-risk cases and have no case to act on: the
    page lists them so that the alert's link does not lead to "no case". An episode stays open in
    the mart for alerts.episode_cooldown_days after its rule last held (so that a flicker does not
    alert twice): one whose last day (alert_date + episode_days - 1) is before the latest is over."""
    if not _has(con, "fct_churn_alerts"):
        return []
    where, params = _scope(user, "a")
    if customer_id is not None:
        where, params = f"{where} and a.customer_id = ?", [*params, customer_id]
    rows = con.query(f"""
        select a.alert_id, a.customer_id, a.customer_name, a.account_manager_name, a.rule, a.severity,
               a.alert_date, a.episode_days, a.drivers, a.suggested_action, a.value_at_stake, a.currency
        from {P}.fct_churn_alerts as a
        where a.alert_kind = 'action_needed' and a.episode_end_date is null and {where}
        order by a.alert_date desc, a.customer_name, a.alert_id""", params)
    latest = latest_day(con)
    return [r for r in rows if latest is None or r["episode_days"] is None
            or r["alert_date"] + dt.timedelta(days=int(r["episode_days"]) - 1) >= latest]


def case(con: MartsReader, case_id: str) -> dict[str, Any] | None:
    rows = con.query(f"select * from {_lifecycle(con)} where case_id = ?", [case_id])
    return rows[0] if rows else None


def known_person(con: MartsReader, email: str) -> bool:
    """Whether ``email`` manages a customer (for issuing sign-in links)."""
    return bool(con.execute(f"select count(*) from {P}.dim_customers where lower(account_manager_email) = ?",
                            [email.strip().lower()]).fetchone()[0])
