"""Issue 14, "a CLI that fails helpfully": the real ``loyalty`` command in a subprocess.

A broker that cannot be reached is one line naming the address and `loyalty broker start`, exit 1,
in seconds; ``produce`` refuses a topic the broker does not have unless ``--create``; ``--version``;
``alerts list`` filters and JSON; a closed pipe (``| head -1``) ends a command without a traceback.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from alert_rows import alert, write_alerts
from streaming_helpers import ROOT, read_topic

from loyalty_core.settings import load_settings
from loyalty_monitor.alerting import list_alerts

LOYALTY = str(Path(sys.executable).parent / "loyalty")


def _closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _loyalty(*args: str, env: dict[str, str] | None = None, input: bytes | None = None,
             timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    done = subprocess.run([LOYALTY, *args], cwd=ROOT, env=env or dict(os.environ), input=input,
                          capture_output=True, timeout=timeout)
    return done, time.monotonic() - started


@pytest.mark.parametrize("command", [["consume", "--until-idle"], ["produce", "-", "--topic", "touchpoints"]])
def test_no_broker_is_one_clear_line_and_a_failure(command, data_dir, tmp_path):
    port = _closed_port()
    env = {**os.environ, "LOYALTY_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"}
    done, seconds = _loyalty(*command, env=env, input=b'{"customer_id": "C1"}\n')
    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr  # no client log flood, no traceback
    assert f"127.0.0.1:{port}" in lines[0] and "`loyalty broker start`" in lines[0], lines[0]
    assert lines[0].startswith(f"loyalty {command[0]}: error: no Kafka broker answers at ")
    assert seconds < 15, seconds  # the clients alone retried for 31 s (produce) or for ever (consume)
    assert done.stdout == b""


def test_a_kafka_property_librdkafka_refuses_is_one_line_naming_the_variable(data_dir):
    """A passed-through property librdkafka does not know: it said only KafkaError{code=_INVALID_ARG,...}."""
    with socket.socket() as listening:  # an address that answers: the refusal comes before any Kafka talk
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        env = {**os.environ, "LOYALTY_BOOTSTRAP_SERVERS": f"127.0.0.1:{listening.getsockname()[1]}",
               "LOYALTY_KAFKA__CLIENT__RAK": "eu-1a"}
        done, _ = _loyalty("consume", "--until-idle", env=env)
    line = done.stderr.decode().strip()
    assert done.returncode == 1 and len(line.splitlines()) == 1, line
    assert line.startswith("loyalty consume: error: the Kafka clients refuse a passed-through property (from "
                           "environment LOYALTY_KAFKA__CLIENT__RAK): No such configuration property: "
                           '"client.rak"'), line


def test_no_embedded_broker_says_to_start_it(data_dir):
    """Nothing configured and no embedded broker running: the default address, and how to start one."""
    env = {k: v for k, v in os.environ.items() if k != "LOYALTY_BOOTSTRAP_SERVERS"}
    run_dir = data_dir / "run"
    run_dir.mkdir()
    port = _closed_port()  # a broker that was started once and is gone
    (run_dir / "broker.json").write_text(json.dumps({"pid": 1, "port": port, "bootstrap_servers": f"127.0.0.1:{port}",
                                                     "log_file": "x", "started_at": 0}))
    done, seconds = _loyalty("consume", "--until-idle", env=env)
    line = done.stderr.decode().strip()
    assert done.returncode == 1 and len(line.splitlines()) == 1, line
    assert f"127.0.0.1:{port}" in line and "is not running: start it with `loyalty broker start`" in line
    assert seconds < 15


def test_produce_refuses_an_unknown_topic_unless_create(settings):
    typo = f"touchpionts-{settings.topic_touchpoints.rsplit('-', 1)[-1]}"
    line = b'{"customer_id": "C00001", "note": "hello"}\n'
    refused, _ = _loyalty("produce", "-", "--topic", typo, input=line)
    stderr = refused.stderr.decode().strip()
    assert refused.returncode == 1 and len(stderr.splitlines()) == 1, stderr
    assert f"topic {typo!r} does not exist on {settings.bootstrap}" in stderr
    assert settings.topic_touchpoints in stderr and "--create" in stderr  # the existing topics are listed
    from streaming.topics import probe

    assert typo not in probe(settings)  # nothing was created by the attempt

    created, _ = _loyalty("produce", "-", "--topic", typo, "--create", input=line)
    assert created.returncode == 0, created.stderr
    assert f"1 messages to {typo}" in created.stdout.decode()
    assert typo in probe(settings)
    assert [m.value for m in read_topic(settings, typo)] == [line.rstrip(b"\n")]

    again, _ = _loyalty("produce", "-", "--topic", typo, input=line)  # it exists now
    assert again.returncode == 0, again.stderr


def test_consume_refuses_a_topic_the_broker_does_not_have_naming_the_setting(settings):
    """User trial: LOYALTY_TOPIC_TOUCHPOINTS=touchpoint (one letter short) and `loyalty consume
    --until-idle` said "stopped: caught_up" and exited 0: it had subscribed to nothing."""
    typo = settings.topic_touchpoints.replace("touchpoints", "touchpoint")
    env = {**os.environ, "LOYALTY_TOPIC_TOUCHPOINTS": typo}
    done, _ = _loyalty("consume", "--until-idle", env=env)
    stderr = done.stderr.decode().strip()
    assert done.returncode == 1 and len(stderr.splitlines()) == 1, stderr
    assert (f"the broker at {settings.bootstrap} has no topic {typo!r} (LOYALTY_TOPIC_TOUCHPOINTS; did you mean "
            f"{settings.topic_touchpoints!r}?): check the setting") in stderr, stderr
    from streaming.topics import probe

    assert typo not in probe(settings)  # the attempt created nothing


def test_version():
    from importlib.metadata import version

    done, _ = _loyalty("--version")
    assert done.returncode == 0
    assert done.stdout.decode().strip() == f"loyalty {version('loyalty-monitor')}"


def test_every_sub_command_has_an_example_in_its_help():
    import argparse

    from loyalty_monitor.cli import build_parser

    def walk(parser: argparse.ArgumentParser, name: str):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    yield f"{name} {sub_name}", sub
                    yield from walk(sub, f"{name} {sub_name}")

    commands = dict(walk(build_parser(), "loyalty"))
    assert {"loyalty alerts list", "loyalty produce", "loyalty warehouse build", "loyalty up"} <= set(commands)
    missing = [name for name, parser in commands.items()
               if not (parser.epilog or "").startswith("example:") or "loyalty " not in parser.epilog]
    assert not missing, missing
    shown, _ = _loyalty("alerts", "list", "--help")
    assert "example:\n  loyalty alerts list --manager" in shown.stdout.decode()


AS_OF = dt.date(2026, 3, 12)


@pytest.fixture()
def many_alerts(data_dir):
    """Alerts of three account managers over three weeks, in the published warehouse as dbt leaves
    them (no dispatch yet: all pending)."""
    settings = load_settings(data_dir=data_dir)
    rows = [alert(f"A{i:04d}", f"AM{i % 3}", 1000.0 + i, AS_OF - dt.timedelta(days=i % 21)) for i in range(600)]
    write_alerts(settings, rows)
    return settings


def test_alerts_list_filters_in_the_library(many_alerts):
    every = list_alerts(many_alerts)
    assert len(every) == 600
    mine = list_alerts(many_alerts, manager="AM1@Example.com")
    assert mine and {r["recipient"] for r in mine} == {"am1@example.com"} and len(mine) == 200
    assert {r["recipient"] for r in list_alerts(many_alerts, manager="manager am2")} == {"am2@example.com"}
    assert list_alerts(many_alerts, manager="nobody@example.com") == []
    since = AS_OF - dt.timedelta(days=6)
    recent = list_alerts(many_alerts, since=since)
    assert recent and all(r["alert_date"] >= since for r in recent)
    assert len(recent) == sum(1 for r in every if r["alert_date"] >= since)
    first = list_alerts(many_alerts, manager="am1@example.com", since=since, limit=5)
    assert first == [r for r in every if r["recipient"] == "am1@example.com" and r["alert_date"] >= since][:5]
    assert list_alerts(many_alerts, status="sent") == [] and list_alerts(many_alerts, limit=0) == []


def test_alerts_list_json_and_filters_on_the_command_line(many_alerts):
    since = AS_OF - dt.timedelta(days=6)
    done, _ = _loyalty("alerts", "list", "--format", "json", "--manager", "am0@example.com",
                       "--since", since.isoformat(), "--limit", "7")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert len(rows) == 7
    assert {r["recipient"] for r in rows} == {"am0@example.com"} and all(r["alert_date"] >= since.isoformat()
                                                                         for r in rows)
    assert rows == json.loads(json.dumps(list_alerts(many_alerts, manager="am0@example.com", since=since,
                                                     limit=7), default=str))
    table, _ = _loyalty("alerts", "list", "--manager", "am0@example.com", "--limit", "2")
    text = table.stdout.decode()
    rows_shown = [line for line in text.splitlines() if "pending" in line]
    assert table.returncode == 0 and "first 2" in text, text
    assert len(rows_shown) == 2 and all("am0@example.com" in line for line in rows_shown), text
    bad, _ = _loyalty("alerts", "list", "--since", "last week")
    assert bad.returncode == 2 and "not a date" in bad.stderr.decode()


def test_alerts_list_shows_the_id_a_case_command_takes_and_an_action_needed_id_is_explained(data_dir):
    """The case commands take an alert id "as in `loyalty alerts list`": the table shows it. An
    action-needed alert's id is no case: the error says so instead of "no case"."""
    settings = load_settings(data_dir=data_dir)
    case_id, complaint_id = "a" * 32, "b" * 32
    write_alerts(settings, [alert(case_id, "AM0", 5000.0),
                            alert(complaint_id, "AM1", 100.0, rule="new_high_complaint", alert_kind="action_needed")])
    table, _ = _loyalty("alerts", "list")
    text = table.stdout.decode()
    assert table.returncode == 0 and "alert id" in text, text
    assert [line for line in text.splitlines() if case_id in line and "C-" + case_id in line], text
    con = duckdb.connect(str(settings.warehouse))  # the cases the lookup reads: none yet
    con.execute("create table published.fct_case_lifecycle (case_id varchar, customer_id varchar)")
    con.close()
    done, _ = _loyalty("alerts", "ack", complaint_id, "--by", "am1@example.com")
    stderr = done.stderr.decode()
    assert done.returncode == 1 and len(stderr.strip().splitlines()) == 1, stderr
    assert "is an action-needed alert (new_high_complaint), not a churn-risk case" in stderr, stderr
    unknown, _ = _loyalty("alerts", "ack", "c" * 32, "--by", "am1@example.com")
    assert unknown.returncode == 1 and "no case" in unknown.stderr.decode()


