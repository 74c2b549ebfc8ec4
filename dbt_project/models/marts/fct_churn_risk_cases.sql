{#- One row per churn-risk case (int_risk_cases): a customer whose probability of drifting toward
    churn reached the opening probability, open while it stays at or above the closing one; what
    the case said on its opening day (drivers, reasons, health and value at stake), in the
    customer's and the reporting currency, and its current account manager; its kind: churn_risk
    (drifting) or went_silent (nothing heard for longer than the customer's rhythm allows: it may
    already have left). -#}
with risk_cases as (
    select * from {{ ref('int_risk_cases') }}
)

select
    case_id,
    customer_id,
    customer_name,
    account_manager_id,
    account_manager_name,
    account_manager_email,
    opened_on,
    closed_on,
    case_status,
    probability_at_open,
    peak_probability,
    severity,
    drivers,
    reasons,
    suggested_action,
    health_score,
    status,
    value_at_stake,
    currency,
    value_at_stake_reporting,
    reporting_currency,
    expected_value_at_risk,
    segment,
    cast(case_days as {{ dbt.type_bigint() }}) as case_days,
    case_kind,
    last_heard_on,
    cast(days_silent as {{ dbt.type_bigint() }}) as days_silent,
    cast(usual_heard_gap_days as {{ type_double() }}) as usual_heard_gap_days
from risk_cases
