"""Thresholds of the quality gate. Defaults here; override in ``loyalty.toml`` under ``[quality]``
(e.g. ``clock_skew_minutes = 10``). Scoring parameters are not here: they live in config/scoring.yml.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields

from loyalty_monitor.settings import Settings


@dataclass(frozen=True)
class GateConfig:
    #: occurred_at / updated_at may lie this far in the future (producers' clocks drift).
    clock_skew_minutes: float = 10.0
    #: Older events are "absurdly old" (epoch-zero or default-date bugs), not late.
    max_event_age_days: int = 1830
    #: Share of touchpoint rows whose customer is not (yet) in master data before it is critical.
    #: Master data may arrive a little after a new customer's first touchpoint.
    unknown_customer_tolerance: float = 0.02
    #: ... but never fewer than this many rows: an event-driven run over a batch of nine rows with
    #: two new customers is a new customer arriving, not a broken feed.
    unknown_customer_floor_rows: int = 5
    #: The touchpoint feed is stale (critical) when its newest event is more than this many days
    #: before the last closed day: a producer or the landing consumer has stopped.
    feed_stale_days: int = 3
    #: Share of exact re-sends in a batch above which a warning is raised (staging dedups them).
    resend_warning_share: float = 0.05
    #: Daily volume band: learned from the same weekday of this many trailing weeks.
    volume_history_weeks: int = 4
    #: Fewer same-weekday samples than this and the band is not enforced yet.
    volume_min_history_days: int = 2
    #: Band = [median * low_factor - sigmas * sqrt(median), median * high_factor + sigmas * sqrt(median)].
    volume_low_factor: float = 0.5
    volume_high_factor: float = 2.0
    volume_poisson_sigmas: float = 3.0
    #: New touchpoint files are validated in chunks of about this much Parquet (bounded memory on
    #: a first run over a long history).
    chunk_mb: float = 64.0
    #: Without explicit dates, daily volume is judged for closed days of the last this many days
    #: (older days are history, not a broken feed now; pass --dates to audit them).
    volume_recent_days: int = 31
    #: How many failing values each finding quotes.
    examples: int = 5
    #: Rows that fail a row-level critical expectation (a null key, a value outside its set or
    #: range, an unknown customer, an event id with two contents) are set aside in the quarantine
    #: and the rest of the batch goes on, unless more than this share of a batch's rows fail: that
    #: is a broken producer or feed, and the run stops (systemic). 0 turns quarantine off: any
    #: failing row stops the run.
    quarantine_max_share: float = 0.01
    #: ... but up to this many failing rows of a batch are always set aside, whatever the share (one
    #: bad row in an event-driven batch of nine is a bad row, not a broken feed).
    quarantine_floor_rows: int = 5

    def quarantine_limit(self, rows: int) -> int:
        """How many failing rows of a batch of ``rows`` rows may be set aside before the batch
        counts as a systemic failure (0: quarantine is off)."""
        if self.quarantine_max_share <= 0:
            return 0
        return max(self.quarantine_floor_rows, int(self.quarantine_max_share * rows))

    @classmethod
    def from_settings(cls, settings: Settings) -> "GateConfig":
        raw = settings.extra.get("quality", {}) or {}
        known = {f.name: f for f in fields(cls)}
        unknown = set(raw) - set(known)
        if unknown:
            raise ValueError(f"unknown [quality] setting(s) in loyalty.toml: {', '.join(sorted(unknown))}")
        values = {name: type(getattr(cls, name))(value) for name, value in raw.items()}
        return dataclasses.replace(cls(), **values)
