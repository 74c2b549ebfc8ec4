"""The demo's steps (``loyalty_monitor.demo`` runs them in order): each one calls, in this process, the
library functions the matching ``loyalty`` command calls, shows the same progress and prints the
same result line.

Each step returns the one-line detail the demo prints after its tick (and what later steps need);
it raises :class:`StepUnavailable` when a part it needs is not installed, any other exception when
it fails.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from loyalty_core.settings import Settings
from loyalty_monitor import broker, stack
from loyalty_monitor.generator import CUSTOMERS_FILE, GROUND_TRUTH_FILE, TOUCHPOINTS_FILE
from loyalty_monitor.progress import backlog_progress, produce_progress
from loyalty_monitor.reporting import render_report
from streaming import topics
from streaming.consumer import run_consumer
from streaming.producer import produce_lines, read_lines, topic_to_write

#: Everything under the data directory that a demo run rebuilds from the broker's data.
DERIVED = ("landing", "alerts", "quality", "reports")
INPUT_DIR = "demo-input"
REPORT_FILE = "leadership-report.html"
#: Someone is watching: a failed pipeline task is retried after seconds, not the production minute.
DEMO_RETRY_DELAY_S = 5
CONSUME_ATTEMPTS = 3


class StepUnavailable(RuntimeError):
    """The part this step needs is not installed in this checkout."""


def _dim(console: Any, text: str) -> None:
    console.print(f"[dim]{text}[/]", highlight=False)


# --- 1. clean up -----------------------------------------------------------------------------------

def clean_up(settings: Settings, input_dir: Path, fresh: bool) -> str:
    """Stop the previous demo's broker and delete what was derived from its (in-memory) data."""

    removed = []
    if broker.stop(settings):
        removed.append("stopped the previous demo's broker")
    for path in _derived_paths(settings, input_dir, fresh):
        if path.is_dir():
            shutil.rmtree(path)
            removed.append(str(path))
        elif path.exists():
            path.unlink()
            removed.append(str(path))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return ("cleaned: " + ", ".join(removed)) if removed else f"data directory {settings.data_dir} is clean"


def _derived_paths(settings: Settings, input_dir: Path, fresh: bool) -> list[Path]:
    paths = [settings.data_dir / name for name in DERIVED]
    if not settings.landing_url:
        paths.append(Path(settings.landing))
    paths += [settings.warehouse, settings.warehouse.with_name(settings.warehouse.name + ".wal")]
    if fresh:
        paths.append(input_dir)
    return paths


# --- 2. broker ---------------------------------------------------------------------------------------

def start_broker(settings: Settings) -> tuple[Settings, str]:
    """Start the embedded broker; the settings every later step uses: that broker's address, and
    the demo's short retry delay unless one was configured."""

    state = broker.start(settings)
    changes: dict[str, Any] = {"bootstrap_servers": state.bootstrap_servers}
    if settings.sources().get("task_retry_delay_s", "default") == "default":
        changes["task_retry_delay_s"] = DEMO_RETRY_DELAY_S
    return settings.replace(**changes), f"Tansu at {state.bootstrap_servers} (in memory), pid {state.pid}"


# --- 3. generate -------------------------------------------------------------------------------------

