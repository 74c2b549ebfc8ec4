"""The warehouse: run the dbt project, publish its marts, and read them.

dbt builds every model into schema ``build`` of the DuckDB file (``settings.warehouse``), or of the
PostgreSQL database when ``settings.dbt_target`` is ``postgres`` (then ``load()`` first copies the
landed Parquet files into schema ``landing``: ``loyalty_monitor.landing_load``).
``publish()`` copies each mart (``dim_*``, ``fct_*``) into schema ``published`` in one transaction,
after the quality gate passed; everything people and alerts read is ``published``, through
``loyalty_core.marts`` (``open_reader()``) on either engine.

dbt runs in-process through its programmatic entry point (``dbtRunner``). The profile reads the
warehouse path and the landing URL from environment variables, which this module sets from the
settings, so Airflow (astronomer-cosmos) can run the same project with the same variables:
``dbt_env(settings)`` and ``dbt_vars(settings, as_of)``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import fsspec

from loyalty_core import contract, dates, spark
from loyalty_core.dbt_files import project_files
from loyalty_core.erasure_register import ensure_churn_counts
from loyalty_core.landing_zone import quarantine_path
from loyalty_core.marts import MartsError, MartsReader, connect_duckdb, engine_of, open_marts
from loyalty_core.settings import Settings, load_settings, reveal
from loyalty_monitor.landing_load import load_landing
from loyalty_monitor.scoring import fingerprint, load_scoring

BUILD_SCHEMA = "build"
PUBLISHED_SCHEMA = "published"
#: One row per publish, written in the publish's own transaction: what `published` holds right now.
PIPELINE_RUNS_TABLE = "ops.pipeline_runs"
MART_PREFIXES = ("dim_", "fct_")
#: The marts other parts read (docs/design.md); publish() refuses to publish without them.
REQUIRED_MARTS = ("dim_customers", "fct_touchpoints", "fct_dialogue_daily", "fct_customer_health_daily",
                  "fct_loyalty_matrix", "fct_sales_platform", "fct_account_manager_activity",
                  "fct_churn_alerts")

if TYPE_CHECKING:
    from loyalty_monitor.landing_load import LoadResult

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

# dbt's runner keeps global state: one invocation at a time per process.
_DBT_LOCK = threading.Lock()


class WarehouseError(RuntimeError):
    """dbt failed, or the warehouse is not in a state to do what was asked."""


@dataclass
class DbtNodeResult:
    name: str
    resource_type: str
    status: str
    message: str | None
    seconds: float


@dataclass
class DbtRunResult:
    """What one dbt invocation did: per-node results and overall success."""

    args: list[str]
    success: bool
    nodes: list[DbtNodeResult] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None
    #: What ``dbt ls`` printed (one entry per selected node), for listing commands.
    listed: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[DbtNodeResult]:
        return [n for n in self.nodes if n.status in ("error", "fail", "runtime error")]

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.status] = counts.get(node.status, 0) + 1
        parts = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
        return f"dbt {' '.join(self.args[:1])}: {parts or 'nothing to do'} in {self.seconds:.1f}s"

    def raise_for_failure(self) -> "DbtRunResult":
        if self.success:
            return self
        if self.failures:
            first = self.failures[0]
            more = f" (and {len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
            message = " ".join(_ANSI.sub("", first.message or first.status).split())
            raise WarehouseError(f"dbt {first.resource_type} {first.name} failed: {message}{more}")
        raise WarehouseError(f"dbt {' '.join(self.args)} failed: {self.error or 'unknown error'}")


# --- dbt invocation ------------------------------------------------------------------------------

#: The environment variable that carries a run's as-of date to dbt (dbt_project/macros/parameters.sql).
AS_OF_ENV = "LOYALTY_AS_OF_DATE"


def dbt_env(settings: Settings) -> dict[str, str]:
    """Environment variables the dbt profile and sources read."""

    return {
        "LOYALTY_WAREHOUSE_PATH": str(settings.warehouse),
        "LOYALTY_LANDING": str(settings.landing).rstrip("/"),
        "LOYALTY_DBT_TARGET": settings.dbt_target,
        # DuckDB's memory limit (profiles.yml; empty: DuckDB's default, 80 % of RAM)
        "LOYALTY_DUCKDB_MEMORY_LIMIT": settings.duckdb_memory_limit,
        # a full refresh builds the customer-day tables in batches of customers (macros/customer_batches.sql)
        "LOYALTY_CUSTOMER_BATCH_ROWS": str(settings.customer_batch_rows),
        # Rows the landing gate set aside: staging leaves them out (macros/quarantine.sql).
        "LOYALTY_QUARANTINE": str(quarantine_path(settings)),
        # Erased customers that churned, counted without naming them (stg_erasure__churn).
        "LOYALTY_ERASED_CHURN": str(ensure_churn_counts(settings)),
        # `dbt source freshness` declares the landing gate's stale-feed limit, not a second one
        "LOYALTY_FEED_STALE_DAYS": str(settings.quality.feed_stale_days),
        # The postgres target of profiles.yml (read only when LOYALTY_DBT_TARGET=postgres).
        **pg_env(settings),
        # The spark target (read only when LOYALTY_DBT_TARGET=spark).
        **spark_env(settings),
    }


def spark_env(settings: Settings) -> dict[str, str]:
    """The ``LOYALTY_SPARK_*`` variables of the dbt profile's ``spark`` target, from the settings;
    on the Spark target also which landing datasets have files (a Spark query over no file fails,
    so dbt cannot ask) and whether a quarantine file exists, and, for the session method, the
    in-process Spark's settings (``PYSPARK_SUBMIT_ARGS``: ``loyalty_core.spark``)."""

    env = {"LOYALTY_SPARK_METHOD": settings.spark_method, "LOYALTY_SPARK_HOST": settings.spark_host,
           "LOYALTY_SPARK_PORT": str(settings.spark_port), "LOYALTY_SPARK_USER": settings.spark_user or "loyalty",
           "LOYALTY_SPARK_TOKEN": reveal(settings.spark_token), "LOYALTY_SPARK_CLUSTER": settings.spark_cluster,
           "LOYALTY_SPARK_ENDPOINT": settings.spark_endpoint, "LOYALTY_SPARK_THREADS": str(settings.spark_threads)}
    if (settings.dbt_target or "").lower() != "spark":
        return env

    env["LOYALTY_LANDING_DATASETS"] = ",".join(landed_datasets(settings))
    env["LOYALTY_QUARANTINE_EXISTS"] = "1" if quarantine_path(settings).exists() else "0"
    if settings.spark_method == "session":
        env["PYSPARK_SUBMIT_ARGS"] = spark.submit_args(settings)
    return env


