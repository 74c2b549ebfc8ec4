"""What an alert says: who, why, what to do next, what is at stake, as plain text, HTML and JSON.

Every text that comes from data (names, drivers, actions) is HTML-escaped in the HTML part; the
plain-text part carries the same content so that any mail client shows it.
"""

from __future__ import annotations

import datetime as dt
import html as html_lib
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping

PRODUCT = "Loyalty Monitor"

#: Alert columns of ``published.fct_churn_alerts`` (docs/design.md) that messages and state use.
ALERT_COLUMNS = (
    "alert_id", "customer_id", "customer_name", "account_manager_id", "account_manager_name",
    "account_manager_email", "rule", "severity", "alert_date", "episode_end_date", "health_score",
    "status", "drivers", "suggested_action", "value_at_stake", "currency", "segment",
    "alert_kind", "probability", "value_at_stake_reporting", "reporting_currency", "expected_value_at_risk",
    "reasons",
)


#: Keys dispatch adds to an alert: ``link`` (the case or customer in the web app, from the setting
#: ``web_base_url``), ``reminder`` (a snoozed case whose snooze ended), ``update``, ``updates`` and
#: ``previous_severity`` (an escalation of an alert already sent: alerting/escalation.py), and
#: ``opened_on`` (an update's or a reminder's case opening day: their ``alert_date`` is their own).
OPTIONAL_KEYS = ("link", "reminder", "update", "updates", "previous_severity", "opened_on")
#: The mail header that carries the alert ids: the text never shows a hash (issue 15).
ALERT_ID_HEADER = "X-Loyalty-Alert-Id"


def rank_key(alert: Mapping[str, Any]) -> float:
    """What an alert is worth acting on: its expected value at risk (probability x value at stake in
    the reporting currency); the value at stake where that is unknown."""
    for key in ("expected_value_at_risk", "value_at_stake"):
        value = alert.get(key)
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if number == number:
            return number
    return 0.0


def at_stake(alert: Mapping[str, Any]) -> str:
    """The value at stake in the one reporting currency, with the customer's own currency beside it
    where it differs: "16,733 EUR (125,000 DKK)". It is a year's worth (the larger of the customer's
    annual potential and its revenue of the last 12 months: alerts.value_at_stake_potential_share)."""
    original = format_money(alert.get("value_at_stake"), alert.get("currency"))
    reporting = alert.get("reporting_currency")
    if reporting and reporting != alert.get("currency") and alert.get("value_at_stake_reporting") is not None:
        return f"{format_money(alert.get('value_at_stake_reporting'), reporting)} ({original})"
    return original


#: What "at stake" is, said once in each message beside the figure.
AT_STAKE_MEANS = "a year: the larger of its potential and its revenue of the last 12 months"


#: The contract's contact roles (in words) as the customer's side of a dialogue.
ROLE_PHRASES = {"executive": "an executive", "decision maker": "their decision maker", "user": "a user",
                 "finance": "their finance team", "other": "a contact",
                 "someone at the customer": "someone at the customer"}


def dialogue_words(alert: Mapping[str, Any]) -> str | None:
    """The last two-way dialogue and with whom, with the customer's usual rhythm (alerting/context.py);
    None when dispatch could not tell."""
    last = alert.get("last_dialogue")
    gap = alert.get("usual_gap_days")
    usual = ""
    try:
        usual = f"; usually every {float(gap):.0f} days" if gap is not None else ""
    except (TypeError, ValueError):
        pass
    if isinstance(last, Mapping):
        ago = last.get("days_ago")
        when = f"{_s(last.get('on'))}" + (f" ({ago} days ago)" if ago is not None else "")
        who = ROLE_PHRASES.get(_s(last.get("with")), f"their {_s(last.get('with'), 'contact')}")
        by = _s(last.get("by"), "us")
        # the message goes to the account manager: their own dialogue is theirs, not an id
        if last.get("employee_id") and last.get("employee_id") == alert.get("account_manager_id"):
            by = "you"
        return f"{when}, a {_s(last.get('what'), 'contact')} with {who}, by {by}{usual}"
    if "last_dialogue" in alert:
        return f"none recorded{usual}"
    return None


def case_opened_on(alert: Mapping[str, Any]) -> Any:
    """The day an alert's case opened: an update's or a reminder's ``opened_on`` (their
    ``alert_date`` is their own day), else the alert's ``alert_date``."""
    return alert.get("opened_on") or alert.get("alert_date")


#: A dialogue gap this many times the customer's usual one when the model closed a case changes
#: what the closing says: the probability fell (a friction that opened the case aged out of its
#: window, say), but the customer had gone quiet, so "the signs faded" would mislead.
QUIET_AT_CLOSE_GAPS = 3


