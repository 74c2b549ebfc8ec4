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

The steps are units of their own: step 1 is ``streaming.consumer_batch.Batcher``, steps 2a-e and 4
are ``streaming.consumer_flush`` (``BatchLander``, ``BatchFiles``); this module runs the loop,
the rebalance callbacks and the lag.

Run it with ``loyalty consume`` or ``python -m streaming.consumer``.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import time
from typing import Any, Callable

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from loyalty_core import logs
from loyalty_core.landing_zone import LandingZone
from loyalty_core.logs import EventLog
from loyalty_core.settings import Settings, load_settings
from streaming.consumer_batch import Batcher
from streaming.consumer_flush import BatchFiles, BatchLander, RunSummary
from streaming.metrics import (
    REFRESH_S,
    ConsumerMetrics,
    dead_local_textfiles,
    instance_name,
    serve,
    textfile_path,
    textfiles,
)
from streaming.topics import BrokerUnreachable, input_topics, probe, require_input_topics

#: librdkafka's "no offset" (OFFSET_INVALID).
NO_OFFSET = -1001


def default_workers() -> int:
    """Decode worker processes by default: none (decode in the consumer process).

    Workers overlap decoding with writing and pay off on hosts with idle cores; on a busy
    2-core host they only add processes (see docs/streaming.md, "Throughput")."""
    return 0


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


def metrics_path(settings: Settings, instance: str):
    """The metrics textfile of consumer ``instance`` (each consumer sharing the data directory has its own)."""
    return textfile_path(settings.data_dir / "run", instance)


def metrics_files(settings: Settings) -> list[Any]:
    """The metrics textfiles of every consumer instance that writes to this data directory."""
    return textfiles(settings.data_dir / "run")


#: The single, unlabelled file of earlier versions: node_exporter rejects it next to the labelled
#: ones (same metrics, other label names), so a consumer removes it when it starts.
LEGACY_METRICS_FILE = "consumer-metrics.prom"


#: The consumer's structured event log (loyalty_core/logs.py: console on a terminal, JSON lines
#: otherwise or with ``log_format = "json"``); the name is the one callers and tests know.
JsonLog = EventLog


class _ClientLogHandler(logging.Handler):
    """librdkafka's own log lines (connection failures and the like) as structured lines, each kind
    (the line with its numbers left out) at most once per ``REPEAT_S``, with how many were left out:
    a broker that is down made the clients log about twenty lines a second, and none said what to do."""

    REPEAT_S = 30.0
    _NUMBERS = re.compile(r"\d+")

    def __init__(self, log: EventLog, bootstrap: str = ""):
        super().__init__()
        self.json_log = log
        self.bootstrap = bootstrap
        self._last: dict[str, tuple[float, int]] = {}  # kind -> (when said, repeats left out since)

    def emit(self, record: logging.LogRecord) -> None:
        level = "error" if record.levelno >= logging.ERROR else (
            "warning" if record.levelno >= logging.WARNING else "info")
        message = record.getMessage()
        kind = self._NUMBERS.sub("#", message)
        now = time.monotonic()
        said, left_out = self._last.get(kind, (float("-inf"), 0))
        if now - said < self.REPEAT_S:
            self._last[kind] = (said, left_out + 1)
            return
        self._last[kind] = (now, 0)
        extra: dict[str, Any] = {"repeated": left_out} if left_out else {}
        if "Connection refused" in message or "Connect to" in message:
            extra["fix"] = (f"no broker answers at {self.bootstrap or 'the bootstrap servers'}: start it (`loyalty "
                            "broker start` for the embedded one) or check LOYALTY_BOOTSTRAP_SERVERS; the consumer "
                            "retries by itself and lands nothing meanwhile")
        self.json_log("kafka_client", level=level, message=message, **extra)


def client_logger(log: EventLog, bootstrap: str = "") -> logging.Logger:
    logger = logging.getLogger(f"loyalty.kafka.{id(log)}")
    logger.propagate = False
    logger.handlers = [_ClientLogHandler(log, bootstrap)]
    logger.setLevel(logging.INFO)
    return logger