def landed_datasets(settings: Settings) -> list[str]:
    """The landing datasets (touchpoints, customers, case_events) with at least one Parquet file."""

    fs, root = fsspec.core.url_to_fs(str(settings.landing).rstrip("/"))
    found = []
    for dataset in ("touchpoints", "customers", "case_events"):
        try:
            days = [d for d in fs.ls(f"{root}/{dataset}", detail=False)]
        except (FileNotFoundError, NotADirectoryError):
            continue
        if any(name.endswith(".parquet") for day in days for name in _ls_or_empty(fs, day)):
            found.append(dataset)
    return found


def _ls_or_empty(fs: Any, path: str) -> list[str]:
    try:
        return fs.ls(path, detail=False)
    except (FileNotFoundError, NotADirectoryError):
        return []


def pg_env(settings: Settings) -> dict[str, str]:
    """The ``LOYALTY_PG_*`` variables of the dbt profile's ``postgres`` target, from the settings."""

    return {"LOYALTY_PG_HOST": settings.pg_host, "LOYALTY_PG_PORT": str(settings.pg_port),
            "LOYALTY_PG_USER": settings.pg_user, "LOYALTY_PG_PASSWORD": reveal(settings.pg_password),
            "LOYALTY_PG_DATABASE": settings.pg_database}