def generate_history(input_dir: Path, customers: int, start: dt.date, end: dt.date, seed: int,
                     console: Any) -> tuple[str, Any]:
    """The seeded history in ``input_dir`` (reused when its parameters are unchanged); the
    generator's result, None when reused."""
    try:
        # optional: the caller handles its absence
        from loyalty_monitor.generator import generate
    except ImportError as exc:
        raise StepUnavailable(f"the generator is not installed ({exc})") from exc
    wanted = {"seed": seed, "start": start.isoformat(), "end": end.isoformat(), "customers": customers}
    if _history_matches(input_dir, wanted):
        return f"reused the history in {input_dir} (same customers, dates and seed)", None

    with Progress(TextColumn("generating history"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TextColumn("{task.fields[lines]:,} lines"), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("generate", total=1.0, lines=0)
        result = generate(input_dir, customers=customers, start=start, end=end, seed=seed,
                          progress=lambda fraction, lines: bar.update(task, completed=fraction, lines=lines))
    return (f"{result.customers:,} customers, {result.touchpoint_lines:,} touchpoint lines "
            f"({result.duplicates:,} re-sent duplicates, {result.late_events:,} late, "
            f"{result.malformed:,} malformed), {result.start} to {result.end}"), result


def _history_matches(input_dir: Path, wanted: dict[str, Any]) -> bool:

    try:
        previous = json.loads((input_dir / GROUND_TRUTH_FILE).read_text())["generator"]
        return {k: previous.get(k) for k in wanted} == wanted
    except (OSError, ValueError, KeyError, TypeError):
        return False  # missing or unreadable leftovers: generate again


# --- 4. produce (what `loyalty produce FILE --topic T` does) ----------------------------------------

def produce_history(settings: Settings, input_dir: Path, console: Any) -> tuple[str, dict[str, int]]:
    """Customers, then touchpoints, to their topics; messages sent per topic (one per non-blank
    line, into topics the fresh broker started empty: the consume step knows what to expect)."""

    produced = {}
    for name, topic in ((CUSTOMERS_FILE, settings.topic_customers), (TOUCHPOINTS_FILE, settings.topic_touchpoints)):
        produced[topic] = produce_file(settings, input_dir / name, topic, console)
    return f"customers and touchpoints sent to {settings.bootstrap}", produced


def produce_file(settings: Settings, path: Path, topic: str, console: Any) -> int:
    """One JSON Lines file to ``topic`` with ``loyalty produce``'s progress and summary line;
    messages sent. A message the broker refused fails the step, as it fails the command."""

    topic, _ = topic_to_write(settings, topic)
    _dim(console, f"loyalty produce {path} --topic {topic} (in this process)")
    update, done = produce_progress(path.stat().st_size, console)
    try:
        with path.open("rb") as stream:
            result = produce_lines(settings, read_lines(stream), topic, on_progress=update)
    finally:
        done()
    console.print(result.summary(), markup=False, highlight=False)
    if result.failed:
        raise RuntimeError(f"{result.failed} messages to {topic} were not accepted by the broker")
    return result.sent


# --- 5. consume (what `loyalty consume --until-idle` does) -------------------------------------------

def consume_history(settings: Settings, produced: dict[str, int], console: Any) -> str:
    """Land every produced message. The consumer resumes exactly from its committed offsets, so a
    run that stopped early (for example after a rebalance on a loaded machine) is simply continued;
    the demo checks the lag itself instead of trusting "idle" to mean "caught up"."""
    lag = -1
    for attempt in range(1, CONSUME_ATTEMPTS + 1):
        consume_until_idle(settings, console)
        lag = consumer_lag(settings, produced)
        if lag == 0:
            runs = f" after {attempt} consumer runs" if attempt > 1 else ""
            return f"every message landed or dead-lettered{runs}; landing zone: {settings.landing}"
        console.print(f"[yellow]the consumer stopped with {lag:,} messages not yet landed: "
                      f"resuming from its committed offsets ({attempt}/{CONSUME_ATTEMPTS})[/]")
    raise RuntimeError(f"{lag:,} messages still not landed after {CONSUME_ATTEMPTS} consumer runs")


def consume_until_idle(settings: Settings, console: Any) -> Any:
    """One consumer run until caught up, with ``loyalty consume``'s backlog bar and summary line."""

    _dim(console, "loyalty consume --until-idle (in this process)")
    topics.probe(settings)  # one clear error when no broker answers, not a log flood
    update, done = backlog_progress(console)  # before the consumer's log binds to stderr
    try:
        summary = run_consumer(settings, until_idle=True, on_progress=update)
    finally:
        done()
    console.print(summary.line(), markup=False, highlight=False)
    return summary


def consumer_lag(settings: Settings, produced: dict[str, int]) -> int:
    """Messages of the input topics the landing consumer group has not committed yet."""

    # Reading a group's committed offsets does not join the group (no subscribe, no commit).
    consumer = KafkaConsumer(**settings.kafka_client_config(), group_id=settings.consumer_group,
                             enable_auto_commit=False, client_id="loyalty-demo-lag")
    try:
        lag = 0
        for topic in (settings.topic_touchpoints, settings.topic_customers):
            partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or ())]
            committed = sum(consumer.committed(tp) or 0 for tp in partitions)
            # Tansu can report end offsets short; the produced count is exact for a fresh broker.
            ends = sum(consumer.end_offsets(partitions).values())
            lag += max(max(ends, produced.get(topic, 0)) - committed, 0)
        return lag
    finally:
        consumer.close()


# --- 6. the pipeline DAG (what `loyalty run --as-of DAY` does) --------------------------------------

def run_pipeline(settings: Settings, as_of: dt.date, console: Any) -> str:
    """The pipeline DAG for ``as_of`` with ``dag.test()`` in this process (Airflow home and
    metadata database under the data directory, output in a log file, task names on the console)."""

    _dim(console, f"loyalty run --as-of {as_of} (in this process)")
    log_file = stack.run_log_file(settings)
    outcomes = stack.run_dates(settings, [as_of], log_file=log_file,
                               progress=lambda line: console.print(line, markup=False, highlight=False))
    failure = stack.run_failure(settings, [as_of], outcomes, log_file)
    if failure:
        raise RuntimeError(f"the pipeline {failure}")
    if not settings.warehouse.exists():
        raise RuntimeError(f"the pipeline finished but left no warehouse at {settings.warehouse}")
    return f"pipeline DAG run for {as_of}"


# --- 7. report -----------------------------------------------------------------------------------------

def write_report(settings: Settings) -> Path:

    if not settings.warehouse.exists():
        raise StepUnavailable("no warehouse to report on (the pipeline did not run)")
    return render_report(settings, settings.data_dir / "reports" / REPORT_FILE)
