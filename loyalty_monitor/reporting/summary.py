"""The executive summary: three to five sentences written from the figures of the period.

Every figure comes from the data of the section it summarises (``queries.collect``), never from a
query of its own, so the summary cannot disagree with the sections below it. Each sentence links
to its section, and each figure is a :class:`Figure` with a key: the template marks it
``data-figure="<key>"`` in the summary and at the same figure in the section, which is how the
browser test checks that the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loyalty_monitor.reporting import charts
from loyalty_monitor.reporting import formatting as fmt
from loyalty_monitor.reporting.queries import FOLLOW_UP_DAYS, Section


@dataclass(frozen=True)
class Figure:
    key: str
    text: str

    def __str__(self) -> str:
        return self.text


@dataclass
class Sentence:
    section: str  # the id of the section it summarises (the link target)
    parts: list[Any]  # str or Figure, in reading order

    @property
    def text(self) -> str:
        return "".join(str(p) for p in self.parts)

    @property
    def segments(self) -> list[tuple[str, str | None]]:
        """(text, figure key or None) pairs, for the template."""
        return [(p.text, p.key) if isinstance(p, Figure) else (str(p), None) for p in self.parts]

    def figures(self) -> dict[str, str]:
        return {p.key: p.text for p in self.parts if isinstance(p, Figure)}


def _n(count: int, singular: str, plural: str | None = None) -> str:
    """The noun that goes with ``count``: 1 customer, 2 customers."""
    return singular if count == 1 else (plural or singular + "s")


#: The id of the forecast-audit section (its own template partial); the sentence links there.
FORECAST_SECTION = "forecast"


def executive_summary(context: dict[str, Any]) -> list[Sentence]:
    """The sentences, in the order of the sections; a section without data adds none."""
    sentences = [
        _portfolio(context["portfolio"]),
        _value_at_risk(context["at_risk"]),
        _mover(context.get("movers")),
        _alerts(context["alerts"]),
        _forecast(context.get("forecast_summary")),
    ]
    return [s for s in sentences if s is not None]


def _portfolio(section: Section) -> Sentence | None:
    if not section.ok:
        return None
    p = section.data
    red_now = Figure("red-now", str(p["counts"]["red"]))
    total = Figure("customers", str(p["total"]))
    health = Figure("avg-health", fmt.num(p["avg_health"], 0))
    if p["change"] is None:
        return Sentence("portfolio", [red_now, " of ", total, f" customers are red on {p['as_of']}; average "
                                     "health is ", health, " of 100."])
    then = p["counts"]["red"] - p["change"]["red"]
    verb = "rose from " if p["change"]["red"] > 0 else "fell from " if p["change"]["red"] < 0 else None
    lead = (["Red ", verb, Figure("red-then", str(then)), " to ", red_now] if verb
            else ["Red stayed at ", red_now])
    return Sentence("portfolio", [*lead, " of ", total, f" customers since {fmt.day(p['change_since'])}; "
                                  "average health is ", health, " of 100."])


def _value_at_risk(section: Section) -> Sentence | None:
    if not section.ok or not section.data["customers"]:
        return None
    r = section.data
    if r["converted"] and r["total_reporting"] is not None:
        parts: list[Any] = ["Open alerts (churn-risk cases and action needed) put ",
                            Figure("risk-total", fmt.money(r["total_reporting"], r["reporting_currency"])),
                            " at stake across ", Figure("risk-customers", str(r["customers"])),
                            " " + _n(r["customers"], "customer")]
        if r["rates_date"]:
            parts.append(f" (rates of {r['rates_date']})")
        if r.get("gone_customers") and r.get("gone_reporting") is not None:
            parts += ["; ", Figure("risk-gone-total", fmt.money(r["gone_reporting"], r["reporting_currency"])),
                      " of it with ", Figure("risk-gone-customers", str(r["gone_customers"])),
                      " " + _n(r["gone_customers"], "customer") + " who may already have left (gone silent: "
                      "a win-back rather than a retention)"]
    else:  # no reporting currency in the warehouse: one total per currency, none added up
        parts = ["Open alerts (churn-risk cases and action needed) put ",
                 Figure("risk-total", fmt.money_list(r["totals"])),
                 " at stake across ", Figure("risk-customers", str(r["customers"])),
                 " " + _n(r["customers"], "customer")]
    rows = r["rows"]
    now = r["now_counts"]
    if len(rows) > 1 and any(now.values()):
        parts += [f"; of the {len(rows)} largest, ", Figure("risk-red-now", str(now["red"])),
                  f" {_n(now['red'], 'is', 'are')} red today"]
        if now["green"]:
            parts += [" and ", Figure("risk-green-now", str(now["green"])), " green again"]
        if r["stale"]:
            parts += [", and ", Figure("risk-stale", str(r["stale"])),
                      f" {_n(r['stale'], 'has', 'have')} been open for {r['stale_days']} days or more"]
    parts.append(".")
    return Sentence("at-risk", parts)


def _mover(section: Section | None) -> Sentence | None:
    if section is None or not section.ok or not section.data["rows"]:
        return None
    m = section.data["rows"][0]
    return Sentence("movers", [
        "The biggest mover is ", Figure("mover-name", str(m["customer_name"])), ": health fell from ",
        Figure("mover-then", fmt.num(m["health_then"], 0)), " to ", Figure("mover-now", fmt.num(m["health_now"], 0)),
        f" since {fmt.day(section.data['since'])}, now ", Figure("mover-status", charts.status_label(str(m["status_now"]))),
        "."])


def _alerts(section: Section) -> Sentence | None:
    if not section.ok or not section.data["raised"]:
        return None
    a = section.data
    parts: list[Any] = [Figure("alerts-raised", str(a["raised"])),
                        f" {_n(a['raised'], 'alert was', 'alerts were')} raised in the period"]
    kinds = a.get("by_kind")
    if kinds:  # churn-risk cases and action-needed alerts (complaints, dunning) are not the same thing
        parts += [" (", Figure("alerts-risk-cases", str(kinds["risk_case"])),
                  f" churn-risk {_n(kinds['risk_case'], 'case')}, ",
                  Figure("alerts-action-needed", str(kinds["action_needed"])), " action needed)"]
    parts += ["; ", Figure("alerts-followed", str(a["followed"])),
                        f" {_n(a['followed'], 'was', 'were')} followed by a two-way dialogue within "
                        f"{a.get('follow_up_days', FOLLOW_UP_DAYS)} days"]
    if a["share"] is not None:
        parts += [" (", Figure("alerts-share", fmt.pct1(a["share"])), " of those old enough to judge)"]
    parts.append(".")
    return Sentence("alerts", parts)


def _forecast(section: Section | None) -> Sentence | None:
    """Only when the forecast audit is published (fct_forecast_audit)."""
    if section is None or not section.ok:
        return None
    f = section.data
    parts: list[Any] = []
    quarter = f.get("quarter")
    if quarter:
        currency = quarter.get("currency")
        # fct_forecast_audit's quarter row: the pipeline open on the quarter's first day and expected
        # to close by its end, not what is still open today (the forecast section shows both).
        parts += ["The pipeline open at the start of the quarter "
                  f"({fmt.day(quarter['period_start'])}) and expected to close by its end was forecast at ",
                  Figure("forecast-stated", fmt.money(quarter["stated"], currency)),
                  " as stated; audited against each manager's track record it was ",
                  Figure("forecast-audited", fmt.money(quarter["audited"], currency))]
    record = f.get("track_record")
    if record:
        parts += ["; over the track record" if parts else "Over the track record",
                  ", stated win probabilities averaged ", Figure("forecast-stated-mean", fmt.pct1(record["stated_mean"])),
                  " against ", Figure("forecast-realised", fmt.pct1(record["realised_rate"])), " of ",
                  str(record["closed_deals"]), f" closed {_n(record['closed_deals'], 'deal')} won"]
        if record.get("judgement"):
            parts += [" (", str(record["judgement"]), ")"]
    parts.append(".")
    return Sentence(FORECAST_SECTION, parts)


def plain_text(sentences: list[Sentence]) -> str:
    """The summary as plain text (the demo and mails)."""
    return " ".join(s.text for s in sentences)


__all__ = ["Figure", "Sentence", "executive_summary", "plain_text", "FORECAST_SECTION"]
