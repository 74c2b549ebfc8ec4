"""The same dbt project on DuckDB, PostgreSQL and Apache Spark (docs/warehouse.md "Engines").

A real PostgreSQL 15 cluster (tests/helpers/postgres_cluster.py: initdb, pg_ctl, a free port, removed at
teardown), a real Spark 4 in this process (dbt-spark's session method, local[2], its metastore and
tables in a temp dir) and a small generated history (30 customers, six months), landed in two
parts. On every engine the project is built up to a cut date (on PostgreSQL after loading the
landing zone with ``loyalty_monitor.landing_load``; Spark reads the Parquet files in place), then
the second part (with events sent late about earlier days) lands and an incremental run follows,
with the unit and data tests; all are published, and every published mart is compared row for row
with DuckDB's: same tables, same columns in the same order, same rows; floating-point values to a
relative tolerance of 1e-9 (absolute 1e-9 near zero: the engines sum and divide in different
orders), everything else exactly.
Also: the load step is idempotent (a second run loads nothing and the row counts stay), a rewritten
file replaces its rows and a removed file takes its rows along; the marts reader gives the same
answers on every engine; the marts gate, the population step, publish and alert dispatch run on
each and send the same alerts; a full refresh gives the same marts everywhere.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import shutil
import time

import pyarrow.parquet as pq
import pytest
from postgres_cluster import postgres_cluster  # noqa: F401 - the fixture
from warehouse_history import land, land_as_partition, make_history, split_by_send_order, warehouse_settings

from loyalty_core import spark
from loyalty_core.marts import PostgresMarts, SparkMarts, open_marts, pg_connect, to_pyformat
from loyalty_monitor import warehouse
from loyalty_monitor.landing_load import LOAD_LOG, landing_counts, load_landing

# Spark builds the history three times (first build, daily run with the unit and data tests, full
# refresh; the first and the last without data tests): minutes each on two shared cores, so the
# first test (which sets the engines up) needs longer than the suite's default timeout
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

START, CUT, END = "2026-01-01", dt.date(2026, 5, 20), "2026-06-30"
REL_TOL = ABS_TOL = 1e-9


def _on_spark(settings, data_dir):
    """Spark in this process (the session method) on the same landing zone and scoring file, with a
    modest footprint: two cores shared with other work, 2 GiB for the driver, 4 shuffle partitions;
    dbt sends three statements at once (Spark's data tests took a fifth less than one at a time)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return settings.replace(dbt_target="spark", data_dir=data_dir, landing_url=settings.landing,
                               spark_method="session", spark_dir="", spark_master="local[2]",
                               spark_driver_memory="2g", spark_shuffle_partitions=4,
                               spark_threads=3)


def _on_postgres(settings, cluster, database: str | None = None):
    return settings.replace(dbt_target="postgres", pg_host="127.0.0.1", pg_port=cluster.port,
                               pg_user=cluster.user, pg_database=database or cluster.database)


