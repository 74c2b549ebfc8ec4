"""What account managers do with churn-risk cases: lifecycle events on the ``case-events`` topic.

A case (``published.fct_churn_risk_cases``, ``case_id`` = the ``alert_id`` of its alert) is
acknowledged, snoozed until a date with a reason, closed with an outcome, or given feedback. Each
action is one contract-1.2 event (docs/event-contract.md, "Case events"), keyed by the customer,
published to Kafka and landed by the consumer like every touch; the warehouse derives each case's
state (``int_case_lifecycle`` -> ``published.fct_case_lifecycle``), which the web app, alert
dispatch and the feedback figures read. Nothing here writes the warehouse.

Used by ``loyalty alerts ack|snooze|close|feedback`` and by the web app (``loyalty_monitor.web``).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import uuid
from typing import Any

from confluent_kafka import Producer

from loyalty_core.contract import CASE_EVENT_TYPES, CLOSE_OUTCOMES, FEEDBACK_VERDICTS, validate
from loyalty_core.settings import Settings
from loyalty_monitor.warehouse import open_reader

#: The published mart with every case and its current lifecycle state.
LIFECYCLE_TABLE = "published.fct_case_lifecycle"
#: The last day a snooze may end on: the contract's dates (``$defs.isoDate``) run from 2000 to 2099.
SNOOZE_LAST_DAY = dt.date(2099, 12, 31)


class CaseEventError(ValueError):
    """The event breaks the contract (the message says which rule) or the case is unknown."""


def default_actor() -> str:
    """Who a command-line event is from when ``--by`` is not given."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in containers without a passwd entry
        return "cli"


def make_event(event_type: str, case_id: str, customer_id: str, actor: str, payload: dict[str, Any],
               source: str = "cli", occurred_at: dt.datetime | None = None) -> dict[str, Any]:
    """One case event, checked against the contract; raises CaseEventError naming the broken rule."""
    if event_type not in CASE_EVENT_TYPES:
        raise CaseEventError(f"unknown case event {event_type!r}; choose from {', '.join(CASE_EVENT_TYPES)}")
    when = (occurred_at or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    event = {"schema_version": 1, "event_id": str(uuid.uuid4()), "event_type": event_type,
             "occurred_at": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
             "case_id": case_id, "customer_id": customer_id, "actor": actor, "source": source,
             "payload": {k: v for k, v in payload.items() if v is not None and v != ""}}
    problem = validate("case_event", event)
    if problem:
        raise CaseEventError(problem[1])
    return event


def acknowledge(case: dict[str, Any], actor: str, note: str | None = None, source: str = "cli") -> dict[str, Any]:
    return make_event("acknowledge", case["case_id"], case["customer_id"], actor, {"note": note}, source)


def snooze(case: dict[str, Any], actor: str, until: dt.date | str, reason: str,
           source: str = "cli") -> dict[str, Any]:
    until_text = until.isoformat() if isinstance(until, dt.date) else str(until)
    if not (reason or "").strip():  # the contract's words for it ("must contain ['reason']") say nothing to a user
        raise CaseEventError("a snooze needs its reason: why the case may wait (e.g. 'customer on leave until the 15th')")
    try:
        day = until if isinstance(until, dt.date) else dt.date.fromisoformat(until_text.strip())
    except ValueError:
        day = None  # not a date at all: the contract's check says so, with an example
    if day is not None and day > SNOOZE_LAST_DAY:
        # the contract's dates run to 2099 (a day before the event: its own words say so); its
        # pattern, shown to a manager who typed 9999-12-31, was no message
        raise CaseEventError(f"snooze until must be a date before 2100, not {day.isoformat()}: choose the day the case "
                             "may alert again (a snooze of years is a close: close the case instead)")
    return make_event("snooze", case["case_id"], case["customer_id"], actor,
                      {"until": until_text, "reason": reason}, source)


def close(case: dict[str, Any], actor: str, outcome: str, note: str | None = None,
          source: str = "cli") -> dict[str, Any]:
    if outcome not in CLOSE_OUTCOMES:
        raise CaseEventError(f"unknown outcome {outcome!r}; choose from {', '.join(CLOSE_OUTCOMES)}")
    return make_event("close", case["case_id"], case["customer_id"], actor, {"outcome": outcome, "note": note},
                      source)


def feedback(case: dict[str, Any], actor: str, verdict: str, comment: str | None = None,
             source: str = "cli") -> dict[str, Any]:
    if verdict not in FEEDBACK_VERDICTS:
        raise CaseEventError(f"unknown verdict {verdict!r}; choose from {', '.join(FEEDBACK_VERDICTS)}")
    return make_event("feedback", case["case_id"], case["customer_id"], actor,
                      {"verdict": verdict, "comment": comment}, source)


def publish(settings: Settings, events: list[dict[str, Any]], timeout_s: float = 30.0) -> None:
    """Send the events to ``topic_case_events`` (key = customer_id) and wait until the broker has
    them (acks=all, idempotent producer): returns only when they are durable, raises otherwise."""

    errors: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            errors.append(error.str())

    producer = Producer({**settings.confluent_client_config(), "client.id": "loyalty-case-events",
                         "acks": "all", "enable.idempotence": True, "message.timeout.ms": int(timeout_s * 1000)})
    for event in events:
        producer.produce(settings.topic_case_events, key=event["customer_id"].encode(),
                         value=json.dumps(event, ensure_ascii=False).encode(), on_delivery=delivered)
    left = producer.flush(timeout_s)
    if left or errors:
        producer.purge()  # what it still holds is given up here: no client retrying in the background
        producer.flush(0)
        raise RuntimeError(f"the broker at {settings.bootstrap} did not take the case event"
                           + (f": {errors[0]}" if errors else f" within {timeout_s:.0f} s"))


def find_case(settings: Settings, case_id: str) -> dict[str, Any] | None:
    """The case with its current state, from the published warehouse (read-only); None if unknown."""

    con = open_reader(settings)  # loyalty_core.marts: DuckDB or PostgreSQL
    try:
        cursor = con.execute(f"select * from {LIFECYCLE_TABLE} where case_id = ?", [case_id])
        row = cursor.fetchone()
        return dict(zip([d[0] for d in cursor.description], row)) if row else None
    finally:
        con.close()
