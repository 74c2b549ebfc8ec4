"""Why a churn-risk case opened: one customer's drift probability over time and what moved it.

``loyalty explain CUSTOMER [--as-of DATE] [--days N] [--html FILE]`` reads the drift model's daily
rows (``build.int_drift_days``) and the customer's cases (``build.fct_churn_risk_cases``) and shows
the probability day by day, the evidence each stream added since the drift most likely began (the
first day of the window that carries most evidence), and each stream's usual rate against what happened: in the terminal, or as a
self-contained HTML page with an SVG chart.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field
from typing import Any

from loyalty_core.dates import parse_as_of
from loyalty_core.erasure_register import erased_subjects, pseudonym, subject_key
from loyalty_core.settings import Settings
from loyalty_monitor import warehouse
from loyalty_monitor.drift import mixture, population
from loyalty_monitor.scoring import load_scoring

#: How far back the chart goes by default.
DEFAULT_DAYS = 180
#: Up to this many days the terminal chart has a row a day; beyond, a row a week.
DAILY_ROWS_UP_TO = 42
#: Colours of the streams in the HTML chart (in config order, cycling): one per stream of the
#: default config/scoring.yml (seven), so no two lines of the chart share a colour.
COLOURS = ("#1f77b4", "#9467bd", "#2ca02c", "#d62728", "#ff7f0e", "#8c564b", "#17becf", "#e377c2")
#: The share streams (dbt_project/macros/drift_streams.sql, kind 'share') and, in words, the touches
#: each is a share of (as the case drivers word them, int_case_openings.sql). Their usual rate is a
#: share of those touches, not a count per day, so it is told as a percentage; every other stream
#: counts events per day. tests/loyalty_monitor/drift/test_drift_model.py checks this against the macro.
SHARE_STREAMS = {"senior": "sales and management contacts", "friction": "contacts",
                 "unresolved": "service visits", "detractors": "survey answers", "promoters": "survey answers"}


@dataclass
class StreamStory:
    name: str
    label: str
    usual_per_90_days: float   # the customer's usual rate, per 90 portfolio-normal days
    seen_since_restart: int    # events since the drift most likely began
    expected_since_restart: float
    evidence_since_restart: float  # nats this stream added since then (positive: toward drift)
    # a share stream (SHARE_STREAMS): usual_share is its usual share of base_label touches, and
    # base_since_restart those touches since the drift most likely began; None for a rate stream
    usual_share: float | None = None
    base_since_restart: int | None = None
    base_label: str | None = None

    def seen_text(self, since: dt.date | None) -> str:
        """What happened against what was usual, in words: "3 of 6 contacts since ..., about 0.9
        expected; usually 9 %" for a share, "2 since ..., about 15.8 expected; usually 14.8 per 90
        days" for a rate (as the case drivers say it)."""
        if self.usual_share is not None:
            return (f"{self.seen_since_restart} of {self.base_since_restart} {self.base_label} since {since}, "
                    f"about {self.expected_since_restart:.1f} expected; usually {self.usual_share:.0%}")
        if self.expected_since_restart == 0 and self.usual_per_90_days > 0:
            # the model expects nothing of a stream the customer hardly ever used
            # (drift.min_baseline_events): "about 0.0 expected; usually 0.7" read as a contradiction
            return (f"{self.seen_since_restart} since {since}; not judged: too few in the customer's own "
                    f"history (its usual {self.usual_per_90_days:.1f} per 90 days is mostly its segment's)")
        return (f"{self.seen_since_restart} since {since}, about {self.expected_since_restart:.1f} "
                f"expected; usually {self.usual_per_90_days:.1f} per 90 days")

    def usually(self) -> str:
        if self.usual_share is not None:
            return f"{self.usual_share:.0%} of {self.base_label}"
        return f"{self.usual_per_90_days:.1f} per 90 days"


@dataclass
class Explanation:
    customer_id: str
    as_of: dt.date
    days: list[dt.date] = field(default_factory=list)
    probability: list[float] = field(default_factory=list)
    evidence: list[float] = field(default_factory=list)          # evidence (mixture over windows), nats
    contributions: dict[str, list[float]] = field(default_factory=dict)  # per stream, nats in the window that carries most evidence
    streams: list[StreamStory] = field(default_factory=list)
    restart_day: dt.date | None = None
    cases: list[dict[str, Any]] = field(default_factory=list)
    open_probability: float = 0.0
    close_probability: float = 0.0
    alive: dict[str, dict[str, Any]] = field(default_factory=dict)  # BG/NBD P(alive) by stream
    # how the portfolio's drifts show, as weighed on the last day: "all" together and each stream
    # alone (loyalty_monitor/drift/mixture.py); mixture_from: the day that fit took effect (None:
    # the configured weights)
    mixture: dict[str, float] = field(default_factory=dict)
    mixture_from: dt.date | None = None