def _watermarks(client: Consumer, tp: TopicPartition, cheap: bool, log: EventLog) -> tuple[int, int] | None:
    """A partition's (low, high) offsets; ``cheap``: those of the last fetch response (no request,
    None when unknown)."""
    try:
        low, high = client.get_watermark_offsets(tp, cached=True)
        if not cheap:
            # The listed end offsets are exact on Apache Kafka, but the embedded Tansu
            # broker can report them short (docs/streaming.md): take the larger of both.
            low2, high2 = client.get_watermark_offsets(tp, timeout=10, cached=False)
            low, high = (low2 if low2 >= 0 else low), max(high, high2)
    except Exception as exc:  # noqa: BLE001 - a metric must not stop the consumer
        if not cheap:
            raise
        log("lag_unknown", level="warning", partition=f"{tp.topic}[{tp.partition}]", error=str(exc))
        return None
    return low, high


def partition_lag(client: Consumer, assignment: list[TopicPartition],
                  committed_by: dict[tuple[str, int], int | None], cheap: bool,
                  log: EventLog) -> dict[tuple[str, int], int]:
    """Messages behind the partition ends, per partition of ``assignment``, from the position, or
    where nothing was consumed yet, the committed offset (``committed_by``; None: never committed,
    the start of the partition). ``cheap``: from the high-water marks of the last fetch responses
    (no request), leaving out partitions whose end or start is not known yet; else from the
    broker's end offsets (a request each)."""
    positions = {(tp.topic, tp.partition): tp.offset for tp in client.position(assignment)}
    lag = {}
    for tp in assignment:
        key = (tp.topic, tp.partition)
        marks = _watermarks(client, tp, cheap, log)
        if marks is None or marks[1] < 0:
            continue
        low, high = marks
        position = positions.get(key, NO_OFFSET)
        if position < 0:  # nothing consumed in this session: we stand at the committed offset
            position = committed_by.get(key)
            if position is None:
                if cheap and low < 0:
                    continue
                position = max(low, 0)
        lag[key] = max(0, high - position)
    return lag


