"""Progress of the long streaming steps on a terminal, shared by ``loyalty produce``/``loyalty consume``
and the demo (which runs the same steps in its own process and must show the same thing).

Each function returns ``(update, stop)``: ``update`` is the library function's ``on_progress``
callback, ``stop`` ends the display. On a terminal (stderr) they draw a rich bar on ``console``
(rich's default console when None); elsewhere ``produce`` prints a line on stderr every few
seconds and ``consume`` shows nothing (its log lines say what it does).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

#: Seconds between two progress lines when stderr is not a terminal.
LINE_EVERY_S = 5.0


def produce_progress(total_bytes: int | None, console: Any | None = None
                     ) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """For ``streaming.producer.produce_lines``: ``update(bytes read, messages sent)``."""
    if sys.stderr.isatty():

        progress = Progress(TextColumn("producing"), BarColumn(), TextColumn("{task.fields[sent]:,} messages"),
                            TimeRemainingColumn(), transient=True, console=console)
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
                        TimeRemainingColumn(), transient=True, console=console)
    task = progress.add_task("consume", total=None)
    progress.start()

    def update(consumed: int, lag: int | None) -> None:
        progress.update(task, completed=consumed, total=None if lag is None else consumed + lag)
    return update, progress.stop