@pytest.fixture(scope="module")
def engines(tmp_path_factory, postgres_cluster):  # noqa: F811
    """The three engines the way production runs: a first build up to CUT, then the rest lands (events
    sent late about days before CUT included) and an incremental run (on PostgreSQL the load picks up
    the new files; incremental models add days and rebuild the late ones). The drift model's
    population parameters are append-only (docs/warehouse.md), so every engine must see the same
    sequence of landings and builds to be compared; the last test compares full refreshes too."""
    history = make_history(tmp_path_factory.mktemp("history"), customers=30, start=START, end=END, seed=13)
    parts = tmp_path_factory.mktemp("parts")
    split_by_send_order(history.touchpoints, parts / "tp1.jsonl", parts / "tp2.jsonl", "occurred_at", CUT)
    split_by_send_order(history.customers, parts / "cu1.jsonl", parts / "cu2.jsonl", "updated_at", CUT)
    # overlap 0: the two landings are seconds apart, and the point is the incremental path;
    # risk cases open at a lower probability than the default, so that this small history has some
    duck = warehouse_settings(tmp_path_factory.mktemp("duckdb") / "data",
                              incremental={"landing_overlap_seconds": 0},
                              risk_cases={"open_probability": 0.3, "close_probability": 0.15})
    # the PostgreSQL side reads the very same landing zone and scoring file; its own data dir
    pg_data = tmp_path_factory.mktemp("postgres") / "data"
    pg_data.mkdir(parents=True)
    pg = _on_postgres(duck.replace(data_dir=pg_data, landing_url=duck.landing), postgres_cluster)

    sp = _on_spark(duck, tmp_path_factory.mktemp("spark") / "data")
    engines = (("duckdb", duck), ("postgres", pg), ("spark", sp))

    land(duck, parts / "tp1.jsonl", parts / "cu1.jsonl")
    seconds: dict[str, list[float]] = {name: [] for name, _ in engines}
    for name, settings in engines:
        started = time.perf_counter()
        # the first build creates everything; its data tests are the daily run's below (on this
        # history they pass on the daily run's fuller data too), so it builds the models alone
        first = warehouse.build(settings, as_of=CUT, data_tests=False)
        seconds[name].append(time.perf_counter() - started)
        assert first.success and not [n for n in first.nodes if n.resource_type in ("test", "unit_test")], name
    land_as_partition(duck, tmp_path_factory.mktemp("scratch"), parts / "tp2.jsonl", parts / "cu2.jsonl", partition=1)
    results = {}
    for name, settings in engines:
        started = time.perf_counter()
        results[name] = warehouse.build(settings, as_of=END, unit_tests=True)  # incremental
        seconds[name].append(time.perf_counter() - started)
        assert "--full-refresh" not in results[name].args
        warehouse.publish(settings, published_by="test")
    print("\nbuild seconds (first build to the cut date, daily run with unit tests): "
          + ", ".join(f"{name} {' / '.join(f'{s:.0f}' for s in times)}" for name, times in seconds.items()))
    yield duck, pg, sp, results
    spark.stop()  # the JVM's memory back for the rest of the suite


def _published(settings) -> dict[str, tuple[list[str], list[tuple]]]:
    with open_marts(settings) as con:
        out = {}
        for table in warehouse.list_marts(con, warehouse.PUBLISHED_SCHEMA):
            cursor = con.execute(f'select * from {warehouse.PUBLISHED_SCHEMA}."{table}"')
            out[table] = ([d[0] for d in cursor.description], cursor.fetchall())
        return out


def _normal(value):
    """A value as compared: Decimal -> float (money is exact on both, but numeric and DECIMAL may
    differ in scale), datetime kept, everything else as is."""
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def _sort_key(row: tuple) -> tuple:
    # floats rounded for ordering only (the comparison below uses the tolerance)
    return tuple((0, "") if v is None else
                 (1, round(v, 6)) if isinstance(v, float) else (2, str(v)) for v in map(_normal, row))


def _same(a, b) -> bool:
    a, b = _normal(a), _normal(b)
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return a == b


def test_every_engine_builds_and_tests_everything(engines):
    *_, results = engines
    for name, result in results.items():
        assert result.success, f"{name}: {result.error}"
        statuses = {n.status for n in result.nodes if n.resource_type == "model"}
        assert statuses == {"success"}, f"{name}: {statuses}"
        tests = [n for n in result.nodes if n.resource_type == "test"]
        assert len(tests) >= 100 and {n.status for n in tests} == {"pass"}, name
        unit = [n for n in result.nodes if n.resource_type == "unit_test"]  # same expectations on both
        assert len(unit) >= 7 and {n.status for n in unit} == {"pass"}, name
    models = lambda r: sorted(n.name for n in r.nodes if n.resource_type == "model")  # noqa: E731
    assert models(results["duckdb"]) == models(results["postgres"]) == models(results["spark"])


def test_every_published_mart_is_the_same_on_every_engine(engines):
    duck, pg, sp, _ = engines
    _assert_same_marts(duck, pg)
    _assert_same_marts(duck, sp)


def _assert_same_marts(duck, other) -> None:
    left, right = _published(duck), _published(other)
    assert sorted(left) == sorted(right)
    assert set(warehouse.REQUIRED_MARTS) <= set(left)
    compared, problems = 0, {}
    for table in sorted(left):
        (columns_l, rows_l), (columns_r, rows_r) = left[table], right[table]
        if columns_l != columns_r:
            problems[table] = f"columns differ: {columns_l} vs {columns_r}"
            continue
        if len(rows_l) != len(rows_r):
            problems[table] = f"{len(rows_l)} rows on DuckDB, {len(rows_r)} on {other.dbt_target}"
            continue
        for row_l, row_r in zip(sorted(rows_l, key=_sort_key), sorted(rows_r, key=_sort_key)):
            diffs = [(c, a, b) for c, a, b in zip(columns_l, row_l, row_r) if not _same(a, b)]
            if diffs:
                problems[table] = f"{diffs[:5]} in row {dict(zip(columns_l, row_l))}"
                break
            compared += 1
    assert not problems, "\n".join(f"{table}: {problem}" for table, problem in problems.items())
    assert compared > 1000
    assert left["fct_churn_alerts"][1], "the history should give some alerts to compare"