class LandingConsumer:
    """The consumer service. ``run()`` until SIGTERM/SIGINT, ``max_records`` or (``until_idle``) caught up."""

    def __init__(self, settings: Settings, *, until_idle: bool = False, idle_s: float = 1.0,
                 max_records: int | None = None, log: EventLog | None = None,
                 workers: int | None = None, consumer_overrides: dict[str, Any] | None = None,
                 on_progress: Callable[[int, int | None], None] | None = None):
        # Refused before the member joins the group: --max-records 0 or -1 stopped it in the middle of
        # its first join, and the embedded broker then handed the group's partitions to nobody.
        if max_records is not None and max_records < 1:
            raise ValueError(f"--max-records must be at least 1, got {max_records}")
        if workers is not None and workers < 0:
            raise ValueError(f"--workers must be 0 or more, got {workers}")
        if idle_s < 0:
            raise ValueError(f"--idle-seconds must be 0 or more, got {idle_s:g}")
        self.settings = settings
        #: ``on_progress(messages consumed, messages still behind or None)``, about once a second.
        self.on_progress = on_progress
        self._progress_at = 0.0
        self.until_idle = until_idle
        self.idle_s = idle_s
        self.max_records = max_records
        self.log = log or EventLog(fmt=settings.log_format)
        self.kinds = input_topics(settings)
        self.zone = LandingZone.from_settings(settings)
        #: The ``consumer`` label of the metrics and the name of this instance's textfile.
        self.instance = instance_name()
        self.metrics = ConsumerMetrics(self.instance)
        # Committed offsets of the assigned partitions when they were assigned: the lag of a
        # partition nothing was consumed from yet (a quiet one) is measured from there.
        self._assigned_committed: dict[tuple[str, int], int | None] = {}
        self._lag_due = False  # (re)assigned: publish the lag of every assigned partition
        self._metrics_written = 0.0
        self.summary = RunSummary()
        self._stop_reason = ""
        self._consumer_overrides = consumer_overrides or {}
        self.workers = default_workers() if workers is None else workers
        self._batch = Batcher(settings, self.kinds, self.log, self.workers)
        self._files = BatchFiles(self.zone, self.log)
        self._lander: BatchLander | None = None
        self._last_activity = self._unassigned_since = time.monotonic()
        self.consumer = None
        self.producer = None

    # --- lifecycle -------------------------------------------------------------------------
    def stop(self, reason: str = "requested") -> None:
        """Ask the loop to flush, commit and return (safe to call from a signal handler)."""
        self._stop_reason = self._stop_reason or reason

    def _connect(self) -> None:
        logger = client_logger(self.log, self.settings.bootstrap)
        config = {**consumer_config(self.settings), **self._consumer_overrides, "logger": logger}
        self.consumer = Consumer(config)
        self.producer = Producer({
            **self.settings.confluent_client_config(), "client.id": "loyalty-landing-dlq", "acks": "all",
            "linger.ms": 5, "enable.idempotence": False, "logger": logger,
            # a dead letter carries the original bytes, which the broker already accepted once
            "message.max.bytes": max(64 * 1024 * 1024, 4 * self.settings.max_message_bytes)})
        self._lander = BatchLander(self.settings, self._files, self.consumer, self.producer, self.metrics,
                                   self.summary, self.log)
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
            try:
                server = serve(self.metrics, self.settings.metrics_port, self.settings.metrics_host)
            except OSError as exc:  # the port is taken (a second consumer on this host?)
                self.close()
                raise RuntimeError(
                    f"cannot serve the metrics on {self.settings.metrics_host}:{self.settings.metrics_port} (LOYALTY_METRICS_PORT): "
                    f"{exc.strerror or exc}; give each consumer on this host its own port, or 0 for no endpoint "
                    f"(the metrics file is written either way)") from None
            self.log("metrics_http", host=self.settings.metrics_host, port=self.settings.metrics_port)
        self._remove_stale_metrics_files()
        self.log("started", group=self.settings.consumer_group, topics=list(self.kinds), workers=self.workers,
                 landing=self.settings.landing, bootstrap=self.settings.bootstrap,
                 until_idle=self.until_idle, max_records=self.max_records,
                 consumer=self.instance, metrics_file=str(metrics_path(self.settings, self.instance)))
        self._last_activity = self._unassigned_since = time.monotonic()
        # How long --until-idle waits for the group to hand this member partitions (at the start,
        # or again after an eviction) before it gives up.
        join_patience = 3 * self.settings.max_poll_interval_ms / 1000 + 10
        try:
            while not self._stop_reason:
                self._poll_once(join_patience)
            self.flush("shutdown")
        finally:
            self.summary.stopped_by = self._stop_reason or "error"
            # a consumer that is gone leaves no file behind (its lag would look current for ever)
            self._remove_metrics_file()
            self.close()
            if server is not None:
                server.shutdown()
                server.server_close()
        self.log("stopped", reason=self.summary.stopped_by, consumed=self.summary.consumed,
                 landed=self.summary.landed, dead_lettered=self.summary.dead_lettered,
                 handed_back=self.summary.handed_back,
                 batches=self.summary.batches)
        return self.summary

    # --- the loop --------------------------------------------------------------------------
    def _poll_once(self, join_patience: float) -> None:
        """Consume into the batch, flush it when full or old, and stop when there is reason to."""
        messages = self._consume()
        for part in self._batch.parts(messages):
            self._handle_messages(part)
            if self._batch.bytes >= self.settings.batch_max_bytes:
                self.flush("full")
        now = time.monotonic()
        if messages:
            self._last_activity = now
        full = (self._batch.count >= self._lander.record_limit
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
            self._when_idle(now, join_patience)
        if self._lag_due:
            # (re)assigned in this consume(): every assigned partition gets a lag sample now,
            # also the quiet ones no message will come from
            self._lag_due = False
            try:
                self._update_lag(cheap=False)
            except KafkaException as exc:
                self.log("lag_unknown", level="warning", error=str(exc))
            self._write_metrics()
        elif time.monotonic() - self._metrics_written >= REFRESH_S:
            self._update_lag(cheap=True)  # idle: the file still shows this consumer is alive
            self._write_metrics()

    def _consume(self) -> list[Any]:
        """The next fetched messages: no more than the batch has room for, waiting no longer than
        until the batch is due."""
        now = time.monotonic()
        wait = self.settings.batch_max_wait_s
        if self._batch.started is not None:
            wait = max(0.0, self._batch.started + self.settings.batch_max_wait_s - now)
        # Never overfill a batch: batch_max_records bounds memory and flush time.
        limit = self._lander.record_limit - self._batch.count
        if self.max_records is not None:
            limit = min(limit, self.max_records - self.summary.consumed)
        return self.consumer.consume(num_messages=max(limit, 1), timeout=min(wait, 0.2))

    def _when_idle(self, now: float, join_patience: float) -> None:
        """``until_idle`` and nothing came for ``idle_s``: flush; stop if caught up, or if the group
        has handed us no partitions for ``join_patience`` seconds."""
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
        self.log("kafka_error", level="error" if error.fatal() else "warning", code=error.name(),
                 error=error.str(), retriable=error.retriable())
        if error.fatal():
            raise KafkaException(error)

    def flush(self, reason: str) -> bool:
        """Land, dead-letter and commit the current batch; False if the commit was refused."""
        if self._batch.empty():
            return True
        committed = self._lander.land(self._batch, reason)
        if not committed:
            self._last_activity = time.monotonic()  # a refused commit is activity, not quiet
            self.summary.handed_back += self._batch.count
        self._batch.reset()
        if committed:
            # the file shows the lag after THIS batch: written with the previous one's, a caught-up
            # consumer's file said it was a batch behind until the next batch, hours on a quiet feed
            self._update_lag(cheap=True)
            self._write_metrics()
        return committed

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
            self.summary.handed_back += self._batch.count
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
        try:
            self._assigned_committed = self._committed(partitions)
        except KafkaException as exc:  # a metric must not stop the consumer: the lag pass asks again
            self._assigned_committed = {}
            self.log("lag_unknown", level="warning", error=str(exc))
        self._lag_due = True

    def recover(self, assigned: list[Any]) -> None:
        """Resolve crash leftovers (pending manifests) of newly assigned partitions."""
        self._files.recover(assigned, self.kinds, self._committed)

    def _committed(self, partitions: list[Any]) -> dict[tuple[str, int], int | None]:
        if not partitions:
            return {}
        result = self.consumer.committed(partitions, timeout=30)
        return {(tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None) for tp in result}

    # --- lag and metrics -------------------------------------------------------------------
    def _update_lag(self, cheap: bool) -> dict[tuple[str, int], int]:
        """Messages behind the partition ends, per assigned partition; published as a gauge.

        ``cheap`` uses the high-water marks of the last fetch responses (no request)."""
        assignment = list(self.consumer.assignment())
        if not assignment:
            self.metrics.set_lag({})  # nothing assigned any more: no partition's lag is ours
            return {}
        committed = self._assigned_committed if cheap else self._committed(assignment)
        lag = partition_lag(self.consumer, assignment, committed, cheap, self.log)
        if cheap:
            # a partition whose end the last fetch responses do not tell keeps its last sample
            # (taken from the broker on assignment) instead of vanishing from the gauge
            assigned = {(tp.topic, tp.partition) for tp in assignment}
            lag = {**{k: v for k, v in self.metrics.lag_samples().items() if k in assigned}, **lag}
        self.metrics.set_lag(lag)
        return lag

    def _report_progress(self, lag: dict[tuple[str, int], int]) -> None:
        if self.on_progress is not None:
            self._progress_at = time.monotonic()
            self.on_progress(self.summary.consumed, sum(lag.values()) if lag else None)

    def _write_metrics(self) -> None:
        self._metrics_written = time.monotonic()
        try:
            self.metrics.write(metrics_path(self.settings, self.instance), time.time())
        except OSError as exc:
            self.log("metrics_write_failed", level="warning", error=str(exc))

    def _remove_metrics_file(self) -> None:
        try:
            metrics_path(self.settings, self.instance).unlink(missing_ok=True)
        except OSError as exc:
            self.log("metrics_remove_failed", level="warning", error=str(exc))

    def _remove_stale_metrics_files(self) -> None:
        """Remove the files of this host's consumers that died (SIGKILL, OOM) and the old unlabelled one."""
        run_dir = self.settings.data_dir / "run"
        for stale in [*dead_local_textfiles(run_dir), run_dir / LEGACY_METRICS_FILE]:
            try:
                if stale.exists():
                    stale.unlink()
                    self.log("stale_metrics_file_removed", path=str(stale))
            except OSError as exc:
                self.log("metrics_remove_failed", level="warning", error=str(exc))


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
        require_input_topics(settings, probe(settings))
    except (BrokerUnreachable, ValueError) as exc:
        print(f"python -m streaming.consumer: error: {exc}", file=sys.stderr)
        return 1
    summary = run_consumer(settings, until_idle=args.until_idle, idle_s=args.idle_seconds,
                           max_records=args.max_records, workers=args.workers)
    print(summary.line(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