def closed_dialogue_sql(cases: str, schema: str = "published") -> tuple[str, str]:
    """The columns and the join that give ``model_closed_words`` its figures: the customer's
    dialogue on the day the model closed the case (fct_dialogue_daily), for a query over the
    cases aliased ``cases``."""
    columns = ", quiet.days_since_dialogue as days_since_dialogue_at_close, quiet.usual_gap_days as usual_gap_days_at_close"
    join = (f"left join {schema}.fct_dialogue_daily as quiet "
            f"on quiet.customer_id = {cases}.customer_id and quiet.as_of_date = {cases}.closed_on")
    return columns, join


def model_closed_words(case: Mapping[str, Any]) -> str:
    """Why the drift model closed a case, with the customer's dialogue on the closing day
    (``days_since_dialogue_at_close`` and ``usual_gap_days_at_close``, fct_dialogue_daily, when
    known): quiet beyond its usual rhythm then is said, and far beyond it leads."""
    try:
        days = int(case["days_since_dialogue_at_close"])
        gap = float(case["usual_gap_days_at_close"])
    except (KeyError, TypeError, ValueError):
        return "closed by the model: the signs of drift faded"
    quiet = f"no two-way dialogue for {days} days by then, usually every {gap:.0f} days"
    if gap > 0 and days >= QUIET_AT_CLOSE_GAPS * gap:
        return (f"closed by the model (the drift probability fell below the closing one), though the customer "
                f"had gone quiet: {quiet}; make sure it is still a customer")
    if gap > 0 and days > gap:
        return f"closed by the model: the signs of drift faded ({quiet})"
    return "closed by the model: the signs of drift faded"


def risk_words(alert: Mapping[str, Any]) -> str:
    """The risk in the account manager's words: a churn-risk case says how likely the drift is, one
    opened after the customer went silent that it may already have left; a fact says that action is
    needed."""
    if alert.get("alert_kind") == "action_needed":
        return f"action needed ({_s(alert.get('severity'), '?')} severity)"
    if alert.get("rule") == "went_silent":
        return f"may already have left: gone silent ({_s(alert.get('severity'), '?')} severity)"
    probability = alert.get("probability")
    try:
        # the model's probability on the day the case opened: a message sent later (a backlog, an
        # update, a reminder: dated their own day, ``opened_on`` keeps the case's) must not pass it
        # off as today's
        day = case_opened_on(alert)
        opened = f" when the case opened on {day}" if day else ""
        share = f"{float(probability):.0%} likely drifting toward churn{opened}"
    except (TypeError, ValueError):
        share = "may be drifting toward churn"
    return f"{share} ({_s(alert.get('severity'), '?')} severity)"


@dataclass
class Message:
    """One notification, ready for any channel."""

    key: str  # stable, file-name safe: the idempotency key of the message
    subject: str
    text: str
    html: str | None
    to: list[str]  # e-mail recipients
    payload: dict[str, Any] = field(default_factory=dict)  # JSON body for webhooks and the file sink
    slack_text: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # extra e-mail headers (the alert ids)


def _s(value: Any, default: str = "") -> str:
    if value is None:
        return default
    if isinstance(value, float) and value != value:  # NaN from pandas
        return default
    return str(value)


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def one_line(text: str) -> str:
    """Text for a place that holds one line (a subject, a header, a Slack line): control characters
    (CR, LF, tab, NUL, ...) from event data become a space, so a name like "Acme\\r\\nBcc: ..." can
    neither break a channel nor inject a header."""
    return " ".join(_CONTROL.sub(" ", text).split())


def format_money(amount: Any, currency: Any) -> str:
    try:
        value = float(amount)
    except (TypeError, ValueError):
        return "unknown"
    if value != value:
        return "unknown"
    return f"{value:,.0f} {_s(currency, '').strip()}".strip()


def drivers_list(drivers: Any) -> list[str]:
    """The mart's ``; ``-separated drivers, worst first, as a list of plain sentences. A ``;`` inside
    parentheses is part of one driver: a risk case's drivers read "two-way dialogue: 0 since
    2026-07-08, about 2.8 expected (usually 2.0 per 90 days; the last two-way dialogue 186 days
    ago)", which is one sentence, not two halves with an unbalanced bracket each."""
    out, depth, current = [], 0, ""
    for char in _s(drivers):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ";" and depth <= 0:
            out.append(current)
            current = ""
        else:
            current += char
    return [d.strip() for d in [*out, current] if d.strip()]


