{#- The customers that churned, as fct_case_feedback_monthly counts them: one row per customer,
    the first of
      orders_stopped  a customer with at least churn_min_orders orders whose last order is more than
                      greatest(churn_lapse_min_days, churn_lapse_gaps x its usual gap between
                      orders) days before the as-of date; it churned on the day that silence
                      crossed the threshold (last order + the threshold);
      closed_lost     its account manager closed a case as lost (the day of the close);
    with its current account manager and whether it had a case: one opened on or before the churn
    day and at most recall_lookback_days before.

    Also what erasure keeps of a churned customer before it deletes the customer's rows
    (loyalty_monitor/erasure/: the month, the account manager and had_case, nothing that
    identifies the customer): tombstoned customers then still count in the month they churned.
    A table, not a view: its data tests, fct_case_feedback_monthly and erasure each read it, and a
    view would compute it again for every one of them (four data tests at 3.3 s each on the daily
    run at 10M events). -#}
{{ config(materialized='table') }}
{%- set p = case_feedback_params() -%}

with risk_cases as (
    select * from {{ ref('int_risk_cases') }}
),

lifecycle as (
    select * from {{ ref('int_case_lifecycle') }}
),

touchpoints as (
    select * from {{ ref('int_touchpoints') }}
),

customers as (
    select * from {{ ref('int_customers') }}
),

cases as (
    -- every churn-risk case and what its account manager did with it (no event: still new)
    select
        risk_cases.customer_id,
        risk_cases.opened_on,
        lifecycle.closed_at,
        coalesce(lifecycle.lifecycle_state, 'new') as lifecycle_state,
        lifecycle.close_outcome
    from risk_cases
    left join lifecycle on lifecycle.case_id = risk_cases.case_id
    where risk_cases.opened_on <= {{ as_of_date_literal() }}
),

orders_stopped as (
    {{ orders_stopped('touchpoints') }}
),

churn_events as (
    select customer_id, churned_at, 'orders_stopped' as churn_reason
    from orders_stopped
    union all
    select customer_id, closed_at as churned_at, 'closed_lost' as churn_reason
    from cases
    where lifecycle_state = 'closed' and close_outcome = 'lost'
),

churned as (
    select customer_id, churned_on, churn_reason
    from (
        select
            customer_id,
            cast(churned_at as date) as churned_on,
            churn_reason,
            row_number() over (partition by customer_id order by churned_at, churn_reason) as nth
        from churn_events
    ) as ranked
    where nth = 1
)

select
    churned.customer_id,
    customers.account_manager_id,
    churned.churned_on,
    cast({{ dbt.date_trunc('month', 'churned.churned_on') }} as date) as month_start,
    churned.churn_reason,
    case when exists (
        select 1 from cases
        where cases.customer_id = churned.customer_id
          and cases.opened_on <= churned.churned_on
          and cases.opened_on >= {{ add_days('churned.churned_on', -(p['recall_lookback_days'] | int)) }}
    ) then 1 else 0 end as had_case
from churned
inner join customers on customers.customer_id = churned.customer_id
