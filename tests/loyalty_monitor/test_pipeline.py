"""The pipeline steps the DAG calls (loyalty_monitor.pipeline), one by one, on real parts."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from loyalty_core.settings import load_settings
from loyalty_monitor import pipeline, stack


def loyalty(*args: str) -> str:
    proc = subprocess.run([str(Path(sys.executable).parent / "loyalty"), *args], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, f"loyalty {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_landing_gate_passes_clean_data_and_stops_on_a_critical_defect(data_dir):
    import pyarrow as pa
    import pyarrow.parquet as pq

    gen = data_dir / "generated"
    loyalty("generate", "--customers", "8", "--start", "2026-01-01", "--end", "2026-02-28", "--out", str(gen))
    loyalty("land-offline", "--touchpoints", str(gen / "touchpoints.jsonl"), "--customers",
            str(gen / "customers.jsonl"))
    settings = load_settings()
    as_of = dt.date(2026, 2, 28)
    summary = pipeline.check_landing(settings, as_of)
    assert summary["passed"] and summary["critical_failures"] == []

    def land_with_unknown_department(sources: list[Path], first: int) -> int:
        """Copies of landed files whose touchpoints name a department the contract does not know."""
        rows = 0
        for number, source in enumerate(sources, first):
            table = pq.read_table(source)
            column = table.schema.get_field_index("department")
            table = table.set_column(column, table.schema.field(column),
                                     pa.array(["warp drive"] * table.num_rows, type=table.schema.field(column).type))
            pq.write_table(table, source.with_name(f"touchpoints-p000-{number:012d}-999999999999.parquet"))
            rows += table.num_rows
        return rows

    files = sorted(Path(settings.landing, "touchpoints").rglob("*.parquet"))
    # A few bad rows are set aside (quarantine) and the run goes on; the data engineers hear of it.
    few = land_with_unknown_department(files[-1:], 999999999980)
    assert 0 < few <= 5
    summary = pipeline.check_landing(settings, as_of)
    assert summary["passed"] and summary["quarantined_rows"] == few, summary
    assert any("department" in line for line in summary["quarantined"])
    # Three weeks of them are a broken producer: the run stops.
    assert land_with_unknown_department(files[-21:], 999999999900) > 5
    with pytest.raises(pipeline.QualityGateFailed, match="landing quality gate failed for 2026-02-28: .*department"):
        pipeline.check_landing(settings, as_of)


def test_on_failure_tells_the_data_engineers_what_failed_and_how_to_rerun(data_dir):
    settings = load_settings(alert_backoff_s=0.0)
    results = pipeline.on_failure(settings, dag_id="loyalty_pipeline", task_id="dbt_build.fct_churn_alerts_run",
                                  logical_date=dt.datetime(2026, 3, 12, tzinfo=dt.timezone.utc),
                                  error=RuntimeError("Binder Error: column <x> not found"), try_number=3)
    assert results == [{"channel": "file", "ok": True, "error": None}]
    notice = json.loads(next((data_dir / "alerts" / "outbox").glob("data-engineers-*.json")).read_text())
    assert notice["subject"] == "[Loyalty Monitor] loyalty_pipeline 2026-03-12: task dbt_build.fct_churn_alerts_run failed"
    assert notice["to"] == ["data-engineers@localhost"]
    assert "RuntimeError: Binder Error: column <x> not found" in notice["text"]
    assert "loyalty run --as-of 2026-03-12" in notice["text"]
    html = next((data_dir / "alerts" / "outbox").glob("data-engineers-*.html")).read_text()
    assert "column &lt;x&gt; not found" in html

    gate = pipeline.on_failure(settings, dag_id="loyalty_pipeline", task_id="check_marts", logical_date="2026-03-12",
                               error=pipeline.QualityGateFailed("marts quality gate failed"))
    assert gate[0]["ok"]
    subjects = {json.loads(p.read_text())["subject"] for p in (data_dir / "alerts" / "outbox").glob("*.json")}
    assert "[Loyalty Monitor] loyalty_pipeline 2026-03-12: quality gate failed, nothing published, no alerts sent" \
        in subjects


def test_as_of_date_is_the_utc_day_of_the_logical_date():
    cest = dt.timezone(dt.timedelta(hours=2))
    assert pipeline.as_of_date(dt.datetime(2026, 3, 12, 1, 30, tzinfo=cest)) == dt.date(2026, 3, 11)
    assert pipeline.as_of_date(dt.date(2026, 3, 12)) == dt.date(2026, 3, 12)
    assert pipeline.as_of_date("2026-03-12T00:00:00+00:00") == dt.date(2026, 3, 12)


def test_backfill_range_steps_and_always_ends_on_the_end_date():
    days = stack.date_range(dt.date(2026, 1, 1), dt.date(2026, 1, 10), 4)
    assert days == [dt.date(2026, 1, 1), dt.date(2026, 1, 5), dt.date(2026, 1, 9), dt.date(2026, 1, 10)]
    assert stack.date_range(dt.date(2026, 1, 1), dt.date(2026, 1, 1)) == [dt.date(2026, 1, 1)]
    with pytest.raises(ValueError, match="before --start"):
        stack.date_range(dt.date(2026, 1, 2), dt.date(2026, 1, 1))


def test_kafka_connection_for_the_watcher_comes_from_settings():
    settings = load_settings(bootstrap_servers="k1:9092,k2:9092", consumer_group="landing")
    conn = pipeline.kafka_connection(settings)
    assert conn["conn_type"] == "kafka"
    assert conn["extra"]["bootstrap.servers"] == "k1:9092,k2:9092"
    assert conn["extra"]["group.id"] == "landing-airflow-watcher"


def test_dbt_tasks_rebuild_from_scratch_only_when_scoring_changed(data_dir, tmp_path):
    from loyalty_core.settings import PROJECT_ROOT

    scoring = tmp_path / "scoring.yml"
    shipped = (PROJECT_ROOT / "config" / "scoring.yml").read_text()
    scoring.write_text(shipped)
    settings = load_settings(scoring_file=scoring)
    first = pipeline.plan_build(settings)
    assert first["full_refresh"] is True  # never built
    pipeline.record_build(settings, first)
    assert pipeline.plan_build(settings)["full_refresh"] is False
    assert "max_per_manager_per_week: 3" in shipped
    scoring.write_text(shipped.replace("max_per_manager_per_week: 3", "max_per_manager_per_week: 4"))
    changed = pipeline.plan_build(settings)
    assert changed["full_refresh"] is True and changed["scoring_fingerprint"] != first["scoring_fingerprint"]


def test_an_upgrade_that_changes_a_model_rebuilds_from_scratch(data_dir, tmp_path):
    """An upgrade whose incremental model computes or stores something else must re-score past days:
    a daily run would mix old rows with new ones, or look for a column the stored table lacks. A
    copy of the project rebuilt after a model's SQL or YAML changed plans a full refresh; after a
    change of what does not make data (a target/ file, docs) it does not."""
    import shutil

    from loyalty_core.settings import PROJECT_ROOT

    project = tmp_path / "dbt_project"
    shutil.copytree(PROJECT_ROOT / "dbt_project", project,
                    ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    settings = load_settings(dbt_project_dir=project)
    pipeline.record_build(settings, pipeline.plan_build(settings))
    assert pipeline.plan_build(settings)["full_refresh"] is False
    (project / "target").mkdir()
    (project / "target" / "run_results.json").write_text("{}")
    assert pipeline.plan_build(settings)["full_refresh"] is False
    (project / "models" / "overview.md").write_text("{% docs __overview__ %}Loyalty Monitor{% enddocs %}\n")
    assert pipeline.plan_build(settings)["full_refresh"] is False, "docs change no row"
    model = project / "models" / "intermediate" / "int_drift_days.sql"
    model.write_text(model.read_text() + "\n-- a new release\n")
    assert pipeline.plan_build(settings)["full_refresh"] is True
    pipeline.record_build(settings, pipeline.plan_build(settings))
    contract = project / "models" / "marts" / "fct_churn_risk_cases.yml"
    contract.write_text(contract.read_text() + "\n")  # a model's YAML: its contract's types, its config
    assert pipeline.plan_build(settings)["full_refresh"] is True


def test_the_dags_manifest_is_parsed_again_when_a_model_is_added_or_deleted(tmp_path):
    """The DAG renders one task per node of this manifest: a deleted model must lose its task (a
    newer-file check missed deletions), an unchanged project must not pay for a parse."""
    import shutil

    from loyalty_core.settings import PROJECT_ROOT

    project = tmp_path / "dbt_project"
    shutil.copytree(PROJECT_ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs"))
    probe = project / "models" / "marts" / "zz_probe.sql"
    probe.write_text("select 1 as probe\n")
    settings = load_settings(data_dir=tmp_path / "data", dbt_project_dir=project)

    def nodes() -> set[str]:
        return set(json.loads(pipeline.dbt_manifest(settings).read_text())["nodes"])

    assert "model.loyalty_monitor.zz_probe" in nodes()
    parsed_at = pipeline.dbt_manifest(settings).stat().st_mtime_ns
    assert pipeline.dbt_manifest(settings).stat().st_mtime_ns == parsed_at  # unchanged: not parsed again
    probe.unlink()
    assert "model.loyalty_monitor.zz_probe" not in nodes()
    assert "model.loyalty_monitor.fct_churn_alerts" in nodes()
    # config/scoring.yml is in the vars the graph is parsed with: a change there parses again
    parsed_at = pipeline.dbt_manifest(settings).stat().st_mtime_ns
    scoring = tmp_path / "scoring.yml"
    scoring.write_text(settings.scoring_file.read_text().replace("warmup_days: 45", "warmup_days: 46"))
    assert pipeline.dbt_manifest(settings.replace(scoring_file=scoring)).stat().st_mtime_ns > parsed_at


def test_the_dbt_tasks_of_a_run_share_one_parse_and_a_changed_input_parses_again(tmp_path):
    """In-process runs (loyalty run, dag.test) give every dbt task the manifest parsed for the same
    inputs (pipeline.dbt_reuse): another task's selection, another date's run share it; another
    environment or an edited model does not. The parse lands where the DAG's manifest was parsed,
    so that the next process's parse is a partial one (and the DAG's manifest.json is left alone)."""
    import shutil

    from loyalty_core.settings import PROJECT_ROOT
    from loyalty_monitor.pipeline import dbt_reuse

    project = tmp_path / "dbt_project"
    shutil.copytree(PROJECT_ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs"))
    settings = load_settings(data_dir=tmp_path / "data", dbt_project_dir=project)
    manifest = pipeline.dbt_manifest(settings)  # what the DAG file parses first
    parsed_at = manifest.stat().st_mtime_ns
    copy = tmp_path / "task-copy"  # what cosmos runs a task in: links to the project's files
    copy.mkdir()
    for entry in project.iterdir():
        (copy / entry.name).symlink_to(entry)

    def env(day: str) -> dict[str, str]:
        return pipeline.dbt_run_environment(settings, day)

    def args(select: str) -> list[str]:
        return ["--no-write-json", "build", "--select", select, "--exclude", "test_type:unit",
                "--vars", json.dumps(pipeline.dbt_run_vars(settings), default=str),
                "--project-dir", str(copy), "--profiles-dir", str(project), "--profile", "loyalty_monitor",
                "--target", "duckdb"]

    def parse_log() -> str:  # this process's parses for reuse log here
        log = dbt_reuse._target_dir and dbt_reuse._target_dir / "logs" / "dbt.log"
        return log.read_text() if log and log.exists() else ""

    logged = len(parse_log())
    first = dbt_reuse.manifest_for(args("stg_landing__touchpoints"), env("2026-06-30"))
    assert first is not None and "model.loyalty_monitor.fct_churn_alerts" in first.nodes
    assert dbt_reuse.manifest_for(args("fct_churn_alerts"), env("2026-06-30")) is first  # another task
    assert dbt_reuse.manifest_for(args("fct_churn_alerts"), env("2026-07-01")) is first  # the next day's run
    assert manifest.stat().st_mtime_ns == parsed_at  # the DAG's manifest.json was not rewritten
    ours = parse_log()[logged:]
    assert "Partial parsing enabled" in ours and "Unable to do partial parsing" not in ours, ours[-2000:]
    _, _, key = dbt_reuse.parse_inputs(args("fct_churn_alerts"), env("2026-06-30"))
    assert dbt_reuse.parse_inputs(args("x"), {**env("2026-06-30"), "LOYALTY_SPARK_THREADS": "4"})[2] != key
    model = project / "models" / "marts" / "fct_churn_alerts.sql"
    model.write_text(model.read_text() + "\n")
    assert dbt_reuse.parse_inputs(args("x"), env("2026-06-30"))[2] != key  # an edited model
    assert dbt_reuse.parse_inputs(["--version"], env("2026-06-30")) is None  # not a build: cosmos's own path
    assert dbt_reuse.manifest_for(args("fct_churn_alerts"), env("2026-06-30")) is not first


def test_dbt_behaviour_flags_name_the_same_source_without_walking_the_stack():
    """dbt's flags that name no source get the module that created them: the same module after
    pipeline.dbt_reuse names it from the frame's globals instead of ``inspect.stack()``."""
    from dbt_common.behavior_flags import Behavior, BehaviorFlagRendered

    from loyalty_monitor.pipeline import dbt_reuse

    flag = {"name": "loyalty_test_flag", "default": False, "description": "a flag of this test"}

    def source(**extra: str) -> str:
        return Behavior([dict(flag, **extra)], {}).loyalty_test_flag._behavior_change_event.flag_source

    replaced = BehaviorFlagRendered._default_source.__module__ == dbt_reuse.__name__  # a dbt task ran here
    by_stack = __name__ if replaced else source()
    dbt_reuse.name_behavior_flags_cheaply()
    dbt_reuse.name_behavior_flags_cheaply()  # idempotent
    assert BehaviorFlagRendered._default_source.__module__ == dbt_reuse.__name__
    assert source() == by_stack == __name__
    assert source(source="dbt-duckdb") == "dbt-duckdb"  # a flag that names its source keeps it


