"""Publish JSON Lines to Kafka, one message per line, bytes verbatim.

The value is the line exactly as read (minus its line ending), so a malformed line reaches the
consumer as produced and ends up in the dead-letter topic there, not silently here. The key is the
line's ``customer_id`` (or ``key_field``) when the line parses as a JSON object that has it. A line
``{"customer_id": "C0042", "tombstone": true}`` (exactly those two fields) is sent as a null value
with key ``C0042``: the compacted ``customers`` topic's deletion marker.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from kafka import KafkaProducer

from loyalty_core.settings import Settings
from streaming import topics

#: Bytes of JSON Lines input between two progress callbacks.
PROGRESS_EVERY_S = 0.5


@dataclass
class ProduceResult:
    topic: str
    sent: int = 0
    tombstones: int = 0
    unkeyed: int = 0  # lines without a usable key (malformed or missing key field): sent unkeyed
    blank: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)  # first few "line N: error" texts
    seconds: float = 0.0

    def summary(self) -> str:
        rate = self.sent / self.seconds if self.seconds else 0.0
        text = (f"{self.sent} messages to {self.topic} in {self.seconds:.1f}s ({rate:,.0f}/s): "
                f"{self.tombstones} tombstones, {self.unkeyed} without key, {self.blank} blank lines skipped")
        if self.failed:
            text += f"; {self.failed} FAILED ({'; '.join(self.failures[:3])})"
        return text


def key_and_value(line: bytes, key_field: str = "customer_id") -> tuple[bytes | None, bytes | None]:
    """The Kafka (key, value) for one JSON Lines line (value None = tombstone)."""
    # Whatever the line holds, it is sent as it is: the consumer dead-letters what is malformed, with
    # its reason, and the lines after it still go out (here only the key is looked for).
    try:
        parsed = json.loads(line)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        return None, line
    if not isinstance(parsed, dict):
        return None, line
    key_value = parsed.get(key_field)
    if isinstance(key_value, bool) or not isinstance(key_value, (str, int)):
        return None, line
    try:
        key = str(key_value).encode()
    except (UnicodeEncodeError, ValueError):  # a lone surrogate (\udc00) or an int too long to print
        return None, line
    if parsed.get("tombstone") is True and set(parsed) == {key_field, "tombstone"}:
        return key, None
    return key, line


def read_lines(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(bytes consumed so far, line without its line ending) for every line of ``stream``."""
    consumed = 0
    for raw in stream:
        consumed += len(raw)
        yield consumed, raw.rstrip(b"\r\n")


def topic_to_write(settings: Settings, name: str, create: bool = False,
                   partitions: int | None = None) -> tuple[str, bool]:
    """The topic to send to and whether it was created: ``touchpoints``/``customers`` mean the
    configured names; a topic the broker does not have is refused (a typo would create a topic
    nothing reads) unless ``create``. Raises ``BrokerUnreachable`` when no broker answers."""

    topic = {"touchpoints": settings.topic_touchpoints, "customers": settings.topic_customers}.get(name, name)
    existing = topics.probe(settings)
    if topic in existing:
        return topic, False
    if not create:
        raise ValueError(f"topic {topic!r} does not exist on {settings.bootstrap} (existing: "
                         f"{', '.join(existing) or 'none'}); check the name, or add --create to create it")
    topics.create_topic(settings, topic, partitions)
    return topic, True


def make_producer(settings: Settings, **overrides: Any):

    config: dict[str, Any] = dict(
        client_id="loyalty-producer",
        acks="all",
        linger_ms=20,
        batch_size=512 * 1024,
        # Let larger-than-contract messages through to the consumer, which dead-letters them
        # with code `oversized`; the broker's own limit still applies.
        max_request_size=max(2 * settings.max_message_bytes, 1_048_576) + 65_536,
        retries=5,
    )
    config.update(settings.kafka_client_config())
    config.update(overrides)
    return KafkaProducer(**config)


def produce_lines(settings: Settings, lines: Iterable[tuple[int, bytes]], topic: str,
                  key_field: str = "customer_id",
                  on_progress: Callable[[int, int], None] | None = None) -> ProduceResult:
    """Send every line; ``lines`` yields (progress position, line). Flushes before returning.

    ``on_progress(position, messages_sent)`` is called about every half second.
    """
    result = ProduceResult(topic)
    producer = make_producer(settings)
    limit = producer.config["max_request_size"]
    started = last_report = time.monotonic()
    position = 0

    sent_then_failed = [0]  # counted in result.sent when sent, taken out when the broker refused them

    def failed(number: int, size: int, was_sent: bool = True):
        def record(exc: BaseException) -> None:
            result.failed += 1
            sent_then_failed[0] += was_sent
            if len(result.failures) < 10:
                why = f"{type(exc).__name__}: {exc}"
                if type(exc).__name__ == "MessageSizeTooLargeError":  # its words name a setting no user set
                    why = (f"{size} bytes, more than `loyalty produce` sends ({limit}: twice "
                           "LOYALTY_MAX_MESSAGE_BYTES, at least 1 MiB); the consumer would dead-letter it as "
                           "oversized anyway")
                result.failures.append(f"line {number + 1}: {why}")
        return record

    try:
        for number, (position, line) in enumerate(lines):
            if not line.strip():
                result.blank += 1
                continue
            key, value = key_and_value(line, key_field)
            if key is None:
                result.unkeyed += 1
            if value is None:
                result.tombstones += 1
            try:
                future = producer.send(topic, key=key, value=value)
            except Exception as exc:  # noqa: BLE001 - e.g. MessageSizeTooLargeError: count, go on
                failed(number, len(line), was_sent=False)(exc)
                continue
            future.add_errback(failed(number, len(line)))
            result.sent += 1
            now = time.monotonic()
            if on_progress and now - last_report >= PROGRESS_EVERY_S:
                last_report = now
                on_progress(position, result.sent)
        producer.flush()
    finally:
        producer.close()
    result.sent -= sent_then_failed[0]
    result.seconds = time.monotonic() - started
    if on_progress:
        on_progress(position, result.sent)
    return result
