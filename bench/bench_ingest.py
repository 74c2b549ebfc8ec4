"""Ingest throughput of the landing consumer against raw kafka-python consumption, and its memory.

    python -m bench.bench_ingest [--events N] [--rss-events 100000,1000000] [--skip-rss]

One embedded Tansu broker; a backlog of N touchpoints is produced once, then read by three
consumer groups in interleaved rounds: (a) raw kafka-python: poll and count (the issue's baseline);
(b) raw confluent-kafka, the client the landing consumer uses, with the consumer's own settings
(``streaming.consumer.consumer_config``): consume and count; (c) ours: decode + validate + land
Parquet + commit. All are timed from the first message to the last one (c: to the last commit),
so the group join is excluded. Target: ratio (c)/(a) >= 0.8. The ratio (c)/(b) says how much of
the client's speed the landing work leaves. Then the consumer runs as a subprocess on fresh 100k
and 1M backlogs and its peak RSS (VmHWM) is printed: bounded batches mean it must not grow with
the backlog.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import positive_int, run_main
from loyalty_core.settings import Settings, load_settings
from loyalty_monitor.broker import EmbeddedBroker
from streaming import samples
from streaming.consumer import JsonLog, LandingConsumer, consumer_config, default_workers
from streaming.topics import ensure_topics

ROOT = Path(__file__).resolve().parent.parent


def make_settings(bootstrap: str, data_dir: Path, tag: str) -> Settings:
    return load_settings(data_dir=str(data_dir), bootstrap_servers=bootstrap,
                         topic_touchpoints=f"bench-touchpoints-{tag}", topic_customers=f"bench-customers-{tag}",
                         topic_dead_letter=f"bench-dead-letter-{tag}", topic_batches=f"bench-batches-{tag}",
                         consumer_group=f"bench-landing-{tag}")


def produce_backlog(settings: Settings, events: int) -> float:
    """Produce ``events`` touchpoints (over 3 event dates, like a live stream) with confluent-kafka."""
    from confluent_kafka import Producer

    started = time.perf_counter()
    producer = Producer({**settings.confluent_client_config(), "linger.ms": 20, "batch.size": 1_000_000,
                         "queue.buffering.max.messages": 500_000, "acks": "all"})
    for i, (key, value) in enumerate(samples.touchpoint_messages(events, customers=5000, days=3)):
        while True:
            try:
                producer.produce(settings.topic_touchpoints, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(300) != 0:
        raise RuntimeError("backlog not fully produced")
    return time.perf_counter() - started


def kafka_python_config(settings: Settings) -> dict:
    """The landing consumer's settings in kafka-python's spelling (the baseline reads alike)."""
    return dict(group_id=settings.consumer_group + "-kafka-python", client_id="bench-raw",
                enable_auto_commit=False, auto_offset_reset="earliest",
                max_poll_interval_ms=settings.max_poll_interval_ms, session_timeout_ms=settings.session_timeout_ms,
                max_poll_records=10_000, fetch_max_bytes=64 * 1024 * 1024,
                max_partition_fetch_bytes=max(4 * 1024 * 1024, 2 * settings.max_message_bytes),
                fetch_max_wait_ms=100, **settings.kafka_client_config())


def raw_consume(settings: Settings, events: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) for plain kafka-python to read ``events`` messages."""
    from kafka import KafkaConsumer

    config = kafka_python_config(settings)
    consumer = KafkaConsumer(**config)
    consumer.subscribe([settings.topic_touchpoints])
    count, first, cpu = 0, None, time.process_time()
    try:
        while count < events:
            for messages in consumer.poll(timeout_ms=200, max_records=config["max_poll_records"]).values():
                if first is None:
                    first = time.perf_counter()
                count += len(messages)
        return time.perf_counter() - first, time.process_time() - cpu
    finally:
        consumer.close(autocommit=False)


def raw_confluent_consume(settings: Settings, events: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) for plain confluent-kafka, with the landing consumer's settings."""
    from confluent_kafka import Consumer

    consumer = Consumer({**consumer_config(settings), "group.id": settings.consumer_group + "-confluent"})
    consumer.subscribe([settings.topic_touchpoints])
    count, first, cpu = 0, None, time.process_time()
    try:
        while count < events:
            messages = consumer.consume(num_messages=10_000, timeout=0.2)
            if messages and first is None:
                first = time.perf_counter()
            count += sum(1 for m in messages if m.error() is None)
        return time.perf_counter() - first, time.process_time() - cpu
    finally:
        consumer.close()


def our_consume(settings: Settings, events: int, workers: int | None) -> tuple[float, float]:
    """(busy wall seconds, CPU seconds of this process) for the landing consumer."""
    cpu = time.process_time()
    summary = LandingConsumer(settings, until_idle=True, idle_s=1.0, workers=workers,
                              log=JsonLog(io.StringIO())).run()
    if summary.landed != events:
        raise RuntimeError(f"landed {summary.landed} of {events}")
    return summary.busy_seconds, time.process_time() - cpu