def dbt_vars(settings: Settings, as_of: dt.date | str | None = None) -> dict[str, Any]:
    """The dbt vars of a run: ``scoring`` (config/scoring.yml, validated), ``contract`` (the event
    contract's enumerations, read from its JSON Schema) and ``as_of_date``."""
    as_of_date = _as_date(as_of)
    return {"scoring": load_scoring(settings.scoring_file), "contract": contract.enumerations(),
            "as_of_date": as_of_date.isoformat()}


def dbt_vars_json(settings: Settings | None = None, as_of: dt.date | str | None = None) -> str:
    """``dbt_vars`` as the JSON string for ``dbt --vars`` (handy from a shell or a DAG)."""
    if settings is None:
        settings = load_settings()
    return json.dumps(dbt_vars(settings, as_of))


def parse_as_of(value: dt.date | str | None) -> dt.date:
    """The as-of date of a run: a date, an ISO string, or today (UTC) when empty."""
    return _as_date(value)


def _as_date(value: dt.date | str | None) -> dt.date:
    try:
        return dates.parse_as_of(value)
    except dates.AsOfDateError as exc:
        raise WarehouseError(str(exc)) from None


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the duration of a block, then restore the previous values."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def run_dbt(settings: Settings, args: list[str], as_of: dt.date | str | None = None,
            on_node: Callable[[DbtNodeResult], None] | None = None) -> DbtRunResult:
    """Run one dbt command (e.g. ``["build", "--select", "marts"]``) in-process.

    Adds ``--project-dir``/``--profiles-dir`` (dbt_project/), ``--target`` and ``--vars``
    (``dbt_vars``: ``scoring``; the as-of date goes in ``LOYALTY_AS_OF_DATE`` so that dbt's
    partial parsing survives the date changing) and exports the profile's environment. Returns a ``DbtRunResult``; call
    ``raise_for_failure()`` for a one-line error naming the failing model. ``on_node`` is called
    as each node finishes (progress for long builds).
    """

    project = Path(settings.dbt_project_dir)
    settings.warehouse.parent.mkdir(parents=True, exist_ok=True)
    # The as-of date goes in the environment, not --vars: dbt re-parses the whole project when
    # the vars differ from its last parse, which a date that changes daily would do every run.
    run_vars = dbt_vars(settings, as_of)
    env = {**dbt_env(settings), AS_OF_ENV: run_vars.pop("as_of_date")}
    full_args = [*args, "--project-dir", str(project), "--profiles-dir", str(project),
                 "--target", settings.dbt_target, "--vars", json.dumps(run_vars),
                 "--log-path", str(settings.data_dir / "logs" / "dbt"),
                 "--target-path", str(settings.data_dir / "dbt-target"),
                 "--quiet"]
    callbacks = []
    if on_node is not None:
        def _callback(event: Any) -> None:
            if event.info.name == "NodeFinished":
                node = event.data.run_result
                on_node(DbtNodeResult(event.data.node_info.node_name, event.data.node_info.resource_type,
                                      node.status, node.message or None, float(node.execution_time or 0)))
        callbacks.append(_callback)
    if is_spark(settings) and settings.spark_method == "session":
        spark.session(settings)  # dbt-spark's session method then uses this one (same settings)
    from dbt.cli.main import dbtRunner  # dbt takes seconds to import: only when it runs, not with the DAG file

    started = time.perf_counter()
    with _DBT_LOCK, environment(env):
        try:
            outcome = dbtRunner(callbacks=callbacks).invoke(full_args)
        finally:
            release_duckdb()
    result = DbtRunResult(args=list(args), success=bool(outcome.success),
                          seconds=time.perf_counter() - started)
    if outcome.exception is not None:
        result.error = " ".join(str(outcome.exception).split())
    if isinstance(outcome.result, list):  # dbt ls
        result.listed = [str(item) for item in outcome.result]
    for node in getattr(outcome.result, "results", None) or []:
        status = str(getattr(node.status, "value", node.status))
        result.nodes.append(DbtNodeResult(
            name=getattr(node.node, "name", "?"), resource_type=str(getattr(node.node, "resource_type", "node")),
            status=status, message=node.message or None, seconds=float(node.execution_time or 0)))
    if not result.success and result.error is None and not result.failures:
        result.error = "see " + str(settings.data_dir / "logs" / "dbt" / "dbt.log")
    return result


