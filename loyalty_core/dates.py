"""The as-of date of a run, parsed in one place. Imports nothing of the project.

A run computes a business day (its *as-of date*): the CLI's ``--as-of``, a DAG run's logical date,
a date a caller passes, or today. Every one of them goes through ``parse_as_of``: a ``date``, a
``datetime`` (its UTC calendar day when it has an offset), ``YYYY-MM-DD`` (or an ISO timestamp,
e.g. Airflow's ``2026-03-01T00:00:00+00:00``), or nothing for today in UTC. dbt's side is the
macro ``as_of_date_literal`` (dbt_project/macros/parameters.sql), which reads the same value from
``LOYALTY_AS_OF_DATE``.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any


class AsOfDateError(ValueError):
    """The value is not a date."""


def today() -> dt.date:
    """Today's calendar day in UTC (the as-of date when none is given)."""
    return dt.datetime.now(dt.timezone.utc).date()


def parse_as_of(value: Any) -> dt.date:
    """The as-of date ``value`` names (None or "" -> today in UTC); AsOfDateError otherwise."""
    if value is None or value == "":
        return today()
    if isinstance(value, dt.datetime):
        return (value.astimezone(dt.timezone.utc) if value.tzinfo is not None else value).date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        pass
    if len(text) > 10 and text[10] in "T ":
        try:
            return parse_as_of(dt.datetime.fromisoformat(text))
        except ValueError:
            pass
    raise AsOfDateError(f"as-of date must be YYYY-MM-DD, got {value!r}")


def cli_date(text: str) -> dt.date:
    """An argparse ``type=``: a date given on the command line (YYYY-MM-DD; not empty)."""
    if text.strip():
        try:
            return parse_as_of(text)
        except AsOfDateError:
            pass
    raise argparse.ArgumentTypeError(f"not a date (expected YYYY-MM-DD): {text!r}")
