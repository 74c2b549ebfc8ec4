"""Helpers of the streaming tests: produce, read topics, run consumer processes, read the landing zone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import pytest

from loyalty_core.landing_zone import LandingZone
from loyalty_core.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]

#: Short group timeouts: a consumer group's first join and a killed member's eviction both wait
#: on them, and they bound how long a batch may take (kept small in these tests).
FAST = {
    "LOYALTY_MAX_POLL_INTERVAL_MS": "3000",
    "LOYALTY_SESSION_TIMEOUT_MS": "3000",
    "LOYALTY_BATCH_MAX_WAIT_S": "0.5",
    "LOYALTY_BATCH_MAX_RECORDS": "5000",
    "LOYALTY_MAX_MESSAGE_BYTES": "20000",
}


def fast_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch, **extra: str) -> Settings:
    """The test's settings with FAST overrides, also exported to subprocesses."""
    for key, value in {**FAST, **extra}.items():
        monkeypatch.setenv(key, value)
    return load_settings()


def produce(settings: Settings, topic: str, messages: Iterable[tuple[bytes | None, bytes | None]],
            headers: list[tuple[str, bytes]] | None = None) -> list[tuple[int, int]]:
    """Send (key, value) pairs; return each message's (partition, offset), in order."""
    from kafka import KafkaProducer

    producer = KafkaProducer(acks="all", linger_ms=5, batch_size=256 * 1024,
                             max_request_size=4 * 1024 * 1024, **settings.kafka_client_config())
    try:
        futures = [producer.send(topic, key=k, value=v, headers=headers) for k, v in messages]
        producer.flush()
        return [(m.partition, m.offset) for m in (f.get(timeout=30) for f in futures)]
    finally:
        producer.close()


def read_topic(settings: Settings, topic: str, quiet_s: float = 1.0, timeout_s: float = 60) -> list[Any]:
    """Every message of ``topic``, read without a group until fetches stay empty ``quiet_s``."""
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(enable_auto_commit=False, **settings.kafka_client_config())
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        quiet = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet < quiet_s:
            for messages in consumer.poll(timeout_ms=200).values():
                out.extend(messages)
                quiet = time.monotonic()
        return out
    finally:
        consumer.close()


def headers(message: Any) -> dict[str, str]:
    return {k: v.decode() for k, v in message.headers or []}


def landed(settings: Settings, dataset: str = "touchpoints"):
    return LandingZone.from_settings(settings).read(dataset)


def coordinates(table) -> list[tuple[int, int]]:
    return list(zip(table.column("kafka_partition").to_pylist(), table.column("kafka_offset").to_pylist()))


def consumer_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "streaming.consumer", *args]


def start_consumer(*args: str, log: Path) -> subprocess.Popen:
    """A real consumer process (environment = this test's LOYALTY_* variables); stderr → ``log``."""
    return subprocess.Popen(consumer_command(*args), cwd=ROOT, env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=log.open("ab"))


def run_consumer_until_idle(log: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    with log.open("ab") as err:
        return subprocess.run(consumer_command("--until-idle", "--idle-seconds", "1"), cwd=ROOT,
                              env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=err, timeout=timeout)


def log_events(log: Path, event: str | None = None) -> list[dict[str, Any]]:
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if event is None or record.get("event") == event:
                out.append(record)
    return out


def wait_for(predicate, timeout: float, interval: float = 0.2, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
