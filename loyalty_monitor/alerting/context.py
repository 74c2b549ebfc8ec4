"""What an alert says beyond the mart's row: the customer's last two-way dialogue and with whom,
and its usual rhythm (issue 15: messages in the account manager's words).

``enrich`` adds to each alert, from ``published.fct_touchpoints`` and ``published.fct_dialogue_daily``
up to the as-of date:

- ``last_dialogue``: ``{"on", "days_ago", "what", "with", "by", "employee_id"}`` of the latest two-way
  dialogue (an answered call that was not dropped, a meeting, a service visit): what it was, the
  customer's contact role, our department (and employee id) and the employee id alone (so that a
  message can say "by you" to the account manager who held it), or None when there never was one;
- ``usual_gap_days``: the customer's usual days between two-way dialogues that day.

A warehouse without those marts (a handmade one in tests) leaves the alerts as they are.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

TOUCHPOINTS = "published.fct_touchpoints"
DIALOGUE = "published.fct_dialogue_daily"


def _exists(con: Any, schema: str, table: str) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables where table_schema = ? "
                            "and table_name = ?", [schema, table]).fetchone()[0])


def _words(value: Any) -> str:
    return str(value).replace("_", " ") if value else ""


def last_dialogues(con: Any, customer_ids: list[str], as_of: dt.date) -> dict[str, dict[str, Any]]:
    """The latest two-way dialogue per customer up to ``as_of``."""
    if not customer_ids or not _exists(con, "published", "fct_touchpoints"):
        return {}
    marks = ", ".join("?" for _ in customer_ids)
    cursor = con.execute(
        f"""select customer_id, event_date, event_type, department, employee_id, contact_role
            from (select t.*, row_number() over (partition by customer_id order by occurred_at desc, event_id desc) as nth
                  from {TOUCHPOINTS} as t
                  where is_two_way_dialogue and event_date <= ? and customer_id in ({marks})) as ranked
            where nth = 1""", [as_of, *customer_ids])
    out = {}
    for customer_id, day, event_type, department, employee_id, contact_role in cursor.fetchall():
        by = _words(department) + (f" ({employee_id})" if employee_id else "")
        out[customer_id] = {"on": day, "days_ago": (as_of - day).days, "what": _words(event_type),
                            "with": _words(contact_role) or "someone at the customer", "by": by or "us",
                            "employee_id": employee_id}
    return out


def usual_gaps(con: Any, customer_ids: list[str], as_of: dt.date) -> dict[str, float]:
    if not customer_ids or not _exists(con, "published", "fct_dialogue_daily"):
        return {}
    marks = ", ".join("?" for _ in customer_ids)
    cursor = con.execute(f"select customer_id, usual_gap_days from {DIALOGUE} where as_of_date = ? "
                         f"and customer_id in ({marks})", [as_of, *customer_ids])
    return {r[0]: float(r[1]) for r in cursor.fetchall() if r[1] is not None}


def enrich(con: Any, alerts: list[dict[str, Any]], as_of: dt.date) -> list[dict[str, Any]]:
    """The alerts with ``last_dialogue`` and ``usual_gap_days`` (module doc); never raises for data."""
    ids = sorted({str(a["customer_id"]) for a in alerts if a.get("customer_id")})
    try:
        dialogues, gaps = last_dialogues(con, ids, as_of), usual_gaps(con, ids, as_of)
    except Exception:  # noqa: BLE001 - a context the warehouse cannot give must not stop the alerts
        dialogues, gaps = {}, {}
    for alert in alerts:
        customer = str(alert.get("customer_id"))
        alert.setdefault("last_dialogue", dialogues.get(customer))
        alert.setdefault("usual_gap_days", gaps.get(customer))
    return alerts
