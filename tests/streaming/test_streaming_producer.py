"""``loyalty produce``: bytes verbatim, keys from customer_id, tombstone lines, progress and counts."""

from __future__ import annotations

import os
import subprocess
import sys

from streaming_helpers import ROOT, read_topic

from streaming import samples
from streaming.producer import key_and_value


def test_key_and_value_rules():
    good = samples.encode(samples.touchpoint(3))
    assert key_and_value(good) == (b"C00003", good)
    assert key_and_value(b"{broken") == (None, b"{broken")            # malformed: sent as is, unkeyed
    assert key_and_value(b"[1,2]") == (None, b"[1,2]")
    assert key_and_value(b'{"customer_id": 42}') == (b"42", b'{"customer_id": 42}')
    assert key_and_value(b'{"customer_id": "C1", "tombstone": true}') == (b"C1", None)
    # only the exact tombstone form deletes: a record that merely has a tombstone field is a record
    record = b'{"customer_id": "C1", "tombstone": true, "name": "x"}'
    assert key_and_value(record) == (b"C1", record)
    assert key_and_value(b'{"account": "A7"}', key_field="account") == (b"A7", b'{"account": "A7"}')
    # lines that trip the parser or the key's encoding are still sent, unkeyed, for the consumer to
    # dead-letter with its reason (they stopped the whole file before)
    deep = b"[" * 100_000 + b"]" * 100_000
    assert key_and_value(deep) == (None, deep)
    surrogate = b'{"customer_id": "D\\udc001", "event_type": "call"}'
    assert key_and_value(surrogate) == (None, surrogate)


def test_a_line_the_broker_refuses_is_counted_apart_and_the_rest_of_the_file_goes_out(settings):
    first, last = samples.encode(samples.touchpoint(1)), samples.encode(samples.touchpoint(2))
    huge = b'{"customer_id": "C00009", "note": "' + b"x" * 3_000_000 + b'"}'
    deep = b"[" * 100_000 + b"]" * 100_000
    result = subprocess.run([sys.executable, "-m", "loyalty_monitor.cli", "produce", "-", "--topic", "touchpoints"],
                            input=b"\n".join([first, huge, deep, last]) + b"\n", cwd=ROOT, env=dict(os.environ),
                            capture_output=True, timeout=120)
    assert result.returncode == 1, result.stderr  # something was not sent: the command says so
    out = result.stdout.decode() + result.stderr.decode()
    assert f"3 messages to {settings.topic_touchpoints}" in out, out
    assert "1 FAILED (line 2: 3000037 bytes, more than `loyalty produce` sends" in out, out
    assert "LOYALTY_MAX_MESSAGE_BYTES" in out and "Traceback" not in out
    assert sorted(m.value for m in read_topic(settings, settings.topic_touchpoints)) == sorted([first, deep, last])


def test_produce_cli_sends_lines_verbatim_with_keys_and_tombstones(settings):
    customer = samples.encode(samples.customer(5))
    spaced = b'{ "customer_id" : "C00006",  "name": "spacing kept" }'
    lines = [customer, b"", b"not json at all", spaced + b"\r", b'{"customer_id": "C00005", "tombstone": true}']
    result = subprocess.run([sys.executable, "-m", "loyalty_monitor.cli", "produce", "-", "--topic", "customers"],
                            input=b"\n".join(lines) + b"\n", cwd=ROOT, env=dict(os.environ),
                            capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    assert f"4 messages to {settings.topic_customers}" in out
    assert "1 tombstones, 1 without key, 1 blank lines skipped" in out

    messages = read_topic(settings, settings.topic_customers)
    assert sorted(((m.key, m.value) for m in messages), key=repr) == sorted([
        (b"C00005", customer), (None, b"not json at all"), (b"C00006", spaced), (b"C00005", None)], key=repr)
    # same key, same partition: the tombstone follows the record it deletes
    c5 = [m for m in messages if m.key == b"C00005"]
    assert len({m.partition for m in c5}) == 1 and c5[0].offset < c5[1].offset and c5[1].value is None


def test_produce_cli_file_and_clear_error_for_missing_file(settings, tmp_path):
    path = tmp_path / "touchpoints.jsonl"
    path.write_bytes(b"\n".join(v for _, v in samples.touchpoint_messages(2000)) + b"\n")
    env = dict(os.environ)
    ok = subprocess.run([sys.executable, "-m", "loyalty_monitor.cli", "produce", str(path), "--topic",
                         "touchpoints"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert f"2000 messages to {settings.topic_touchpoints}" in ok.stdout
    assert len(read_topic(settings, settings.topic_touchpoints)) == 2000
    missing = subprocess.run([sys.executable, "-m", "loyalty_monitor.cli", "produce", str(tmp_path / "nope"),
                              "--topic", "touchpoints"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 1
    assert missing.stderr.strip().startswith("loyalty produce: error:") and len(missing.stderr.strip().splitlines()) == 1
