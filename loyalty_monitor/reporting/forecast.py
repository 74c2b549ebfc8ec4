"""The report's forecast-honesty section (article 004: the pipeline audited like the accounts).

Reads the published forecast marts (``fct_forecast_calibration``, ``fct_forecast_audit``,
``fct_open_pipeline``; docs/warehouse.md "Forecast honesty") and draws the calibration charts:
stated probability across, realised win rate up, the diagonal where a calibrated forecaster's
bands lie. The company's chart, then one small chart per account manager; a band is drawn only
from the marts' minimum number of forecasts, and a manager with too few closed deals is said to be
too few to judge instead of being charted as biased. Rendered by ``templates/_forecast.html``.

A warehouse without the forecast marts (built before them, or a handmade one) has no such section
at all: ``collect`` returns None. Once they are there, the section degrades like the others: a
missing column or no closed deal yet gives "No data" with the reason.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from markupsafe import Markup, escape

from loyalty_monitor.reporting import charts
from loyalty_monitor.reporting.queries import PUBLISHED, Marts, MissingData, Section

CALIBRATION = f"{PUBLISHED}.fct_forecast_calibration"
AUDIT = f"{PUBLISHED}.fct_forecast_audit"
PIPELINE = f"{PUBLISHED}.fct_open_pipeline"
CUSTOMERS = f"{PUBLISHED}.dim_customers"
TOP_SILENT = 10
JUDGEMENT_WORDS = {
    "optimistic": "optimistic ▲", "pessimistic": "pessimistic ▼", "calibrated": "calibrated ●",
    "unclear": "unclear (not yet significant)", "too few to judge": "too few to judge",
}


def collect(con: Any) -> Section | None:
    """The section's data (or why there is none); None when the warehouse has no forecast audit."""
    marts = Marts(con)
    if not marts.columns(CALIBRATION):
        return None
    try:
        return Section(data=_forecast(marts))
    except MissingData as exc:
        return Section(missing=str(exc))


def _forecast(marts: Marts) -> dict[str, Any]:
    marts.require(AUDIT, "scope", "account_manager_id", "period_type", "period_start", "period_end",
                  "closed_deals", "optimism_bias", "brier_score", "reliability", "judgement")
    marts.require(CALIBRATION, "scope", "account_manager_id", "period_type", "band_number", "forecasts",
                  "stated_mean", "realised_rate", "enough_forecasts")
    audit = marts.rows(f"select * from {AUDIT} where period_type = 'track_record' "
                       f"order by scope, account_manager_id")
    if not audit:
        raise MissingData("no closed opportunities yet: the forecast audit judges deals once they close")
    names = _manager_names(marts)
    bands = marts.rows(f"select scope, account_manager_id, band_number, band_low, band_high, forecasts, "
                       f"stated_mean, realised_rate, enough_forecasts from {CALIBRATION} "
                       f"where period_type = 'track_record' order by scope, account_manager_id, band_number")
    by_group: dict[tuple[str, Any], list[dict[str, Any]]] = {}
    for b in bands:
        by_group.setdefault((b["scope"], b["account_manager_id"]), []).append(b)
    company = next((r for r in audit if r["scope"] == "company"), None)
    managers = [dict(r, name=names.get(r["account_manager_id"], r["account_manager_id"]),
                     verdict=JUDGEMENT_WORDS.get(r["judgement"], r["judgement"]))
                for r in audit if r["scope"] == "manager"]
    managers.sort(key=lambda r: (r["judgement"] == "too few to judge", -(r["optimism_bias"] or 0)))
    small = [calibration_chart(by_group.get(("manager", r["account_manager_id"]), []),
                               f"{r['name']}", r, width=230) for r in managers]
    return {
        "period_start": audit[0]["period_start"], "period_end": audit[0]["period_end"],
        "company": company,
        "company_chart": calibration_chart(by_group.get(("company", None), []), "The company",
                                           company, width=420) if company else None,
        "managers": managers,
        "small_charts": small,
        "pipeline": _pipeline(marts, names),
    }


def _manager_names(marts: Marts) -> dict[str, str]:
    if "account_manager_name" not in marts.columns(CUSTOMERS):
        return {}
    return {r["account_manager_id"]: r["account_manager_name"] for r in marts.rows(
        f"select distinct account_manager_id, account_manager_name from {CUSTOMERS} "
        f"where account_manager_id is not null and account_manager_name is not null")}


