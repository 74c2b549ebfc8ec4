"""Customer master data: the customer rows (not tombstones) landed since the last passing gate.

Exact re-sends are collapsed before validation; a customer may legitimately change several times
in one batch, so identity is (customer_id, updated_at): two different records for the same
customer at the same instant make "the current master data" ambiguous.

Parameters: ``updated_at_max`` (the batch's latest landed_at + clock skew).
"""

from __future__ import annotations

import great_expectations as gx

from expectations.suites import critical, param, warning
from loyalty_core.contract import SCHEMA_VERSION, SEGMENTS

NAME = "landed_customers"
DATA = "customer rows landed since the last passing gate (tombstones and exact re-sends excluded)"

E = gx.expectations
REQUIRED = ("customer_id", "name", "segment", "account_manager_id", "account_manager_email",
            "updated_at")
#: Same rule as the contract's account_manager.email pattern.
EMAIL_REGEX = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def build() -> gx.ExpectationSuite:
    expectations = [
        critical(E.ExpectColumnValuesToNotBeNull, f"{column} is needed to score and route alerts",
                 column=column)
        for column in REQUIRED
    ]
    expectations += [
        critical(E.ExpectCompoundColumnsToBeUnique, "two different versions of a customer at the "
                 "same instant: the current master data would be ambiguous",
                 column_list=["customer_id", "updated_at"]),
        critical(E.ExpectColumnValuesToBeInSet, "segments drive segment baselines and alert "
                 "priority; an unknown segment would drop the customer from both",
                 column="segment", value_set=list(SEGMENTS)),
        critical(E.ExpectColumnValuesToMatchRegex, "an account manager who cannot be e-mailed never "
                 "hears about a churn risk", column="account_manager_email", regex=EMAIL_REGEX),
        critical(E.ExpectColumnValuesToBeBetween, "value at stake is ranked by annual potential",
                 column="annual_potential", min_value=0),
        critical(E.ExpectColumnValuesToBeInSet, "only contract v1 is understood downstream",
                 column="schema_version", value_set=[SCHEMA_VERSION]),
        critical(E.ExpectColumnValuesToBeBetween, "a change from the future would win over every "
                 "real later change", column="updated_at", max_value=param("updated_at_max")),
        warning(E.ExpectColumnValuesToMatchRegex, "countries are ISO 3166 alpha-2 codes",
                column="country", regex=r"^[A-Z]{2}$"),
        warning(E.ExpectColumnValuesToMatchRegex, "currencies are ISO 4217 codes",
                column="currency", regex=r"^[A-Z]{3}$"),
    ]
    return gx.ExpectationSuite(name=NAME, expectations=expectations)
