"""What the account managers did with their cases decides what dispatch still sends about them.

``published.fct_case_lifecycle`` (docs/warehouse.md, "Case lifecycle") holds each churn-risk
case's state. Before dispatch admits anything:

- the alert of a case that is **snoozed** (until a later day) or **closed** by its account manager
  is held: no message, no ``ops.alert_state`` row (``loyalty alerts list`` shows it ``held`` with
  why, e.g. "snoozed until 2026-12-10: on leave"), and it expires like any alert once it is older
  than the dispatch window;
- a case whose snooze has **ended** (its ``until`` day is on or before the as-of date) while the
  model still sees the customer drifting gets one **reminder** instead, as its own alert
  (``<case_id>-snoozed-<until>``, dated the ``until`` day), so that the weekly cap, the window and
  the idempotency of ``ops.alert_state`` apply to it as to every alert; the case's first alert is
  not sent as well;
- every alert carries a ``link`` to the web app: the case for a risk case, the customer otherwise,
  signed for its account manager (a sign-in link that expires, then opens the page).

A closed case never alerts again; the model opens a new case for the customer only once it has
recovered, so closing never silences the customer's next drift.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

from loyalty_core.settings import Settings
from loyalty_monitor.access import sign_in_link
from loyalty_monitor.alerting.messages import case_opened_on

LIFECYCLE_TABLE = "published.fct_case_lifecycle"


def _lifecycle_rows(con: Any) -> dict[str, dict[str, Any]]:
    exists = con.execute("select count(*) from information_schema.tables where table_schema = 'published' "
                         "and table_name = 'fct_case_lifecycle'").fetchone()[0]
    if not exists:  # a warehouse published before case events existed: nothing is held
        return {}
    cursor = con.execute(f"""select case_id, case_status, lifecycle_state, snoozed_until, snooze_reason
                             from {LIFECYCLE_TABLE}
                             where lifecycle_state in ('snoozed', 'closed') or snoozed_until is not null""")
    names = [d[0] for d in cursor.description]
    return {row[0]: dict(zip(names, row)) for row in cursor.fetchall()}


def case_path(alert: dict[str, Any]) -> str | None:
    """The alert's page in the web app: the case for a risk case, the customer otherwise."""
    if alert.get("alert_kind") == "risk_case":
        return f"/cases/{quote(alert['alert_id'].split('-snoozed-')[0])}"
    return f"/customers/{quote(str(alert['customer_id']))}" if alert.get("customer_id") else None


def case_link(settings: Settings, alert: dict[str, Any]) -> str | None:
    """A signed, expiring link for the alert's account manager that signs them in and opens the
    alert's page (access.sign_in_link); the plain page address when there is no address to sign."""
    path = case_path(alert)
    if path is None:
        return None
    email = alert.get("account_manager_email")
    return sign_in_link(settings, email, next_path=path) if email else f"{settings.web_url}{path}"


def apply(con: Any, alerts: list[dict[str, Any]], as_of: dt.date, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The alerts dispatch should consider on ``as_of``, after the case lifecycle (module doc)."""
    lifecycle = _lifecycle_rows(con)
    out: list[dict[str, Any]] = []
    for alert in alerts:
        case = lifecycle.get(alert["alert_id"]) if alert.get("alert_kind") == "risk_case" else None
        if case is None:
            out.append(alert)
        elif case["lifecycle_state"] in ("snoozed", "closed"):
            continue
        elif case["snoozed_until"] is not None and case["snoozed_until"] <= as_of and case["case_status"] == "open":
            until = case["snoozed_until"]
            out.append({**alert, "alert_id": f"{alert['alert_id']}-snoozed-{until.isoformat()}",
                        "alert_date": until, "opened_on": case_opened_on(alert),
                        "reminder": f"You snoozed this case until {until.isoformat()}"
                                    + (f" ({case['snooze_reason']})" if case.get("snooze_reason") else "")
                                    + "; the customer is still drifting."})
        else:  # the snooze ended after the customer recovered: no reminder, the alert as before
            out.append(alert)
    if settings is not None:
        for alert in out:
            alert.setdefault("link", case_link(settings, alert))
    return out