@pytest.mark.parametrize("fmt", ["json", "table"])
def test_a_closed_pipe_ends_the_listing_quietly(many_alerts, fmt):
    """`loyalty alerts list | head -1` through a real shell pipe: head closes it after one line."""
    done = subprocess.run(["bash", "-c", f"'{LOYALTY}' alerts list --format {fmt} | head -1; "
                                         "echo \"status ${PIPESTATUS[0]}\" >&2"],
                          cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=120)
    assert len(done.stdout.splitlines()) == 1, done.stdout[:500]
    status = done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr and "Broken pipe" not in done.stderr, done.stderr
    assert done.stderr.strip() == status, done.stderr  # nothing but the status line
    assert status in ("status 0", "status 1", "status 141"), status


@pytest.mark.parametrize("args, says", [
    (["explain", "C1", "--days", "0"], "argument --days: must be at least 1, got 0"),
    (["explain", "C1", "--as-of", "soon"], "argument --as-of: not a date (expected YYYY-MM-DD): 'soon'"),
    (["warehouse", "build", "--as-of", "2026-13-01"], "argument --as-of: not a date"),
    (["warehouse", "status", "--as-of", "yesterday"], "argument --as-of: not a date"),
    (["generate", "--customers", "many"], "argument --customers: 'many' is not a whole number"),
    (["land-offline"], "nothing to land: give --touchpoints FILE and/or --customers FILE"),
    (["explain", "C1", "--days", "100000000"], "argument --days: at most 36500 (a century), got 100000000"),
    (["report", "--out", ""], "argument --out: give a file name"),
    # a run as of a future day expired real alerts for good (user trial: a year typed wrong)
    (["run", "--as-of", "2099-03-01"], "as-of date 2099-03-01 is in the future"),
    (["run", "--start", "2026-11-01", "--end", "2099-01-01"], "as-of date 2099-01-01 is in the future"),
    (["run", "--as-of", "0001-01-01"], "as-of date 0001-01-01 is before the earliest event date"),
    (["report", "--out", "/tmp"], "argument --out: /tmp is a directory: name a file in it"),
    (["explain", "C1", "--html", "/tmp"], "argument --html: /tmp is a directory: name a file in it"),
    (["validate", "--status", "all"], "--status all goes with --quarantined: `loyalty validate --quarantined "
                                      "--status all` lists those rows"),
    # a missing option is said before the broker is asked (none runs here)
    (["dead-letters", "export"], "export needs --out FILE"),
    (["dead-letters", "purge"], "purge needs --customer ID (repeatable) and/or --erased"),
])
def test_bad_arguments_are_refused_before_any_work_with_what_to_give(args, says, data_dir):
    done, _ = _loyalty(*args)
    stderr = done.stderr.decode()
    assert done.returncode in (1, 2) and says in stderr, stderr
    assert "Traceback" not in stderr and "building the warehouse" not in stderr
    assert done.stdout == b"" and not any(data_dir.iterdir()), "nothing was started or written"