def test_publish_records_the_run_on_postgres_and_spark(engines):
    duck, pg, sp, _ = engines
    for settings in (pg, sp):
        runs = warehouse.pipeline_runs(settings)
        assert runs and runs[0]["published_by"] == "test" and runs[0]["as_of_date"] == dt.date.fromisoformat(END)
        assert warehouse.portfolio_status(settings, END) == warehouse.portfolio_status(duck, END)
    with open_marts(sp) as con:  # nothing of the staged swap is left behind
        assert not [t for t in con.tables("published") if not t.startswith(warehouse.MART_PREFIXES)]


def test_the_case_event_gate_looks_cases_up_on_every_engine(engines):
    """The landing gate's check of case events against the published cases (an unknown case id is
    quarantined) asks each engine's warehouse, not the DuckDB file only."""
    # the gate's module: loaded by the one test that needs it (Great Expectations is heavy)
    from expectations.frames import published_cases

    duck, pg, sp, _ = engines
    with open_marts(duck) as con:
        case_id = con.execute("select min(case_id) from published.fct_churn_risk_cases").fetchone()[0]
    assert case_id
    found = {name: published_cases(settings)([case_id, "no-such-case"]) for name, settings in
             (("duckdb", duck), ("postgres", pg), ("spark", sp))}
    for name, frame in found.items():
        assert frame is not None and frame["case_id"].tolist() == [case_id], name


def test_marts_reader_answers_alike(engines):
    duck, pg, sp, _ = engines
    sql = ("select status, count(*) as n from published.fct_customer_health_daily "
           "where as_of_date = ? and status like '%e%' group by status order by status")
    day = [dt.date.fromisoformat(END)]
    with open_marts(duck) as a, open_marts(pg) as b, open_marts(sp) as c:
        assert isinstance(b, PostgresMarts) and b.engine == "postgres" and a.engine == "duckdb"
        assert isinstance(c, SparkMarts) and c.engine == "spark"
        assert a.query(sql, day) == b.query(sql, day) == c.query(sql, day)
        assert a.query_arrow(sql, day).num_rows == b.query_arrow(sql, day).num_rows == c.query_arrow(sql, day).num_rows
        for reader in (b, c):
            assert reader.table_exists("published", "dim_customers") and not reader.table_exists("published", "nope")
        assert a.tables("published") == c.tables("published")
    # the operational tables' upsert and delete, which Parquet tables cannot do themselves
    for settings in (duck, sp):
        with open_marts(settings, read_only=False) as reader:
            reader.execute("create table if not exists ops.reader_probe (k varchar not null, v integer default 0, "
                           "primary key (k))")
            upsert = "insert into ops.reader_probe (k, v) values (?, ?) on conflict (k) do update set v = excluded.v"
            reader.executemany(upsert, [["a", 1], ["b", 2], ["it's", 3]])
            reader.execute(upsert, ["a", 10])
            reader.execute("delete from ops.reader_probe where k = ?", ["b"])
            assert reader.query("select k, v from ops.reader_probe order by k") == [
                {"k": "a", "v": 10}, {"k": "it's", "v": 3}], settings.dbt_target
            reader.execute("drop table ops.reader_probe")
    assert to_pyformat("select '?', \"a?\", ? where x like 'a%' and y % 2 = 0") == \
        "select '?', \"a?\", %s where x like 'a%%' and y %% 2 = 0"


