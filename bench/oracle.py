"""The oracle: the honest ceiling of churn-drift detection on one generated history.

The oracle is the same kind of detector as the warehouse's drift model (``int_drift_days``): per
customer, a CUSUM of Poisson log-likelihood ratios of "drifting" against "as usual", summed over
streams of touches, that opens an alert when it crosses a threshold. What it has that the model has
not is **perfect knowledge of the parameters** (``ground_truth.json`` and the generator's
constants). It knows each customer's true rates and the direction and size of a drift; it does
**not** know who drifts, nor when.

Streams. Every valid, de-duplicated touchpoint of ``touchpoints.jsonl`` is mapped back to the
generator process that made it (sales dialogue, reception, service visit, order, dunning, complaint,
survey, management, other; a dunning episode counts once, by its first reminder; a follow-up call
after an order is sales dialogue). With ``roles`` the sales dialogue and survey answers are split by
contact role (executive or decision maker against the rest: ``role_model``, the model's ``senior``
stream); with ``marks`` a touch is further split by what the generator draws from the drift level:
unanswered sales and switchboard calls, unresolved service visits, complaint severity, and NPS
class (detractor 0-6, passive, promoter 9-10) of survey answers; the model sees these as friction,
detractors and promoters. Each split of a Poisson stream by independent marks is again Poisson,
so the streams add up without counting a touch twice. ``Oracle(roles=False, marks=False)`` is the
plain per-process oracle (volumes only).

As usual. A stream's expected count on a day is the customer's true healthy rate (1 /
``healthy_mean_gap_days``; the sales dialogue adds the true follow-ups after orders,
``follow_up_share / order gap``) times its healthy mark share, times the true factor of the day:
the seasonal intensity ``1 - seasonal_thinning(day, seasonality)`` and the generator's weekday
schedule (``schedule()``: a non-order touch that falls on a weekend moves to the Monday, so Monday
carries three days of them and weekends none; 70 % of weekend orders move to the Monday, 30 % stay),
times the start-up transient of a memoryless process (its first touch is drawn uniformly within its
first mean gap: ``1 + t / gap`` while ``t < gap`` days from the customer's first day).

Drifting. A stream's rate in a drift is its rate at drift progress ``f`` averaged over a drift:
``f`` uniform in [0, 1] for the linear shapes (so a process runs at its mid-drift rate,
``1 + (drift_rate_at_churn - 1) * 0.5``; orders average in their stop: fade's ``0.6 - 0.67 *
0.6**2 / 2 = 0.48`` of healthy), ``f = 1`` for ``sudden`` (the full ratio at once). The marks follow
the generator's draws at ``f`` (friction ``friction_at_churn * f``: the champion's drift reaches
only 0.4). The ratio drifting / as usual is floored at ``RATIO_FLOOR`` (0.1), so one touch of a
process that "stops" cannot wipe the evidence out.

Detector. Per customer from its first day (``added_at`` or the history's start): the day's
log-likelihood ratio ``sum over streams of n ln(rho) + (1 - rho) mu`` (``mu``: expected count as usual,
``rho``: drifting / as usual; no cap), the CUSUM ``S = max(0, S + llr)``, and an alert on the first day
on or after the 60-day warm-up on which ``S`` reaches the threshold; the detector re-arms once ``S`` is
back at 0. Because it is a threshold detector, any number of alerted customers can be had from it:
``Oracle.threshold_for(n)`` gives the threshold at which ``n`` customers get an alert, so a model can be
compared with the oracle at an equal number of alerted customers (``bench.bench_alert_quality``).

What it does not know, and where a model could in principle do better: a customer's own NPS level
(ground truth does not carry it: the oracle uses the segment's, so a customer with a low NPS of its
own looks like friction), the escalation of dunning, loyal customers' rough patches (friction
without a departure: the false alarms of every detector). And the generator draws a touch's gap at
the previous touch, so a drift reaches a slow process one gap late: measured on fade histories the
observed rates in a drift are milder than the nominal ones (orders 0.57 of healthy, not 0.48;
executive meetings about 1.0, not 0.57; complaints about 1.4, not 2.5): the oracle's alternative is
the nominal one, as the generator's parameters state it.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Callable, Iterable

import numpy as np

PROCESSES = ("sales", "reception", "service", "order", "dunning", "complaint", "survey", "management", "other")
# processes whose contacts' role is drawn by the generator's role(): split into senior / rest
ROLE_PROCESSES = ("sales", "survey")
SENIOR_ROLES = ("executive", "decision_maker")
# per process, the marks a touch carries (the generator draws them from the drift/friction level)
MARKS = {"sales": ("", "unanswered"), "reception": ("answered", "unanswered"),
         "service": ("resolved", "unresolved"), "complaint": ("low", "medium", "high"),
         "survey": ("detractor", "passive", "promoter")}
RATIO_FLOOR = 0.1
WARMUP_DAYS = 60
# the generator's day schedule: expected share of a day's own touches plus the weekend's moved ones
WEEKDAY_FACTOR = {"other": (3.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0),
                  "order": (1.0 + 2 * 0.7, 1.0, 1.0, 1.0, 1.0, 0.3, 0.3)}
# The generator's draws (loyalty_monitor/generator.py), mirrored here:
FOLLOW_UP_FALL_AT_CHURN = 0.8              # orders followed up: follow_up_share * (1 - 0.8 f)
SALES_CALL_SHARE, FOLLOW_UP_CALL_SHARE = 0.43, 0.6   # sales(): etype call
NPS_SEGMENT_MEAN = {"key": 8.3, "growth": 7.9, "standard": 7.4}  # _make_customers(): nps_base mean
NPS_BASE_SD, NPS_ANSWER_SD, NPS_FALL_AT_CHURN = 0.8, 1.3, 5.5    # survey(): gauss(nps_base - 5.5 f, 1.3)
DETRACTOR_MAX, PROMOTER_MIN = 6, 9
_F_GRID = [(i + 0.5) / 400 for i in range(400)]


# --- events ------------------------------------------------------------------------------------

def process_of(record: dict) -> str | None:
    """The generator process that made a touchpoint (None: not counted, e.g. a dunning escalation)."""
    etype = record.get("event_type")
    if etype == "opportunity":
        return None  # contract 1.1: a CRM record of a deal, not a touch (the warehouse skips it too)
    if etype == "order":
        return "order"
    if etype == "dunning_contact":
        # one dunning episode = one process touch; its escalations (second reminder, ...) follow it
        return "dunning" if (record.get("payload") or {}).get("stage") == "reminder" else None
    if etype == "complaint":
        return "complaint"
    if etype == "survey_response":
        return "survey"
    if etype == "service_visit":
        return "service"
    department = record.get("department")
    if department in ("sales", "reception", "management", "other"):
        return department
    return None


def mark_of(process: str, record: dict) -> str:
    """The mark the generator drew for a touch of ``process`` ('' when the process has none)."""
    payload = record.get("payload") or {}
    if process == "sales":
        return "unanswered" if record.get("event_type") == "call" and payload.get("answered") is False else ""
    if process == "reception":
        return "unanswered" if payload.get("answered") is False else "answered"
    if process == "service":
        return "resolved" if payload.get("resolved") else "unresolved"
    if process == "complaint":
        return payload.get("severity") if payload.get("severity") in MARKS["complaint"] else "low"
    if process == "survey":
        score = payload.get("nps_score")
        if score is None:
            return "passive"
        return "detractor" if score <= DETRACTOR_MAX else ("promoter" if score >= PROMOTER_MIN else "passive")
    return ""


def stream_of(process: str, role: str | None = None, mark: str = "", roles: bool = True,
              marks: bool = True) -> str:
    name = process
    if roles and process in ROLE_PROCESSES:
        name += "_senior" if role in SENIOR_ROLES else "_rest"
    if marks and mark and process in MARKS:
        name += f"_{mark}"
    return name


def streams(roles: bool = True, marks: bool = True) -> tuple[str, ...]:
    out: list[str] = []
    for p in PROCESSES:
        names = [p]
        if roles and p in ROLE_PROCESSES:
            names = [f"{p}_senior", f"{p}_rest"]
        if marks and p in MARKS:
            names = [f"{n}_{m}" if m else n for n in names for m in MARKS[p]]
        out.extend(names)
    return tuple(out)


def process_of_stream(stream: str) -> str:
    return stream.split("_", 1)[0]


@dataclass(frozen=True)
class Event:
    day: dt.date        # the local day (orders: UTC, the same day in business hours)
    process: str
    role: str | None
    mark: str


def read_events(touchpoints_file: Path | str) -> dict[str, list[Event]]:
    """Valid, de-duplicated touchpoints per customer, mapped back to the generator's processes."""
    from loyalty_core.contract import decode

    seen: set[str] = set()
    out: dict[str, list[Event]] = {}
    with Path(touchpoints_file).open("rb") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            decoded = decode("touchpoint", None, line)
            if not decoded.ok or decoded.record is None:
                continue
            record = decoded.record
            if record["event_id"] in seen:
                continue
            seen.add(record["event_id"])
            process = process_of(record)
            if process is None:
                continue
            day = dt.date.fromisoformat(record["occurred_at"][:10])
            out.setdefault(record["customer_id"], []).append(
                Event(day, process, record.get("contact_role"), mark_of(process, record)))
    return out