class ExplainError(LookupError):
    """The customer has no drift-model rows (unknown, erased, or the warehouse is not built)."""


def explain(settings: Settings, customer_id: str, as_of: dt.date | str | None = None,
            days: int = DEFAULT_DAYS) -> Explanation:
    """The drift model's story of ``customer_id`` over the ``days`` up to ``as_of`` (default: latest)."""
    scoring = load_scoring(settings.scoring_file)
    streams = list(scoring["drift"]["streams"].items())
    names = [name for name, _ in streams]
    latest = warehouse.query(settings, "select max(as_of_date) as d from build.int_drift_days where customer_id = ?",
                             [customer_id])[0]["d"]
    if latest is None:
        erased = _erased_through(settings, customer_id)
        if erased is not None:
            raise ExplainError(f"customer {customer_id!r} was erased (through {erased:%Y-%m-%d %H:%M} UTC; "
                               "`loyalty erasures`): nothing of it is kept to explain")
        raise ExplainError(f"no drift-model rows for customer {customer_id!r}: check the id (`loyalty alerts list`), "
                           "or build the warehouse first (`loyalty warehouse build`)")
    day = parse_as_of(as_of) if as_of else latest
    columns = ", ".join(f"n_{n}, usual_rate_{n}, expected_{n}, since_restart_milli_{n}"
                        + (f", base_{n}" if n in SHARE_STREAMS else "") for n in names)
    rows = warehouse.query(
        settings,
        f"select as_of_date, drift_probability, evidence_milli, restart_date, mixture_effective_from, {columns} "
        "from build.int_drift_days where customer_id = ? and as_of_date between ? and ? order by as_of_date",
        [customer_id, day - dt.timedelta(days=days - 1), day])
    if not rows:
        first = warehouse.query(settings, "select min(as_of_date) as d from build.int_drift_days where customer_id = ?",
                                [customer_id])[0]["d"]
        raise ExplainError(f"customer {customer_id!r} has no drift-model rows between "
                           f"{day - dt.timedelta(days=days - 1)} and {day}: its rows run from {first} to {latest}; "
                           "choose an --as-of in that range")
    # a budget or a target precision derives the opening probability each run: the one the cases used
    derived = None
    if warehouse.query(settings, "select count(*) as n from information_schema.columns where table_schema = 'build' "
                       "and table_name = 'int_risk_case_spans' and column_name = 'opening_probability'")[0]["n"]:
        derived = warehouse.query(settings, "select max(opening_probability) as p from build.int_risk_case_spans")[0]["p"]
    out = Explanation(customer_id=customer_id, as_of=rows[-1]["as_of_date"],
                      open_probability=float(scoring["risk_cases"]["open_probability"] if derived is None else derived),
                      close_probability=float(scoring["risk_cases"]["close_probability"]))
    out.contributions = {n: [] for n in names}
    for row in rows:
        out.days.append(row["as_of_date"])
        out.probability.append(float(row["drift_probability"]))
        out.evidence.append(row["evidence_milli"] / 1000.0)
        for n in names:
            # null until the customer has been watched long enough for the shortest window
            out.contributions[n].append((row[f"since_restart_milli_{n}"] or 0) / 1000.0)
    # the current drift window: the rows since the day the drift most likely began
    last = rows[-1]
    out.restart_day = last["restart_date"] or last["as_of_date"]
    window = [r for r in rows if r["as_of_date"] > out.restart_day]
    if out.restart_day + dt.timedelta(days=1) < rows[0]["as_of_date"]:
        # the drift began before the days shown (--days): its counts still start on the day after it
        window = warehouse.query(
            settings, f"select as_of_date, {columns} from build.int_drift_days where customer_id = ? "
            "and as_of_date > ? and as_of_date < ? order by as_of_date",
            [customer_id, out.restart_day, rows[0]["as_of_date"]]) + window
    for name, spec in streams:
        usual = float(last[f"usual_rate_{name}"] or 0.0)
        share = name in SHARE_STREAMS
        out.streams.append(StreamStory(
            name=name, label=spec["label"],
            usual_per_90_days=usual * 90,
            seen_since_restart=int(sum(r[f"n_{name}"] for r in window)),
            expected_since_restart=float(sum(r[f"expected_{name}"] for r in window)),
            evidence_since_restart=(last[f"since_restart_milli_{name}"] or 0) / 1000.0,
            usual_share=usual if share else None,
            base_since_restart=int(sum(r[f"base_{name}"] or 0 for r in window)) if share else None,
            base_label=SHARE_STREAMS.get(name)))
    out.streams.sort(key=lambda s: -s.evidence_since_restart)
    out.alive = population.p_alive_of(settings, customer_id)
    out.mixture_from = last["mixture_effective_from"]
    if out.mixture_from is not None:
        out.mixture = {r["alternative"]: float(r["weight"]) for r in warehouse.query(
            settings, f"select alternative, weight from {mixture.WEIGHTS_TABLE} where effective_from = ?",
            [out.mixture_from])}
    else:
        out.mixture = mixture.configured_weights(scoring["drift"])
    out.cases = warehouse.query(
        settings,
        "select opened_on, closed_on, case_status, probability_at_open, severity, drivers from "
        "build.fct_churn_risk_cases where customer_id = ? and opened_on <= ? order by opened_on",
        [customer_id, out.as_of])
    for case in out.cases:
        # as of a past day, a case closed later was open on it: not "closed <a later day>"
        case["closed_later_on"] = None
        if case["closed_on"] is not None and case["closed_on"] > out.as_of:
            case["closed_later_on"], case["closed_on"] = case["closed_on"], None
    return out


