"""A realistic, seeded customer-touchpoint history with its ground truth (``loyalty generate``).

Writes the three files of the "Generator files" section of docs/design.md:

- ``customers.jsonl``: contract-v1 customer records in send order (initial portfolio, customers
  added mid-history, account-manager changes, and ``{"customer_id": ..., "tombstone": true}`` lines
  that the producer sends as null values).
- ``touchpoints.jsonl``: contract-v1 touchpoints in send order, with the noise real producers make:
  re-sent duplicates (same event_id, identical bytes), late events (sent days after ``occurred_at``,
  so the file is out of order), and a few malformed lines.
- ``ground_truth.json``: per customer whether and when it drifts and churns, and exact noise counts.

How the history is simulated: every customer has one renewal process per kind of touch (sales
dialogue, switchboard calls, service visits, orders, dunning, complaints, surveys, executive
meetings, other departments). The next touch of a process is drawn from a gap whose mean depends on
the segment, the customer's own rhythm, seasonality and, for churners, how far the drift has
progressed: dialogue gaps grow, friction (dunning, complaints, unanswered calls, low NPS) rises,
orders stop, and nothing happens after the churn date. A calendar queue (one list of pending touches
per day) merges all processes in time, so the file is written as a stream in send order and memory
follows the number of customers, not the number of events.

Histories of other shapes (``churn_shape``, ``seasonality``, ``segment_mix``) exist so that a
churn-drift detector is judged on principles, not tuned to one generator's quirks: besides today's
linear fade, churners can stop suddenly, fade slowly over half a year, or lose their champion (the
dialogue goes on, but below decision level). ground_truth.json carries the hidden truth an oracle
needs (each customer's healthy gaps per process, the drift model's constants, the shape), and
``seasonal_thinning()`` gives the true seasonal intensity of any day.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Callable

from loyalty_core.contract import DUNNING_STAGES, SCHEMA_VERSION
from loyalty_core.contract import SEGMENTS as CONTRACT_SEGMENTS
from loyalty_monitor.generator_opportunities import EVENTS_PER_CUSTOMER_MONTH, OpportunityStream

CUSTOMERS_FILE = "customers.jsonl"
TOUCHPOINTS_FILE = "touchpoints.jsonl"
GROUND_TRUTH_FILE = "ground_truth.json"

DEFAULT_CUSTOMERS = 500
DEFAULT_MONTHS = 18
DEFAULT_SEED = 42
#: Bumped whenever the same arguments would give different files (e.g. to invalidate cached histories).
GENERATOR_VERSION = 5

# Noise rates, per valid event. Malformed kinds are injected round-robin so that even a small
# history contains each kind; the error code the contract's decode() gives each kind is recorded.
DUPLICATE_RATE = 0.015
LATE_RATE = 0.02
MALFORMED_RATE = 0.001
MALFORMED_KINDS = {
    "broken_json": "not_json",
    "missing_field": "schema_violation",
    "bad_enum": "schema_violation",
    "negative_amount": "schema_violation",
    "bad_timestamp": "bad_timestamp",
}

CHURN_SHARE = 0.17         # customers that drift away during (or just after) the history
ADDED_SHARE = 0.10         # customers that first appear mid-history (no baseline)
DELETED_SHARE = 0.015      # customers erased by a tombstone late in the history
MANAGER_CHANGE_SHARE = 0.04
# Loyal customers have rough patches too (a billing dispute, a faulty delivery): friction rises for
# a while but the dialogue goes on and nobody leaves. They are what a good alert must not cry about.
ROUGH_PATCH_SHARE = 0.10
ROUGH_PATCH_FRICTION = 0.6  # friction level during a patch, on the churners' drift scale 0..1
ROUGH_PATCH_RATE = 6.0      # dunning and complaints during a patch, times the healthy rate

# Valid events per active customer-month at intensity 1.0, measured on the default mix; used to
# turn --events-per-customer-month and --target-events into an intensity and a customer count.
BASE_EVENTS_PER_CUSTOMER_MONTH = 4.7

#: The default portfolio's mix: a share for each segment of the event contract (a segment the
#: contract adds fails here, at import, until it has a share).
_SEGMENT_SHARES = {"key": 0.15, "growth": 0.30, "standard": 0.55}
SEGMENTS = tuple((name, _SEGMENT_SHARES[name]) for name in CONTRACT_SEGMENTS)

# How churners drift away (``churn_shape``). Every shape is a different history for the same
# portfolio, so a detector can be judged on principles rather than on the default drift's quirks.
CHURN_SHAPES = ("fade", "sudden", "slow", "champion")
DEFAULT_CHURN_SHAPE = "fade"
# Drift length in days (uniform in [low, high)) per shape and segment.
DRIFT_LENGTH_DAYS = {
    "fade": {"key": (90, 180), "growth": (45, 150), "standard": (45, 150)},
    "sudden": {"key": (7, 21), "growth": (7, 21), "standard": (7, 21)},
    "slow": {"key": (150, 210), "growth": (150, 210), "standard": (150, 210)},
    "champion": {"key": (90, 180), "growth": (90, 180), "standard": (90, 180)},
}

# country: weight, currency, time zone class, units of currency per EUR, company-name parts
COUNTRIES = {
    "DK": (0.35, "DKK", "CET", 7.46, ("A/S", "ApS"),
           ("Møller", "Vestergaard", "Kjær", "Holm", "Søndergaard", "Bech", "Dahl", "Lund")),
    "SE": (0.15, "SEK", "CET", 11.2, ("AB",), ("Lindqvist", "Berg", "Åkesson", "Nyström", "Ek")),
    "NO": (0.10, "NOK", "CET", 11.6, ("AS",), ("Haugen", "Bakke", "Solberg", "Strand")),
    "DE": (0.15, "EUR", "CET", 1.0, ("GmbH", "KG"), ("Müller", "Schröder", "Becker", "Krause", "Vogel")),
    "PL": (0.10, "PLN", "CET", 4.3, ("Sp. z o.o.", "S.A."), ("Kowalski", "Wiśniewski", "Zieliński", "Nowak")),
    "NL": (0.05, "EUR", "CET", 1.0, ("B.V.",), ("de Vries", "Jansen", "Visser")),
    "FI": (0.05, "EUR", "EET", 1.0, ("Oy",), ("Virtanen", "Mäkinen", "Laine")),
    "GB": (0.05, "GBP", "GMT", 0.85, ("Ltd",), ("Harrison", "Whitfield", "Cole")),
}
TRADES = ("Industri", "Maskinfabrik", "Teknik", "Components", "Hydraulics", "Automation", "Logistics",
          "Foods", "Packaging", "Energy", "Metal", "Plast", "Systems", "Engineering")
# standard offset in seconds, and the offset strings for (standard, summer) time
TIME_ZONES = {"CET": (3600, ("+01:00", "+02:00")), "EET": (7200, ("+02:00", "+03:00")),
              "GMT": (0, ("Z", "+01:00"))}
TZ_INDEX = {"CET": 0, "EET": 1, "GMT": 2}

ACCOUNT_MANAGERS = (
    ("AM01", "Anna Holm"), ("AM02", "Mikkel Sørensen"), ("AM03", "Sofie Lindberg"),
    ("AM04", "Jonas Weber"), ("AM05", "Karolina Nowak"), ("AM06", "Lars Eriksen"),
    ("AM07", "Ingrid Bakke"), ("AM08", "Thomas Schulz"), ("AM09", "Emma de Jong"),
    ("AM10", "Oliver Grant"), ("AM11", "Mette Kristensen"), ("AM12", "Piotr Zieliński"),
)
PRODUCT_LINES = ("pumps", "valves", "spare_parts", "service_agreements", "control_systems", "filters",
                 "installation")
ANNUAL_POTENTIAL_EUR = {"key": (800_000, 4_000_000), "growth": (150_000, 800_000),
                        "standard": (15_000, 150_000)}

# Processes (kinds of touch) per customer.
SALES, RECEPTION, SERVICE, ORDER, DUNNING, COMPLAINT, SURVEY, MANAGEMENT, OTHER, FOLLOW_UP = range(10)
PROCESSES = (SALES, RECEPTION, SERVICE, ORDER, DUNNING, COMPLAINT, SURVEY, MANAGEMENT, OTHER)
# Mean gap in days between touches of each process, per segment (healthy customer, intensity 1).
MEAN_GAP_DAYS = {
    "key": {SALES: 10, RECEPTION: 12, SERVICE: 30, ORDER: 21, DUNNING: 240, COMPLAINT: 150,
            SURVEY: 120, MANAGEMENT: 90, OTHER: 90},
    "growth": {SALES: 18, RECEPTION: 20, SERVICE: 60, ORDER: 30, DUNNING: 200, COMPLAINT: 200,
               SURVEY: 150, MANAGEMENT: 180, OTHER: 120},
    "standard": {SALES: 40, RECEPTION: 40, SERVICE: 120, ORDER: 60, DUNNING: 180, COMPLAINT: 240,
                 SURVEY: 180, MANAGEMENT: 720, OTHER: 180},
}
# A drifting customer's rate of each touch at full drift, relative to its healthy rate; in between
# the rate moves linearly with drift progress f in [0, 1]. Below 1 the touch fades (dialogue),
# above 1 it grows (friction).
DRIFT_RATE_AT_CHURN = {SALES: 0.2, RECEPTION: 1.0, SERVICE: 0.4, ORDER: 0.33, DUNNING: 4.0,
                       COMPLAINT: 4.0, SURVEY: 0.7, MANAGEMENT: 0.15, OTHER: 0.5}
ORDERS_STOP_AT_DRIFT = 0.6
# The champion leaves: the customer is reached below decision level at once, executive meetings stop
# at once (rate 0), the dialogue with the users goes on at a lower rate, friction rises only mildly.
CHAMPION_DRIFT_RATE_AT_CHURN = {SALES: 0.6, RECEPTION: 1.0, SERVICE: 0.8, ORDER: 1.0, DUNNING: 1.5,
                                COMPLAINT: 1.5, SURVEY: 0.8, MANAGEMENT: 0.0, OTHER: 0.7}
CHAMPION_ORDERS_STOP_AT_DRIFT = 0.8
CHAMPION_FRICTION_AT_CHURN = 0.4     # friction level (NPS, severity, unanswered calls) at churn, 0..1
CHAMPION_TOP_SHARE_FACTOR = 0.05     # role() top share from drift_start on, of its healthy value
# Per shape: rate of each process at full drift (relative to healthy), when orders stop (fraction of
# the drift; 0 = at drift_start), and the friction level reached at the churn date.
SHAPE_DRIFT_RATE_AT_CHURN = {"fade": DRIFT_RATE_AT_CHURN, "sudden": DRIFT_RATE_AT_CHURN,
                             "slow": DRIFT_RATE_AT_CHURN, "champion": CHAMPION_DRIFT_RATE_AT_CHURN}
SHAPE_ORDERS_STOP_AT_DRIFT = {"fade": ORDERS_STOP_AT_DRIFT, "sudden": 0.0, "slow": ORDERS_STOP_AT_DRIFT,
                              "champion": CHAMPION_ORDERS_STOP_AT_DRIFT}
SHAPE_FRICTION_AT_CHURN = {"fade": 1.0, "sudden": 1.0, "slow": 1.0, "champion": CHAMPION_FRICTION_AT_CHURN}
# Contact roles of the sales dialogue and survey answers (role()): a share ``top`` are executives
# (a fifth of them) or decision makers; the rest users, finance, other.
HEALTHY_TOP_SHARE = 0.5
TOP_SHARE_FALL_AT_CHURN = 0.7        # top = HEALTHY_TOP_SHARE * (1 - 0.7 * f) for a drift level f
EXECUTIVE_SHARE_OF_TOP = 0.2
MEETING_SHARE = {"key": 0.2, "growth": 0.13, "standard": 0.07}      # of sales dialogue
FOLLOW_UP_SHARE = {"key": 0.55, "growth": 0.4, "standard": 0.3}     # orders followed up (healthy)
PROCESS_NAMES = {SALES: "sales", RECEPTION: "reception", SERVICE: "service", ORDER: "order",
                 DUNNING: "dunning", COMPLAINT: "complaint", SURVEY: "survey", MANAGEMENT: "management",
                 OTHER: "other"}
PLANNED_PROCESSES = (SALES, ORDER, MANAGEMENT, SURVEY)  # gaps uniform in 0.4-1.6 x mean; others exponential

NOTES = {
    "sales": ("Discussed next quarter's volumes", "Sent updated price list",
              "Customer asked for a quote on spare parts", "Introduced the new control system",
              "Kunden ønsker tilbud på serviceaftale", "Follow-up on delivery times"),
    "reception": ("Asked for their account manager", "Caller wanted delivery status",
                  "Could not reach sales, tried a mobile", "Wrong department, transferred"),
    "service": ("Replaced worn seals", "Commissioning of new line", "Recurring fault, part on order",
                "Annual inspection"),
    "complaint": ("Delivery arrived late again", "Invoice does not match the order",
                  "Technician blamed the previous supplier", "Nobody called back as promised"),
    "survey": ("Good service, slow answers on the phone", "Always helpful", "Hard to reach sales",
               "Prices fine, follow-up lacking"),
    "other": ("Delivery slot agreed with logistics", "Documentation requested", "Marketing event invitation"),
}

ProgressCallback = Callable[[float, int], None]


@dataclass
class GenerationSummary:
    """What ``generate()`` wrote: file paths and exact counts (also in ground_truth.json)."""

    out_dir: Path
    customers_file: Path
    touchpoints_file: Path
    ground_truth_file: Path
    seed: int
    start: date
    end: date
    customers: int
    churners: int
    deleted: int
    customer_lines: int
    touchpoint_lines: int
    valid_events: int
    duplicates: int
    late_events: int
    malformed: int
    malformed_by_kind: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.touchpoint_lines / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["events_per_second"] = round(self.events_per_second)
        return {k: (str(v) if isinstance(v, (Path, date)) else v) for k, v in out.items()}


@dataclass(slots=True)
class _Customer:
    idx: int
    customer_id: str
    name: str
    segment: str
    country: str
    currency: str
    tz: int
    manager: int
    annual_potential: float
    rhythm: float            # the customer's own pace: < 1 more frequent, > 1 less
    product_lines: tuple[str, ...]
    order_amount: float      # mean order value in the customer's currency
    nps_base: float
    added_day: int           # first day of activity (0 = present from the start)
    drift_start: int | None
    churn_day: int | None
    deleted_day: int | None
    rough_patch: tuple[int, int] | None  # [first day, end day) of a loyal customer's rough patch
    end_day: int             # first day without activity
    manager_change: tuple[int, int] | None = None  # (day, new manager)
    dunning_stage: int = -1  # index into DUNNING_STAGES of the open dunning episode
    dunning_invoice: str = ""
    dunning_amount: float = 0.0
    dunning_days: int = 0
    mean_gap: list[float] = field(default_factory=list)  # per process, healthy, at the run's intensity


def _months_before(day: date, months: int) -> date:
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    month += 1
    for dom in (day.day, 30, 29, 28):
        try:
            return date(year, month, dom)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _as_date(value: date | str | None, default: date) -> date:
    if value is None:
        return default
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value)


def _last_sunday(year: int, month: int) -> date:
    last = date(year, month + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() + 1) % 7)


@lru_cache(maxsize=None)
def easter_sunday(year: int) -> date:
    """Easter Sunday of a Gregorian year (the anonymous Gregorian algorithm, Meeus/Jones/Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l = (32 + 2 * e + 2 * i - h - k) % 7  # noqa: E741 (the algorithm's name)
    m = (a + 11 * h + 22 * l) // 451
    month, day = divmod(h + l - 7 * m + 114, 31)
    return date(year, month, day + 1)


def seasonal_thinning(day: date, seasonality: float = 1.0) -> float:
    """Probability that a touch on ``day`` does not happen; ``1 - seasonal_thinning(day)`` is the
    day's true seasonal intensity.

    Base thinning p: 0.75 from 20 December to 3 January, 0.6 from 8 to 31 July, 0.3 on the other days
    from 1 July to 10 August, else 0. With ``seasonality`` > 1 two quiet seasons join with base 0.5:
    the whole of August, and the seven days after Easter Monday. The thinning is
    ``1 - (1 - p) ** seasonality`` (0 = no dips, 1 = the default, 2 = deeper dips).
    """
    md = (day.month, day.day)
    if (12, 20) <= md or md <= (1, 3):
        p = 0.75
    elif (7, 1) <= md <= (8, 10):
        # the industrial holiday weeks in mid July are the quietest
        p = 0.6 if (7, 8) <= md <= (7, 31) else 0.3
    else:
        p = 0.0
    if seasonality > 1.0:
        if day.month == 8:
            p = max(p, 0.5)
        elif 3 <= day.month <= 5:
            easter_monday = easter_sunday(day.year) + timedelta(days=1)
            if easter_monday < day <= easter_monday + timedelta(days=7):
                p = max(p, 0.5)
    if seasonality == 1.0 or p == 0.0:
        return p
    return 1.0 - (1.0 - p) ** seasonality


def _segment_weights(segment_mix: dict[str, float] | None) -> tuple[tuple[str, float], ...]:
    """SEGMENTS' weights, or ``segment_mix`` normalised to 1 (segments it leaves out get 0)."""
    if segment_mix is None:
        return SEGMENTS
    names = [name for name, _ in SEGMENTS]
    unknown = sorted(set(segment_mix) - set(names))
    if unknown:
        raise ValueError(f"segment_mix: unknown segment(s) {', '.join(unknown)} (known: {', '.join(names)})")
    weights = {name: float(segment_mix.get(name, 0.0)) for name in names}
    if any(not math.isfinite(w) or w < 0 for w in weights.values()):
        raise ValueError("segment_mix: weights must be finite and not negative")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("segment_mix: at least one weight must be positive")
    return tuple((name, w / total) for name, w in weights.items() if w > 0)


def expected_customers_for(target_events: int, months: float, intensity: float = 1.0,
                           opportunity_rate: float = 1.0) -> int:
    """How many customers give about ``target_events`` valid events over ``months``."""
    per_customer = (BASE_EVENTS_PER_CUSTOMER_MONTH * intensity
                    + EVENTS_PER_CUSTOMER_MONTH * opportunity_rate) * months
    return max(1, math.ceil(target_events / per_customer))


def generate(out_dir: Path | str, customers: int = DEFAULT_CUSTOMERS, start: date | str | None = None,
             end: date | str | None = None, seed: int = DEFAULT_SEED, *,
             events_per_customer_month: float | None = None, target_events: int | None = None,
             duplicate_rate: float = DUPLICATE_RATE, late_rate: float = LATE_RATE,
             malformed_rate: float = MALFORMED_RATE, churn_share: float = CHURN_SHARE,
             churn_shape: str = DEFAULT_CHURN_SHAPE, seasonality: float = 1.0,
             segment_mix: dict[str, float] | None = None, opportunity_rate: float = 1.0,
             progress: ProgressCallback | None = None) -> GenerationSummary:
    """Write a seeded history to ``out_dir`` (see the module doc) and return its summary.

    ``start``/``end`` (dates or ISO strings, both inclusive) default to the 18 months ending today
    (UTC). ``events_per_customer_month`` scales the volume per customer; ``target_events`` picks the
    number of customers instead of ``customers``. ``churn_share`` is the share of churners.
    ``churn_shape`` is how churners drift away: ``"fade"`` (default, linear over 45-180 days),
    ``"sudden"`` (full drift from the first day, 7-21 days), ``"slow"`` (linear over 150-210 days) or
    ``"champion"`` (reached below decision level at once, executive meetings stop, the dialogue goes
    on at a lower rate; 90-180 days). ``seasonality`` scales the seasonal dips (see
    ``seasonal_thinning``); ``segment_mix`` overrides the segments' weights (e.g.
    ``{"key": 0.6, "growth": 0.3, "standard": 0.1}``). ``opportunity_rate`` scales the sales
    opportunities (contract 1.1; ``loyalty_monitor.generator_opportunities``, 0 = none); they draw
    from their own random stream, so the other touches do not change. ``progress(fraction, lines_written)`` is
    called about once a second on long runs. The same arguments always give byte-identical files;
    the defaults give the same touchpoints and customers as before these options existed.
    """
    started = time.perf_counter()
    start_date, end_date, intensity, customers = _checked_arguments(
        start, end, customers, events_per_customer_month, target_events, opportunity_rate, churn_shape, seasonality)
    days = (end_date - start_date).days + 1
    segments = _segment_weights(segment_mix)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    portfolio = _make_customers(rng, customers, days, churn_share, segments,
                                DRIFT_LENGTH_DAYS[churn_shape])
    calendar = _Calendar(start_date, days, seasonality)

    customer_lines = _write_customers(out / CUSTOMERS_FILE, portfolio, calendar, rng)
    counts = _write_touchpoints(out / TOUCHPOINTS_FILE, portfolio, calendar, rng, intensity,
                                duplicate_rate, late_rate, malformed_rate, seed, progress, churn_shape,
                                opportunity_rate)
    opportunities = counts.pop("opportunities")

    truth = {
        "generator": {"version": GENERATOR_VERSION, "seed": seed, "start": start_date.isoformat(),
                      "end": end_date.isoformat(),
                      "customers": customers, "intensity": round(intensity, 6),
                      "rates": {"duplicate": duplicate_rate, "late": late_rate,
                                "malformed": malformed_rate, "churn_share": churn_share},
                      **_model_truth(churn_shape, seasonality, segments)},
        "counts": {**counts, "customer_lines": customer_lines,
                   "tombstones": sum(1 for c in portfolio if c.deleted_day is not None),
                   "rough_patches": sum(1 for c in portfolio if c.rough_patch is not None),
                   "malformed_error_codes": MALFORMED_KINDS},
        "opportunities": opportunities,
    }
    _write_ground_truth(out / GROUND_TRUTH_FILE, truth, portfolio, calendar)
    return GenerationSummary(
        out_dir=out, customers_file=out / CUSTOMERS_FILE, touchpoints_file=out / TOUCHPOINTS_FILE,
        ground_truth_file=out / GROUND_TRUTH_FILE, seed=seed, start=start_date, end=end_date,
        customers=customers, churners=sum(1 for c in portfolio if c.churn_day is not None),
        deleted=truth["counts"]["tombstones"], customer_lines=customer_lines,
        touchpoint_lines=counts["touchpoint_lines"], valid_events=counts["valid_events"],
        duplicates=counts["duplicates"], late_events=counts["late_events"],
        malformed=counts["malformed"], malformed_by_kind=counts["malformed_by_kind"],
        seconds=time.perf_counter() - started)


def _checked_arguments(start: date | str | None, end: date | str | None, customers: int,
                       events_per_customer_month: float | None, target_events: int | None,
                       opportunity_rate: float, churn_shape: str, seasonality: float) -> tuple[date, date, float, int]:
    """``generate``'s arguments checked, one clear error each: (start, end, intensity, customers)."""
    end_date = _as_date(end, datetime.now(timezone.utc).date())
    start_date = _as_date(start, _months_before(end_date, DEFAULT_MONTHS))
    if end_date < start_date:
        raise ValueError(f"end {end_date} is before start {start_date}")
    intensity = 1.0
    if events_per_customer_month is not None:
        if events_per_customer_month <= 0:
            raise ValueError("events_per_customer_month must be positive")
        intensity = events_per_customer_month / BASE_EVENTS_PER_CUSTOMER_MONTH
    if not (math.isfinite(opportunity_rate) and opportunity_rate >= 0):
        raise ValueError("opportunity_rate must be a finite number >= 0")
    if target_events is not None:
        days = (end_date - start_date).days + 1
        customers = expected_customers_for(target_events, days / 30.44, intensity, opportunity_rate)
    if customers < 1:
        raise ValueError("customers must be at least 1")
    if churn_shape not in CHURN_SHAPES:
        raise ValueError(f"churn_shape must be one of {', '.join(CHURN_SHAPES)}, not {churn_shape!r}")
    if not (math.isfinite(seasonality) and seasonality >= 0):
        raise ValueError("seasonality must be a finite number >= 0")
    return start_date, end_date, intensity, customers


def _model_truth(churn_shape: str, seasonality: float, segments: tuple[tuple[str, float], ...]) -> dict:
    """The hidden model an oracle needs: the shape, the gaps, the drift's rates, the role model."""
    rates = SHAPE_DRIFT_RATE_AT_CHURN[churn_shape]
    orders_stop = SHAPE_ORDERS_STOP_AT_DRIFT[churn_shape]
    stops = {"order": orders_stop, "management": 0.0 if churn_shape == "champion" else None}
    if churn_shape == "champion":
        top_in_drift = (f"{HEALTHY_TOP_SHARE * CHAMPION_TOP_SHARE_FACTOR:g} from drift_start on, at once "
                        f"({CHAMPION_TOP_SHARE_FACTOR:.0%} of healthy)")
    elif churn_shape == "sudden":
        top_in_drift = f"{HEALTHY_TOP_SHARE} * (1 - {TOP_SHARE_FALL_AT_CHURN} * f) with f = 1 from drift_start on"
    else:
        top_in_drift = f"{HEALTHY_TOP_SHARE} * (1 - {TOP_SHARE_FALL_AT_CHURN} * f), f linear 0..1 over the drift"
    return {
        "churn_shape": churn_shape,
        "seasonality": seasonality,
        "segment_mix": {name: round(weight, 12) for name, weight in segments},
        "drift_length_days": {seg: list(span) for seg, span in DRIFT_LENGTH_DAYS[churn_shape].items()},
        # f: drift progress, 0 before drift_start, 1 at churn_date; "step": f = 1 from drift_start on
        "drift_progress": "step" if churn_shape == "sudden" else "linear",
        "mean_gap_days": {seg: {PROCESS_NAMES[p]: gaps[p] for p in PROCESSES}
                          for seg, gaps in MEAN_GAP_DAYS.items()},
        "planned_processes": [PROCESS_NAMES[p] for p in PLANNED_PROCESSES],
        "drift_rate_at_churn": {PROCESS_NAMES[p]: rates[p] for p in PROCESSES},
        "orders_stop_at_drift": orders_stop,
        "stops_at_drift": stops,
        "friction_at_churn": SHAPE_FRICTION_AT_CHURN[churn_shape],
        "rough_patch_rate": ROUGH_PATCH_RATE,
        "rough_patch_friction": ROUGH_PATCH_FRICTION,
        "meeting_share": dict(MEETING_SHARE),
        "follow_up_share": dict(FOLLOW_UP_SHARE),
        "role_model": {
            "healthy_top_share": HEALTHY_TOP_SHARE,
            "executive_share_of_top": EXECUTIVE_SHARE_OF_TOP,
            "top_share_in_drift": top_in_drift,
            "note": ("contact_role of sales dialogue and survey answers: executive or decision_maker "
                     "with probability top (executive a fifth of it), else user (0.35), finance (0.07), "
                     "other; executive meetings (management) are always executive"),
        },
        "seasonal_thinning": "loyalty_monitor.generator.seasonal_thinning(day, seasonality)",
    }


# --- calendar ----------------------------------------------------------------------------------

class _Calendar:
    """Per-day lookup tables, so that formatting a timestamp costs a few list look-ups."""

    def __init__(self, start: date, days: int, seasonality: float = 1.0) -> None:
        self.start = start
        self.days = days
        span = range(-1, days + 2)  # one day either side for UTC conversion
        self.dates = [start + timedelta(days=d) for d in span]
        self.iso = [d.isoformat() for d in self.dates]
        self.weekday = [d.weekday() for d in self.dates]
        self.thinning = [seasonal_thinning(d, seasonality) for d in self.dates]
        summer = {}
        for year in range(self.dates[0].year, self.dates[-1].year + 1):
            summer[year] = (_last_sunday(year, 3), _last_sunday(year, 10))
        self.dst = [int(summer[d.year][0] <= d < summer[d.year][1]) for d in self.dates]
        self.clock = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)]
        # offset seconds and strings per time-zone class and DST flag
        self.offset_s = [[TIME_ZONES[z][0] + 3600 * dst for dst in (0, 1)] for z in TZ_INDEX]
        self.offset_str = [list(TIME_ZONES[z][1]) for z in TZ_INDEX]

    def date_of(self, day: int) -> date:
        return self.start + timedelta(days=day)  # also past the end (churn dates may lie there)


