"""Case lifecycle events (contract 1.2): the contract's rules, landing, and what dispatch still sends.

The warehouse side (stg_landing__case_events -> int_case_lifecycle -> fct_case_lifecycle) is
pinned by dbt unit tests (models/intermediate/cases/int_case_lifecycle.yml) and exercised end
to end, with the real consumer and a real build, in tests/loyalty_monitor/web/test_web.py.
"""

from __future__ import annotations

import copy
import datetime as dt
import json

import duckdb
import pytest
from alert_rows import alert, write_alerts

from loyalty_core.contract import decode
from loyalty_core.settings import load_settings
from loyalty_monitor import cases
from loyalty_monitor.alerting import build_channels, dispatch_alerts
from loyalty_monitor.alerting.dispatch import AlertPolicy
from streaming.landing import decode_chunk

SNOOZE = {"schema_version": 1, "event_id": "e-1", "event_type": "snooze", "occurred_at": "2026-05-26T08:42:10+02:00",
          "case_id": "a41c0f3e9d2b7c55", "customer_id": "C000042", "actor": "sofie.lindberg@example.com",
          "source": "web", "payload": {"until": "2026-06-15", "reason": "Purchasing manager on leave"}}


def decode_event(record: dict, key: bytes | None = b"C000042"):
    return decode("case_event", key, json.dumps(record).encode())


def changed(**changes) -> dict:
    record = copy.deepcopy(SNOOZE)
    for name, value in changes.items():
        if name.startswith("payload_"):
            record["payload"][name.removeprefix("payload_")] = value
        elif value is None:
            record.pop(name)
        else:
            record[name] = value
    return record


@pytest.mark.parametrize("event_type, payload", [
    ("acknowledge", {}), ("acknowledge", {"note": "on it"}),
    ("snooze", {"until": "2026-05-26", "reason": "today is fine"}),
    ("close", {"outcome": "saved", "note": None}), ("close", {"outcome": "duplicate"}),
    ("feedback", {"verdict": "not_a_risk", "comment": "seasonal"}), ("feedback", {"verdict": "unsure", "extra": 1}),
])
def test_every_case_event_type_is_valid(event_type: str, payload: dict) -> None:
    result = decode_event(changed(event_type=event_type, payload=payload))
    assert result.ok, result.error


@pytest.mark.parametrize("record, code", [
    (changed(payload_until="2026-06-31"), "bad_timestamp"),             # no such day
    (changed(payload_until="2026-05-24"), "bad_timestamp"),             # ended before it was set
    (changed(payload_until="15/06/2026"), "schema_violation"),
    (changed(payload={"until": "2026-06-15"}), "schema_violation"),     # a snooze needs a reason
    (changed(event_type="close", payload={"outcome": "won"}), "schema_violation"),
    (changed(event_type="feedback", payload={}), "schema_violation"),
    (changed(event_type="reopen"), "schema_violation"),
    (changed(actor=None), "schema_violation"),
    (changed(case_id="a\nb"), "schema_violation"),
    (changed(schema_version=2), "schema_violation"),
    (changed(occurred_at="2026-05-26T08:42:10"), "schema_violation"),  # no offset
    (changed(occurred_at="1999-05-26T08:42:10Z"), "bad_timestamp"),
])
def test_case_events_that_break_the_contract_have_their_code(record: dict, code: str) -> None:
    result = decode_event(record)
    assert not result.ok and result.error_code == code, result.error


def test_a_case_event_is_keyed_by_its_customer() -> None:
    assert decode_event(SNOOZE, key=b"C000043").error_code == "key_mismatch"


def test_case_events_land_flat_with_the_payload_kept_whole() -> None:
    messages = [(1, 7, 1_780_000_000_000, b"C000042", json.dumps(SNOOZE).encode()),
                (1, 8, None, b"C000042", json.dumps(changed(event_id="e-2", event_type="close",
                                                            payload={"outcome": "not_a_risk"})).encode()),
                (1, 9, None, b"C000042", b"{not json")]
    chunk = decode_chunk("case_event", "case-events", messages, 1_000_000, dt.datetime.now(dt.timezone.utc))
    assert [(i, code) for i, code, _ in chunk.rejects] == [(2, "not_json")]
    rows = chunk.table.to_pylist()
    assert rows[0]["snooze_until"] == dt.date(2026, 6, 15) and rows[0]["reason"] == "Purchasing manager on leave"
    assert rows[0]["event_date"] == dt.date(2026, 5, 26) and rows[0]["kafka_offset"] == 7
    assert rows[1]["outcome"] == "not_a_risk" and rows[1]["snooze_until"] is None
    assert json.loads(rows[1]["payload_json"]) == {"outcome": "not_a_risk"}


