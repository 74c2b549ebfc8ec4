"""Read and replay the dead-letter topic.

Every dead letter keeps the original key and bytes; its ``dlq.*`` headers say where it came from
and why it failed. ``replay`` re-publishes the original bytes to their source topic (for example
after the contract or a producer was fixed); messages that still fail land in the dead-letter
topic again, with a new failure time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from loyalty_monitor.settings import Settings

#: How long fetches must stay empty before the dead-letter topic counts as read to its end.
QUIET_S = 0.6


@dataclass
class DeadLetterRecord:
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    source_topic: str
    source_partition: int
    source_offset: int
    error_code: str
    error_detail: str
    failed_at: str
    headers: list[tuple[str, bytes]] = field(default_factory=list)  # the original message's

    def as_dict(self, preview_chars: int | None = 200) -> dict[str, Any]:
        value = None if self.value is None else self.value.decode("utf-8", "replace")
        if value is not None and preview_chars is not None and len(value) > preview_chars:
            value = value[:preview_chars] + f"… ({len(self.value)} bytes)"
        return {"offset": self.offset, "failed_at": self.failed_at, "source_topic": self.source_topic,
                "source_partition": self.source_partition, "source_offset": self.source_offset,
                "error_code": self.error_code, "error_detail": self.error_detail,
                "key": None if self.key is None else self.key.decode("utf-8", "replace"),
                "value": value}


def _parse(message: Any) -> DeadLetterRecord:
    dlq: dict[str, str] = {}
    original: list[tuple[str, bytes]] = []
    for name, raw in message.headers or []:
        if name.startswith("dlq."):
            dlq[name] = (raw or b"").decode("utf-8", "replace")
        else:
            original.append((name, raw))

    def number(name: str) -> int:
        try:
            return int(dlq.get(name, "-1"))
        except ValueError:
            return -1

    return DeadLetterRecord(
        offset=message.offset, timestamp_ms=message.timestamp, key=message.key, value=message.value,
        source_topic=dlq.get("dlq.source.topic", ""), source_partition=number("dlq.source.partition"),
        source_offset=number("dlq.source.offset"), error_code=dlq.get("dlq.error.code", ""),
        error_detail=dlq.get("dlq.error.detail", ""), failed_at=dlq.get("dlq.failed_at", ""),
        headers=original)


def iter_dead_letters(settings: Settings, timeout_s: float = 30.0) -> Iterator[DeadLetterRecord]:
    """Every message now in the dead-letter topic, oldest first (no consumer group, no commits).

    Each of ``settings.topic_dead_letter``'s partitions is read in order; with several partitions the
    interleaving follows fetch order."""
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    consumer = KafkaConsumer(client_id="loyalty-dead-letters", enable_auto_commit=False,
                             consumer_timeout_ms=1000, **settings.kafka_client_config())
    try:
        partitions = consumer.partitions_for_topic(settings.topic_dead_letter)
        if not partitions:
            return
        tps = [TopicPartition(settings.topic_dead_letter, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        # Read until the end offsets are passed AND fetches stay empty for a moment: the embedded
        # Tansu broker can report an end offset below the true end when the last produce request
        # carried several records, so the end offset alone would cut the listing short.
        deadline = time.monotonic() + timeout_s
        quiet_since = None
        while time.monotonic() < deadline:
            polled = consumer.poll(timeout_ms=300)
            for messages in polled.values():
                for message in messages:
                    yield _parse(message)
            caught_up = all(consumer.position(tp) >= ends[tp] for tp in tps)
            if polled or not caught_up:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.monotonic()
            elif time.monotonic() - quiet_since >= QUIET_S:
                return
        raise TimeoutError(f"could not read the whole dead-letter topic within {timeout_s:.0f}s")
    finally:
        consumer.close()


def list_dead_letters(settings: Settings, limit: int | None = None,
                      error_code: str | None = None) -> list[DeadLetterRecord]:
    """The newest ``limit`` dead letters (optionally of one error code), oldest first."""
    records = [r for r in iter_dead_letters(settings) if error_code in (None, r.error_code)]
    return records[-limit:] if limit else records


@dataclass
class ReplayResult:
    replayed: int = 0
    skipped_unknown_topic: int = 0
    by_topic: dict[str, int] = field(default_factory=dict)


def replay_dead_letters(settings: Settings, error_code: str | None = None,
                        on_progress: Callable[[int], None] | None = None) -> ReplayResult:
    """Re-publish dead letters' original key, bytes and headers to their source topics."""
    from streaming.producer import make_producer

    known = {settings.topic_touchpoints, settings.topic_customers}
    result = ReplayResult()
    producer = make_producer(settings, client_id="loyalty-dead-letter-replay")
    try:
        for record in iter_dead_letters(settings):
            if error_code not in (None, record.error_code):
                continue
            if record.source_topic not in known:
                result.skipped_unknown_topic += 1
                continue
            producer.send(record.source_topic, key=record.key, value=record.value,
                          headers=record.headers + [("dlq.replayed_from_offset", str(record.offset).encode())])
            result.replayed += 1
            result.by_topic[record.source_topic] = result.by_topic.get(record.source_topic, 0) + 1
            if on_progress and result.replayed % 1000 == 0:
                on_progress(result.replayed)
        producer.flush()
    finally:
        producer.close()
    return result