# --- the true rates ----------------------------------------------------------------------------

def _rate_at(generator: dict, process: str, f: float, drifting: bool = True) -> float:
    """A process's rate at drift progress ``f``, relative to healthy (0 once a drift stopped it)."""
    if not drifting:
        return 1.0
    stops = dict(generator.get("stops_at_drift") or {})
    stops.setdefault("order", generator.get("orders_stop_at_drift"))
    stop = stops.get(process)
    if stop is not None and (stop <= 0 or f > stop):
        return 0.0
    return max(0.0, 1.0 + (generator["drift_rate_at_churn"][process] - 1.0) * f)


def _top_share(generator: dict, f: float, drifting: bool) -> float:
    """role(): the share of executives and decision makers at drift progress ``f``."""
    from loyalty_monitor.generator import CHAMPION_TOP_SHARE_FACTOR, TOP_SHARE_FALL_AT_CHURN

    healthy = generator["role_model"]["healthy_top_share"]
    if drifting and generator["churn_shape"] == "champion":
        return healthy * CHAMPION_TOP_SHARE_FACTOR
    return healthy * (1 - TOP_SHARE_FALL_AT_CHURN * f)


def _mark_share(generator: dict, segment: str, process: str, mark: str, f: float, friction: float,
                follow_up: bool = False) -> float:
    """The generator's probability of ``mark`` for a touch of ``process`` at drift ``f``/``friction``."""
    if process == "sales":
        if follow_up:  # always outbound
            unanswered = FOLLOW_UP_CALL_SHARE * (0.15 + 0.35 * f)
        else:
            outbound = 0.65 - 0.25 * f
            unanswered = SALES_CALL_SHARE * (outbound * (0.15 + 0.35 * f) + (1 - outbound) * 0.05)
        return unanswered if mark == "unanswered" else 1 - unanswered
    if process == "reception":
        answered = 0.9 - 0.3 * friction
        return answered if mark == "answered" else 1 - answered
    if process == "service":
        resolved = 0.88 - 0.3 * friction
        return resolved if mark == "resolved" else 1 - resolved
    if process == "complaint":
        high, medium_or_high = 0.1 + 0.35 * friction, 0.45 + 0.2 * friction
        return {"high": high, "medium": medium_or_high - high, "low": 1 - medium_or_high}[mark]
    if process == "survey":
        # the customer's own nps_base is not in the ground truth: the segment's distribution of it
        score = NormalDist(NPS_SEGMENT_MEAN[segment] - NPS_FALL_AT_CHURN * friction,
                           math.hypot(NPS_BASE_SD, NPS_ANSWER_SD))
        detractor = score.cdf(DETRACTOR_MAX + 0.5)
        promoter = 1 - score.cdf(PROMOTER_MIN - 0.5)
        return {"detractor": detractor, "promoter": promoter, "passive": 1 - detractor - promoter}[mark]
    return 1.0