def test_load_is_idempotent_by_file(engines, postgres_cluster, tmp_path):  # noqa: F811
    duck, *_ = engines
    # a database of its own, and a copy of the landing zone this test may change
    admin = pg_connect(_on_postgres(duck, postgres_cluster, "postgres"))
    with admin.cursor() as cur:
        cur.execute("create database load_test")
    admin.close()
    landing = tmp_path / "landing"
    shutil.copytree(duck.landing, landing)
    settings = _on_postgres(duck.replace(data_dir=tmp_path, landing_url=str(landing)),
                            postgres_cluster, "load_test")

    first = load_landing(settings)
    con = pg_connect(settings)
    try:
        counts = landing_counts(con)
        assert counts["touchpoints"] > 500 and counts["customers"] >= 30
        assert counts["touchpoints"] == sum(pq.read_metadata(p).num_rows
                                            for p in landing.glob("touchpoints/*/*.parquet"))
        second = load_landing(settings)
        assert sum(second.files_loaded.values()) == 0 and second.files_unchanged == first.files_loaded
        assert landing_counts(con) == counts

        # types survive the COPY: timestamps with time zone, dates, doubles bit for bit, JSON text
        with con.cursor() as cur:
            cur.execute("select data_type from information_schema.columns where table_schema = 'landing' "
                        "and table_name = 'touchpoints' and column_name in ('occurred_at', 'event_date', "
                        "'amount', 'payload_json') order by column_name")
            assert [r[0] for r in cur.fetchall()] == ["double precision", "date", "timestamp with time zone", "text"]
        some = sorted(landing.glob("touchpoints/*/*.parquet"))[0]
        table = pq.read_table(some)
        relative = some.relative_to(landing).as_posix()
        with con.cursor() as cur:
            cur.execute("select event_id, occurred_at, amount, payload_json, kafka_timestamp from landing.touchpoints "
                        "where _landing_file = %s order by kafka_offset", [relative])
            loaded = cur.fetchall()
        expected = sorted(table.to_pylist(), key=lambda r: r["kafka_offset"])
        assert [(r["event_id"], r["occurred_at"], r["amount"], r["payload_json"], r["kafka_timestamp"])
                for r in expected] == loaded

        # a rewritten file (a replayed batch, an erasure) replaces its rows; a removed one takes them along
        pq.write_table(table.slice(0, max(table.num_rows - 1, 0)), some)
        gone = sorted(landing.glob("touchpoints/*/*.parquet"))[-1]
        gone_rows = pq.read_metadata(gone).num_rows
        gone.unlink()
        third = load_landing(settings, datasets=["touchpoints"])
        assert third.files_loaded["touchpoints"] == 1 and third.files_removed["touchpoints"] == 1
        assert landing_counts(con)["touchpoints"] == counts["touchpoints"] - 1 - gone_rows
        with con.cursor() as cur:
            cur.execute(f"select count(*), sum(row_count) from {LOAD_LOG} where dataset = 'touchpoints'")
            files, rows = cur.fetchone()
        assert files == len(list(landing.glob("touchpoints/*/*.parquet")))
        assert rows == landing_counts(con)["touchpoints"]
    finally:
        con.close()


def test_the_pipeline_runs_on_postgres_and_spark(engines):
    """Gate, population step, publish and alert dispatch on PostgreSQL and Spark, against the same
    steps on DuckDB."""
    from loyalty_monitor.alerting import dispatch as alert_dispatch
    from loyalty_monitor.alerting.channels import build_channels
    from loyalty_monitor.drift import population
    from loyalty_monitor.pipeline import daily

    duck, pg, sp, _ = engines
    as_of = dt.date.fromisoformat(END)
    outcome = {}
    for name, settings in (("duckdb", duck), ("postgres", pg), ("spark", sp)):
        gate = daily.check_marts(settings, as_of)  # the pipeline's step: raises if the gate fails
        assert gate["rows"] == outcome.get("gate_rows", gate["rows"])
        outcome["gate_rows"] = gate["rows"]
        with open_marts(settings) as con:  # and recorded it in the warehouse, for the report
            recorded = con.query("select stage, passed, scope_end from ops.quality_runs")
        assert {"stage": "marts", "passed": True, "scope_end": as_of} in recorded, f"{name}: {recorded}"
        fitted = population.refresh(settings, as_of, refit=True)
        warehouse.publish(settings, published_by="pipeline test")
        channels = build_channels(settings, "file")
        # dispatch as on the day of the latest alert, so that some are due (older ones expire)
        with open_marts(settings) as con:
            day = con.execute("select max(alert_date) from published.fct_churn_alerts").fetchone()[0]
        first = alert_dispatch.dispatch_alerts(settings, day, channels=channels, sleep=lambda s: None)
        again = alert_dispatch.dispatch_alerts(settings, day, channels=channels, sleep=lambda s: None)
        assert again.sent == 0 and again.failed == 0, f"{name}: a rerun sent again"
        sent = sorted(r["alert_id"] for r in alert_dispatch.list_alerts(settings, "sent"))
        outcome[name] = (first.sent, first.capped, first.expired, sent, fitted.customers,
                         {(k, round(p.r, 6)) for k, p in fitted.fits.items()})
    assert outcome["duckdb"] == outcome["postgres"] == outcome["spark"]
    assert outcome["postgres"][0] > 0 and outcome["postgres"][2] > 0, f"some alerts sent, older ones expired: {outcome}"


