"""Touchpoint identity: one content per event id, within the batch and against all earlier landings.

Landing keeps re-sends (the same event id with the same content), and staging keeps one copy:
that is not a defect. The defect is the same event id carrying DIFFERENT content (a producer
re-using ids, or an id collision between systems): staging would keep one version and silently
drop a real touch. The data validated here has one row per distinct (event_id, content) among
the batch's event ids, over the batch and every earlier landed file, so a duplicate event_id in it
is exactly that defect.
"""

from __future__ import annotations

import great_expectations as gx

from expectations.suites import critical

NAME = "touchpoint_event_ids"
DATA = "one row per distinct (event_id, content) of the batch's event ids, batch + history"

E = gx.expectations


def build() -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name=NAME, expectations=[
        critical(E.ExpectColumnValuesToBeUnique, "the same event id with different content: staging "
                 "would keep one version and silently drop a real touch", column="event_id"),
    ])
