"""Step 1 of the landing consumer's protocol (streaming/consumer.py): consumed messages → the open batch.

The batch notes each (topic, partition)'s offset span and sends the messages to decoding in chunks
(to a worker process when there are workers); when the batch is flushed, ``collect()`` puts the
decoded rows into one builder per topic and the rejects into dead letters (original key, bytes
and headers kept). Nothing of the batch is written before its flush, so dropping it (``reset()``)
on a rebalance loses nothing: its messages are consumed again from the committed offsets.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator, NamedTuple

from loyalty_core.landing_zone import DATASETS, PreparedBatch
from loyalty_core.logs import EventLog
from loyalty_core.settings import Settings
from streaming.landing import BatchBuilder, Chunk, contract_window, decode_chunk, prepare

UTC = timezone.utc

#: Messages per decode task: small enough to overlap decoding with fetching, big enough that
#: sending them to a worker process costs little.
CHUNK_MESSAGES = 2000

_WARM_UP_TOUCHPOINT = (b'{"schema_version":1,"event_id":"warm-up","event_type":"email","direction":"inbound",'
                       b'"occurred_at":"2026-01-01T00:00:00Z","customer_id":"C0","department":"sales","payload":{}}')


class Record(NamedTuple):
    """A consumed message as plain values (what a dead letter needs of it)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] | None

    @classmethod
    def of(cls, message: Any) -> "Record":
        return cls(message.topic(), message.partition(), message.offset(), message.key(), message.value(),
                   message.headers())


@dataclass
class DeadLetter:
    message: Record
    code: str
    detail: str


@dataclass
class _PendingChunk:
    topic: str
    messages: list[Any]  # the confluent-kafka Messages, for dead letters (original key, bytes, headers)
    result: Any          # Chunk, or a Future of one


class Batcher:
    """The open batch: per-topic builders (offset spans, decoded rows), dead letters, decode tasks
    in flight, and its size (messages, bytes) and age; ``reset()`` starts the next one."""

    def __init__(self, settings: Settings, kinds: dict[str, str], log: EventLog, workers: int):
        self.kinds = kinds
        self.log = log
        self.workers = workers
        self.max_message_bytes = settings.max_message_bytes
        self.max_bytes = settings.batch_max_bytes
        self.window = contract_window(settings)
        self.pool: ProcessPoolExecutor | None = None
        #: When the first message of the run was handled (monotonic), for the run's busy time.
        self.first_message_at: float | None = None
        self.reset()

    def reset(self) -> None:
        self.builders = {topic: BatchBuilder(DATASETS[kind], topic) for topic, kind in self.kinds.items()}
        self.dead: list[DeadLetter] = []
        self.chunks: list[_PendingChunk] = []
        #: When the batch's first message was handled (monotonic); None while it is empty.
        self.started: float | None = None
        self.count = 0
        self.bytes = 0

    def empty(self) -> bool:
        return not any(b.offsets for b in self.builders.values())

    # --- decoding ----------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Pay the first-use costs (compiling the contract validators, loading Arrow and numpy
        kernels, starting workers) before joining the group: done inside the first batch they
        can exceed max_poll_interval_ms on a busy host, and the group would evict us."""
        sample = [(0, 0, None, None, b"{}")]
        for kind in ("touchpoint", "customer"):
            decode_chunk(kind, "warm-up", sample, 1024, datetime.now(UTC))
        warm = BatchBuilder("touchpoints", "warm-up")
        warm.note_offset(0, 0)
        warm.add_table(decode_chunk("touchpoint", "warm-up", [(0, 0, None, None, _WARM_UP_TOUCHPOINT)],
                                    1024, datetime.now(UTC)).table)
        prepare(warm)
        if self.workers <= 0:
            return
        # spawn, not fork: the Kafka clients run threads, and forking a threaded process is unsafe.
        self.pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        for kind in ("touchpoint", "customer") * self.workers:
            self.pool.submit(decode_chunk, kind, "warm-up", sample, 1024, datetime.now(UTC)).result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    # --- filling -----------------------------------------------------------------------------
    def parts(self, messages: list[Any]) -> Iterator[list[Any]]:
        """The fetched messages in consecutive parts, each filling the open batch up to
        ``batch_max_bytes`` (at least one message a part): one fetch of large messages never
        overfills a batch. Read lazily: the caller flushes between parts."""
        start = 0
        while start < len(messages):
            room, end = self.max_bytes - self.bytes, start
            while end < len(messages) and (end == start or room > 0):
                room -= len(messages[end].value() or b"")
                end += 1
            yield messages[start:end]
            start = end

    def add(self, by_partition: dict[tuple[str, int], list[Any]]) -> dict[str, int]:
        """Note the messages' offsets and start decoding them (in a worker process when there is a
        pool); returns how many were taken per topic."""
        if self.started is None:
            self.started = time.monotonic()
            if self.first_message_at is None:
                self.first_message_at = self.started
        by_topic: dict[str, list[Any]] = {}
        for (topic, partition), group in by_partition.items():
            group = self._note(topic, partition, group)
            if group:
                by_topic.setdefault(topic, []).extend(group)
        landed_at = datetime.now(UTC)
        for topic, group in by_topic.items():
            self._decode(topic, group, landed_at)
        return {topic: len(group) for topic, group in by_topic.items()}

    def _note(self, topic: str, partition: int, group: list[Any]) -> list[Any]:
        """Note one partition's messages (in offset order) in the batch; returns those taken."""
        builder = self.builders[topic]
        span = builder.offsets.get(partition)
        if span is not None and group[0].offset() <= span[1]:
            # Cannot happen with librdkafka's rebalance barriers; if it ever did, landing the
            # message twice in one batch would be a duplicate, so it is refused loudly.
            self.log("offset_went_back", level="warning", topic=topic, partition=partition,
                     batch_last=span[1], received=group[0].offset())
            group = [m for m in group if m.offset() > span[1]]
            if not group:
                return group
        builder.note_offset(partition, group[0].offset())
        builder.note_offset(partition, group[-1].offset())
        self.count += len(group)
        self.bytes += sum(len(m.value() or b"") for m in group)
        return group

    def _decode(self, topic: str, messages: list[Any], landed_at: datetime) -> None:
        for start in range(0, len(messages), CHUNK_MESSAGES):
            part = messages[start:start + CHUNK_MESSAGES]
            raw = []
            for m in part:
                kind, stamp = m.timestamp()
                raw.append((m.partition(), m.offset(), stamp if kind else None, m.key(), m.value()))
            args = (self.kinds[topic], topic, raw, self.max_message_bytes, landed_at, self.window)
            result = self.pool.submit(decode_chunk, *args) if self.pool else decode_chunk(*args)
            self.chunks.append(_PendingChunk(topic, part, result))

    # --- at flush time -----------------------------------------------------------------------
    def collect(self) -> None:
        """Wait for the batch's decoded chunks; valid rows to the builders, rejects to dead letters."""
        for pending in self.chunks:
            chunk = pending.result if isinstance(pending.result, Chunk) else pending.result.result()
            self.builders[pending.topic].add_table(chunk.table)
            for index, code, detail in chunk.rejects:
                self.dead.append(DeadLetter(Record.of(pending.messages[index]), code, detail))
        self.chunks = []

    def prepare(self) -> dict[str, PreparedBatch]:
        """The collected rows of every topic with messages, split into the files they land in."""
        return {topic: prepare(builder) for topic, builder in self.builders.items() if builder.offsets}