def stream_rates(generator: dict, customer: dict, roles: bool = True,
                 marks: bool = True) -> dict[str, tuple[float, float]]:
    """Per stream: (healthy expected touches per day before the day factor, drift ratio rho)."""
    gaps = customer["healthy_mean_gap_days"]
    segment = customer["segment"]
    follow = generator["follow_up_share"][segment]
    friction_at_churn = float(generator.get("friction_at_churn", 1.0))
    grid = [1.0] if generator.get("drift_progress") == "step" else _F_GRID

    def rate(process: str, role: str | None, mark: str) -> Callable[[float, bool], float]:
        def at(f: float, drifting: bool) -> float:
            friction = friction_at_churn * f
            parts = [(_rate_at(generator, process, f, drifting) / gaps[process], False)]
            if process == "sales":  # follow-ups after orders are sales dialogue too
                parts.append((follow * (1 - FOLLOW_UP_FALL_AT_CHURN * f) * _rate_at(generator, "order", f, drifting)
                              / gaps["order"], True))
            total = 0.0
            for base, follow_up in parts:
                share = _mark_share(generator, segment, process, mark, f, friction, follow_up) if mark else 1.0
                total += base * share
            if role is not None:
                top = _top_share(generator, f, drifting)
                total *= top if role == "senior" else 1 - top
            return total
        return at

    out: dict[str, tuple[float, float]] = {}
    for process in PROCESSES:
        role_options: tuple[str | None, ...] = ("senior", "rest") if roles and process in ROLE_PROCESSES else (None,)
        mark_options = MARKS[process] if marks and process in MARKS else ("",)
        for role in role_options:
            for mark in mark_options:
                name = process + (f"_{role}" if role else "") + (f"_{mark}" if mark else "")
                at = rate(process, role, mark)
                rate0 = at(0.0, False)
                mean_drift = sum(at(f, True) for f in grid) / len(grid)
                out[name] = (rate0, max(RATIO_FLOOR, mean_drift / rate0) if rate0 > 0 else 1.0)
    return out


