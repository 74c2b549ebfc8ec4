"""Read what the leadership report shows from the published marts (and the ops tables).

Every section is fetched on its own and degrades to "no data" with a reason when a mart, a column or
the rows are missing: a half-built warehouse still gives a readable report. The column names are
those the marts declare in their dbt contracts (``dbt_project/models/marts/<mart>.yml``, enforced
on every build): the reader names them directly, and a mart that lacks one is reported as such.

The queries are plain SQL on a DuckDB connection opened read-only; nothing here writes.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Callable

from loyalty_core.settings import Settings
from loyalty_monitor import gate_runs
from loyalty_monitor.alerting.messages import drivers_list

PUBLISHED = "published"
OPS = "ops"
STATUSES = ("red", "yellow", "green")
#: How long after an alert a two-way dialogue counts as its follow-up (issue 6).
#: The default of the ``report_follow_up_days`` setting (the report passes the setting in).
FOLLOW_UP_DAYS = Settings.model_fields["report_follow_up_days"].default
DEFAULT_PERIOD_WEEKS = 12
TOP_VALUES_AT_RISK = 10
#: An alert case open this many days or more is flagged stale: open for months, nobody closed it.
STALE_CASE_DAYS = 60
#: Customers listed as the period's biggest movers (largest falls in health).
TOP_MOVERS = 5


@dataclass
class Section:
    """One report section's data, or why there is none."""

    data: dict[str, Any] = field(default_factory=dict)
    missing: str = ""  # non-empty: show "no data" with this reason

    @property
    def ok(self) -> bool:
        return not self.missing


class MissingData(Exception):
    """A section cannot be built from this warehouse (the message says why, for the reader)."""


