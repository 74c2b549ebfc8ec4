"""What the figures keep of an erased customer: its churn (month, account manager, reason, whether it
had a case), read from the warehouse and the landing zone before the customer is erased."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pyarrow.compute as pc

from loyalty_core import marts
from loyalty_core.settings import Settings
from loyalty_monitor import warehouse
from loyalty_monitor.erasure.landing import _dataset_of, _duckdb_rows, _order_at, _read, _string_array
from loyalty_monitor.erasure.subjects import Subject, _aware

log = logging.getLogger(__name__)
UTC = dt.timezone.utc


#: How far back a case counts as "had a case" before a churn day (case_feedback.recall_lookback_days
#: in config/scoring.yml; the same default as dbt_project/macros/case_feedback.sql).
RECALL_LOOKBACK_DAYS = 365


CHURN_REASONS = ("tombstoned", "orders_stopped", "closed_lost")


def _lookback_days(settings: Settings) -> int:
    try:
        # optional: the caller handles its absence
        from loyalty_monitor import scoring

        section = scoring.load_scoring(settings.scoring_file).get("case_feedback") or {}
        return int(section.get("recall_lookback_days", RECALL_LOOKBACK_DAYS))
    except Exception:  # noqa: BLE001 - the default, as dbt's macro has it
        return RECALL_LOOKBACK_DAYS


def _warehouse_churn(settings: Settings, ids: list[str]) -> dict[str, dict[str, Any]]:
    """customer_id -> its account manager, its churn as the last build saw it (int_case_churn, if
    it had churned) and its cases' opening days, read from the warehouse before it is erased."""

    if not ids:
        return {}
    if marts.engine_of(settings) == "duckdb":
        if not settings.warehouse.exists():
            return {}

        warehouse.release_duckdb()  # dbt-duckdb keeps the file open after an in-process run
    out: dict[str, dict[str, Any]] = {c: {"cases": []} for c in ids}
    marks = ", ".join("?" * len(ids))
    try:
        reader = marts.open_marts(settings)
    except Exception as exc:  # noqa: BLE001 - no warehouse yet: nothing was built about them
        log.warning("erasure: cannot read the warehouse for the churn record: %s", exc)
        return {}
    try:
        for schema in ("published", "build"):  # the build's is newer; it wins
            if reader.table_exists(schema, "dim_customers"):
                for row in reader.query(f"select customer_id, account_manager_id from {schema}.dim_customers "
                                        f"where customer_id in ({marks})", ids):
                    if row["account_manager_id"] is not None:
                        out[row["customer_id"]]["account_manager_id"] = row["account_manager_id"]
        if reader.table_exists("build", "fct_case_lifecycle"):
            for row in reader.query(f"select customer_id, opened_on from build.fct_case_lifecycle "
                                    f"where customer_id in ({marks})", ids):
                out[row["customer_id"]]["cases"].append(row["opened_on"])
        if reader.table_exists("build", "int_case_churn"):
            for row in reader.query(f"select customer_id, account_manager_id, churned_on, churn_reason, had_case "
                                    f"from build.int_case_churn where customer_id in ({marks})", ids):
                out[row["customer_id"]]["churned"] = row
    except Exception as exc:  # noqa: BLE001 - an older warehouse: tombstoned facts only
        log.warning("erasure: could not read every churn fact from the warehouse: %s", exc)
    finally:
        reader.close()
    return out


def _landed_managers(zone: Any, files: list[str], ids: list[str]) -> dict[str, str]:
    """customer_id -> account manager of its newest landed master-data record (customers never built)."""
    customers = [p for p in files if _dataset_of(zone, p) == "customers"]
    found: dict[str, tuple] = {}
    rows = _duckdb_rows(zone, customers, "customer_id, account_manager_id, updated_at",
                        "customer_id in (select unnest($ids)) and not coalesce(is_deleted, false) "
                        "and account_manager_id is not null", {"ids": ids})
    if rows is None:

        rows = []
        for path in customers:
            table = _read(zone, path)
            if "account_manager_id" not in table.column_names:
                continue
            table = table.filter(pc.is_in(table.column("customer_id"), value_set=_string_array(ids)))
            deleted = table.column("is_deleted").to_pylist() if "is_deleted" in table.column_names else [False] * table.num_rows
            for cid, manager, at, gone in zip(table.column("customer_id").to_pylist(),
                                           table.column("account_manager_id").to_pylist(),
                                           _order_at(table), deleted):
                if manager is not None and not gone:
                    rows.append((cid, manager, at))
    for customer_id, manager, at in rows:
        at = _aware(at) or dt.datetime.min.replace(tzinfo=UTC)
        if customer_id not in found or at >= found[customer_id][1]:
            found[customer_id] = (manager, at)
    return {c: m for c, (m, _) in found.items()}


def _churn_records(settings: Settings, targets: dict[str, Subject], zone: Any, files: list[str],
                   known: dict[str, dt.datetime]) -> dict[str, dict[str, Any]]:
    """customer_id -> what the register keeps of its churn (module doc): only for a customer erased
    for the first time (not a replay, not one a newer master-data record re-created) whose account
    manager is known. A customer that had churned before (orders stopped, a case closed lost, as
    of the last build) keeps that churn; any other churned the day it was erased (tombstoned)."""
    ids = sorted(c for c, s in targets.items()
                 if s.reason in ("tombstone", "request") and s.subject not in known and not s.recreated)
    if not ids:
        return {}
    facts = _warehouse_churn(settings, ids)
    missing = [c for c in ids if not facts.get(c, {}).get("account_manager_id")]
    landed = _landed_managers(zone, files, missing) if missing else {}
    lookback = dt.timedelta(days=_lookback_days(settings))
    out: dict[str, dict[str, Any]] = {}
    for customer_id in ids:
        fact = facts.get(customer_id, {"cases": []})
        erased_on = targets[customer_id].erased_through.astimezone(UTC).date()
        before = fact.get("churned")
        if before is not None and before["churned_on"] is not None and before["churned_on"] <= erased_on:
            churned_on, reason = before["churned_on"], before["churn_reason"]
            manager = before["account_manager_id"] or fact.get("account_manager_id")
            had_case = bool(before["had_case"])
        else:
            churned_on, reason = erased_on, "tombstoned"
            manager = fact.get("account_manager_id") or landed.get(customer_id)
            had_case = any(o is not None and churned_on - lookback <= o <= churned_on for o in fact["cases"])
        if manager is None or reason not in CHURN_REASONS:
            continue  # never in master data: it had no account manager to count under
        out[customer_id] = {"month_start": churned_on.replace(day=1).isoformat(),
                            "account_manager_id": str(manager), "churn_reason": reason, "had_case": had_case}
    return out