def release_duckdb() -> None:
    """Close dbt-duckdb's cached database handle: dbt keeps it open after a run, and DuckDB
    refuses other connections to the file (read-only ones, publish) from the same process.
    run_dbt() calls it after every invocation; callers that run dbt themselves (cosmos) can too."""
    try:
        # optional: the caller handles its absence
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # adapter not installed: nothing cached
        return
    with DuckDBConnectionManager._LOCK:
        if DuckDBConnectionManager._ENV is not None:
            DuckDBConnectionManager._ENV.close()
            DuckDBConnectionManager._ENV = None


_release_duckdb = release_duckdb  # the name loyalty_monitor.pipeline already uses


def _scoring_state_file(settings: Settings) -> Path:
    return settings.warehouse.with_name(settings.warehouse.name + ".scoring")


def build_fingerprint(settings: Settings) -> str:
    """What the stored days were scored with: config/scoring.yml's values and the dbt project's
    files by content (``loyalty_core.dbt_files``; not its docs). When it differs from the last
    completed build's, past days must be re-scored: a changed scoring, or an upgrade whose
    incremental models compute (or store, or type) something else, turns the next build into a full
    refresh by itself, instead of a daily run that mixes old rows with new or looks for a column
    the stored table does not have."""
    digest = hashlib.sha256(fingerprint(load_scoring(settings.scoring_file)).encode())
    project = Path(settings.dbt_project_dir)
    for path in project_files(project):
        if path.suffix != ".md":
            digest.update(f"{path.relative_to(project).as_posix()}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build(settings: Settings, as_of: dt.date | str | None = None, full_refresh: bool = False,
          select: str | None = None, on_node: Callable[[DbtNodeResult], None] | None = None,
          raise_on_failure: bool = True, unit_tests: bool = False, refit: bool = False,
          data_tests: bool = True) -> DbtRunResult:
    """``dbt build`` (models and data tests) up to ``as_of``; incremental unless asked.

    dbt unit tests pin expected scores for the shipped config/scoring.yml, so they run in the test
    suite (``unit_tests=True``), not in production builds where users tune that file. When the
    scoring file or the dbt models changed since the last build (``build_fingerprint``), past days
    must be re-scored, so the build turns into a full refresh by itself.

    The drift model's population parameters (``int_portfolio_days``) are append-only: a full
    refresh keeps them, so the daily runs and a rebuild judge every day alike. ``refit`` drops
    them first, so that they are estimated again from the whole landed history (and implies a
    full refresh).

    ``data_tests=False`` builds the models alone, for a build whose data tests run on another
    build of the same data (the engine parity test, where Spark's tests cost minutes; the
    alert-quality bench's first build).
    """
    if is_postgres(settings):
        load(settings)  # PostgreSQL cannot read the landed Parquet: bring new files in first
    if refit:
        full_refresh = True
        if is_postgres(settings) or settings.warehouse.exists():
            with open_marts(settings, read_only=False) as con:
                con.execute(f"drop table if exists {BUILD_SCHEMA}.int_portfolio_days")
    scoring_now = build_fingerprint(settings)
    state_file = _scoring_state_file(settings)
    if not full_refresh and select is None:
        previous = state_file.read_text().strip() if state_file.exists() else None
        if previous != scoring_now:
            full_refresh = True
    args = ["build"]
    if full_refresh:
        args.append("--full-refresh")
    if select:
        args += ["--select", select]
    excluded = ([] if unit_tests else ["test_type:unit"]) + ([] if data_tests else ["test_type:data"])
    if excluded:
        args += ["--exclude", *excluded]
    result = run_dbt(settings, args, as_of=as_of, on_node=on_node)
    if result.success and select is None:
        state_file.write_text(scoring_now + "\n")
    if raise_on_failure:
        result.raise_for_failure()
    return result


