"""Alert dispatch: from ``published.fct_churn_alerts`` to each customer's account manager.

Rules (docs/design.md "Alerts", docs/operations.md):
- alerts whose ``alert_date`` lies in ``(as_of - dispatch_window_days, as_of]`` are due; older ones
  that were never handled are recorded ``expired`` (a backfill does not flood anyone with old news);
- at most ``alerts.max_per_manager_per_week`` alerts per account manager and ISO week of the alert
  date are admitted, highest expected value at risk first (probability x value at stake in the
  reporting currency, ``messages.rank_key``); the rest are recorded ``capped``;
- each admitted alert is delivered at least once per channel, with retries and exponential backoff
  inside one dispatch; ``ops.alert_state`` (alert_id + channel) makes reruns send nothing twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from loyalty_monitor.alerting import state as alert_state
from loyalty_monitor.alerting.channels import Channel, DeliveryError, build_channels
from loyalty_monitor.alerting.messages import ALERT_COLUMNS, Message, rank_key, render_alerts, render_notice
from loyalty_monitor.settings import Settings

log = logging.getLogger(__name__)

ALERTS_TABLE = "published.fct_churn_alerts"


class AlertDeliveryError(RuntimeError):
    """Some alerts could not be delivered after all attempts (they are recorded as ``failed``)."""


@dataclass(frozen=True)
class AlertPolicy:
    dispatch_window_days: int = 7
    max_per_manager_per_week: int = 3


def load_policy(settings: Settings) -> AlertPolicy:
    """The ``alerts:`` section of config/scoring.yml (user-edited), with defaults for missing keys."""
    from loyalty_monitor import scoring

    section = scoring.load_scoring(settings.scoring_file).get("alerts") or {}
    defaults = AlertPolicy()
    return AlertPolicy(
        dispatch_window_days=int(section.get("dispatch_window_days", defaults.dispatch_window_days)),
        max_per_manager_per_week=int(section.get("max_per_manager_per_week",
                                                 defaults.max_per_manager_per_week)))


@dataclass
class DispatchResult:
    as_of: dt.date
    window_start: dt.date  # exclusive
    sent: int = 0
    failed: int = 0
    capped: int = 0
    expired: int = 0
    already_done: int = 0
    messages: int = 0
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"alerts for {self.as_of} (window after {self.window_start}): {self.sent} sent in "
                f"{self.messages} messages, {self.failed} failed, {self.capped} capped, "
                f"{self.expired} expired, {self.already_done} already handled")


def connect(settings: Settings, read_only: bool = False) -> Any:
    import duckdb

    path = settings.warehouse
    if read_only and not path.exists():
        raise FileNotFoundError(f"no warehouse at {path}: run the pipeline first (`loyalty run`)")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        return duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        raise RuntimeError(f"cannot open the warehouse {path} (is another process writing it?): {exc}") from exc


def _rows(cursor: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _table_exists(con: Any, qualified: str) -> bool:
    schema, table = qualified.split(".")
    return bool(con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table]).fetchone()[0])


def read_alerts(con: Any, as_of: dt.date) -> list[dict[str, Any]]:
    if not _table_exists(con, ALERTS_TABLE):
        raise RuntimeError(f"{ALERTS_TABLE} does not exist: publish the warehouse before dispatching alerts")
    cursor = con.execute(
        f"select {', '.join(ALERT_COLUMNS)} from {ALERTS_TABLE} where alert_date <= ? "
        f"order by alert_date, alert_id", [as_of])
    return _rows(cursor)


def _manager_key(alert: dict[str, Any]) -> str:
    return str(alert.get("account_manager_id") or alert.get("account_manager_email") or "unassigned")


def _week(day: dt.date | None) -> tuple[int, int]:
    if day is None:
        return (0, 0)
    iso = day.isocalendar()
    return (iso[0], iso[1])


def deliver(channel: Channel, message: Message, attempts: int, backoff_s: float,
            sleep: Callable[[float], None] = time.sleep) -> tuple[bool, int, str | None]:
    """Send with up to ``attempts`` tries, waiting backoff_s, 2*backoff_s, ... between them."""
    error: str | None = None
    for attempt in range(1, max(1, attempts) + 1):
        try:
            channel.send(message)
            return True, attempt, None
        except DeliveryError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - a channel bug must not stop the other alerts
            error = f"{type(exc).__name__}: {exc}"
        log.warning("%s: attempt %d/%d for %s failed: %s", channel.name, attempt, attempts, message.key, error)
        if attempt < attempts:
            sleep(backoff_s * 2 ** (attempt - 1))
    return False, max(1, attempts), error


def _admit(due: list[dict[str, Any]], rows: dict[tuple[str, str], alert_state.StateRow],
           cap: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split due alerts into (admitted, newly capped) under the per-manager weekly cap."""
    by_alert: dict[str, list[alert_state.StateRow]] = defaultdict(list)
    for row in rows.values():
        by_alert[row.alert_id].append(row)
    used: dict[tuple[str, tuple[int, int]], set[str]] = defaultdict(set)
    for alert_id, alert_rows in by_alert.items():
        if any(r.status in ("sent", "failed") for r in alert_rows):
            r = alert_rows[0]
            used[(str(r.account_manager_id or "unassigned"), _week(r.alert_date))].add(alert_id)
    admitted, capped = [], []
    fresh = []
    for alert in due:
        previous = by_alert.get(alert["alert_id"], [])
        if any(r.status in ("sent", "failed") for r in previous):
            admitted.append(alert)
        elif previous:  # capped or expired before: final for every channel
            continue
        else:
            fresh.append(alert)
    for alert in sorted(fresh, key=lambda a: (-rank_key(a), a["alert_id"])):
        bucket = used[(_manager_key(alert), _week(alert.get("alert_date")))]
        if len(bucket) < cap:
            bucket.add(alert["alert_id"])
            admitted.append(alert)
        else:
            capped.append(alert)
    return admitted, capped


