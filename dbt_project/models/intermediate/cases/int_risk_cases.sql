{#- One row per churn-risk case: a customer whose probability of drifting toward churn
    (int_drift_days) reached risk_cases.open_probability (or the budget's opening probability); open
    while it stays at or above risk_cases.close_probability, closed the day it falls below
    (int_risk_case_spans). What the case said on its opening day (drivers in words with the
    customer's own usual values, the scorecard rules that also held as reasons, health and value at
    stake) is int_case_openings. Values at stake in the customer's currency and in the reporting
    currency (config/scoring.yml `reporting`); expected_value_at_risk = probability x value at stake;
    the account manager is the customer's current one. fct_churn_risk_cases publishes these rows;
    int_case_churn reads which cases a churned customer had. case_kind: churn_risk (a prediction: the
    customer is drifting) or went_silent (the customer had gone silent by the opening day: it may
    already have left, int_case_openings), each with its own suggested action. -#}
{%- set rc = scoring('risk_cases') -%}

with spans as (
    select * from {{ ref('int_risk_case_spans') }}
),

openings as (
    select * from {{ ref('int_case_openings') }}
),

customers as (
    select * from {{ ref('int_customers') }}
)

select
    {{ dbt.hash("spans.customer_id || '|churn_risk|' || " ~ as_text('spans.opened_on')) }} as case_id,
    spans.customer_id,
    customers.customer_name,
    customers.account_manager_id,
    customers.account_manager_name,
    customers.account_manager_email,
    spans.opened_on,
    case when spans.last_elevated_day < {{ drift_last_day() }} then {{ add_days('spans.last_elevated_day', 1) }} end as closed_on,
    case when spans.last_elevated_day < {{ drift_last_day() }} then 'closed' else 'open' end as case_status,
    cast(spans.probability_at_open as {{ type_double() }}) as probability_at_open,
    cast(spans.peak_probability as {{ type_double() }}) as peak_probability,
    case when spans.probability_at_open >= {{ rc['high_probability'] }} then 'high' else 'medium' end as severity,
    openings.drivers,
    openings.reasons,
    case when openings.went_silent then {{ sql_string(rc.get('went_silent_action') or rc['suggested_action']) }}
         else {{ sql_string(rc['suggested_action']) }} end as suggested_action,
    openings.health_score,
    openings.status,
    cast(openings.value_at_stake as {{ type_double() }}) as value_at_stake,
    coalesce(openings.currency, customers.currency) as currency,
    cast(openings.value_at_stake * {{ reporting_rate('coalesce(openings.currency, customers.currency)') }} as {{ type_double() }}) as value_at_stake_reporting,
    {{ sql_string(scoring('reporting.currency')) }} as reporting_currency,
    cast(spans.probability_at_open * openings.value_at_stake * {{ reporting_rate('coalesce(openings.currency, customers.currency)') }} as {{ type_double() }}) as expected_value_at_risk,
    coalesce(openings.segment, openings.health_segment) as segment,
    {{ days_between('spans.opened_on', 'spans.last_elevated_day') }} + 1 as case_days,
    case when openings.went_silent then 'went_silent' else 'churn_risk' end as case_kind,
    openings.last_heard_on,
    openings.days_silent,
    openings.usual_heard_gap_days
from spans
inner join openings
    on openings.customer_id = spans.customer_id and openings.opened_on = spans.opened_on
inner join customers
    on customers.customer_id = spans.customer_id