def day_factors(start: dt.date, days: int, seasonality: float) -> dict[str, np.ndarray]:
    """Per kind ("order", "other"): the expected share of a day's touches on each day of the history."""
    from loyalty_monitor.generator import seasonal_thinning

    dates = [start + dt.timedelta(days=i) for i in range(days)]
    season = np.array([1.0 - seasonal_thinning(d, seasonality) for d in dates])
    return {kind: season * np.array([weekly[d.weekday()] for d in dates])
            for kind, weekly in WEEKDAY_FACTOR.items()}


def start_up(names: Iterable[str], customer: dict, planned: Iterable[str], days: int) -> np.ndarray:
    """The generator's start-up transient per stream and day from the customer's first day: a
    process's first touch is drawn uniformly within its first mean gap, so a memoryless process (not
    planned) runs at ``1 + t / gap`` times its rate while ``t < gap``, and at its rate after that."""
    t = np.arange(days, dtype=float)
    planned = set(planned)
    rows = []
    for name in names:
        process = process_of_stream(name)
        gap = customer["healthy_mean_gap_days"][process]
        rows.append(np.ones(days) if process in planned else np.where(t < gap, 1.0 + t / gap, 1.0))
    return np.array(rows).reshape(len(rows), days)


# --- the detector ------------------------------------------------------------------------------

def cusum(llr: np.ndarray | Iterable[float]) -> np.ndarray:
    """``S_t = max(0, S_{t-1} + llr_t)`` with ``S = 0`` before the first day."""
    values = np.asarray(llr if isinstance(llr, np.ndarray) else list(llr), dtype=float)
    out = np.empty_like(values)
    s = 0.0
    for i, x in enumerate(values):
        s = max(0.0, s + x)
        out[i] = s
    return out


def crossings(s: np.ndarray | Iterable[float], threshold: float, warmup: int = WARMUP_DAYS) -> list[int]:
    """Indices where an alert opens: S reaches ``threshold`` on or after index ``warmup`` while
    armed; after an alert the detector re-arms once S is back at 0."""
    out: list[int] = []
    armed = True
    for i, value in enumerate(s):
        if not armed and value <= 0.0:
            armed = True
        if armed and i >= warmup and value >= threshold:
            out.append(i)
            armed = False
    return out


def daily_llr(counts: np.ndarray, expected: np.ndarray, ratios: np.ndarray | Iterable[float]) -> np.ndarray:
    """Per day, the sum over streams of ``n ln(rho) + (1 - rho) mu`` (counts, expected: streams x days)."""
    rho = np.asarray(list(ratios), dtype=float)[:, None]
    return (np.asarray(counts, dtype=float) * np.log(rho) + (1.0 - rho) * np.asarray(expected, dtype=float)).sum(axis=0)


