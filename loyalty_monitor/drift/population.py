"""Population step of the drift model: BG/NBD "probability alive" for the dialogue and order streams.

The drift model's evidence (dbt, ``int_drift_days``) asks "has this customer's rhythm changed?".
BG/NBD (Fader, Hardie & Lee 2005; ``loyalty_monitor.drift.bgnbd``, validated on the CDNOW data in
``tests/loyalty_monitor/drift/test_bgnbd.py``) asks the older question "is this customer still there at all?": from
each customer's number of repeat days with a two-way dialogue (or an order), the day of the last one
and its age, under population parameters fitted per segment. The two answer different things and
both are shown to an analyst (``loyalty explain``); the alert decision is the drift model's.

Fitted weekly (``REFIT_DAYS``) or when the scoring changed, per segment with at least
``MIN_CUSTOMERS`` customers that had the stream (else on the whole portfolio), stored in
``build.drift_bgnbd_params`` (one row per fit, stream and segment: the history of the parameters);
each run writes every customer's P(alive) as of its as-of date to ``build.drift_customer_alive``
(replaced per run: it holds the latest day only, so an erased customer leaves it at the next run).
Time is in days.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, replace

import numpy as np

from loyalty_core.marts import open_marts
from loyalty_core.settings import Settings
from loyalty_monitor.drift import bgnbd, mixture

log = logging.getLogger(__name__)

PARAMS_TABLE = "build.drift_bgnbd_params"
ALIVE_TABLE = "build.drift_customer_alive"
#: Refit the population parameters when the last fit is this many days older than the as-of date.
REFIT_DAYS = 7
#: A segment gets parameters of its own from this many customers with at least one event.
MIN_CUSTOMERS = 30
#: The streams, as conditions on build.fct_touchpoints (a day with at least one such event counts):
#: the same conditions as the drift model's streams in dbt_project/macros/drift_streams.sql
#: (tests/loyalty_monitor/test_scoring.py keeps them equal).
STREAMS = {
    "dialogue": "is_two_way_dialogue and contact_kind <> 'friction'",
    "orders": "event_type = 'order'",
}
#: Horizon of the expected-transactions figure.
HORIZON_DAYS = 90


@dataclass(frozen=True)
class PopulationResult:
    as_of: dt.date
    refitted: bool
    fits: dict[tuple[str, str], bgnbd.BGNBDParams]
    customers: int
    mixture: mixture.MixtureFit | None = None


def _rfm(con, condition: str, as_of: dt.date) -> list[tuple]:
    """(customer_id, segment, x, t_x, T) per customer with at least one such day, in days."""
    rows = con.execute(f"""
        with days as (
            select distinct touchpoints.customer_id, touchpoints.event_date
            from build.fct_touchpoints as touchpoints
            where {condition} and touchpoints.event_date <= ?
        ),
        per_customer as (
            select customer_id, count(*) - 1 as x, min(event_date) as first_day, max(event_date) as last_day
            from days group by customer_id
        )
        select per_customer.customer_id, coalesce(customers.segment, 'unknown') as segment, x,
               (last_day - first_day) as t_x, (cast(? as date) - first_day) as t_age
        from per_customer
        left join build.dim_customers as customers on customers.customer_id = per_customer.customer_id
        order by per_customer.customer_id
    """, [as_of, as_of]).fetchall()
    # a difference of dates is a number of days on DuckDB and PostgreSQL, an interval on Spark
    return [tuple(v.days if isinstance(v, dt.timedelta) else v for v in row) for row in rows]


def _finite(value: float) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _ensure_tables(con) -> None:
    con.execute(f"""create table if not exists {PARAMS_TABLE} (
        fitted_as_of date, stream varchar, segment varchar, r double precision, alpha double precision,
        a double precision, b double precision, customers integer, log_likelihood double precision,
        fitted_at timestamp)""")
    con.execute(f"""create table if not exists {ALIVE_TABLE} (
        as_of_date date, customer_id varchar, stream varchar, segment varchar, repeat_days integer,
        days_since_last integer, age_days integer, p_alive double precision,
        expected_next_{HORIZON_DAYS}_days double precision)""")


def _latest_fits(con) -> tuple[dt.date | None, dict[tuple[str, str], bgnbd.BGNBDParams]]:
    latest = con.execute(f"select max(fitted_as_of) from {PARAMS_TABLE}").fetchone()[0]
    if latest is None:
        return None, {}
    rows = con.execute(f"select stream, segment, r, alpha, a, b from {PARAMS_TABLE} where fitted_as_of = ?",
                       [latest]).fetchall()
    return latest, {(stream, segment): bgnbd.BGNBDParams(r, alpha, a, b) for stream, segment, r, alpha, a, b in rows}


def _fit(rows: list[tuple]) -> dict[str, tuple[bgnbd.BGNBDParams, int, float]]:
    """Per segment (and ``*`` for the whole portfolio): parameters, customers, log-likelihood."""
    out = {}
    groups: dict[str, list[tuple]] = {"*": rows}
    for row in rows:
        groups.setdefault(row[1], []).append(row)
    for segment, members in groups.items():
        if segment != "*" and len(members) < MIN_CUSTOMERS:
            continue
        x, t_x, t_age = (np.array([m[i] for m in members], dtype=float) for i in (2, 3, 4))
        if len(members) < 2 or not (t_age > 0).any():
            continue
        params = bgnbd.fit(x, t_x, t_age)
        out[segment] = (params, len(members), bgnbd.log_likelihood(params, x, t_x, t_age))
    return out


def refresh(settings: Settings, as_of: dt.date, refit: bool = False) -> PopulationResult:
    """Fit the population parameters when due (or ``refit``), then write every customer's P(alive);
    when the BG/NBD parameters were refitted, the drift model's mixture weights are fitted too
    (``loyalty_monitor.drift.mixture``: they take effect on the next day scored)."""
    result = _refresh_bgnbd(settings, as_of, refit)
    if result.refitted:
        return replace(result, mixture=mixture.refresh(settings))
    return result


def _refresh_bgnbd(settings: Settings, as_of: dt.date, refit: bool) -> PopulationResult:
    from loyalty_core.marts import open_marts  # DuckDB file or PostgreSQL, by settings.dbt_target

    con = open_marts(settings, read_only=False)
    try:
        _ensure_tables(con)
        data = {stream: _rfm(con, condition, as_of) for stream, condition in STREAMS.items()}
        latest, fits = _latest_fits(con)
        due = refit or latest is None or (as_of - latest).days >= REFIT_DAYS or latest > as_of
        if due:
            fits = {}
            stamp = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
            con.execute("begin")
            con.execute(f"delete from {PARAMS_TABLE} where fitted_as_of = ?", [as_of])
            for stream, rows in data.items():
                for segment, (params, customers, ll) in _fit(rows).items():
                    fits[(stream, segment)] = params
                    con.execute(f"insert into {PARAMS_TABLE} values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                [as_of, stream, segment, params.r, params.alpha, params.a, params.b,
                                 customers, ll, stamp])
            con.execute("commit")
            log.info("BG/NBD population parameters fitted as of %s: %d stream-segments", as_of, len(fits))
        alive = []
        for stream, rows in data.items():
            for customer_id, segment, x, t_x, t_age in rows:
                params = fits.get((stream, segment)) or fits.get((stream, "*"))
                if params is None:
                    continue
                alive.append((customer_id, stream, segment, x, t_x, t_age, params))
        con.execute("begin")
        con.execute(f"delete from {ALIVE_TABLE}")
        if alive:
            by_params: dict[bgnbd.BGNBDParams, list[int]] = {}
            for i, row in enumerate(alive):
                by_params.setdefault(row[6], []).append(i)
            values = [None] * len(alive)
            for params, index in by_params.items():
                x = np.array([alive[i][3] for i in index], dtype=float)
                t_x = np.array([alive[i][4] for i in index], dtype=float)
                t_age = np.array([alive[i][5] for i in index], dtype=float)
                p = bgnbd.p_alive(params, x, t_x, t_age)
                # a fit run off to a limit (a, b or r, alpha huge) is integrated numerically (bgnbd);
                # what is still undefined (a == 1 exactly) is stored as unknown, never as NaN
                with np.errstate(invalid="ignore", over="ignore"):
                    expected = bgnbd.conditional_expected_transactions(params, HORIZON_DAYS, x, t_x, t_age)
                for k, i in enumerate(index):
                    values[i] = (as_of, alive[i][0], alive[i][1], alive[i][2], int(alive[i][3]),
                                 int(alive[i][5] - alive[i][4]), int(alive[i][5]),
                                 _finite(p[k]), _finite(expected[k]))
            con.executemany(f"insert into {ALIVE_TABLE} values (?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
        con.execute("commit")
        return PopulationResult(as_of=as_of, refitted=due, fits=fits, customers=len({a[0] for a in alive}))
    finally:
        con.close()


def p_alive_of(settings: Settings, customer_id: str) -> dict[str, dict]:
    """The latest P(alive) rows of one customer, by stream (empty before the first refresh)."""

    con = open_marts(settings)
    try:
        exists = con.execute("select count(*) from information_schema.tables where table_schema = 'build' "
                             "and table_name = 'drift_customer_alive'").fetchone()[0]
        if not exists:
            return {}
        cursor = con.execute(f"select * from {ALIVE_TABLE} where customer_id = ?", [customer_id])
        names = [d[0] for d in cursor.description]
        return {row[2]: dict(zip(names, row)) for row in cursor.fetchall()}
    finally:
        con.close()