def slack_escape(text: str) -> str:
    # Slack's mrkdwn treats these three as control characters.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _jsonable(alert: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key in ALERT_COLUMNS:
        value = alert.get(key)
        if isinstance(value, (dt.date, dt.datetime)):
            value = value.isoformat()
        elif isinstance(value, float) and value != value:
            value = None
        elif hasattr(value, "item"):  # numpy scalars
            value = value.item()
        elif isinstance(value, Decimal):  # exact money in the warehouse; JSON readers expect numbers
            value = float(value)
        out[key] = value
    for key in OPTIONAL_KEYS:  # added by dispatch (alerting/lifecycle.py), not mart columns
        if alert.get(key):
            out[key] = str(alert[key])
    last = alert.get("last_dialogue")
    if isinstance(last, Mapping):  # alerting/context.py
        out["last_dialogue"] = {k: (v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v)
                                for k, v in last.items()}
    return out


def _why(alert: Mapping[str, Any]) -> str:
    # the drivers are the alert day's; an alert sent days later (a dispatch window, a reminder)
    # would otherwise say "no dialogue for 83 days" beside a last dialogue "89 days ago"
    return f"Why (as of {_s(alert.get('alert_date'))})" if alert.get("alert_date") else "Why"


def _alert_lines(alert: Mapping[str, Any]) -> list[str]:
    drivers = drivers_list(alert.get("drivers")) or ["(no drivers recorded)"]
    dialogue = dialogue_words(alert)
    return [
        *([f"Update: {_s(alert.get('update'))}"] if alert.get("update") else []),
        *([f"Reminder: {_s(alert.get('reminder'))}"] if alert.get("reminder") else []),
        f"Customer: {_s(alert.get('customer_name'), '?')} ({_s(alert.get('customer_id'))}), "
        f"segment {_s(alert.get('segment'), 'unknown')}",
        f"Risk: {risk_words(alert)}, health {_s(alert.get('health_score'), '?')}/100 "
        f"({_s(alert.get('status'), '?')}), since {_s(alert.get('alert_date'))}",
        _why(alert) + ":",
        *[f"  - {d}" for d in drivers],
        *([f"Also: {_s(alert.get('reasons'))}"] if alert.get("reasons") else []),
        *([f"Last two-way dialogue: {dialogue}"] if dialogue else []),
        f"What to do next: {_s(alert.get('suggested_action'), 'talk to the customer')}",
        f"At stake: {at_stake(alert)} {AT_STAKE_MEANS}",
        *([f"Open it: {_s(alert.get('link'))}"] if alert.get("link") else []),
    ]


def _alert_html(alert: Mapping[str, Any]) -> str:
    e = html_lib.escape
    drivers = drivers_list(alert.get("drivers")) or ["(no drivers recorded)"]
    items = "".join(f"<li>{e(d)}</li>" for d in drivers)
    dialogue = dialogue_words(alert)
    return (
        '<div class="alert" style="border-left:4px solid #c0392b;padding:4px 12px;margin:12px 0">'
        + (f"<p><b>Update:</b> {e(_s(alert.get('update')))}</p>" if alert.get("update") else "")
        + (f"<p><b>Reminder:</b> {e(_s(alert.get('reminder')))}</p>" if alert.get("reminder") else "") +
        f"<h3>{e(_s(alert.get('customer_name'), '?'))} "
        f"<small>({e(_s(alert.get('customer_id')))}, {e(_s(alert.get('segment'), 'unknown'))})</small></h3>"
        f"<p><b>Risk:</b> {e(risk_words(alert))}, health "
        f"{e(_s(alert.get('health_score'), '?'))}/100 ({e(_s(alert.get('status'), '?'))}), "
        f"since {e(_s(alert.get('alert_date')))}</p>"
        f"<p><b>{e(_why(alert))}:</b></p><ul>{items}</ul>"
        + (f"<p><b>Also:</b> {e(_s(alert.get('reasons')))}</p>" if alert.get("reasons") else "")
        + (f"<p><b>Last two-way dialogue:</b> {e(dialogue)}</p>" if dialogue else "") +
        f"<p><b>What to do next:</b> {e(_s(alert.get('suggested_action'), 'talk to the customer'))}</p>"
        f"<p><b>At stake:</b> {e(at_stake(alert))} {e(AT_STAKE_MEANS)}</p>"
        + (f"<p><a href=\"{e(_s(alert.get('link')))}\">Open it in {PRODUCT}</a></p>" if alert.get("link") else "")
        + "</div>"
    )


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html_lib.escape(title)}</title>"
            f"</head><body style=\"font-family:sans-serif\">{body}"
            f"<p style=\"color:#888\">Sent by {PRODUCT}.</p></body></html>")