def _pipeline(marts: Marts, names: dict[str, str]) -> Section:
    """This quarter's open pipeline as stated and by track record, and the silent opportunities,
    each with its account manager's name (``names``; the id only when master data has no name)."""
    try:
        marts.require(PIPELINE, "as_of_date", "in_current_quarter", "is_overdue", "stated_value_reporting",
                      "track_record_value_reporting", "reporting_currency", "without_dialogue")
    except MissingData as exc:
        return Section(missing=str(exc))
    totals = marts.rows(
        f"select max(as_of_date) as as_of, count(*) as deals, "
        f"sum(case when is_overdue then 1 else 0 end) as overdue, "
        f"sum(case when is_overdue then amount_reporting else 0 end) as overdue_total, "
        f"sum(stated_value_reporting) as stated, sum(track_record_value_reporting) as track_record, "
        f"sum(amount_reporting) as total, max(reporting_currency) as currency "
        f"from {PIPELINE} where in_current_quarter")[0]
    as_of = marts.scalar(f"select max(as_of_date) from {PIPELINE}")
    silent = marts.rows(
        f"select opportunity_id, customer_id, customer_name, account_manager_id, pipeline_stage, "
        f"stated_probability, amount, currency, amount_reporting, expected_close_date, days_since_dialogue, "
        f"silence_words from {PIPELINE} where without_dialogue "
        f"order by amount_reporting desc nulls last, opportunity_id limit {TOP_SILENT}")
    for row in silent:
        row["account_manager_name"] = names.get(row["account_manager_id"], row["account_manager_id"])
    silent_count = marts.scalar(f"select count(*) from {PIPELINE} where without_dialogue")
    quarter_end = None
    if as_of is not None:
        end_month = 3 * ((as_of.month - 1) // 3) + 3
        quarter_end = dt.date(as_of.year + end_month // 12, end_month % 12 + 1, 1) - dt.timedelta(days=1)
    return Section(data={"as_of": as_of, "quarter": _quarter_label(as_of), "quarter_end": quarter_end,
                         "totals": totals, "silent": silent, "silent_count": silent_count or 0})


def _quarter_label(day: dt.date | None) -> str:
    return f"Q{(day.month - 1) // 3 + 1} {day.year}" if day else ""


# --- the calibration chart --------------------------------------------------------------------------

def calibration_chart(bands: list[dict[str, Any]], title: str, audit: dict[str, Any] | None,
                      width: int = 420) -> Markup:
    """Stated probability (x) against the realised win rate (y) per band, with the diagonal.

    A point per band with enough forecasts (its size grows with them); the band's range is marked
    on the x axis. Without enough closed deals the chart says "too few to judge" and shows no points.
    """
    small = width < 300
    left, top = (30, 22) if small else (46, 26)
    size = width - left - (16 if small else 20)
    height = top + size + (34 if small else 48)
    font = "10" if small else "11"

    def px(v: float) -> float:
        return left + size * min(max(v, 0.0), 1.0)

    def py(v: float) -> float:
        return top + size - size * min(max(v, 0.0), 1.0)

    body = [charts._text(left, 14 if small else 16, title, font_size="12" if small else "13", font_weight="700",
                         fill=charts.INK),
            charts._rect(left, top, size, size, fill="#fafafa", stroke="#bbbbbb")]
    for i in range(1, 5):  # light grid at 20 % steps
        v = i / 5
        body.append(f'<line x1="{px(v):.1f}" x2="{px(v):.1f}" y1="{top}" y2="{top + size}" stroke="#e4e4e4"/>')
        body.append(f'<line x1="{left}" x2="{left + size}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#e4e4e4"/>')
    body.append(f'<line x1="{px(0):.1f}" y1="{py(0):.1f}" x2="{px(1):.1f}" y2="{py(1):.1f}" '
                f'stroke="{charts.MUTED}" stroke-dasharray="5 4" stroke-width="1.2"/>')
    if not small:
        body.append(charts._text(px(0.97), py(0.97) + 16, "calibrated", font_size="10", fill=charts.MUTED,
                                 text_anchor="end"))
    for v in (0, 0.5, 1):
        label = f"{v:.0%}"
        body.append(charts._text(px(v), top + size + 12, label, font_size=font, fill=charts.MUTED,
                                 text_anchor="middle"))
        body.append(charts._text(left - 4, py(v) + 4, label, font_size=font, fill=charts.MUTED, text_anchor="end"))
    body.append(charts._text(left + size / 2, top + size + (24 if small else 28), "stated →",
                             font_size=font, fill=charts.INK, text_anchor="middle"))
    if not small:
        body.append(f'<text x="12" y="{top + size / 2:.1f}" font-size="11" fill="{charts.INK}" '
                    f'text-anchor="middle" transform="rotate(-90 12 {top + size / 2:.1f})">won (realised) →</text>')
    judged = audit is not None and audit.get("judgement") != "too few to judge"
    shown = [b for b in bands if b.get("enough_forecasts") and b.get("stated_mean") is not None]
    desc_parts = []
    if judged:
        pts = []
        most = max([b["forecasts"] for b in shown] or [1])
        for b in shown:
            x, y = px(float(b["stated_mean"])), py(float(b["realised_rate"]))
            pts.append((x, y))
            r = (2.5 if small else 3.5) + (3 if small else 5) * (b["forecasts"] / most) ** 0.5
            tip = (f"band {float(b['band_low']):.0%}-{float(b['band_high']):.0%}: stated {float(b['stated_mean']):.0%}, "
                   f"won {float(b['realised_rate']):.0%} of {b['forecasts']} forecasts")
            desc_parts.append(tip)
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{charts.BLUE}" fill-opacity="0.8" '
                        f'stroke="#ffffff" stroke-width="1"><title>{escape(tip)}</title></circle>')
        if len(pts) > 1:
            path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f} {y:.1f}" for i, (x, y) in enumerate(pts))
            body.insert(-len(pts), f'<path d="{path}" fill="none" stroke="{charts.BLUE}" stroke-width="1.5"/>')
        bias = audit.get("optimism_bias")
        if bias is not None:
            words = f"{audit.get('judgement', '')}: {'+' if bias >= 0 else '−'}{abs(bias) * 100:.0f} pts"
            body.append(charts._text(left + 6, top + 14, words, font_size=font, font_weight="600", fill=charts.INK))
    else:
        n = (audit or {}).get("closed_deals") or 0
        body.append(charts._text(left + size / 2, top + size / 2 - 6, "too few to judge", font_size="12",
                                 font_weight="600", fill=charts.INK, text_anchor="middle"))
        body.append(charts._text(left + size / 2, top + size / 2 + 10, f"{n} closed deals", font_size=font,
                                 fill=charts.MUTED, text_anchor="middle"))
        desc_parts.append(f"too few to judge: {n} closed deals")
    return charts._svg(width, height, body, f"Calibration, {title}: stated win probability against the "
                       "realised win rate", "; ".join(desc_parts))
