"""The warehouse on a generated history: a real `dbt build` on a real DuckDB file, checked
against the generator's ground truth, plus publish atomicity and `dbt docs generate`."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import duckdb
import pytest
from warehouse_history import History, land, make_history, warehouse_settings

from loyalty_core.settings import PROJECT_ROOT
from loyalty_monitor import warehouse

START, END = "2025-11-01", "2026-10-31"


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> History:
    return make_history(tmp_path_factory.mktemp("history"), customers=80, start=START, end=END, seed=7)


@pytest.fixture(scope="module")
def built(tmp_path_factory, history):
    settings = warehouse_settings(tmp_path_factory.mktemp("warehouse") / "data")
    land(settings, history.touchpoints, history.customers)
    result = warehouse.build(settings, as_of=END, full_refresh=True, unit_tests=True)
    return settings, result


@pytest.fixture()
def con(built):
    connection = duckdb.connect(str(built[0].warehouse), read_only=True)
    yield connection
    connection.close()


def _truth_table(con, history: History) -> None:
    rows = [(r["customer_id"], r["churns"], r["drift_start"], r["churn_date"], r["deleted"])
            for r in history.truth["customers"]]
    con.execute("create temp table truth (customer_id varchar, churns boolean, drift_start date, "
                "churn_date date, deleted boolean)")
    con.executemany("insert into truth values (?, ?, ?, ?, ?)", rows)


def test_build_runs_unit_tests_and_data_tests(built):
    _, result = built
    kinds = {}
    for node in result.nodes:
        kinds.setdefault(node.resource_type, []).append(node.status)
    assert result.success
    assert len(kinds["unit_test"]) >= 7 and set(kinds["unit_test"]) == {"pass"}
    assert len(kinds["test"]) >= 100 and set(kinds["test"]) == {"pass"}
    models = list((PROJECT_ROOT / "dbt_project" / "models").rglob("*.sql"))  # every model is built
    assert len(kinds["model"]) == len(models) >= 30 and set(kinds["model"]) == {"success"}


def test_churners_health_declines_before_their_churn_date(con, history):
    # Tolerance: the generator's drift is gradual and noisy, so per churner we compare the mean
    # health of the 30 days before churn with the 60 days before the drift starts, and require a
    # decline for at least 70 % of churners and on average at least 5 points.
    _truth_table(con, history)
    rows = con.execute("""
        select h.customer_id,
               avg(case when h.as_of_date between t.drift_start - 60 and t.drift_start - 1 then h.health_score end),
               avg(case when h.as_of_date between t.churn_date - 30 and t.churn_date then h.health_score end)
        from build.fct_customer_health_daily h join truth t using (customer_id)
        where t.churns and not t.deleted
        group by h.customer_id
    """).fetchall()
    pairs = [(before, at_churn) for _, before, at_churn in rows if before is not None and at_churn is not None]
    assert len(pairs) >= 10, f"too few churners with history on both sides: {len(pairs)}"
    declined = sum(1 for before, at_churn in pairs if at_churn < before)
    assert declined / len(pairs) >= 0.70, f"only {declined} of {len(pairs)} churners declined"
    mean_drop = sum(before - at_churn for before, at_churn in pairs) / len(pairs)
    assert mean_drop >= 5, f"mean decline only {mean_drop:.1f} points"


def test_stable_customers_stay_mostly_green(con, history):
    # Tolerance: after the first 60 days of the history (baselines warming up), at least 80 % of
    # stable customers' days are green and at most 2 % red.
    _truth_table(con, history)
    green, red, total = con.execute(f"""
        select sum(case when status = 'green' then 1 else 0 end), sum(case when status = 'red' then 1 else 0 end), count(*)
        from build.fct_customer_health_daily h join truth t using (customer_id)
        where not t.churns and not t.deleted and h.as_of_date >= date '{START}' + 60
    """).fetchone()
    assert total > 10_000
    assert green / total >= 0.80, f"stable customers green on only {green / total:.1%} of days"
    assert red / total <= 0.02, f"stable customers red on {red / total:.1%} of days"


def test_churners_get_a_risk_case_far_more_often_than_stable_customers(con, history):
    # The drift model on the generator's ground truth (customer level). Tolerances, from what this
    # history allows (docs/warehouse.md, "Alert quality": even an oracle with the true rates catches
    # only about a third of the churners at a few false alarms per 100 stable customer-years):
    # - of the churners whose drift starts after the 60-day warm-up and who churn within the
    #   history, at least a fifth get a case opened between drift start and churn date, and at least
    #   four times the share of stable customers with a case in the last 120 days (about as long);
    # - the drift probability ranks them: a churner's highest probability in its drift beats a
    #   stable customer's highest in the last 120 days in at least 65 % of the pairs (AUC).
    _truth_table(con, history)
    churners = con.execute(f"""
        select count(distinct t.customer_id), count(distinct c.customer_id)
        from truth t left join build.fct_churn_risk_cases c
          on c.customer_id = t.customer_id and c.opened_on between t.drift_start and t.churn_date
        where t.churns and not t.deleted and t.drift_start >= date '{START}' + 60 and t.churn_date <= date '{END}'
    """).fetchone()
    stable = con.execute(f"""
        select count(distinct t.customer_id), count(distinct c.customer_id)
        from truth t left join build.fct_churn_risk_cases c
          on c.customer_id = t.customer_id and c.opened_on > date '{END}' - 120
        where not t.churns and not t.deleted
    """).fetchone()
    assert churners[0] >= 8
    churner_rate, stable_rate = churners[1] / churners[0], stable[1] / stable[0]
    assert churner_rate >= 0.2, f"only {churner_rate:.0%} of churners got a case before churning"
    assert churner_rate >= 4 * stable_rate, f"churners {churner_rate:.0%} vs stable {stable_rate:.0%}"
    drifting = [p for (p,) in con.execute(f"""
        select max(d.drift_probability) from truth t join build.int_drift_days d
          on d.customer_id = t.customer_id and d.as_of_date between t.drift_start and t.churn_date
        where t.churns and not t.deleted and t.drift_start >= date '{START}' + 60 and t.churn_date <= date '{END}'
        group by t.customer_id""").fetchall()]
    steady = [p for (p,) in con.execute(f"""
        select max(d.drift_probability) from truth t join build.int_drift_days d
          on d.customer_id = t.customer_id and d.as_of_date > date '{END}' - 120
        where not t.churns and not t.deleted group by t.customer_id""").fetchall()]
    auc = sum((a > b) + 0.5 * (a == b) for a in drifting for b in steady) / (len(drifting) * len(steady))
    assert auc >= 0.65, f"the drift probability ranks churners above stable customers in only {auc:.0%} of pairs"


def test_daily_series_covers_every_day_up_to_as_of(con):
    gaps = con.execute("""
        select c.customer_id, count(h.as_of_date) as days, date_diff('day', c.first_seen_date, date '2026-10-31') + 1 as expected
        from build.dim_customers c left join build.fct_customer_health_daily h using (customer_id)
        group by all having count(h.as_of_date) <> expected
    """).fetchall()
    assert gaps == []
    assert con.execute("select max(as_of_date) from build.fct_customer_health_daily").fetchone()[0] == dt.date(2026, 10, 31)


def test_resends_count_once_and_events_sit_on_their_true_date(con, history):
    counts = history.truth["counts"]
    unique_events, rows = con.execute(
        "select count(distinct event_id), count(*) from build.stg_landing__touchpoints").fetchone()
    assert unique_events == rows == counts["valid_events"]
    assert counts["duplicates"] > 0 and counts["late_events"] > 0
    misplaced = con.execute("""
        select count(*) from build.fct_touchpoints
        where event_date <> cast(occurred_at as date)
    """).fetchone()[0]
    assert misplaced == 0


def test_tombstoned_customers_are_gone_from_every_mart(con, history):
    deleted = [r["customer_id"] for r in history.truth["customers"] if r["deleted"]]
    assert deleted, "the history should contain an erased customer"
    marts = [name for (name,) in con.execute(
        "select table_name from information_schema.columns where table_schema = 'build' "
        "and column_name = 'customer_id' and (table_name like 'fct_%' or table_name like 'dim_%')").fetchall()]
    assert len(marts) >= 5
    for mart in marts:
        found = con.execute(f"select count(*) from build.{mart} where customer_id in "
                            f"({', '.join('?' * len(deleted))})", deleted).fetchone()[0]
        assert found == 0, f"erased customer still in {mart}"


def test_marts_have_the_columns_design_md_promises(con):
    design = (PROJECT_ROOT / "docs" / "design.md").read_text()
    for mart in ("dim_customers", "fct_customer_health_daily", "fct_churn_alerts"):
        block = design.split(f"- `{mart}`:", 1)[1].split("\n- ", 1)[0]
        promised = set(re.findall(r"`([a-z_]+)`", block))
        actual = {name for (name,) in con.execute(
            "select column_name from information_schema.columns where table_schema = 'build' and table_name = ?",
            [mart]).fetchall()}
        assert promised - {"green", "yellow", "red", "high", "medium", "low"} <= actual, mart


def test_alerts_are_episodes_with_stable_ids_and_actions(con):
    rows = con.execute("""
        select count(*), count(distinct alert_id), count(distinct customer_id || rule || alert_date),
               sum(case when suggested_action is null or drivers is null then 1 else 0 end)
        from build.fct_churn_alerts
    """).fetchone()
    assert rows[0] > 0 and rows[0] == rows[1] == rows[2]
    assert rows[3] == 0
    overlapping = con.execute("""
        select count(*) from build.fct_churn_alerts a join build.fct_churn_alerts b
          on a.customer_id = b.customer_id and a.rule = b.rule and a.alert_id <> b.alert_id
         and b.alert_date between a.alert_date and coalesce(a.episode_end_date, date '2026-10-31')
    """).fetchone()[0]
    assert overlapping == 0
    # one row per episode, not per day: far fewer rows than alerting days
    alert_days = con.execute("select count(*) from build.int_alert_days").fetchone()[0]
    assert alert_days > 3 * rows[0]


def test_publish_is_atomic(built):
    settings, _ = built
    published = warehouse.publish(settings)
    assert set(warehouse.REQUIRED_MARTS) <= set(published)
    snapshot = _published_fingerprint(settings)
    assert snapshot["fct_customer_health_daily"][0] > 0
    # the publish is recorded in its own transaction: which day is published, and how much
    [run] = warehouse.pipeline_runs(settings)
    assert run["published_by"] == "cli" and run["as_of_date"] == dt.date.fromisoformat(END)
    assert run["marts"] == len(published) and run["customers"] == snapshot["dim_customers"][0]
    assert run["touchpoints"] == snapshot["fct_touchpoints"][0]

    # a mart that fails while being copied (its source table is gone): the whole publish rolls back
    con = warehouse.connect(settings, read_only=False)
    con.execute("create table build.zz_gone as select 1 as x")
    con.execute("create view build.fct_zz_broken as select * from build.zz_gone")
    con.execute("drop table build.zz_gone")
    con.execute("delete from build.fct_churn_alerts")  # would change `published` if not rolled back
    con.close()
    with pytest.raises(Exception):
        warehouse.publish(settings)
    assert _published_fingerprint(settings) == snapshot
    assert warehouse.pipeline_runs(settings) == [run]  # a failed publish records nothing
    con = warehouse.connect(settings, read_only=False)
    con.execute("drop view build.fct_zz_broken")
    con.close()
    # restore build for the other tests
    warehouse.build(settings, as_of=END, select="fct_churn_alerts")


def _published_fingerprint(settings) -> dict[str, tuple]:
    con = warehouse.connect(settings)
    try:
        out = {}
        for mart in warehouse.list_marts(con, warehouse.PUBLISHED_SCHEMA):
            out[mart] = con.execute(f"select count(*), sum(hash(t)) from published.{mart} t").fetchone()
        return out
    finally:
        con.close()


def test_dbt_docs_generate(built):
    settings, _ = built
    result = warehouse.run_dbt(settings, ["docs", "generate"], as_of=END)
    result.raise_for_failure()
    catalog = Path(settings.data_dir) / "dbt-target" / "catalog.json"
    assert catalog.exists() and "fct_customer_health_daily" in catalog.read_text()


def test_dbt_failure_names_the_model(tmp_path):
    settings = warehouse_settings(tmp_path / "data")
    broken = Path(settings.landing) / "touchpoints" / "event_date=2026-01-01" / "touchpoints-p000-000000000000-000000000001.parquet"
    broken.parent.mkdir(parents=True)
    broken.write_text("not parquet")
    with pytest.raises(warehouse.WarehouseError, match=r"dbt model stg_landing__touchpoints failed: .*parquet"):
        warehouse.build(settings, as_of=END, select="stg_landing__touchpoints")
    with pytest.raises(warehouse.WarehouseError, match="as-of date must be YYYY-MM-DD"):
        warehouse.build(settings, as_of="31/10/2026")


def test_build_on_an_empty_landing_zone(tmp_path):
    """Nothing landed yet (no touchpoints, no customers): the build succeeds with empty marts."""
    settings = warehouse_settings(tmp_path / "data")
    result = warehouse.build(settings, as_of=END, full_refresh=True)
    assert result.success
    warehouse.publish(settings)
    con = warehouse.connect(settings)
    try:
        for mart in warehouse.REQUIRED_MARTS:
            assert con.execute(f"select count(*) from published.{mart}").fetchone()[0] == 0, mart
    finally:
        con.close()


def test_dbt_source_freshness_declares_the_gates_stale_feed_limit(built):
    """`dbt source freshness` judges the touchpoint feed by the landing gate's feed_stale_days
    ([quality] in loyalty.toml), not by a second limit of its own: this history ended months ago,
    so the feed is an error, with the gate's limit as the criterion."""
    settings, _ = built
    for days in (3, 10):
        tuned = settings.replace(quality={"feed_stale_days": days})
        warehouse.run_dbt(tuned, ["source", "freshness", "--select", "source:landing.touchpoints"], as_of=END)
        sources = json.loads((Path(settings.data_dir) / "dbt-target" / "sources.json").read_text())
        (result,) = [r for r in sources["results"] if r["unique_id"].endswith("landing.touchpoints")]
        assert result["status"] == "error", result
        assert result["criteria"]["error_after"] == {"count": days, "period": "day"}
        assert result["criteria"]["warn_after"] == {"count": days - 1, "period": "day"}