def _case_state(c: dict[str, Any], as_of: dt.date) -> str:
    if c["closed_on"]:
        return f"closed {c['closed_on']}"
    if c.get("closed_later_on"):
        return f"open on {as_of} (closed later, on {c['closed_later_on']})"
    return "open"


def _direction(evidence: float) -> str:
    if round(evidence, 1) == 0:
        return "no evidence either way"
    return "toward drift" if evidence > 0 else "against drift"


def _erased_through(settings: Settings, customer_id: str) -> dt.datetime | None:
    """When the customer was erased, from the erasure register (None: never; no key is created).
    A register with erasures but its key lost is an error saying to restore the key, not "never"."""
    erased = erased_subjects(settings)
    if not erased:
        return None
    return erased.get(pseudonym(subject_key(settings), customer_id))


def _share(value: float | None) -> str:
    return "unknown" if value is None else f"{float(value):4.0%}"


def _bar(value: float, width: int = 40) -> str:
    filled = max(0, min(width, round(value * width)))
    return "#" * filled + "." * (width - filled)


def _chart_rows(e: Explanation, weeks: int) -> tuple[str, list[tuple[dt.date, float, str]]]:
    """The terminal chart's rows (day, probability, mark) and what a row is: every day of a short
    span; of a longer one each week's highest day (a peak or a case's opening day never falls
    between two rows), then the last day shown."""
    opened = {c["opened_on"] for c in e.cases if c["opened_on"]}

    def mark(row_day: dt.date, days: list[dt.date]) -> str:
        on = sorted(opened & set(days))
        if not on:
            return ""
        return " <- case opened" + ("" if on == [row_day] else " " + ", ".join(map(str, on)))

    if len(e.days) <= DAILY_ROWS_UP_TO:
        return "one row a day", [(day, p, mark(day, [day])) for day, p in zip(e.days, e.probability)]
    by_week: dict[dt.date, list[tuple[dt.date, float]]] = {}
    for day, p in zip(e.days, e.probability):
        by_week.setdefault(day - dt.timedelta(days=day.weekday()), []).append((day, p))
    rows = []
    for week_days in list(by_week.values())[-weeks:]:
        day, p = max(week_days, key=lambda dp: (dp[1], dp[0]))  # the highest, the later of equals
        rows.append((day, p, mark(day, [d for d, _ in week_days])))
    if rows[-1][0] != e.days[-1]:
        rows.append((e.days[-1], e.probability[-1], " (the last day shown)"))
    return "one row a week: its highest day", rows


def _alive_heading(e: Explanation) -> str:
    """The P(alive) section's date, and a word when it is later than the day explained."""
    alive_day = next(iter(e.alive.values()))["as_of_date"]
    later = alive_day is not None and e.as_of is not None and alive_day > e.as_of
    return f"as of {alive_day}" + (", after the day explained: only the latest refresh is kept" if later else "")