def render_alerts(alerts: list[Mapping[str, Any]], key: str) -> Message:
    """One message to one account manager about one alert or (digest) several, highest value first."""
    if not alerts:
        raise ValueError("render_alerts needs at least one alert")
    alerts = sorted(alerts, key=lambda a: -rank_key(a))
    first = alerts[0]
    manager = _s(first.get("account_manager_name"), "account manager")
    email = _s(first.get("account_manager_email")).strip()
    if len(alerts) == 1:
        what = "action needed" if first.get("alert_kind") == "action_needed" else "churn risk"
        prefix = "update: " if first.get("update") else "reminder: " if first.get("reminder") else ""
        subject = (f"[{PRODUCT}] {prefix}{_s(first.get('severity'), '?')} {what}: "
                   f"{_s(first.get('customer_name'), '?')} - {at_stake(first)} at stake")
    facts = sum(1 for a in alerts if a.get("alert_kind") == "action_needed")
    if len(alerts) > 1:
        what = ("need action" if facts == len(alerts) else "need action or are at churn risk" if facts
                else "at churn risk")
        subject = f"[{PRODUCT}] {len(alerts)} customers {what} - {_total_at_stake(alerts)} at stake"
    if len(alerts) == 1 and first.get("update"):
        intro = f"Hello {manager}, an update on a customer of yours we told you about: it is getting worse."
    elif facts == len(alerts):  # a fact needing action is not a prediction of churn
        intro = (f"Hello {manager}, {'this customer' if len(alerts) == 1 else 'these customers'} "
                 f"of yours {'needs' if len(alerts) == 1 else 'need'} action.")
    elif facts:
        intro = f"Hello {manager}, these customers of yours need action or may be drifting away."
    else:
        intro = (f"Hello {manager}, {'this customer' if len(alerts) == 1 else 'these customers'} "
                 f"of yours may be drifting away.")
    text_parts = [intro, ""]
    for alert in alerts:
        text_parts += _alert_lines(alert) + [""]
    text_parts.append(f"Sent by {PRODUCT}.")
    html_body = (f"<p>{html_lib.escape(intro)}</p>" + "".join(_alert_html(a) for a in alerts))
    slack_lines = [slack_escape(f"{subject} (for {manager}{' <' + email + '>' if email else ''})")]
    for alert in alerts:
        slack_lines.append(slack_escape(one_line(
            f"- {_s(alert.get('update')) + ' ' if alert.get('update') else ''}"
            f"{_s(alert.get('customer_name'), '?')}: {'; '.join(drivers_list(alert.get('drivers')))}. "
            + (f"Last two-way dialogue: {dialogue_words(alert)}. " if dialogue_words(alert) else "")
            + f"Next: {_s(alert.get('suggested_action'), 'talk to the customer')}. "
            f"At stake: {at_stake(alert)}."))
            + (f" <{slack_escape(one_line(_s(alert.get('link'))))}|Open it>" if alert.get("link") else ""))
    payload = {
        "kind": "churn_alert",
        "idempotency_key": key,
        "recipient": {"account_manager_id": _s(first.get("account_manager_id")) or None,
                      "account_manager_name": _s(first.get("account_manager_name")) or None,
                      "account_manager_email": email or None},
        "alerts": [_jsonable(a) for a in alerts],
    }
    subject = one_line(subject)
    return Message(key=key, subject=subject, text="\n".join(text_parts), html=_page(subject, html_body),
                   to=[email] if email else [], payload=payload, slack_text="\n".join(slack_lines),
                   headers={ALERT_ID_HEADER: one_line(", ".join(_s(a.get("alert_id")) for a in alerts))})


def _total_at_stake(alerts: list[Mapping[str, Any]]) -> str:
    """A digest's total at stake: in the reporting currency when every alert has it, else in the
    first alert's currency when they all share it, else per currency."""
    reporting = {a.get("reporting_currency") for a in alerts}
    if len(reporting) == 1 and None not in reporting and all(a.get("value_at_stake_reporting") is not None
                                                             for a in alerts):
        return format_money(sum(float(a["value_at_stake_reporting"]) for a in alerts), reporting.pop())
    currencies = sorted({_s(a.get("currency")) for a in alerts})
    totals = {c: sum(float(a.get("value_at_stake") or 0) for a in alerts if _s(a.get("currency")) == c)
              for c in currencies}
    return " + ".join(format_money(v, c) for c, v in totals.items())


def render_notice(subject: str, text: str, html: str | None, to: list[str], key: str) -> Message:
    """A message to the data engineers (failed runs, failed quality gates)."""
    full_subject = f"[{PRODUCT}] {subject}"
    if html is None:
        html = _page(full_subject, f"<h2>{html_lib.escape(subject)}</h2>"
                                   f"<pre style=\"white-space:pre-wrap\">{html_lib.escape(text)}</pre>")
    return Message(key=key, subject=full_subject, text=text, html=html, to=to,
                   payload={"kind": "data_engineer_notice", "idempotency_key": key, "recipients": to},
                   slack_text=slack_escape(f"{full_subject}\n{text}"))