def is_postgres(settings: Settings) -> bool:
    return engine_of(settings) == "postgres"


def is_spark(settings: Settings) -> bool:
    return engine_of(settings) == "spark"


def load(settings: Settings) -> "LoadResult | None":
    """On PostgreSQL, load new and changed landed Parquet files into schema ``landing``
    (``loyalty_monitor.landing_load``; idempotent, by file). On DuckDB nothing to do: dbt reads the
    files in place. ``build()`` calls it first."""
    if not is_postgres(settings):
        return None

    try:
        return load_landing(settings)
    except MartsError as exc:
        raise WarehouseError(str(exc)) from None


# --- reading and publishing ----------------------------------------------------------------------

def connect(settings: Settings, read_only: bool = True):
    """A DuckDB connection to the warehouse file (read-only by default)."""

    try:
        return connect_duckdb(settings, read_only=read_only)
    except MartsError as exc:
        raise WarehouseError(str(exc)) from None


def list_marts(con, schema: str = BUILD_SCHEMA) -> list[str]:
    rows = con.execute(
        "select table_name from information_schema.tables where table_schema = ? order by table_name",
        [schema]).fetchall()
    return [name for (name,) in rows if name.startswith(MART_PREFIXES)]


def publish(settings: Settings, published_by: str = "cli") -> list[str]:
    """Copy every mart of schema ``build`` into ``published`` in ONE transaction.

    Readers see either the previous published state or the new one, never a mix; if anything
    fails, the transaction rolls back and ``published`` stays exactly as it was. The same
    transaction appends a row to ``ops.pipeline_runs`` saying which day's data is now published,
    when, by whom, and how much of it. The same SQL runs on DuckDB and PostgreSQL (DDL is
    transactional on both), through ``loyalty_core.marts``.
    """
    try:
        con = open_marts(settings, read_only=False)
    except MartsError as exc:
        raise WarehouseError(str(exc)) from None
    try:
        marts = list_marts(con, BUILD_SCHEMA)
        missing = [m for m in REQUIRED_MARTS if m not in marts]
        if missing:
            raise WarehouseError(f"cannot publish: schema {BUILD_SCHEMA} lacks {', '.join(missing)} "
                                 "(run `loyalty warehouse build` first)")
        if con.engine == "spark":
            _publish_spark(con, marts, published_by)
            return marts
        con.execute("begin transaction")
        try:
            con.execute(f"create schema if not exists {PUBLISHED_SCHEMA}")
            for mart in marts:
                con.execute(f'drop table if exists {PUBLISHED_SCHEMA}."{mart}"')
                con.execute(f'create table {PUBLISHED_SCHEMA}."{mart}" as '
                            f'select * from {BUILD_SCHEMA}."{mart}"')
            _record_publish(con, published_by, len(marts))
            con.execute("commit")
        except BaseException:
            con.execute("rollback")
            raise
        return marts
    finally:
        con.close()