@pytest.mark.parametrize("days", ["0", "-5", "nan", "inf"])
def test_a_sign_in_link_that_would_never_work_is_refused(days, data_dir):
    done, _ = _loyalty("web", "link", "anna.holm@example.com", "--days", days)
    assert done.returncode == 2 and done.stdout == b""  # no link printed that has expired already
    assert f"argument --days: must be a number above 0, got {days}" in done.stderr.decode()


@pytest.mark.parametrize("email", ["", "  ", "anna", "@"])
def test_a_sign_in_link_needs_an_email_address(email, data_dir):
    done, _ = _loyalty("web", "link", email)
    assert done.returncode == 1 and done.stdout == b""
    assert f"error: {email!r} is not an e-mail address: give the person's, e.g. anna@example.com" in done.stderr.decode()


def test_a_sign_in_link_leads_to_the_port_the_command_names(data_dir):
    done, _ = _loyalty("web", "--port", "8051", "link", "anna.holm@example.com", "--days", "0.5")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().startswith("http://127.0.0.1:8051/login?token=")


def test_status_on_a_past_day_counts_the_episodes_open_that_day_and_refuses_a_day_not_built(data_dir):
    settings = load_settings(data_dir=data_dir)
    write_alerts(settings, [
        alert("OPEN", "AM0", 1000.0, AS_OF - dt.timedelta(days=10)),
        alert("ENDED", "AM0", 1000.0, AS_OF - dt.timedelta(days=20), episode_end_date=AS_OF - dt.timedelta(days=12)),
        alert("DUN", "AM1", 1000.0, AS_OF - dt.timedelta(days=14), rule="dunning_escalation", alert_kind="action_needed",
              episode_end_date=AS_OF - dt.timedelta(days=14)),
    ])
    con = duckdb.connect(str(settings.warehouse))
    con.execute("create table published.fct_customer_health_daily as select customer_id, as_of_date, status "
                "from (values ('C-OPEN'), ('C-ENDED')) c(customer_id), "
                "(select unnest(range(date '2026-02-10', date '2026-03-13', interval 1 day))::date as as_of_date), "
                "(values ('green')) s(status)")
    con.close()

    def status(*args: str) -> dict:
        done, _ = _loyalty("warehouse", "status", *args)
        assert done.returncode == 0, done.stderr.decode()
        return json.loads(done.stdout)

    assert status()["open_alert_episodes"] == {"churn_risk": 1}  # the latest day: the episode still open
    past = status("--as-of", str(AS_OF - dt.timedelta(days=14)))
    assert past["open_alert_episodes"] == {"churn_risk": 1, "dunning_escalation": 1}  # its last day counts
    assert past["customers_by_status"] == {"green": 2}
    assert status("--as-of", str(AS_OF - dt.timedelta(days=12)))["open_alert_episodes"] == {"churn_risk": 1}
    assert status("--as-of", str(AS_OF - dt.timedelta(days=11)))["open_alert_episodes"] == {}  # between the two
    for day in (AS_OF + dt.timedelta(days=1), dt.date(2026, 1, 1)):
        done, _ = _loyalty("warehouse", "status", "--as-of", str(day))
        assert done.returncode == 1 and done.stdout == b""
        assert (f"published has no day {day}: its days run from 2026-02-10 to {AS_OF}; choose an --as-of in that range"
                in done.stderr.decode())


@pytest.mark.parametrize("args", [["erase", "--pending", "--by", "dpo@example.com"],
                                  ["erase", "C1", "--by", "dpo@example.com"], ["erasures"],
                                  ["validate", "--quarantined"], ["validate", "--accept", "3"]])
def test_commands_on_what_is_there_refuse_a_data_directory_that_does_not_exist(args, tmp_path):
    """A misspelt LOYALTY_DATA_DIR: 'nothing to erase' or '0 erasures' would read as done, and an
    erasure would have started a register of its own there."""
    missing = tmp_path / "no-such-data"
    done, _ = _loyalty(*args, env={**os.environ, "LOYALTY_DATA_DIR": str(missing)})
    assert done.returncode == 1 and done.stdout == b"", done.stdout
    assert done.stderr.decode().strip().endswith(
        f"error: no data directory at {missing}: check LOYALTY_DATA_DIR (or data_dir in the settings file); "
        "nothing was read or changed")
    assert not missing.exists()
