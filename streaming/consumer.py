"""The landing consumer: ``touchpoints`` + ``customers`` → validated Parquet, exactly once.

One loop, one thread (plus kafka-python's heartbeat thread):

1. poll; decode every message with the contract (kind by topic); valid records go to a batch
   builder, invalid ones to the batch's dead letters (original key, bytes and headers kept);
2. when the batch is full (``batch_max_records``) or old (``batch_max_wait_s``), flush it:
   a. write one intent manifest per (dataset, partition) to ``<landing>/_pending/`` listing the
      files the batch is about to write,
   b. write the Parquet files (temp name → fsync → rename),
   c. send the dead letters and flush the producer (acks=all: durable),
   d. commit the offsets (synchronously),
   e. remove the manifests, publish one "batch landed" message per topic, write metrics.
3. on a rebalance the uncommitted in-memory batch is dropped (nothing of it is written yet; its
   messages are re-consumed from the committed offsets by whoever owns them next);
4. on partition assignment, a manifest left by a crash is resolved before anything is consumed:
   if the committed offset already passed the manifest's batch, the files are final (the crash
   hit between d and e) and only the manifest goes; otherwise the files are deleted and the
   messages are simply consumed again, whatever the new batch boundaries are.

Run it with ``loyalty consume`` or ``python -m streaming.consumer``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TextIO

from loyalty_monitor.settings import Settings, load_settings
from streaming.landing import DATASETS, BatchBuilder, Chunk, LandingZone, decode_chunk, prepare
from streaming.metrics import ConsumerMetrics, serve

UTC = timezone.utc

#: The longest detail text kept in a dead letter's header.
MAX_DETAIL_CHARS = 1000
#: Messages per decode task: small enough to overlap decoding with fetching, big enough that
#: sending them to a worker process costs little.
CHUNK_MESSAGES = 2000


_WARM_UP_TOUCHPOINT = (b'{"schema_version":1,"event_id":"warm-up","event_type":"email","direction":"inbound",'
                       b'"occurred_at":"2026-01-01T00:00:00Z","customer_id":"C0","department":"sales","payload":{}}')


def default_workers() -> int:
    """Decode worker processes by default: none (decode in the consumer process).

    Workers overlap decoding with fetching and pay off on hosts with idle cores; on a busy
    2-core host they only add processes (see docs/streaming.md, "Throughput")."""
    return 0


def _rejected_commit_errors() -> tuple[type[Exception], ...]:
    from kafka import errors

    return (errors.CommitFailedError, errors.RebalanceInProgressError, errors.IllegalGenerationError,
            errors.UnknownMemberIdError, errors.FencedInstanceIdError)


#: Commit errors that mean "not applied" (the group moved on); any other is ambiguous.
REJECTED_COMMIT = _rejected_commit_errors()


def consumer_config(settings: Settings) -> dict[str, Any]:
    """kafka-python KafkaConsumer arguments of the landing consumer (also used by the benchmark's
    raw baseline, so both read with the same settings)."""
    return dict(
        group_id=settings.consumer_group,
        client_id="loyalty-landing",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_interval_ms=settings.max_poll_interval_ms,
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=max(settings.session_timeout_ms // 3, 100),
        max_poll_records=min(settings.batch_max_records, 10_000),
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=max(4 * 1024 * 1024, 2 * settings.max_message_bytes),
        fetch_max_wait_ms=100,
        **settings.kafka_client_config(),
    )


def metrics_path(settings: Settings):
    return settings.data_dir / "run" / "consumer-metrics.prom"


class JsonLog:
    """Structured log lines (one JSON object per line) on a text stream, stderr by default."""

    def __init__(self, stream: TextIO | None = None, component: str = "consumer"):
        self.stream = stream or sys.stderr
        self.component = component

    def __call__(self, event: str, level: str = "info", **fields: Any) -> None:
        line = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "level": level,
                "component": self.component, "event": event, **fields}
        self.stream.write(json.dumps(line, default=str) + "\n")
        self.stream.flush()


@dataclass
class _PendingChunk:
    topic: str
    messages: list[Any]  # the ConsumerRecords, for dead letters (original key, bytes, headers)
    result: Any          # Chunk, or a Future of one


@dataclass
class DeadLetter:
    message: Any  # kafka ConsumerRecord
    code: str
    detail: str


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


def dead_letter_headers(message: Any, code: str, detail: str, failed_at: str) -> list[tuple[str, bytes]]:
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
                 max_records: int | None = None, log: JsonLog | None = None,
                 workers: int | None = None, consumer_overrides: dict[str, Any] | None = None):
        self.settings = settings
        self.until_idle = until_idle
        self.idle_s = idle_s
        self.max_records = max_records
        self.log = log or JsonLog()
        self.kinds = {settings.topic_touchpoints: "touchpoint", settings.topic_customers: "customer"}
        self.zone = LandingZone.from_settings(settings)
        self.metrics = ConsumerMetrics()
        self.summary = RunSummary()
        self._stop_reason = ""
        self._consumer_overrides = consumer_overrides or {}
        self.workers = default_workers() if workers is None else workers
        self._pool = None
        self._revoked = False          # set by the rebalance listener, handled after poll()
        self._to_rewind: dict[Any, int | None] = {}  # partition → fallback offset to seek back to
        self._first_message_at: float | None = None
        self._last_activity = self._unassigned_since = time.monotonic()
        self._to_recover: set[Any] = set()
        self._reset_batch()
        self.consumer = None
        self.producer = None

    # --- lifecycle -------------------------------------------------------------------------
    def stop(self, reason: str = "requested") -> None:
        """Ask the loop to flush, commit and return (safe to call from a signal handler)."""
        self._stop_reason = self._stop_reason or reason

    def _connect(self) -> None:
        from kafka import KafkaConsumer, KafkaProducer

        client = self.settings.kafka_client_config()
        config = consumer_config(self.settings)
        config.update(self._consumer_overrides)
        self.consumer = KafkaConsumer(**config)
        self.producer = KafkaProducer(
            client_id="loyalty-landing-dlq", acks="all", linger_ms=5, retries=5,
            # a dead letter carries the original bytes, which the broker already accepted once
            max_request_size=max(64 * 1024 * 1024, 4 * self.settings.max_message_bytes),
            **client)
        self.consumer.subscribe(list(self.kinds), listener=_RebalanceListener(self))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self.consumer is not None:
            self.consumer.close(autocommit=False)
        if self.producer is not None:
            self.producer.close()

    def _warm_up(self) -> None:
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
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: the Kafka clients run threads, and forking a threaded process is unsafe.
        self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
        for kind in ("touchpoint", "customer") * self.workers:
            self._pool.submit(decode_chunk, kind, "warm-up", sample, 1024, datetime.now(UTC)).result()

    def run(self) -> RunSummary:
        self._warm_up()
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
                if self._batch_started is not None:
                    wait = max(0.0, self._batch_started + self.settings.batch_max_wait_s - now)
                # Never overfill a batch: batch_max_records bounds memory and flush time.
                limit = min(self.consumer.config["max_poll_records"],
                            self.settings.batch_max_records - self._batch_count)
                if self.max_records is not None:
                    limit = min(limit, self.max_records - self.summary.consumed)
                polled = self.consumer.poll(timeout_ms=int(min(wait, 0.2) * 1000), max_records=max(limit, 1))
                rewound = self._after_rebalance()
                if rewound:  # fetched from before the rewind: they come again, in order
                    polled = {tp: messages for tp, messages in polled.items() if tp not in rewound}
                self._handle_polled(polled)
                now = time.monotonic()
                if polled:
                    self._last_activity = now
                if self._batch_count >= self.settings.batch_max_records or (
                        self._batch_started is not None
                        and now - self._batch_started >= self.settings.batch_max_wait_s):
                    self.flush("full" if self._batch_count >= self.settings.batch_max_records else "max_wait")
                    self._update_lag(cheap=True)
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
        self.log("stopped", reason=self.summary.stopped_by, consumed=self.summary.consumed,
                 landed=self.summary.landed, dead_lettered=self.summary.dead_lettered,
                 batches=self.summary.batches)
        return self.summary

    # --- per message -----------------------------------------------------------------------
    def _reset_batch(self) -> None:
        self._builders = {topic: BatchBuilder(DATASETS[kind], topic) for topic, kind in self.kinds.items()}
        self._dead: list[DeadLetter] = []
        self._chunks: list[_PendingChunk] = []
        self._batch_started: float | None = None
        self._batch_count = 0

    def _handle_polled(self, polled: dict[Any, list[Any]]) -> None:
        """Note offsets and start decoding (in a worker process when there is a pool)."""
        if not polled:
            return
        if self._batch_started is None:
            self._batch_started = time.monotonic()
            if self._first_message_at is None:
                self._first_message_at = self._batch_started
        by_topic: dict[str, list[Any]] = {}
        for tp, messages in polled.items():
            builder = self._builders[tp.topic]
            builder.note_offset(tp.partition, messages[0].offset)
            builder.note_offset(tp.partition, messages[-1].offset)
            by_topic.setdefault(tp.topic, []).extend(messages)
            self._batch_count += len(messages)
            self.summary.consumed += len(messages)
            self.metrics.consumed[tp.topic] += len(messages)
        landed_at = datetime.now(UTC)
        for topic, messages in by_topic.items():
            for start in range(0, len(messages), CHUNK_MESSAGES):
                part = messages[start:start + CHUNK_MESSAGES]
                raw = [(m.partition, m.offset, m.timestamp, m.key, m.value) for m in part]
                args = (self.kinds[topic], topic, raw, self.settings.max_message_bytes, landed_at)
                result = self._pool.submit(decode_chunk, *args) if self._pool else decode_chunk(*args)
                self._chunks.append(_PendingChunk(topic, part, result))

    def _collect_chunks(self) -> None:
        """Wait for the batch's decoded chunks; valid rows to the builders, rejects to dead letters."""
        for pending in self._chunks:
            chunk = pending.result if isinstance(pending.result, Chunk) else pending.result.result()
            self._builders[pending.topic].add_table(chunk.table)
            for index, code, detail in chunk.rejects:
                self._dead.append(DeadLetter(pending.messages[index], code, detail))
        self._chunks = []

    # --- batches ---------------------------------------------------------------------------
    def flush(self, reason: str) -> bool:
        """Land, dead-letter and commit the current batch; False if the commit was refused."""
        from kafka.structs import OffsetAndMetadata, TopicPartition

        if not any(b.offsets for b in self._builders.values()):
            return True
        started = self._batch_started or time.monotonic()
        stages = {"collect": time.monotonic() - started}
        mark = time.monotonic()

        def stage(name: str) -> None:
            nonlocal mark
            now = time.monotonic()
            stages[name] = round(now - mark, 3)
            mark = now

        self._collect_chunks()
        stage("decode_wait")
        prepared = {topic: prepare(builder) for topic, builder in self._builders.items() if builder.offsets}

        # The token marks this batch's manifests and files (Parquet key-value metadata), so that
        # after a refused commit we remove only files nobody else has rewritten since.
        token = uuid.uuid4().hex
        pending: list[tuple[str, int]] = []
        for topic, batch in prepared.items():
            for partition, paths in batch.by_partition.items():
                first, last = self._builders[topic].offsets[partition]
                self.zone.write_pending(batch.dataset, partition, {
                    "topic": topic, "partition": partition, "first": first, "last": last,
                    "files": paths, "token": token, "written_at": datetime.now(UTC).isoformat()})
                pending.append((batch.dataset, partition))
        stage("prepare")
        files: dict[str, list[str]] = {topic: self.zone.write_prepared(batch, token=token)
                                       for topic, batch in prepared.items()}
        stage("write")

        failed_at = datetime.now(UTC).isoformat()
        # Kafka clients refuse a record without key and value; such a message (possible from other
        # clients) is dead-lettered with an empty key instead.
        futures = [self.producer.send(self.settings.topic_dead_letter,
                                      key=d.message.key if d.message.key is not None or d.message.value is not None else b"",
                                      value=d.message.value,
                                      headers=dead_letter_headers(d.message, d.code, d.detail, failed_at))
                   for d in self._dead]
        self.producer.flush()
        for future in futures:
            if future.failed():
                raise RuntimeError(f"dead-letter topic {self.settings.topic_dead_letter} refused a "
                                   f"message: {future.exception}")

        offsets = {TopicPartition(topic, partition): OffsetAndMetadata(last + 1, "", -1)
                   for topic, builder in self._builders.items()
                   for partition, (first, last) in builder.offsets.items()}
        stage("dead_letters")
        try:
            self.consumer.commit(offsets)
        except REJECTED_COMMIT as exc:
            # The group moved on without us (evicted after max_poll_interval_ms, or rebalancing):
            # the commit was definitely not applied and another member re-consumes these
            # messages, so our files are duplicates-to-be. Remove the ones that are still ours.
            # (Any other commit error is ambiguous, the commit may have been applied: it stops the
            # process, and the next start resolves the manifests against the committed offsets.)
            self.metrics.commit_failures += 1
            self._last_activity = time.monotonic()
            removed = self._discard_own_files(token, pending, files)
            # re-read this batch's messages if the partitions stay (or come back) with us
            self._to_rewind.update(self._batch_firsts())
            self.log("commit_failed", level="warning", reason=reason, error=str(exc), files_removed=removed,
                     partitions={f"{tp.topic}[{tp.partition}]": om.offset for tp, om in offsets.items()})
            self._reset_batch()
            return False
        stage("commit")
        for dataset, partition in pending:
            self.zone.clear_pending(dataset, partition)

        latency = time.monotonic() - started
        dead_by_topic: dict[str, int] = {}
        for d in self._dead:
            dead_by_topic[d.message.topic] = dead_by_topic.get(d.message.topic, 0) + 1
            self.metrics.dead_lettered[(d.message.topic, d.code)] += 1
        landed_at = datetime.now(UTC).isoformat()
        for topic, batch in prepared.items():
            builder = self._builders[topic]
            partitions = {str(p): span for p, span in sorted(builder.offsets.items())}
            notice = {
                "batch_id": hashlib.sha1(json.dumps([topic, partitions]).encode()).hexdigest()[:20],
                "topic": topic, "partitions": partitions, "event_dates": batch.event_dates,
                "records": batch.records, "dead_letters": dead_by_topic.get(topic, 0),
                "files": files[topic], "landed_at": landed_at,
            }
            self.producer.send(self.settings.topic_batches, key=topic.encode(),
                               value=json.dumps(notice).encode())
            self.metrics.landed[topic] += batch.records
            self.metrics.files_written += len(files[topic])
            self.summary.landed += batch.records
            self.summary.files += len(files[topic])
        self.producer.flush()
        stage("notify")
        self.summary.dead_lettered += len(self._dead)
        self.summary.batches += 1
        self.summary.busy_seconds = time.monotonic() - (self._first_message_at or started)
        self.metrics.observe_batch(latency, time.time())
        self.log("batch_committed", reason=reason, messages=self._batch_count,
                 landed=sum(b.records for b in prepared.values()), dead_letters=len(self._dead),
                 files=sum(len(f) for f in files.values()), seconds=round(latency, 3),
                 stages={k: round(v, 3) for k, v in stages.items()},
                 offsets={f"{tp.topic}[{tp.partition}]": om.offset for tp, om in offsets.items()})
        self._reset_batch()
        self._write_metrics()
        return True

    def _batch_firsts(self) -> dict[Any, int]:
        """The current batch's first offset per partition."""
        from kafka.structs import TopicPartition

        return {TopicPartition(topic, partition): first
                for topic, builder in self._builders.items()
                for partition, (first, _last) in builder.offsets.items()}

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

    def _rewind(self, partitions: dict[Any, int | None]) -> set[Any]:
        """Seek owned partitions back to their committed offset (else the given fallback).

        kafka-python keeps its fetch position for a partition that stays assigned across a
        rebalance, so after dropping an uncommitted batch the consumer must go back explicitly,
        or the dropped messages would be skipped."""
        owned = self.consumer.assignment()
        rewound = set()
        for tp, fallback in partitions.items():
            if tp not in owned:
                continue
            committed = self.consumer.committed(tp)
            target = committed if committed is not None else fallback
            if target is not None:
                self.consumer.seek(tp, target)
                rewound.add(tp)
        return rewound

    def _after_rebalance(self) -> set[Any]:
        """Apply what the rebalance listener noted during the last poll (see _RebalanceListener).

        Returns the partitions whose position was moved back (their polled records are stale)."""
        rewound: set[Any] = set()
        if self._revoked or self._to_recover:
            # A rebalance is activity: --until-idle must not take the quiet of a (re)join for
            # being caught up.
            self._last_activity = time.monotonic()
        if self._revoked:
            # Our uncommitted batch may belong to another member now: drop it. Nothing of it is
            # written yet (files are only written in flush), and whoever owns its partitions
            # re-consumes it from the committed offsets.
            self._revoked = False
            if self._batch_count:
                self.log("batch_dropped_on_rebalance", messages=self._batch_count)
            # where the dropped messages start, for partitions that have no committed offset yet
            self._to_rewind.update(self._batch_firsts())
            self._reset_batch()
        if self._to_recover:
            self._unassigned_since = None
            owned = self.consumer.assignment()
            partitions = sorted((tp for tp in self._to_recover if tp in owned), key=lambda tp: (tp.topic, tp.partition))
            self._to_recover.clear()
            self.recover(partitions)
            # every (re)assigned partition starts at its committed offset, like a fresh member
            for tp in partitions:
                self._to_rewind.setdefault(tp, None)
        if self._to_rewind:
            rewound = self._rewind(self._to_rewind)
            self._to_rewind = {}
        return rewound

    def recover(self, assigned: list[Any]) -> None:
        """Resolve crash leftovers (pending manifests) of newly assigned partitions."""
        for tp in assigned:
            dataset = DATASETS[self.kinds[tp.topic]]
            manifest = self.zone.read_pending(dataset, tp.partition)
            if manifest is None:
                continue
            if manifest.get("topic") != tp.topic:
                self.log("pending_manifest_other_topic", level="warning", manifest=manifest, topic=tp.topic)
                continue
            committed = self.consumer.committed(tp)
            if committed is not None and committed > manifest["last"]:
                self.log("pending_batch_was_committed", topic=tp.topic, partition=tp.partition,
                         last=manifest["last"], committed=committed)
            else:
                removed = self.zone.delete(manifest["files"]) + self.zone.delete_temp_files(manifest["files"])
                self.log("pending_batch_rolled_back", level="warning", topic=tp.topic,
                         partition=tp.partition, first=manifest["first"], last=manifest["last"],
                         committed=committed, files_removed=removed)
            self.zone.clear_pending(dataset, tp.partition)

    # --- lag and metrics -------------------------------------------------------------------
    def _update_lag(self, cheap: bool) -> dict[tuple[str, int], int]:
        """Messages behind the partition ends, per assigned partition; published as a gauge.

        ``cheap`` uses the high-water marks of the last fetch responses (no request)."""
        assignment = list(self.consumer.assignment())
        if not assignment:
            return {}
        # The high-water marks of the last fetch responses cost no request; the listed end offsets
        # are exact on Apache Kafka, but the embedded Tansu broker can report them short (see
        # docs/streaming.md), so the precise check takes the larger of both.
        ends: dict[Any, int | None] = {tp: self.consumer.highwater(tp) for tp in assignment}
        if not cheap:
            for tp, end in self.consumer.end_offsets(assignment).items():
                ends[tp] = max(end, ends.get(tp) or 0)
        lag = {}
        for tp in assignment:
            end = ends.get(tp)
            if end is None:
                continue
            position = self.consumer.position(tp)
            lag[(tp.topic, tp.partition)] = max(0, end - (position or 0))
        self.metrics.set_lag(lag)
        return lag

    def _write_metrics(self) -> None:
        try:
            self.metrics.write(metrics_path(self.settings))
        except OSError as exc:
            self.log("metrics_write_failed", level="warning", error=str(exc))


