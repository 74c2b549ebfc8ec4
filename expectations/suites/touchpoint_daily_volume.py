"""Daily touchpoint volume per event type, against a band learned from the trailing weeks.

The data has one row per checked (closed) event date and event type: ``events`` (distinct event
ids landed for that date so far) and the band ``band_low``-``band_high``, computed per date and
type from the same weekday of the trailing weeks (expectations.frames.volume_band): B2B contact
has a weekly rhythm, so a Sunday is compared with Sundays. A type without enough history has no
band and no row. All the days a run checks are one table, validated once: a first run over a
month of history checks some 25 days, and one Great Expectations validation per day cost half a
second each (11 of the gate's 15 seconds). Each failing row is reported as its own finding, named
by its date and event type (expectations.gate.runner).
"""

from __future__ import annotations

import great_expectations as gx

from expectations.suites import critical, warning

NAME = "touchpoint_daily_volume"
DATA = "one row per closed event date and event type with a band: events, band_low, band_high"
#: The columns that name a failing row: its finding's batch (the date) and column (the event type).
ROW_NAMES = ("event_date", "event_type")

E = gx.expectations


def build() -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name=NAME, expectations=[
        critical(E.ExpectColumnPairValuesAToBeGreaterThanB, "a collapsed feed looks like customer silence "
                 "and would raise false churn alerts", column_A="events", column_B="band_low", or_equal=True),
        warning(E.ExpectColumnPairValuesAToBeGreaterThanB, "a surge usually means a replay or a doubled "
                "feed", column_A="band_high", column_B="events", or_equal=True),
    ])
