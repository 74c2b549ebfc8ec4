"""dim_customers in the schema being validated (``build`` before publish): all rows.

A customer whose touches arrived before its master data (``has_master_data`` false: segment
'unknown', no account manager yet) is a normal state of an event-driven feed, not a broken mart:
the master-data checks apply to customers with master data, and the waiting ones are a warning."""

from __future__ import annotations

import great_expectations as gx

from great_expectations.expectations.row_conditions import Column

from expectations.suites import critical, warning
from expectations.suites.landed_customers import EMAIL_REGEX
from loyalty_core.contract import SEGMENTS

NAME = "mart_customers"
DATA = "dim_customers, all rows"

E = gx.expectations
_WITH_MASTER_DATA = Column("has_master_data") == True  # noqa: E712 - a GX row condition, not a Python test


def build() -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name=NAME, expectations=[
        critical(E.ExpectColumnValuesToNotBeNull, "every customer needs an id", column="customer_id"),
        critical(E.ExpectColumnValuesToBeUnique, "one row per customer, or health and alerts "
                 "double up", column="customer_id"),
        critical(E.ExpectColumnValuesToBeInSet, "segments drive baselines and priority",
                 column="segment", value_set=list(SEGMENTS), row_condition=_WITH_MASTER_DATA),
        critical(E.ExpectColumnValuesToNotBeNull, "alerts are routed to the account manager",
                 column="account_manager_id", row_condition=_WITH_MASTER_DATA),
        critical(E.ExpectColumnValuesToMatchRegex, "an account manager who cannot be e-mailed never "
                 "hears about a churn risk", column="account_manager_email", regex=EMAIL_REGEX,
                 row_condition=_WITH_MASTER_DATA),
        warning(E.ExpectColumnValuesToBeInSet, "a customer seen in touches but not yet in master data "
                "has no account manager to alert: its master data should follow",
                column="has_master_data", value_set=[True]),
    ])