class Marts:
    """Catalogue-aware access to the warehouse: which tables and columns exist."""

    def __init__(self, con: Any):
        self.con = con
        rows = con.execute(
            "select table_schema, table_name, column_name, data_type from information_schema.columns "
            "where table_schema in (?, ?) order by table_schema, table_name, ordinal_position",
            [PUBLISHED, OPS]).fetchall()
        self._columns: dict[str, dict[str, str]] = {}
        for schema, table, column, dtype in rows:
            self._columns.setdefault(f"{schema}.{table}", {})[column.lower()] = dtype.upper()

    def columns(self, table: str) -> dict[str, str]:
        return self._columns.get(table, {})

    def require(self, table: str, *columns: str) -> None:
        cols = self.columns(table)
        if not cols:
            raise MissingData(f"table {table} is not in the warehouse yet")
        absent = [c for c in columns if c not in cols]
        if absent:
            raise MissingData(f"{table} lacks column(s) {', '.join(absent)}")

    def rows(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        cur = self.con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [{name: _stable(value) for name, value in zip(names, row)} for row in cur.fetchall()]

    def scalar(self, sql: str, params: list[Any] | None = None) -> Any:
        row = self.con.execute(sql, params or []).fetchone()
        return _stable(row[0]) if row else None


def _stable(value: Any) -> Any:
    """A float to 12 significant digits: engines that sum in another order differ in the last bits
    (-0.045 against -0.04500000000000001), and the report must print the same figure from each
    (4.5 points rounds to one side only if both sides hold the same number)."""
    return float(f"{value:.12g}") if isinstance(value, float) and math.isfinite(value) else value


HEALTH = f"{PUBLISHED}.fct_customer_health_daily"
CUSTOMERS = f"{PUBLISHED}.dim_customers"
ALERTS = f"{PUBLISHED}.fct_churn_alerts"
TOUCHPOINTS = f"{PUBLISHED}.fct_touchpoints"
MATRIX = f"{PUBLISHED}.fct_loyalty_matrix"
PLATFORM = f"{PUBLISHED}.fct_sales_platform"
ACTIVITY = f"{PUBLISHED}.fct_account_manager_activity"
QUALITY_RUNS = gate_runs.TABLE
#: What the report shows of each run (where the gate keeps its files is no reader's business).
QUALITY_COLUMNS = ("started_at", "stage", "critical", "warnings", "quarantined_rows", "first_failure", "run_id")
FORECAST_AUDIT = f"{PUBLISHED}.fct_forecast_audit"
#: fct_churn_alerts.alert_kind: a churn-risk case, or an action-needed alert (complaint, dunning).
RISK_CASE, ACTION_NEEDED = "risk_case", "action_needed"


def latest_as_of(marts: Marts) -> dt.date | None:
    if "as_of_date" not in marts.columns(HEALTH):
        return None
    return marts.scalar(f"select max(as_of_date) from {HEALTH}")


def resolve_period(marts: Marts, start: dt.date | None, end: dt.date | None) -> tuple[dt.date, dt.date]:
    """Defaults: the 12 weeks up to the latest as-of date in the warehouse (today if it is empty).
    A period that ends before the warehouse's first day is refused: every section would say "no
    data" or count customers that did not exist yet."""
    end = end or latest_as_of(marts) or dt.date.today()
    start = start or end - dt.timedelta(weeks=DEFAULT_PERIOD_WEEKS) + dt.timedelta(days=1)
    if start > end:
        raise ValueError(f"period start {start} is after period end {end}")
    if "as_of_date" in marts.columns(HEALTH):
        first = marts.scalar(f"select min(as_of_date) from {HEALTH}")
        if first is not None and end < first:
            raise PeriodBeforeData(end, first, latest_as_of(marts))
    return start, end


class PeriodBeforeData(ValueError):
    """A report period that ends before the warehouse's first day (``first``)."""

    def __init__(self, end: dt.date, first: dt.date, latest: dt.date | None) -> None:
        super().__init__(f"the period ends on {end}, before the warehouse's first day {first} (its days run "
                         f"to {latest}): choose a period end in that range")
        self.end, self.first = end, first


def _section(builder, *args: Any) -> Section:
    try:
        return Section(data=builder(*args))
    except MissingData as exc:
        return Section(missing=str(exc))


# --- sections ------------------------------------------------------------------------------------

def portfolio(marts: Marts, start: dt.date, end: dt.date) -> dict[str, Any]:
    """Status counts on the last day with data, and a weekly trend over the period."""
    marts.require(HEALTH, "customer_id", "as_of_date", "status", "health_score")
    now = marts.scalar(f"select max(as_of_date) from {HEALTH} where as_of_date <= ?", [end])
    if now is None:
        raise MissingData(f"no health scores on or before {end}")
    counts = {s: 0 for s in STATUSES}
    for row in marts.rows(f"select status, count(*) as n from {HEALTH} where as_of_date = ? "
                          f"group by status", [now]):
        counts[str(row["status"])] = row["n"]
    total = sum(counts.values())
    avg = marts.scalar(f"select avg(health_score) from {HEALTH} where as_of_date = ?", [now])
    # One snapshot per week, ending on the period's last day, so the trend compares like with like.
    days = []
    day = end
    while day >= start:
        days.append(day)
        day -= dt.timedelta(days=7)
    days.reverse()
    trend_rows = marts.rows(
        f"select as_of_date, status, count(*) as n from {HEALTH} "
        f"where as_of_date in ({', '.join('?' for _ in days)}) group by as_of_date, status", days)
    trend: dict[dt.date, dict[str, int]] = {d: {s: 0 for s in STATUSES} for d in days}
    for row in trend_rows:
        trend[row["as_of_date"]][str(row["status"])] = row["n"]
    first = next((d for d in days if sum(trend[d].values())), None)
    return {
        "as_of": now, "counts": counts, "total": total, "avg_health": avg,
        "trend": [{"date": d, **trend[d]} for d in days],
        "change": ({s: counts[s] - trend[first][s] for s in STATUSES} if first else None),
        "change_since": first,
    }


def movers(marts: Marts, since: dt.date, now: dt.date) -> dict[str, Any]:
    """The customers whose health fell most from ``since`` (the trend's first week) to ``now``."""
    marts.require(HEALTH, "customer_id", "as_of_date", "status", "health_score")
    if since >= now:
        raise MissingData("the period has a single week: nothing to compare")
    cols = marts.columns(CUSTOMERS)
    name = "c.customer_name" if "customer_name" in cols else "n.customer_id"
    join = f"left join {CUSTOMERS} c on c.customer_id = n.customer_id" if cols else ""
    if not join:
        name = "n.customer_id"
    rows = marts.rows(
        f"select n.customer_id, {name} as customer_name, t.health_score as health_then, t.status as status_then, "
        f"n.health_score as health_now, n.status as status_now, n.health_score - t.health_score as delta "
        f"from {HEALTH} n join {HEALTH} t on t.customer_id = n.customer_id and t.as_of_date = ? "
        f"{join} where n.as_of_date = ? and n.health_score < t.health_score "
        f"order by delta, n.customer_id limit {TOP_MOVERS}", [since, now])
    return {"rows": rows, "since": since, "now": now}


def health_by(marts: Marts, as_of: dt.date, dimension: str) -> list[dict[str, Any]]:
    """Status mix and mean health per segment or per account manager on ``as_of``."""
    marts.require(HEALTH, "customer_id", "as_of_date", "status", "health_score", dimension)
    label = "h." + dimension
    join = ""
    if dimension == "account_manager_id" and "account_manager_name" in marts.columns(CUSTOMERS):
        # Name the manager as master data does today; a manager without a name keeps the id.
        join = (f"left join (select account_manager_id, max(account_manager_name) as am_name "
                f"from {CUSTOMERS} group by account_manager_id) c using (account_manager_id)")
        label = "coalesce(c.am_name, h.account_manager_id)"
    return marts.rows(
        f"select {label} as label, count(*) as customers, "
        f"count(*) filter (where status = 'red') as red, "
        f"count(*) filter (where status = 'yellow') as yellow, "
        f"count(*) filter (where status = 'green') as green, avg(health_score) as avg_health "
        f"from {HEALTH} h {join} where h.as_of_date = ? group by 1 "
        f"order by red desc, yellow desc, label", [as_of])


def _dialogue_columns(marts: Marts) -> tuple[str, str]:
    """fct_touchpoints' two-way-dialogue flag and event date (its contract's names)."""
    marts.require(TOUCHPOINTS, "customer_id", "is_two_way_dialogue", "event_date")
    return "is_two_way_dialogue", "event_date"


def dialogue_coverage(marts: Marts, as_of: dt.date) -> dict[str, Any]:
    """Share of customers with a two-way dialogue in the trailing 30 and 90 days."""
    flag, date = _dialogue_columns(marts)
    marts.require(CUSTOMERS, "customer_id", "segment")
    marts.require(TOUCHPOINTS, "department")
    window = (f"cast(t.{date} as date) > cast(? as date) - {{days}} "
              f"and cast(t.{date} as date) <= cast(? as date)")
    w30, w90 = window.format(days=30), window.format(days=90)
    total = marts.scalar(f"select count(*) from {CUSTOMERS}") or 0
    if not total:
        raise MissingData("dim_customers is empty")
    by_department = marts.rows(
        f"select t.department as label, "
        f"count(distinct t.customer_id) filter (where {w30}) as d30, "
        f"count(distinct t.customer_id) filter (where {w90}) as d90 "
        f"from {TOUCHPOINTS} t join {CUSTOMERS} c using (customer_id) "
        f"where t.{flag} group by 1 order by d90 desc, label", [as_of, as_of, as_of, as_of])
    by_segment = marts.rows(
        f"select c.segment as label, count(*) as customers, "
        f"count(*) filter (where exists (select 1 from {TOUCHPOINTS} t where t.customer_id = c.customer_id "
        f"and t.{flag} and {w30})) as d30, "
        f"count(*) filter (where exists (select 1 from {TOUCHPOINTS} t where t.customer_id = c.customer_id "
        f"and t.{flag} and {w90})) as d90 "
        f"from {CUSTOMERS} c group by 1 order by label", [as_of, as_of, as_of, as_of])
    for row in by_department:
        row["customers"] = total
    for row in by_department + by_segment:
        row["share30"] = row["d30"] / row["customers"] if row["customers"] else 0.0
        row["share90"] = row["d90"] / row["customers"] if row["customers"] else 0.0
    overall = {
        "customers": total,
        "share30": sum(r["d30"] for r in by_segment) / total,
        "share90": sum(r["d90"] for r in by_segment) / total,
    }
    return {"by_department": by_department, "by_segment": by_segment, "overall": overall}


def sales_platform(marts: Marts, as_of: dt.date) -> dict[str, Any]:
    """Breadth (customer mix), height (revenue vs potential), depth (loyalty) for the latest period.

    ``fct_sales_platform`` has one row per period, segment and country. Revenue and potential are in
    the customers' own currencies, so the report never adds them up: it shows the ratios the mart
    computed per group, and per segment their customer-weighted means.
    """
    marts.require(PLATFORM, "segment", "country", "customers", "breadth_share", "height_potential_share",
                  "depth_loyalty", "period_end_date")
    latest = marts.scalar(f"select max(period_end_date) from {PLATFORM} where period_end_date <= ?", [as_of])
    if latest is None:
        raise MissingData(f"{PLATFORM} has no period up to {as_of}")
    cols = marts.columns(PLATFORM)
    optional = [c for c in ("ambassador_share", "customers_red", "customers_yellow", "customers_green")
                if c in cols]
    rows = marts.rows(
        f"select segment, country, customers, breadth_share, height_potential_share, depth_loyalty"
        f"{''.join(', ' + c for c in optional)} from {PLATFORM} where period_end_date = ? "
        f"order by segment, customers desc, country", [latest])
    if not rows:
        raise MissingData(f"{PLATFORM} is empty for {latest}")
    by_segment: dict[str, dict[str, Any]] = {}
    for row in rows:
        seg = by_segment.setdefault(str(row["segment"]), {"label": str(row["segment"]), "customers": 0,
                                                         "breadth": 0.0, "_h": 0.0, "_hn": 0, "_d": 0.0,
                                                         "_dn": 0})
        n = row["customers"] or 0
        seg["customers"] += n
        seg["breadth"] += row["breadth_share"] or 0.0
        if row["height_potential_share"] is not None:
            seg["_h"] += row["height_potential_share"] * n
            seg["_hn"] += n
        if row["depth_loyalty"] is not None:
            seg["_d"] += row["depth_loyalty"] * n
            seg["_dn"] += n
    segments = []
    for seg in by_segment.values():
        seg["height"] = seg["_h"] / seg["_hn"] if seg["_hn"] else None
        seg["depth"] = seg["_d"] / seg["_dn"] if seg["_dn"] else None
        segments.append({k: v for k, v in seg.items() if not k.startswith("_")})
    return {"period": latest, "rows": rows, "segments": segments, "optional": optional}


def loyalty_matrix(marts: Marts, as_of: dt.date, strong_min: float | None = None) -> dict[str, Any]:
    """Rational against emotional loyalty per customer, with its quadrant.

    ``strong_min``: where "strong" starts on both axes (scoring.yml ``loyalty.strong_min``).
    """
    marts.require(MATRIX, "customer_id", "rational_loyalty", "emotional_loyalty", "quadrant", "period_end_date")
    latest = marts.scalar(f"select max(period_end_date) from {MATRIX} where period_end_date <= ?", [as_of])
    if latest is None:
        raise MissingData(f"{MATRIX} has no rows up to {as_of}")
    name = "c.customer_name" if "customer_name" in marts.columns(CUSTOMERS) else "m.customer_id"
    join = f"left join {CUSTOMERS} c using (customer_id)" if marts.columns(CUSTOMERS) else ""
    if not join:
        name = "m.customer_id"
    rows = marts.rows(
        f"select m.customer_id, {name} as customer_name, cast(m.rational_loyalty as double precision) as rational, "
        f"cast(m.emotional_loyalty as double precision) as emotional, m.quadrant "
        f"from {MATRIX} m {join} where m.period_end_date = ?", [latest])
    rows = [r for r in rows if r["rational"] is not None and r["emotional"] is not None]
    if not rows:
        raise MissingData(f"{MATRIX} has no scored customers")
    counts: dict[str, int] = {}
    for r in rows:
        key = str(r["quadrant"] or "unclassified")
        counts[key] = counts.get(key, 0) + 1
    top = max(max(r["rational"], r["emotional"]) for r in rows)
    scale = 1.0 if top <= 1.0 else 100.0  # scores may be published as 0-1 or 0-100
    return {"points": rows, "quadrants": sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])), "scale": scale,
            "period": latest,
            "strong_min": strong_min if strong_min is not None and strong_min <= scale else scale / 2,
            "at_risk_vs_red": _at_risk_vs_red(marts, rows, as_of)}