def peak_rss_of_consumer(settings: Settings) -> tuple[int, float]:
    """Run ``python -m streaming.consumer --until-idle``; return (peak RSS bytes, wall seconds)."""
    env = {**os.environ, **{f"LOYALTY_{k.upper()}": str(v) for k, v in {
        "data_dir": settings.data_dir, "bootstrap_servers": settings.bootstrap_servers,
        "topic_touchpoints": settings.topic_touchpoints, "topic_customers": settings.topic_customers,
        "topic_dead_letter": settings.topic_dead_letter, "topic_batches": settings.topic_batches,
        "consumer_group": settings.consumer_group}.items()}}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "streaming.consumer", "--until-idle"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        except OSError:
            pass
        time.sleep(0.05)
    if proc.returncode != 0:
        raise RuntimeError(f"consumer exited with {proc.returncode}")
    return peak, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=positive_int, default=200_000, help="backlog for the throughput ratio")
    parser.add_argument("--rss-events", default="100000,1000000",
                        help="comma-separated backlog sizes for the peak-RSS runs")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--rounds", type=positive_int, default=3, help="interleaved raw/ours rounds (best of)")
    parser.add_argument("--workers", type=int, default=None,
                        help="decode worker processes of the consumer (default: its own default)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp, EmbeddedBroker(create_topics=False) as broker:
        settings = make_settings(broker.bootstrap_servers, Path(tmp) / "throughput", "tp")
        ensure_topics(settings)
        seconds = produce_backlog(settings, args.events)
        print(f"backlog: {args.events:,} touchpoints produced in {seconds:.1f}s", flush=True)
        workers = default_workers() if args.workers is None else args.workers
        raw_runs, client_runs, our_runs = [], [], []
        # Interleaved rounds, best of each: on a shared machine the load changes from second to
        # second, and the fastest run is the one least disturbed by it.
        for round_ in range(args.rounds):
            run_settings = settings.replace(consumer_group=f"{settings.consumer_group}-{round_}",
                                               data_dir=Path(tmp) / f"throughput-{round_}")
            raw_runs.append(raw_consume(run_settings, args.events))
            client_runs.append(raw_confluent_consume(run_settings, args.events))
            our_runs.append(our_consume(run_settings, args.events, workers))
            print(f"  round {round_ + 1}: raw kafka-python {args.events / raw_runs[-1][0]:,.0f} msg/s, "
                  f"raw confluent-kafka {args.events / client_runs[-1][0]:,.0f} msg/s, "
                  f"ours {args.events / our_runs[-1][0]:,.0f} msg/s", flush=True)
        raw_wall, raw_cpu = min(raw_runs)
        client_wall, client_cpu = min(client_runs)
        our_wall, our_cpu = min(our_runs)
        per_msg = 1e6 / args.events
        print(f"raw kafka-python consumption            : {args.events / raw_wall:>9,.0f} msg/s "
              f"(best of {args.rounds}; {raw_cpu * per_msg:.0f} us CPU/msg)")
        print(f"raw confluent-kafka consumption         : {args.events / client_wall:>9,.0f} msg/s "
              f"(best of {args.rounds}; {client_cpu * per_msg:.1f} us CPU/msg)")
        print(f"landing consumer (validate+land+commit) : {args.events / our_wall:>9,.0f} msg/s "
              f"(best of {args.rounds}; {workers} decode workers; "
              f"{our_cpu * per_msg:.0f} us CPU/msg in the consumer process)")
        ratio = raw_wall / our_wall
        print(f"throughput ratio ours/raw kafka-python: {ratio:.2f} "
              f"(target >= 0.8: {'met' if ratio >= 0.8 else 'NOT met'})")
        print(f"throughput ratio ours/raw confluent-kafka: {client_wall / our_wall:.2f} "
              f"(the share of the client's own speed left after validating, landing and committing)",
              flush=True)

        if not args.skip_rss:
            for n in (int(x) for x in args.rss_events.split(",") if x):
                rss_settings = make_settings(broker.bootstrap_servers, Path(tmp) / f"rss-{n}", f"rss{n}")
                ensure_topics(rss_settings)
                produce_backlog(rss_settings, n)
                peak, wall = peak_rss_of_consumer(rss_settings)
                print(f"consumer peak RSS for a {n:>9,} backlog: {peak / 2**20:7.1f} MiB "
                      f"(batch_max_records {rss_settings.batch_max_records:,}; run {wall:.1f}s)", flush=True)
    return 0


if __name__ == "__main__":
    run_main(main)
