"""The DuckDB reader of ``loyalty_core.marts`` on a real warehouse file: its calls can follow one
another in any order (docs/warehouse.md, "Reading the marts")."""

from __future__ import annotations

import duckdb

from loyalty_core.marts import open_marts
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