def _at_risk_vs_red(marts: Marts, points: list[dict[str, Any]], as_of: dt.date) -> dict[str, Any] | None:
    """How the matrix's 'at risk' quadrant (weak on both loyalties) and the red status overlap.

    They answer different questions: the quadrant is how the customer feels and how well we kept
    our promises (a monthly view); red is the relationship's health today (dialogue, stakeholders,
    service, money, orders). A loyal customer we stopped talking to is red but not 'at risk'; a
    customer who never liked us but is in steady contact is 'at risk' and green.
    """
    status = _status_today(marts, [p["customer_id"] for p in points], as_of)
    if not status:
        return None
    at_risk = [p for p in points if str(p["quadrant"] or "").replace(" ", "_").lower() == "at_risk"]
    red = [p for p in points if str(status.get(p["customer_id"], {}).get("status")) == "red"]
    both = [p for p in at_risk if str(status.get(p["customer_id"], {}).get("status")) == "red"]
    by_status = {s: sum(1 for p in at_risk if str(status.get(p["customer_id"], {}).get("status")) == s)
                 for s in STATUSES}
    red_by_quadrant: dict[str, int] = {}
    for p in red:
        key = str(p["quadrant"] or "unclassified")
        red_by_quadrant[key] = red_by_quadrant.get(key, 0) + 1
    return {"at_risk": len(at_risk), "red": len(red), "both": len(both), "at_risk_by_status": by_status,
            "red_by_quadrant": sorted(red_by_quadrant.items(), key=lambda kv: (-kv[1], kv[0]))}