# --- portfolio ---------------------------------------------------------------------------------

def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    r = rng.random()
    for value, weight in weighted:
        r -= weight
        if r < 0:
            return value
    return weighted[-1][0]


def _make_customers(rng: random.Random, n: int, days: int, churn_share: float,
                    segments: tuple[tuple[str, float], ...] = SEGMENTS,
                    drift_lengths: dict[str, tuple[int, int]] = DRIFT_LENGTH_DAYS["fade"]) -> list[_Customer]:
    """The portfolio: each customer drawn, then the tombstones, then manager changes and rough
    patches (in this order: the random stream, and so every history, depends on it)."""
    width = max(6, len(str(n)))
    country_weights = tuple((code, spec[0]) for code, spec in COUNTRIES.items())
    portfolio = [_draw_customer(rng, idx, n, days, width, churn_share, segments, drift_lengths, country_weights)
                 for idx in range(n)]
    _draw_deletions(rng, portfolio, n, days)
    _draw_changes(rng, portfolio, days)
    _make_names_unique(portfolio)
    return portfolio


def _make_names_unique(portfolio: list[_Customer]) -> None:
    """Two customers of one portfolio never share a name (an account manager with two "Nowak Systems
    Sp. z o.o." cannot tell their alerts apart): a repeated name takes a partner's surname ("Nowak &
    Kowalski Systems Sp. z o.o."), else a number. Deterministic and without random draws, so every
    other field of every history stays as it was."""
    taken: set[str] = set()
    for c in portfolio:
        name = c.name
        if name in taken:
            surnames = COUNTRIES[c.country][5]
            surname = next((s for s in sorted(surnames, key=len, reverse=True) if name.startswith(s + " ")), "")
            rest = name[len(surname) + 1:] if surname else name
            partners = [f"{surname} & {other} {rest}" for other in surnames if surname and other != surname]
            # lazily: unpacking the numbered names into a tuple built all of them for every repeat,
            # quadratic in the portfolio (3 of the 4 minutes of a 105,000-event history)
            numbered = (f"{name} ({k})" for k in range(2, len(portfolio) + 2))
            name = next(candidate for candidate in itertools.chain(partners, numbered) if candidate not in taken)
        taken.add(name)
        c.name = name


