"""Consumer metrics with the Prometheus client: a textfile-collector file and an optional HTTP endpoint.

Each :class:`ConsumerMetrics` owns a ``CollectorRegistry`` of its own (not the client's global
one), so several consumers in one process (tests, the benchmark) never share or clash over a
metric. The file is written with ``write_to_textfile`` (temp file + rename: a scraper never reads
half a file; node_exporter's textfile collector reads it as is) and the endpoint is the client's
own threaded server (``start_http_server``).

Every sample carries a ``consumer`` label naming the consumer instance (host name and process id,
:func:`instance_name`): several consumers sharing one data directory each write a file of their own
(:func:`textfile_path`), and node_exporter's textfile collector refuses the same series from two
files, so the label tells them apart.

Counters and the histogram also expose the client's ``_created`` samples (Unix time the series
started); the names, labels and meanings of the rest are in docs/streaming.md, "Metrics".
"""

from __future__ import annotations

import os
import re
import socket
import threading
from pathlib import Path
from typing import Any, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server, write_to_textfile
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric

#: A running consumer rewrites its textfile at least this often (seconds), also when it is idle.
REFRESH_S = 15.0

#: The textfile of a consumer instance is ``<data_dir>/run/<TEXTFILE_PREFIX><instance>.prom``.
TEXTFILE_PREFIX = "consumer-metrics-"


def instance_name() -> str:
    """This consumer instance's ``consumer`` label: ``<host name>-<process id>``. In a container
    the host name is the container's (stable across its restarts, and so is the process id of
    its command); two consumers on one host differ by process id."""
    return f"{socket.gethostname()}-{os.getpid()}"


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def textfile_path(run_dir: Path, instance: str) -> Path:
    """The textfile of ``instance`` in ``run_dir`` (characters unsafe in a file name become ``_``)."""
    return run_dir / f"{TEXTFILE_PREFIX}{_safe(instance)}.prom"


def textfiles(run_dir: Path) -> list[Path]:
    """The textfiles of every consumer instance in ``run_dir`` (live or left by one that died)."""
    return sorted(run_dir.glob(f"{TEXTFILE_PREFIX}*.prom"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def dead_local_textfiles(run_dir: Path) -> list[Path]:
    """Textfiles left by consumers of this host whose process is gone (killed, crashed): only
    those can be told dead from here; another host's are recognised by their age (docs/streaming.md)."""
    own = f"{TEXTFILE_PREFIX}{_safe(socket.gethostname())}-"
    dead = []
    for path in textfiles(run_dir):
        pid = path.name[len(own):-len(".prom")] if path.name.startswith(own) else ""
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            dead.append(path)
    return dead


class _Labelled:
    """A collector that exposes another registry's metrics with one more label on every sample."""

    def __init__(self, registry: CollectorRegistry, name: str, value: str):
        self.registry, self.name, self.value = registry, name, value

    def collect(self) -> Iterator[Metric]:
        for metric in self.registry.collect():
            labelled = Metric(metric.name, metric.documentation, metric.type, metric.unit)
            for sample in metric.samples:
                labelled.samples.append(sample._replace(
                    labels=dict(sorted({**sample.labels, self.name: self.value}.items()))))
            yield labelled

#: Upper bounds (seconds) of the batch latency histogram buckets.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ConsumerMetrics:
    """The metrics of one consumer, in a registry of their own.

    Label names are declared in alphabetical order, so samples read ``{code="...",topic="..."}``
    as they did before the client library rendered them; ``consumer`` (the instance, see
    :func:`instance_name`) is added to every sample, in its alphabetical place.
    ``registry`` is what is exposed (file and endpoint); the metrics live in ``own``."""

    def __init__(self, consumer: str) -> None:
        self.consumer = consumer
        self.own = CollectorRegistry(auto_describe=True)
        r = self.own
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
        self.updated = Gauge("loyalty_consumer_metrics_updated_timestamp_seconds",
                             "Unix time these metrics were last written; the file of a live consumer is "
                             f"rewritten at least every {REFRESH_S:g} seconds, so an older one was left by a "
                             "consumer that died.", registry=r)
        self.latency = Histogram("loyalty_consumer_batch_latency_seconds",
                                 "Time from a batch's first message to its commit.",
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.registry = CollectorRegistry(auto_describe=True)  # knows the names: ?name[]= filters work
        self.registry.register(_Labelled(self.own, "consumer", consumer))
        self._lag_lock = threading.Lock()
        self._lag_values: dict[tuple[str, int], int] = {}

    def observe_batch(self, seconds: float, finished_unix: float) -> None:
        self.latency.observe(seconds)
        self.last_batch.set(finished_unix)

    def set_lag(self, lag: dict[tuple[str, int], int]) -> None:
        """Replace the lag samples: set the current partitions, drop the ones no longer assigned."""
        with self._lag_lock:
            for (topic, partition), behind in lag.items():
                self.lag.labels(str(partition), topic).set(behind)
            for topic, partition in self._lag_values.keys() - lag.keys():
                self.lag.remove(str(partition), topic)
            self._lag_values = dict(lag)

    def lag_samples(self) -> dict[tuple[str, int], int]:
        """The lag last set, by (topic, partition)."""
        with self._lag_lock:
            return dict(self._lag_values)

    def render(self) -> str:
        """The Prometheus text exposition of this consumer's metrics."""
        return generate_latest(self.registry).decode()

    def write(self, path: Path, now_unix: float) -> None:
        """Replace ``path`` atomically (the textfile collector's file), so a scraper never reads half a file."""
        self.updated.set(now_unix)
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
