"""The main job: the whole product on a generated history, with one command (``loyalty demo``).

Steps (``loyalty_monitor.demo_steps``): start the embedded broker, generate a seeded history, produce
it to Kafka, land it with the consumer until it is caught up, run the real pipeline DAG for the
history's last day (dbt builds the daily series over the whole history, so alerts carry their true
dates; the quality gate, publish and alert dispatch run as in production), then write the leadership
report and print where everything is (``loyalty_monitor.demo_summary``).

Each step calls, in this process, the library functions the documented commands call
(``loyalty produce``, ``loyalty consume --until-idle``, ``loyalty run``), with the same progress and
result lines; it never starts the ``loyalty`` command. The demo's own settings (its broker's address,
a short retry delay for pipeline tasks) are a :class:`Settings` passed to every step; the pipeline
run hands them to the DAG and puts this process back as it was afterwards (``stack.run_dates``).
A step whose part is not installed is reported as *unavailable*, never faked.

A rerun never trips over leftovers: the previous demo's broker is stopped, and everything derived
from the broker's (in-memory) data is removed before the new run: landing zone, warehouse, alert
outbox, quality results, reports. The generated history is reused when its parameters are unchanged;
``fresh=True`` deletes it too.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from rich.console import Console

from loyalty_core.settings import Settings
from loyalty_monitor import broker
from loyalty_monitor import demo_steps as steps
from loyalty_monitor.demo_steps import (  # noqa: F401
    CONSUME_ATTEMPTS,
    DEMO_RETRY_DELAY_S,
    DERIVED,
    INPUT_DIR,
    REPORT_FILE,
    StepUnavailable,
)
from loyalty_monitor.demo_summary import DemoSummary, StepResult, collect_facts, collect_outputs, print_summary


def _console():

    return Console(highlight=False, soft_wrap=True)


@dataclass(frozen=True)
class Step:
    name: str
    action: Callable[[], str]
    #: A later step needs this one: if it does not finish, those are skipped.
    needed_later: bool = True


@dataclass
class Demo:
    """One demo run: its parameters, the settings the steps share, and what they produced."""

    settings: Settings
    customers: int
    months: int
    fresh: bool
    seed: int
    keep_broker: bool
    console: Any = None
    #: The last day of the history and the pipeline's as-of date (default: yesterday, UTC).
    end: dt.date | None = None
    summary: DemoSummary = field(default_factory=DemoSummary)
    #: Messages produced per topic, for the consume step's lag check.
    produced: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.customers < 1 or self.months < 1:
            raise ValueError("the demo needs at least 1 customer and 1 month of history")
        self.console = self.console or _console()
        self.end = self.end or dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=1)

    @property
    def start(self) -> dt.date:
        return _months_before(self.end, self.months) + dt.timedelta(days=1)

    @property
    def input_dir(self) -> Path:
        return Path(self.settings.data_dir) / INPUT_DIR

    # --- the plan ------------------------------------------------------------------------------------
    def plan(self) -> list[Step]:
        return [
            Step("clean up leftovers", self.clean_up),
            Step("start the embedded Kafka broker", self.start_broker),
            Step(f"generate {self.customers} customers over {self.months} months", self.generate),
            Step("produce the history to Kafka", self.produce),
            Step("consume: land the events as Parquet", self.consume),
            Step(f"run the pipeline DAG (dbt, quality gate, publish, alerts) as of {self.end}", self.run_pipeline),
            Step("write the leadership report", self.report, needed_later=False),
        ]

    def clean_up(self) -> str:
        return steps.clean_up(self.settings, self.input_dir, self.fresh)

    def start_broker(self) -> str:
        self.settings, detail = steps.start_broker(self.settings)
        return detail

    def generate(self) -> str:
        detail, result = steps.generate_history(self.input_dir, self.customers, self.start, self.end, self.seed,
                                                self.console)
        if result is not None:
            self.summary.facts["generated"] = result
        return detail

    def produce(self) -> str:
        detail, self.produced = steps.produce_history(self.settings, self.input_dir, self.console)
        return detail

    def consume(self) -> str:
        return steps.consume_history(self.settings, self.produced, self.console)

    def run_pipeline(self) -> str:
        return steps.run_pipeline(self.settings, self.end, self.console)

    def report(self) -> str:
        out = steps.write_report(self.settings)
        self.summary.outputs["leadership report"] = out
        return str(out)

    # --- running -----------------------------------------------------------------------------------
    def step(self, number: int, total: int, name: str, action: Callable[[], str]) -> StepResult:
        """Run one step under its banner; its result (a failure is a result: the demo goes on where it can)."""
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

    def run_plan(self, plan: list[Step]) -> None:
        """Each step in order; once a step that later ones need did not finish, those are skipped."""
        blocked = ""
        for number, item in enumerate(plan, 1):
            if blocked:
                self.summary.steps.append(StepResult(item.name, "skipped", 0.0, f"needs: {blocked}"))
                self.console.print(f"[dim]- {item.name}: skipped (needs {blocked})[/]")
                continue
            result = self.step(number, len(plan), item.name, item.action)
            if result.state != "done" and item.needed_later:
                blocked = item.name
        if blocked and self.settings.warehouse.exists():
            # Still show what an earlier run or a partial pipeline left, clearly labelled.
            self.step(len(plan), len(plan), "write the leadership report (from what exists)", self.report)

    def stop_broker(self) -> None:
        if not self.keep_broker:
            broker.stop(self.settings)
            # the embedded broker keeps its topics in memory: say what went with it
            self.console.print("[dim]broker stopped; its topics, the dead letters included, were in memory only "
                               "(`loyalty demo --keep-broker` keeps them for `loyalty dead-letters list`)[/]")

    def run(self) -> DemoSummary:
        started = time.monotonic()
        try:
            self.run_plan(self.plan())
        finally:
            self.stop_broker()
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
