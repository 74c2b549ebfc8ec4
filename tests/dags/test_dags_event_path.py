"""The event-driven path of ``loyalty_pipeline``: a landed batch with a new high-severity complaint
reaches the customer's account manager through a real DAG run, building only what the batch touched.

One generated history (40 customers, 9 months) is landed on the session's broker by the real
consumer and built by a daily run (``dag.test``, the daily path: one task per model). Then a
high-severity complaint for one customer is produced and landed, and the DAG runs the way the asset
watcher's run does (``event_update`` does the update, the daily path is skipped; conf ``{"path": "event"}`` stands in for the asset
event that ``dag.test`` cannot deliver). Checked: the alert (rule ``new_high_complaint``) is in the
file sink, addressed to that customer's manager, and sent once; the daily path's tasks were
skipped; the marts the event path rebuilt equal a full refresh of the same landing zone; and after
the next daily run every mart does.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from pathlib import Path

import pytest
from alerting_servers import airflow_test_environment

airflow_test_environment()

import pipeline_world  # noqa: E402
from pipeline_world import loyalty  # noqa: E402
from warehouse_history import snapshot as build_snapshot  # noqa: E402

from loyalty_core.settings import PROJECT_ROOT  # noqa: E402
from loyalty_monitor import pipeline, stack, warehouse  # noqa: E402

# real DAG runs (dag.test) of a generated history: minutes of set-up
pytestmark = pytest.mark.slow

END = dt.date(2026, 2, 28)
START = dt.date(2025, 6, 1)
#: Every mart, and the incremental state the alert rules read.
MARTS = ("dim_customers", "fct_touchpoints", "fct_dialogue_daily", "fct_customer_health_daily",
         "fct_loyalty_matrix", "fct_sales_platform", "fct_account_manager_activity", "fct_churn_alerts",
         "fct_churn_risk_cases", "fct_case_lifecycle", "int_alert_flags")


def snapshot(settings, tables) -> dict[str, list[tuple]]:
    warehouse.release_duckdb()  # the in-process dag.test leaves dbt's handle open
    return build_snapshot(settings, tables)


def outbox_alerts(settings) -> list[dict]:
    outbox = settings.data_dir / "alerts" / "outbox"
    return [json.loads(p.read_text()) for p in sorted(outbox.glob("*.json"))] if outbox.exists() else []


@pytest.fixture(scope="module")
def world(broker, tmp_path_factory):
    root = tmp_path_factory.mktemp("event-path")
    data_dir = root / "data"
    data_dir.mkdir()
    scoring = root / "scoring.yml"
    shipped = (PROJECT_ROOT / "config" / "scoring.yml").read_text()
    assert "max_per_manager_per_week: 3" in shipped
    # the cap decides whether an alert is sent, not which path sends it
    scoring.write_text(shipped.replace("max_per_manager_per_week: 3", "max_per_manager_per_week: 1000"))
    with pytest.MonkeyPatch.context() as mp:
        settings, child_env = pipeline_world.enter(mp, broker, data_dir, scoring, f"{os.getpid()}-event")
        gen = root / "generated"
        loyalty(child_env, "generate", "--customers", "40", "--seed", "7", "--start", START.isoformat(), "--end",
                END.isoformat(), "--out", str(gen))
        loyalty(child_env, "produce", str(gen / "customers.jsonl"), "--topic", settings.topic_customers)
        loyalty(child_env, "produce", str(gen / "touchpoints.jsonl"), "--topic", settings.topic_touchpoints)
        loyalty(child_env, "consume", "--until-idle")
        daily = stack.run_dates(settings, [END])
        assert [o.state for o in daily] == ["success"], daily
        yield {"settings": settings, "env": child_env}


@pytest.fixture(scope="module")
def complaint(world):
    """A high-severity complaint for a customer without one open, landed, then the event path."""
    settings = world["settings"]
    (customer,) = warehouse.query(settings, """
        select c.customer_id, c.account_manager_email
        from published.dim_customers c
        join build.int_alert_flags f on f.customer_id = c.customer_id and f.as_of_date = ?
        join published.fct_customer_health_daily h on h.customer_id = c.customer_id and h.as_of_date = ?
        where f.past_warmup and h.open_high_complaint_days is null and c.account_manager_email is not null
          and c.customer_id not in (select customer_id from published.fct_churn_alerts
                                    where rule = 'new_high_complaint' and episode_end_date is null)
        order by c.customer_id limit 1""", [END, END])
    before = outbox_alerts(settings)
    event = {"schema_version": 1, "event_id": str(uuid.uuid4()), "event_type": "complaint",
             "occurred_at": f"{END}T11:30:00+01:00", "customer_id": customer["customer_id"],
             "department": "support", "direction": "inbound", "employee_id": "SP01", "contact_role": "user",
             "source": "helpdesk", "note": "Machine down again", "payload": {"severity": "high", "resolved": False}}
    lines = Path(world["env"]["LOYALTY_DATA_DIR"]) / "complaint.jsonl"
    lines.write_text(json.dumps(event) + "\n")
    loyalty(world["env"], "produce", str(lines), "--topic", settings.topic_touchpoints)
    loyalty(world["env"], "consume", "--until-idle")
    outcomes = stack.run_dates(settings, [END], conf={"path": pipeline.EVENT_PATH,
                                                     "topics": [settings.topic_touchpoints]})
    return {"customer": customer, "before": before, "outcomes": outcomes,
            "after_event": snapshot(settings, MARTS)}


def test_a_new_high_severity_complaint_reaches_its_account_manager_through_the_event_path(world, complaint):
    settings = world["settings"]
    assert [o.state for o in complaint["outcomes"]] == ["success"], complaint["outcomes"]
    customer = complaint["customer"]
    new = [a for a in outbox_alerts(settings) if a not in complaint["before"]]
    for_customer = [a for a in new if any(x["customer_id"] == customer["customer_id"] for x in a["alerts"])]
    assert len(for_customer) == 1, new
    (message,) = for_customer
    assert message["to"] == [customer["account_manager_email"]]
    (alert,) = message["alerts"]
    assert alert["rule"] == "new_high_complaint" and alert["severity"] == "high"
    assert str(alert["alert_date"])[:10] == END.isoformat()
    assert "complaint" in message["text"] and "today" in message["text"]

    # the event path ran, the daily path's tasks (every dbt model task) did not
    from airflow.models import DagRun

    run = max(DagRun.find(dag_id=pipeline.DAG_ID, run_id=None), key=lambda r: r.id)  # the newest: runs of one date tie in find()'s order
    states = {ti.task_id: str(getattr(ti.state, "value", ti.state)) for ti in run.get_task_instances()}
    assert states["event_update"] == "success", states
    daily = [t for t in states if t != "event_update"]
    assert daily and all(states[t] == "skipped" for t in daily), states

    # a rerun of the event path sends nothing twice
    again = stack.run_dates(settings, [END], conf={"path": pipeline.EVENT_PATH})
    assert [o.state for o in again] == ["success"]
    assert [a for a in outbox_alerts(settings) if a not in complaint["before"]] == new


def test_event_selection_is_every_model_between_the_touched_source_and_the_alert_marts(world):
    """dbt's own graph: the selection holds exactly the models downstream of the source AND upstream
    of a mart the event path serves (so nothing an alert needs is left stale), and no other."""
    settings = world["settings"]
    manifest = json.loads(pipeline.dbt_manifest(settings).read_text())
    models = {k: v for k, v in manifest["nodes"].items() if v["resource_type"] == "model"}
    parents = {k: set(v["depends_on"]["nodes"]) for k, v in models.items()}

    def upstream(node: str) -> set[str]:
        seen, todo = set(), [node]
        while todo:
            for parent in parents.get(todo.pop(), ()):
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return seen

    by_name = {v["name"]: k for k, v in models.items()}
    for source in pipeline.landed_sources(settings, None):
        source_id = next(s for s in manifest["sources"] if s.endswith(f".landing.{source}"))
        below = {k for k in models if source_id in upstream(k)}
        serving = set()
        for mart in pipeline.EVENT_MARTS:
            serving |= upstream(by_name[mart]) | {by_name[mart]}
        expected = sorted(models[k]["name"] for k in below & serving)
        listed = warehouse.run_dbt(settings, ["ls", "--resource-type", "model", "--output", "name",
                                              "--select", *pipeline.event_selection([source])])
        assert listed.success, listed.error
        got = sorted(listed.listed)
        assert got == expected, source
    touchpoints = pipeline.event_selection(["touchpoints"])
    assert all("fct_loyalty_matrix" not in s for s in touchpoints)
    # a batch of an unknown topic, or none named: every source
    assert pipeline.landed_sources(settings, ["elsewhere"]) == pipeline.landed_sources(settings, None)
    assert pipeline.landed_sources(settings, [settings.topic_case_events]) == ["case_events"]


def test_run_path_event_for_asset_runs_and_conf_daily_otherwise():
    assert pipeline.run_path("asset_triggered", None) == pipeline.EVENT_PATH
    assert pipeline.run_path("scheduled", {}) == pipeline.DAILY_PATH
    assert pipeline.run_path("manual", None) == pipeline.DAILY_PATH
    assert pipeline.run_path("manual", {"path": "event"}) == pipeline.EVENT_PATH
    assert pipeline.run_path("asset_triggered", {"path": "daily"}) == pipeline.DAILY_PATH


def test_the_event_paths_marts_equal_a_full_refresh_and_the_next_daily_run_completes_the_rest(world, complaint):
    settings = world["settings"]
    after_event = complaint["after_event"]
    daily = stack.run_dates(settings, [END])
    assert [o.state for o in daily] == ["success"], daily
    after_daily = snapshot(settings, MARTS)
    warehouse.build(settings, as_of=END, full_refresh=True)
    full = snapshot(settings, MARTS)
    rebuilt = [m for m in MARTS if m in pipeline.EVENT_MARTS or m == "int_alert_flags"]
    for table in rebuilt:
        assert after_event[table] == full[table], f"{table}: the event path differs from a full refresh"
    for table in MARTS:
        assert len(after_daily[table]) == len(full[table]) > 0, table
        assert after_daily[table] == full[table], f"{table}: event + daily runs differ from a full refresh"
    customer = complaint["customer"]["customer_id"]
    assert any(row[1] == customer for row in full["fct_churn_alerts"] if "new_high_complaint" in row)