def account_manager_activity(marts: Marts, start: dt.date, end: dt.date) -> dict[str, Any]:
    """Calls and meetings against plan per account manager over the period, pro-rated to its days.

    The mart is weekly; a week partly inside the period counts with the share of its days inside
    (the plan over the week's 7 days, the actuals over the days its data covers). ``all_below_plan``:
    every manager below plan on every measure, which the report says once in words."""
    marts.require(ACTIVITY, "account_manager_id", "week_start", "calls", "meetings", "calls_planned",
                  "meetings_planned")
    cols = marts.columns(ACTIVITY)
    silent = [c for c in ("customers_no_dialogue_30d", "customers_no_dialogue_60d",
                          "customers_no_dialogue_90d") if c in cols]
    name = "a.account_manager_name" if "account_manager_name" in cols else "a.account_manager_id"
    week_end = "a.week_end_date" if "week_end_date" in cols else "null"
    latest_week = marts.scalar(f"select max(week_start) from {ACTIVITY} where week_start <= ?", [end])
    weeks = marts.rows(
        f"select a.account_manager_id, {name} as name, cast(a.week_start as date) as week_start, "
        f"cast({week_end} as date) as week_end, a.calls, a.meetings, "
        f"a.calls_planned as plan_calls, a.meetings_planned as plan_meetings"
        f"{''.join(f', a.{c}' for c in silent)} "
        f"from {ACTIVITY} a where a.week_start >= ? and a.week_start <= ? "
        f"order by a.account_manager_id, a.week_start",
        [start - dt.timedelta(days=6), end])
    if not weeks:
        raise MissingData(f"{ACTIVITY} has no weeks in the period")
    managers: dict[str, dict[str, Any]] = {}
    for w in weeks:
        # The period rarely starts on a Monday or ends on a Sunday: a week counts with the share of
        # its days inside the period, the plan over all 7 days, the actuals over the days the
        # week's data covers (the current week is not over yet).
        first, last = w["week_start"], w["week_start"] + dt.timedelta(days=6)
        observed_last = min(last, w["week_end"] or last, end)
        in_period = _overlap(first, last, start, end)
        observed = (observed_last - first).days + 1
        actual_share = _overlap(first, observed_last, start, end) / observed if observed > 0 else 0.0
        m = managers.setdefault(w["account_manager_id"], {
            "account_manager_id": w["account_manager_id"], "name": w["name"], "days": 0,
            "calls": 0.0, "meetings": 0.0, "plan_calls": None, "plan_meetings": None})
        m["name"] = w["name"] or m["name"]
        m["days"] += in_period
        m["calls"] += (w["calls"] or 0) * actual_share
        m["meetings"] += (w["meetings"] or 0) * actual_share
        for key in ("plan_calls", "plan_meetings"):
            if w[key] is not None:
                m[key] = (m[key] or 0.0) + w[key] * in_period / 7
        if w["week_start"] == latest_week:
            for c in silent:
                m[c] = w[c]
    rows = sorted(managers.values(), key=lambda r: (str(r["name"]), str(r["account_manager_id"])))
    for r in rows:
        r["weeks"] = r["days"] / 7
        for c in silent:
            r.setdefault(c, None)
        r["calls_ratio"] = (r["calls"] / r["plan_calls"]) if r["plan_calls"] else None
        r["meetings_ratio"] = (r["meetings"] / r["plan_meetings"]) if r["plan_meetings"] else None
    ratios = [r[k] for r in rows for k in ("calls_ratio", "meetings_ratio") if r[k] is not None]
    return {"rows": rows, "silent_columns": silent, "has_plan": True,
            "period_days": _overlap(start, end, start, end),
            "all_below_plan": bool(ratios) and all(x < 1 for x in ratios),
            "calls_range": _ratio_range(rows, "calls_ratio"),
            "meetings_range": _ratio_range(rows, "meetings_ratio")}


