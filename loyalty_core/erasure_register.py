"""The erasure register: who asked to erase which customer (as a keyed hash) and when, and what the
figures keep of erased customers (their churn, counted, read by dbt's ``stg_erasure__churn``).

At the bottom because three parts read it: the erasure (``loyalty_monitor.erasure``) writes it, the
dead-letter replays and export (``streaming.dead_letters``) leave an erased customer out, and the warehouse
hands the churn counts file to dbt. It imports nothing but the settings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import secrets
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from loyalty_core.files import replace_with
from loyalty_core.settings import Settings

log = logging.getLogger(__name__)

REGISTER_DIR = "erasure"
KEY_FILE = "key"
LOG_FILE = "erasures.jsonl"
#: Erased customers that churned, counted per month, manager and reason (read by dbt).
CHURN_FILE = "erased_churn.parquet"


# --- the register: keyed hashes, who, when, what --------------------------------------------------

def register_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / REGISTER_DIR


def _register_path(settings: Settings) -> Path:
    return register_dir(settings) / LOG_FILE


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def subject_key(settings: Settings) -> bytes:
    """The installation's secret for keyed hashes of customer ids (created on first use, mode 0600).

    Back it up with the data directory: without it an erased customer's rows that reach the
    landing zone again (a replay) can no longer be recognised.
    """
    path = _private_dir(register_dir(settings)) / KEY_FILE
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        key = secrets.token_bytes(32)
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


def pseudonym(key: bytes, customer_id: str) -> str:
    """The keyed hash that stands for a customer in the erasure register."""
    return "hmac-sha256:" + hmac.new(key, customer_id.encode("utf-8"), hashlib.sha256).hexdigest()


def erasure_log(settings: Settings) -> list[dict[str, Any]]:
    """Every line of the register, oldest first."""
    try:
        lines = _register_path(settings).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:  # a line cut short by a crash: the erasure is redone from its tombstone
            log.warning("erasure register: skipping an unreadable line")
    return out


def erased_subjects(settings: Settings) -> dict[str, dt.datetime]:
    """Keyed hash -> the newest instant up to which that customer is erased."""
    out: dict[str, dt.datetime] = {}
    for entry in erasure_log(settings):
        if entry.get("event") != "requested":
            continue
        through = dt.datetime.fromisoformat(entry["erased_through"])
        subject = entry["subject"]
        if subject not in out or through > out[subject]:
            out[subject] = through
    return out


def _append(settings: Settings, entries: list[dict[str, Any]]) -> None:
    if not entries:
        return
    path = _private_dir(register_dir(settings)) / LOG_FILE
    data = "".join(json.dumps(e, sort_keys=True, default=str) + "\n" for e in entries).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def erasures(settings: Settings) -> list[dict[str, Any]]:
    """One row per erasure: its request joined with its completion (``completed_at`` None while
    unfinished), oldest first. No personal data: the customer appears as its keyed hash."""
    rows: dict[str, dict[str, Any]] = {}
    for entry in erasure_log(settings):
        erasure_id = entry.get("erasure_id")
        if not erasure_id:
            continue
        row = rows.setdefault(erasure_id, {"erasure_id": erasure_id, "completed_at": None, "removed": {}})
        if entry.get("event") == "requested":
            row.update({k: entry.get(k) for k in ("subject", "requested_by", "requested_at", "reason",
                                                   "erased_through", "source", "churn")})
        elif entry.get("event") == "completed":
            row.update(completed_at=entry.get("completed_at"), removed=entry.get("removed", {}))
    return list(rows.values())


# --- what the figures keep of an erased customer -------------------------------------------------

def churn_counts_path(settings: Settings) -> Path:
    return register_dir(settings) / CHURN_FILE


def erased_churn_counts(settings: Settings) -> list[dict[str, Any]]:
    """Erased customers that churned, per month, account manager and reason: ``month_start``,
    ``account_manager_id``, ``churn_reason``, ``customers``, ``with_case``. From the register's
    ``churn`` records, one per erased customer (its first erasure; a replay records none)."""
    counted: set[str] = set()
    counts: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for entry in erasure_log(settings):
        churn = entry.get("churn")
        if entry.get("event") != "requested" or not churn or entry.get("subject") in counted:
            continue
        counted.add(entry.get("subject"))
        key = (churn["month_start"], churn.get("account_manager_id"), churn["churn_reason"])
        counts[key][0] += 1
        counts[key][1] += 1 if churn.get("had_case") else 0
    return [{"month_start": month, "account_manager_id": manager, "churn_reason": reason,
             "customers": n, "with_case": with_case}
            for (month, manager, reason), (n, with_case) in sorted(counts.items(), key=lambda kv: (kv[0][0], str(kv[0][1]), kv[0][2]))]


def write_churn_counts(settings: Settings) -> Path:
    """(Re)write ``<data_dir>/erasure/erased_churn.parquet`` from the register (atomically; empty,
    with its columns, when no erased customer churned): what dbt reads (stg_erasure__churn)."""
    rows = erased_churn_counts(settings)
    schema = pa.schema([("month_start", pa.date32()), ("account_manager_id", pa.string()),
                        ("churn_reason", pa.string()), ("customers", pa.int32()), ("with_case", pa.int32())])
    table = pa.Table.from_pylist(
        [{**r, "month_start": dt.date.fromisoformat(r["month_start"])} for r in rows], schema=schema)
    path = _private_dir(register_dir(settings)) / CHURN_FILE
    replace_with(path, lambda fh: pq.write_table(table, fh), durable=True)
    return path


def ensure_churn_counts(settings: Settings) -> Path:
    """The churn counts file, written from the register if it is missing (dbt always finds it)."""
    path = churn_counts_path(settings)
    return path if path.exists() else write_churn_counts(settings)