@dataclass
class Trace:
    customer_id: str
    first_day: dt.date
    llr: np.ndarray
    s: np.ndarray
    warmup: int

    @property
    def peak(self) -> float:
        """The highest S on or after the warm-up (0 when the history is shorter than the warm-up)."""
        tail = self.s[self.warmup:]
        return float(tail.max()) if tail.size else 0.0


class Oracle:
    """The oracle's CUSUM for every customer of a history (``from_history`` or ``__init__``)."""

    def __init__(self, truth: dict, events: dict[str, list[Event]], *, roles: bool = True, marks: bool = True,
                 warmup_days: int = WARMUP_DAYS) -> None:
        generator = truth["generator"]
        self.roles, self.marks = roles, marks
        self.warmup_days = warmup_days
        self.start = dt.date.fromisoformat(generator["start"])
        self.end = dt.date.fromisoformat(generator["end"])
        days = (self.end - self.start).days + 1
        factors = day_factors(self.start, days, float(generator.get("seasonality", 1.0)))
        self.streams = names = streams(roles, marks)
        index = {name: i for i, name in enumerate(names)}
        is_order = np.array([[1.0] if n == "order" else [0.0] for n in names])
        shape = factors["order"][None, :] * is_order + factors["other"][None, :] * (1 - is_order)
        planned = generator.get("planned_processes", ())
        self.rates: dict[str, dict[str, tuple[float, float]]] = {}
        self.traces: dict[str, Trace] = {}
        for row in truth["customers"]:
            first = dt.date.fromisoformat(row["added_at"]) if row.get("added_at") else self.start
            offset = (first - self.start).days
            if offset >= days:
                continue
            rates = self.rates[row["customer_id"]] = stream_rates(generator, row, roles, marks)
            rate0 = np.array([rates[n][0] for n in names])
            ratios = np.array([rates[n][1] for n in names])
            expected = rate0[:, None] * shape[:, offset:] * start_up(names, row, planned, days - offset)
            counts = np.zeros_like(expected)
            for event in events.get(row["customer_id"], ()):
                i = (event.day - first).days
                if 0 <= i < counts.shape[1]:
                    counts[index[stream_of(event.process, event.role, event.mark, roles, marks)], i] += 1
            llr = daily_llr(counts, expected, ratios)
            self.traces[row["customer_id"]] = Trace(row["customer_id"], first, llr, cusum(llr), warmup_days)

    @classmethod
    def from_history(cls, history_dir: Path | str, truth: dict | None = None,
                     events: dict[str, list[Event]] | None = None, **kwargs) -> "Oracle":
        history_dir = Path(history_dir)
        if truth is None:
            truth = json.loads((history_dir / "ground_truth.json").read_text())
        if events is None:
            events = read_events(history_dir / "touchpoints.jsonl")
        return cls(truth, events, **kwargs)

    def _traces(self, customers: Iterable[str] | None) -> list[Trace]:
        if customers is None:
            return list(self.traces.values())
        return [self.traces[c] for c in customers if c in self.traces]

    def alerts(self, threshold: float, customers: Iterable[str] | None = None) -> list[tuple[str, dt.date]]:
        """``(customer_id, opening day)`` of every alert at ``threshold`` (nats)."""
        out = []
        for trace in self._traces(customers):
            if trace.peak >= threshold:
                for i in crossings(trace.s, threshold, trace.warmup):
                    out.append((trace.customer_id, trace.first_day + dt.timedelta(days=i)))
        return out

    def alerted_customers(self, threshold: float, customers: Iterable[str] | None = None) -> int:
        return sum(1 for t in self._traces(customers) if t.peak >= threshold and t.peak > 0)

    def threshold_for(self, n: int, customers: Iterable[str] | None = None) -> float:
        """The threshold (nats) whose number of alerted customers is closest to ``n``: halfway
        between the n-th and the (n+1)-th highest peak (never 0: a customer whose S stays at 0
        gets no alert)."""
        peaks = sorted((t.peak for t in self._traces(customers) if t.peak > 0), reverse=True)
        if not peaks:
            return math.inf
        if n <= 0:
            return peaks[0] * 1.01 + 1.0
        if n >= len(peaks):
            return peaks[-1]
        return (peaks[n - 1] + peaks[n]) / 2.0