def _state_row(alert: dict[str, Any], channel: str, status: str, previous: alert_state.StateRow | None,
               **changes: Any) -> alert_state.StateRow:
    row = alert_state.StateRow(
        alert_id=alert["alert_id"], channel=channel, status=status,
        first_attempt_at=previous.first_attempt_at if previous else None,
        sent_at=previous.sent_at if previous else None,
        attempts=previous.attempts if previous else 0,
        last_error=None, recipient=previous.recipient if previous else None,
        account_manager_id=_manager_key(alert), alert_date=alert.get("alert_date"),
        value_at_stake=alert.get("value_at_stake"))
    for key, value in changes.items():
        setattr(row, key, value)
    return row


def dispatch_alerts(settings: Settings, as_of: dt.date, *, channels: list[Channel] | None = None,
                    policy: AlertPolicy | None = None, digest: bool | None = None,
                    sleep: Callable[[float], None] = time.sleep) -> DispatchResult:
    """Deliver the due alerts of ``as_of`` once per channel; record everything in ops.alert_state."""
    policy = policy or load_policy(settings)
    channels = channels if channels is not None else build_channels(settings)
    digest = settings.alert_digest if digest is None else digest
    window_start = as_of - dt.timedelta(days=policy.dispatch_window_days)
    result = DispatchResult(as_of=as_of, window_start=window_start)
    con = connect(settings)
    try:
        rows = alert_state.load(con)
        with alert_state.StateWriter(con) as writer:
            _dispatch(con, writer, rows, channels, policy, digest, as_of, window_start, result, settings, sleep)
    finally:
        con.close()
    log.info(result.summary())
    return result


def _dispatch(con: Any, writer: alert_state.StateWriter, rows: dict, channels: list[Channel],
              policy: AlertPolicy, digest: bool, as_of: dt.date, window_start: dt.date,
              result: DispatchResult, settings: Settings, sleep: Callable[[float], None]) -> None:
    """The body of dispatch_alerts, on an open connection (see its docstring)."""
    alerts = read_alerts(con, as_of)
    due = []
    for alert in alerts:
        if alert.get("alert_date") is None or alert["alert_date"] > window_start:
            due.append(alert)
            continue
        for channel in channels:
            if (alert["alert_id"], channel.name) in rows:
                result.already_done += 1
            else:
                writer.record(_state_row(
                    alert, channel.name, "expired", None,
                    last_error=f"alert date {alert['alert_date']} is before the dispatch window"))
                result.expired += 1
    admitted, capped = _admit(due, rows, policy.max_per_manager_per_week)
    decided = {a["alert_id"] for a in admitted} | {a["alert_id"] for a in capped}
    # due alerts neither admitted nor capped now were capped or expired by an earlier run
    result.already_done += sum(1 for a in due if a["alert_id"] not in decided) * len(channels)
    for alert in capped:
        for channel in channels:
            writer.record(_state_row(
                alert, channel.name, "capped", None,
                last_error=f"weekly cap of {policy.max_per_manager_per_week} alerts per account "
                           f"manager reached"))
        result.capped += 1
    log.info("%d alerts due, %d admitted, %d capped, %d expired; channels: %s", len(due),
             len(admitted), len(capped), result.expired, ", ".join(c.describe() for c in channels))
    for channel in channels:
        todo = []
        for alert in admitted:
            previous = rows.get((alert["alert_id"], channel.name))
            if previous is not None and previous.status in alert_state.FINAL_STATUSES:
                result.already_done += 1
            else:
                todo.append(alert)
        groups: Iterable[list[dict[str, Any]]]
        if digest:
            by_manager: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for alert in todo:
                by_manager[_manager_key(alert)].append(alert)
            groups = by_manager.values()
        else:
            groups = ([alert] for alert in todo)
        for group in groups:
            ids = sorted(a["alert_id"] for a in group)
            key = (f"{ids[0]}.{channel.name}" if len(ids) == 1 else
                   f"digest-{_manager_key(group[0])}-{as_of}-{uuid.uuid5(uuid.NAMESPACE_OID, ','.join(ids)).hex[:12]}"
                   f".{channel.name}")
            message = render_alerts(group, key)
            started = alert_state.utcnow()
            ok, attempts, error = deliver(channel, message, settings.alert_max_attempts,
                                          settings.alert_backoff_s, sleep)
            recipient = channel.recipient(message)
            result.messages += 1 if ok else 0
            for alert in group:
                previous = rows.get((alert["alert_id"], channel.name))
                writer.record(_state_row(
                    alert, channel.name, "sent" if ok else "failed", previous,
                    first_attempt_at=(previous.first_attempt_at if previous and previous.first_attempt_at
                                      else started),
                    sent_at=alert_state.utcnow() if ok else None,
                    attempts=(previous.attempts if previous else 0) + attempts,
                    last_error=error, recipient=recipient))
                if ok:
                    result.sent += 1
                else:
                    result.failed += 1
                    result.errors.append(f"{alert['alert_id']} via {channel.name}: {error}")
            log.info("%s %s to %s (%d alert%s)", "sent" if ok else "FAILED", message.key, recipient,
                     len(group), "" if len(group) == 1 else "s")