def test_the_weekly_steps_say_nothing_is_published_yet_on_a_new_installation(data_dir):
    """Before the first publish the weekly DAG's steps raise NothingPublishedYet (the DAG skips them,
    tests/dags/test_dags_pipeline.py); after it they run (the same file's report test)."""
    import duckdb

    settings = load_settings()
    expected = r"nothing is published yet: .* first daily run publishes \(`loyalty run`"
    with pytest.raises(pipeline.NothingPublishedYet, match=expected):
        pipeline.render_weekly_report(settings, dt.date(2026, 3, 1))
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    duckdb.connect(str(settings.warehouse)).close()  # a warehouse file, nothing built or published in it
    with pytest.raises(pipeline.NothingPublishedYet, match=expected):
        pipeline.send_weekly_digests(settings, dt.date(2026, 3, 1))
    assert not (settings.data_dir / "reports").exists()
    # on the in-process Spark before its first build, the same (no Spark started to find that out)
    with pytest.raises(pipeline.NothingPublishedYet, match=expected):
        pipeline.render_weekly_report(settings.replace(dbt_target="spark"), dt.date(2026, 3, 1))
    assert not (settings.data_dir / "spark").exists()
    # published, but its first day comes after the report's week (a new installation without backfill)
    con = duckdb.connect(str(settings.warehouse))
    con.execute("create schema ops; create table ops.pipeline_runs as select timestamp '2026-03-03 06:00' as published_at")
    con.execute("create schema published; create table published.fct_customer_health_daily as "
                "select date '2026-03-02' as as_of_date")
    con.close()
    with pytest.raises(pipeline.NothingPublishedYet, match=r"^the published days begin on 2026-03-02, after the "
                                                          r"report's period end 2026-03-01: the weekly report starts"):
        pipeline.render_weekly_report(settings, dt.date(2026, 3, 1))
    assert not (settings.data_dir / "reports").exists()


