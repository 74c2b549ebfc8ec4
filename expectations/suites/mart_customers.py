"""dim_customers in the schema being validated (``build`` before publish): all rows."""

from __future__ import annotations

import great_expectations as gx

from expectations.suites import critical
from expectations.suites.landed_customers import EMAIL_REGEX
from loyalty_monitor.contract import SEGMENTS

NAME = "mart_customers"
DATA = "dim_customers, all rows"

E = gx.expectations


def build() -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name=NAME, expectations=[
        critical(E.ExpectColumnValuesToNotBeNull, "every customer needs an id", column="customer_id"),
        critical(E.ExpectColumnValuesToBeUnique, "one row per customer, or health and alerts "
                 "double up", column="customer_id"),
        critical(E.ExpectColumnValuesToBeInSet, "segments drive baselines and priority",
                 column="segment", value_set=list(SEGMENTS)),
        critical(E.ExpectColumnValuesToNotBeNull, "alerts are routed to the account manager",
                 column="account_manager_id"),
        critical(E.ExpectColumnValuesToMatchRegex, "an account manager who cannot be e-mailed never "
                 "hears about a churn risk", column="account_manager_email", regex=EMAIL_REGEX),
    ])