def _draw_customer(rng: random.Random, idx: int, n: int, days: int, width: int, churn_share: float,
                   segments: tuple[tuple[str, float], ...], drift_lengths: dict[str, tuple[int, int]],
                   country_weights: tuple[tuple[str, float], ...]) -> _Customer:
    segment = _pick(rng, segments)
    country = _pick(rng, country_weights)
    _, currency, tz, per_eur, suffixes, surnames = COUNTRIES[country]
    name = f"{rng.choice(surnames)} {rng.choice(TRADES)} {rng.choice(suffixes)}"
    low, high = ANNUAL_POTENTIAL_EUR[segment]
    potential = round(math.exp(rng.uniform(math.log(low), math.log(high))) * per_eur, -3)
    orders_per_year = 365 / MEAN_GAP_DAYS[segment][ORDER]
    wallet_share = rng.uniform(0.2, 0.8)
    added_day = 0
    if n > 1 and rng.random() < ADDED_SHARE:
        added_day = int(rng.uniform(0.05, 0.85) * days)
    drift_start = churn_day = None
    if rng.random() < churn_share:
        drift_len = int(rng.uniform(*drift_lengths[segment]))
        # some churn dates lie just after the history: those customers are still drifting at its
        # end, which is exactly when an alert is worth most
        earliest = added_day + 90 + drift_len
        latest = days + 45
        if earliest < latest:
            churn_day = int(rng.uniform(max(earliest, 0.35 * days), latest))
            drift_start = churn_day - drift_len
    return _Customer(
        idx=idx, customer_id=f"C{idx + 1:0{width}d}", name=name, segment=segment, country=country,
        currency=currency, tz=TZ_INDEX[tz], manager=rng.randrange(len(ACCOUNT_MANAGERS)),
        annual_potential=potential, rhythm=math.exp(rng.gauss(0, 0.25)),
        product_lines=tuple(rng.sample(PRODUCT_LINES, rng.randint(1, 4))),
        order_amount=potential * wallet_share / orders_per_year,
        nps_base={"key": 8.3, "growth": 7.9, "standard": 7.4}[segment] + rng.gauss(0, 0.8),
        added_day=added_day, drift_start=drift_start, churn_day=churn_day, deleted_day=None,
        rough_patch=None, end_day=days)


