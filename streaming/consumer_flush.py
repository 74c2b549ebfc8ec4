"""Steps 2a-e and 4 of the landing consumer's protocol (streaming/consumer.py): a batch lands exactly once.

The order of the steps is the exactly-once argument (docs/streaming.md, "Exactly-once landing");
``BatchLander.land`` runs them in that order, one unit each:

a. ``BatchFiles.write_manifests``: one intent manifest per (dataset, partition) in ``_pending/``;
b. ``BatchFiles.write_files``: the Parquet files (temp name → fsync → rename);
c. ``BatchLander.send_dead_letters``: the dead letters, producer flushed (acks=all: durable);
d. ``commit_offsets``: the offsets, synchronously; only once it is applied are the files final;
e. ``BatchFiles.clear_manifests``, then ``BatchLander.announce``: the "batch landed" notices, metrics.

A commit the group refused (evicted, rebalancing) was definitely not applied: ``BatchLander``
removes the batch's files that still carry its token, halves the batch size and goes back to the
batch's first offsets (``rewind``). Any other commit error is ambiguous and stops the consumer.
A crash between a and e leaves manifests behind: ``BatchFiles.recover`` resolves them against
the committed offsets when the partitions are assigned again (step 4).
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from loyalty_core.landing_zone import DATASETS, LandingZone, PreparedBatch
from loyalty_core.logs import EventLog
from loyalty_core.settings import Settings
from streaming.consumer_batch import Batcher, DeadLetter, Record
from streaming.landing import BatchBuilder
from streaming.metrics import ConsumerMetrics

UTC = timezone.utc

#: The longest detail text kept in a dead letter's header.
MAX_DETAIL_CHARS = 1000
#: A dead letter's header saying its source message had no key (its own key is then empty).
KEY_NULL_HEADER = "dlq.source.key_null"
#: The smallest batch an eviction halves the batch to (records).
MIN_BATCH_RECORDS = 100
#: Commit error codes that mean "not applied" (the group moved on); any other is ambiguous.
REJECTED_COMMIT = frozenset({KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION,
                             KafkaError.UNKNOWN_MEMBER_ID, KafkaError.FENCED_INSTANCE_ID,
                             KafkaError._ASSIGNMENT_LOST, KafkaError._MAX_POLL_EXCEEDED,
                             KafkaError.STALE_MEMBER_EPOCH})


@dataclass
class RunSummary:
    consumed: int = 0
    landed: int = 0
    dead_lettered: int = 0
    #: Messages of batches dropped at a rebalance or whose commit the group refused: not landed
    #: here, the partition's next owner consumes them again (so consumed is more than landed).
    handed_back: int = 0
    batches: int = 0
    files: int = 0
    stopped_by: str = ""
    #: Seconds from the first message handled to the last commit (throughput without group join).
    busy_seconds: float = 0.0

    def line(self) -> str:
        rate = f", {self.consumed / self.busy_seconds:,.0f} msg/s" if self.busy_seconds > 0 else ""
        back = (f", {self.handed_back} handed back uncommitted at a rebalance (consumed again by their "
                f"partition's next owner)" if self.handed_back else "")
        return (f"consumed {self.consumed}, landed {self.landed}, dead-lettered {self.dead_lettered}{back} "
                f"in {self.batches} batches ({self.files} files{rate}); stopped: {self.stopped_by}")


def dead_letter_headers(message: Record, code: str, detail: str, failed_at: str) -> list[tuple[str, bytes]]:
    """The original headers plus the ``dlq.*`` headers of design.md (and ``dlq.source.key_null``
    when the message had no key and no value: the dead letter's key is then empty, which a replay
    must not send as a key)."""
    return [*(message.headers or []),
            ("dlq.source.topic", message.topic.encode()),
            ("dlq.source.partition", str(message.partition).encode()),
            ("dlq.source.offset", str(message.offset).encode()),
            ("dlq.error.code", code.encode()),
            ("dlq.error.detail", detail[:MAX_DETAIL_CHARS].encode("utf-8", "replace")),
            ("dlq.failed_at", failed_at.encode()),
            *([(KEY_NULL_HEADER, b"true")] if message.key is None and message.value is None else [])]


def batch_notice(topic: str, builder: BatchBuilder, landed: PreparedBatch, dead_letters: int,
                 files: list[str], landed_at: str) -> dict[str, Any]:
    """The "batch landed" message of one topic's part of a committed batch."""
    partitions = {str(p): span for p, span in sorted(builder.offsets.items())}
    return {
        "batch_id": hashlib.sha1(json.dumps([topic, partitions]).encode()).hexdigest()[:20],
        "topic": topic, "partitions": partitions, "event_dates": landed.event_dates,
        "records": landed.records, "dead_letters": dead_letters,
        "files": files, "landed_at": landed_at,
    }


