"""Consumer metrics with the Prometheus client: a textfile-collector file and an optional HTTP endpoint.

Each :class:`ConsumerMetrics` owns a ``CollectorRegistry`` of its own (not the client's global
one), so several consumers in one process (tests, the benchmark) never share or clash over a
metric. The file is written with ``write_to_textfile`` (temp file + rename: a scraper never reads
half a file; node_exporter's textfile collector reads it as is) and the endpoint is the client's
own threaded server (``start_http_server``).

Counters and the histogram also expose the client's ``_created`` samples (Unix time the series
started); the names, labels and meanings of the rest are in docs/streaming.md, "Metrics".
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server, write_to_textfile
from prometheus_client.exposition import generate_latest

#: Upper bounds (seconds) of the batch latency histogram buckets.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ConsumerMetrics:
    """The metrics of one consumer, in a registry of their own.

    Label names are declared in alphabetical order, so samples read ``{code="...",topic="..."}``
    as they did before the client library rendered them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # prometheus_client appends "_total" to a counter's name in the exposition.
        self.consumed = Counter("loyalty_consumer_messages_consumed", "Messages read from Kafka.",
                                ["topic"], registry=r)
        self.landed = Counter("loyalty_consumer_records_landed",
                              "Valid records written to the landing zone and committed.", ["topic"], registry=r)
        self.dead_lettered = Counter("loyalty_consumer_dead_letters",
                                     "Messages sent to the dead-letter topic, by error code.",
                                     ["code", "topic"], registry=r)
        self.files_written = Counter("loyalty_consumer_files_written",
                                     "Parquet files written to the landing zone.", registry=r)
        self.commit_failures = Counter("loyalty_consumer_commit_failures",
                                       "Batches whose offset commit failed (the group rebalanced); "
                                       "they are re-consumed.", registry=r)
        self.lag = Gauge("loyalty_consumer_lag", "Messages behind the end of the partition after the last batch.",
                         ["partition", "topic"], registry=r)
        self.last_batch = Gauge("loyalty_consumer_last_batch_timestamp_seconds",
                                "Unix time of the last committed batch.", registry=r)
        self.latency = Histogram("loyalty_consumer_batch_latency_seconds",
                                 "Time from a batch's first message to its commit.",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self._lag_lock = threading.Lock()
        self._lag_labels: set[tuple[str, str]] = set()

    def observe_batch(self, seconds: float, finished_unix: float) -> None:
        self.latency.observe(seconds)
        self.last_batch.set(finished_unix)

    def set_lag(self, lag: dict[tuple[str, int], int]) -> None:
        """Replace the lag samples: set the current partitions, drop the ones no longer assigned."""
        with self._lag_lock:
            current = set()
            for (topic, partition), behind in lag.items():
                labels = (str(partition), topic)
                self.lag.labels(*labels).set(behind)
                current.add(labels)
            for gone in self._lag_labels - current:
                self.lag.remove(*gone)
            self._lag_labels = current

    def render(self) -> str:
        """The Prometheus text exposition of this consumer's metrics."""
        return generate_latest(self.registry).decode()

    def write(self, path: Path) -> None:
        """Replace ``path`` atomically (the textfile collector's file), so a scraper never reads half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), self.registry)


def parse(text: str) -> dict[str, float]:
    """Samples of a Prometheus text page as {"name{labels}": value} (for tests and tools)."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def serve(metrics: ConsumerMetrics, port: int, host: str = "127.0.0.1") -> Any:
    """Serve the metrics over HTTP (``/metrics``) on a daemon thread, with the client's server.

    Returns the server (``shutdown()`` then ``server_close()`` to stop)."""
    server, _thread = start_http_server(port, addr=host, registry=metrics.registry)
    return server
