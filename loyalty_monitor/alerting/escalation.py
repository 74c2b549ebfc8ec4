"""A case whose severity rises after its alert was sent gets a short update, not a silent change.

An alert shows the severity it has when it is sent. ``ops.alert_severity`` remembers, per alert,
the severity its account manager was last told (written once a message about it was sent on any
channel). When the alert is still open and its severity has risen since (a fact episode's
severity is the worst so far; a churn-risk case is high once its probability reached
``risk_cases.high_probability`` at any day of the case, medium before), dispatch adds an **update**:
its own alert ``<alert_id>-escalated-<severity>``, dated the as-of day, so that ``ops.alert_state``
makes it idempotent like every alert. It is not held by the weekly cap (it is about a customer the
manager already has), but it is held like the alert itself while the case is snoozed or closed
(``lifecycle.apply`` runs first). Alerts sent before this table existed count as told at their
severity of the first run after the upgrade.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from loyalty_monitor.alerting.messages import case_opened_on
from loyalty_monitor.scoring import ScoringError, load_scoring

SEVERITY_TABLE = "ops.alert_severity"
RANK = {"low": 1, "medium": 2, "high": 3}

DDL = f"""
create schema if not exists ops;
create table if not exists {SEVERITY_TABLE} (
    alert_id varchar not null primary key,  -- the alert (for an update: the alert it updates)
    severity varchar not null,              -- the severity its account manager was last told
    told_on date,                           -- the as-of day of the dispatch that told it
    updated_at timestamp not null           -- UTC
);
"""


def _ensure(con: Any) -> None:
    for statement in DDL.split(";"):
        if statement.strip():
            con.execute(statement)


def _told(con: Any) -> dict[str, tuple[str, dt.date | None]]:
    _ensure(con)
    return {r[0]: (r[1], r[2]) for r in con.execute(f"select alert_id, severity, told_on from {SEVERITY_TABLE}").fetchall()}


def high_probability(settings: Any) -> float | None:

    try:
        return float(load_scoring(settings.scoring_file)["risk_cases"]["high_probability"])
    except (ScoringError, KeyError, TypeError, ValueError, OSError):
        return None


def _peaks(con: Any) -> dict[str, float]:
    exists = con.execute("select count(*) from information_schema.columns where table_schema = 'published' "
                         "and table_name = 'fct_case_lifecycle' and column_name = 'peak_probability'").fetchone()[0]
    if not exists:
        return {}
    return {r[0]: float(r[1]) for r in con.execute(
        "select case_id, peak_probability from published.fct_case_lifecycle "
        "where case_status = 'open' and peak_probability is not null").fetchall()}


def current_severity(alert: dict[str, Any], peaks: dict[str, float], high: float | None) -> str | None:
    """The alert's severity today: a fact's is the mart's (the worst so far); an open case is high
    once its peak probability reached ``high``."""
    severity = alert.get("severity")
    if alert.get("alert_kind") == "risk_case" and high is not None:
        peak = peaks.get(str(alert["alert_id"]).split("-snoozed-")[0])
        if peak is not None and peak >= high and RANK.get(str(severity), 0) < RANK["high"]:
            return "high"
    return severity


def apply(con: Any, alerts: list[dict[str, Any]], as_of: dt.date, settings: Any) -> list[dict[str, Any]]:
    """The alerts with their severity of today, plus one update per sent alert whose severity rose."""
    peaks, high = _peaks(con), high_probability(settings)
    told = _told(con)
    out: list[dict[str, Any]] = []
    for alert in alerts:
        now = current_severity(alert, peaks, high)
        alert = {**alert, "severity": now}
        out.append(alert)
        base = str(alert["alert_id"])
        if alert.get("reminder") or base not in told or alert.get("episode_end_date") is not None:
            continue
        before, told_on = told[base]
        if RANK.get(str(now), 0) > RANK.get(before, 0):
            since = f" on {told_on.isoformat()}" if told_on else ""
            out.append({**alert, "alert_id": f"{base}-escalated-{now}", "alert_date": as_of,
                        "opened_on": case_opened_on(alert),
                        "updates": base, "previous_severity": before,
                        "update": f"Severity rose from {before} to {now} since we told you{since}."})
    return out


def record_sent(con: Any, alerts: list[dict[str, Any]], as_of: dt.date) -> None:
    """Remember the severity told for every alert (or update) sent so far on any channel."""
    if not alerts:
        return
    _ensure(con)
    sent = {r[0] for r in con.execute("select distinct alert_id from ops.alert_state where status = 'sent'").fetchall()}
    told = _told(con)
    for alert in alerts:
        if alert["alert_id"] not in sent or not alert.get("severity"):
            continue
        base = str(alert.get("updates") or alert["alert_id"])
        before = told.get(base)
        if before is not None and (not alert.get("updates")  # the alert itself: told once, when first sent
                                   or RANK.get(before[0], 0) >= RANK.get(str(alert["severity"]), 0)):
            continue
        told_on = as_of
        con.execute(f"insert into {SEVERITY_TABLE} (alert_id, severity, told_on, updated_at) values (?, ?, ?, ?) "
                    f"on conflict (alert_id) do update set severity = excluded.severity, told_on = excluded.told_on, "
                    f"updated_at = excluded.updated_at",
                    [base, str(alert["severity"]), told_on, dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)])
        told[base] = (str(alert["severity"]), told_on)
