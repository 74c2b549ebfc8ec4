"""Logging (loyalty_core/logs.py): JSON lines off a terminal, console lines on one, stdlib routed through structlog."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest
import structlog

from loyalty_core import logs
from loyalty_core.settings import load_settings


@pytest.fixture()
def restore_logging():
    """configure() changes the process's root logger and structlog: put both back."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_an_event_log_off_a_terminal_is_json_lines_with_the_fields():
    out = io.StringIO()
    log = logs.EventLog(out, component="consumer")
    log("batch_committed", messages=3, stages={"write": 0.25})
    log("commit_failed", level="warning", reason="rebalance")
    first, second = [json.loads(line) for line in out.getvalue().splitlines()]
    assert list(first)[:4] == ["ts", "level", "component", "event"]
    assert (first["level"], first["component"], first["event"], first["messages"], first["stages"]) == (
        "info", "consumer", "batch_committed", 3, {"write": 0.25})
    assert first["ts"].endswith("Z")
    assert (second["level"], second["reason"]) == ("warning", "rebalance")


def test_an_event_log_on_a_terminal_is_readable_and_json_can_be_forced():
    term = _Terminal()
    logs.EventLog(term)("started", group="loyalty-landing")
    line = term.getvalue()
    assert "\x1b[" in line  # coloured on a terminal
    text = re.sub(r"\x1b\[[0-9;]*m", "", line)
    assert "started" in text and "group=loyalty-landing" in text and not text.startswith("{")

    forced = _Terminal()
    logs.EventLog(forced, fmt="json")("started", group="g")
    assert json.loads(forced.getvalue())["group"] == "g"

    plain = io.StringIO()
    logs.EventLog(plain, fmt="console")("started")
    assert "started" in plain.getvalue() and "\x1b[" not in plain.getvalue()  # no colour codes in a file


def test_the_format_is_a_setting(monkeypatch):
    monkeypatch.setenv("LOYALTY_LOG_FORMAT", "json")
    assert load_settings().log_format == "json"
    monkeypatch.setenv("LOYALTY_LOG_FORMAT", "xml")
    with pytest.raises(Exception, match="LOYALTY_LOG_FORMAT"):
        load_settings()


def test_configure_routes_standard_logging_and_structlog_through_one_handler(restore_logging):
    out = io.StringIO()
    logs.configure("json", stream=out)
    logs.configure("json", stream=out)  # a second call replaces the handler, lines are not doubled
    logging.getLogger("loyalty_monitor.test").warning("run %s failed", "r1", extra={"dag": "loyalty"})
    logging.getLogger("loyalty_monitor.test").info("below the WARNING default: not shown")
    logs.get_logger("loyalty_monitor.test").warning("structured", n=1)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["logger"], r["level"], r["event"]) for r in lines] == [
        ("loyalty_monitor.test", "warning", "run r1 failed"), ("loyalty_monitor.test", "warning", "structured")]
    assert lines[0]["dag"] == "loyalty" and lines[1]["n"] == 1


def test_configure_without_a_stream_follows_sys_stderr(monkeypatch, restore_logging):
    first = io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    logs.configure("json")
    second = io.StringIO()  # e.g. the next test's capture, after the first stream was closed
    monkeypatch.setattr("sys.stderr", second)
    first.close()
    logging.getLogger("loyalty_monitor.test").warning("still shown")
    assert json.loads(second.getvalue())["event"] == "still shown"
