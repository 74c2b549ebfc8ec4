"""Progress of the long streaming steps on a terminal, shared by ``loyalty produce``/``loyalty consume``
and the demo (which runs the same steps in its own process and must show the same thing).

Each function returns ``(update, stop)``: ``update`` is the library function's ``on_progress``
callback, ``stop`` ends the display. On a terminal (stderr) they draw a rich bar on ``console``
(stderr when None); elsewhere ``produce`` prints a line on stderr every few
seconds and ``consume`` shows nothing (its log lines say what it does).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

#: Seconds between two progress lines when stderr is not a terminal.
LINE_EVERY_S = 5.0


def _stderr() -> Console:
    """Bars go to stderr, where the terminal is checked: stdout stays the command's output (a
    piped ``loyalty report | ...`` gets the file name, not escape codes)."""
    return Console(stderr=True)


def produce_progress(total_bytes: int | None, console: Any | None = None
                     ) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """For ``streaming.producer.produce_lines``: ``update(bytes read, messages sent)``."""
    if sys.stderr.isatty():

        progress = Progress(TextColumn("producing"), BarColumn(), TextColumn("{task.fields[sent]:,} messages"),
                            TimeRemainingColumn(), transient=True, console=console or _stderr())
        task = progress.add_task("produce", total=total_bytes, sent=0)
        progress.start()

        def update(position: int, sent: int) -> None:
            progress.update(task, completed=position, sent=sent)
        return update, progress.stop
    state = {"last": time.monotonic()}

    def line(position: int, sent: int) -> None:
        now = time.monotonic()
        if now - state["last"] >= LINE_EVERY_S:
            state["last"] = now
            share = f" ({100 * position / total_bytes:.0f}% of input)" if total_bytes else ""
            print(f"produce: {sent:,} messages sent{share}", file=sys.stderr, flush=True)
    return line, lambda: None


def backlog_progress(console: Any | None = None
                     ) -> tuple[Callable[[int, int | None], None] | None, Callable[[], None]]:
    """For ``streaming.consumer.run_consumer``: a bar of messages landed of those waiting. Start it
    before the consumer, so that the consumer's log lines go above the bar (rich redirects stderr)."""
    if not sys.stderr.isatty():
        return None, lambda: None

    progress = Progress(TextColumn("consuming"), BarColumn(), MofNCompleteColumn(), TextColumn("messages"),
                        TimeRemainingColumn(), transient=True, console=console or _stderr())
    task = progress.add_task("consume", total=None)
    progress.start()

    def update(consumed: int, lag: int | None) -> None:
        progress.update(task, completed=consumed, total=None if lag is None else consumed + lag)
    return update, progress.stop


def steps_progress(what: str, steps: tuple[str, ...], console: Any | None = None
                   ) -> tuple[Callable[[str], None] | None, Callable[[], None]]:
    """For a job of named steps (the report's sections): ``update(step)`` when a step starts. A bar
    with the step's name on a terminal; elsewhere nothing (the job says what it wrote when done)."""
    if not sys.stderr.isatty():
        return None, lambda: None

    progress = Progress(TextColumn(what), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[step]}"),
                        transient=True, console=console or _stderr())
    task = progress.add_task(what, total=len(steps), step="")
    progress.start()
    order = {name: i for i, name in enumerate(steps)}

    def update(step: str) -> None:
        progress.update(task, completed=order.get(step, 0), step=step.replace("_", " "))
    return update, progress.stop
