"""The event-driven path of ``loyalty_pipeline``: a landed batch updates, in one task, what it touched."""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from loyalty_core.settings import Settings
from loyalty_monitor.pipeline.daily import (
    apply_erasures,
    check_landing,
    check_marts,
    dispatch_alerts,
    fit_population,
    plan_build,
    publish,
    record_build,
)

log = logging.getLogger(__name__)


#: What an event-driven run refreshes: the marts alert dispatch and the account managers' web app
#: read (docs/design.md "Alerts"), with everything upstream of them that the new events touch. The
#: other marts (loyalty matrix, sales platform, activity, forecast audit, feedback) are the daily
#: run's: their incremental models catch up on their own watermarks then.
EVENT_MARTS = ("dim_customers", "fct_touchpoints", "fct_dialogue_daily", "fct_customer_health_daily",
               "fct_churn_alerts", "fct_case_lifecycle")


def landed_sources(settings: Settings, topics: list[str] | None) -> list[str]:
    """The dbt sources (tables of source ``landing``) the landed batches of ``topics`` wrote; all of
    them when the topics are unknown (a manual run, an unknown topic): never less than was touched."""
    tables = {settings.topic_touchpoints: "touchpoints", settings.topic_customers: "customers",
              settings.topic_case_events: "case_events"}
    every = sorted(set(tables.values()))
    if not topics or any(topic not in tables for topic in topics):
        return every
    return sorted({tables[topic] for topic in topics})


def event_selection(sources: list[str]) -> list[str]:
    """dbt ``--select`` arguments of an event-driven run: the models downstream of the touched
    sources that the alert marts (``EVENT_MARTS``) are built from, and those marts. Intersections
    (``A+,+B``), one per source and mart; dbt takes the union of the arguments. Their tests come
    with them (``dbt build``)."""
    return [f"source:landing.{source}+,+{mart}" for source in sources for mart in EVENT_MARTS]


def event_update(settings: Settings, as_of: dt.date, topics: list[str] | None = None) -> dict[str, Any]:
    """The event-driven run in one task: what the daily run's tasks do, for what the new batches
    touched, in one process (a task costs seconds of process start and imports on a busy host,
    and the daily run has dozens).

    erasures -> landing gate (the new files) -> dbt build of ``event_selection`` in one invocation
    (incremental: only customers with new events are rebuilt, and on the first run of a day every
    customer's new day) -> population step -> marts gate -> publish -> dispatch. When the scoring
    changed since the last build, the build is the daily run's full refresh instead (nothing is
    selected then). Returns what each step took (seconds), for the latency benchmark and the log.
    """

    # at run time: parsing the DAG file stays light
    from loyalty_monitor import warehouse

    steps: dict[str, float] = {}

    def timed(name: str, step, *args):
        started = time.monotonic()
        try:
            return step(*args)
        finally:
            steps[name] = round(time.monotonic() - started, 3)

    erased = timed("erasures", apply_erasures, settings, as_of)
    timed("landing_gate", check_landing, settings, as_of)
    plan = timed("plan", plan_build, settings)
    sources = landed_sources(settings, topics)
    select = None if plan["full_refresh"] else event_selection(sources)
    result = timed("dbt", warehouse.build, settings, as_of, plan["full_refresh"],
                   " ".join(select) if select else None)
    if plan["full_refresh"]:
        record_build(settings, plan)
    population = timed("population", fit_population, settings, as_of, plan)
    timed("marts_gate", check_marts, settings, as_of)
    timed("publish", publish, settings, as_of)
    dispatched = timed("dispatch", dispatch_alerts, settings, as_of)
    summary = {"as_of": as_of.isoformat(), "topics": topics, "sources": sources, "select": select,
               "full_refresh": plan["full_refresh"], "dbt_nodes": len(result.nodes),
               "dbt_models": sum(1 for n in result.nodes if n.resource_type == "model"),
               "erased": erased["erased"], "population": population, "dispatch": dispatched, "steps": steps}
    log.info("event-driven run as of %s: %s; dbt %d nodes (%s); steps %s", as_of, ", ".join(sources),
             summary["dbt_nodes"], "full refresh" if plan["full_refresh"] else "selected", steps)
    return summary