def _overlap(first: dt.date, last: dt.date, start: dt.date, end: dt.date) -> int:
    """Days of [first, last] inside [start, end]."""
    return max((min(last, end) - max(first, start)).days + 1, 0)


def _ratio_range(rows: list[dict[str, Any]], key: str) -> tuple[float, float] | None:
    values = [r[key] for r in rows if r[key] is not None]
    return (min(values), max(values)) if values else None


def values_at_risk(marts: Marts, as_of: dt.date, reporting: dict[str, Any] | None = None) -> dict[str, Any]:
    """The open alert episodes with the most value at stake, their drivers and the last contact.

    Ranking and totals are in the reporting currency (``value_at_stake_reporting``, converted in the
    warehouse with the dated rates of scoring.yml ``reporting``); each row keeps its own currency
    too. Each customer's status and drivers *today* (``as_of``) stand next to those of the alert
    date, and a case open for ``STALE_CASE_DAYS`` or more is flagged stale.
    """
    marts.require(ALERTS, "alert_id", "customer_id", "customer_name", "alert_date", "episode_end_date",
                  "value_at_stake", "drivers", "severity", "rule", "suggested_action", "currency",
                  "account_manager_name", "status")
    cols = marts.columns(ALERTS)
    converted = "value_at_stake_reporting" in cols and "reporting_currency" in cols
    value = "value_at_stake_reporting" if converted else "value_at_stake"
    open_sql = (f"from {ALERTS} where alert_date <= ? "
                f"and (episode_end_date is null or episode_end_date > ?)")
    # One row per customer: its most valuable open episode.
    rows = marts.rows(
        f"select * from (select *, row_number() over (partition by customer_id "
        f"order by {value} desc nulls last, alert_date desc) as rn {open_sql}) as ranked "
        f"where rn = 1 order by {value} desc nulls last, customer_id limit {TOP_VALUES_AT_RISK}", [as_of, as_of])
    per_customer = (f"select customer_id, currency, max(value_at_stake) as v, "
                    f"{'max(value_at_stake_reporting)' if converted else 'null'} as r {open_sql} "
                    f"group by customer_id, currency")
    by_currency = marts.rows(
        f"select currency, count(distinct customer_id) as customers, sum(v) as value, sum(r) as reporting "
        f"from ({per_customer}) as per_customer group by currency order by reporting desc nulls last, value desc",
        [as_of, as_of])
    customers = marts.scalar(f"select count(distinct customer_id) {open_sql}", [as_of, as_of]) or 0
    # the customers whose open case says they may already have left (went silent): their value is a
    # win-back's, not a retention's, and a headline that adds it in unsaid overstates what can be kept
    # (counted where the value is: a currency without a rate is out of the total as well)
    gone = marts.rows(
        f"select count(r) as customers, sum(r) as reporting from (select customer_id, "
        f"{'max(value_at_stake_reporting)' if converted else 'null'} as r {open_sql} and customer_id in "
        f"(select customer_id {open_sql} and rule = 'went_silent') group by customer_id) as gone",
        [as_of, as_of, as_of, as_of])[0]
    now = _status_today(marts, [r["customer_id"] for r in rows], as_of)
    last_contact = _last_contact(marts, [r["customer_id"] for r in rows], as_of)
    for r in rows:
        r["last_contact"] = last_contact.get(r["customer_id"])
        r["driver_list"] = _drivers(r["drivers"])
        r["open_days"] = (as_of - r["alert_date"]).days
        r["stale"] = r["open_days"] >= STALE_CASE_DAYS
        r["value_reporting"] = r.get("value_at_stake_reporting") if converted else None
        today = now.get(r["customer_id"])
        r["status_now"] = str(today["status"]) if today else None
        r["health_now"] = today["health_score"] if today else None
        r["driver_list_now"] = _drivers(today.get("drivers")) if today else []
        r["change"] = _status_change(str(r["status"]), r["status_now"])
    currency = (rows[0].get("reporting_currency") if converted and rows else None) \
        or (reporting or {}).get("currency")
    total = None
    if converted:
        total = sum(c["reporting"] or 0.0 for c in by_currency)
    shown_now = [r["status_now"] for r in rows if r["status_now"]]
    return {
        "rows": rows, "totals": by_currency, "customers": customers, "converted": converted,
        "reporting_currency": currency if converted else None,
        "rates_date": (reporting or {}).get("rates_date") if converted else None,
        "total_reporting": total,
        "gone_customers": gone["customers"] or 0, "gone_reporting": gone["reporting"],
        "without_rate": sum(c["customers"] for c in by_currency if converted and c["reporting"] is None),
        "now_counts": {s: shown_now.count(s) for s in STATUSES},
        "changed": sum(1 for r in rows if r["change"] not in ("same", None)),
        "stale": sum(1 for r in rows if r["stale"]),
        "stale_days": STALE_CASE_DAYS,
    }


