"""fct_churn_alerts: all rows (alerts are few; every one must be deliverable).

Parameters: ``unknown_customer_ids`` and ``unknown_account_manager_ids`` (the alerts' ids that
are missing from dim_customers of the same schema).
"""

from __future__ import annotations

import great_expectations as gx

from expectations.suites import critical, param
from expectations.suites.landed_customers import EMAIL_REGEX
from expectations.suites.mart_health import STATUSES

NAME = "mart_alerts"
DATA = "fct_churn_alerts, all rows"

E = gx.expectations


def build() -> gx.ExpectationSuite:
    return gx.ExpectationSuite(name=NAME, expectations=[
        critical(E.ExpectColumnValuesToNotBeNull, "alert_id makes delivery idempotent",
                 column="alert_id"),
        critical(E.ExpectColumnValuesToBeUnique, "alert_id is the episode key; a duplicate would "
                 "send the same alert twice or suppress another", column="alert_id"),
        critical(E.ExpectColumnValuesToNotBeInSet, "every alert points to an existing customer",
                 column="customer_id", value_set=param("unknown_customer_ids")),
        critical(E.ExpectColumnValuesToNotBeInSet, "every alert points to an existing account manager",
                 column="account_manager_id", value_set=param("unknown_account_manager_ids")),
        critical(E.ExpectColumnValuesToNotBeNull, "an alert must reach someone",
                 column="account_manager_email"),
        critical(E.ExpectColumnValuesToMatchRegex, "an alert must reach someone",
                 column="account_manager_email", regex=EMAIL_REGEX),
        critical(E.ExpectColumnValuesToBeInSet, "alert severities are high, medium or low",
                 column="severity", value_set=["high", "medium", "low"]),
        critical(E.ExpectColumnValuesToBeInSet, "the scorecard knows red, yellow and green only",
                 column="status", value_set=STATUSES),
        critical(E.ExpectColumnValuesToBeBetween, "scores are on a 0-100 scale",
                 column="health_score", min_value=0, max_value=100),
    ])
