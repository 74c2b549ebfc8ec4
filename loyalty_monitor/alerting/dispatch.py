"""Alert dispatch: from ``published.fct_churn_alerts`` to each customer's account manager.

Rules (docs/design.md "Alerts", docs/operations.md):
- alerts whose ``alert_date`` lies in ``(as_of - dispatch_window_days, as_of]`` are due; older ones
  that were never handled are recorded ``expired`` (a backfill does not flood anyone with old news);
- at most ``alerts.max_per_manager_per_week`` alerts per account manager and ISO week of the alert
  date are admitted, highest expected value at risk first (probability x value at stake in the
  reporting currency, ``messages.rank_key``); the rest are recorded ``capped``;
- each admitted alert is delivered at least once per channel, with retries and exponential backoff
  inside one dispatch; ``ops.alert_state`` (alert_id + channel) makes reruns send nothing twice;
- a channel that fails ``alert_channel_failure_limit`` attempts in a row is paused for the rest of the
  run (circuit breaker): its remaining messages stay pending for the next run, and the data engineers
  get one notice;
- a message that cannot be rendered (for the channel) is recorded ``undeliverable`` once and never
  retried: no retry can change it; a digest that cannot be rendered is sent alert by alert.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, NamedTuple

from loyalty_core.dates import parse_as_of
from loyalty_core.marts import MartsError, engine_of, open_marts
from loyalty_core.settings import Settings
from loyalty_monitor import scoring
from loyalty_monitor.alerting import context as alert_context
from loyalty_monitor.alerting import escalation
from loyalty_monitor.alerting import lifecycle as case_lifecycle
from loyalty_monitor.alerting import state as alert_state
from loyalty_monitor.alerting.channels import (
    Channel,
    DeliveryError,
    MessageError,
    RecipientError,
    build_channels,
    channel_secrets,
    scrub,
)
from loyalty_monitor.alerting.lifecycle import LIFECYCLE_TABLE, _lifecycle_rows
from loyalty_monitor.alerting.messages import ALERT_COLUMNS, Message, rank_key, render_alerts, render_notice

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
    #: alert deliveries left pending because their channel was paused (circuit breaker)
    paused: int = 0
    #: alert deliveries recorded ``undeliverable`` (the message cannot be rendered for the channel)
    undeliverable: int = 0
    errors: list[str] = field(default_factory=list)
    #: channel name -> why it was paused in this run
    paused_channels: dict[str, str] = field(default_factory=dict)
    undeliverable_errors: list[str] = field(default_factory=list)
    #: what notify_data_engineers returned for this run's notice (empty: no notice was needed)
    notice: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        return (f"alerts for {self.as_of} (window after {self.window_start}): {self.sent} sent in "
                f"{self.messages} messages, {self.failed} failed, {self.capped} capped, "
                f"{self.expired} expired, {self.already_done} already handled"
                + (f", {self.undeliverable} undeliverable" if self.undeliverable else "")
                + (f", {self.paused} left pending (paused: {', '.join(self.paused_channels)})"
                   if self.paused_channels else ""))


def connect(settings: Settings, read_only: bool = False) -> Any:
    """The warehouse through ``loyalty_core.marts`` (DuckDB file or PostgreSQL, by ``dbt_target``):
    published alerts are read, ``ops.alert_state`` is written next to them."""

    if read_only and engine_of(settings) == "duckdb" and not settings.warehouse.exists():
        raise FileNotFoundError(f"no warehouse at {settings.warehouse}: run the pipeline first (`loyalty run`)")
    try:
        return open_marts(settings, read_only=read_only)
    except MartsError as exc:
        raise RuntimeError(str(exc)) from exc


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


class Outcome(NamedTuple):
    ok: bool
    attempts: int  # attempts made (0: none, the channel was paused)
    error: str | None
    #: the message itself can never be sent on this channel (MessageError): do not retry it
    permanent: bool = False


class CircuitBreaker:
    """Pauses a channel for the rest of one dispatch run once ``limit`` attempts failed in a row
    (``limit`` < 1: never). A success resets the count. Failures that are the message's or the
    recipient's, not the channel's, do not count."""

    def __init__(self, limit: int):
        self.limit = limit
        self.in_a_row: dict[str, int] = defaultdict(int)
        self.paused: dict[str, str] = {}

    def is_open(self, channel: str) -> bool:
        return channel in self.paused

    def success(self, channel: str) -> None:
        self.in_a_row[channel] = 0

    def failure(self, channel: str, error: str | None) -> None:
        self.in_a_row[channel] += 1
        if 0 < self.limit <= self.in_a_row[channel] and channel not in self.paused:
            self.paused[channel] = f"{self.in_a_row[channel]} attempts failed in a row; last: {error}"
            log.error("%s: %d delivery attempts failed in a row (last: %s); channel paused for the rest of "
                      "this dispatch run, its remaining messages stay pending", channel,
                      self.in_a_row[channel], error)


def deliver(channel: Channel, message: Message, attempts: int, backoff_s: float,
            sleep: Callable[[float], None] = time.sleep, breaker: CircuitBreaker | None = None) -> Outcome:
    """Send with up to ``attempts`` tries, waiting backoff_s, 2*backoff_s, ... between them; stop
    early when the message cannot be sent at all, or when ``breaker`` pauses the channel."""
    error: str | None = None
    made = 0
    secrets = channel_secrets(channel)
    for attempt in range(1, max(1, attempts) + 1):
        if breaker is not None and breaker.is_open(channel.name):
            break
        made = attempt
        try:
            channel.send(message)
            if breaker is not None:
                breaker.success(channel.name)
            return Outcome(True, attempt, None)
        except MessageError as exc:
            error = scrub(str(exc), *secrets)
            log.error("%s: %s can never be sent: %s", channel.name, message.key, error)
            return Outcome(False, attempt, error, permanent=True)
        except RecipientError as exc:  # the data's problem, not the channel's: the next run retries
            error = scrub(str(exc), *secrets)
            log.warning("%s: %s not sent: %s", channel.name, message.key, error)
            return Outcome(False, attempt, error)
        except DeliveryError as exc:
            error = scrub(str(exc), *secrets)
        except Exception as exc:  # noqa: BLE001 - a channel bug must not stop the other alerts
            error = scrub(f"{type(exc).__name__}: {exc}", *secrets)
        log.warning("%s: attempt %d/%d for %s failed: %s", channel.name, attempt, attempts, message.key, error)
        if breaker is not None:
            breaker.failure(channel.name, error)
        if attempt < attempts and not (breaker is not None and breaker.is_open(channel.name)):
            sleep(backoff_s * 2 ** (attempt - 1))
    return Outcome(False, made, error or f"channel {channel.name} paused in this run")


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
        elif alert.get("updates") and not previous:  # an escalation of a sent alert: not a new alert, no cap
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
    breaker = CircuitBreaker(settings.alert_channel_failure_limit)
    con = connect(settings)
    try:
        rows = alert_state.load(con)
        with alert_state.StateWriter(con) as writer:
            _dispatch(con, writer, rows, channels, policy, digest, as_of, window_start, result, settings, sleep,
                      breaker)
    finally:
        con.close()
    result.paused_channels = dict(breaker.paused)
    log.info(result.summary())
    if result.paused_channels or result.undeliverable:
        result.notice = _notify_problems(settings, result, channels)
    return result


def _notify_problems(settings: Settings, result: DispatchResult, channels: list[Channel]) -> list[dict[str, Any]]:
    """One notice per dispatch run about paused channels and undeliverable messages, sent on the
    channels that still work (none left: the local outbox), never on a paused one."""
    lines = [f"Alert dispatch for {result.as_of}: {result.summary()}.", ""]
    for channel in channels:
        if channel.name in result.paused_channels:
            lines.append(f"- Channel {channel.name} ({channel.describe()}) was paused for the rest of the run: "
                         f"{result.paused_channels[channel.name]}.")
    if result.paused:
        lines.append(f"  {result.paused} alert deliveries were left pending; the next dispatch sends them "
                     f"(nothing is lost). Check the channel's server and settings.")
    if result.undeliverable:
        lines.append(f"- {result.undeliverable} alert deliveries can never be sent (recorded 'undeliverable', "
                     f"not retried): the message cannot be rendered for the channel. Check the data:")
        lines += [f"  {error}" for error in result.undeliverable_errors[:20]]
    lines += ["", "`loyalty alerts list --status failed` and `--status undeliverable` show the details."]
    subject = (f"alert dispatch {result.as_of}: "
               + (f"channel {', '.join(result.paused_channels)} paused" if result.paused_channels else "")
               + (" and " if result.paused_channels and result.undeliverable else "")
               + (f"{result.undeliverable} undeliverable alert messages" if result.undeliverable else ""))
    healthy = [c for c in channels if c.name not in result.paused_channels]
    return notify_data_engineers(settings, subject, "\n".join(lines),
                                 channels=healthy or build_channels(settings, "file"))


def _message_key(group: list[dict[str, Any]], channel: str, as_of: dt.date) -> str:
    ids = sorted(a["alert_id"] for a in group)
    if len(ids) == 1:
        return f"{ids[0]}.{channel}"
    digest_id = uuid.uuid5(uuid.NAMESPACE_OID, ",".join(ids)).hex[:12]
    return f"digest-{_manager_key(group[0])}-{as_of}-{digest_id}.{channel}"


def _render(group: list[dict[str, Any]], channel: str,
            as_of: dt.date) -> list[tuple[list[dict[str, Any]], Message | None, str | None]]:
    """``(alerts, message, None)`` per message to send, ``(alerts, None, error)`` for alerts whose
    message cannot be rendered. A digest that fails is rendered alert by alert instead, so that one
    bad value does not hold back the others."""
    try:
        return [(group, render_alerts(group, _message_key(group, channel, as_of)), None)]
    except Exception as exc:  # noqa: BLE001 - a value that breaks rendering must not stop dispatch
        if len(group) > 1:
            log.warning("cannot render a digest of %d alerts (%s: %s); sending them one by one", len(group),
                        type(exc).__name__, exc)
            return [part for alert in group for part in _render([alert], channel, as_of)]
        return [(group, None, f"cannot render the message: {type(exc).__name__}: {exc}")]


def _dispatch(con: Any, writer: alert_state.StateWriter, rows: dict, channels: list[Channel],
              policy: AlertPolicy, digest: bool, as_of: dt.date, window_start: dt.date,
              result: DispatchResult, settings: Settings, sleep: Callable[[float], None],
              breaker: CircuitBreaker) -> None:
    """The body of dispatch_alerts, on an open connection (see its docstring)."""
    # snoozed and closed cases send nothing; an ended snooze sends one reminder (alerting/lifecycle.py)
    alerts = case_lifecycle.apply(con, read_alerts(con, as_of), as_of, settings)
    # the severity of today; a sent alert whose severity rose gets an update (alerting/escalation.py)
    alerts = escalation.apply(con, alerts, as_of, settings)
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
    alert_context.enrich(con, admitted, as_of)  # the last two-way dialogue and with whom (alerting/context.py)
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
            if breaker.is_open(channel.name):  # left pending: no row, the next run sends them
                result.paused += len(group)
                continue
            for part, message, render_error in _render(group, channel.name, as_of):
                started = alert_state.utcnow()
                if message is None:
                    _record(writer, rows, result, part, channel.name, "undeliverable", 0, render_error, None, started)
                    log.error("%s: alert %s can never be sent: %s", channel.name,
                              ", ".join(a["alert_id"] for a in part), render_error)
                    continue
                if breaker.is_open(channel.name):
                    result.paused += len(part)
                    continue
                outcome = deliver(channel, message, settings.alert_max_attempts, settings.alert_backoff_s, sleep,
                                  breaker)
                if outcome.attempts == 0:  # paused before its first attempt
                    result.paused += len(part)
                    continue
                status = "sent" if outcome.ok else "undeliverable" if outcome.permanent else "failed"
                recipient = channel.recipient(message)
                result.messages += 1 if outcome.ok else 0
                _record(writer, rows, result, part, channel.name, status, outcome.attempts, outcome.error,
                        recipient, started)
                log.info("%s %s to %s (%d alert%s)", "sent" if outcome.ok else status.upper(), message.key,
                         recipient, len(part), "" if len(part) == 1 else "s")
    writer.flush()
    escalation.record_sent(con, admitted, as_of)  # the severity each manager was told


def _record(writer: alert_state.StateWriter, rows: dict, result: DispatchResult, alerts: list[dict[str, Any]],
            channel: str, status: str, attempts: int, error: str | None, recipient: str | None,
            started: Any) -> None:
    for alert in alerts:
        previous = rows.get((alert["alert_id"], channel))
        writer.record(_state_row(
            alert, channel, status, previous,
            first_attempt_at=(previous.first_attempt_at if previous and previous.first_attempt_at else started),
            sent_at=alert_state.utcnow() if status == "sent" else None,
            attempts=(previous.attempts if previous else 0) + attempts,
            last_error=error, recipient=recipient if recipient is not None else (
                previous.recipient if previous else None)))
        if status == "sent":
            result.sent += 1
        elif status == "undeliverable":
            result.undeliverable += 1
            result.undeliverable_errors.append(f"{alert['alert_id']} via {channel}: {error}")
        else:
            result.failed += 1
            result.errors.append(f"{alert['alert_id']} via {channel}: {error}")


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
        outcome = deliver(channel, message, settings.alert_max_attempts, settings.alert_backoff_s)
        results.append({"channel": channel.name, "ok": outcome.ok, "error": outcome.error})
        if not outcome.ok:
            log.error("could not notify data engineers via %s: %s", channel.name, outcome.error)
    return results


def list_alerts(settings: Settings, status: str | None = None, *, manager: str | None = None,
                since: dt.date | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Alerts with their delivery state, one row per alert and channel.

    Filters: ``status`` (below); ``manager``: the account manager's e-mail address (the
    alert's recipient), or a part of their name, case-insensitive; ``since``: alerts dated on or after
    this day; ``limit``: the first rows only, in the order below.

    An alert with no delivery row is ``pending`` (dispatch has not handled it yet) or ``held``:
    its risk case was snoozed or closed by its account manager, so dispatch sends nothing about it
    (alerting.lifecycle); ``held_because`` then says why in words (``snoozed until 2026-12-10:
    on leave``, ``closed by its account manager: saved``, or a snooze that ended and was replaced
    by a reminder), next to ``lifecycle_state``, ``snoozed_until`` and ``close_outcome``.

    Order: failed and undeliverable first, then sent (newest first), then capped (lowest value
    first), then the rest.
    """
    if status is not None and status not in LIST_STATUSES:
        raise ValueError(f"unknown status {status!r}; choose from {', '.join(LIST_STATUSES)}")
    con = connect(settings, read_only=True)
    try:
        has_alerts = _table_exists(con, ALERTS_TABLE)
        has_state = _table_exists(con, alert_state.STATE_TABLE)
        if not has_alerts and not has_state:
            return []
        alerts_sql = (f"select alert_id, customer_id, customer_name, account_manager_name, account_manager_email,"
                      f" rule, severity, alert_date, value_at_stake, currency, suggested_action, alert_kind"
                      f" from {ALERTS_TABLE}"
                      if has_alerts else
                      "select null::varchar alert_id, null customer_id, null customer_name,"
                      " null account_manager_name, null account_manager_email, null rule, null severity,"
                      " null::date alert_date, null::double precision value_at_stake, null currency,"
                      " null suggested_action, null alert_kind where false")
        state_sql = (f"select * from {alert_state.STATE_TABLE}" if has_state else
                     "select null::varchar alert_id, null::varchar channel, null::varchar status,"
                     " null::timestamp first_attempt_at, null::timestamp sent_at, null::integer attempts,"
                     " null::varchar last_error, null::varchar recipient, null::varchar account_manager_id,"
                     " null::date alert_date, null::double precision value_at_stake where false")
        sql = f"""
            with a as ({alerts_sql}), s as ({state_sql})
            select coalesce(s.alert_id, a.alert_id) as alert_id,
                   coalesce(s.status, 'pending') as status, s.channel,
                   coalesce(a.alert_date, s.alert_date) as alert_date,
                   a.customer_id, a.customer_name, a.severity, a.rule,
                   coalesce(a.value_at_stake, s.value_at_stake) as value_at_stake, a.currency,
                   a.account_manager_name,
                   coalesce(s.recipient, a.account_manager_email) as recipient,
                   s.attempts, s.sent_at, s.last_error, a.suggested_action, a.alert_kind
            from a full outer join s on a.alert_id = s.alert_id
        """
        # held alerts have no delivery row either: they are told apart below, then filtered
        sql_status = "pending" if status == "held" else status
        where = " where coalesce(s.status, 'pending') = ?" if sql_status else ""
        order = """ order by case coalesce(s.status, 'pending') when 'failed' then 0 when 'undeliverable' then 0
                    when 'sent' then 1 when 'capped' then 2 when 'pending' then 3 else 4 end,
                    case when s.status = 'capped' then coalesce(a.value_at_stake, s.value_at_stake) end asc,
                    coalesce(a.alert_date, s.alert_date) desc,
                    coalesce(a.value_at_stake, s.value_at_stake) desc, 1, s.channel"""
        rows = _rows(con.execute(sql + where + order, [sql_status] if sql_status else []))
        _mark_held(rows, _held_cases(con))
    finally:
        con.close()
    if status in ("pending", "held"):
        rows = [r for r in rows if r["status"] == status]
    if manager:
        wanted = manager.strip().lower()
        rows = [r for r in rows if (r["recipient"] or "").lower() == wanted
                or ("@" not in wanted and wanted in (r["account_manager_name"] or "").lower())]
    if since is not None:
        rows = [r for r in rows if r["alert_date"] is not None and _as_date(r["alert_date"]) >= since]
    if limit is not None:
        if limit < 0:
            raise ValueError(f"limit must be 0 or more, not {limit}")
        rows = rows[:limit]
    return rows