def notify_data_engineers(settings: Settings, subject: str, text: str, html: str | None = None,
                          channels: list[Channel] | None = None) -> list[dict[str, Any]]:
    """Tell the data engineers (``data_engineer_emails``) on every configured channel. Never raises.

    Returns one ``{"channel", "ok", "error"}`` per channel. If the configured channels cannot be
    built, the notice still lands in the local outbox, and the reason is reported.
    """
    recipients = [a.strip() for a in settings.data_engineer_emails.split(",") if a.strip()]
    key = f"data-engineers-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    message = render_notice(subject, text, html, recipients, key)
    log.warning("notifying data engineers: %s\n%s", subject, text)
    results: list[dict[str, Any]] = []
    if channels is None:
        try:
            channels = build_channels(settings)
        except ValueError as exc:
            results.append({"channel": "config", "ok": False, "error": str(exc)})
            channels = build_channels(settings, "file")
    for channel in channels:
        ok, _attempts, error = deliver(channel, message, settings.alert_max_attempts, settings.alert_backoff_s)
        results.append({"channel": channel.name, "ok": ok, "error": error})
        if not ok:
            log.error("could not notify data engineers via %s: %s", channel.name, error)
    return results


def list_alerts(settings: Settings, status: str | None = None) -> list[dict[str, Any]]:
    """Alerts with their delivery state, one row per alert and channel (``pending``: not handled yet).

    Order: failed first, then sent (newest first), then capped (lowest value first), then the rest.
    """
    if status is not None and status not in (*alert_state.STATUSES, "pending"):
        raise ValueError(f"unknown status {status!r}; choose from {', '.join(alert_state.STATUSES)}, pending")
    con = connect(settings, read_only=True)
    try:
        has_alerts = _table_exists(con, ALERTS_TABLE)
        has_state = _table_exists(con, alert_state.STATE_TABLE)
        if not has_alerts and not has_state:
            return []
        alerts_sql = (f"select alert_id, customer_id, customer_name, account_manager_name, account_manager_email,"
                      f" rule, severity, alert_date, value_at_stake, currency, suggested_action from {ALERTS_TABLE}"
                      if has_alerts else
                      "select null::varchar alert_id, null customer_id, null customer_name,"
                      " null account_manager_name, null account_manager_email, null rule, null severity,"
                      " null::date alert_date, null::double value_at_stake, null currency,"
                      " null suggested_action where false")
        state_sql = (f"select * from {alert_state.STATE_TABLE}" if has_state else
                     "select null::varchar alert_id, null::varchar channel, null::varchar status,"
                     " null::timestamp first_attempt_at, null::timestamp sent_at, null::integer attempts,"
                     " null::varchar last_error, null::varchar recipient, null::varchar account_manager_id,"
                     " null::date alert_date, null::double value_at_stake where false")
        sql = f"""
            with a as ({alerts_sql}), s as ({state_sql})
            select coalesce(s.alert_id, a.alert_id) as alert_id,
                   coalesce(s.status, 'pending') as status, s.channel,
                   coalesce(a.alert_date, s.alert_date) as alert_date,
                   a.customer_id, a.customer_name, a.severity, a.rule,
                   coalesce(a.value_at_stake, s.value_at_stake) as value_at_stake, a.currency,
                   a.account_manager_name,
                   coalesce(s.recipient, a.account_manager_email) as recipient,
                   s.attempts, s.sent_at, s.last_error, a.suggested_action
            from a full outer join s on a.alert_id = s.alert_id
        """
        where = " where coalesce(s.status, 'pending') = ?" if status else ""
        order = """ order by case coalesce(s.status, 'pending') when 'failed' then 0 when 'sent' then 1
                    when 'capped' then 2 when 'pending' then 3 else 4 end,
                    case when s.status = 'capped' then coalesce(a.value_at_stake, s.value_at_stake) end asc,
                    coalesce(a.alert_date, s.alert_date) desc,
                    coalesce(a.value_at_stake, s.value_at_stake) desc, 1, s.channel"""
        return _rows(con.execute(sql + where + order, [status] if status else []))
    finally:
        con.close()
