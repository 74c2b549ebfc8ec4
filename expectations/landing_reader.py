"""A DuckDB session that reads landing files by path, on the local disk or any fsspec filesystem:
how the gate's frames (``expectations.frames``) and the quarantine (``expectations.quarantine``) read
the landing zone."""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from loyalty_core.landing_zone import LandingZone


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class LandingReader:
    """An in-memory DuckDB session that reads landing files by path (any fsspec filesystem)."""

    def __init__(self, zone: LandingZone):
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        self.zone = zone
        if not zone.local:
            self.con.register_filesystem(zone.fs)

    def url(self, path: str) -> str:
        return path if self.zone.local else self.zone.fs.unstrip_protocol(path)

    def parquet(self, paths: list[str], filename: bool = False) -> str:
        listing = ", ".join(_quote(self.url(p)) for p in paths)
        extra = ", filename = true" if filename else ""
        return (f"read_parquet([{listing}], union_by_name = true, hive_partitioning = false{extra})")

    def df(self, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
        return _df(self.con, sql, params)

    def close(self) -> None:
        self.con.close()


def _df(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    # Through Arrow: DuckDB's own pandas conversion trips pandas 3 deprecation warnings.
    return con.sql(sql, params=params or None).to_arrow_table().to_pandas()
