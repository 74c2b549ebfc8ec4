"""fct_customer_health_daily rows of the validated day (``as_of_date = as_of``).

Parameters: ``customer_count`` (rows of dim_customers in the same schema) and
``unknown_customer_ids`` (the health rows' customer ids missing from dim_customers).
"""

from __future__ import annotations

import great_expectations as gx

from expectations.suites import critical, param, warning

NAME = "mart_health"
DATA = "fct_customer_health_daily rows for the as-of date"

E = gx.expectations
SCORES = ("health_score", "dialogue_score", "stakeholder_score", "service_score",
          "financial_score", "commercial_score")
STATUSES = ["red", "yellow", "green"]


def build() -> gx.ExpectationSuite:
    expectations = [
        critical(E.ExpectTableRowCountToBeBetween, "an empty day would publish a blank portfolio",
                 min_value=1),
        critical(E.ExpectCompoundColumnsToBeUnique, "exactly one health row per customer per day; "
                 "duplicates double-count the portfolio and alerts",
                 column_list=["customer_id", "as_of_date"]),
        critical(E.ExpectColumnValuesToNotBeNull, "every scored customer has a health score",
                 column="health_score"),
        critical(E.ExpectColumnValuesToBeInSet, "the scorecard knows red, yellow and green only",
                 column="status", value_set=STATUSES),
        critical(E.ExpectColumnValuesToNotBeNull, "every scored customer has a status", column="status"),
        critical(E.ExpectColumnValuesToNotBeInSet, "a health row for a customer missing from "
                 "dim_customers cannot be routed", column="customer_id",
                 value_set=param("unknown_customer_ids")),
        warning(E.ExpectTableRowCountToEqual, "every customer should be scored every day",
                value=param("customer_count")),
    ]
    expectations += [
        critical(E.ExpectColumnValuesToBeBetween, "scores are on a 0-100 scale", column=column,
                 min_value=0, max_value=100)
        for column in SCORES
    ]
    return gx.ExpectationSuite(name=NAME, expectations=expectations)
