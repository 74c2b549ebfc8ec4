"""The weekly digest per account manager (issue 15): one message a week in the manager's channel.

For the ISO week that ends on ``week_end`` (the weekly report DAG sends it on Monday morning for
the week that just ended, ``pipeline.send_weekly_digests``), each account manager with something
to read gets:

- **open cases**, ranked by expected value at risk (probability x value at stake in the reporting
  currency), with their state (new, acknowledged, snoozed until ...) and a link to each;
- **went quiet this week**: customers whose last two-way dialogue crossed their usual gap during
  the week (``fct_dialogue_daily.gap_ratio`` at most 1 on the day before the week, above 1 on the
  week's last published day), with the last dialogue's date and the usual gap;
- **closed this week**: cases the manager closed (with the outcome) and cases the model closed
  because the signs of drift faded (or, for a customer far quieter than usual on the closing day,
  that the probability fell though the customer went quiet: ``messages.model_closed_words``).

A manager with none of the three gets nothing. The message has a plain-text and an HTML part and
links to the web app (``web_base_url``): the manager's own sign-in link (``access.py``, valid
``web_link_days``) and one link per case and customer. It is idempotent per (manager, ISO week):
``ops.alert_state`` holds one row per ``weekly-<manager email>-<YYYY>-W<WW>`` and channel, so a
rerun of the week sends nothing twice; the row's ``account_manager_id`` is
``weekly-digest:<id>`` so that it never counts against the weekly alert cap. The setting
``alert_weekly_digest`` (default on) turns it off.
"""

from __future__ import annotations

import datetime as dt
import html as html_lib
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from loyalty_core.settings import Settings
from loyalty_monitor.alerting import state as alert_state
from loyalty_monitor.alerting.channels import Channel, build_channels
from loyalty_monitor.alerting.dispatch import connect, deliver
from loyalty_monitor.alerting.messages import (
    PRODUCT,
    Message,
    at_stake,
    closed_dialogue_sql,
    drivers_list,
    format_money,
    model_closed_words,
    one_line,
    slack_escape,
)

log = logging.getLogger(__name__)
TOP_CASES = 10


@dataclass
class WeeklyResult:
    week: str
    sent: int = 0
    failed: int = 0
    already_done: int = 0
    skipped: int = 0  # managers with nothing to read this week
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"weekly digests {self.week}: {self.sent} sent, {self.failed} failed, {self.already_done} already "
                f"sent, {self.skipped} managers with nothing this week")


def week_of(day: dt.date) -> tuple[dt.date, dt.date, str]:
    """(Monday, Sunday, 'YYYY-Www') of the ISO week holding ``day``."""
    iso = day.isocalendar()
    monday = day - dt.timedelta(days=iso[2] - 1)
    return monday, monday + dt.timedelta(days=6), f"{iso[0]}-W{iso[1]:02d}"


def _rows(con: Any, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r)) for r in cursor.fetchall()]


def _has(con: Any, table: str) -> bool:
    return bool(con.execute("select count(*) from information_schema.tables where table_schema = 'published' "
                            "and table_name = ?", [table]).fetchone()[0])


def collect(con: Any, week_end: dt.date) -> tuple[dt.date | None, dict[str, dict[str, Any]]]:
    """The week's content per manager (keyed by lower-case e-mail), and the last published day."""
    monday, sunday, _ = week_of(week_end)
    managers: dict[str, dict[str, Any]] = {}

    def manager(row: dict[str, Any]) -> dict[str, Any] | None:
        email = (row.get("account_manager_email") or "").strip().lower()
        if not email:
            return None
        return managers.setdefault(email, {"email": email, "name": row.get("account_manager_name") or email,
                                           "id": row.get("account_manager_id"), "open": [], "quiet": [],
                                           "closed": []})

    day = None
    if _has(con, "fct_dialogue_daily"):
        day = con.execute("select max(as_of_date) from published.fct_dialogue_daily where as_of_date <= ?",
                          [sunday]).fetchone()[0]
    if _has(con, "fct_case_lifecycle"):
        for row in _rows(con, """select * from published.fct_case_lifecycle
                                 where case_status = 'open' and lifecycle_state <> 'closed'
                                 order by expected_value_at_risk desc nulls last, case_id""", []):
            if (m := manager(row)) is not None:
                m["open"].append(row)
        # the dialogue on the day the model closed a case: a quiet customer is not "recovered"
        quiet = closed_dialogue_sql("cases") if day is not None else ("", "")
        for row in _rows(con, f"""select cases.*{quiet[0]} from published.fct_case_lifecycle as cases {quiet[1]}
                                  where (cases.lifecycle_state = 'closed' and cast(cases.closed_at as date) between ? and ?)
                                     or (cases.closed_on between ? and ?)
                                  order by coalesce(cast(cases.closed_at as date), cases.closed_on), cases.case_id""",
                         [monday, sunday, monday, sunday]):
            if (m := manager(row)) is not None:
                m["closed"].append(row)
    if day is not None and day >= monday:
        for row in _rows(con, """select now.customer_id, c.customer_name, c.account_manager_id, c.account_manager_name,
                                        c.account_manager_email, now.days_since_dialogue, now.usual_gap_days
                                 from published.fct_dialogue_daily as now
                                 inner join published.fct_dialogue_daily as before
                                     on before.customer_id = now.customer_id and before.as_of_date = ?
                                 inner join published.dim_customers as c on c.customer_id = now.customer_id
                                 where now.as_of_date = ? and now.gap_ratio > 1 and before.gap_ratio <= 1
                                 order by now.gap_ratio desc, now.customer_id""",
                         [monday - dt.timedelta(days=1), day]):
            row["last_dialogue_on"] = day - dt.timedelta(days=int(row["days_since_dialogue"]))
            if (m := manager(row)) is not None:
                m["quiet"].append(row)
    return day, managers


