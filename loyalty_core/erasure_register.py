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

from loyalty_core.files import create_once, replace_with
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


class RegisterError(RuntimeError):
    """The erasure register cannot be used as it is (its key lost or cut short, lines unreadable):
    the message names the file and what to do. Nothing was erased or recorded."""


#: Bytes of the key; a key file holding fewer was cut short.
KEY_BYTES = 32
#: Where the message on a lost key points to (how to back up and restore the register).
BACKUP_DOC = 'docs/operations.md, "Erasure: backing up the register"'


def subject_key(settings: Settings) -> bytes:
    """The installation's secret for keyed hashes of customer ids (created on first use, mode 0600).

    Back it up with the data directory: without it an erased customer's rows that reach the
    landing zone again (a replay) can no longer be recognised. So a new key is made only while the
    register records nothing: with erasures recorded, a missing or cut-short key is a
    :class:`RegisterError` saying to restore it from the backup, never a new key under which the
    recorded keyed hashes match no one and the erased customers' rows would stay.
    """
    directory = _private_dir(register_dir(settings))
    path = directory / KEY_FILE
    try:
        key: bytes | None = path.read_bytes()
    except FileNotFoundError:
        key = None
    if key is not None and len(key) >= KEY_BYTES:
        return key
    recorded = len(_register_lines(settings)[0])
    if key is None and not recorded:
        made = secrets.token_bytes(KEY_BYTES)
        # written whole, then linked into place: no process ever reads a key file cut short
        if create_once(path, made):
            return made
        key = path.read_bytes()  # another process made it first
        if len(key) >= KEY_BYTES:
            return key
    register = _register_path(settings)
    what = "is missing" if key is None else f"holds {len(key)} bytes instead of {KEY_BYTES} (cut short)"
    if recorded:
        raise RegisterError(
            f"the erasure key {path} {what}, but the erasure register {register} records {recorded} line(s) "
            "keyed with it: with a new key the erased customers would no longer be recognised, and their rows "
            f"that land again would stay. Restore {path} from the backup of the data directory ({BACKUP_DOC}); "
            "no new key is made while the register has entries. Nothing was erased or changed")
    raise RegisterError(
        f"the erasure key {path} {what}, and the erasure register {register} records no erasure: if a backup "
        f"of the data directory has this key, restore it from there ({BACKUP_DOC}); if none does, delete {path} "
        "to have a new key made. Nothing was erased or changed")


def pseudonym(key: bytes, customer_id: str) -> str:
    """The keyed hash that stands for a customer in the erasure register."""
    return "hmac-sha256:" + hmac.new(key, customer_id.encode("utf-8"), hashlib.sha256).hexdigest()


def _register_lines(settings: Settings) -> tuple[list[str], list[int]]:
    """The register's lines that are not blank, and the line numbers (from 1) of those that are not
    a JSON object (a line cut short by a crash, a line damaged by hand)."""
    try:
        text = _register_path(settings).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return [], []
    lines, unreadable = [], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        lines.append(line)
        try:
            if not isinstance(json.loads(line), dict):
                unreadable.append(number)
        except ValueError:
            unreadable.append(number)
    return lines, unreadable


def unreadable_lines(settings: Settings) -> list[int]:
    """The line numbers (from 1) of the register's lines that cannot be read: each may be an erasure
    that is no longer known (``loyalty erasures`` says so, docs/operations.md)."""
    return _register_lines(settings)[1]


def register_path(settings: Settings) -> Path:
    """``<data_dir>/erasure/erasures.jsonl``: the register itself."""
    return _register_path(settings)


def erasure_log(settings: Settings) -> list[dict[str, Any]]:
    """Every line of the register, oldest first."""
    lines, unreadable = _register_lines(settings)
    out = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    if unreadable:  # a line cut short by a crash: an erasure from a tombstone is redone from it
        log.warning("erasure register %s: %d unreadable line(s) skipped (line %s); `loyalty erasures` says "
                    "what to do", _register_path(settings), len(unreadable), ", ".join(map(str, unreadable[:10])))
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
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            # the last line was cut short by a crash: without a line break the new entry would be
            # glued to it, and unreadable with it
            data = b"\n" + data
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