# --- step d: the offsets ----------------------------------------------------------------------
def commit_positions(builders: dict[str, BatchBuilder]) -> list[TopicPartition]:
    """The offsets that commit a batch: one past each partition's last message in it."""
    return [TopicPartition(topic, partition, last + 1)
            for topic, builder in builders.items()
            for partition, (first, last) in sorted(builder.offsets.items())]


def commit_offsets(client: Consumer, offsets: list[TopicPartition]) -> KafkaError | None:
    """Commit synchronously: None once applied; the error if the group refused it (definitely not
    applied). Raises on any other error: ambiguous, the next start resolves the manifests."""
    rejected = None
    try:
        for tp in client.commit(offsets=offsets, asynchronous=False) or []:
            if tp.error is not None:
                if tp.error.code() not in REJECTED_COMMIT:
                    raise KafkaException(tp.error)
                rejected = tp.error
    except KafkaException as exc:
        if exc.args[0].code() not in REJECTED_COMMIT:
            raise  # ambiguous: stop; the next start resolves the manifests against the commits
        rejected = exc.args[0]
    return rejected


def rewind(client: Consumer, builders: dict[str, BatchBuilder], log: EventLog) -> None:
    """After a refused commit, go back to the batch's first offsets on partitions we still own.

    (A rebalance restarts partitions at the committed offsets anyway; this covers a refused
    commit that leaves the assignment as it was.)"""
    owned = {(tp.topic, tp.partition) for tp in client.assignment()}
    for topic, builder in builders.items():
        for partition, (first, _last) in builder.offsets.items():
            if (topic, partition) in owned:
                try:
                    client.seek(TopicPartition(topic, partition, first))
                except KafkaException as exc:
                    log("rewind_failed", level="warning", topic=topic, partition=partition, error=str(exc))


def offsets_for_log(offsets: list[TopicPartition]) -> dict[str, int]:
    return {f"{tp.topic}[{tp.partition}]": tp.offset for tp in offsets}


# --- steps a, b, e and 4: the files and their manifests ---------------------------------------
@dataclass
class WrittenBatch:
    """What a flush wrote: its token (in its manifests and Parquet metadata), manifests, files."""

    token: str
    pending: list[tuple[str, int]]  # (dataset, partition) of each manifest
    files: dict[str, list[str]] = field(default_factory=dict)  # per topic, full paths