def _state_words(row: dict[str, Any]) -> str:
    state = row.get("lifecycle_state") or "new"
    if state == "snoozed" and row.get("snoozed_until"):
        return f"snoozed until {row['snoozed_until']}"
    return state


def _closed_words(row: dict[str, Any]) -> str:
    if row.get("lifecycle_state") == "closed":
        outcome = str(row.get("close_outcome") or "closed").replace("_", " ")
        return f"closed by you as {outcome}" + (f" ({row['close_note']})" if row.get("close_note") else "")
    return model_closed_words(row)


def _case_value(row: dict[str, Any]) -> str:
    return format_money(row.get("expected_value_at_risk"), row.get("reporting_currency"))


def _sign_in(settings: Settings, email: str) -> str:
    try:
        # optional: the caller handles its absence
        from loyalty_monitor.access import sign_in_link

        return sign_in_link(settings, email)
    except Exception:  # noqa: BLE001 - without the web module the plain address still helps
        return settings.web_url


def render_weekly(settings: Settings, m: dict[str, Any], week: str, day: dt.date | None, key: str) -> Message:
    base = settings.web_url
    e = html_lib.escape
    opened, quiet, closed = m["open"], m["quiet"], m["closed"]
    subject = one_line(f"[{PRODUCT}] Your week {week}: {len(opened)} open case{'s' if len(opened) != 1 else ''}, "
                       f"{len(quiet)} went quiet, {len(closed)} closed")
    sign_in = _sign_in(settings, m["email"])
    text = [f"Hello {m['name']}, your customers in week {week}" + (f" (data as of {day})." if day else "."), ""]
    body = [f"<p>Hello {e(str(m['name']))}, your customers in week {e(week)}"
            + (f" (data as of {e(str(day))})." if day else ".") + "</p>"]
    text.append(f"Open cases, most value at risk first ({len(opened)}):")
    body.append(f"<h3>Open cases, most value at risk first ({len(opened)})</h3><ol>")
    for row in opened[:TOP_CASES]:
        link = f"{base}/cases/{row['case_id']}"
        drivers = "; ".join(drivers_list(row.get("drivers"))[:2])
        text.append(f"  - {row.get('customer_name')}: {_case_value(row)} expected at risk ({at_stake(row)} at stake), "
                    f"{_state_words(row)}, open since {row.get('opened_on')}. {drivers}\n    {link}")
        body.append(f"<li><a href=\"{e(link)}\">{e(str(row.get('customer_name')))}</a>: "
                    f"<b>{e(_case_value(row))}</b> expected at risk ({e(at_stake(row))} at stake), "
                    f"{e(_state_words(row))}, open since {e(str(row.get('opened_on')))}. {e(drivers)}</li>")
    if len(opened) > TOP_CASES:
        text.append(f"  ... and {len(opened) - TOP_CASES} more: {base}/queue")
        body.append(f"<li><a href=\"{e(base)}/queue\">{len(opened) - TOP_CASES} more in your queue</a></li>")
    if not opened:
        text.append("  none")
        body.append("<li>none</li>")
    body.append("</ol>")
    text += ["", f"Went quiet this week ({len(quiet)}): their last two-way dialogue is now further back than usual."]
    body.append(f"<h3>Went quiet this week ({len(quiet)})</h3><p>Their last two-way dialogue is now further back "
                f"than usual.</p><ul>")
    for row in quiet:
        link = f"{base}/customers/{row['customer_id']}"
        words = (f"last two-way dialogue {row['last_dialogue_on']} ({row['days_since_dialogue']} days ago), "
                 f"usually every {float(row['usual_gap_days']):.0f} days")
        text.append(f"  - {row.get('customer_name')}: {words}\n    {link}")
        body.append(f"<li><a href=\"{e(link)}\">{e(str(row.get('customer_name')))}</a>: {e(words)}</li>")
    if not quiet:
        text.append("  none")
        body.append("<li>none</li>")
    body.append("</ul>")
    text += ["", f"Closed this week ({len(closed)}):"]
    body.append(f"<h3>Closed this week ({len(closed)})</h3><ul>")
    for row in closed:
        text.append(f"  - {row.get('customer_name')}: {_closed_words(row)}")
        body.append(f"<li>{e(str(row.get('customer_name')))}: {e(_closed_words(row))}</li>")
    if not closed:
        text.append("  none")
        body.append("<li>none</li>")
    body.append("</ul>")
    text += ["", f"Your queue: {sign_in}", "(the link signs you in; do not forward it)", "", f"Sent by {PRODUCT}."]
    body.append(f"<p><a href=\"{e(sign_in)}\">Open your queue in {PRODUCT}</a> (the link signs you in; do not "
                f"forward it).</p>")
    page = (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{e(subject)}</title></head>"
            f"<body style=\"font-family:sans-serif\">{''.join(body)}<p style=\"color:#888\">Sent by {PRODUCT}.</p>"
            f"</body></html>")
    payload = {"kind": "weekly_digest", "idempotency_key": key, "week": week,
               "recipient": {"account_manager_id": m.get("id"), "account_manager_name": m["name"],
                             "account_manager_email": m["email"]},
               "open_cases": [{"case_id": r["case_id"], "customer_id": r["customer_id"],
                               "expected_value_at_risk": r.get("expected_value_at_risk"),
                               "lifecycle_state": r.get("lifecycle_state")} for r in opened],
               "went_quiet": [r["customer_id"] for r in quiet],
               "closed": [{"case_id": r["case_id"], "outcome": r.get("close_outcome")} for r in closed]}
    slack = slack_escape(f"{subject} (for {m['name']})") + f" <{slack_escape(base)}/queue|Open your queue>"
    return Message(key=key, subject=subject, text="\n".join(text), html=page, to=[m["email"]], payload=payload,
                   slack_text=slack)


