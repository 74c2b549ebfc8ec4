"""The consumer service on the real (Tansu) broker: volume, bad messages, other clients, trickle, SIGTERM, metrics."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request

import pytest
from streaming_helpers import (
    ROOT,
    coordinates,
    fast_settings,
    headers,
    landed,
    log_events,
    produce,
    read_topic,
    start_consumer,
    wait_for,
)

from loyalty_core.contract import decode
from loyalty_core.landing_zone import LandingZone
from loyalty_monitor.broker import free_port
from streaming import samples
from streaming.consumer import JsonLog, LandingConsumer, metrics_files
from streaming.metrics import parse
from streaming.producer import produce_lines


def _consume_until_idle(settings, **kwargs):
    log = io.StringIO()
    summary = LandingConsumer(settings, until_idle=True, idle_s=1.0, log=JsonLog(log), **kwargs).run()
    return summary, [json.loads(line) for line in log.getvalue().splitlines()]


def test_100k_generated_events_land_as_exactly_100k_unique_rows(settings, monkeypatch, tmp_path):
    from loyalty_monitor.generator import generate

    settings = fast_settings(settings, monkeypatch, LOYALTY_BATCH_MAX_RECORDS="20000",
                             LOYALTY_MAX_POLL_INTERVAL_MS="6000", LOYALTY_SESSION_TIMEOUT_MS="6000")
    generated = generate(tmp_path / "gen", target_events=105_000, start="2026-05-01", end="2026-05-31", seed=7)
    # The first 100,000 distinct valid events (the generator's re-sent duplicates and malformed
    # lines are exercised elsewhere; here every event must become exactly one row).
    lines, event_ids = [], set()
    with open(generated.touchpoints_file, "rb") as fh:
        for line in fh:
            decoded = decode("touchpoint", None, line.rstrip(b"\n"))
            if decoded.ok and decoded.record["event_id"] not in event_ids:
                event_ids.add(decoded.record["event_id"])
                lines.append(line.rstrip(b"\n"))
            if len(lines) == 100_000:
                break
    assert len(lines) == 100_000
    sent = produce_lines(settings, ((0, line) for line in lines), settings.topic_touchpoints)
    assert (sent.sent, sent.failed, sent.unkeyed) == (100_000, 0, 0)

    summary, log = _consume_until_idle(settings)

    table = landed(settings)
    assert table.num_rows == 100_000
    assert len(set(coordinates(table))) == 100_000
    assert set(table.column("event_id").to_pylist()) == event_ids
    assert (summary.consumed, summary.landed, summary.dead_lettered) == (100_000, 100_000, 0)
    assert summary.stopped_by == "caught_up"
    assert all(b["messages"] <= 20_000 for b in log if b["event"] == "batch_committed")
    # one "batch landed" notice per committed batch, covering every landed record
    notices = [json.loads(m.value) for m in read_topic(settings, settings.topic_batches)]
    assert sum(n["records"] for n in notices) == 100_000
    assert {f for n in notices for f in n["files"]} == set(LandingZone.from_settings(settings).files("touchpoints"))
    assert not list((settings.data_dir / "landing" / "_pending").glob("*"))


def _bad_customers():
    good = samples.customer(3)
    no_manager = {k: v for k, v in good.items() if k != "account_manager"}
    return [
        ("customer without account_manager", "schema_violation", b"C00003", samples.encode(no_manager)),
        ("customer with bad email", "schema_violation", b"C00003",
         samples.encode(samples.customer(3, account_manager={"id": "A", "name": "B", "email": "nope"}))),
        ("customer segment unknown", "schema_violation", b"C00003", samples.encode(samples.customer(3, segment="vip"))),
        ("tombstone with an empty key", "bad_key", b"", None),
        ("customer key mismatch", "key_mismatch", b"C00004", samples.encode(good)),
    ]


def test_every_bad_message_is_dead_lettered_with_reason_and_source_and_every_good_one_lands(
        settings, monkeypatch, tmp_path):
    settings = fast_settings(settings, monkeypatch)
    bad_touchpoints = samples.bad_touchpoints(settings.max_message_bytes)
    bad_customers = _bad_customers()
    assert len({label for label, *_ in bad_touchpoints + bad_customers}) >= 20
    assert len({code for _, code, *_ in bad_touchpoints + bad_customers}) == 10  # every contract error code, and unlandable

    # interleave: good, bad, good, bad ... on both topics
    tp_messages, tp_expect = [], []
    for i, (label, code, key, value) in enumerate(bad_touchpoints):
        for j in range(3):
            tp_messages.append(next(samples.touchpoint_messages(1, start=i * 3 + j)))
            tp_expect.append(None)
        tp_messages.append((key, value))
        tp_expect.append((label, code))
    cu_messages, cu_expect = [], []
    for i, (label, code, key, value) in enumerate(bad_customers):
        cu_messages.append((f"C{i:05d}".encode(), samples.encode(samples.customer(i))))
        cu_expect.append(None)
        cu_messages.append((key, value))
        cu_expect.append((label, code))
    cu_messages.append((b"C00001", None))  # a valid tombstone
    cu_expect.append(None)
    tp_coords = produce(settings, settings.topic_touchpoints, tp_messages, headers=[("trace", b"t-1")])
    cu_coords = produce(settings, settings.topic_customers, cu_messages)

    service = LandingConsumer(settings, until_idle=True, idle_s=1.0, log=JsonLog(io.StringIO()))
    summary = service.run()
    assert metrics_files(settings) == []  # a consumer that stopped leaves no metrics file behind

    dead = {(h["dlq.source.topic"], int(h["dlq.source.partition"]), int(h["dlq.source.offset"])): (m, h)
            for m in read_topic(settings, settings.topic_dead_letter) for h in [headers(m)]}
    expected_dead = {}
    for topic, coords, expect, messages in (
            (settings.topic_touchpoints, tp_coords, tp_expect, tp_messages),
            (settings.topic_customers, cu_coords, cu_expect, cu_messages)):
        for (partition, offset), what, (key, value) in zip(coords, expect, messages):
            if what is not None:
                expected_dead[(topic, partition, offset)] = (what, key, value)
    assert set(dead) == set(expected_dead)
    for coords, ((label, code), key, value) in expected_dead.items():
        message, head = dead[coords]
        assert head["dlq.error.code"] == code, label
        assert head["dlq.error.detail"], label
        assert head["dlq.failed_at"].startswith("20"), label
        assert (message.key, message.value) == (key, value), f"{label}: original bytes kept"
        if coords[0] == settings.topic_touchpoints:
            assert head["trace"] == "t-1", "the original headers travel along"

    good_tp = {coords for coords, what in zip(tp_coords, tp_expect) if what is None}
    table = landed(settings)
    assert set(coordinates(table)) == good_tp and table.num_rows == len(good_tp)
    customers = landed(settings, "customers")
    assert customers.num_rows == len(bad_customers) + 1
    assert customers.filter(customers["is_deleted"]).column("customer_id").to_pylist() == ["C00001"]
    assert summary.dead_lettered == len(expected_dead)

    metrics = parse(service.metrics.render())
    for (label, code) in {w for w in tp_expect if w}:
        assert metrics[f'loyalty_consumer_dead_letters_total{{code="{code}",consumer="{service.instance}",'
                       f'topic="{settings.topic_touchpoints}"}}'] >= 1

    # the CLI lists them, and replay re-publishes the original bytes to the source topic
    env = dict(os.environ)
    listed = subprocess.run([sys.executable, "-m", "loyalty_monitor.cli", "dead-letters", "list", "--format",
                             "json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert len(rows) == len(expected_dead)
    assert {r["error_code"] for r in rows} == {code for (_, code), *_ in expected_dead.values()}
    table_out = subprocess.run([sys.executable, "-m", "loyalty_monitor.cli", "dead-letters", "list", "--limit",
                                "3"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert table_out.returncode == 0 and "3 dead letters" in table_out.stdout
    # every code the consumer writes is one the filter knows; a typo is refused, not an empty list
    from streaming.dead_letters import ERROR_CODES

    assert {code for (_, code), *_ in expected_dead.values()} <= set(ERROR_CODES)
    typo = subprocess.run([sys.executable, "-m", "loyalty_monitor.cli", "dead-letters", "replay", "--error-code",
                           "schema-violation"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert typo.returncode == 1 and "unknown error code 'schema-violation'" in typo.stderr, typo.stderr
    assert "schema_violation" in typo.stderr
    before = {(m.partition, m.offset) for m in read_topic(settings, settings.topic_customers, quiet_s=0.5)}
    replayed = subprocess.run([sys.executable, "-m", "loyalty_monitor.cli", "dead-letters", "replay",
                               "--error-code", "key_mismatch"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60)
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 3 dead letters" in replayed.stdout  # 2 touchpoints + 1 customer
    new = [m for m in read_topic(settings, settings.topic_customers, quiet_s=0.5)
           if (m.partition, m.offset) not in before]
    assert [(m.key, m.value) for m in new] == [(b"C00004", samples.encode(samples.customer(3)))]

    # each dead letter is replayed once: the replayed messages fail again (the key still mismatches),
    # and the next replay sends only those new dead letters, not the originals a second time
    # (replaying every time doubled the dead letters and landed a fixed event once per replay)
    _consume_until_idle(settings)
    cli = [sys.executable, "-m", "loyalty_monitor.cli", "dead-letters"]
    again = subprocess.run([*cli, "replay", "--error-code", "key_mismatch"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "replayed 3 dead letters" in again.stdout and "3 already replayed" in again.stdout, again.stdout
    rows = json.loads(subprocess.run([*cli, "list", "--error-code", "key_mismatch", "--format", "json"], cwd=ROOT,
                                     env=env, capture_output=True, text=True, timeout=60).stdout)
    assert len(rows) == 6 and all(r["replayed_at"] for r in rows), rows
    third = subprocess.run([*cli, "replay", "--error-code", "key_mismatch"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert "replayed 0 dead letters" in third.stdout and "6 already replayed" in third.stdout, third.stdout
    assert [(m.key, m.value) for m in read_topic(settings, settings.topic_customers, quiet_s=0.5)
            if (m.partition, m.offset) not in before] == [(b"C00004", samples.encode(samples.customer(3)))] * 2


def test_events_produced_with_confluent_kafka_land(settings, monkeypatch):
    from confluent_kafka import Producer

    settings = fast_settings(settings, monkeypatch)
    producer = Producer({**settings.confluent_client_config(), "acks": "all", "linger.ms": 5})
    for key, value in samples.touchpoint_messages(3000, start=50_000):
        producer.produce(settings.topic_touchpoints, key=key, value=value)
    producer.produce(settings.topic_customers, key=b"C00009", value=samples.encode(samples.customer(9)))
    producer.produce(settings.topic_customers, key=b"C00009", value=None)
    assert producer.flush(30) == 0

    first = LandingConsumer(settings, max_records=1000, log=JsonLog(io.StringIO())).run()
    assert (first.consumed, first.stopped_by) == (1000, "max_records")
    assert landed(settings).num_rows + landed(settings, "customers").num_rows == 1000

    summary, log = _consume_until_idle(settings, workers=1)  # the rest, decoded in a worker process

    table = landed(settings)
    assert sorted(table.column("event_id").to_pylist()) == [f"E{i:09d}" for i in range(50_000, 53_000)]
    assert len(set(coordinates(table))) == 3000
    customers = landed(settings, "customers")
    assert sorted(customers.column("is_deleted").to_pylist()) == [False, True]
    assert summary.dead_lettered == 0 and summary.consumed == 2002
    assert [e["workers"] for e in log if e["event"] == "started"] == [1]


def test_a_trickle_lands_within_seconds_metrics_are_served_and_sigterm_commits(settings, monkeypatch, tmp_path):
    port = free_port()
    # every interface (as compose sets it, for a Prometheus on its network): it listened on 127.0.0.1 only
    settings = fast_settings(settings, monkeypatch, LOYALTY_METRICS_PORT=str(port), LOYALTY_METRICS_HOST="0.0.0.0",
                             LOYALTY_BATCH_MAX_RECORDS="100")
    log = tmp_path / "consumer.log"
    proc = start_consumer(log=log)
    try:
        wait_for(lambda: log_events(log, "partitions_assigned"), 30, what="partition assignment")
        delays = []
        for i in range(5):
            [(partition, offset)] = produce(settings, settings.topic_touchpoints,
                                            samples.touchpoint_messages(1, start=i))
            sent = time.monotonic()
            wait_for(lambda: (partition, offset) in set(coordinates(landed(settings))), 10,
                     interval=0.05, what=f"trickle message {i} to land")
            delays.append(time.monotonic() - sent)
        assert max(delays) < 3.0, delays  # batch_max_wait_s=0.5: a trickle never waits for a full batch
        # 127.0.0.2 is this machine too, but not the address 127.0.0.1 binds
        page = urllib.request.urlopen(f"http://127.0.0.2:{port}/metrics", timeout=5).read().decode()
        samples_ = parse(page)
        [started] = log_events(log, "started")
        consumer = started["consumer"]
        assert samples_[f'loyalty_consumer_records_landed_total{{consumer="{consumer}",'
                        f'topic="{settings.topic_touchpoints}"}}'] == 5
        assert samples_[f'loyalty_consumer_batch_latency_seconds_count{{consumer="{consumer}"}}'] >= 1
        assert any(name.startswith("loyalty_consumer_lag{") for name in samples_)

        # a backlog lands in batches of 100; once it is in, the textfile (node_exporter's) says the
        # consumer is caught up, as the endpoint does: it used to keep the lag of the batch before
        # the last one, a consumer "behind" until the next batch, however long the feed is quiet
        backlog = produce(settings, settings.topic_touchpoints, samples.touchpoint_messages(600, start=1000))
        wait_for(lambda: set(backlog) <= set(coordinates(landed(settings))), 30, what="the backlog to land")

        def file_lag() -> dict[str, float]:
            [path] = metrics_files(settings)  # this consumer's own file, labelled with its name
            assert str(path) == started["metrics_file"]
            return {k: v for k, v in parse(path.read_text()).items() if k.startswith("loyalty_consumer_lag{")}

        time.sleep(1.0)  # the consumer is idle now: nothing writes the file any more
        assert file_lag() and set(file_lag().values()) == {0.0}, file_lag()
        # every assigned partition has a sample, also those no message came from (customers,
        # case events): "caught up", not "unknown"
        assigned = [e for e in log_events(log, "partitions_assigned") if e["partitions"]][-1]
        assert sorted(file_lag()) == sorted(
            f'loyalty_consumer_lag{{consumer="{consumer}",partition="{p.rpartition("[")[2][:-1]}",'
            f'topic="{p.rpartition("[")[0]}"}}' for p in assigned["partitions"])
        assert len({p.rpartition("[")[0] for p in assigned["partitions"]}) == 3
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert {k: v for k, v in parse(page).items() if k.startswith("loyalty_consumer_lag{")} == file_lag()

        # one more message, then SIGTERM before the batch's max wait: it must be landed and committed
        produce(settings, settings.topic_touchpoints, samples.touchpoint_messages(1, start=99))
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    stopped = log_events(log, "stopped")
    assert stopped and stopped[-1]["reason"] == "SIGTERM"
    assert metrics_files(settings) == []  # stopped: its file went with it
    assert landed(settings).num_rows == 606
    # committed: a restart finds nothing left to consume
    from streaming.consumer import LandingConsumer as Service
    again = Service(settings, until_idle=True, idle_s=0.5, log=JsonLog(io.StringIO())).run()
    assert again.consumed == 0 and landed(settings).num_rows == 606


def test_a_batch_is_bounded_by_bytes_as_well_as_by_count(settings, monkeypatch):
    """Thirty valid events of about 150 KB each (a producer's extra field, kept in extra_json):
    with batches bounded at 600 KB they land in several batches, each flushed as "full" by bytes
    long before the count limit, and every event exactly once."""
    settings = fast_settings(settings, monkeypatch, LOYALTY_BATCH_MAX_RECORDS="20000",
                             LOYALTY_BATCH_MAX_BYTES="600000", LOYALTY_MAX_MESSAGE_BYTES="1048576",
                             LOYALTY_BATCH_MAX_WAIT_S="5")
    messages = []
    for i in range(30):
        record = samples.touchpoint(i, attachment="x" * 150_000)
        messages.append((record["customer_id"].encode(), samples.encode(record)))
    produce(settings, settings.topic_touchpoints, messages)
    summary, log = _consume_until_idle(settings)
    assert (summary.consumed, summary.landed, summary.dead_lettered) == (30, 30, 0)
    full = [e for e in log if e.get("event") == "batch_committed" and e.get("reason") == "full"]
    assert len(full) >= 6 and all(e["messages"] <= 5 for e in full), full
    assert landed(settings).num_rows == 30


def test_payload_fields_another_event_type_defines_land_in_payload_json_only(settings, monkeypatch):
    """Unknown payload fields are allowed and kept (docs/event-contract.md), also when their name is
    a field of another event type: a help desk's complaint ticket `stage`, a mail system's
    `severity`, a phone system's call charge `amount`, an acknowledge's own `until`. They land in
    `payload_json` only, not in the typed column of the other type, whose landing-gate checks
    (dunning stages, complaint severities, amounts >= 0, snooze days) they would fail."""
    settings = fast_settings(settings, monkeypatch)
    day = "2026-03-02T09:00:00+01:00"
    base = {"schema_version": 1, "occurred_at": day, "customer_id": "C00001", "department": "support"}
    touches = [
        {**base, "event_id": "complaint-stage", "event_type": "complaint", "direction": "inbound",
         "payload": {"severity": "high", "stage": "escalated"}},
        {**base, "event_id": "email-severity", "event_type": "email", "direction": "inbound",
         "payload": {"severity": "normal", "nps_score": 11}},
        {**base, "event_id": "meeting-amount", "event_type": "meeting", "direction": "outbound",
         "payload": {"duration_s": 1800, "amount": -250.0}},
        {**base, "event_id": "dunning", "event_type": "dunning_contact", "department": "finance",
         "payload": {"stage": "reminder", "amount_overdue": 10.5, "severity": "urgent"}},
    ]
    case = {"schema_version": 1, "occurred_at": day, "case_id": "case-1", "customer_id": "C00001",
            "actor": "am@example.com"}
    case_events = [
        {**case, "event_id": "ack-until", "event_type": "acknowledge", "payload": {"until": "next week"}},
        {**case, "event_id": "ack-outcome", "event_type": "acknowledge", "payload": {"outcome": "called"}},
        {**case, "event_id": "snooze", "event_type": "snooze",
         "payload": {"until": "2026-03-20", "reason": "on leave", "outcome": "later"}},
    ]
    produce(settings, settings.topic_touchpoints, [(b"C00001", samples.encode(t)) for t in touches])
    produce(settings, settings.topic_case_events, [(b"C00001", samples.encode(e)) for e in case_events])

    summary, _ = _consume_until_idle(settings)

    assert (summary.landed, summary.dead_lettered) == (len(touches) + len(case_events), 0)
    rows = {r["event_id"]: r for r in landed(settings).to_pylist()}
    assert rows["complaint-stage"]["severity"] == "high" and rows["complaint-stage"]["stage"] is None
    assert rows["email-severity"]["severity"] is None and rows["email-severity"]["nps_score"] is None
    assert rows["meeting-amount"]["duration_s"] == 1800.0 and rows["meeting-amount"]["amount"] is None
    assert rows["dunning"]["stage"] == "reminder" and rows["dunning"]["amount_overdue"] == 10.5
    assert rows["dunning"]["severity"] is None
    for touch in touches:  # nothing sent is thrown away
        assert json.loads(rows[touch["event_id"]]["payload_json"]) == touch["payload"]
    actions = {r["event_id"]: r for r in landed(settings, "case_events").to_pylist()}
    assert actions["ack-until"]["snooze_until"] is None
    assert json.loads(actions["ack-until"]["payload_json"]) == {"until": "next week"}
    assert actions["ack-outcome"]["outcome"] is None
    assert str(actions["snooze"]["snooze_until"]) == "2026-03-20" and actions["snooze"]["reason"] == "on leave"
    assert actions["snooze"]["outcome"] is None


def test_a_taken_metrics_port_says_which_setting_and_what_to_do(settings, monkeypatch):
    """Two consumers on one host with the same LOYALTY_METRICS_PORT: the second used to stop with
    a bare "[Errno 98] Address already in use"."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        settings = fast_settings(settings, monkeypatch, LOYALTY_METRICS_PORT=str(port))
        consumer = LandingConsumer(settings, until_idle=True, idle_s=0.5, log=JsonLog(io.StringIO()))
        with pytest.raises(RuntimeError) as refused:
            consumer.run()
    message = str(refused.value)
    assert f"127.0.0.1:{port} (LOYALTY_METRICS_PORT)" in message and "its own port, or 0" in message
    assert consumer.consumer is not None and consumer._closing  # it left the group it had joined


@pytest.mark.parametrize("kwargs, says", [({"max_records": 0}, "--max-records must be at least 1, got 0"),
                                          ({"max_records": -1}, "--max-records must be at least 1, got -1"),
                                          ({"workers": -2}, "--workers must be 0 or more, got -2")])
def test_a_count_that_makes_no_sense_is_refused_before_the_member_joins(settings, kwargs, says):
    """--max-records 0 or -1 stopped the member in the middle of its first join; on the embedded
    broker the group then handed its partitions to nobody, and every later `loyalty consume`
    waited for them and gave up (no_partitions_assigned)."""
    with pytest.raises(ValueError, match=says):
        LandingConsumer(settings, **kwargs)


def test_a_data_engineer_exports_dead_letters_corrects_them_and_replays_the_corrections(settings, monkeypatch,
                                                                                         tmp_path):
    """A producer sent an impossible date and a truncated line, and cannot send them again: the data
    engineer exports the dead letters (a private file, the message as JSON where it is JSON), corrects
    one, and replays the file. The corrected event lands; the still-broken one is not sent but named
    with its contract error; a plain replay afterwards does not send the corrected one's original."""
    settings = fast_settings(settings, monkeypatch)
    good_key, good = next(samples.touchpoint_messages(1, start=0))
    wrong_date = samples.touchpoint(1, occurred_at="2026-02-30T10:00:00+00:00")
    truncated = samples.encode(samples.touchpoint(2))[:40]
    produce(settings, settings.topic_touchpoints, [
        (good_key, good), (wrong_date["customer_id"].encode(), samples.encode(wrong_date)), (b"C00002", truncated)],
        headers=[("trace", b"t-7")])
    assert _consume_until_idle(settings)[0].dead_lettered == 2
    env = dict(os.environ)
    cli = [sys.executable, "-m", "loyalty_monitor.cli", "dead-letters"]
    out = tmp_path / "fix.jsonl"
    exported = subprocess.run([*cli, "export", "--out", str(out)], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60)
    assert exported.returncode == 0 and "exported 2 dead letters" in exported.stdout, exported.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # it holds customer data
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    by_code = {line["error_code"]: line for line in lines}
    assert set(by_code) == {"bad_timestamp", "not_json"}
    assert by_code["bad_timestamp"]["value"] == wrong_date and "value_text" not in by_code["bad_timestamp"]
    assert by_code["not_json"]["value_text"] == truncated.decode()

    by_code["bad_timestamp"]["value"]["occurred_at"] = "2026-02-28T10:00:00+00:00"  # the correction
    out.write_text("".join(json.dumps(line) + "\n" for line in lines))
    replayed = subprocess.run([*cli, "replay", "--corrected", str(out)], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60)
    assert replayed.returncode == 1, replayed.stderr  # one line was not sent: the engineer must see it
    assert "replayed 1 corrected dead letters" in replayed.stdout, replayed.stdout
    number = 1 + [line["error_code"] for line in lines].index("not_json")
    assert f"line {number}: still breaks the contract: not_json" in replayed.stdout, replayed.stdout

    assert _consume_until_idle(settings)[0].dead_lettered == 0
    landed_ids = set(LandingZone.from_settings(settings).read("touchpoints").column("event_id").to_pylist())
    assert landed_ids == {json.loads(good)["event_id"], wrong_date["event_id"]}
    corrected = [m for m in read_topic(settings, settings.topic_touchpoints, quiet_s=0.5)
                 if headers(m).get("dlq.corrected") == "true"]
    assert len(corrected) == 1 and headers(corrected[0])["trace"] == "t-7"  # the original headers go along
    plain = subprocess.run([*cli, "replay"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert "replayed 1 dead letters" in plain.stdout and "1 already replayed" in plain.stdout, plain.stdout

    # a file that is not an export is refused before anything is sent, naming the line
    out.write_text(json.dumps({"value": {}}) + "\n")
    refused = subprocess.run([*cli, "replay", "--corrected", str(out)], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 1 and "line 1: not a line of `loyalty dead-letters export`" in refused.stderr, \
        refused.stderr
    misplaced = subprocess.run([*cli, "list", "--corrected", str(out)], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=60)
    assert misplaced.returncode == 1 and "--corrected goes with replay" in misplaced.stderr, misplaced.stderr


def test_corrected_replays_keep_erased_customers_out_and_never_turn_text_into_a_delete(settings, monkeypatch,
                                                                                       tmp_path):
    """The corner cases of the correction path, on the real broker, consumer and CLI: a customer
    record whose bytes are the text ``null`` comes back as that text, not as a Kafka delete; a key
    that is not UTF-8 and a note UTF-8 cannot carry survive the export; an export over a readable
    file leaves it private; a customer erased after the export is neither exported nor sent, by the
    corrected or the plain replay; a line naming a dead letter that is not there is refused."""
    settings = fast_settings(settings, monkeypatch)
    surrogate = (b'{"schema_version":1,"event_id":"E-sur","event_type":"email","direction":"inbound",'
                 b'"occurred_at":"2026-03-01T09:00:00Z","customer_id":"C00007","department":"sales",'
                 b'"payload":{},"note":"\\ud800"}')
    doomed = samples.touchpoint(3, occurred_at="2026-02-30T10:00:00+00:00")  # C00003, erased below
    produce(settings, settings.topic_touchpoints, [
        (b"\xff\xfe", samples.encode(samples.touchpoint(5))), (b"C00007", surrogate),
        (doomed["customer_id"].encode(), samples.encode(doomed))])
    produce(settings, settings.topic_customers, [(b"C00001", b"null")])
    assert _consume_until_idle(settings)[0].dead_lettered == 4
    env = dict(os.environ)
    cli = [sys.executable, "-m", "loyalty_monitor.cli", "dead-letters"]
    out = tmp_path / "fix.jsonl"
    out.write_text("an earlier, readable file\n")
    out.chmod(0o644)
    exported = subprocess.run([*cli, "export", "--out", str(out)], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60)
    assert exported.returncode == 0 and "exported 4 dead letters" in exported.stdout, exported.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    by_code = {line["error_code"]: line for line in lines}
    assert by_code["not_object"]["value_text"] == "null" and "tombstone" not in by_code["not_object"]
    assert by_code["key_mismatch"]["key_base64"] == "//4=" and "key" not in by_code["key_mismatch"]
    assert by_code["unlandable"]["value"]["note"] == "\ud800"  # escaped in the file, whole when read
    kept_for_later = by_code["bad_timestamp"]

    # an unedited "value": null would be a delete of C00001: refused, nothing sent
    bad = dict(by_code["not_object"], value=None)
    del bad["value_text"]
    out.write_text(json.dumps(bad) + "\n")
    ambiguous = subprocess.run([*cli, "replay", "--corrected", str(out)], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=60)
    assert ambiguous.returncode == 1 and '"value": null is ambiguous' in ambiguous.stderr, ambiguous.stderr

    erased = subprocess.run([sys.executable, "-m", "loyalty_monitor.cli", "erase", "C00003", "--by", "dpo@example.com"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert erased.returncode == 0, erased.stderr
    again = subprocess.run([*cli, "export", "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=60)
    assert "exported 3 dead letters" in again.stdout and "left out 1 of customers in the erasure register" in \
        again.stdout, again.stdout
    assert "C00003" not in out.read_text()
    kept_for_later["value"]["occurred_at"] = "2026-02-28T10:00:00+00:00"  # corrected from the older export
    gone = dict(kept_for_later, dead_letter={**kept_for_later["dead_letter"], "id": "not|a|dead|letter"})
    out.write_text(json.dumps(kept_for_later) + "\n" + json.dumps(gone) + "\n")
    before = len(read_topic(settings, settings.topic_touchpoints, quiet_s=0.5))
    refused = subprocess.run([*cli, "replay", "--corrected", str(out)], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=60)
    assert refused.returncode == 1, refused.stderr
    assert "replayed 0 corrected" in refused.stdout and "line 1: a customer in the erasure register" in \
        refused.stdout and "line 2: its dead letter is no longer in the topic" in refused.stdout, refused.stdout
    plain = subprocess.run([*cli, "replay"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert "1 of customers in the erasure register" in plain.stdout, plain.stdout
    after = read_topic(settings, settings.topic_touchpoints, quiet_s=0.5)
    assert not [m for m in after[before:] if b"C00003" in (m.key or b"") + (m.value or b"")]


def test_an_unedited_export_whose_note_holds_line_separators_is_read_line_by_line(settings, monkeypatch, tmp_path):
    """Tester: a note with U+2028 or U+0085 (written as they are: the export is readable UTF-8) made
    `replay --corrected` on the unedited export fail with `line 4: not JSON (Unterminated string ...)`:
    the file was split at those characters too, not only at line ends. Both lines are read whole:
    the unedited one is refused for what its message still breaks, the corrected one is sent and
    lands with its note as it was."""
    settings = fast_settings(settings, monkeypatch)
    notes = {"E-sep-1": "first\u2028second", "E-sep-2": "one\x85two\u2029three"}
    messages = []
    for i, (event_id, note) in enumerate(notes.items()):
        record = samples.touchpoint(i, event_id=event_id, note=note, occurred_at="2026-02-30T10:00:00+00:00")
        messages.append((record["customer_id"].encode(), json.dumps(record, ensure_ascii=False).encode()))
    produce(settings, settings.topic_touchpoints, messages)
    assert _consume_until_idle(settings)[0].dead_lettered == 2
    env = dict(os.environ)
    cli = [sys.executable, "-m", "loyalty_monitor.cli", "dead-letters"]
    out = tmp_path / "fix.jsonl"
    exported = subprocess.run([*cli, "export", "--out", str(out)], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60, check=False)
    assert exported.returncode == 0 and "exported 2 dead letters" in exported.stdout, exported.stderr
    assert "\u2028" in out.read_text(encoding="utf-8")  # as it is, not escaped: what made the reader trip

    unedited = subprocess.run([*cli, "replay", "--corrected", str(out)], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=60, check=False)
    assert "not JSON" not in unedited.stderr, unedited.stderr
    assert unedited.returncode == 1 and "line 1: still breaks the contract: bad_timestamp" in unedited.stdout \
        and "line 2: still breaks the contract: bad_timestamp" in unedited.stdout, unedited.stdout + unedited.stderr

    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").split("\n") if line]
    for line in lines:
        line["value"]["occurred_at"] = "2026-02-28T10:00:00+00:00"
    out.write_text("".join(json.dumps(line, ensure_ascii=False) + "\r\n" for line in lines), encoding="utf-8")
    corrected = subprocess.run([*cli, "replay", "--corrected", str(out)], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=60, check=False)
    assert corrected.returncode == 0 and "replayed 2 corrected dead letters" in corrected.stdout, \
        corrected.stdout + corrected.stderr
    assert _consume_until_idle(settings)[0].dead_lettered == 0
    landed_notes = LandingZone.from_settings(settings).read("touchpoints").select(["event_id", "note"]).to_pylist()
    assert {row["event_id"]: row["note"] for row in landed_notes} == notes


def test_dead_letters_list_escapes_what_would_drive_the_terminal(settings, monkeypatch):
    """Tester: `loyalty dead-letters list` printed the message preview raw, so value bytes
    ``\\x1b[2J\\x1b]0;pwned\\x07\\x1b[31m`` cleared the terminal and set its title. Every cell that
    comes from the message (value, key, error detail) shows control, separator and bidi characters
    escaped, and rich markup in it as text; ``--format json`` is unchanged (JSON escapes them)."""
    settings = fast_settings(settings, monkeypatch)
    attack = b"\x1b[2J\x1b]0;pwned\x07\x1b[31m [/] [red]"
    produce(settings, settings.topic_touchpoints, [(b"C00001", attack),
                                                   ("C00002\u200f\x9b".encode(), samples.encode(samples.touchpoint(2)))])
    assert _consume_until_idle(settings)[0].dead_lettered == 2
    # the consumer quotes values with repr(); a dead letter written by another hand may not
    produce(settings, settings.topic_dead_letter, [(b"C00003", b"{}")], headers=[
        ("dlq.source.topic", settings.topic_touchpoints.encode()), ("dlq.error.code", b"schema_violation"),
        ("dlq.error.detail", "department sales\u202eselas\u200f\u2066x\u2069\u2028 is not one".encode())])
    env = {**os.environ, "COLUMNS": "400"}  # wide enough that no cell is folded
    cli = [sys.executable, "-m", "loyalty_monitor.cli", "dead-letters", "list"]
    table = subprocess.run(cli, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert table.returncode == 0, table.stderr
    shown = table.stdout
    assert not [c for c in shown if c not in "\n" and (ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0
                                                        or c in "\u2028\u2029\u200e\u200f\u202e\u2066\u2069")], shown
    assert r"\x1b[2J\x1b]0;pwned\x07\x1b[31m [/] [red]" in shown  # the value, escaped, markup as text
    assert r"C00002\u200f\x9b" in shown  # the key
    assert r"department sales\u202eselas\u200f\u2066x\u2069\u2028 is not one" in shown  # the error detail

    as_json = subprocess.run([*cli, "--format", "json"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=60, check=False)
    listed = {d["key"]: d for d in json.loads(as_json.stdout)}
    assert listed["C00001"]["value"] == attack.decode() and "C00002\u200f\x9b" in listed


@pytest.mark.faults
def test_offsets_that_start_again_never_overwrite_landed_events(settings, monkeypatch):
    """User trial: `loyalty broker stop` / `start` (the embedded broker keeps its messages in memory),
    then 5 new events for the same customer and day: they came at offsets 0-4 again, their file had
    the name of the first 5 events' file and replaced it; both consumes said "landed 5". A topic
    created anew (here: the touchpoints topic renamed to a new one) gives the same offsets."""
    from streaming.topics import ensure_topics

    settings = fast_settings(settings, monkeypatch)

    def five(start: int) -> list[tuple[bytes, bytes]]:
        return [(b"C00007", samples.encode(samples.touchpoint(i, customers=1, days=1, customer_id="C00007")))
                for i in range(start, start + 5)]

    first = produce(settings, settings.topic_touchpoints, five(0))
    assert _consume_until_idle(settings)[0].landed == 5
    # a topic of the same name created anew: offsets start again at 0
    monkeypatch.setenv("LOYALTY_TOPIC_TOUCHPOINTS", f"{settings.topic_touchpoints}-anew")
    monkeypatch.setenv("LOYALTY_CONSUMER_GROUP", f"{settings.consumer_group}-anew")
    anew = fast_settings(settings, monkeypatch)
    ensure_topics(anew)
    assert produce(anew, anew.topic_touchpoints, five(100)) == first, "the same partition and offsets"
    summary, log = _consume_until_idle(anew)
    assert summary.landed == 5
    table = landed(anew)
    assert sorted(table.column("event_id").to_pylist()) == [f"E{i:09d}" for i in [*range(5), *range(100, 105)]]
    reused = [e for e in log if e["event"] == "offsets_reused"]
    assert len(reused) == 1 and "embedded broker restarted" in reused[0]["why"], log
    # consumed again from the start (a replay: the same messages), it rewrites its own file, no other
    monkeypatch.setenv("LOYALTY_CONSUMER_GROUP", f"{settings.consumer_group}-replay")
    replay = fast_settings(settings, monkeypatch)
    files = sorted(LandingZone.from_settings(replay).files("touchpoints"))
    assert _consume_until_idle(replay)[0].landed == 5
    assert sorted(LandingZone.from_settings(replay).files("touchpoints")) == files
    assert landed(replay).num_rows == 10


def test_the_kafka_clients_lines_about_a_broker_that_is_down_come_once_with_what_to_do():
    """User trial: with the broker down the consumer logged about twenty "Connection refused" lines a
    second and never said how to recover. Its clients' lines of one kind come once per 30 s now,
    with the count left out, and a refused connection says what to do."""
    import logging

    from streaming.consumer import client_logger

    out = io.StringIO()
    logger = client_logger(JsonLog(out), "127.0.0.1:19092")
    for attempt in range(40):
        logger.error("FAIL [thrd:127.0.0.1:19092/bootstrap]: 127.0.0.1:19092/bootstrap: Connect to ipv4#127.0.0.1:"
                     f"19092 failed: Connection refused (after {attempt}ms in state CONNECT)")
    logger.warning("another kind of line")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(e["event"], e["level"]) for e in lines] == [("kafka_client", "error"), ("kafka_client", "warning")]
    assert "no broker answers at 127.0.0.1:19092: start it (`loyalty broker start`" in lines[0]["fix"]
    assert "fix" not in lines[1] and logging.getLogger("loyalty.kafka").propagate
    # once the quiet time is over, the next line of the kind says how many were left out
    logger.handlers[0].REPEAT_S = 0.2
    time.sleep(0.25)
    logger.error("FAIL [thrd:127.0.0.1:19092/bootstrap]: 127.0.0.1:19092/bootstrap: Connect to ipv4#127.0.0.1:"
                 "19092 failed: Connection refused (after 1ms in state CONNECT)")
    assert json.loads(out.getvalue().splitlines()[-1])["repeated"] == 39
