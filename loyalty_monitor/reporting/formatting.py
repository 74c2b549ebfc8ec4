"""How the report writes numbers, money and days: one set of functions for the sections and the
executive summary, so the same figure reads the same in both."""

from __future__ import annotations

import datetime as dt
import numbers
import re
from decimal import ROUND_HALF_UP, Decimal
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


def _rounded(value: Any, digits: int) -> Decimal:
    # half away from zero, as the warehouse rounds (round_half_away), not Python's half to even:
    # 85.5 printed as 86 beside a change of -34.5 printed as -34 did not add up; snapped to 9
    # decimals first, as pct1
    return Decimal(repr(round(float(value), 9))).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)


def num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{_rounded(value, digits):,.{digits}f}"


def change(then: Any, now: Any, digits: int = 0) -> str:
    """now - then as the two figures are printed, so that the three always add up in a table."""
    if then is None or now is None:
        return "–"
    return f"{_rounded(now, digits) - _rounded(then, digits):,.{digits}f}"


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