def _rebalance_listener_base():
    from kafka import ConsumerRebalanceListener
    return ConsumerRebalanceListener


class _RebalanceListener(_rebalance_listener_base()):
    """Notes rebalances for the poll loop.

    kafka-python 3 calls listeners on its IO thread, where blocking client calls (commit,
    committed offsets) are refused, so the work happens in the loop right after ``poll()``
    returns and before any record of the new assignment is handled.
    """

    def __init__(self, service: LandingConsumer):
        self.service = service

    def on_partitions_revoked(self, revoked):
        if revoked:
            self.service.log("partitions_revoked", partitions=sorted(f"{tp.topic}[{tp.partition}]" for tp in revoked))
            self.service._revoked = True

    def on_partitions_assigned(self, assigned):
        self.service.log("partitions_assigned", partitions=sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))
        self.service._to_recover.update(assigned)


def run_consumer(settings: Settings, *, until_idle: bool = False, idle_s: float = 1.0,
                 max_records: int | None = None, workers: int | None = None,
                 log: JsonLog | None = None) -> RunSummary:
    """Run the service in this process; SIGTERM and SIGINT flush, commit and return."""
    service = LandingConsumer(settings, until_idle=until_idle, idle_s=idle_s,
                              max_records=max_records, workers=workers, log=log)
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
    summary = run_consumer(load_settings(), until_idle=args.until_idle, idle_s=args.idle_seconds,
                           max_records=args.max_records, workers=args.workers)
    print(summary.line(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
