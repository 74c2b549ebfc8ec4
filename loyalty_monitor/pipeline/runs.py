"""What a run of the pipeline DAGs is: their ids, the as-of date a run computes, which path it
takes (daily or event-driven), and the asset watcher's filter for "batch landed" messages."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from loyalty_core.dates import parse_as_of

log = logging.getLogger(__name__)


DAG_ID = "loyalty_pipeline"


REPORT_DAG_ID = "loyalty_weekly_report"


#: Airflow connection the asset watcher's Kafka trigger uses (defined from settings by
#: ``airflow_environment()``, or by operators in Airflow's own secrets backend).
KAFKA_CONNECTION_ID = "loyalty_kafka"


class QualityGateFailed(RuntimeError):
    """Critical data-quality checks failed: nothing is published and no alert is sent."""


class ConfigurationError(RuntimeError):
    """A step cannot run as configured (e.g. an alert channel without its URL): like a failed quality
    gate, the task fails at once instead of retrying for minutes; fix the setting and rerun."""


def as_of_date(logical_date: Any) -> dt.date:
    """The business date a run computes: the logical date's UTC calendar day (today when None)."""
    return parse_as_of(logical_date)


def check_run_date(settings: Any, as_of: dt.date) -> None:
    """Refuse an as-of date no run may compute: after tomorrow (UTC: a day of slack for time zones
    ahead of it) or before the contract's earliest event date. A run as of a future day is not
    harmless: it scores days nobody has lived and its dispatch expires, for good, the real alerts
    that lie too far before it (a year typed wrong did that), so it fails before any step."""
    latest = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=1)
    earliest = dt.date.fromisoformat(str(settings.earliest_event_date))
    if as_of > latest:
        raise ConfigurationError(f"as-of date {as_of} is in the future (today is {latest - dt.timedelta(days=1)} "
                                 "in UTC): a run computes a day that has begun; check the date (the year?)")
    if as_of < earliest:
        raise ConfigurationError(f"as-of date {as_of} is before the earliest event date the contract accepts "
                                 f"({earliest}, setting earliest_event_date): no event can lie on it")


#: How a run knows it is event-driven without an asset event (a manual trigger, ``dag.test``):
#: ``{"path": "event", "topics": [...]}`` in the run's conf.
EVENT_PATH, DAILY_PATH = "event", "daily"


def run_path(run_type: Any, conf: dict[str, Any] | None = None) -> str:
    """Which path a DAG run takes: ``event`` for a run the asset watcher started (a landed batch)
    or one whose conf asks for it, ``daily`` for every other (scheduled, manual, backfill)."""
    wanted = (conf or {}).get("path")
    if wanted in (EVENT_PATH, DAILY_PATH):
        return wanted
    return EVENT_PATH if str(getattr(run_type, "value", run_type)) == "asset_triggered" else DAILY_PATH


def triggering_topics(context: Any) -> list[str] | None:
    """The topics of the batch-landed messages that started this run (the asset watcher's events,
    ``is_batch_landed``'s payload), else the run conf's ``topics``; None when neither says."""
    topics: set[str] = set()
    try:
        accessor = context.get("triggering_asset_events") or {}
        for events in accessor.values():
            for event in events:
                payload = (getattr(event, "extra", None) or {}).get("payload") or {}
                if isinstance(payload, dict) and payload.get("topic"):
                    topics.add(str(payload["topic"]))
                else:
                    return None  # an event without a topic: do not guess what it touched
    except Exception as exc:  # noqa: BLE001 - unknown topics mean "build for every source"
        log.warning("could not read the triggering asset events: %s", exc)
        return None
    if topics:
        return sorted(topics)
    conf = getattr(context.get("dag_run"), "conf", None) or {}
    listed = conf.get("topics")
    return [str(t) for t in listed] if isinstance(listed, list) and listed else None


def is_batch_landed(message: Any) -> Any:
    """Asset-watcher filter: a "batch landed" message (design.md) with records starts a run.

    Returns the parsed message (truthy) to fire the event, or None to keep waiting. A malformed
    message is logged and ignored here: the consumer wrote it, the data itself is in the landing zone.
    """
    try:
        value = message.value()
        body = json.loads(value) if value else None
    except (ValueError, TypeError) as exc:
        log.warning("ignoring a malformed batch-landed message: %s", exc)
        return None
    if not isinstance(body, dict) or "batch_id" not in body:
        log.warning("ignoring a batch-landed message without batch_id: %r", str(body)[:200])
        return None
    return {"batch_id": body["batch_id"], "topic": body.get("topic"),
            "event_dates": body.get("event_dates") or [], "records": body.get("records")}