class BatchFiles:
    """A batch's files in the landing zone, and the intent manifests that make them undoable."""

    def __init__(self, zone: LandingZone, log: EventLog):
        self.zone = zone
        self.log = log

    def write_manifests(self, prepared: dict[str, PreparedBatch],
                        builders: dict[str, BatchBuilder]) -> WrittenBatch:
        """Step a: the files the batch is about to write, one manifest per (dataset, partition)."""
        # The token marks this batch's manifests and files (Parquet key-value metadata), so that
        # after a refused commit we remove only files nobody else has rewritten since.
        written = WrittenBatch(uuid.uuid4().hex, [])
        for topic, batch in prepared.items():
            for partition, paths in batch.by_partition.items():
                first, last = builders[topic].offsets[partition]
                self.zone.write_pending(batch.dataset, partition, {
                    "topic": topic, "partition": partition, "first": first, "last": last,
                    "files": paths, "token": written.token, "written_at": datetime.now(UTC).isoformat()})
                written.pending.append((batch.dataset, partition))
        return written

    def beside_other_messages(self, prepared: dict[str, PreparedBatch]) -> dict[str, PreparedBatch]:
        """Before step a: a file name already taken by other messages (offsets that started again
        at 0: a topic created anew, the embedded broker restarted) gets a name of its own
        (``LandingZone.beside_other_messages``), said in the log: the landed file stays."""
        out = {}
        for topic, batch in prepared.items():
            out[topic], renamed = self.zone.beside_other_messages(batch)
            if renamed:
                self.log("offsets_reused", level="warning", topic=topic, files=renamed,
                         why="a landed file of other messages has these offsets: the topic's offsets started "
                             "again (a topic created anew, or the embedded broker restarted: it keeps messages "
                             "in memory); this batch lands beside it under a name of its own")
        return out

    def write_files(self, prepared: dict[str, PreparedBatch], written: WrittenBatch) -> None:
        """Step b: the Parquet files, durable when this returns."""
        written.files = {topic: self.zone.write_prepared(batch, token=written.token)
                         for topic, batch in prepared.items()}

    def clear_manifests(self, written: WrittenBatch) -> None:
        """Step e, first: the batch is committed, its files are final."""
        for dataset, partition in written.pending:
            self.zone.clear_pending(dataset, partition)

    def discard(self, written: WrittenBatch) -> int:
        """Undo a and b after a refused commit: remove the files and manifests still ours."""
        removed = 0
        for paths in written.files.values():
            for path in paths:
                if self.zone.file_token(path) == written.token:
                    self.zone.fs.rm(path)
                    removed += 1
        for dataset, partition in written.pending:
            manifest = self.zone.read_pending(dataset, partition)
            if manifest is not None and manifest.get("token") == written.token:
                self.zone.clear_pending(dataset, partition)
        return removed

    def recover(self, assigned: list[TopicPartition], kinds: dict[str, str],
                committed: Callable[[list[TopicPartition]], dict[tuple[str, int], int | None]]) -> None:
        """Step 4: resolve crash leftovers (pending manifests) of newly assigned partitions.

        If the committed offset already passed a manifest's batch, its files are final (the crash
        hit between d and e) and only the manifest goes; otherwise the files are deleted and the
        messages are consumed again, whatever the new batch boundaries are."""
        manifests = self._leftovers(assigned, kinds)
        if not manifests:
            return
        committed_by = committed([TopicPartition(t, p) for t, p in manifests])
        for (topic, partition), (dataset, manifest) in manifests.items():
            offset = committed_by.get((topic, partition))
            if offset is not None and offset > manifest["last"]:
                self.log("pending_batch_was_committed", topic=topic, partition=partition,
                         last=manifest["last"], committed=offset)
            else:
                removed = self.zone.delete(manifest["files"]) + self.zone.delete_temp_files(manifest["files"])
                self.log("pending_batch_rolled_back", level="warning", topic=topic,
                         partition=partition, first=manifest["first"], last=manifest["last"],
                         committed=offset, files_removed=removed)
            self.zone.clear_pending(dataset, partition)

    def _leftovers(self, assigned: list[TopicPartition],
                   kinds: dict[str, str]) -> dict[tuple[str, int], tuple[str, dict[str, Any]]]:
        """The pending manifests of the partitions, by (topic, partition): (dataset, manifest)."""
        manifests = {}
        for tp in assigned:
            dataset = DATASETS[kinds[tp.topic]]
            if self.zone.delete_pending_temp_files(dataset, tp.partition):
                self.log("half_written_manifest_removed", topic=tp.topic, partition=tp.partition)
            manifest = self.zone.read_pending(dataset, tp.partition)
            if manifest is None:
                continue
            if manifest.get("topic") != tp.topic:
                self.log("pending_manifest_other_topic", level="warning", manifest=manifest, topic=tp.topic)
                continue
            manifests[(tp.topic, tp.partition)] = (dataset, manifest)
        return manifests


# --- steps c and e: the producer --------------------------------------------------------------
class Deliveries:
    """The producer of dead letters and batch notices, with the delivery errors since ``errors`` was reset."""

    def __init__(self, producer: Producer):
        self.producer = producer
        self.errors: list[str] = []

    def on_delivery(self, error: Any, message: Any) -> None:
        if error is not None:
            self.errors.append(f"{message.topic()}: {error.str()}")

    def produce(self, topic: str, key: bytes | None, value: bytes | None,
                headers: list[tuple[str, bytes]] | None = None) -> None:
        while True:
            try:
                self.producer.produce(topic, key=key, value=value, headers=headers, on_delivery=self.on_delivery)
                return
            except BufferError:  # the producer's queue is full: let it drain
                self.producer.poll(0.1)

    def flush(self) -> None:
        """Wait until every produced message is acknowledged (acks=all) or failed."""
        deadline = time.monotonic() + 60
        while self.producer.flush(1.0) > 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the broker did not acknowledge the dead letters / batch notices within 60 s")


class StageTimer:
    """Seconds per flush step, each since the previous one (the ``stages`` of ``batch_committed``)."""

    def __init__(self, started: float):
        self.stages = {"collect": time.monotonic() - started}
        self._mark = time.monotonic()

    def __call__(self, name: str) -> None:
        now = time.monotonic()
        self.stages[name] = round(now - self._mark, 3)
        self._mark = now


