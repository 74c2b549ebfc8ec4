"""The landing consumer: ``touchpoints`` + ``customers`` + ``case-events`` → validated Parquet, exactly once.

The Kafka client is confluent-kafka (librdkafka): it fetches on its own C threads while this
loop decodes and writes, so the fetch costs the loop about 1 µs per message instead of the
~30 µs of a pure-Python client (docs/streaming.md, "Throughput"). One loop, one Python thread:

1. consume; decode every message with the contract (kind by topic); valid records go to a batch
   builder, invalid ones to the batch's dead letters (original key, bytes and headers kept);
2. when the batch is full (``batch_max_records`` messages or ``batch_max_bytes`` bytes) or old
   (``batch_max_wait_s``), flush it:
   a. write one intent manifest per (dataset, partition) to ``<landing>/_pending/`` listing the
      files the batch is about to write,
   b. write the Parquet files (temp name → fsync → rename),
   c. send the dead letters and flush the producer (acks=all: durable),
   d. commit the offsets (synchronously),
   e. remove the manifests, publish one "batch landed" message per topic, write metrics.
3. on a rebalance (revocation or loss) the uncommitted in-memory batch is dropped (nothing of it
   is written yet; its messages are re-consumed from the committed offsets by whoever owns them
   next). librdkafka restarts every (re)assigned partition at its committed offset and purges
   messages fetched before the rebalance, so no stale message reaches the next batch;
4. on partition assignment, a manifest left by a crash is resolved before anything is consumed:
   if the committed offset already passed the manifest's batch, the files are final (the crash
   hit between d and e) and only the manifest goes; otherwise the files are deleted and the
   messages are simply consumed again, whatever the new batch boundaries are.

Rebalance callbacks run inside ``consume()``, on this thread, so they may call the client.

Run it with ``loyalty consume`` or ``python -m streaming.consumer``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from loyalty_monitor import logs
from loyalty_monitor.broker import BrokerUnreachable, probe
from loyalty_monitor.logs import EventLog
from loyalty_monitor.settings import Settings, load_settings
from streaming.consumer_batch import Batcher, Record
from streaming.landing import DATASETS, LandingZone
from streaming.metrics import ConsumerMetrics, serve

UTC = timezone.utc

#: The longest detail text kept in a dead letter's header.
MAX_DETAIL_CHARS = 1000
#: librdkafka's "no offset" (OFFSET_INVALID).
NO_OFFSET = -1001
#: The smallest batch an eviction halves the batch to (records).
MIN_BATCH_RECORDS = 100


def default_workers() -> int:
    """Decode worker processes by default: none (decode in the consumer process).

    Workers overlap decoding with writing and pay off on hosts with idle cores; on a busy
    2-core host they only add processes (see docs/streaming.md, "Throughput")."""
    return 0


def _rejected_commit_codes() -> frozenset[int]:
    from confluent_kafka import KafkaError

    return frozenset({KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION,
                      KafkaError.UNKNOWN_MEMBER_ID, KafkaError.FENCED_INSTANCE_ID,
                      KafkaError._ASSIGNMENT_LOST, KafkaError._MAX_POLL_EXCEEDED,
                      KafkaError.STALE_MEMBER_EPOCH})


#: Commit error codes that mean "not applied" (the group moved on); any other is ambiguous.
REJECTED_COMMIT = _rejected_commit_codes()


def consumer_config(settings: Settings) -> dict[str, Any]:
    """confluent-kafka Consumer configuration of the landing consumer (also used by the
    benchmark's raw confluent-kafka baseline, so both read with the same settings)."""
    fetch_max = 64 * 1024 * 1024
    return {
        **settings.confluent_client_config(),
        "group.id": settings.consumer_group,
        "client.id": "loyalty-landing",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "max.poll.interval.ms": settings.max_poll_interval_ms,
        "session.timeout.ms": settings.session_timeout_ms,
        "heartbeat.interval.ms": max(settings.session_timeout_ms // 3, 100),
        "fetch.max.bytes": fetch_max,
        "max.partition.fetch.bytes": max(4 * 1024 * 1024, 2 * settings.max_message_bytes),
        "receive.message.max.bytes": fetch_max + 1024 * 1024,
        "fetch.wait.max.ms": 100,
        # Bounds the prefetched backlog held in memory (librdkafka's default is 64 MiB).
        "queued.max.messages.kbytes": 32 * 1024,
    }


def metrics_path(settings: Settings):
    return settings.data_dir / "run" / "consumer-metrics.prom"


#: The consumer's structured event log (loyalty_monitor/logs.py: console on a terminal, JSON lines
#: otherwise or with ``log_format = "json"``); the name is the one callers and tests know.
JsonLog = EventLog


class _ClientLogHandler(logging.Handler):
    """librdkafka's own log lines (connection failures and the like) as structured lines."""

    def __init__(self, log: EventLog):
        super().__init__()
        self.json_log = log

    def emit(self, record: logging.LogRecord) -> None:
        level = "error" if record.levelno >= logging.ERROR else (
            "warning" if record.levelno >= logging.WARNING else "info")
        self.json_log("kafka_client", level=level, message=record.getMessage())


def client_logger(log: EventLog) -> logging.Logger:
    logger = logging.getLogger(f"loyalty.kafka.{id(log)}")
    logger.propagate = False
    logger.handlers = [_ClientLogHandler(log)]
    logger.setLevel(logging.INFO)
    return logger


@dataclass
class RunSummary:
    consumed: int = 0
    landed: int = 0
    dead_lettered: int = 0
    batches: int = 0
    files: int = 0
    stopped_by: str = ""
    #: Seconds from the first message handled to the last commit (throughput without group join).
    busy_seconds: float = 0.0

    def line(self) -> str:
        rate = f", {self.consumed / self.busy_seconds:,.0f} msg/s" if self.busy_seconds > 0 else ""
        return (f"consumed {self.consumed}, landed {self.landed}, dead-lettered {self.dead_lettered} "
                f"in {self.batches} batches ({self.files} files{rate}); stopped: {self.stopped_by}")


def dead_letter_headers(message: Record, code: str, detail: str, failed_at: str) -> list[tuple[str, bytes]]:
    """The original headers plus the ``dlq.*`` headers of design.md."""
    return [*(message.headers or []),
            ("dlq.source.topic", message.topic.encode()),
            ("dlq.source.partition", str(message.partition).encode()),
            ("dlq.source.offset", str(message.offset).encode()),
            ("dlq.error.code", code.encode()),
            ("dlq.error.detail", detail[:MAX_DETAIL_CHARS].encode("utf-8", "replace")),
            ("dlq.failed_at", failed_at.encode())]


class LandingConsumer:
    """The consumer service. ``run()`` until SIGTERM/SIGINT, ``max_records`` or (``until_idle``) caught up."""

    def __init__(self, settings: Settings, *, until_idle: bool = False, idle_s: float = 1.0,
                 max_records: int | None = None, log: EventLog | None = None,
                 workers: int | None = None, consumer_overrides: dict[str, Any] | None = None,
                 on_progress: Callable[[int, int | None], None] | None = None):
        self.settings = settings
        #: ``on_progress(messages consumed, messages still behind or None)``, about once a second.
        self.on_progress = on_progress
        self._progress_at = 0.0
        self.until_idle = until_idle
        self.idle_s = idle_s
        self.max_records = max_records
        self.log = log or EventLog(fmt=settings.log_format)
        self.kinds = {settings.topic_touchpoints: "touchpoint", settings.topic_customers: "customer",
                      settings.topic_case_events: "case_event"}
        self.zone = LandingZone.from_settings(settings)
        self.metrics = ConsumerMetrics()
        self.summary = RunSummary()
        self._stop_reason = ""
        # Records per batch: halved after an eviction (a batch that could not be landed within
        # max_poll_interval_ms would be evicted again, for ever, on a host that stays busy),
        # doubled back after each commit, never above settings.batch_max_records.
        self._record_limit = settings.batch_max_records
        self._consumer_overrides = consumer_overrides or {}
        self.workers = default_workers() if workers is None else workers
        self._batch = Batcher(settings, self.kinds, self.log, self.workers)
        self._last_activity = self._unassigned_since = time.monotonic()
        self._delivery_errors: list[str] = []
        self.consumer = None
        self.producer = None

    # --- lifecycle -------------------------------------------------------------------------
    def stop(self, reason: str = "requested") -> None:
        """Ask the loop to flush, commit and return (safe to call from a signal handler)."""
        self._stop_reason = self._stop_reason or reason

    def _connect(self) -> None:
        from confluent_kafka import Consumer, Producer

        logger = client_logger(self.log)
        config = {**consumer_config(self.settings), **self._consumer_overrides, "logger": logger}
        self.consumer = Consumer(config)
        self.producer = Producer({
            **self.settings.confluent_client_config(), "client.id": "loyalty-landing-dlq", "acks": "all",
            "linger.ms": 5, "enable.idempotence": False, "logger": logger,
            # a dead letter carries the original bytes, which the broker already accepted once
            "message.max.bytes": max(64 * 1024 * 1024, 4 * self.settings.max_message_bytes)})
        self.consumer.subscribe(list(self.kinds), on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_lost)

    def close(self) -> None:
        self._batch.close()
        if self.consumer is not None:
            self._closing = True
            self.consumer.close()  # leaves the group; auto-commit is off, so it commits nothing
        if self.producer is not None:
            self.producer.flush(10)

    def run(self) -> RunSummary:
        self._closing = False
        self._batch.warm_up()
        self._connect()
        server = None
        if self.settings.metrics_port > 0:
            server = serve(self.metrics, self.settings.metrics_port)
            self.log("metrics_http", port=self.settings.metrics_port)
        self.log("started", group=self.settings.consumer_group, topics=list(self.kinds), workers=self.workers,
                 landing=self.settings.landing, bootstrap=self.settings.bootstrap,
                 until_idle=self.until_idle, max_records=self.max_records)
        self._last_activity = self._unassigned_since = time.monotonic()
        # How long --until-idle waits for the group to hand this member partitions (at the start,
        # or again after an eviction) before it gives up.
        join_patience = 3 * self.settings.max_poll_interval_ms / 1000 + 10
        try:
            while not self._stop_reason:
                now = time.monotonic()
                wait = self.settings.batch_max_wait_s
                if self._batch.started is not None:
                    wait = max(0.0, self._batch.started + self.settings.batch_max_wait_s - now)
                # Never overfill a batch: batch_max_records bounds memory and flush time.
                limit = self._record_limit - self._batch.count
                if self.max_records is not None:
                    limit = min(limit, self.max_records - self.summary.consumed)
                messages = self.consumer.consume(num_messages=max(limit, 1), timeout=min(wait, 0.2))
                for part in self._batch.parts(messages):
                    self._handle_messages(part)
                    if self._batch.bytes >= self.settings.batch_max_bytes:
                        self.flush("full")
                now = time.monotonic()
                if messages:
                    self._last_activity = now
                full = (self._batch.count >= self._record_limit
                        or self._batch.bytes >= self.settings.batch_max_bytes)
                if full or (self._batch.started is not None
                            and now - self._batch.started >= self.settings.batch_max_wait_s):
                    self.flush("full" if full else "max_wait")
                    self._report_progress(self._update_lag(cheap=True))
                elif self.on_progress and messages and now - self._progress_at >= 1.0:
                    self._report_progress(self._update_lag(cheap=True))
                if self.max_records is not None and self.summary.consumed >= self.max_records:
                    self.stop("max_records")
                elif self.until_idle and now - self._last_activity >= self.idle_s:
                    self.flush("idle")
                    if self.consumer.assignment():
                        self._unassigned_since = None
                        if sum(self._update_lag(cheap=False).values()) == 0:
                            self.stop("caught_up")
                        else:
                            self._last_activity = now  # lag left: poll for another idle period
                    else:
                        self._unassigned_since = self._unassigned_since or now
                        if now - self._unassigned_since > join_patience:
                            self.stop("no_partitions_assigned")
            self.flush("shutdown")
        finally:
            self.summary.stopped_by = self._stop_reason or "error"
            self._write_metrics()
            self.close()
            if server is not None:
                server.shutdown()
                server.server_close()
        self.log("stopped", reason=self.summary.stopped_by, consumed=self.summary.consumed,
                 landed=self.summary.landed, dead_lettered=self.summary.dead_lettered,
                 batches=self.summary.batches)
        return self.summary

    # --- per message -----------------------------------------------------------------------
    def _handle_messages(self, messages: list[Any]) -> None:
        """Group the messages by partition into the batch (it notes offsets and starts decoding)."""
        by_partition: dict[tuple[str, int], list[Any]] = {}
        for message in messages:
            if message.error() is not None:
                self._client_error(message.error())
                continue
            key = (message.topic(), message.partition())
            group = by_partition.get(key)
            if group is None:
                by_partition[key] = group = []
            group.append(message)
        if not by_partition:
            return
        for topic, taken in self._batch.add(by_partition).items():
            self.summary.consumed += taken
            self.metrics.consumed.labels(topic).inc(taken)

    def _client_error(self, error: Any) -> None:
        """An error event from the client (broker down, unknown topic...): log it; a fatal one stops us."""
        from confluent_kafka import KafkaException

        self.log("kafka_error", level="error" if error.fatal() else "warning", code=error.name(),
                 error=error.str(), retriable=error.retriable())
        if error.fatal():
            raise KafkaException(error)

    # --- batches ---------------------------------------------------------------------------
    def _on_delivery(self, error: Any, message: Any) -> None:
        if error is not None:
            self._delivery_errors.append(f"{message.topic()}: {error.str()}")

    def flush(self, reason: str) -> bool:
        """Land, dead-letter and commit the current batch; False if the commit was refused."""
        from confluent_kafka import KafkaException, TopicPartition

        if self._batch.empty():
            return True
        started = self._batch.started or time.monotonic()
        stages = {"collect": time.monotonic() - started}
        mark = time.monotonic()

        def stage(name: str) -> None:
            nonlocal mark
            now = time.monotonic()
            stages[name] = round(now - mark, 3)
            mark = now

        self._batch.collect()
        stage("decode_wait")
        prepared = self._batch.prepare()

        # The token marks this batch's manifests and files (Parquet key-value metadata), so that
        # after a refused commit we remove only files nobody else has rewritten since.
        token = uuid.uuid4().hex
        pending: list[tuple[str, int]] = []
        for topic, batch in prepared.items():
            for partition, paths in batch.by_partition.items():
                first, last = self._batch.builders[topic].offsets[partition]
                self.zone.write_pending(batch.dataset, partition, {
                    "topic": topic, "partition": partition, "first": first, "last": last,
                    "files": paths, "token": token, "written_at": datetime.now(UTC).isoformat()})
                pending.append((batch.dataset, partition))
        stage("prepare")
        files: dict[str, list[str]] = {topic: self.zone.write_prepared(batch, token=token)
                                       for topic, batch in prepared.items()}
        stage("write")

        failed_at = datetime.now(UTC).isoformat()
        self._delivery_errors = []
        for d in self._batch.dead:
            self._produce(self.settings.topic_dead_letter,
                          # a record without key and value is dead-lettered with an empty key
                          key=d.message.key if d.message.key is not None or d.message.value is not None else b"",
                          value=d.message.value,
                          headers=dead_letter_headers(d.message, d.code, d.detail, failed_at))
        self._flush_producer()
        if self._delivery_errors:
            raise RuntimeError(f"dead-letter topic {self.settings.topic_dead_letter} refused a message: "
                               f"{self._delivery_errors[0]}")

        offsets = [TopicPartition(topic, partition, last + 1)
                   for topic, builder in self._batch.builders.items()
                   for partition, (first, last) in sorted(builder.offsets.items())]
        offsets_log = {f"{tp.topic}[{tp.partition}]": tp.offset for tp in offsets}
        stage("dead_letters")
        rejected = None
        try:
            for tp in self.consumer.commit(offsets=offsets, asynchronous=False) or []:
                if tp.error is not None:
                    if tp.error.code() not in REJECTED_COMMIT:
                        raise KafkaException(tp.error)
                    rejected = tp.error
        except KafkaException as exc:
            if exc.args[0].code() not in REJECTED_COMMIT:
                raise  # ambiguous: stop; the next start resolves the manifests against the commits
            rejected = exc.args[0]
        if rejected is not None:
            # The group moved on without us (evicted after max.poll.interval.ms, or rebalancing):
            # the commit was definitely not applied and another member re-consumes these
            # messages, so our files are duplicates-to-be. Remove the ones that are still ours.
            # The rebalance that follows restarts our partitions at their committed offsets.
            self.metrics.commit_failures.inc()
            self._last_activity = time.monotonic()
            removed = self._discard_own_files(token, pending, files)
            self._record_limit = max(MIN_BATCH_RECORDS, self._record_limit // 2)
            self.log("commit_failed", level="warning", reason=reason, error=rejected.str(),
                     files_removed=removed, partitions=offsets_log, next_batch_max_records=self._record_limit)
            self._rewind_batch()
            self._batch.reset()
            return False
        stage("commit")
        self._record_limit = min(self.settings.batch_max_records, self._record_limit * 2)
        for dataset, partition in pending:
            self.zone.clear_pending(dataset, partition)

        latency = time.monotonic() - started
        dead_by_topic: dict[str, int] = {}
        for d in self._batch.dead:
            dead_by_topic[d.message.topic] = dead_by_topic.get(d.message.topic, 0) + 1
            self.metrics.dead_lettered.labels(d.code, d.message.topic).inc()
        landed_at = datetime.now(UTC).isoformat()
        for topic, batch in prepared.items():
            builder = self._batch.builders[topic]
            partitions = {str(p): span for p, span in sorted(builder.offsets.items())}
            notice = {
                "batch_id": hashlib.sha1(json.dumps([topic, partitions]).encode()).hexdigest()[:20],
                "topic": topic, "partitions": partitions, "event_dates": batch.event_dates,
                "records": batch.records, "dead_letters": dead_by_topic.get(topic, 0),
                "files": files[topic], "landed_at": landed_at,
            }
            self._produce(self.settings.topic_batches, key=topic.encode(), value=json.dumps(notice).encode())
            self.metrics.landed.labels(topic).inc(batch.records)
            self.metrics.files_written.inc(len(files[topic]))
            self.summary.landed += batch.records
            self.summary.files += len(files[topic])
        self._flush_producer()
        if self._delivery_errors:  # the data is landed and committed: a lost notice is only logged
            self.log("batch_notice_failed", level="warning", error=self._delivery_errors[0])
        stage("notify")
        self.summary.dead_lettered += len(self._batch.dead)
        self.summary.batches += 1
        self.summary.busy_seconds = time.monotonic() - (self._batch.first_message_at or started)
        self.metrics.observe_batch(latency, time.time())
        self.log("batch_committed", reason=reason, messages=self._batch.count,
                 landed=sum(b.records for b in prepared.values()), dead_letters=len(self._batch.dead),
                 files=sum(len(f) for f in files.values()), seconds=round(latency, 3),
                 stages={k: round(v, 3) for k, v in stages.items()}, offsets=offsets_log)
        self._batch.reset()
        self._write_metrics()
        return True

    def _produce(self, topic: str, key: bytes | None, value: bytes | None,
                 headers: list[tuple[str, bytes]] | None = None) -> None:
        while True:
            try:
                self.producer.produce(topic, key=key, value=value, headers=headers, on_delivery=self._on_delivery)
                return
            except BufferError:  # the producer's queue is full: let it drain
                self.producer.poll(0.1)

    def _flush_producer(self) -> None:
        """Wait until every produced message is acknowledged (acks=all) or failed."""
        deadline = time.monotonic() + 60
        while self.producer.flush(1.0) > 0:
            if time.monotonic() > deadline:
                raise RuntimeError("the broker did not acknowledge the dead letters / batch notices within 60 s")

    def _rewind_batch(self) -> None:
        """After a refused commit, go back to the batch's first offsets on partitions we still own.

        (A rebalance restarts partitions at the committed offsets anyway; this covers a refused
        commit that leaves the assignment as it was.)"""
        from confluent_kafka import KafkaException, TopicPartition

        owned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        for topic, builder in self._batch.builders.items():
            for partition, (first, _last) in builder.offsets.items():
                if (topic, partition) in owned:
                    try:
                        self.consumer.seek(TopicPartition(topic, partition, first))
                    except KafkaException as exc:
                        self.log("rewind_failed", level="warning", topic=topic, partition=partition,
                                 error=str(exc))

    def _discard_own_files(self, token: str, pending: list[tuple[str, int]],
                           files: dict[str, list[str]]) -> int:
        removed = 0
        for paths in files.values():
            for path in paths:
                if self.zone.file_token(path) == token:
                    self.zone.fs.rm(path)
                    removed += 1
        for dataset, partition in pending:
            manifest = self.zone.read_pending(dataset, partition)
            if manifest is not None and manifest.get("token") == token:
                self.zone.clear_pending(dataset, partition)
        return removed

    # --- rebalances (called by the client inside consume(), on this thread) ----------------
    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        if self._closing:
            return
        # A rebalance is activity: --until-idle must not take the quiet of a (re)join for being
        # caught up.
        self._last_activity = time.monotonic()
        if partitions:
            self.log("partitions_revoked", partitions=sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions))
        if self._batch.count:
            # Our uncommitted batch may belong to another member now: drop it. Nothing of it is
            # written yet (files are only written in flush), and whoever owns its partitions
            # re-consumes it from the committed offsets.
            self.log("batch_dropped_on_rebalance", messages=self._batch.count)
        self._batch.reset()

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        self.log("partitions_lost", level="warning",
                 partitions=sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions))
        self._on_revoke(consumer, partitions)

    def _on_assign(self, _consumer: Any, partitions: list[Any]) -> None:
        self._last_activity = time.monotonic()
        self._unassigned_since = None
        self.log("partitions_assigned", partitions=sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions))
        # The client assigns the partitions after this returns; they start at their committed offsets.
        self.recover(sorted(partitions, key=lambda tp: (tp.topic, tp.partition)))

    def _committed(self, partitions: list[Any]) -> dict[tuple[str, int], int | None]:
        if not partitions:
            return {}
        result = self.consumer.committed(partitions, timeout=30)
        return {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None) for tp in result}

    def recover(self, assigned: list[Any]) -> None:
        """Resolve crash leftovers (pending manifests) of newly assigned partitions."""
        manifests = {}
        for tp in assigned:
            dataset = DATASETS[self.kinds[tp.topic]]
            if self.zone.delete_pending_temp_files(dataset, tp.partition):
                self.log("half_written_manifest_removed", topic=tp.topic, partition=tp.partition)
            manifest = self.zone.read_pending(dataset, tp.partition)
            if manifest is None:
                continue
            if manifest.get("topic") != tp.topic:
                self.log("pending_manifest_other_topic", level="warning", manifest=manifest, topic=tp.topic)
                continue
            manifests[(tp.topic, tp.partition)] = (dataset, manifest)
        if not manifests:
            return
        from confluent_kafka import TopicPartition

        committed_by = self._committed([TopicPartition(t, p) for t, p in manifests])
        for (topic, partition), (dataset, manifest) in manifests.items():
            committed = committed_by.get((topic, partition))
            if committed is not None and committed > manifest["last"]:
                self.log("pending_batch_was_committed", topic=topic, partition=partition,
                         last=manifest["last"], committed=committed)
            else:
                removed = self.zone.delete(manifest["files"]) + self.zone.delete_temp_files(manifest["files"])
                self.log("pending_batch_rolled_back", level="warning", topic=topic,
                         partition=partition, first=manifest["first"], last=manifest["last"],
                         committed=committed, files_removed=removed)
            self.zone.clear_pending(dataset, partition)

    # --- lag and metrics -------------------------------------------------------------------
    def _update_lag(self, cheap: bool) -> dict[tuple[str, int], int]:
        """Messages behind the partition ends, per assigned partition; published as a gauge.

        ``cheap`` uses the high-water marks of the last fetch responses (no request)."""
        assignment = list(self.consumer.assignment())
        if not assignment:
            return {}
        positions = {(tp.topic, tp.partition): tp.offset for tp in self.consumer.position(assignment)}
        committed = self._committed(assignment) if not cheap else {}
        lag = {}
        for tp in assignment:
            key = (tp.topic, tp.partition)
            try:
                low, high = self.consumer.get_watermark_offsets(tp, cached=True)
                if not cheap:
                    # The listed end offsets are exact on Apache Kafka, but the embedded Tansu
                    # broker can report them short (docs/streaming.md): take the larger of both.
                    low2, high2 = self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)
                    low, high = (low2 if low2 >= 0 else low), max(high, high2)
            except Exception as exc:  # noqa: BLE001 - a metric must not stop the consumer
                if not cheap:
                    raise
                self.log("lag_unknown", level="warning", partition=f"{tp.topic}[{tp.partition}]", error=str(exc))
                continue
            if high < 0:
                continue
            position = positions.get(key, NO_OFFSET)
            if position < 0:  # nothing consumed in this session: we stand at the committed offset
                position = committed.get(key)
                if position is None:
                    if cheap:
                        continue
                    position = max(low, 0)
            lag[key] = max(0, high - position)
        self.metrics.set_lag(lag)
        return lag

    def _report_progress(self, lag: dict[tuple[str, int], int]) -> None:
        if self.on_progress is not None:
            self._progress_at = time.monotonic()
            self.on_progress(self.summary.consumed, sum(lag.values()) if lag else None)

    def _write_metrics(self) -> None:
        try:
            self.metrics.write(metrics_path(self.settings))
        except OSError as exc:
            self.log("metrics_write_failed", level="warning", error=str(exc))