def test_full_refresh_is_the_same_on_every_engine(engines):
    duck, pg, sp, _ = engines
    for settings in (duck, pg, sp):
        started = time.perf_counter()
        # the models alone: the same data passed every data test in the daily run
        assert warehouse.build(settings, as_of=END, full_refresh=True, data_tests=False).success
        print(f"\n{settings.dbt_target}: full refresh of the history in {time.perf_counter() - started:.0f} s")
        warehouse.publish(settings, published_by="full refresh")
    _assert_same_marts(duck, pg)
    _assert_same_marts(duck, sp)


def test_two_incremental_models_at_once_on_spark_each_keep_their_rebuilt_rows(engines):
    """With spark_threads > 1, dbt runs independent models at once, and each incremental model's
    pre-hook first deletes its old record of the rows it rewrites. On Spark a delete rewrites the
    table, so two pre-hooks sharing one ledger dropped each other's copy ("table already exists")
    or lost a record: the ledger is one table per model there (macros/rebuilt_rows.sql)."""
    *_, sp, _ = engines
    assert sp.spark_threads > 1
    models = ("int_drift_days", "int_alert_flags")
    result = warehouse.run_dbt(sp, ["run", "--select", *models], as_of=END)
    assert result.success, result.error or [(n.name, n.message) for n in result.nodes]
    with open_marts(sp) as con:
        for model in models:
            assert [r["model_name"] for r in con.query(f"select model_name from build.dbt_rebuilt_rows__{model}")] == [model]


def test_the_report_renders_alike_on_spark(engines, tmp_path):
    """The leadership report reads the marts through the engine's reader: the same sections and
    figures on Spark as on DuckDB (the loyalty scatter may list its points in another order; the
    generation time differs). (On PostgreSQL: tests/loyalty_monitor/reporting/test_report_postgres.py.)"""
    import re

    from loyalty_monitor.reporting.render import render_report

    def normal(html: str) -> str:
        html = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", "", html)
        html = re.sub(r"\b(?:landing|marts)-\d{8}T\d{6}-[0-9a-f]+", "<gate run>", html)  # each its own runs
        html = re.sub(r"<td>\d{4}-\d\d-\d\d \d\d:\d\d</td>", "<td>(when)</td>", html)  # and run times
        return sorted(re.split(r"(?=<(?:rect|circle|polygon|text) )", html))

    duck, _, sp, _ = engines
    pages = {s.dbt_target: normal(render_report(s, tmp_path / f"{s.dbt_target}.html").read_text(encoding="utf-8"))
             for s in (duck, sp)}
    only_duckdb = sorted(set(pages["duckdb"]) - set(pages["spark"]))[:5]
    only_spark = sorted(set(pages["spark"]) - set(pages["duckdb"]))[:5]
    assert pages["duckdb"] == pages["spark"], f"only on DuckDB: {only_duckdb}\nonly on Spark: {only_spark}"
    assert "no data" not in "".join(pages["spark"]).lower()
    assert "quality-gate runs" in "".join(pages["spark"])  # read from Spark's ops.quality_runs



def test_the_web_app_shows_the_same_pages_on_every_engine(engines):
    """The account managers' web app reads the published marts through the engine's reader (it read
    the DuckDB file whatever the engine): the leader's queue, customer list and a customer page with
    a case, and a manager's list, are the same HTML on PostgreSQL and Spark as on DuckDB (each
    page's form token aside, which is the session's)."""
    import re

    import httpx

    from loyalty_monitor import access as auth
    from loyalty_monitor.web import BackgroundServer

    leader = "leader@example.com"
    with open_marts(engines[0]) as con:
        case_customer, manager = con.execute(
            "select customer_id, account_manager_email from published.fct_case_lifecycle "
            "where case_status = 'open' order by expected_value_at_risk desc, case_id").fetchone()
    paths = ["/queue", "/customers", f"/customers/{case_customer}", "/customers?sort=name"]
    pages: dict[str, dict[str, str]] = {}
    for settings in engines[:3]:
        settings = settings.replace(web_signing_keys="web-parity-key-0123456789", web_leadership_emails=leader)
        pages[settings.dbt_target] = {}
        with BackgroundServer(settings) as url, httpx.Client(base_url=url, timeout=120) as client:
            for email in (leader, manager):
                client.cookies.clear()
                assert client.get(f"/login?token={auth.link_token(settings, email)}").status_code == 303
                for path in paths if email == leader else ["/queue", "/customers"]:
                    page = client.get(path)
                    assert page.status_code == 200, (settings.dbt_target, email, path, page.text[-600:])
                    pages[settings.dbt_target][f"{email} {path}"] = re.sub(r'name="csrf" value="[^"]*"', "",
                                                                           page.text)
    duck = pages["duckdb"]
    assert "opened " in duck[f"{leader} /queue"] and case_customer in duck[f"{leader} /customers"]
    assert "why it opened on" in duck[f"{leader} /customers/{case_customer}"]
    for engine in ("postgres", "spark"):
        for key, page in duck.items():
            assert pages[engine][key] == page, f"{engine} {key}: " + next(
                (f"{a!r} != {b!r}" for a, b in zip(page.splitlines(), pages[engine][key].splitlines()) if a != b), "")


