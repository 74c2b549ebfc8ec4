"""Consumer metrics in the Prometheus text exposition format (file and optional HTTP endpoint).

No client library: the handful of counters, gauges and one histogram are rendered by hand, so
the file is readable with ``cat`` and scrapeable by node_exporter's textfile collector.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

#: Upper bounds (seconds) of the batch latency histogram buckets.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _labels(**labels: object) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{str(v)}"'.replace("\n", " ") for k, v in sorted(labels.items()))
    return "{" + inner + "}"


class ConsumerMetrics:
    """Counters of one consumer process; thread-safe rendering for the HTTP endpoint."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.consumed: dict[str, int] = defaultdict(int)           # by topic
        self.landed: dict[str, int] = defaultdict(int)             # by topic
        self.dead_lettered: dict[tuple[str, str], int] = defaultdict(int)  # (topic, code)
        self.files_written = 0
        self.batches = 0
        self.commit_failures = 0
        self.lag: dict[tuple[str, int], int] = {}
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.last_batch_unix = 0.0

    def observe_batch(self, seconds: float, finished_unix: float) -> None:
        with self._lock:
            self.batches += 1
            self.latency_sum += seconds
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    self.latency_counts[i] += 1
                    break
            else:
                self.latency_counts[-1] += 1
            self.last_batch_unix = finished_unix

    def set_lag(self, lag: dict[tuple[str, int], int]) -> None:
        with self._lock:
            self.lag = dict(lag)

    def render(self) -> str:
        with self._lock:
            lines = []

            def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
                lines.append(f"# HELP {name} {help_text}")
                lines.append(f"# TYPE {name} {kind}")
                for labels, value in samples:
                    lines.append(f"{name}{labels} {value:g}" if isinstance(value, float)
                                 else f"{name}{labels} {value}")

            metric("loyalty_consumer_messages_consumed_total", "counter",
                   "Messages read from Kafka.",
                   [(_labels(topic=t), n) for t, n in sorted(self.consumed.items())])
            metric("loyalty_consumer_records_landed_total", "counter",
                   "Valid records written to the landing zone and committed.",
                   [(_labels(topic=t), n) for t, n in sorted(self.landed.items())])
            metric("loyalty_consumer_dead_letters_total", "counter",
                   "Messages sent to the dead-letter topic, by error code.",
                   [(_labels(topic=t, code=c), n) for (t, c), n in sorted(self.dead_lettered.items())])
            metric("loyalty_consumer_files_written_total", "counter",
                   "Parquet files written to the landing zone.", [("", self.files_written)])
            metric("loyalty_consumer_commit_failures_total", "counter",
                   "Batches whose offset commit failed (the group rebalanced); they are re-consumed.",
                   [("", self.commit_failures)])
            metric("loyalty_consumer_lag", "gauge",
                   "Messages behind the end of the partition after the last batch.",
                   [(_labels(topic=t, partition=p), n) for (t, p), n in sorted(self.lag.items())])
            metric("loyalty_consumer_last_batch_timestamp_seconds", "gauge",
                   "Unix time of the last committed batch.", [("", float(self.last_batch_unix))])
            name = "loyalty_consumer_batch_latency_seconds"
            lines.append(f"# HELP {name} Time from a batch's first message to its commit.")
            lines.append(f"# TYPE {name} histogram")
            cumulative = 0
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), self.latency_counts):
                cumulative += count
                le = "+Inf" if bound == float("inf") else f"{bound:g}"
                lines.append(f'{name}_bucket{{le="{le}"}} {cumulative}')
            lines.append(f"{name}_sum {self.latency_sum:.6f}")
            lines.append(f"{name}_count {self.batches}")
            return "\n".join(lines) + "\n"

    def write(self, path: Path) -> None:
        """Replace ``path`` atomically, so a scraper never reads half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(self.render())
        os.replace(tmp, path)


def parse(text: str) -> dict[str, float]:
    """Samples of a Prometheus text page as {"name{labels}": value} (for tests and tools)."""
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def serve(metrics: ConsumerMetrics, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve ``/metrics`` on a daemon thread; returns the server (``shutdown()`` to stop)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            body = metrics.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # scrapes are not worth a log line
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server
