"""Logging, configured here and only here: readable on a terminal, one JSON object per line elsewhere.

Two kinds of log share one look:

* **Event logs** (:class:`EventLog`): a service's own structured events, such as the landing
  consumer's ``started``/``batch_committed``/``stopped`` lines, with fields. Each writes to the
  stream it is given (stderr by default) through a structlog logger of its own, so tests and several
  consumers in one process each read their own lines.
* **Library logs**: everything that uses the standard library's ``logging`` (this project's modules,
  Kafka clients, dbt, Great Expectations) and ``structlog.get_logger()``. :func:`configure`, called
  by the command-line entry points (``loyalty``, ``python -m streaming.consumer``), puts one handler
  with structlog's ``ProcessorFormatter`` on the root logger, so these render like the event logs.
  Library code never calls it: inside Airflow, Airflow owns logging (its task logs capture this
  project's stdlib loggers as before).

The format is the setting ``log_format`` (``LOYALTY_LOG_FORMAT``): ``console`` (aligned, coloured when
the stream is a terminal), ``json`` (one JSON object per line: ``ts``, ``level``, ``component`` or
``logger``, ``event``, then the fields), or ``auto`` (the default): console when the stream is a
terminal, JSON otherwise (files, pipes, containers, CI).

This module imports nothing of the project.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any, Literal, TextIO

import structlog

LogFormat = Literal["auto", "console", "json"]

#: Keys every JSON line starts with, in this order (the rest follow as given).
LEADING_KEYS = ("ts", "level", "component", "logger", "event")

#: Marks the root handler :func:`configure` installed (replaced, not doubled, by a second call).
_HANDLER_MARK = "_loyalty_monitor_handler"


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def resolve_format(fmt: str, stream: Any) -> Literal["console", "json"]:
    """``auto`` → ``console`` on a terminal, ``json`` elsewhere; the others as given."""
    if fmt not in ("auto", "console", "json"):
        raise ValueError(f"log format {fmt!r}: expected auto, console or json")
    if fmt == "auto":
        return "console" if _is_tty(stream) else "json"
    return fmt  # type: ignore[return-value]


def _leading_keys_first(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    ordered = {k: event_dict.pop(k) for k in LEADING_KEYS if k in event_dict}
    ordered.update(event_dict)
    return ordered


def _timestamper() -> structlog.processors.TimeStamper:
    return structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts")


def renderers(fmt: str, stream: Any) -> list[Any]:
    """The last processors of a chain: how an event dict becomes a line on ``stream``."""
    if resolve_format(fmt, stream) == "console":
        return [structlog.dev.ConsoleRenderer(colors=_is_tty(stream), timestamp_key="ts")]
    return [structlog.processors.format_exc_info, _leading_keys_first,
            structlog.processors.JSONRenderer(serializer=json.dumps, default=str)]


class EventLog:
    """A service's structured event log on a text stream (stderr by default).

    ``log("batch_committed", messages=120, seconds=0.4)``; ``level`` is ``info`` (default),
    ``debug``, ``warning`` or ``error``. ``fmt`` as the ``log_format`` setting: with ``auto`` a
    terminal gets the console rendering and anything else JSON lines (what tests parse)."""

    def __init__(self, stream: TextIO | None = None, component: str = "consumer", fmt: LogFormat = "auto"):
        # Bound now, not at each call: the CLI's progress bar swaps sys.stderr while it runs.
        self.stream = stream or sys.stderr
        self.component = component
        self.format = resolve_format(fmt, self.stream)
        self._logger = structlog.wrap_logger(
            structlog.PrintLogger(self.stream),
            processors=[structlog.processors.add_log_level, _timestamper(), *renderers(self.format, self.stream)],
            wrapper_class=structlog.BoundLogger, context_class=dict, cache_logger_on_first_use=False,
        ).bind(component=component)

    def __call__(self, event: str, level: str = "info", **fields: Any) -> None:
        getattr(self._logger, level)(event, **fields)


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (a test's capture, the CLI's progress
    bar redirect), never to a stream that was replaced and closed since :func:`configure`."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure(fmt: LogFormat = "auto", level: int | str = logging.WARNING, stream: TextIO | None = None) -> None:
    """Route the standard library's logging and ``structlog.get_logger()`` to one handler on ``stream``.

    For command-line entry points only (see the module docstring). ``level`` is the root logger's:
    WARNING by default, which is what Python printed before any configuration, so commands do
    not get chattier; only the rendering changes. A second call replaces the first."""
    handler = logging.StreamHandler(stream) if stream is not None else _CurrentStderr()
    stream = stream or sys.stderr
    shared: list[Any] = [structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name, _timestamper()]
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderers(fmt, stream)],
    ))
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not getattr(h, _HANDLER_MARK, False)]
    root.addHandler(handler)
    root.setLevel(level)
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.stdlib.filter_by_level, *shared,
                    structlog.stdlib.PositionalArgumentsFormatter(),
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str | None = None) -> Any:
    """A structlog logger; rendered by :func:`configure`'s handler (or by Airflow's, in a task)."""
    return structlog.get_logger(name)
