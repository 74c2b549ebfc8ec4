"""Fault injection, end to end (issue 12): bad input and bad timing on the real parts, and each
time the other customers are still built, published and alerted, and nothing is lost.

One generated history (30 customers, 7 months) is produced to the session's Tansu broker with
faults mixed in, landed by the real consumer, and run by the real ``loyalty run`` (Airflow
``dag.test()``, dbt on DuckDB, Great Expectations) with delivery to a real SMTP server:

* the contract's extreme valid values on one customer (money 1e12, a week-long call, 100 years
  overdue): built, scored and published like any other;
* a year-0001 and a year-9999 event: dead-lettered as ``bad_timestamp``, nothing else affected;
* a customer renamed ``"Evil Corp\\r\\nBcc: ..."`` with an open high-severity complaint: the alert
  reaches its account manager as one well-formed mail, the name on one line, no injected header;
* two ``loyalty run`` at once: the second says another run holds the pipeline and exits non-zero;
  the first completes;
* a tiny next-day batch of nine events, two of them for customers nobody knows yet: not a
  critical failure, the day is built;
* a feed that stopped: a run a month after the last event fails its gate as a stopped feed, sends
  no customer alert, and tells the data engineers;
* producers that add their own payload fields named like another event type's (a help desk's ticket
  ``"stage": "escalated"`` on every complaint, a mail system's ``"severity"`` on every e-mail): the
  contract keeps unknown payload fields, so they stay in ``payload_json`` and do not fill the typed
  dunning-stage and severity columns, whose critical gate checks they would fail (they did: the
  run stopped for every customer).

Other fault tests carry the same ``faults`` marker where their parts live: the slow-drip webhook
and hung SMTP server (tests/loyalty_monitor/alerting/test_alerting_delivery.py), erasure with the full-directory search
(tests/loyalty_monitor/warehouse/test_erasure.py), quarantined rows (tests/expectations/test_quality_quarantine.py).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pytest
from alerting_servers import SmtpServer, airflow_test_environment

airflow_test_environment()

import pipeline_world  # noqa: E402
from pipeline_world import loyalty  # noqa: E402

from loyalty_core.contract import decode  # noqa: E402
from loyalty_core.settings import PROJECT_ROOT  # noqa: E402
from streaming.landing import contract_window  # noqa: E402
from streaming.producer import key_and_value  # noqa: E402

pytestmark = [pytest.mark.faults, pytest.mark.slow]

START = dt.date(2025, 8, 1)
END = dt.date(2026, 2, 28)
ONCALL = "oncall@example.com"
EVIL_NAME = "Evil Corp\r\nBcc: attacker@example.com"
MAX_MONEY = 1_000_000_000_000
# fields other producers add to every complaint and e-mail (allowed: unknown payload fields are kept)
FOREIGN_FIELDS = {"complaint": {"stage": "escalated"}, "email": {"severity": "normal"}}


def _touch(n: int, customer: str, when: str, event_type: str, department: str, payload: dict, **extra) -> dict:
    return {"schema_version": 1, "event_id": f"fault-{n:04d}", "event_type": event_type, "occurred_at": when,
            "customer_id": customer, "department": department, "payload": payload, **extra}


def _faults(customers: list[dict]) -> tuple[list[dict], list[dict], dict[str, str]]:
    """Extra touchpoint and customer records with the faults, and who got which fault."""
    extreme, dated, evil = (c["customer_id"] for c in customers[:3])
    touches = [
        _touch(1, extreme, "2026-01-10T09:00:00Z", "order", "sales",
               {"amount": MAX_MONEY, "currency": "EUR", "product_line": "pumps"}, direction="inbound"),
        _touch(2, extreme, "2026-01-11T09:00:00Z", "call", "sales", {"answered": True, "duration_s": 604800},
               direction="outbound"),
        _touch(3, extreme, "2026-01-12T09:00:00Z", "dunning_contact", "finance",
               {"stage": "reminder", "amount_overdue": MAX_MONEY, "days_overdue": 36500, "invoice_id": "I-1"}),
        _touch(4, dated, "0001-01-01T00:00:00Z", "call", "sales", {"answered": True, "duration_s": 60},
               direction="outbound"),
        _touch(5, dated, "9999-12-31T23:59:59Z", "call", "sales", {"answered": True, "duration_s": 60},
               direction="outbound"),
        # open for nine days on the run's date: past the rule's seven-day deadline
        _touch(6, evil, f"{END - dt.timedelta(days=9)}T10:00:00Z", "complaint", "support", {"severity": "high"}),
    ]
    # an ordinary customer of another manager with the same alert: delivered next to the fault
    evil_manager = customers[2]["account_manager"]["email"]
    other = next(c for c in customers[3:] if c["account_manager"]["email"] != evil_manager)
    touches.append(_touch(7, other["customer_id"], f"{END - dt.timedelta(days=9)}T11:00:00Z", "complaint",
                          "support", {"severity": "high"}))
    renamed = dict(next(c for c in customers if c["customer_id"] == evil), name=EVIL_NAME,
                   updated_at=f"{END - dt.timedelta(days=20)}T08:00:00Z")
    return touches, [renamed], {"extreme": extreme, "dated": dated, "evil": evil, "other": other["customer_id"],
                                "other_name": other["name"]}


def _add_foreign_fields(line: str) -> str:
    try:
        record = json.loads(line)
    except ValueError:
        return line  # the generator's deliberately broken lines stay as they are
    if isinstance(record, dict) and isinstance(record.get("payload"), dict) and record.get("event_type") in FOREIGN_FIELDS:
        record["payload"].update(FOREIGN_FIELDS[record["event_type"]])
        return json.dumps(record)
    return line


@pytest.fixture(scope="module")
def world(broker, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    data_dir = root / "data"
    data_dir.mkdir()
    scoring = root / "scoring.yml"
    shipped = (PROJECT_ROOT / "config" / "scoring.yml").read_text()
    assert "max_per_manager_per_week: 3" in shipped
    scoring.write_text(shipped.replace("max_per_manager_per_week: 3", "max_per_manager_per_week: 100"))
    suffix = f"{os.getpid()}-faults"
    with SmtpServer() as smtp, pytest.MonkeyPatch.context() as mp:
        settings, child_env = pipeline_world.enter(
            mp, broker, data_dir, scoring, suffix, LOYALTY_ALERT_CHANNELS="smtp,file",
            LOYALTY_SMTP_HOST="127.0.0.1", LOYALTY_SMTP_PORT=str(smtp.port), LOYALTY_DATA_ENGINEER_EMAILS=ONCALL)
        gen = root / "generated"
        loyalty(child_env, "generate", "--customers", "30", "--seed", "11", "--start", START.isoformat(),
                "--end", END.isoformat(), "--out", str(gen))
        records = [json.loads(line) for line in (gen / "customers.jsonl").read_text().splitlines()]
        erased = {r["customer_id"] for r in records if r.get("tombstone")}
        customers = [c for c in records if c.get("account_manager") and c["customer_id"] not in erased]
        touches, renamed, who = _faults(customers)
        generated = gen / "touchpoints.jsonl"
        generated.write_text("".join(_add_foreign_fields(line) + "\n" for line in generated.read_text().splitlines()))
        with (gen / "touchpoints.jsonl").open("a") as out:
            out.writelines(json.dumps(t) + "\n" for t in touches)
        with (gen / "customers.jsonl").open("a") as out:
            out.writelines(json.dumps(c) + "\n" for c in renamed)
        loyalty(child_env, "produce", str(gen / "customers.jsonl"), "--topic", settings.topic_customers)
        loyalty(child_env, "produce", str(gen / "touchpoints.jsonl"), "--topic", settings.topic_touchpoints)
        loyalty(child_env, "consume", "--until-idle")
        yield {"settings": settings, "env": child_env, "smtp": smtp, "gen": gen, "who": who, "root": root,
               "erased": erased,
               "managers": {c["customer_id"]: c["account_manager"]["email"] for c in customers}}


def _expected_landing(path: Path, settings, erased: set[str]) -> tuple[set[str], int]:
    """Event ids the contract accepts (less those of customers erased by tombstone, whom the
    pipeline removes from the landing zone), and the number of lines it rejects, decoding each
    line as the consumer does (the same window, the same key rule)."""
    window, valid, rejected = contract_window(settings), set(), 0
    for line in path.read_bytes().splitlines():
        if not line.strip():
            continue
        key, value = key_and_value(line)
        decoded = decode("touchpoint", key, value, settings.max_message_bytes, window)
        if decoded.ok:
            if decoded.record["customer_id"] not in erased:
                valid.add(decoded.record["event_id"])
        else:
            rejected += 1
    return valid, rejected


def _warehouse(settings):
    return duckdb.connect(str(settings.warehouse), read_only=True)


@pytest.fixture(scope="module")
def concurrent_runs(world):
    """Two ``loyalty run`` for the same date at once; the second must not corrupt the first."""
    env = dict(world["env"], LOYALTY_LOCK_TIMEOUT_S="2")
    lock = world["settings"].data_dir / "pipeline.lock"
    first = subprocess.Popen([str(Path(sys.executable).parent / "loyalty"), "run", "--as-of", END.isoformat()],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not lock.exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.2)
    time.sleep(1.0)
    second = loyalty(env, "run", "--as-of", END.isoformat(), check=False, timeout=120)
    first_out, _ = first.communicate(timeout=900)
    return {"first": (first.returncode, first_out), "second": second}


def test_two_runs_at_once_one_waits_its_turn_and_fails_clearly(concurrent_runs):
    code, out = concurrent_runs["first"]
    assert code == 0, out
    second = concurrent_runs["second"]
    assert second.returncode != 0
    said = second.stdout + second.stderr
    assert "pipeline" in said and "loyalty run" in said or "another" in said, said
    assert "Traceback" not in said and "foreign key" not in said.lower(), said


def test_nothing_valid_is_lost_and_every_rejected_line_is_a_dead_letter(world, concurrent_runs):
    from streaming.dead_letters import list_dead_letters

    settings = world["settings"]
    valid, rejected = _expected_landing(world["gen"] / "touchpoints.jsonl", settings, world["erased"])
    landed = ds.dataset(sorted(Path(settings.landing, "touchpoints").rglob("*.parquet")), format="parquet")
    landed_ids = set(landed.to_table(columns=["event_id"]).column("event_id").to_pylist())
    assert landed_ids == valid
    letters = [r for r in list_dead_letters(settings) if r.source_topic == settings.topic_touchpoints]
    assert len(letters) == rejected
    dated = [r for r in letters if b"fault-0004" in (r.value or b"") or b"fault-0005" in (r.value or b"")]
    assert sorted(r.error_code for r in dated) == ["bad_timestamp", "bad_timestamp"]


def test_extreme_values_and_bad_dates_leave_every_customer_built_and_published(world, concurrent_runs):
    settings, who = world["settings"], world["who"]
    con = _warehouse(settings)
    try:
        built = {r[0] for r in con.execute("select distinct customer_id from published.fct_customer_health_daily "
                                           "where as_of_date = ?", [END]).fetchall()}
        first_day = con.execute("select min(as_of_date) from published.fct_customer_health_daily "
                                "where customer_id = ?", [who["dated"]]).fetchone()[0]
        orders = con.execute("select max(amount) from published.fct_touchpoints where customer_id = ?",
                             [who["extreme"]]).fetchone()[0]
    finally:
        con.close()
    assert set(world["managers"]) - built == set(), "every known customer has its row for the run's date"
    assert first_day >= START - dt.timedelta(days=1), "the year-0001 event did not stretch the daily series"
    assert float(orders) == MAX_MONEY


def test_a_crlf_name_reaches_the_manager_as_one_well_formed_mail(world, concurrent_runs):
    evil = world["who"]["evil"]
    manager = world["managers"][evil]
    about = [m for m in world["smtp"].inbox if manager in m.rcpt_tos and "Evil Corp" in m.text]
    assert about, "the open high-severity complaint of the renamed customer was alerted"
    for mail in about:
        assert mail.message["Bcc"] is None and "\n" not in str(mail.message["Subject"])
    everyone = {rcpt for m in world["smtp"].inbox for rcpt in m.rcpt_tos}
    assert "attacker@example.com" not in everyone
    other = world["who"]["other"]
    assert any(world["managers"][other] in m.rcpt_tos and world["who"]["other_name"] in m.text
               for m in world["smtp"].inbox), "another manager's alert went out in the same run"


def test_a_tiny_batch_with_two_unknown_customers_is_built(world, concurrent_runs, tmp_path):
    settings, env = world["settings"], world["env"]
    day = END + dt.timedelta(days=1)
    known = list(world["managers"])[3:10]
    lines = [_touch(100 + i, c, f"{day}T09:00:00Z", "email", "sales", {}, direction="outbound")
             for i, c in enumerate(known)]
    lines += [_touch(200 + i, f"NEW{i}", f"{day}T10:00:00Z", "email", "sales", {}, direction="inbound")
              for i in range(2)]
    batch = tmp_path / "tiny.jsonl"
    batch.write_text("".join(json.dumps(t) + "\n" for t in lines))
    loyalty(env, "produce", str(batch), "--topic", settings.topic_touchpoints)
    loyalty(env, "consume", "--until-idle")
    loyalty(env, "run", "--as-of", day.isoformat())
    con = _warehouse(settings)
    try:
        built = {r[0] for r in con.execute("select distinct customer_id from published.fct_customer_health_daily "
                                           "where as_of_date = ?", [day]).fetchall()}
    finally:
        con.close()
    assert set(world["managers"]) <= built


def test_a_stopped_feed_fails_the_gate_sends_no_customer_alert_and_tells_the_data_engineers(world, concurrent_runs):
    settings, smtp = world["settings"], world["smtp"]
    before = len(smtp.inbox)
    run = loyalty(world["env"], "run", "--as-of", (END + dt.timedelta(days=40)).isoformat(), check=False)
    assert run.returncode != 0
    new = smtp.inbox[before:]
    assert new and all(m.rcpt_tos == [ONCALL] for m in new), "only the data engineers hear about it"
    told = " ".join(m.text for m in new).lower()
    assert "stale" in told or "stopped" in told or "no new" in told, told[:2000]
    con = _warehouse(settings)
    try:
        latest = con.execute("select max(as_of_date) from published.fct_customer_health_daily").fetchone()[0]
    finally:
        con.close()
    assert latest <= END + dt.timedelta(days=1), "nothing was published for the silent month"


def test_payload_fields_named_like_another_types_are_kept_and_do_not_trip_the_gate(world, concurrent_runs):
    """The run above passed with every complaint carrying a ticket ``stage`` and every e-mail a
    ``severity`` (test_two_runs_at_once...); here: nothing was held for them, and they are kept."""
    settings = world["settings"]
    quarantine = Path(settings.data_dir) / "quality" / "quarantine.parquet"
    if quarantine.exists():
        held = duckdb.sql(f"select expectation, reason from '{quarantine}' where concat(expectation, reason) "
                          "similar to '.*(stage|severity).*'").fetchall()
        assert held == [], held
    landed = ds.dataset(sorted(Path(settings.landing, "touchpoints").rglob("*.parquet")), format="parquet")
    rows = landed.to_table(columns=["event_id", "event_type", "stage", "severity", "payload_json"]).to_pylist()
    # the generated complaints (this module's own, fault-0006/7, were appended without the field)
    complaints = [r for r in rows if r["event_type"] == "complaint" and not r["event_id"].startswith("fault-")]
    emails = [r for r in rows if r["event_type"] == "email" and json.loads(r["payload_json"]).get("severity")]
    assert len(complaints) >= 5 and len(emails) >= 5, "the history has complaints and e-mails"
    assert all(r["stage"] is None and r["severity"] in ("low", "medium", "high") for r in complaints)
    assert all(json.loads(r["payload_json"])["stage"] == "escalated" for r in complaints), "the field is kept"
    assert all(r["severity"] is None for r in emails)
