"""Render the leadership report: one self-contained HTML file (inline CSS and SVG, no scripts).

Jinja2 with autoescape: customer names, notes and drivers come from events and master data and are
always shown as text. The file is written to a temporary name and renamed, so a reader (or the
weekly mail) never sees half a report.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, Callable

import duckdb
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from loyalty_core.files import replace_text, require_regular_target
from loyalty_core.marts import MartsError, connect_duckdb, engine_of, open_marts
from loyalty_core.settings import Settings
from loyalty_monitor.reporting import case_feedback, charts, forecast, queries, summary
from loyalty_monitor.reporting import formatting as fmt
from loyalty_monitor.scoring import ScoringError, load_scoring

TEMPLATES = Path(__file__).resolve().parent / "templates"
#: The written report's permission bits: readable by all, written by its owner only.
def report_mode() -> int:
    """The new report's mode: what the process's umask gives a new file (0600 under the CLI's 077:
    it names customers), never the mode of a file it replaces (a world-writable old report would
    let anyone change what leadership reads)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


class ReportError(RuntimeError):
    """The report cannot be built at all (no warehouse, unreadable file); sections degrade otherwise."""


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)),
                      autoescape=select_autoescape(["html"], default=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(
        status_label=charts.status_label, status_bar=charts.status_bar, trend_chart=charts.trend_chart,
        status_mix_rows=charts.status_mix_rows, paired_share_bars=charts.paired_share_bars,
        count_bars=charts.count_bars, metric_bars=charts.metric_bars, palette=charts.PALETTE, loyalty_scatter=charts.loyalty_scatter,
        plan_bullets=charts.plan_bullets, follow_up_bar=charts.follow_up_bar,
        pct=fmt.pct, pct1=fmt.pct1, signed=fmt.signed, num=fmt.num, change=fmt.change, money=fmt.money, money_list=fmt.money_list, cell=fmt.cell,
        is_number=fmt.is_number, day=fmt.day, no_paths=fmt.without_paths, Figure=summary.Figure,
        follow_up_days=queries.FOLLOW_UP_DAYS,
    )
    return env


def connect_read_only(settings: Settings):
    """The warehouse opened read-only; a clear error if it is missing or locked by a writer.

    DuckDB: the file itself. PostgreSQL and Spark: a ``loyalty_core.marts`` reader, which runs
    the same portable SQL (``?`` parameters, ``information_schema``) with the same ``execute``."""


    if engine_of(settings) != "duckdb":
        try:
            return open_marts(settings)
        except MartsError as exc:
            raise ReportError(str(exc)) from exc
    path = settings.warehouse
    if not path.exists():
        raise ReportError(f"no warehouse at {path}: run the pipeline first (`loyalty run` or `loyalty demo`)")
    try:
        return connect_duckdb(settings, read_only=True)
    except (MartsError, duckdb.Error) as exc:
        raise ReportError(f"cannot open the warehouse {path} read-only: {exc}") from exc


#: The steps of a report, in order, as ``on_progress`` names them: each section read, then the page.
STEPS = (*queries.SECTIONS, "forecast audit", "case feedback", "rendering")


def build_context(settings: Settings, period_start: dt.date | None = None,
                  period_end: dt.date | None = None,
                  on_progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """What the template renders; ``on_progress(step)`` before each of ``STEPS`` but the last."""
    say = on_progress or (lambda step: None)
    con = connect_read_only(settings)
    try:
        scoring = _scoring(settings)
        context = queries.collect(con, period_start, period_end,
                                  strong_min=_strong_loyalty(scoring), reporting=_reporting(scoring),
                                  follow_up_days=settings.report_follow_up_days, on_section=say)
        say("forecast audit")
        audit = forecast.collect(con)  # forecast honesty (templates/_forecast.html), when built
        if audit is not None:
            context["forecast"] = audit
        say("case feedback")
        # precision in production (templates/_case_feedback.html), up to the month the report ends in
        feedback = case_feedback.collect(con, until=context["period_end"])
        if feedback is not None:
            context["case_feedback"] = feedback
    finally:
        con.close()
    # The report names no file and no directory: it is mailed and printed, and a path tells a
    # reader nothing but where our servers keep their data.
    context.update(
        defs=charts.defs(), summary=summary.executive_summary(context),
        generated_at=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
    return context


def _scoring(settings: Settings) -> dict[str, Any]:

    try:
        return load_scoring(settings.scoring_file)
    except ScoringError:
        return {}


def _strong_loyalty(scoring: dict[str, Any]) -> float | None:
    """Where strong loyalty starts (scoring.yml), to draw the loyalty matrix's quadrant lines."""
    try:
        return float(scoring["loyalty"]["strong_min"])
    except (KeyError, TypeError, ValueError):
        return None


def _reporting(scoring: dict[str, Any]) -> dict[str, Any]:
    """The reporting currency and the day its rates are from (scoring.yml ``reporting``)."""
    section = scoring.get("reporting") or {}
    return {"currency": section.get("currency"), "rates_date": section.get("rates_date")}


def render_html(context: dict[str, Any]) -> str:
    return _environment().get_template("report.html").render(**context)


def render_report(settings: Settings, out_path: str | os.PathLike[str],
                  period_start: dt.date | None = None, period_end: dt.date | None = None,
                  on_progress: Callable[[str], None] | None = None) -> Path:
    """Write the leadership report for the period (default: 12 weeks up to the latest as-of date).
    ``on_progress(step)`` is called before each of ``STEPS`` (a progress display).

    ``out_path`` must be a regular file or not exist: ``/dev/full`` or a FIFO is refused (it would
    be replaced by the report). The file gets the mode a new file gets (``report_mode``), not the
    mode of a file it replaces."""
    out = Path(out_path)
    require_regular_target(out)  # before the work, not after it
    context = build_context(settings, period_start, period_end, on_progress)
    if on_progress:
        on_progress("rendering")
    html = render_html(context)
    out.parent.mkdir(parents=True, exist_ok=True)
    replace_text(out, html, mode=report_mode())
    return out
