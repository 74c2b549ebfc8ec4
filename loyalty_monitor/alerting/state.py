"""``ops.alert_state``: one row per alert episode and channel, the idempotency record of delivery.

A row with status ``sent``, ``capped``, ``expired`` or ``undeliverable`` (the message cannot be
rendered for the channel: no retry can change that) is final: no later run (retry, rerun, backfill)
notifies about that alert on that channel again. ``failed`` rows are retried by the next dispatch
while the alert is inside the dispatch window. An alert with no row for a channel is pending (not
handled yet, or left for the next run because its channel was paused).
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

STATE_TABLE = "ops.alert_state"
STATUSES = ("sent", "failed", "expired", "capped", "undeliverable")
FINAL_STATUSES = ("sent", "capped", "expired", "undeliverable")

DDL = f"""
create schema if not exists ops;
create table if not exists {STATE_TABLE} (
    alert_id varchar not null,
    channel varchar not null,
    status varchar not null,            -- sent | failed | expired | capped | undeliverable
    first_attempt_at timestamp,         -- UTC
    sent_at timestamp,                  -- UTC, when status became sent
    attempts integer not null default 0,
    last_error varchar,
    recipient varchar,
    account_manager_id varchar,         -- copied from the alert so that the weekly cap and
    alert_date date,                    -- `loyalty alerts list` survive a rebuilt mart
    value_at_stake double precision,
    updated_at timestamp not null,      -- UTC
    primary key (alert_id, channel)
);
"""


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def ensure_table(con: Any) -> None:
    con.execute(DDL)


@dataclass
class StateRow:
    alert_id: str
    channel: str
    status: str
    first_attempt_at: dt.datetime | None
    sent_at: dt.datetime | None
    attempts: int
    last_error: str | None
    recipient: str | None
    account_manager_id: str | None
    alert_date: dt.date | None
    value_at_stake: float | None


def load(con: Any) -> dict[tuple[str, str], StateRow]:
    ensure_table(con)
    rows = con.execute(
        f"select alert_id, channel, status, first_attempt_at, sent_at, attempts, last_error, recipient,"
        f" account_manager_id, alert_date, value_at_stake from {STATE_TABLE}").fetchall()
    return {(r[0], r[1]): StateRow(*r) for r in rows}


def record(con: Any, row: StateRow) -> None:
    """Insert or update one row (upsert on alert_id + channel)."""
    con.execute(
        f"""insert into {STATE_TABLE} (alert_id, channel, status, first_attempt_at, sent_at, attempts,
                last_error, recipient, account_manager_id, alert_date, value_at_stake, updated_at)
            values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            on conflict (alert_id, channel) do update set
                status = excluded.status, first_attempt_at = excluded.first_attempt_at,
                sent_at = excluded.sent_at, attempts = excluded.attempts,
                last_error = excluded.last_error, recipient = excluded.recipient,
                account_manager_id = excluded.account_manager_id, alert_date = excluded.alert_date,
                value_at_stake = excluded.value_at_stake, updated_at = excluded.updated_at""",
        [row.alert_id, row.channel, row.status, row.first_attempt_at, row.sent_at, row.attempts,
         row.last_error, row.recipient, row.account_manager_id, row.alert_date, row.value_at_stake,
         utcnow()])


class StateWriter:
    """Buffers outcome rows and writes them in one upsert per ``batch`` rows (or ``max_seconds``):
    a single-row upsert per alert made dispatch several times slower than delivery itself.
    Buffered rows are facts (a message went out or did not), so they are written on any exit,
    errors included; only a killed process can lose the last batch, and those alerts are then
    sent again (at least once, never lost).
    """

    COLUMNS = ("alert_id", "channel", "status", "first_attempt_at", "sent_at", "attempts", "last_error",
               "recipient", "account_manager_id", "alert_date", "value_at_stake")

    def __init__(self, con: Any, batch: int = 200, max_seconds: float = 2.0):

        self.con, self.batch, self.max_seconds = con, batch, max_seconds
        self._clock = time.monotonic
        self.buffer: list[StateRow] = []
        self.opened = 0.0

    def __enter__(self) -> "StateWriter":
        ensure_table(self.con)
        return self

    def record(self, row: StateRow) -> None:
        if not self.buffer:
            self.opened = self._clock()
        self.buffer.append(row)
        if len(self.buffer) >= self.batch or self._clock() - self.opened >= self.max_seconds:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return

        latest = {(r.alert_id, r.channel): r for r in self.buffer}  # one row per key per statement
        now = utcnow()
        columns = ", ".join((*self.COLUMNS, "updated_at"))
        updates = ", ".join(f"{c} = excluded.{c}" for c in (*self.COLUMNS[2:], "updated_at"))
        if getattr(self.con, "engine", "duckdb") in ("postgres", "spark"):  # loyalty_core.marts readers
            self.con.executemany(
                f"insert into {STATE_TABLE} ({columns}) values ({', '.join('?' * (len(self.COLUMNS) + 1))}) "
                f"on conflict (alert_id, channel) do update set {updates}",
                [[getattr(r, c) for c in self.COLUMNS] + [now] for r in latest.values()])
            self.buffer = []
            return
        batch = pa.table({  # noqa: F841 - read by DuckDB's replacement scan below
            **{c: [getattr(r, c) for r in latest.values()] for c in self.COLUMNS},
            "updated_at": [now] * len(latest)})
        raw = getattr(self.con, "con", self.con)  # a DuckDBMarts, or a DuckDB connection
        # called from this frame, so that the replacement scan finds `batch`
        raw.execute(f"insert into {STATE_TABLE} ({columns}) select {columns} from batch "
                    f"on conflict (alert_id, channel) do update set {updates}")
        self.buffer = []

    def __exit__(self, *exc: object) -> None:
        self.flush()
