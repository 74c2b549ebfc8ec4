"""How the report writes numbers, money and days: one set of functions for the sections and the
executive summary, so the same figure reads the same in both."""

from __future__ import annotations

import datetime as dt
import numbers
import re
from typing import Any


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def pct(part: float, whole: float) -> str:
    return f"{part / whole:.0%}" if whole else "–"


def pct1(share: float | None) -> str:
    # Snapped to 9 decimals first: engines differ in a double's last bits (a mean of 0.415 is
    # 0.41500000000000004 on DuckDB and 0.41499999999999998 on Spark), which must not move a figure.
    return "–" if share is None else f"{round(float(share), 9):.0%}"


def signed(n: int) -> str:
    return f"+{n}" if n > 0 else ("±0" if n == 0 else f"−{-n}")


def num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{float(value):,.{digits}f}"


def change(then: Any, now: Any, digits: int = 0) -> str:
    """now - then as the two figures are printed (``num``), so that the three always add up in a
    table: 85.5 and 51.0 print as 86 and 51, and their change as -35, not the -34 that -34.5 prints."""
    if then is None or now is None:
        return "–"
    return f"{float(f'{float(now):.{digits}f}') - float(f'{float(then):.{digits}f}'):,.{digits}f}"


def money(value: Any, currency: Any) -> str:
    if value is None:
        return "–"
    return f"{float(value):,.0f} {currency or ''}".strip()


def money_list(totals: list[dict[str, Any]]) -> str:
    """Amounts in several currencies, never added up: "1,000 EUR; 2,000 DKK"."""
    return "; ".join(money(t["value"], t["currency"]) for t in totals)


def day(value: Any) -> str:
    """A date as the report prints it everywhere: 2026-06-30."""
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


#: An absolute file path (POSIX or Windows) inside a text: the report never shows where files live.
_PATH = re.compile(r"(?:(?<=[\s(\"'=:])|^)(?:/[\w.+@-]+){2,}/?|[A-Za-z]:\\[\w.\\ +@-]+")


def without_paths(text: str) -> str:
    """``text`` with every absolute path replaced by its last part (``…/name``)."""
    return _PATH.sub(lambda m: "…/" + re.split(r"[\\/]", m.group(0).rstrip("/\\"))[-1], text)


def cell(value: Any, column: str = "") -> str:
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
    return without_paths(str(value))
