"""Landed touchpoints: the rows of the files landed since the last passing gate (or of the dates asked).

Run-time parameters (computed in expectations.frames): ``occurred_at_min`` (now - max age),
``occurred_at_max`` (the batch's latest landed_at + clock skew: nothing happens after it
arrives), ``unknown_customer_ids`` (the batch's customer ids without a master-data record),
``known_customer_mostly`` (1 - tolerance) and ``resend_mostly``.

Membership is tested against the (small) set of UNKNOWN ids of the batch rather than the set of
known ones: the same rows fail, and GX copies an expectation's parameters many times per run, so a
value set of every customer would cost seconds.
"""

from __future__ import annotations

import great_expectations as gx
from great_expectations.expectations.row_conditions import Column

from expectations.suites import critical, param, warning
from loyalty_core.contract import (CONTACT_ROLES, DEPARTMENTS, DUNNING_STAGES, EVENT_TYPES,
                                      SCHEMA_VERSION, SEVERITIES)

NAME = "landed_touchpoints"
DATA = "touchpoint rows landed since the last passing gate"

E = gx.expectations
REQUIRED = ("event_id", "schema_version", "event_type", "occurred_at", "event_date", "customer_id",
            "department", "landed_at")
NON_NEGATIVE = ("duration_s", "amount", "amount_overdue", "days_overdue")


def build() -> gx.ExpectationSuite:
    expectations = [
        critical(E.ExpectColumnValuesToNotBeNull, f"{column} is required: "
                 "staging and scoring cannot place a row without it", column=column)
        for column in REQUIRED
    ]
    expectations += [
        critical(E.ExpectColumnValuesToBeInSet, "only contract v1 is understood downstream",
                 column="schema_version", value_set=[SCHEMA_VERSION]),
        critical(E.ExpectColumnValuesToBeInSet, "scoring maps each event type to a dimension; an "
                 "unknown type would be silently ignored", column="event_type", value_set=list(EVENT_TYPES)),
        critical(E.ExpectColumnValuesToBeInSet, "dialogue coverage is reported by department",
                 column="department", value_set=list(DEPARTMENTS)),
        critical(E.ExpectColumnValuesToBeInSet, "two-way dialogue is told apart by direction",
                 column="direction", value_set=["inbound", "outbound"]),
        critical(E.ExpectColumnValuesToBeInSet, "stakeholder breadth counts contact roles",
                 column="contact_role", value_set=list(CONTACT_ROLES)),
        critical(E.ExpectColumnValuesToBeInSet, "dunning friction is weighted by stage",
                 column="stage", value_set=list(DUNNING_STAGES)),
        critical(E.ExpectColumnValuesToBeInSet, "complaint weight depends on severity",
                 column="severity", value_set=list(SEVERITIES)),
        critical(E.ExpectColumnValuesToBeBetween, "a touch from the future (beyond clock skew) or "
                 "from decades ago is a producer clock or default-date bug and would distort "
                 "days-since-dialogue", column="occurred_at",
                 min_value=param("occurred_at_min"), max_value=param("occurred_at_max")),
    ]
    expectations += [
        critical(E.ExpectColumnValuesToBeBetween, "amounts, counts and durations cannot be negative; "
                 "a negative value flips sums in the sales platform and service metrics",
                 column=column, min_value=0)
        for column in NON_NEGATIVE
    ]
    expectations += [
        critical(E.ExpectColumnValuesToBeBetween, "NPS is 0-10; anything else breaks promoter/"
                 "detractor classes and emotional loyalty", column="nps_score", min_value=0, max_value=10),
        critical(E.ExpectColumnValuesToNotBeNull, "a survey answer without a score is not an answer",
                 column="nps_score", row_condition=Column("event_type") == "survey_response"),
        critical(E.ExpectColumnValuesToNotBeNull, "an order without an amount cannot count towards "
                 "the sales platform", column="amount", row_condition=Column("event_type") == "order"),
        critical(E.ExpectColumnValuesToNotBeInSet, "touches of customers unknown to master data cannot "
                 "be scored or routed to an account manager; a few are tolerated because master data "
                 "may land a little after a new customer's first touch", column="customer_id",
                 value_set=param("unknown_customer_ids"), mostly=param("known_customer_mostly")),
        warning(E.ExpectColumnValuesToNotBeInSet, "any touch of an unknown customer is worth a look",
                column="customer_id", value_set=param("unknown_customer_ids")),
        warning(E.ExpectColumnValuesToBeUnique, "re-sends are fine (staging keeps one), but many "
                "of them mean a producer is stuck in a retry loop", column="event_id",
                mostly=param("resend_mostly")),
        warning(E.ExpectColumnValuesToMatchRegex, "currencies are ISO 4217 codes",
                column="currency", regex=r"^[A-Z]{3}$"),
    ]
    return gx.ExpectationSuite(name=NAME, expectations=expectations)