def _as_date(value: Any) -> dt.date:
    return parse_as_of(value)


#: Statuses ``list_alerts`` reports: those of ops.alert_state, ``pending`` and ``held``.
LIST_STATUSES = (*alert_state.STATUSES, "pending", "held")


def _held_cases(con: Any) -> dict[str, dict[str, Any]]:
    """Risk cases whose account manager snoozed or closed them (published.fct_case_lifecycle)."""

    rows = _lifecycle_rows(con)
    if rows:
        for case_id, outcome in con.execute(f"select case_id, close_outcome from {LIFECYCLE_TABLE} "
                                            "where lifecycle_state = 'closed'").fetchall():
            if case_id in rows:
                rows[case_id]["close_outcome"] = outcome
    return rows


def _mark_held(rows: list[dict[str, Any]], cases: dict[str, dict[str, Any]]) -> None:
    """An alert without a delivery row whose case dispatch holds (alerting.lifecycle.apply) is not
    pending: it is ``held``, and ``held_because`` says why, as the account manager decided it."""
    for row in rows:
        case = cases.get(row["alert_id"]) if row.get("alert_kind") == "risk_case" else None
        row.update(held_because=None, lifecycle_state=case["lifecycle_state"] if case else None,
                   snoozed_until=case["snoozed_until"] if case else None,
                   close_outcome=case.get("close_outcome") if case else None)
        if case is None or row["status"] != "pending":
            continue
        until = case["snoozed_until"]
        reason = f": {case['snooze_reason']}" if case.get("snooze_reason") else ""
        if case["lifecycle_state"] == "snoozed":
            because = f"snoozed until {until}{reason}"
        elif case["lifecycle_state"] == "closed":
            outcome = case.get("close_outcome")
            because = "closed by its account manager" + (f": {outcome.replace('_', ' ')}" if outcome else "")
        elif until is not None and case["case_status"] == "open":
            because = (f"snoozed until {until}{reason}; the reminder {row['alert_id']}-snoozed-{until} "
                       "goes instead")
        else:
            continue
        row.update(status="held", held_because=because)
