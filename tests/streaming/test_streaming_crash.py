"""Exactly-once landing with real consumer processes: SIGKILL at random moments, crash leftovers, a second member."""

from __future__ import annotations

import io
import json
import random
import signal
import threading
import time
from datetime import datetime, timezone

from streaming_helpers import (
    coordinates,
    fast_settings,
    landed,
    log_events,
    produce,
    run_consumer_until_idle,
    start_consumer,
    wait_for,
)

from loyalty_core.landing_zone import LandingZone
from streaming import samples
from streaming.consumer import JsonLog, LandingConsumer, metrics_files
from streaming.metrics import REFRESH_S, parse
from streaming.landing import BatchBuilder, decode_chunk, prepare


class SteadyLoad(threading.Thread):
    """Produces ``total`` touchpoints in small chunks over ``seconds``, recording every coordinate."""

    def __init__(self, settings, total: int, seconds: float, chunk: int = 250):
        super().__init__(daemon=True)
        self.settings, self.total, self.seconds, self.chunk = settings, total, seconds, chunk
        self.coords: list[tuple[int, int]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            pause = self.seconds / (self.total / self.chunk)
            for start in range(0, self.total, self.chunk):
                self.coords += produce(self.settings, self.settings.topic_touchpoints,
                                       samples.touchpoint_messages(min(self.chunk, self.total - start), start=start))
                time.sleep(pause)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def _assert_exactly_once(settings, expected_coords, expected_events: int) -> None:
    table = landed(settings)
    coords = coordinates(table)
    assert len(coords) == len(set(coords)), f"{len(coords) - len(set(coords))} duplicated rows"
    assert set(coords) == set(expected_coords), f"{len(set(expected_coords) - set(coords))} messages lost"
    assert len(set(table.column("event_id").to_pylist())) == expected_events
    assert not list((settings.data_dir / "landing" / "_pending").glob("*")), "pending manifests left"


def test_sigkill_at_random_moments_loses_and_duplicates_nothing(settings, monkeypatch, tmp_path):
    settings = fast_settings(settings, monkeypatch, LOYALTY_BATCH_MAX_RECORDS="1500",
                             LOYALTY_BATCH_MAX_WAIT_S="0.3")
    rng = random.Random(20261124)
    log = tmp_path / "consumer.log"
    load = SteadyLoad(settings, total=24_000, seconds=25)
    load.start()
    kills = 0
    while kills < 4:
        proc = start_consumer(log=log)
        committed_before = len(log_events(log, "batch_committed"))
        try:
            # let it land at least one batch, then kill it at a random moment of its work
            wait_for(lambda: len(log_events(log, "batch_committed")) > committed_before or proc.poll() is not None,
                     40, interval=0.05, what="a committed batch")
            assert proc.poll() is None, "consumer exited on its own"
            time.sleep(rng.uniform(0.0, 1.2))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        kills += 1
    load.join(60)
    assert load.error is None and len(load.coords) == 24_000

    killed = [e["metrics_file"] for e in log_events(log, "started")]
    # a killed consumer leaves its metrics file; the next one on this host removes it when it starts
    assert len(killed) == 4 and [str(f) for f in metrics_files(settings)] == killed[-1:]

    result = run_consumer_until_idle(log)
    assert result.returncode == 0
    _assert_exactly_once(settings, load.coords, 24_000)
    # ... and its own when it stops
    assert metrics_files(settings) == []
    assert {e["path"] for e in log_events(log, "stale_metrics_file_removed")} == set(killed)
    rolled_back = log_events(log, "pending_batch_rolled_back") + log_events(log, "pending_batch_was_committed")
    print(f"{kills} kills; crash leftovers resolved: {len(rolled_back)}")


def test_a_batch_written_but_not_committed_is_rolled_back_even_with_other_boundaries(settings, monkeypatch):
    """The state a crash between 'files written' and 'offsets committed' leaves, built explicitly."""
    settings = fast_settings(settings, monkeypatch, LOYALTY_BATCH_MAX_RECORDS="700")
    # one customer: every message in one partition, so batch boundaries are offset ranges
    coords = produce(settings, settings.topic_touchpoints, samples.touchpoint_messages(3000, customers=1))
    [crashed_partition] = {p for p, _ in coords}
    # The "crashed" consumer had landed offsets 0-999 in one batch (its batch size was larger than
    # the restarted consumer's 700) but never committed them.
    crashed = BatchBuilder("touchpoints", settings.topic_touchpoints)
    offsets = [o for _, o in coords][:1000]
    raw = [(partition, offset, None, None, samples.encode(samples.touchpoint(i, customers=1)))
           for i, (partition, offset) in enumerate(coords[:1000])]
    for partition, offset, *_ in raw:
        crashed.note_offset(partition, offset)
    crashed.add_table(decode_chunk("touchpoint", settings.topic_touchpoints, raw, 20_000,
                                   datetime.now(timezone.utc)).table)
    zone = LandingZone.from_settings(settings)
    prepared = prepare(crashed)
    paths = list(prepared.tables)
    zone.write_pending("touchpoints", crashed_partition, {
        "topic": settings.topic_touchpoints, "partition": crashed_partition,
        "first": offsets[0], "last": offsets[-1], "files": paths})
    zone.write_prepared(prepared)
    # and a temp file of a write the crash interrupted
    stray = zone.full(paths[0]).rsplit("/", 1)
    zone.fs.pipe(f"{stray[0]}/.{stray[1]}.deadbeef.tmp", b"half a file")
    # and a manifest the crash cut short, of a batch that had written nothing yet
    other = (crashed_partition + 1) % settings.partitions_touchpoints
    zone.fs.pipe(zone.full(f"_pending/.touchpoints-p{other:03d}.json.0badf00d.tmp"), b'{"topic": "touch')

    log = io.StringIO()
    summary = LandingConsumer(settings, until_idle=True, idle_s=1.0, log=JsonLog(log)).run()

    assert summary.consumed == 3000
    _assert_exactly_once(settings, coords, 3000)
    assert not any(zone.fs.exists(zone.full(p)) for p in paths), "the crashed batch's files are gone"
    assert not zone.fs.glob(f"{stray[0]}/*.tmp")
    assert '"pending_batch_rolled_back"' in log.getvalue()
    assert '"half_written_manifest_removed"' in log.getvalue()


def test_a_batch_committed_before_the_crash_keeps_its_files(settings, monkeypatch):
    """Crash between commit and manifest removal: the committed files are final, only the manifest goes."""
    settings = fast_settings(settings, monkeypatch)
    coords = produce(settings, settings.topic_touchpoints, samples.touchpoint_messages(600))
    LandingConsumer(settings, until_idle=True, idle_s=1.0, log=JsonLog(io.StringIO())).run()
    zone = LandingZone.from_settings(settings)
    partition = coords[0][0]
    files = [f.split(zone.root + "/", 1)[1] for f in zone.files("touchpoints") if f"-p{partition:03d}-" in f]
    last = max(o for p, o in coords if p == partition)
    zone.write_pending("touchpoints", partition, {"topic": settings.topic_touchpoints, "partition": partition,
                                                  "first": 0, "last": last, "files": files})
    log = io.StringIO()
    LandingConsumer(settings, until_idle=True, idle_s=1.0, log=JsonLog(log)).run()
    assert '"pending_batch_was_committed"' in log.getvalue()
    _assert_exactly_once(settings, coords, 600)


def test_a_second_consumer_takes_over_partitions_without_loss_or_duplicates(settings, monkeypatch, tmp_path):
    # a longer poll interval than the other tests: two members plus the load on a busy host
    # must not be evicted for slow batches here (that path is the crash test's business)
    settings = fast_settings(settings, monkeypatch, LOYALTY_BATCH_MAX_RECORDS="1000",
                             LOYALTY_BATCH_MAX_WAIT_S="0.3", LOYALTY_MAX_POLL_INTERVAL_MS="6000")
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    load = SteadyLoad(settings, total=16_000, seconds=14)
    first = start_consumer(log=first_log)
    second = None
    try:
        wait_for(lambda: log_events(first_log, "partitions_assigned"), 40, what="the first member's assignment")
        load.start()
        wait_for(lambda: log_events(first_log, "batch_committed"), 20, what="the first member landing")
        second = start_consumer(log=second_log)
        load.join(60)
        assert load.error is None and len(load.coords) == 16_000
        wait_for(lambda: len(set(coordinates(landed(settings)))) >= 16_000, 120, interval=0.5,
                 what="everything to land")
        time.sleep(1.0)  # a duplicate would show up after the count was reached
        _assert_each_member_has_its_own_metrics_file(settings, first_log, second_log)
        for proc in (first, second):
            proc.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0 and second.wait(30) == 0
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
    assert metrics_files(settings) == [], "a stopped member left its metrics file"
    _assert_exactly_once(settings, load.coords, 16_000)
    second_got = [e for e in log_events(second_log, "partitions_assigned") if e["partitions"]]
    assert second_got, "the second member never received partitions"
    assert log_events(second_log, "batch_committed"), "the second member never landed a batch"
    assert log_events(first_log, "partitions_revoked"), "the first member never handed partitions over"


def _label(sample: str, name: str) -> str:
    return sample.split(f'{name}="')[1].split('"')[0]


def _assert_each_member_has_its_own_metrics_file(settings, *logs) -> None:
    """Two members sharing the data directory (compose's ``--scale consumer=2``): each writes a
    textfile of its own, every sample labelled with its consumer, and has a lag sample for every
    partition it was assigned, the quiet ones (no message since the takeover) too."""
    files = metrics_files(settings)
    started = [log_events(log, "started")[-1] for log in logs]
    assert sorted(str(f) for f in files) == sorted(s["metrics_file"] for s in started)
    assert len({s["consumer"] for s in started}) == len(logs)
    lag_partitions = []
    for log, member in zip(logs, started):
        samples = parse(next(f for f in files if str(f) == member["metrics_file"]).read_text())
        assert samples and all(f'consumer="{member["consumer"]}"' in name for name in samples)
        updated = samples[f'loyalty_consumer_metrics_updated_timestamp_seconds{{consumer="{member["consumer"]}"}}']
        assert time.time() - updated < REFRESH_S + 5  # a live member's file is fresh
        assigned = log_events(log, "partitions_assigned")[-1]["partitions"]
        lag = sorted(f"{_label(n, 'topic')}[{_label(n, 'partition')}]" for n in samples
                     if n.startswith("loyalty_consumer_lag{"))
        assert lag == sorted(assigned), (member["consumer"], lag, assigned)
        lag_partitions += lag
    assert len(lag_partitions) == len(set(lag_partitions))  # no partition is counted twice
    assert {p.rpartition("[")[0] for p in lag_partitions} == {settings.topic_touchpoints, settings.topic_customers,
                                                             settings.topic_case_events}


class _StallsInItsFirstBatch(LandingConsumer):
    """A member that takes longer than max_poll_interval_ms over its first batch (a slow disk, a
    long GC pause): the group evicts it while it is writing."""

    stall_s = 5.0

    def flush(self, reason: str) -> bool:
        if self.stall_s and self._batch.count:
            time.sleep(self.stall_s)
            self.stall_s = 0.0
        return super().flush(reason)


def test_a_member_evicted_while_landing_has_its_commit_refused_and_relands_exactly_once(settings, monkeypatch):
    settings = fast_settings(settings, monkeypatch, LOYALTY_BATCH_MAX_RECORDS="1000",
                             LOYALTY_BATCH_MAX_WAIT_S="0.3")  # max_poll_interval_ms 3000 < the 5 s stall
    coords = produce(settings, settings.topic_touchpoints, samples.touchpoint_messages(3000))
    log = io.StringIO()
    summary = _StallsInItsFirstBatch(settings, until_idle=True, idle_s=1.0, log=JsonLog(log)).run()
    events = [json.loads(line) for line in log.getvalue().splitlines()]
    refused = [e for e in events if e["event"] == "commit_failed"]
    assert refused and refused[0]["files_removed"] > 0, "the evicted member's commit was not refused"
    # the next batch is half as large, so a host that stays busy cannot evict it for ever
    assert refused[0]["next_batch_max_records"] == 500
    assert [e for e in events if e["event"] in ("partitions_lost", "partitions_revoked")]
    assert sum(1 for e in events if e["event"] == "partitions_assigned") >= 2, "it never rejoined"
    assert summary.stopped_by == "caught_up" and summary.landed == 3000
    # the refused batch is consumed twice: the summary says where the difference went
    assert summary.handed_back > 0 and summary.consumed == summary.landed + summary.handed_back
    assert f"{summary.handed_back} handed back uncommitted" in summary.line()
    _assert_exactly_once(settings, coords, 3000)