def _drivers(text: Any) -> list[str]:
    """One list item per driver; a ``;`` inside parentheses stays in its driver (``drivers_list``)."""
    return drivers_list(text)


_RANK = {"green": 0, "yellow": 1, "red": 2}


def _status_change(then: str, now: str | None) -> str | None:
    """worse / better / same, from the alert date's status to today's (None: not scored today)."""
    if now is None or then not in _RANK or now not in _RANK:
        return None
    return "worse" if _RANK[now] > _RANK[then] else "better" if _RANK[now] < _RANK[then] else "same"


def _status_today(marts: Marts, customer_ids: list[str], as_of: dt.date) -> dict[str, dict[str, Any]]:
    """Each customer's status, health and drivers on ``as_of`` (the report's "now")."""
    cols = marts.columns(HEALTH)
    if not customer_ids or not {"customer_id", "as_of_date", "status", "health_score"} <= set(cols):
        return {}
    drivers = "drivers" if "drivers" in cols else "null as drivers"
    rows = marts.rows(
        f"select customer_id, status, health_score, {drivers} from {HEALTH} where as_of_date = ? "
        f"and customer_id in ({', '.join('?' for _ in customer_ids)})", [as_of, *customer_ids])
    return {r["customer_id"]: r for r in rows}


def _last_contact(marts: Marts, customer_ids: list[str], as_of: dt.date) -> dict[str, dict[str, Any]]:
    """Latest touchpoint per customer up to ``as_of`` with its note (leadership sees the last word)."""
    if not customer_ids:
        return {}
    try:
        _, date = _dialogue_columns(marts)
    except MissingData:
        return {}
    cols = marts.columns(TOUCHPOINTS)
    extra = ", ".join(f"{c}" for c in ("event_type", "department", "note") if c in cols)
    if not extra:
        return {}
    order = "occurred_at" if "occurred_at" in cols else date
    rows = marts.rows(
        f"select customer_id, cast({date} as date) as day, {extra} from (select *, row_number() over "
        f"(partition by customer_id order by {order} desc) as rn from {TOUCHPOINTS} "
        f"where customer_id in ({', '.join('?' for _ in customer_ids)}) and cast({date} as date) <= ?) as ranked "
        f"where rn = 1", [*customer_ids, as_of])
    return {r["customer_id"]: r for r in rows}