def test_the_library_refuses_events_that_break_the_contract() -> None:
    case = {"case_id": "a41c0f3e9d2b7c55", "customer_id": "C000042"}
    event = cases.snooze(case, "sofie.lindberg@example.com", dt.date.today() + dt.timedelta(days=3), "on leave")
    assert decode_event(event).ok and event["source"] == "cli"
    with pytest.raises(cases.CaseEventError, match="until"):
        cases.snooze(case, "sofie.lindberg@example.com", dt.date(2020, 1, 1), "too late")
    with pytest.raises(cases.CaseEventError, match="outcome"):
        cases.close(case, "sofie.lindberg@example.com", "won")
    for blank in ("", "   "):  # said in a user's words, not the schema's
        with pytest.raises(cases.CaseEventError, match="^a snooze needs its reason: why the case may wait"):
            cases.snooze(case, "sofie.lindberg@example.com", dt.date.today() + dt.timedelta(days=3), blank)


@pytest.mark.parametrize("until", [dt.date(9999, 12, 31), "9999-12-31", dt.date(2100, 1, 1)])
def test_a_snooze_past_2099_is_refused_in_words_not_with_the_schemas_pattern(until) -> None:
    """Tester: a snooze until the year 9999 showed the manager, in the web app, the raw regular
    expression of the contract's date ("does not match '^20[0-9]{2}-...'")."""
    case = {"case_id": "a41c0f3e9d2b7c55", "customer_id": "C000042"}
    with pytest.raises(cases.CaseEventError) as caught:
        cases.snooze(case, "sofie.lindberg@example.com", until, "back after the merger")
    message = str(caught.value)
    day = until if isinstance(until, str) else until.isoformat()
    assert message.startswith(f"snooze until must be a date before 2100, not {day}: choose the day"), message
    assert "^" not in message and "[0-9]" not in message
    assert decode_event(cases.snooze(case, "sofie.lindberg@example.com", dt.date(2099, 12, 31), "long leave")).ok


@pytest.mark.parametrize("until, says", [
    ("2100-01-01", ("payload.until: '2100-01-01' is not a date from 2000-01-01 to 2099-12-31 written YYYY-MM-DD, "
                    "e.g. 2026-03-02 (at data.payload.until)")),
    ("15/06/2026", "payload.until: '15/06/2026' is not a date from 2000-01-01 to 2099-12-31 written YYYY-MM-DD"),
])
def test_the_contract_says_a_date_out_of_its_range_in_words(until, says) -> None:
    # every producer's dates (snoozes, opportunities' close dates) met the pattern itself
    result = decode_event(changed(payload_until=until))
    assert not result.ok and says in result.error_detail and "[0-9]" not in result.error_detail, result.error_detail
    with pytest.raises(cases.CaseEventError, match="is not a date from 2000-01-01 to 2099-12-31"):
        cases.snooze({"case_id": "a41c0f3e9d2b7c55", "customer_id": "C000042"}, "sofie.lindberg@example.com",
                     "tomorrow", "on leave")


AS_OF = dt.date(2026, 3, 12)
POLICY = AlertPolicy(dispatch_window_days=7, max_per_manager_per_week=10)


def write_lifecycle(settings, rows: list[tuple]) -> None:
    con = duckdb.connect(str(settings.warehouse))
    # the mart's contract declares close_outcome too (dispatch reads it): none of these was closed with one
    con.execute("""create or replace table published.fct_case_lifecycle (case_id varchar, case_status varchar,
                   lifecycle_state varchar, snoozed_until date, snooze_reason varchar, close_outcome varchar)""")
    con.executemany("insert into published.fct_case_lifecycle (case_id, case_status, lifecycle_state, snoozed_until, "
                    "snooze_reason) values (?, ?, ?, ?, ?)", rows)
    con.close()


def _opens(settings, link: str) -> str:
    """The page a link from a message opens, after checking it is a sign-in link of the web app
    for the alert's account manager that has not expired."""
    from urllib.parse import parse_qs, urlsplit

    from loyalty_monitor.access import email_from_link

    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://loyalty.example.com/login", link
    query = parse_qs(parts.query)
    assert email_from_link(settings, query["token"][0]) == "am1@example.com"
    return query["next"][0]