def _draw_deletions(rng: random.Random, portfolio: list[_Customer], n: int, days: int) -> None:
    """Tombstones late in the history: mostly customers that left (erasure on request), plus one
    that is deleted while still active (e.g. merged into another customer record)."""
    n_deleted = max(1, round(n * DELETED_SHARE)) if n >= 20 else 0
    late = int(0.8 * days)
    gone = [c for c in portfolio if c.churn_day is not None and c.churn_day + 30 < days - 2]
    rng.shuffle(gone)
    for c in gone[: max(0, n_deleted - 1)]:
        c.deleted_day = rng.randint(max(late, c.churn_day + 30), days - 1)
    active = [c for c in portfolio if c.churn_day is None and c.added_day < late - 60]
    if n_deleted and active:
        rng.choice(active).deleted_day = rng.randint(late, days - 1)


def _draw_changes(rng: random.Random, portfolio: list[_Customer], days: int) -> None:
    """Each customer's last day, a change of account manager for some, a rough patch (friction
    without a departure) for some who stay."""
    for c in portfolio:
        c.end_day = min(d for d in (days, c.churn_day, c.deleted_day) if d is not None)
        if rng.random() < MANAGER_CHANGE_SHARE and c.end_day - c.added_day > 60:
            new_manager = (c.manager + rng.randrange(1, len(ACCOUNT_MANAGERS))) % len(ACCOUNT_MANAGERS)
            c.manager_change = (rng.randint(c.added_day + 30, c.end_day - 30), new_manager)
        if c.churn_day is None and rng.random() < ROUGH_PATCH_SHARE:
            first = int(rng.uniform(max(c.added_day + 60, 0.2 * days), 0.9 * days))
            length = rng.randint(30, 75)
            if first + length < c.end_day:
                c.rough_patch = (first, first + length)