def forecast_audit(marts: Marts, end: dt.date) -> dict[str, Any]:
    """The company's forecast as stated against as audited, from ``fct_forecast_audit`` if published.

    ``quarter``: the latest quarter (starting by ``end``) whose opening pipeline was valued: its value
    weighted by the stated probabilities and by each manager's track record. ``track_record``: the
    mean stated probability of the deals closed in the track-record window against the share won,
    and the audit's judgement. Raises MissingData when the mart (or both parts) is not there.
    """
    marts.require(FORECAST_AUDIT, "scope", "period_type", "period_start")
    cols = marts.columns(FORECAST_AUDIT)
    out: dict[str, Any] = {"reporting_currency": None}
    currency = "reporting_currency" if "reporting_currency" in cols else "null"
    if {"pipeline_stated_value", "pipeline_track_record_value"} <= set(cols):
        rows = marts.rows(
            f"select period_start, pipeline_stated_value as stated, pipeline_track_record_value as audited, "
            f"{currency} as currency from {FORECAST_AUDIT} where scope = 'company' and period_type = 'quarter' "
            f"and period_start <= ? and pipeline_stated_value is not null "
            f"and pipeline_track_record_value is not null order by period_start desc limit 1", [end])
        if rows:
            out["quarter"] = rows[0]
            out["reporting_currency"] = rows[0]["currency"]
    if {"stated_mean", "realised_rate", "closed_deals"} <= set(cols):
        judgement = "judgement" if "judgement" in cols else "null"
        rows = marts.rows(
            f"select period_start, period_end, stated_mean, realised_rate, closed_deals, {judgement} as judgement "
            f"from {FORECAST_AUDIT} where scope = 'company' and period_type = 'track_record' "
            f"and stated_mean is not null order by period_end desc limit 1")
        if rows:
            out["track_record"] = rows[0]
    if "quarter" not in out and "track_record" not in out:
        raise MissingData(f"{FORECAST_AUDIT} has no company figures yet")
    return out


def alert_follow_up(marts: Marts, start: dt.date, end: dt.date,
                    follow_up_days: int = FOLLOW_UP_DAYS) -> dict[str, Any]:
    """Alerts raised in the period, and how many a two-way dialogue followed within
    ``follow_up_days`` days (the ``report_follow_up_days`` setting)."""
    days = int(follow_up_days)
    marts.require(ALERTS, "alert_id", "customer_id", "alert_date", "severity", "rule")
    flag, date = _dialogue_columns(marts)
    # Churn-risk cases and action-needed alerts (complaints, dunning) are kept apart by alert_kind;
    # a mart without the column cannot tell them apart, and the report then says "alerts" only.
    kinds = "alert_kind" in marts.columns(ALERTS)
    rows = marts.rows(
        f"select a.alert_id, a.alert_date, a.severity, a.rule, "
        f"{'a.alert_kind' if kinds else 'null'} as alert_kind, "
        f"exists (select 1 from {TOUCHPOINTS} t where t.customer_id = a.customer_id and t.{flag} "
        f"and cast(t.{date} as date) > a.alert_date "
        f"and cast(t.{date} as date) <= a.alert_date + {days} "
        f"and cast(t.{date} as date) <= ?) as followed "
        f"from {ALERTS} a where a.alert_date between ? and ?", [end, start, end])
    raised = len(rows)
    followed = sum(1 for r in rows if r["followed"])
    # Alerts younger than the follow-up window that have no dialogue yet are not failures (yet).
    pending = sum(1 for r in rows if not r["followed"]
                  and (end - r["alert_date"]).days < days)
    by_severity: dict[str, dict[str, int]] = {}
    by_rule: dict[str, dict[str, int]] = {}
    for r in rows:
        for key, table in ((str(r["severity"]), by_severity), (str(r["rule"]), by_rule)):
            entry = table.setdefault(key, {"raised": 0, "followed": 0})
            entry["raised"] += 1
            entry["followed"] += int(bool(r["followed"]))
    order = {"high": 0, "medium": 1, "low": 2}
    return {
        "raised": raised, "followed": followed, "pending": pending, "follow_up_days": days,
        "by_kind": ({"risk_case": sum(1 for r in rows if r["alert_kind"] == RISK_CASE),
                     "action_needed": sum(1 for r in rows if r["alert_kind"] == ACTION_NEEDED)}
                    if kinds else None),
        "not_followed": raised - followed - pending,
        "share": followed / (raised - pending) if raised - pending else None,
        "by_severity": sorted(by_severity.items(), key=lambda kv: order.get(kv[0], 9)),
        "by_rule": sorted(by_rule.items(), key=lambda kv: -kv[1]["raised"]),
    }


