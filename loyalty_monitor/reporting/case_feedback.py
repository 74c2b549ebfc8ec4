"""The report's "precision measured in production" section (issue 15).

Reads ``published.fct_case_feedback_monthly`` (docs/warehouse.md, "Case feedback"): per month and
account manager, the churn-risk cases opened and what the account managers did with them and said
about them, and the customers that churned with or without a case before. Precision is what the
managers' own feedback confirms (cases confirmed real over cases with an outcome), recall the churn
the cases caught. A small chart shows both per month for the whole company. Rendered by
``templates/_case_feedback.html``.

A warehouse without the mart (built before it, or a handmade one) has no such section: ``collect``
returns None.
"""

from __future__ import annotations

from typing import Any

from markupsafe import Markup, escape

from loyalty_monitor.reporting.queries import PUBLISHED, Marts, MissingData, Section

FEEDBACK = f"{PUBLISHED}.fct_case_feedback_monthly"
MONTHS = 12
COUNTS = ("cases_opened", "cases_acknowledged_in_time", "cases_with_dialogue_in_time", "cases_closed_saved",
          "cases_closed_lost", "cases_closed_not_a_risk", "cases_confirmed_real", "cases_false_alarm",
          "cases_with_outcome", "customers_churned", "churned_with_case", "churned_without_case")
#: Erased customers among the churned (counted from the erasure register; 0 on a mart built before).
ERASED = ("churned_tombstoned", "churned_erased")


def collect(con: Any, months: int = MONTHS, until: Any = None) -> Section | None:
    """The section's data (or why there is none); None when the warehouse has no such mart.
    ``until``: the report's last day; months that begin after it are left out."""
    marts = Marts(con)
    if not marts.columns(FEEDBACK):
        return None
    try:
        return Section(data=feedback_table(marts, months, until))
    except MissingData as exc:
        return Section(missing=str(exc))


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {c: sum(int(r.get(c) or 0) for r in rows) for c in COUNTS + ERASED}
    out["precision_rate"] = _ratio(out["cases_confirmed_real"], out["cases_with_outcome"])
    out["recall_rate"] = _ratio(out["churned_with_case"], out["customers_churned"])
    out["acknowledged_share"] = _ratio(out["cases_acknowledged_in_time"], out["cases_opened"])
    out["dialogue_share"] = _ratio(out["cases_with_dialogue_in_time"], out["cases_opened"])
    return out


def feedback_table(marts: Marts, months: int = MONTHS, until: Any = None) -> dict[str, Any]:
    """The last ``months`` months (up to the one ``until`` falls in): one row per month (company),
    one per account manager over them, and the company's totals; precision and recall recomputed
    from the counts (never averaged)."""
    marts.require(FEEDBACK, "month_start", "account_manager_id", *COUNTS)
    bound = "" if until is None else " where month_start <= ?"
    recent = marts.rows(f"select distinct month_start from {FEEDBACK}{bound} order by month_start desc limit ?",
                        ([] if until is None else [until]) + [months])
    if not recent:
        raise MissingData("no churn-risk case and no churned customer yet" if until is None else
                          f"no churn-risk case and no churned customer by {until}")
    first, last = min(r["month_start"] for r in recent), max(r["month_start"] for r in recent)
    rows = marts.rows(f"select * from {FEEDBACK} where month_start between ? and ? "
                      "order by month_start, account_manager_id", [first, last])
    by_month: dict[Any, list[dict[str, Any]]] = {}
    by_manager: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        by_month.setdefault(row["month_start"], []).append(row)
        by_manager.setdefault(row["account_manager_id"], []).append(row)
    month_rows = [{"month": month, **_totals(group)} for month, group in by_month.items()]
    manager_rows = []
    for manager, group in by_manager.items():
        name = next((r.get("account_manager_name") for r in group if r.get("account_manager_name")), None)
        manager_rows.append({"manager": name or manager or "(no account manager)", **_totals(group)})
    manager_rows.sort(key=lambda r: (-r["cases_opened"], str(r["manager"])))
    return {"first_month": first, "last_month": max(by_month), "months": month_rows,
            "managers": manager_rows, "total": _totals(rows), "chart": chart(month_rows)}


def chart(months: list[dict[str, Any]], width: int = 560, height: int = 170) -> Markup:
    """Precision and recall per month as two lines (0-100 %), months without a figure left out;
    inline SVG with its own title, no script."""
    left, right, top, bottom = 36, 12, 12, 34
    inner_w, inner_h = width - left - right, height - top - bottom
    n = len(months)
    x = (lambda i: left + (inner_w * (i + 0.5) / n)) if n else (lambda i: left)
    y = lambda share: top + inner_h * (1 - share)  # noqa: E731
    parts = [f'<svg class="case-feedback-chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
             f'height="{height}" xmlns="http://www.w3.org/2000/svg"><title>Precision and recall of the churn-risk '
             f'cases per month</title>']
    for share in (0, 0.5, 1):
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(share):.1f}" y2="{y(share):.1f}" '
                     f'stroke="#ddd"/><text x="{left - 4}" y="{y(share) + 4:.1f}" font-size="10" '
                     f'text-anchor="end">{share:.0%}</text>')
    for i, m in enumerate(months):
        parts.append(f'<text x="{x(i):.1f}" y="{height - bottom + 14}" font-size="10" text-anchor="middle">'
                     f'{escape(m["month"].strftime("%b %y") if hasattr(m["month"], "strftime") else m["month"])}</text>')
    for key, colour, label, dash in (("precision_rate", "#2c7fb8", "precision", ""),
                                     ("recall_rate", "#d95f0e", "recall", ' stroke-dasharray="5 3"')):
        points = [(x(i), y(m[key])) for i, m in enumerate(months) if m[key] is not None]
        if len(points) > 1:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="'
                         + " ".join(f"{px:.1f},{py:.1f}" for px, py in points) + '"/>')
        parts += [f'<circle class="point-{label}" cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{colour}"/>'
                  for px, py in points]
    legend_y = height - 6
    parts.append(f'<rect x="{left}" y="{legend_y - 8}" width="10" height="3" fill="#2c7fb8"/>'
                 f'<text x="{left + 14}" y="{legend_y - 4}" font-size="10">precision (confirmed real / with an outcome)</text>'
                 f'<rect x="{left + 270}" y="{legend_y - 8}" width="10" height="3" fill="#d95f0e"/>'
                 f'<text x="{left + 284}" y="{legend_y - 4}" font-size="10">recall (churned with a case / churned)</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
