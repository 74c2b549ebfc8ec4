"""The DuckDB reader of ``loyalty_core.marts`` on a real warehouse file: its calls can follow one
another in any order (docs/warehouse.md, "Reading the marts")."""

from __future__ import annotations

import re

import duckdb
import pytest

from loyalty_core.marts import MartsError, open_marts
from loyalty_core.settings import load_settings


def test_the_duckdb_reader_answers_arrow_after_a_fetchone(tmp_path):
    settings = load_settings(data_dir=tmp_path, landing_url="", warehouse_path="")
    con = duckdb.connect(str(settings.warehouse))
    con.execute("create schema published")
    con.execute("create table published.dim_customers as select 'C1' as customer_id, 'Acme' as customer_name")
    con.close()
    with open_marts(settings) as reader:
        assert reader.table_exists("published", "dim_customers")  # leaves its result unread
        assert reader.query_arrow("select customer_name from published.dim_customers").to_pylist() == [
            {"customer_name": "Acme"}]
        assert reader.execute("select count(*) from published.dim_customers").fetchone() == (1,)
        assert reader.query_arrow("select count(*) as n from published.dim_customers where customer_id = ?",
                                  ["C1"]).to_pylist() == [{"n": 1}]
        assert reader.query("select customer_id from published.dim_customers") == [{"customer_id": "C1"}]


def test_a_spark_warehouse_not_built_yet_is_said_as_a_missing_duckdb_file_is(tmp_path):
    """Reading before the first build: one line saying what to do, no Spark started (it would
    create an empty metastore and fail every query with a Java stack)."""
    settings = load_settings(data_dir=tmp_path, landing_url="", warehouse_path="", dbt_target="spark")
    for engine_settings, where in ((settings, f"no Spark warehouse at {tmp_path / 'spark'}"),
                                   (settings.replace(dbt_target="duckdb"), f"no warehouse at {settings.warehouse}")):
        with pytest.raises(MartsError, match=f"^{re.escape(where)}: run `loyalty warehouse build` first$"):
            open_marts(engine_settings)
    assert not (tmp_path / "spark").exists()


def test_a_damaged_warehouse_file_is_said_as_damaged_not_as_busy(tmp_path):
    """User trial: a warehouse file cut short read "(is another process writing it?)"."""
    settings = load_settings(data_dir=tmp_path, landing_url="", warehouse_path="")
    con = duckdb.connect(str(settings.warehouse))
    con.execute("create table t as select 1 as a")
    con.close()
    with open(settings.warehouse, "r+b") as fh:
        fh.truncate(100)
    with pytest.raises(MartsError, match=r"the file is damaged or is not a DuckDB database .* move it aside and "
                                         r"rebuild it from the landing zone \(`loyalty warehouse build --full-refresh`"):
        open_marts(settings)