def test_erasure_reaches_the_postgres_warehouse(engines):
    """A customer erased on request leaves no row in any PostgreSQL table (the loaded landing
    tables, staging, marts, published, ops), and the record says so without naming it. Runs last:
    it rewrites the landing zone both engines share."""
    from loyalty_monitor import erasure

    _, pg, _, _ = engines
    with open_marts(pg) as con:
        customer = con.execute("select min(customer_id) from published.dim_customers").fetchone()[0]
    report = erasure.erase_customers(pg, [customer], requested_by="privacy officer")
    assert not any("NOT erased" in note for note in report.notes), report.notes
    with open_marts(pg) as con:
        tables = con.execute(
            "select table_schema, table_name from information_schema.columns where column_name = 'customer_id' "
            "and table_schema not in ('pg_catalog', 'information_schema')").fetchall()
        assert len(tables) > 10
        left = {f"{s}.{t}": con.execute(f'select count(*) from "{s}"."{t}" where customer_id = ?',
                                        [customer]).fetchone()[0] for s, t in tables}
    assert not any(left.values()), {k: v for k, v in left.items() if v}
    log = "\n".join(json.dumps(entry) for entry in erasure.erasure_log(pg))
    assert customer not in log and "postgres:" in log


def test_spark_sql_of_the_portable_subset():
    """What the Spark reader sends for the library's portable SQL (no Spark needed)."""
    from loyalty_core.marts import spark_literal, to_spark_sql

    assert to_spark_sql('select "a b", ? from t where x = \'?\' and y = ?; select null::varchar -- note',
                        ["it's", dt.date(2026, 1, 2)]) == [
        "select `a b`, 'it\\'s' from t where x = '?' and y = date'2026-01-02'", "select cast(null as string)"]
    assert to_spark_sql("select 'it''s'") == ["select 'it\\'s'"]
    assert spark_literal(dt.datetime(2026, 1, 2, 3, 4, 5, 6)) == "timestamp_ntz'2026-01-02 03:04:05.000006'"
    assert spark_literal(1.5) == "1.5D" and spark_literal(None) == "null" and spark_literal(True) == "true"
    assert spark_literal(decimal.Decimal("1.25")) == "1.25BD" and spark_literal("a\\b") == "'a\\\\b'"


def test_erasure_reaches_the_spark_warehouse(engines):
    """The same on Spark: no row of an erased customer in any table of build, published or ops
    (Parquet tables rewritten without them). Runs after the PostgreSQL erasure, on another customer."""
    from loyalty_monitor import erasure

    *_, sp, _ = engines
    with open_marts(sp) as con:
        customer = con.execute("select max(customer_id) from published.dim_customers").fetchone()[0]
    report = erasure.erase_customers(sp, [customer], requested_by="privacy officer")
    assert not any("NOT erased" in note for note in report.notes), report.notes
    with open_marts(sp) as con:
        tables = con.execute("select table_schema, table_name from information_schema.columns "
                             "where column_name = 'customer_id'").fetchall()
        assert len(tables) > 10
        left = {f"{s}.{t}": con.execute(f"select count(*) from {s}.{t} where customer_id = ?",
                                        [customer]).fetchone()[0] for s, t in tables}
    assert not any(left.values()), {k: v for k, v in left.items() if v}
    log = "\n".join(json.dumps(entry) for entry in erasure.erasure_log(sp))
    assert customer not in log and "spark:" in log
