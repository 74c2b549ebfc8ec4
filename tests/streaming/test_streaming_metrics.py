"""The consumer's metrics (streaming/metrics.py, prometheus_client): names, labels, textfile, endpoint."""

from __future__ import annotations

import urllib.request

from loyalty_monitor.broker import free_port
from streaming.metrics import ConsumerMetrics, parse, serve


def _busy(metrics: ConsumerMetrics) -> None:
    metrics.consumed.labels("touchpoints").inc(5)
    metrics.landed.labels("touchpoints").inc(4)
    metrics.dead_lettered.labels("bad_json", "touchpoints").inc()
    metrics.files_written.inc(2)
    metrics.observe_batch(0.3, 1_700_000_000.5)


def test_the_documented_names_and_labels_in_the_textfile(tmp_path):
    metrics = ConsumerMetrics()
    _busy(metrics)
    metrics.set_lag({("touchpoints", 0): 3, ("touchpoints", 1): 0})
    path = tmp_path / "run" / "consumer-metrics.prom"
    metrics.write(path)
    samples = parse(path.read_text())
    assert samples['loyalty_consumer_messages_consumed_total{topic="touchpoints"}'] == 5
    assert samples['loyalty_consumer_records_landed_total{topic="touchpoints"}'] == 4
    assert samples['loyalty_consumer_dead_letters_total{code="bad_json",topic="touchpoints"}'] == 1
    assert samples["loyalty_consumer_files_written_total"] == 2
    assert samples["loyalty_consumer_commit_failures_total"] == 0
    assert samples['loyalty_consumer_lag{partition="0",topic="touchpoints"}'] == 3
    assert samples["loyalty_consumer_last_batch_timestamp_seconds"] == 1_700_000_000.5
    assert samples['loyalty_consumer_batch_latency_seconds_bucket{le="0.25"}'] == 0
    assert samples['loyalty_consumer_batch_latency_seconds_bucket{le="0.5"}'] == 1
    assert samples["loyalty_consumer_batch_latency_seconds_count"] == 1
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # written atomically, no temp file left

    metrics.set_lag({("touchpoints", 1): 7})  # partition 0 was revoked: its sample goes
    samples = parse(metrics.render())
    assert 'loyalty_consumer_lag{partition="0",topic="touchpoints"}' not in samples
    assert samples['loyalty_consumer_lag{partition="1",topic="touchpoints"}'] == 7


def test_each_consumer_has_its_own_registry_and_endpoint():
    first, second = ConsumerMetrics(), ConsumerMetrics()  # no "duplicated timeseries" error
    _busy(first)
    assert parse(second.render())["loyalty_consumer_files_written_total"] == 0
    port = free_port()
    server = serve(first, port)
    try:
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert parse(page)["loyalty_consumer_files_written_total"] == 2
