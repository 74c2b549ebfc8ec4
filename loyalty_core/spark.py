"""Apache Spark as the warehouse engine (``dbt_target = "spark"``; docs/warehouse.md "Engines").

Two ways to reach Spark, chosen by ``settings.spark_method`` (``LOYALTY_SPARK_METHOD``):

- ``session`` (the default): Spark runs inside this Python process in local mode
  (``spark_master``, ``local[2]``), with a Hive metastore (embedded Derby) and the table files under
  ``spark_dir`` (``<data_dir>/spark``). This is what the tests and the embedded run use. One
  process at a time: embedded Derby locks the metastore, as DuckDB locks its file.
- ``thrift`` / ``http``: a Spark Thrift server (docker-compose.yml) or Databricks; dbt-spark
  connects with PyHive, and the marts readers would too (``loyalty_core.marts``).

Every session, in-process or on a server, runs with the same SQL settings (``SESSION_CONF``):
UTC as the session time zone, ``timestamp`` meaning TIMESTAMP_NTZ (so timestamps read back as the
UTC wall clock, as from DuckDB and PostgreSQL), schema merging of the landed Parquet files (a file
written before a column existed reads with nulls), dynamic partition overwrite.
"""

from __future__ import annotations

import shlex
import threading
from pathlib import Path
from typing import Any

from loyalty_core.settings import Settings

#: SQL settings every Spark session of the project runs with (also in dbt_project/profiles.yml,
#: ``server_side_parameters``: runtime settings, valid on a Thrift server too).
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    "spark.sql.parquet.mergeSchema": "true",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
}

_LOCK = threading.Lock()
_SPARK: Any = None


def spark_dir(settings: Settings) -> Path:
    """Where the session method keeps its metastore and tables."""
    return Path(settings.spark_dir) if settings.spark_dir else settings.data_dir / "spark"


def metastore(settings: Settings) -> Path:
    """The session method's Hive metastore (embedded Derby): there once the warehouse was built."""
    return spark_dir(settings) / "metastore_db"


def spark_url(url: str) -> str:
    """A landing-zone URL as Spark's Hadoop file systems spell it: ``s3://`` -> ``s3a://``; a local
    path stays a path."""
    url = str(url).rstrip("/")
    if url.startswith("s3://"):
        return "s3a://" + url[len("s3://"):]
    if url.startswith("file://"):
        return url[len("file://"):]
    return url


def static_conf(settings: Settings) -> dict[str, str]:
    """Settings fixed when the in-process Spark starts (the session method only)."""
    home = spark_dir(settings)
    return {
        "spark.master": settings.spark_master,
        "spark.app.name": "loyalty-monitor",
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.sql.warehouse.dir": str(home / "warehouse"),
        "spark.sql.catalogImplementation": "hive",
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={metastore(settings)};create=true",
        "spark.driver.extraJavaOptions": f"-Duser.timezone=UTC -Dderby.system.home={home}",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.legacy.createHiveTableByDefault": "false",
    }


def submit_args(settings: Settings) -> str:
    """``PYSPARK_SUBMIT_ARGS`` for a process that starts Spark in-process through dbt-spark's
    session method (``warehouse.dbt_env``): the static settings above."""
    conf = {**static_conf(settings), **SESSION_CONF}
    master = conf.pop("spark.master")
    memory = conf.pop("spark.driver.memory")
    parts = ["--master", master, "--driver-memory", memory]
    for key, value in conf.items():
        parts += ["--conf", f"{key}={value}"]
    return " ".join(shlex.quote(p) for p in parts) + " pyspark-shell"


def session(settings: Settings) -> Any:
    """The in-process SparkSession of ``settings`` (created on first use, then shared: dbt-spark's
    session method and the marts readers use the same one).

    A process holds one Spark; asking for another ``spark_dir`` stops the running one first.
    """
    # the Spark engine's client: optional, only on the Spark target
    from pyspark.sql import SparkSession

    global _SPARK
    home = spark_dir(settings)
    with _LOCK:
        if _SPARK is not None and _SPARK._jsc is not None:
            if _SPARK.conf.get("spark.sql.warehouse.dir", "").rstrip("/").endswith(str(home / "warehouse")):
                return _SPARK
            _SPARK.stop()
        home.mkdir(parents=True, exist_ok=True)
        builder = SparkSession.builder
        for key, value in {**static_conf(settings), **SESSION_CONF}.items():
            builder = builder.config(key, value)
        _SPARK = builder.enableHiveSupport().getOrCreate()
        _SPARK.sparkContext.setLogLevel("ERROR")
        return _SPARK


def stop() -> None:
    """Stop the in-process Spark, if one runs (tests; a long-lived process that is done with it)."""
    global _SPARK
    with _LOCK:
        if _SPARK is not None:
            _SPARK.stop()
            _SPARK = None
