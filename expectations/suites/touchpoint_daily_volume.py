"""Daily touchpoint volume per event type, against a band learned from the trailing weeks.

The data has one row per checked (closed) event date and one column per event type: distinct
event ids landed for that date so far. Parameters ``<type>_min``/``<type>_max`` are computed per
date from the same weekday of the trailing weeks (expectations.frames.volume_band): B2B contact
has a weekly rhythm, so a Sunday is compared with Sundays.
"""

from __future__ import annotations

import great_expectations as gx

from expectations.suites import critical, param, warning
from loyalty_core.contract import EVENT_TYPES

NAME = "touchpoint_daily_volume"
DATA = "one row per closed event date, one column per event type (distinct events)"

E = gx.expectations


def build() -> gx.ExpectationSuite:
    expectations = []
    for event_type in EVENT_TYPES:
        expectations += [
            critical(E.ExpectColumnValuesToBeBetween, "a collapsed feed looks like customer silence "
                     "and would raise false churn alerts", column=event_type,
                     min_value=param(f"{event_type}_min")),
            warning(E.ExpectColumnValuesToBeBetween, "a surge usually means a replay or a doubled "
                    "feed", column=event_type, max_value=param(f"{event_type}_max")),
        ]
    return gx.ExpectationSuite(name=NAME, expectations=expectations)
