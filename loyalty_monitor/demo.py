"""The main job: the whole product on a generated history, with one command (``loyalty demo``).

Steps: start the embedded broker, generate a seeded history, produce it to Kafka, land it with the
consumer (``--until-idle``), run the real pipeline DAG for the history's last day (dbt builds the
daily series over the whole history, so alerts carry their true dates; the quality gate, publish and
alert dispatch run as in production), then write the leadership report and print where everything is.

Each pipeline step runs the same ``loyalty`` command a user would type, as a child process, so the
demo proves the documented path (``loyalty produce``, ``loyalty consume --until-idle``,
``loyalty run``) and shows each command's own progress. A command that is not installed is reported
as *unavailable*, never faked.

A rerun never trips over leftovers: the previous demo's broker is stopped, and everything derived
from the broker's (in-memory) data is removed before the new run: landing zone, warehouse, alert
outbox, quality results, reports. The generated history is reused when its parameters are unchanged;
``fresh=True`` deletes it too.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from loyalty_monitor.demo_summary import DemoSummary, StepResult, collect_facts, collect_outputs, print_summary
from loyalty_monitor.settings import Settings

#: Everything under the data directory that a demo run rebuilds from the broker's data.
DERIVED = ("landing", "alerts", "quality", "reports")
INPUT_DIR = "demo-input"
REPORT_FILE = "leadership-report.html"
DEMO_RETRY_DELAY_S = 5
CONSUME_ATTEMPTS = 3


class StepUnavailable(RuntimeError):
    """The part this step needs is not installed in this checkout."""


def _console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _loyalty_command() -> list[str]:
    """The ``loyalty`` executable next to this Python (the venv), else the module."""
    exe = Path(sys.executable).with_name("loyalty")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "loyalty_monitor.cli"]


def available_commands() -> set[str]:
    """Sub-commands the installed ``loyalty`` offers (read from its help, not by importing the CLI)."""
    import re

    done = subprocess.run([*_loyalty_command(), "--help"], capture_output=True, text=True, timeout=120)
    # argparse lists each sub-command as "    name    help text" under the COMMAND metavar.
    return set(re.findall(r"^    (\w[\w-]*)\s", done.stdout, flags=re.MULTILINE))


class Demo:
    def __init__(self, settings: Settings, customers: int, months: int, fresh: bool, seed: int,
                 keep_broker: bool, console: Any | None = None, end: dt.date | None = None):
        if customers < 1 or months < 1:
            raise ValueError("the demo needs at least 1 customer and 1 month of history")
        self.settings = settings
        self.customers, self.months, self.fresh, self.seed = customers, months, fresh, seed
        self.keep_broker = keep_broker
        self.console = console or _console()
        self.summary = DemoSummary()
        self.data_dir = Path(settings.data_dir)
        self.input_dir = self.data_dir / INPUT_DIR
        # The history ends yesterday (a finished day) unless a fixed end is asked for (reproducible runs).
        self.end = end or dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)
        self.start = _months_before(self.end, months) + dt.timedelta(days=1)
        self.env: dict[str, str] = {}
        self.produced: dict[str, int] = {}
        self.commands: set[str] = set()

    # --- plumbing --------------------------------------------------------------------------------
    def step(self, number: int, total: int, name: str, action: Callable[[], str]) -> StepResult:
        self.console.rule(f"[bold]Step {number}/{total} · {name}")
        started = time.monotonic()
        try:
            detail = action() or ""
            result = StepResult(name, "done", time.monotonic() - started, detail)
            self.console.print(f"[green]✓ {name}[/] ({result.seconds:.1f} s) {detail}")
        except StepUnavailable as exc:
            result = StepResult(name, "unavailable", time.monotonic() - started, str(exc))
            self.console.print(f"[yellow]– {name}: unavailable[/]: {exc}")
        except Exception as exc:  # noqa: BLE001 - one line for the user; the demo goes on where it can
            result = StepResult(name, "failed", time.monotonic() - started, f"{type(exc).__name__}: {exc}")
            self.console.print(f"[red]✗ {name} failed[/] ({result.seconds:.1f} s): {exc}")
        self.summary.steps.append(result)
        return result

    def loyalty(self, *args: str) -> None:
        """Run a ``loyalty`` sub-command as the user would; its progress goes to the terminal."""
        if self.commands and args[0] not in self.commands:
            raise StepUnavailable(f"`loyalty {args[0]}` is not part of this installation yet")
        self.console.print(f"[dim]$ loyalty {' '.join(args)}[/]")
        # Child output goes straight to our stdout/stderr, so the user sees its progress live.
        sys.stdout.flush()
        sys.stderr.flush()
        done = subprocess.run([*_loyalty_command(), *args], env=self.env)
        if done.returncode != 0:
            raise RuntimeError(f"`loyalty {' '.join(args)}` exited with {done.returncode} (output above)")

    # --- steps -----------------------------------------------------------------------------------
    def prepare(self) -> str:
        from loyalty_monitor import broker

        removed = []
        if broker.stop(self.settings):
            removed.append("stopped the previous demo's broker")
        targets = [self.data_dir / name for name in DERIVED]
        if not self.settings.landing_url:
            targets.append(Path(self.settings.landing))
        warehouse = self.settings.warehouse
        targets += [warehouse, warehouse.with_name(warehouse.name + ".wal")]
        if self.fresh:
            targets.append(self.input_dir)
        for path in targets:
            if path.is_dir():
                shutil.rmtree(path)
                removed.append(str(path))
            elif path.exists():
                path.unlink()
                removed.append(str(path))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return ("cleaned: " + ", ".join(removed)) if removed else f"data directory {self.data_dir} is clean"

    def start_broker(self) -> str:
        from loyalty_monitor import broker

        state = broker.start(self.settings)
        # Every child command talks to this broker and writes under this data directory.
        self.env = {**os.environ, "LOYALTY_DATA_DIR": str(self.data_dir),
                    "LOYALTY_BOOTSTRAP_SERVERS": state.bootstrap_servers}
        # Someone is watching: retry a failed task after seconds, not the production minute.
        self.env.setdefault("LOYALTY_TASK_RETRY_DELAY_S", str(DEMO_RETRY_DELAY_S))
        self.commands = available_commands()
        return f"Tansu at {state.bootstrap_servers} (in memory), pid {state.pid}"

    def generate(self) -> str:
        try:
            from loyalty_monitor.generator import GROUND_TRUTH_FILE, generate
        except ImportError as exc:
            raise StepUnavailable(f"the generator is not installed ({exc})") from exc
        wanted = {"seed": self.seed, "start": self.start.isoformat(), "end": self.end.isoformat(),
                  "customers": self.customers}
        truth_file = self.input_dir / GROUND_TRUTH_FILE
        if truth_file.exists():
            try:
                previous = json.loads(truth_file.read_text())["generator"]
                if {k: previous.get(k) for k in wanted} == wanted:
                    return f"reused the history in {self.input_dir} (same customers, dates and seed)"
            except (ValueError, KeyError, TypeError):
                pass  # unreadable leftovers: generate again
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("generating history"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TextColumn("{task.fields[lines]:,} lines"), TimeElapsedColumn(),
                      console=self.console, transient=True) as bar:
            task = bar.add_task("generate", total=1.0, lines=0)
            result = generate(self.input_dir, customers=self.customers, start=self.start, end=self.end,
                              seed=self.seed,
                              progress=lambda fraction, lines: bar.update(task, completed=fraction, lines=lines))
        self.summary.facts["generated"] = result
        return (f"{result.customers:,} customers, {result.touchpoint_lines:,} touchpoint lines "
                f"({result.duplicates:,} re-sent duplicates, {result.late_events:,} late, "
                f"{result.malformed:,} malformed), {result.start} to {result.end}")

    def produce(self) -> str:
        from loyalty_monitor.generator import CUSTOMERS_FILE, TOUCHPOINTS_FILE

        for name, topic in ((CUSTOMERS_FILE, self.settings.topic_customers),
                            (TOUCHPOINTS_FILE, self.settings.topic_touchpoints)):
            path = self.input_dir / name
            self.loyalty("produce", str(path), "--topic", topic)
            # One message per non-blank line (the producer's contract), into a topic the fresh broker
            # started empty: the consume step knows exactly how many messages must be landed.
            with path.open("rb") as fh:
                self.produced[topic] = sum(1 for line in fh if line.strip())
        return f"customers and touchpoints sent to {self.env['LOYALTY_BOOTSTRAP_SERVERS']}"

    def consume(self) -> str:
        # The consumer resumes exactly from its committed offsets, so a run that stopped early (for
        # example after a rebalance on a loaded machine) is simply continued; the demo checks the lag
        # itself instead of trusting "idle" to mean "caught up".
        lag = -1
        for attempt in range(1, CONSUME_ATTEMPTS + 1):
            self.loyalty("consume", "--until-idle")
            lag = self.consumer_lag()
            if lag == 0:
                runs = f" after {attempt} consumer runs" if attempt > 1 else ""
                return f"every message landed or dead-lettered{runs}; landing zone: {self.settings.landing}"
            self.console.print(f"[yellow]the consumer stopped with {lag:,} messages not yet landed: "
                               f"resuming from its committed offsets ({attempt}/{CONSUME_ATTEMPTS})[/]")
        raise RuntimeError(f"{lag:,} messages still not landed after {CONSUME_ATTEMPTS} consumer runs")

    def consumer_lag(self) -> int:
        """Messages of the input topics the landing consumer group has not committed yet."""
        from kafka import KafkaConsumer, TopicPartition

        config = dict(self.settings.kafka_client_config(),
                      bootstrap_servers=self.env["LOYALTY_BOOTSTRAP_SERVERS"].split(","))
        topics = (self.settings.topic_touchpoints, self.settings.topic_customers)
        # Reading a group's committed offsets does not join the group (no subscribe, no commit).
        consumer = KafkaConsumer(**config, group_id=self.settings.consumer_group, enable_auto_commit=False,
                                 client_id="loyalty-demo-lag")
        try:
            lag = 0
            for topic in topics:
                partitions = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or ())]
                committed = sum(consumer.committed(tp) or 0 for tp in partitions)
                # Tansu can report end offsets short; the produced count is exact for a fresh broker.
                ends = sum(consumer.end_offsets(partitions).values())
                lag += max(max(ends, self.produced.get(topic, 0)) - committed, 0)
            return lag
        finally:
            consumer.close()

    def run_pipeline(self) -> str:
        self.loyalty("run", "--as-of", self.end.isoformat())
        if not self.settings.warehouse.exists():
            raise RuntimeError(f"the pipeline finished but left no warehouse at {self.settings.warehouse}")
        return f"pipeline DAG run for {self.end}"

    def report(self) -> str:
        from loyalty_monitor.reporting import render_report

        if not self.settings.warehouse.exists():
            raise StepUnavailable("no warehouse to report on (the pipeline did not run)")
        out = render_report(self.settings, self.data_dir / "reports" / REPORT_FILE)
        self.summary.outputs["leadership report"] = out
        return str(out)

    def run(self) -> DemoSummary:
        started = time.monotonic()
        plan: list[tuple[str, Callable[[], str], bool]] = [
            ("clean up leftovers", self.prepare, True),
            ("start the embedded Kafka broker", self.start_broker, True),
            (f"generate {self.customers} customers over {self.months} months", self.generate, True),
            ("produce the history to Kafka", self.produce, True),
            ("consume: land the events as Parquet", self.consume, True),
            (f"run the pipeline DAG (dbt, quality gate, publish, alerts) as of {self.end}",
             self.run_pipeline, True),
            ("write the leadership report", self.report, False),
        ]
        try:
            blocked = ""
            for number, (name, action, needed_later) in enumerate(plan, 1):
                if blocked:
                    self.summary.steps.append(StepResult(name, "skipped", 0.0, f"needs: {blocked}"))
                    self.console.print(f"[dim]- {name}: skipped (needs {blocked})[/]")
                    continue
                result = self.step(number, len(plan), name, action)
                if result.state != "done" and needed_later:
                    blocked = name
            if blocked and self.settings.warehouse.exists():
                # Still show what an earlier run or a partial pipeline left, clearly labelled.
                self.step(len(plan), len(plan), "write the leadership report (from what exists)", self.report)
        finally:
            if not self.keep_broker:
                from loyalty_monitor import broker

                broker.stop(self.settings)
        collect_outputs(self.settings, self.summary)
        collect_facts(self.settings, self.summary)
        print_summary(self.console, self.settings, self.summary, self.months, self.input_dir,
                      time.monotonic() - started)
        return self.summary


def _months_before(day: dt.date, months: int) -> dt.date:
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    month += 1
    for candidate in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, candidate))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def run_demo(settings: Settings, customers: int = 500, months: int = 18, fresh: bool = False, seed: int = 42,
             keep_broker: bool = False, console: Any | None = None, end: dt.date | None = None) -> DemoSummary:
    """Run the whole product end to end on a generated history; see the module doc."""
    return Demo(settings, customers, months, fresh, seed, keep_broker, console, end).run()