def test_snoozed_and_closed_cases_send_nothing_and_an_ended_snooze_reminds_once(data_dir):
    settings = load_settings(data_dir=data_dir, web_base_url="https://loyalty.example.com/")
    day = AS_OF - dt.timedelta(days=2)
    write_alerts(settings, [
        alert("NEW", "AM1", 1000.0, day), alert("SNOOZED", "AM1", 2000.0, day), alert("CLOSED", "AM1", 3000.0, day),
        alert("WOKE", "AM1", 4000.0, dt.date(2026, 2, 1)), alert("RECOVERED", "AM1", 5000.0, dt.date(2026, 2, 1)),
        alert("FACT", "AM1", 6000.0, day, rule="dunning_escalation", alert_kind="action_needed")])
    write_lifecycle(settings, [
        ("SNOOZED", "open", "snoozed", AS_OF + dt.timedelta(days=1), "on leave"),
        ("CLOSED", "open", "closed", None, None),
        ("WOKE", "open", "acknowledged", AS_OF - dt.timedelta(days=1), "back <soon>"),
        ("RECOVERED", "closed", "acknowledged", AS_OF - dt.timedelta(days=1), "back soon"),
        ("FACT", "open", "closed", None, None)])  # a fact is no case: lifecycle rows never hold it
    channels = build_channels(settings, "file")
    result = dispatch_alerts(settings, AS_OF, channels=channels, policy=POLICY)
    outbox = settings.data_dir / "alerts" / "outbox"
    sent = sorted(p.name.removesuffix(".file.json") for p in outbox.glob("*.json"))
    reminder = f"WOKE-snoozed-{(AS_OF - dt.timedelta(days=1)).isoformat()}"
    assert sent == sorted(["NEW", "FACT", reminder]), "nothing about snoozed, closed or recovered cases"
    message = json.loads((outbox / f"{reminder}.file.json").read_text())
    assert message["subject"].startswith("[Loyalty Monitor] reminder:")
    assert "You snoozed this case until" in message["text"] and "back <soon>" in message["text"]
    assert _opens(settings, message["alerts"][0]["link"]) == "/cases/WOKE"
    assert "back &lt;soon&gt;" in (outbox / f"{reminder}.file.html").read_text()
    fact = json.loads((outbox / "FACT.file.json").read_text())
    assert _opens(settings, fact["alerts"][0]["link"]) == "/customers/C-FACT"
    assert result.sent == 3
    # the next run sends the reminder no second time, and still nothing about the held cases
    again = dispatch_alerts(settings, AS_OF + dt.timedelta(days=1), channels=channels, policy=POLICY)
    assert again.sent == 0


def test_dispatch_without_a_lifecycle_mart_holds_nothing(data_dir):
    settings = load_settings(data_dir=data_dir)
    write_alerts(settings, [alert("NEW", "AM1", 1000.0)])
    result = dispatch_alerts(settings, AS_OF, channels=build_channels(settings, "file"), policy=POLICY)
    assert result.sent == 1