def _manager_record(manager: int) -> dict:
    manager_id, name = ACCOUNT_MANAGERS[manager]
    email = name.lower().replace(" ", ".")
    email = email.translate(str.maketrans({"ø": "o", "ń": "n", "ś": "s", "ł": "l", "é": "e"}))
    return {"id": manager_id, "name": name, "email": f"{email}@example.com"}


def _customer_record(c: _Customer, manager: int, updated_at: str) -> str:
    record = {"schema_version": SCHEMA_VERSION, "customer_id": c.customer_id, "name": c.name,
              "segment": c.segment, "country": c.country, "account_manager": _manager_record(manager),
              "annual_potential": c.annual_potential, "currency": c.currency, "updated_at": updated_at}
    return json.dumps(record, ensure_ascii=False)


# Customer changes are stamped before the day's first touch anywhere (07:30 local is 04:30Z at +03:00),
# so no touch of a day precedes the record it belongs to.
BEFORE_BUSINESS_HOURS_UTC = 4


def _utc_stamp(calendar: _Calendar, day: int, hour: int) -> str:
    return f"{calendar.iso[day + 1]}T{hour:02d}:00:00Z"


def _write_customers(path: Path, portfolio: list[_Customer], calendar: _Calendar,
                     rng: random.Random) -> int:
    """Customer records in send order: the initial portfolio first, then changes as they happen."""
    initial, later = [], []
    for c in portfolio:
        if c.added_day == 0:
            before = calendar.start - timedelta(days=rng.randint(1, 700))
            initial.append(_customer_record(c, c.manager, f"{before.isoformat()}T06:00:00Z"))
        else:
            later.append(((c.added_day, BEFORE_BUSINESS_HOURS_UTC, c.idx),
                          _customer_record(c, c.manager, _utc_stamp(calendar, c.added_day,
                                                                    BEFORE_BUSINESS_HOURS_UTC))))
        if c.manager_change:
            day, new_manager = c.manager_change
            later.append(((day, BEFORE_BUSINESS_HOURS_UTC, c.idx),
                          _customer_record(c, new_manager, _utc_stamp(calendar, day, BEFORE_BUSINESS_HOURS_UTC))))
        if c.deleted_day is not None:
            later.append(((c.deleted_day, 18, c.idx),
                          json.dumps({"customer_id": c.customer_id, "tombstone": True})))
    later.sort(key=lambda item: item[0])
    lines = initial + [line for _, line in later]
    with path.open("w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return len(lines)


def _write_ground_truth(path: Path, truth: dict, portfolio: list[_Customer], calendar: _Calendar) -> None:
    """One JSON document; the customers one per line, streamed (big histories have 100k+ of them)."""
    head = json.dumps(truth, indent=1, ensure_ascii=False)
    with path.open("w", encoding="utf-8") as fh:
        fh.write(head[:-2] + ',\n "customers": [\n')  # reopen the object before its closing brace
        for n, c in enumerate(portfolio):
            fh.write(("  " if n == 0 else ",\n  ") + json.dumps(_truth_row(c, calendar), ensure_ascii=False))
        fh.write("\n ]\n}\n")


def _truth_row(c: _Customer, calendar: _Calendar) -> dict:
    def iso(day: int | None) -> str | None:
        return None if day is None else calendar.date_of(day).isoformat()

    manager = c.manager_change[1] if c.manager_change else c.manager
    return {"customer_id": c.customer_id, "segment": c.segment, "country": c.country,
            "account_manager_id": ACCOUNT_MANAGERS[manager][0],
            "added_at": iso(c.added_day) if c.added_day else None,
            "churns": c.churn_day is not None, "drift_start": iso(c.drift_start),
            "churn_date": iso(c.churn_day), "deleted": c.deleted_day is not None,
            "deleted_at": iso(c.deleted_day),
            "rough_patch_start": iso(c.rough_patch[0]) if c.rough_patch else None,
            "rough_patch_end": iso(c.rough_patch[1]) if c.rough_patch else None,
            "rhythm": c.rhythm,
            "healthy_mean_gap_days": {PROCESS_NAMES[p]: round(c.mean_gap[p], 6) for p in PROCESSES}}


# --- touchpoints -------------------------------------------------------------------------------
#
# The touchpoints file is written in four steps, each its own unit below: the customers' healthy
# gaps (_set_healthy_gaps), the first touch of every process (_first_touches), then day by day the
# touches in time order: what each says (_Touches), when the next one of its process comes
# (_Rhythm), and the noise of the send order (_SendOrder: late, re-sent and malformed lines). All of
# them draw from the one seeded stream, in the order the loop calls them: moving a draw changes
# every later touch, so the same seed gives the same file only as long as that order stays.

def _write_touchpoints(path: Path, portfolio: list[_Customer], cal: _Calendar, rng: random.Random,
                       intensity: float, duplicate_rate: float, late_rate: float,
                       malformed_rate: float, seed: int,
                       progress: ProgressCallback | None, churn_shape: str = DEFAULT_CHURN_SHAPE,
                       opportunity_rate: float = 0.0) -> dict:
    """Write the touchpoints in send order; return the counts of ground_truth.json."""
    _set_healthy_gaps(portfolio, intensity)
    rhythm = _Rhythm(cal, rng, churn_shape)
    touches = _Touches(cal, rng, rhythm, seed, churn_shape)
    agenda = _first_touches(portfolio, rhythm, cal.days)
    # sales opportunities (contract 1.1): their own random stream, merged in send order
    opportunities = OpportunityStream(
        portfolio, cal, ACCOUNT_MANAGERS,
        lambda c, day: c.manager_change[1] if c.manager_change and day >= c.manager_change[0] else c.manager,
        seed=seed, rate=opportunity_rate, late_rate=late_rate, duplicate_rate=duplicate_rate,
        churn_shape=churn_shape)
    by_type: dict[str, int] = {}
    by_department: dict[str, int] = {}
    with path.open("w", encoding="utf-8", buffering=1 << 20) as fh:
        out = _SendOrder(fh, rng, touches.new_id, duplicate_rate, late_rate, malformed_rate, progress,
                         horizon=cal.days * 86400)
        for today in range(cal.days):
            todays = agenda[today]
            agenda[today] = None  # done with it: free the memory as the history advances
            todays.sort()
            for utc, idx, process, day, second in todays:
                c = portfolio[idx]
                line, etype, department = touches.write(c, process, day, second)
                if process != FOLLOW_UP:  # a follow-up is a one-off: its process has no next touch
                    nxt = rhythm.next_touch(c, process, day)
                    if nxt is not None:
                        agenda[nxt[3]].append(nxt)
                    if process == ORDER:
                        fu = rhythm.follow_up(c, day)
                        if fu is not None:
                            agenda[fu[3]].append(fu)
                by_type[etype] = by_type.get(etype, 0) + 1
                by_department[department] = by_department.get(department, 0) + 1
                opportunities.drain_until(utc, out.pending, out.buffer)
                out.send(line, utc, c.currency)
        opportunities.drain_until(math.inf, out.pending, out.buffer)
        out.write()
    if progress is not None:
        progress(1.0, out.lines)
    return _touchpoint_counts(out, by_type, by_department, opportunities)


def _set_healthy_gaps(portfolio: list[_Customer], intensity: float) -> None:
    """Each customer's healthy mean gap per process: the segment's, at its rhythm and the run's intensity."""
    for c in portfolio:
        c.mean_gap = [MEAN_GAP_DAYS[c.segment].get(p, 0.0) * c.rhythm / intensity
                      for p in range(FOLLOW_UP + 1)]


def _first_touches(portfolio: list[_Customer], rhythm: _Rhythm, days: int) -> list[list[tuple] | None]:
    """The calendar queue with every process's first touch filed under its local day.

    A touch always schedules the next one at least a day later, so a day's list is complete when
    its turn comes and one sort puts it in time order; far cheaper than one heap over every
    customer's processes."""
    agenda: list[list[tuple] | None] = [[] for _ in range(days)]
    for c in portfolio:
        for process in PROCESSES:
            entry = rhythm.first_touch(c, process)
            if entry is not None:
                agenda[entry[3]].append(entry)
    return agenda


def _touchpoint_counts(out: _SendOrder, by_type: dict[str, int], by_department: dict[str, int],
                       opportunities: OpportunityStream) -> dict:
    """The exact counts of the file (the touches', the noise's and the opportunities')."""
    valid, duplicates, late = sum(by_type.values()), out.duplicates, out.late
    malformed = sum(out.malformed_by_kind.values())
    extra = opportunities.counts
    valid += extra["valid_events"]
    duplicates += extra["duplicates"]
    late += extra["late_events"]
    if extra["valid_events"]:
        by_type["opportunity"] = extra["valid_events"]
        by_department["sales"] = by_department.get("sales", 0) + extra["valid_events"]
    assert out.lines == valid + duplicates + malformed
    return {"touchpoint_lines": out.lines, "valid_events": valid, "duplicates": duplicates,
            "late_events": late, "malformed": malformed, "malformed_by_kind": out.malformed_by_kind,
            "events_by_type": dict(sorted(by_type.items())),
            "events_by_department": dict(sorted(by_department.items())),
            "opportunities": opportunities.truth()}


class _Rhythm:
    """When touches happen: one renewal process per kind of touch and customer (see the module doc).

    The next touch of a process is drawn from a gap around the customer's healthy mean gap,
    shortened or stretched by the drift (per the churn shape) or a loyal customer's rough patch;
    weekends, seasonal thinning and the end of the customer's activity move or drop it. Touches are
    (utc_s, customer idx, process, local day, local second), sortable into time order."""

    def __init__(self, cal: _Calendar, rng: random.Random, churn_shape: str) -> None:
        self.rand = rng.random
        self.weekday, self.thinning, self.dst, self.offset_s = cal.weekday, cal.thinning, cal.dst, cal.offset_s
        # hot-loop look-ups as lists indexed by process
        rate_at_churn = SHAPE_DRIFT_RATE_AT_CHURN[churn_shape]
        self.drift_rate_change = [rate_at_churn.get(p, 1.0) - 1 for p in range(FOLLOW_UP + 1)]
        self.planned = [p in PLANNED_PROCESSES for p in range(FOLLOW_UP + 1)]
        self.friction_process = [p in (DUNNING, COMPLAINT) for p in range(FOLLOW_UP + 1)]
        # the shape: "sudden" jumps to full drift on drift_start (f = 1 from then on); "champion" stops
        # executive meetings at drift_start (and _Touches puts the dialogue below decision level at once)
        self.sudden = churn_shape == "sudden"
        self.friction_at_churn = SHAPE_FRICTION_AT_CHURN[churn_shape]
        # per process: None, or the drift fraction after which its touches stop (0: from drift_start on)
        self.stop_at: list[float | None] = [None] * (FOLLOW_UP + 1)
        self.stop_at[ORDER] = SHAPE_ORDERS_STOP_AT_DRIFT[churn_shape]
        if churn_shape == "champion":
            self.stop_at[MANAGEMENT] = 0.0
        # "sudden": the part of a gap drawn before drift_start that reaches past it runs at the drift
        # rate (its length past drift_start stretched by healthy rate / drift rate), so the jump is immediate
        self.stretch = [1.0 / rate_at_churn[p] if rate_at_churn.get(p) else math.inf
                        for p in range(FOLLOW_UP + 1)]

    def gap_days(self, c: _Customer, process: int, day: int) -> float:
        mean = c.mean_gap[process]
        if c.drift_start is not None and (day > c.drift_start or (self.sudden and day == c.drift_start)):
            f = 1.0 if self.sudden else min(1.0, (day - c.drift_start) / (c.churn_day - c.drift_start))
            rate = 1 + self.drift_rate_change[process] * f
            if rate <= 0:
                return math.inf  # a touch that stops (the champion's executive meetings)
            mean /= rate
        elif c.rough_patch is not None and self.friction_process[process] and \
                c.rough_patch[0] <= day < c.rough_patch[1]:
            mean /= ROUGH_PATCH_RATE
        if self.planned[process]:
            return mean * (0.4 + 1.2 * self.rand())   # planned rhythms: regular-ish
        return -mean * math.log(1.0 - self.rand())    # things that just happen: memoryless

    def cross(self, c: _Customer, process: int, origin: float, target: float) -> float:
        """``sudden``: stretch the part of a gap from ``origin`` that lies past drift_start."""
        ds = c.drift_start
        if ds is not None and origin < ds <= target:
            return ds + (target - ds) * self.stretch[process]
        return target

    def schedule(self, c: _Customer, process: int, day: float) -> tuple | None:
        """The next touch of ``process`` at or after ``day``: (utc_s, idx, process, day, second)."""
        rand, weekday, thinning = self.rand, self.weekday, self.thinning
        while True:
            if day >= c.end_day:  # also infinite days (a touch that stopped)
                return None
            d = int(day)
            if d >= c.end_day:
                return None
            wd = weekday[d + 1]
            if wd >= 5 and (process != ORDER or rand() < 0.7):
                d += 7 - wd  # business happens on weekdays (a few web orders come at weekends)
                if d >= c.end_day:
                    return None
            stop = self.stop_at[process]
            if stop is not None and c.drift_start is not None and d >= c.drift_start and \
                    (stop <= 0 or (d - c.drift_start) / (c.churn_day - c.drift_start) > stop):
                return None
            thin = thinning[d + 1]
            if thin and rand() < thin:
                day = d + 1 + self.gap_days(c, process, d) * 0.5
                if self.sudden:
                    day = self.cross(c, process, d, day)
                continue
            second = 27000 + int(rand() * 36000)  # 07:30-17:30 local
            utc = d * 86400 + second - self.offset_s[c.tz][self.dst[d + 1]]
            return (utc, c.idx, process, d, second)

    def first_touch(self, c: _Customer, process: int) -> tuple | None:
        mean = c.mean_gap[process]
        if c.added_day:  # a new customer: onboarding starts with sales within days
            start = c.added_day + (self.rand() * 5 if process == SALES else self.rand() * mean)
        else:
            start = self.rand() * mean
        if self.sudden:
            start = self.cross(c, process, c.added_day, start)
        return self.schedule(c, process, start)

    def next_touch(self, c: _Customer, process: int, day: int) -> tuple | None:
        """The touch of ``process`` after this one on ``day`` (dunning: see ``_next_dunning``)."""
        if process == DUNNING:
            return self._next_dunning(c, day)
        target = day + max(1.0, self.gap_days(c, process, day))
        return self.schedule(c, process, self.cross(c, process, day, target) if self.sudden else target)

    def _next_dunning(self, c: _Customer, day: int) -> tuple | None:
        """An unpaid invoice escalates to its next stage in about two weeks; a paid one ends the
        episode and the next invoice falls overdue after a gap."""
        f = self.friction(c, day)
        if c.dunning_stage < 3 and self.rand() < 0.25 + 0.6 * f:
            c.dunning_stage += 1  # unpaid: escalate in about two weeks
            step = 10 + int(self.rand() * 9)
            c.dunning_days += step
            return self.schedule(c, DUNNING, day + step)
        c.dunning_stage = -1
        target = day + 1 + self.gap_days(c, DUNNING, day)
        return self.schedule(c, DUNNING, self.cross(c, DUNNING, day, target) if self.sudden else target)

    def follow_up(self, c: _Customer, day: int) -> tuple | None:
        """After an order, maybe a follow-up call (the call that keeps customers; less when
        drifting): a sales touch filed as FOLLOW_UP."""
        if self.rand() < FOLLOW_UP_SHARE[c.segment] * (1 - 0.8 * self.drift(c, day)):
            fu = self.schedule(c, SALES, day + 2 + self.rand() * 5)
            if fu is not None:
                return (fu[0], fu[1], FOLLOW_UP, fu[3], fu[4])
        return None

    def friction(self, c: _Customer, day: int) -> float:
        """How rough the relationship is: the drift, or a loyal customer's rough patch."""
        patch = c.rough_patch
        if patch is not None and patch[0] <= day < patch[1]:
            return ROUGH_PATCH_FRICTION
        if self.friction_at_churn != 1.0:
            return self.friction_at_churn * self.drift(c, day)
        return self.drift(c, day)

    def drift(self, c: _Customer, day: int) -> float:
        """Drift progress f: 0 before drift_start, 1 at the churn date (``sudden``: 1 from drift_start)."""
        if c.drift_start is None or day < c.drift_start:
            return 0.0
        if self.sudden:
            return 1.0
        if day == c.drift_start:
            return 0.0
        return min(1.0, (day - c.drift_start) / (c.churn_day - c.drift_start))


class _Touches:
    """What a touch says: one method per process, each returning (line, event_type, department).

    Lines are formatted directly (no json.dumps: the hot loop); event ids look like UUIDs, a
    per-seed prefix plus a counter makes them unique by construction."""

    def __init__(self, cal: _Calendar, rng: random.Random, rhythm: _Rhythm, seed: int, churn_shape: str) -> None:
        self.rand, self.gauss = rng.random, rng.gauss
        self.drift, self.friction = rhythm.drift, rhythm.friction
        self.cal = cal
        self.iso, self.clock, self.dst, self.offset_s, self.offset_str = (
            cal.iso, cal.clock, cal.dst, cal.offset_s, cal.offset_str)
        self.managers = [m[0] for m in ACCOUNT_MANAGERS]
        self.notes = {k: [json.dumps(n, ensure_ascii=False) for n in v] for k, v in NOTES.items()}
        id_prefix = f"{random.Random(seed ^ 0x5EED).getrandbits(64):016x}"
        self.id_prefix = f"{id_prefix[:8]}-{id_prefix[8:12]}-4{id_prefix[13:16]}-8{id_prefix[1:4]}-"
        self.counter = 0
        self.champion = churn_shape == "champion"
        self.champion_top = HEALTHY_TOP_SHARE * CHAMPION_TOP_SHARE_FACTOR
        self.by_process = {SALES: self.sales, RECEPTION: self.reception, SERVICE: self.service,
                           ORDER: self.order, DUNNING: self.dunning, COMPLAINT: self.complaint,
                           SURVEY: self.survey, MANAGEMENT: self.management, OTHER: self.other}

    def write(self, c: _Customer, process: int, day: int, second: int) -> tuple:
        """The touch's line, with a new event id: (line, event_type, department)."""
        eid = self.new_id()
        if process == FOLLOW_UP:
            return self.sales(c, day, second, eid, follow_up=True)
        return self.by_process[process](c, day, second, eid)

    def new_id(self) -> str:
        self.counter += 1
        return f"{self.id_prefix}{self.counter:012x}"

    # --- shared parts of a line ----------------------------------------------------------------
    def stamp(self, c: _Customer, day: int, second: int) -> str:
        return f"{self.iso[day + 1]}T{self.clock[second]}{self.offset_str[c.tz][self.dst[day + 1]]}"

    def manager_of(self, c: _Customer, day: int) -> str:
        change = c.manager_change
        if change is not None and day >= change[0]:
            return self.managers[change[1]]
        return self.managers[c.manager]

    def role(self, c: _Customer, day: int, f: float) -> str:
        # drifting customers are reached lower in their organisation: stakeholder coverage narrows
        r = self.rand()
        if self.champion and c.drift_start is not None and day >= c.drift_start:
            top = self.champion_top  # the champion has left: at once, not gradually
        else:
            top = HEALTHY_TOP_SHARE * (1 - TOP_SHARE_FALL_AT_CHURN * f)
        if r < top:
            return "executive" if r < top * EXECUTIVE_SHARE_OF_TOP else "decision_maker"
        return "user" if r < top + 0.35 else ("finance" if r < top + 0.42 else "other")

    def note(self, kind: str, share: float) -> str:
        if self.rand() < share:
            options = self.notes[kind]
            return f',"note":{options[int(self.rand() * len(options))]}'
        return ""

    # --- one method per process ----------------------------------------------------------------
    def sales(self, c: _Customer, day: int, second: int, eid: str, follow_up: bool = False) -> tuple:
        rand = self.rand
        f = self.drift(c, day)
        r = rand()
        if follow_up:
            etype = "call" if r < 0.6 else "email"
        else:
            meeting_share = MEETING_SHARE[c.segment]
            etype = "meeting" if r < meeting_share else ("call" if r < meeting_share + 0.43 else "email")
        direction = "outbound" if follow_up or rand() < 0.65 - 0.25 * f else "inbound"
        if etype == "call":
            answered = rand() < (0.95 if direction == "inbound" else 0.85 - 0.35 * f)
            if answered:
                payload = (f'{{"answered":true,"duration_s":{60 + int(rand() * 1500)},'
                           f'"transferred":false,"resolved":{"true" if rand() < 0.85 else "false"}}}')
            else:
                payload = '{"answered":false,"duration_s":0}'
        elif etype == "meeting":
            payload = f'{{"duration_s":{1800 * (1 + int(rand() * 4))}}}'
        else:
            payload = '{"subject":"Re: order follow-up"}' if follow_up else "{}"
        text = (',"note":"Follow-up after order: is everything as agreed?"' if follow_up
                else self.note("sales", 0.3))
        line = (f'{{"schema_version":1,"event_id":"{eid}","event_type":"{etype}",'
                f'"occurred_at":"{self.stamp(c, day, second)}","customer_id":"{c.customer_id}",'
                f'"department":"sales","direction":"{direction}","employee_id":"{self.manager_of(c, day)}",'
                f'"contact_role":"{self.role(c, day, f)}","source":"crm"{text},"payload":{payload}}}')
        return line, etype, "sales"

    def reception(self, c: _Customer, day: int, second: int, eid: str) -> tuple:
        rand = self.rand
        f = self.friction(c, day)
        answered = rand() < 0.9 - 0.3 * f
        if answered:
            transferred = rand() < 0.25
            resolved = rand() < (0.5 if transferred else 0.8)
            payload = (f'{{"answered":true,"duration_s":{20 + int(rand() * 400)},'
                       f'"transferred":{"true" if transferred else "false"},'
                       f'"resolved":{"true" if resolved else "false"}}}')
        else:
            payload = '{"answered":false,"duration_s":0,"transferred":false}'
        r = rand()
        contact = "user" if r < 0.6 else ("other" if r < 0.85 else
                                          ("decision_maker" if r < 0.95 else "finance"))
        # the phone system stamps milliseconds and sends a field the contract does not know yet
        line = (f'{{"schema_version":1,"event_id":"{eid}","event_type":"call",'
                f'"occurred_at":"{self.iso[day + 1]}T{self.clock[second]}.{int(rand() * 1000):03d}'
                f'{self.offset_str[c.tz][self.dst[day + 1]]}","customer_id":"{c.customer_id}",'
                f'"department":"reception","direction":"inbound","employee_id":"RC{1 + int(rand() * 4):02d}",'
                f'"contact_role":"{contact}","source":"pbx"{self.note("reception", 0.15)},'
                f'"pbx_queue":"switchboard","payload":{payload}}}')
        return line, "call", "reception"

    def service(self, c: _Customer, day: int, second: int, eid: str) -> tuple:
        rand = self.rand
        f = self.friction(c, day)
        resolved = rand() < 0.88 - 0.3 * f
        first_fix = resolved and rand() < 0.75 - 0.3 * f
        contact = "user" if rand() < 0.75 else ("decision_maker" if rand() < 0.6 else "other")
        line = (f'{{"schema_version":1,"event_id":"{eid}","event_type":"service_visit",'
                f'"occurred_at":"{self.stamp(c, day, second)}","customer_id":"{c.customer_id}",'
                f'"department":"service","direction":"outbound","employee_id":"SV{1 + int(rand() * 10):02d}",'
                f'"contact_role":"{contact}","source":"field_service"{self.note("service", 0.4)},'
                f'"payload":{{"resolved":{"true" if resolved else "false"},'
                f'"first_time_fix":{"true" if first_fix else "false"}}}}}')
        return line, "service_visit", "service"

    def order(self, c: _Customer, day: int, second: int, eid: str) -> tuple:
        rand = self.rand
        # the ERP sends UTC timestamps
        utc = day * 86400 + second - self.offset_s[c.tz][self.dst[day + 1]]
        uday, usecond = divmod(utc, 86400)
        amount = c.order_amount * math.exp(0.5 * (rand() + rand() + rand() - 1.5))
        product = c.product_lines[int(rand() * len(c.product_lines))]
        contact = "user" if rand() < 0.7 else "decision_maker"
        line = (f'{{"schema_version":1,"event_id":"{eid}","event_type":"order",'
                f'"occurred_at":"{self.iso[uday + 1]}T{self.clock[usecond]}Z","customer_id":"{c.customer_id}",'
                f'"department":"sales","direction":"inbound","contact_role":"{contact}","source":"erp",'
                f'"payload":{{"amount":{amount:.2f},"currency":"{c.currency}","product_line":"{product}",'
                f'"order_id":"SO-{eid[-8:]}"}}}}')
        return line, "order", "sales"

    def dunning(self, c: _Customer, day: int, second: int, eid: str) -> tuple:
        if c.dunning_stage < 0:  # a new invoice falls overdue
            c.dunning_stage = 0
            c.dunning_invoice = f"INV-{self.cal.date_of(day).year}-{c.idx:06d}{day % 1000:03d}"
            c.dunning_amount = round(c.order_amount * (0.5 + self.rand() * 1.5), 2)
            c.dunning_days = 8 + int(self.rand() * 10)
        stage = DUNNING_STAGES[c.dunning_stage]
        line = (f'{{"schema_version":1,"event_id":"{eid}","event_type":"dunning_contact",'
                f'"occurred_at":"{self.stamp(c, day, second)}","customer_id":"{c.customer_id}",'
                f'"department":"finance","direction":"outbound","employee_id":"FI{1 + int(self.rand() * 4):02d}",'
                f'"contact_role":"finance","source":"erp","payload":{{"stage":"{stage}",'
                f'"amount_overdue":{c.dunning_amount:.2f},"days_overdue":{c.dunning_days},'
                f'"invoice_id":"{c.dunning_invoice}"}}}}')
        return line, "dunning_contact", "finance"

    def complaint(self, c: _Customer, day: int, second: int, eid: str) -> tuple:
        rand = self.rand
        f = self.friction(c, day)
        r = rand()
        severity = "high" if r < 0.1 + 0.35 * f else ("medium" if r < 0.45 + 0.2 * f else "low")
        department = "support" if rand() < 0.8 else "service"
        resolved = rand() < 0.8 - 0.4 * f
        contact = "user" if rand() < 0.6 else ("decision_maker" if rand() < 0.75 else "executive")
        line = (f'{{"schema_version":1,"event_id":"{eid}","event_type":"complaint",'
                f'"occurred_at":"{self.stamp(c, day, second)}","customer_id":"{c.customer_id}",'
                f'"department":"{department}","direction":"inbound","employee_id":"SP{1 + int(rand() * 5):02d}",'
                f'"contact_role":"{contact}","source":"helpdesk"{self.note("complaint", 0.7)},'
                f'"payload":{{"severity":"{severity}","resolved":{"true" if resolved else "false"}}}}}')
        return line, "complaint", department

    def survey(self, c: _Customer, day: int, second: int, eid: str) -> tuple:
        f = self.friction(c, day)
        score = min(10, max(0, round(self.gauss(c.nps_base - 5.5 * f, 1.3))))
        comments = self.notes["survey"]
        comment = comments[int(self.rand() * len(comments))] if self.rand() < 0.4 else "null"
        line = (f'{{"schema_version":1,"event_id":"{eid}","event_type":"survey_response",'
                f'"occurred_at":"{self.stamp(c, day, second)}","customer_id":"{c.customer_id}",'
                f'"department":"support","contact_role":"{self.role(c, day, f)}","source":"survey",'
                f'"payload":{{"nps_score":{score},"comment":{comment}}}}}')
        return line, "survey_response", "support"

    def management(self, c: _Customer, day: int, second: int, eid: str) -> tuple:
        rand = self.rand
        line = (f'{{"schema_version":1,"event_id":"{eid}","event_type":"meeting",'
                f'"occurred_at":"{self.stamp(c, day, second)}","customer_id":"{c.customer_id}",'
                f'"department":"management","direction":"outbound","employee_id":"MG{1 + int(rand() * 3):02d}",'
                f'"contact_role":"executive","source":"crm",'
                f'"note":"Executive business review","payload":{{"duration_s":{3600 + 1800 * int(rand() * 3)}}}}}')
        return line, "meeting", "management"

    def other(self, c: _Customer, day: int, second: int, eid: str) -> tuple:
        rand = self.rand
        etype = "call" if rand() < 0.5 else "email"
        direction = "inbound" if rand() < 0.5 else "outbound"
        payload = (f'{{"answered":true,"duration_s":{30 + int(rand() * 300)}}}' if etype == "call" else "{}")
        line = (f'{{"schema_version":1,"event_id":"{eid}","event_type":"{etype}",'
                f'"occurred_at":"{self.stamp(c, day, second)}","customer_id":"{c.customer_id}",'
                f'"department":"other","direction":"{direction}","employee_id":"OT{1 + int(rand() * 3):02d}",'
                f'"contact_role":"user","source":"crm"{self.note("other", 0.5)},"payload":{payload}}}')
        return line, etype, "other"


class _SendOrder:
    """The file's send order and its noise: a touch's line is sent at once or late (then it waits
    in ``pending``, a heap by send time, until the opportunity stream's ``drain_until`` moves it to
    ``buffer``), may be re-sent later, and may get a malformed copy. Full buffers are written out."""

    def __init__(self, fh, rng: random.Random, new_id: Callable[[], str], duplicate_rate: float,
                 late_rate: float, malformed_rate: float, progress: ProgressCallback | None,
                 horizon: int) -> None:
        self.fh, self.rand, self.new_id = fh, rng.random, new_id
        self.duplicate_rate, self.late_rate, self.malformed_rate = duplicate_rate, late_rate, malformed_rate
        self.progress, self.horizon = progress, horizon
        self.next_report = time.monotonic() + 1.0
        self.pending: list[tuple[int, int, str]] = []  # (send time, tie-break, line): late and re-sent lines
        self.seq = 0
        self.buffer: list[str] = []
        self.lines = self.duplicates = self.late = 0
        self.malformed_by_kind = {kind: 0 for kind in MALFORMED_KINDS}
        self.malformed_kinds = list(MALFORMED_KINDS)

    def send(self, line: str, utc: int, currency: str) -> None:
        """Send a touch's line occurring at ``utc``, with its noise."""
        rand = self.rand
        send = utc
        if rand() < self.late_rate:
            self.late += 1
            send = utc + 86400 + int(rand() * 9 * 86400)  # arrives 1-10 days late
            self.seq += 1
            heapq.heappush(self.pending, (send, self.seq, line))
        else:
            self.buffer.append(line)
        if rand() < self.duplicate_rate:
            self.duplicates += 1
            self.seq += 1
            heapq.heappush(self.pending, (send + 1 + int(rand() * 6 * 3600), self.seq, line))
        if rand() < self.malformed_rate:
            kind = self.malformed_kinds[sum(self.malformed_by_kind.values()) % len(self.malformed_kinds)]
            self.malformed_by_kind[kind] += 1
            self.buffer.append(_malform(kind, line, self.new_id(), currency))
        if len(self.buffer) >= 8192:
            self.write()
            if self.progress is not None and time.monotonic() >= self.next_report:
                self.next_report = time.monotonic() + 1.0
                self.progress(min(1.0, max(0.0, utc / self.horizon)), self.lines)

    def write(self) -> None:
        """Write out the buffered lines (none: nothing)."""
        if self.buffer:
            self.lines += len(self.buffer)
            self.fh.write("\n".join(self.buffer))
            self.fh.write("\n")
            self.buffer.clear()


def _malform(kind: str, line: str, event_id: str, currency: str) -> str:
    """A broken copy of ``line`` (with its own event_id) of the given kind."""
    record = json.loads(line)
    record["event_id"] = event_id
    if kind == "broken_json":
        text = json.dumps(record, ensure_ascii=False)
        return text[: len(text) // 2]  # a producer that crashed mid-write
    if kind == "missing_field":
        required = ("event_id", "event_type", "occurred_at", "customer_id", "department", "payload")
        del record[required[int(event_id[-3:], 16) % len(required)]]
    elif kind == "bad_enum":
        record["department"] = "logistics"
    elif kind == "negative_amount":
        record.update(event_type="order", direction="inbound",
                      payload={"amount": -125.0, "currency": currency, "product_line": "spare_parts"})
    elif kind == "bad_timestamp":
        # matches the RFC 3339 pattern but is no date: February 30th
        record["occurred_at"] = record["occurred_at"][:5] + "02-30" + record["occurred_at"][10:]
    return json.dumps(record, ensure_ascii=False)