def test_the_run_summary_keeps_the_fix_a_stopped_feed_names(data_dir):
    """Tester: `loyalty run` printed the stale-feed finding cut at 400 characters, "raise the limit
    for these runs: LOYAL…": the setting to change was lost. The finding's fix is printed whole, and
    a finding too long for one line loses its middle, never the commands and settings it names."""
    gen = data_dir / "generated"
    loyalty("generate", "--customers", "8", "--start", "2026-01-01", "--end", "2026-02-28", "--out", str(gen))
    loyalty("land-offline", "--touchpoints", str(gen / "touchpoints.jsonl"), "--customers",
            str(gen / "customers.jsonl"))
    settings = load_settings()
    as_of = dt.date(2026, 3, 20)  # three weeks without a touchpoint: the feed has stopped
    with pytest.raises(pipeline.QualityGateFailed) as caught:
        pipeline.check_landing(settings, as_of)
    error = str(caught.value)
    fix = re.search(r"LOYALTY_QUALITY__FEED_STALE_DAYS=\d+", error).group(0)
    outcome = stack.RunOutcome(as_of=as_of, state="failed", seconds=1.0, failed_tasks=["check_landing"],
                               errors={"check_landing": error})
    said = stack.run_failure(settings, [as_of], [outcome])
    assert f"raise the limit for these runs: {fix}" in said and "`loyalty consume`" in said, said
    assert "LOYAL…" not in said

    # a longer finding (many rows quoted) is shortened in the middle; what it names to do survives
    padded = error.replace("a producer or the landing consumer has stopped",
                           "a producer or the landing consumer has stopped " + "(padding) " * 150
                           + "run `loyalty validate --dates 2026-03-19` to see " + "(more) " * 150)
    said = stack.run_failure(settings, [as_of], [replace(outcome, errors={"check_landing": padded})])
    first = said.split("\n")[1]
    assert " (padding) … " in first and len(first) < 1100, said  # the middle went, not the end
    assert re.search(rf"{fix}\b", said) and "`loyalty validate --dates 2026-03-19`" in said, said
    assert "LOYAL…" not in said and "`loyalty consume`" in said, said


def test_a_stopped_run_says_the_data_engineers_were_notified_only_when_the_notice_had_a_recipient(data_dir):
    """Tester: LOYALTY_DATA_ENGINEER_EMAILS=" , " was accepted, the notice went to nobody, and
    `loyalty run` said "the data engineers were notified". Such a setting now names nobody
    (tests/loyalty_core/test_settings.py), and the run says so."""
    settings = load_settings()
    outcome = stack.RunOutcome(as_of=dt.date(2026, 3, 2), state="failed", seconds=1.0, failed_tasks=["score"],
                               errors={"score": "boom"})
    assert "the data engineers were notified" in stack.run_failure(settings, [outcome.as_of], [outcome])
    nobody = settings.model_copy(update={"data_engineer_emails": " , "})
    said = stack.run_failure(nobody, [outcome.as_of], [outcome])
    assert "were notified" not in said, said
    assert ("no data engineer was notified: data_engineer_emails (LOYALTY_DATA_ENGINEER_EMAILS) names no address; "
            "set it to theirs") in said and "fix the cause, then rerun: loyalty run --as-of 2026-03-02" in said