def test_alerts_list_shows_held_alerts_as_held_with_why(data_dir, capsys):
    """A snoozed or closed case's alert is held by dispatch: `loyalty alerts list` says so, with the
    date and reason its account manager gave, in the table and in JSON, instead of `pending`."""
    from loyalty_monitor.alerting import list_alerts
    from loyalty_monitor.cli import main

    settings = load_settings(data_dir=data_dir)
    day = AS_OF - dt.timedelta(days=2)
    write_alerts(settings, [alert("NEW", "AM1", 1000.0, day), alert("SNOOZED", "AM1", 2000.0, day),
                            alert("CLOSED", "AM1", 3000.0, day), alert("WOKE", "AM1", 4000.0, day)])
    write_lifecycle(settings, [
        ("SNOOZED", "open", "snoozed", dt.date(2026, 12, 10), "on leave"),
        ("CLOSED", "open", "closed", None, None),
        ("WOKE", "open", "acknowledged", AS_OF - dt.timedelta(days=1), None)])
    rows = {r["alert_id"]: r for r in list_alerts(settings)}
    assert rows["NEW"]["status"] == "pending" and rows["NEW"]["held_because"] is None
    assert rows["SNOOZED"]["status"] == "held"
    assert rows["SNOOZED"]["held_because"] == "snoozed until 2026-12-10: on leave"
    assert rows["SNOOZED"]["snoozed_until"] == dt.date(2026, 12, 10)
    assert rows["CLOSED"]["status"] == "held" and rows["CLOSED"]["held_because"] == "closed by its account manager"
    assert rows["WOKE"]["status"] == "held" and "WOKE-snoozed-2026-03-11 goes instead" in rows["WOKE"]["held_because"]
    assert [r["alert_id"] for r in list_alerts(settings, status="pending")] == ["NEW"]
    assert sorted(r["alert_id"] for r in list_alerts(settings, status="held")) == ["CLOSED", "SNOOZED", "WOKE"]

    assert main(["alerts", "list", "--format", "json"]) == 0  # LOYALTY_DATA_DIR is data_dir
    listed = {r["alert_id"]: r for r in json.loads(capsys.readouterr().out)}
    assert listed["SNOOZED"]["status"] == "held" and listed["SNOOZED"]["snoozed_until"] == "2026-12-10"
    assert main(["alerts", "list"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "held: snoozed until 2026-12-10: on leave" in text, text
    assert "pending" in text and "held: closed by its account manager" in text


def test_case_events_that_break_the_contract_are_dead_lettered_with_their_error_and_can_be_replayed(settings, monkeypatch):
    """On the real broker and consumer: a close with an outcome the contract does not know and a
    snooze keyed by another customer go to the dead-letter topic with their error code and detail
    (`loyalty dead-letters list`), the good event lands; `loyalty dead-letters replay` sends the
    original bytes back to the case-events topic, where a data engineer's fix can land them."""
    import io

    from streaming_helpers import fast_settings, produce, read_topic

    from loyalty_core.landing_zone import LandingZone
    from streaming.consumer import JsonLog, LandingConsumer
    from streaming.dead_letters import list_dead_letters, replay_dead_letters

    settings = fast_settings(settings, monkeypatch)
    good = copy.deepcopy(SNOOZE)
    bad_outcome = {**copy.deepcopy(SNOOZE), "event_id": "e-2", "event_type": "close",
                   "payload": {"outcome": "won"}}
    wrong_key = {**copy.deepcopy(SNOOZE), "event_id": "e-3"}
    produce(settings, settings.topic_case_events, [
        (b"C000042", json.dumps(good).encode()), (b"C000042", json.dumps(bad_outcome).encode()),
        (b"C000099", json.dumps(wrong_key).encode())])
    summary = LandingConsumer(settings, until_idle=True, idle_s=1.0, log=JsonLog(io.StringIO())).run()
    assert (summary.landed, summary.dead_lettered) == (1, 2)
    landed = LandingZone.from_settings(settings).read("case_events")
    assert landed.column("event_id").to_pylist() == ["e-1"]
    letters = {json.loads(r.value)["event_id"]: r for r in list_dead_letters(settings)}
    assert set(letters) == {"e-2", "e-3"}
    assert letters["e-2"].source_topic == settings.topic_case_events
    assert letters["e-2"].error_code == "schema_violation" and "outcome" in letters["e-2"].error_detail
    assert letters["e-3"].error_code == "key_mismatch"

    before = len(read_topic(settings, settings.topic_case_events, quiet_s=0.5))
    result = replay_dead_letters(settings, error_code="key_mismatch")
    assert (result.replayed, result.skipped_unknown_topic) == (1, 0)
    after = read_topic(settings, settings.topic_case_events, quiet_s=0.5)
    assert len(after) == before + 1 and json.loads(after[-1].value)["event_id"] == "e-3"


def test_every_channel_carries_the_signed_link_that_opens_the_case(data_dir):
    """Issue 15: 'e-mail, Slack and webhook messages carry the links'. One case alert through a real
    SMTP server and a Slack and a JSON webhook on loopback: each message carries the account
    manager's signed sign-in link, which opens the case."""
    from alerting_servers import SmtpServer, WebhookServer, smtp_channel

    from loyalty_monitor.alerting.channels import SlackChannel, WebhookChannel

    settings = load_settings(data_dir=data_dir, web_base_url="https://loyalty.example.com/")
    write_alerts(settings, [alert("K7", "AM1", 7000.0, AS_OF - dt.timedelta(days=1))])
    with SmtpServer() as smtp, WebhookServer() as hooks:
        channels = [smtp_channel(smtp), SlackChannel(url=hooks.url + "/slack", timeout_s=5),
                    WebhookChannel(url=hooks.url + "/hook", timeout_s=5)]
        assert dispatch_alerts(settings, AS_OF, channels=channels, policy=POLICY).sent == 3
        (mail,) = smtp.inbox
        received = {r["path"]: r["json"] for r in hooks.received}
    text_link = mail.text.split("Open it: ", 1)[1].split()[0]
    assert _opens(settings, text_link) == "/cases/K7"
    assert f'href="{html_escape(text_link)}"' in mail.html
    slack_link = received["/slack"]["text"].split("<https://", 1)[1].split("|Open it>", 1)[0]
    assert _opens(settings, "https://" + slack_link.replace("&amp;", "&")) == "/cases/K7"
    assert _opens(settings, received["/hook"]["alerts"][0]["link"]) == "/cases/K7"


def html_escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)