def send_weekly_digests(settings: Settings, week_end: dt.date, *, channels: list[Channel] | None = None,
                        sleep: Any = None) -> WeeklyResult:
    """Send each manager's digest for the ISO week holding ``week_end`` once per channel."""


    _, sunday, week = week_of(week_end)
    result = WeeklyResult(week=week)
    if not settings.alert_weekly_digest:
        log.info("weekly digests are off (alert_weekly_digest = false)")
        return result
    channels = channels if channels is not None else build_channels(settings)
    con = connect(settings)
    try:
        rows = alert_state.load(con)
        day, managers = collect(con, week_end)
        with alert_state.StateWriter(con) as writer:
            for email, m in sorted(managers.items()):
                if not (m["open"] or m["quiet"] or m["closed"]):
                    result.skipped += 1
                    continue
                digest_id = f"weekly-{email}-{week}"
                for channel in channels:
                    previous = rows.get((digest_id, channel.name))
                    if previous is not None and previous.status in alert_state.FINAL_STATUSES:
                        result.already_done += 1
                        continue
                    message = render_weekly(settings, m, week, day, f"{digest_id}.{channel.name}")
                    started = alert_state.utcnow()
                    outcome = deliver(channel, message, settings.alert_max_attempts, settings.alert_backoff_s,
                                      sleep or time.sleep)
                    status = "sent" if outcome.ok else "undeliverable" if outcome.permanent else "failed"
                    writer.record(alert_state.StateRow(
                        alert_id=digest_id, channel=channel.name, status=status,
                        first_attempt_at=previous.first_attempt_at if previous and previous.first_attempt_at else started,
                        sent_at=alert_state.utcnow() if outcome.ok else None,
                        attempts=(previous.attempts if previous else 0) + outcome.attempts, last_error=outcome.error,
                        recipient=channel.recipient(message), account_manager_id=f"weekly-digest:{m.get('id') or email}",
                        alert_date=sunday, value_at_stake=None))
                    if outcome.ok:
                        result.sent += 1
                    else:
                        result.failed += 1
                        result.errors.append(f"{digest_id} via {channel.name}: {outcome.error}")
    finally:
        con.close()
    log.info(result.summary())
    return result