# --- the flush ---------------------------------------------------------------------------------
class BatchLander:
    """Lands one batch at a time (steps a-e, in that order) and sizes the batches to how that goes."""

    def __init__(self, settings: Settings, files: BatchFiles, client: Consumer, producer: Producer,
                 metrics: ConsumerMetrics, summary: RunSummary, log: EventLog):
        self.settings = settings
        self.files = files
        self.client = client
        self.deliveries = Deliveries(producer)
        self.metrics = metrics
        self.summary = summary
        self.log = log
        # Records per batch: halved after an eviction (a batch that could not be landed within
        # max_poll_interval_ms would be evicted again, for ever, on a host that stays busy),
        # doubled back after each commit, never above settings.batch_max_records.
        self.record_limit = settings.batch_max_records

    def land(self, batch: Batcher, reason: str) -> bool:
        """Land, dead-letter and commit ``batch`` (not empty); False if the commit was refused."""
        started = batch.started or time.monotonic()
        stage = StageTimer(started)
        batch.collect()
        stage("decode_wait")
        prepared = self.files.beside_other_messages(batch.prepare())
        written = self.files.write_manifests(prepared, batch.builders)
        stage("prepare")
        self.files.write_files(prepared, written)
        stage("write")
        self.send_dead_letters(batch.dead)
        offsets = commit_positions(batch.builders)
        stage("dead_letters")
        rejected = commit_offsets(self.client, offsets)
        if rejected is not None:
            self._refused(batch, reason, rejected, written, offsets)
            return False
        stage("commit")
        self.record_limit = min(self.settings.batch_max_records, self.record_limit * 2)
        self.files.clear_manifests(written)
        latency = time.monotonic() - started
        self.announce(batch, prepared, written.files)
        stage("notify")
        self.summary.dead_lettered += len(batch.dead)
        self.summary.batches += 1
        self.summary.busy_seconds = time.monotonic() - (batch.first_message_at or started)
        self.metrics.observe_batch(latency, time.time())
        self.log("batch_committed", reason=reason, messages=batch.count,
                 landed=sum(b.records for b in prepared.values()), dead_letters=len(batch.dead),
                 files=sum(len(f) for f in written.files.values()), seconds=round(latency, 3),
                 stages={k: round(v, 3) for k, v in stage.stages.items()}, offsets=offsets_for_log(offsets))
        return True

    def send_dead_letters(self, dead: list[DeadLetter]) -> None:
        """Step c: every dead letter acknowledged by the broker, or an error (nothing committed yet)."""
        failed_at = datetime.now(UTC).isoformat()
        self.deliveries.errors = []
        for d in dead:
            self.deliveries.produce(
                self.settings.topic_dead_letter,
                # a record without key and value is dead-lettered with an empty key
                key=d.message.key if d.message.key is not None or d.message.value is not None else b"",
                value=d.message.value,
                headers=dead_letter_headers(d.message, d.code, d.detail, failed_at))
        self.deliveries.flush()
        if self.deliveries.errors:
            raise RuntimeError(f"dead-letter topic {self.settings.topic_dead_letter} refused a message: "
                               f"{self.deliveries.errors[0]}")

    def _refused(self, batch: Batcher, reason: str, error: KafkaError, written: WrittenBatch,
                 offsets: list[TopicPartition]) -> None:
        """The group moved on without us (evicted after max.poll.interval.ms, or rebalancing):
        the commit was definitely not applied and another member re-consumes these messages, so
        our files are duplicates-to-be. Remove the ones that are still ours. The rebalance that
        follows restarts our partitions at their committed offsets."""
        self.metrics.commit_failures.inc()
        removed = self.files.discard(written)
        self.record_limit = max(MIN_BATCH_RECORDS, self.record_limit // 2)
        self.log("commit_failed", level="warning", reason=reason, error=error.str(),
                 files_removed=removed, partitions=offsets_for_log(offsets),
                 next_batch_max_records=self.record_limit)
        rewind(self.client, batch.builders, self.log)

    def announce(self, batch: Batcher, prepared: dict[str, PreparedBatch], files: dict[str, list[str]]) -> None:
        """Step e, after the commit: one "batch landed" message per topic, and the counts."""
        dead_by_topic: dict[str, int] = {}
        for d in batch.dead:
            dead_by_topic[d.message.topic] = dead_by_topic.get(d.message.topic, 0) + 1
            self.metrics.dead_lettered.labels(d.code, d.message.topic).inc()
        landed_at = datetime.now(UTC).isoformat()
        for topic, landed in prepared.items():
            notice = batch_notice(topic, batch.builders[topic], landed, dead_by_topic.get(topic, 0),
                                  files[topic], landed_at)
            self.deliveries.produce(self.settings.topic_batches, key=topic.encode(),
                                    value=json.dumps(notice).encode())
            self.metrics.landed.labels(topic).inc(landed.records)
            self.metrics.files_written.inc(len(files[topic]))
            self.summary.landed += landed.records
            self.summary.files += len(files[topic])
        self.deliveries.flush()
        if self.deliveries.errors:  # the data is landed and committed: a lost notice is only logged
            self.log("batch_notice_failed", level="warning", error=self.deliveries.errors[0])
