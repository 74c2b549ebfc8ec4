"""Render the leadership report: one self-contained HTML file (inline CSS and SVG, no scripts).

Jinja2 with autoescape: customer names, notes and drivers come from events and master data and are
always shown as text. The file is written to a temporary name and renamed, so a reader (or the
weekly mail) never sees half a report.
"""

from __future__ import annotations

import datetime as dt
import os
import numbers
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from loyalty_monitor.reporting import charts, queries
from loyalty_monitor.settings import Settings

TEMPLATES = Path(__file__).resolve().parent / "templates"


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
        pct=_pct, pct1=_pct1, signed=_signed, num=_num, money=_money, cell=_cell, is_number=_is_number,
        follow_up_days=queries.FOLLOW_UP_DAYS,
    )
    return env


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def _pct(part: float, whole: float) -> str:
    return f"{part / whole:.0%}" if whole else "–"


def _pct1(share: float | None) -> str:
    return "–" if share is None else f"{share:.0%}"


def _signed(n: int) -> str:
    return f"+{n}" if n > 0 else ("±0" if n == 0 else f"−{-n}")


def _num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{float(value):,.{digits}f}"


def _money(value: Any, currency: Any) -> str:
    if value is None:
        return "–"
    return f"{float(value):,.0f} {currency or ''}".strip()


def _cell(value: Any, column: str = "") -> str:
    """A generic mart value for tables whose columns the report does not know in advance."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if any(w in column for w in ("share", "ratio", "rate", "pct")) and -1.5 <= value <= 1.5:
            return f"{value:.0%}"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def connect_read_only(settings: Settings):
    """The warehouse file opened read-only; a clear error if it is missing or locked by a writer."""
    import duckdb

    path = settings.warehouse
    if not path.exists():
        raise ReportError(f"no warehouse at {path}: run the pipeline first (`loyalty run` or `loyalty demo`)")
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise ReportError(f"cannot open the warehouse {path} read-only: {exc}") from exc


def build_context(settings: Settings, period_start: dt.date | None = None,
                  period_end: dt.date | None = None) -> dict[str, Any]:
    con = connect_read_only(settings)
    try:
        context = queries.collect(con, period_start, period_end, lambda: _gate_run_records(settings),
                                  strong_min=_strong_loyalty(settings))
    finally:
        con.close()
    context.update(
        defs=charts.defs(), source=str(settings.warehouse),
        generated_at=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
    return context


def _strong_loyalty(settings: Settings) -> float | None:
    """Where strong loyalty starts (scoring.yml), to draw the loyalty matrix's quadrant lines."""
    from loyalty_monitor.scoring import ScoringError, load_scoring

    try:
        return float(load_scoring(settings.scoring_file)["loyalty"]["strong_min"])
    except (ScoringError, KeyError, TypeError, ValueError):
        return None


def _gate_run_records(settings: Settings) -> list[dict[str, Any]]:
    """The quality gate's own record of its runs (imported late: it loads Great Expectations)."""
    try:
        from expectations.gate import quality_runs
    except ImportError:
        return []
    return quality_runs(settings)


def render_html(context: dict[str, Any]) -> str:
    return _environment().get_template("report.html").render(**context)


def render_report(settings: Settings, out_path: str | os.PathLike[str],
                  period_start: dt.date | None = None, period_end: dt.date | None = None) -> Path:
    """Write the leadership report for the period (default: 12 weeks up to the latest as-of date)."""
    out = Path(out_path)
    html = render_html(build_context(settings, period_start, period_end))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, out)
    return out