def quality_status(marts: Marts, start: dt.date, end: dt.date) -> dict[str, Any]:
    """Quality-gate runs of the period, as the pipeline recorded them in ops.quality_runs
    (``loyalty_monitor.gate_runs``).

    A run belongs to the period if it ran then (or the morning after its last day), or if it
    judged data of the period: backfills and the demo check a whole history in one run."""
    if not marts.columns(QUALITY_RUNS):
        raise MissingData("no quality runs recorded")
    marts.require(QUALITY_RUNS, *gate_runs.COLUMNS)
    where = ("where cast(started_at as date) between ? and ? or (scope_start <= ? and scope_end >= ?)")
    params = [start, end + dt.timedelta(days=1), end, start]
    counts = marts.rows(f"select count(*) as runs, sum(case when passed then 1 else 0 end) as passed "
                        f"from {QUALITY_RUNS} {where}", params)[0]
    runs = int(counts["runs"] or 0)
    if not runs:
        raise MissingData("no quality runs recorded in this period")
    latest = marts.rows(f"select {', '.join(QUALITY_COLUMNS)}, passed from {QUALITY_RUNS} {where} "
                        f"order by started_at desc, run_id limit 10", params)
    for row in latest:
        row["_outcome"] = bool(row.pop("passed"))
    passed = int(counts["passed"] or 0)
    return {"runs": runs, "passed": passed, "failed": runs - passed, "latest": latest,
            "columns": list(QUALITY_COLUMNS)}


#: The sections ``collect`` reads, in order (what a progress display counts).
SECTIONS = ("portfolio", "movers", "by_segment", "by_manager", "coverage", "platform", "matrix", "activity",
            "at_risk", "alerts", "quality", "forecast_summary")


def collect(con: Any, start: dt.date | None, end: dt.date | None, strong_min: float | None = None,
            reporting: dict[str, Any] | None = None,
            follow_up_days: int = FOLLOW_UP_DAYS,
            on_section: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Everything the template renders, section by section.

    ``reporting``: scoring.yml ``reporting`` (currency, rates_date).
    ``forecast_summary`` (the summary's forecast figures) only when the forecast audit is published.
    ``on_section(name)`` is called before each section of ``SECTIONS`` is read (progress).
    """
    marts = Marts(con)
    start, end = resolve_period(marts, start, end)
    say = on_section or (lambda name: None)
    say("portfolio")
    folio = _section(portfolio, marts, start, end)
    as_of = folio.data["as_of"] if folio.ok else end
    since = folio.data["change_since"] if folio.ok else None
    context: dict[str, Any] = {"period_start": start, "period_end": end, "as_of": as_of,
                               "follow_up_days": follow_up_days, "portfolio": folio}
    sections: dict[str, Callable[[], Section]] = {
        "movers": lambda: (_section(movers, marts, since, as_of) if since else
                           Section(missing=folio.missing or "the period has no earlier week to compare with")),
        "by_segment": lambda: _section(lambda: {"rows": _nonempty(health_by(marts, as_of, "segment"))}),
        "by_manager": lambda: _section(lambda: {"rows": _nonempty(health_by(marts, as_of, "account_manager_id"))}),
        "coverage": lambda: _section(dialogue_coverage, marts, as_of),
        "platform": lambda: _section(sales_platform, marts, as_of),
        "matrix": lambda: _section(loyalty_matrix, marts, as_of, strong_min),
        "activity": lambda: _section(account_manager_activity, marts, start, end),
        "at_risk": lambda: _section(values_at_risk, marts, as_of, reporting),
        "alerts": lambda: _section(alert_follow_up, marts, start, end, follow_up_days),
        "quality": lambda: _section(quality_status, marts, start, end),
    }
    for name, build in sections.items():
        say(name)
        context[name] = build()
    say("forecast_summary")
    if marts.columns(FORECAST_AUDIT):
        context["forecast_summary"] = _section(forecast_audit, marts, end)
    return context


def _nonempty(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not rows:
        raise MissingData("no health scores on the report date")
    return rows