def render_text(e: Explanation, weeks: int = 26) -> str:
    """The story in a terminal: the probability as bars (every day, or each week's highest day),
    then what moved it."""
    what, rows = _chart_rows(e, weeks)
    lines = [f"Customer {e.customer_id}: probability of drifting toward churn, as of {e.as_of}",
             f"(a case opens at {e.open_probability:.0%} and closes below {e.close_probability:.0%}; {what})", ""]
    lines += [f"  {day}  {_bar(p)} {p:4.0%}{mark}" for day, p, mark in rows]
    lines += ["", (f"Evidence now {e.evidence[-1]:+.1f} (a log-likelihood ratio: each +0.7 doubles the odds of "
                   f"a drift), building since {e.restart_day}. What moved it:")]
    for s in e.streams:
        lines.append(f"  {s.label:<50} {s.evidence_since_restart:+5.1f} ({_direction(s.evidence_since_restart)}): "
                     f"{s.seen_text(e.restart_day)}")
    if e.mixture:
        source = f"learned, weights from {e.mixture_from}" if e.mixture_from else "configured weights"
        labels = {s.name: s.label for s in e.streams}
        alone = sorted(((w, n) for n, w in e.mixture.items() if n != mixture.ALL), reverse=True)[:3]
        lines += ["", f"How this portfolio's drifts show ({source}): all streams together "
                  f"{_share(e.mixture.get(mixture.ALL))}; alone: "
                  + ", ".join(f"{labels.get(n, n)} {_share(w)}" for w, n in alone)]
    if e.alive:
        lines += ["", f"Still there at all? BG/NBD probability alive ({_alive_heading(e)}):"]
        for stream, row in e.alive.items():
            expected = row[f"expected_next_{population.HORIZON_DAYS}_days"]
            lines.append(f"  {stream:<10} {_share(row['p_alive'])} ({row['repeat_days']} repeat days, "
                         f"the last {row['days_since_last']} days ago; "
                         f"{'about ' + format(float(expected), '.1f') if expected is not None else 'unknown'} "
                         f"expected in the next {population.HORIZON_DAYS} days)")
    if e.cases:
        lines += ["", "Cases:"]
        for c in e.cases:
            until = _case_state(c, e.as_of)
            lines.append(f"  opened {c['opened_on']} at {float(c['probability_at_open']):.0%} ({c['severity']}), "
                         f"{until}: {c['drivers'] or ''}")
    return "\n".join(lines)