def _publish_spark(con: Any, marts: list[str], published_by: str) -> None:
    """Publish on Spark, which has no transactions: every mart is first copied next to the
    published one (``published.loyalty_stage__<mart>``), and only when all copies are written are
    they swapped in, each by a drop and a rename (metadata only). A failure while copying leaves
    ``published`` as it was; readers may see a mix of old and new marts only during the swap."""
    con.execute(f"create schema if not exists {PUBLISHED_SCHEMA}")
    staged = {mart: f"{PUBLISHED_SCHEMA}.loyalty_stage__{mart}" for mart in marts}
    for mart, stage in staged.items():
        con.execute(f"drop table if exists {stage}")
        con.execute(f'create table {stage} using parquet as select * from {BUILD_SCHEMA}."{mart}"')
    for mart, stage in staged.items():
        con.execute(f'drop table if exists {PUBLISHED_SCHEMA}."{mart}"')
        con.execute(f'alter table {stage} rename to {PUBLISHED_SCHEMA}."{mart}"')
    _record_publish(con, published_by, len(marts))


def _record_publish(con: Any, published_by: str, marts: int) -> None:
    con.execute("create schema if not exists ops")
    con.execute(f"""create table if not exists {PIPELINE_RUNS_TABLE} (
        published_at timestamp not null, published_by varchar not null, as_of_date date,
        marts integer not null, customers bigint not null, touchpoints bigint not null,
        open_alert_episodes bigint not null)""")
    con.execute(f"""insert into {PIPELINE_RUNS_TABLE}
        select cast(current_timestamp as timestamp), ?,
               (select max(as_of_date) from {PUBLISHED_SCHEMA}.fct_customer_health_daily), ?,
               (select count(*) from {PUBLISHED_SCHEMA}.dim_customers),
               (select count(*) from {PUBLISHED_SCHEMA}.fct_touchpoints),
               (select count(*) from {PUBLISHED_SCHEMA}.fct_churn_alerts where episode_end_date is null)""",
                [published_by, marts])


def pipeline_runs(settings: Settings, limit: int = 10) -> list[dict[str, Any]]:
    """The latest publishes, newest first (empty before the first one)."""
    with open_reader(settings) as con:
        if not con.table_exists("ops", "pipeline_runs"):
            return []
        return con.query(f"select * from {PIPELINE_RUNS_TABLE} order by published_at desc limit ?", [limit])


def query(settings: Settings, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    """Run a read-only query on the warehouse (either engine: ``?`` placeholders); rows as dicts."""
    with open_reader(settings) as con:
        return con.query(sql, params or [])


def open_reader(settings: Settings) -> MartsReader:
    """A read-only ``MartsReader`` on the warehouse (``loyalty_core.marts``); WarehouseError if it
    cannot be opened (no DuckDB file yet, PostgreSQL unreachable)."""
    try:
        return open_marts(settings, read_only=True)
    except MartsError as exc:
        raise WarehouseError(str(exc)) from None


def health_on(settings: Settings, as_of: dt.date | str, schema: str = PUBLISHED_SCHEMA) -> list[dict[str, Any]]:
    """Every customer's health row on one day (default: published)."""
    return query(settings, f"select * from {schema}.fct_customer_health_daily where as_of_date = ? "
                           "order by health_score, customer_id", [_as_date(as_of)])


def alerts_between(settings: Settings, start: dt.date | str, end: dt.date | str,
                   schema: str = PUBLISHED_SCHEMA) -> list[dict[str, Any]]:
    """Alert episodes whose alert_date lies in (start, end] (default: published)."""
    return query(settings, f"select * from {schema}.fct_churn_alerts where alert_date > ? and alert_date <= ? "
                           "order by alert_date, customer_id, rule", [_as_date(start), _as_date(end)])


def portfolio_status(settings: Settings, as_of: dt.date | str, schema: str = PUBLISHED_SCHEMA) -> dict[str, int]:
    """Count of customers per status (green/yellow/red) on one day."""
    rows = query(settings, f"select status, count(*) as n from {schema}.fct_customer_health_daily "
                           "where as_of_date = ? group by status", [_as_date(as_of)])
    return {row["status"]: int(row["n"]) for row in rows}
