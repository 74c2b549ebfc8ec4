"""The consumer's metrics (streaming/metrics.py, prometheus_client): names, labels, textfile, endpoint."""

from __future__ import annotations

import urllib.request

from loyalty_monitor.broker import free_port
from streaming.metrics import ConsumerMetrics, parse, serve, textfile_path, textfiles


def _busy(metrics: ConsumerMetrics) -> None:
    metrics.consumed.labels("touchpoints").inc(5)
    metrics.landed.labels("touchpoints").inc(4)
    metrics.dead_lettered.labels("bad_json", "touchpoints").inc()
    metrics.files_written.inc(2)
    metrics.observe_batch(0.3, 1_700_000_000.5)


def test_the_documented_names_and_labels_in_the_textfile(tmp_path):
    metrics = ConsumerMetrics("web-1/a:b-7")
    _busy(metrics)
    metrics.set_lag({("touchpoints", 0): 3, ("touchpoints", 1): 0})
    path = textfile_path(tmp_path / "run", metrics.consumer)
    assert path.name == "consumer-metrics-web-1_a_b-7.prom"
    metrics.write(path, 1_700_000_001.0)
    samples = parse(path.read_text())
    c = 'consumer="web-1/a:b-7"'  # every sample names its consumer instance
    assert samples[f'loyalty_consumer_messages_consumed_total{{{c},topic="touchpoints"}}'] == 5
    assert samples[f'loyalty_consumer_records_landed_total{{{c},topic="touchpoints"}}'] == 4
    assert samples[f'loyalty_consumer_dead_letters_total{{code="bad_json",{c},topic="touchpoints"}}'] == 1
    assert samples[f"loyalty_consumer_files_written_total{{{c}}}"] == 2
    assert samples[f"loyalty_consumer_commit_failures_total{{{c}}}"] == 0
    assert samples[f'loyalty_consumer_lag{{{c},partition="0",topic="touchpoints"}}'] == 3
    assert samples[f"loyalty_consumer_last_batch_timestamp_seconds{{{c}}}"] == 1_700_000_000.5
    assert samples[f"loyalty_consumer_metrics_updated_timestamp_seconds{{{c}}}"] == 1_700_000_001.0
    assert samples[f'loyalty_consumer_batch_latency_seconds_bucket{{{c},le="0.25"}}'] == 0
    assert samples[f'loyalty_consumer_batch_latency_seconds_bucket{{{c},le="0.5"}}'] == 1
    assert samples[f"loyalty_consumer_batch_latency_seconds_count{{{c}}}"] == 1
    assert all(c in name for name in samples)
    assert textfiles(path.parent) == [path]  # written atomically, no temp file left

    metrics.set_lag({("touchpoints", 1): 7})  # partition 0 was revoked: its sample goes
    samples = parse(metrics.render())
    assert f'loyalty_consumer_lag{{{c},partition="0",topic="touchpoints"}}' not in samples
    assert samples[f'loyalty_consumer_lag{{{c},partition="1",topic="touchpoints"}}'] == 7
    assert metrics.lag_samples() == {("touchpoints", 1): 7}


def test_each_consumer_has_its_own_registry_and_endpoint():
    first, second = ConsumerMetrics("a"), ConsumerMetrics("b")  # no "duplicated timeseries" error
    _busy(first)
    assert parse(second.render())['loyalty_consumer_files_written_total{consumer="b"}'] == 0
    port = free_port()
    server = serve(first, port)
    try:
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        # a scraper may ask for some metrics only
        one = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics?name[]=loyalty_consumer_files_written_total",
                                     timeout=5).read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert parse(page)['loyalty_consumer_files_written_total{consumer="a"}'] == 2
    assert parse(one) == {'loyalty_consumer_files_written_total{consumer="a"}': 2}