def run_consumer(settings: Settings, *, until_idle: bool = False, idle_s: float = 1.0,
                 max_records: int | None = None, workers: int | None = None,
                 log: EventLog | None = None,
                 on_progress: Callable[[int, int | None], None] | None = None) -> RunSummary:
    """Run the service in this process; SIGTERM and SIGINT flush, commit and return.

    ``on_progress(consumed, behind)``: see :class:`LandingConsumer` (the CLI's backlog bar)."""
    service = LandingConsumer(settings, until_idle=until_idle, idle_s=idle_s,
                              max_records=max_records, workers=workers, log=log, on_progress=on_progress)
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, lambda s, _f: service.stop(signal.Signals(s).name))
    try:
        return service.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streaming.consumer", description=__doc__.splitlines()[0])
    parser.add_argument("--until-idle", action="store_true", help="exit once caught up")
    parser.add_argument("--idle-seconds", type=float, default=1.0)
    parser.add_argument("--max-records", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None,
                        help="decode worker processes (default 0: decode in this process)")
    args = parser.parse_args(argv)
    settings = load_settings()
    logs.configure(settings.log_format)  # librdkafka's and other libraries' lines look like ours
    try:
        probe(settings)
    except BrokerUnreachable as exc:
        print(f"python -m streaming.consumer: error: {exc}", file=sys.stderr)
        return 1
    summary = run_consumer(settings, until_idle=args.until_idle, idle_s=args.idle_seconds,
                           max_records=args.max_records, workers=args.workers)
    print(summary.line(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