def render_html(e: Explanation) -> str:
    """A self-contained page: the probability line over the days, the streams' evidence as lines
    below it, and the table of what moved it."""
    width, top_h, low_h, left = 900, 220, 200, 50
    n = len(e.days)

    def x(i: int) -> float:
        return left + (width - left - 10) * (i / max(1, n - 1))

    def path(values: list[float], y0: float, h: float, lo: float, hi: float) -> str:
        span = (hi - lo) or 1.0
        return " ".join(f"{'M' if i == 0 else 'L'}{x(i):.1f},{y0 + h - (v - lo) / span * h:.1f}"
                        for i, v in enumerate(values))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top_h + low_h + 60}" '
             f'role="img" aria-label="drift probability and evidence by stream">']
    for level, label in ((e.open_probability, "case opens"), (e.close_probability, "case closes")):
        y = 10 + top_h - level * top_h
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#999" '
                     f'stroke-dasharray="4 3"/><text x="{width - 12}" y="{y - 3:.1f}" font-size="11" '
                     f'text-anchor="end" fill="#666">{label} ({level:.0%})</text>')
    parts.append(f'<path d="{path(e.probability, 10, top_h, 0.0, 1.0)}" fill="none" stroke="#c0392b" stroke-width="2"/>')
    # the last day as a dot with its value: a line of one day (a new customer) draws nothing
    last_y = 10 + top_h - e.probability[-1] * top_h
    parts.append(f'<circle class="latest" cx="{x(n - 1):.1f}" cy="{last_y:.1f}" r="3.5" fill="#c0392b">'
                 f'<title>{e.days[-1]}: {e.probability[-1]:.0%}</title></circle>'
                 f'<text x="{x(n - 1) - 6:.1f}" y="{last_y - 6:.1f}" font-size="11" text-anchor="end" '
                 f'fill="#c0392b">{e.probability[-1]:.0%}</text>')
    parts.append(f'<text x="4" y="20" font-size="12">100%</text><text x="4" y="{10 + top_h}" font-size="12">0%</text>')
    all_values = [v for values in e.contributions.values() for v in values] or [0.0]
    lo, hi = min(0.0, min(all_values)), max(1.0, max(all_values))
    y0 = top_h + 40
    zero_y = y0 + low_h - (0 - lo) / (hi - lo) * low_h
    parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{zero_y:.1f}" y2="{zero_y:.1f}" stroke="#ccc"/>')
    # the scale of the lower chart: its top, its zero line and (when below zero) its bottom, in nats
    ticks = [(hi, y0 + 10), (0.0, zero_y + 4)] + ([(lo, y0 + low_h)] if lo < 0 and zero_y < y0 + low_h - 12 else [])
    parts.extend(f'<text class="evidence-scale" x="{left - 6}" y="{y:.1f}" font-size="12" text-anchor="end">'
                 f'{f"{value:+.1f}" if value else "0"}</text>' for value, y in ticks)
    for k, (name, values) in enumerate(e.contributions.items()):
        colour = COLOURS[k % len(COLOURS)]
        parts.append(f'<path d="{path(values, y0, low_h, lo, hi)}" fill="none" stroke="{colour}" stroke-width="1.5">'
                     f'<title>{html.escape(name)}</title></path>')
    parts.append(f'<text x="{left}" y="{top_h + 30}" font-size="12">evidence per stream since the drift most '
                 f'likely began (nats; above 0: toward drift)</text>')
    parts.append(f'<text x="{left}" y="{top_h + low_h + 55}" font-size="11">{e.days[0]}</text>'
                 f'<text x="{width - 10}" y="{top_h + low_h + 55}" font-size="11" text-anchor="end">{e.days[-1]}</text>')
    parts.append("</svg>")
    legend = "".join(f'<span style="color:{COLOURS[k % len(COLOURS)]}">&#9632; {html.escape(name)}</span> '
                     for k, name in enumerate(e.contributions))
    rows = "".join(
        f"<tr><td>{html.escape(s.label)}</td><td>{s.evidence_since_restart:+.1f}</td><td>{s.seen_since_restart}"
        f"{'' if s.base_since_restart is None else f' of {s.base_since_restart} ' + html.escape(str(s.base_label))}</td>"
        f"<td>{s.expected_since_restart:.1f}</td><td>{html.escape(s.usually())}</td></tr>" for s in e.streams)
    cases = "".join(
        f"<li>opened {c['opened_on']} at {float(c['probability_at_open']):.0%} ({html.escape(str(c['severity']))}), "
        f"{_case_state(c, e.as_of)}: {html.escape(str(c['drivers'] or ''))}</li>"
        for c in e.cases) or "<li>none</li>"
    alive = "".join(f"<li>{html.escape(stream)}: {_share(row['p_alive'])} ({row['repeat_days']} repeat days, "
                    f"the last {row['days_since_last']} days ago)</li>" for stream, row in e.alive.items()) \
        or "<li>not fitted yet</li>"
    alive_day = f" ({_alive_heading(e)})" if e.alive else ""
    labels = {s.name: s.label for s in e.streams}
    weights = "".join(f"<li>{'all streams together' if n == mixture.ALL else html.escape(labels.get(n, n)) + ' alone'}: "
                      f"{_share(w)}</li>" for n, w in sorted(e.mixture.items(), key=lambda item: -item[1]))
    source = f"learned, weights from {e.mixture_from}" if e.mixture_from else "configured weights"
    title = f"Why {e.customer_id}: drift probability as of {e.as_of}"
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title></head>"
            f"<body style=\"font-family:sans-serif;max-width:960px\"><h1>{html.escape(title)}</h1>"
            f"{''.join(parts)}<p>{legend}</p>"
            f"<h2>What moved it since {e.restart_day}</h2><table border=\"1\" cellpadding=\"4\" "
            f"style=\"border-collapse:collapse\"><tr><th>stream</th><th>evidence (nats)</th><th>seen</th>"
            f"<th>expected</th><th>usually</th></tr>{rows}</table>"
            f"<h2>How this portfolio's drifts show ({source})</h2><ul>{weights}</ul>"
            f"<h2>Still there at all? BG/NBD probability alive{alive_day}</h2><ul>{alive}</ul>"
            f"<h2>Cases</h2><ul>{cases}</ul></body></html>")
