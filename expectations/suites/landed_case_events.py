"""Landed case events (contract 1.2): what account managers did with churn-risk cases, the rows of
the files landed since the last passing gate (or of the dates asked).

The consumer dead-letters events that break the contract; this suite checks what the contract
cannot see from one message, and what a landing written by other means (an offline load, a
replayed or hand-made file) could still hold: required fields, the event type and its payload,
a snooze that ends before it starts, the time window, the same event id with two contents, and
above all whether the event is about a case the warehouse knows, of the customer it names.
A failing row is set aside in the quarantine (the case's state stays as it was) and the data
engineers are told; ``loyalty validate --release`` takes it in after a fix (for example once the
case it names is published).

Run-time parameters (computed in expectations.frames): ``occurred_at_min`` / ``occurred_at_max``
(as for touchpoints) and ``unknown_case_ids`` (the batch's case ids that the published warehouse
does not have; empty, with a note, when there is no warehouse to ask yet). The table has three
columns computed for the checks: ``case_customer_mismatch`` (the case's own customer, where the
event names another one), ``snooze_days`` (snooze until - the event's day) and
``conflicting_event_id`` (the event id, where earlier landed data or the batch holds it with
other content).
"""

from __future__ import annotations

import great_expectations as gx
from great_expectations.expectations.row_conditions import Column

from expectations.suites import critical, param
from loyalty_core.contract import CASE_EVENT_TYPES, CLOSE_OUTCOMES, FEEDBACK_VERDICTS, SCHEMA_VERSION

NAME = "landed_case_events"
DATA = "case event rows (acknowledge, snooze, close, feedback) landed since the last passing gate"

E = gx.expectations
REQUIRED = ("event_id", "schema_version", "event_type", "occurred_at", "event_date", "case_id",
            "customer_id", "actor", "landed_at")


def build() -> gx.ExpectationSuite:
    expectations = [
        critical(E.ExpectColumnValuesToNotBeNull, f"{column} is required: the case's state cannot be "
                 "derived from an event without it", column=column)
        for column in REQUIRED
    ]
    expectations += [
        critical(E.ExpectColumnValuesToBeInSet, "only contract v1 is understood downstream",
                 column="schema_version", value_set=[SCHEMA_VERSION]),
        critical(E.ExpectColumnValuesToBeInSet, "the case's state is derived from acknowledge, snooze "
                 "and close (feedback beside them); another type would be silently ignored",
                 column="event_type", value_set=list(CASE_EVENT_TYPES)),
        critical(E.ExpectColumnValuesToBeInSet, "precision counts closes by outcome; an unknown "
                 "outcome would count as none", column="outcome", value_set=list(CLOSE_OUTCOMES)),
        critical(E.ExpectColumnValuesToBeInSet, "precision counts feedback by verdict; an unknown "
                 "verdict would count as none", column="verdict", value_set=list(FEEDBACK_VERDICTS)),
        critical(E.ExpectColumnValuesToNotBeNull, "a snooze without an until day would hold the case "
                 "forever", column="snooze_until", row_condition=Column("event_type") == "snooze"),
        critical(E.ExpectColumnValuesToNotBeNull, "a snooze says why (the reminder repeats it)",
                 column="reason", row_condition=Column("event_type") == "snooze"),
        critical(E.ExpectColumnValuesToNotBeNull, "a close without an outcome says nothing about "
                 "whether the alert was right", column="outcome", row_condition=Column("event_type") == "close"),
        critical(E.ExpectColumnValuesToNotBeNull, "feedback without a verdict is not feedback",
                 column="verdict", row_condition=Column("event_type") == "feedback"),
        critical(E.ExpectColumnValuesToBeBetween, "a snooze that ends before the day it was given "
                 "holds nothing and reminds at once: a producer's date bug", column="snooze_days",
                 min_value=0),
        critical(E.ExpectColumnValuesToBeBetween, "an action from the future (beyond clock skew) or "
                 "from decades ago is a producer clock or default-date bug and would reorder the "
                 "case's states", column="occurred_at",
                 min_value=param("occurred_at_min"), max_value=param("occurred_at_max")),
        critical(E.ExpectColumnValuesToNotBeInSet, "an event about a case the warehouse does not know "
                 "changes nothing anyone sees (a typo, a case of another installation, or a warehouse "
                 "rebuilt without it): release it once the case is published", column="case_id",
                 value_set=param("unknown_case_ids")),
        critical(E.ExpectColumnValuesToBeNull, "the event names another customer than its case: it "
                 "would be filed under the wrong customer (and erased with the wrong one)",
                 column="case_customer_mismatch"),
        critical(E.ExpectColumnValuesToBeNull, "the same event id with different content: staging "
                 "would keep one version and silently drop a real action", column="conflicting_event_id"),
    ]
    return gx.ExpectationSuite(name=NAME, expectations=expectations)
