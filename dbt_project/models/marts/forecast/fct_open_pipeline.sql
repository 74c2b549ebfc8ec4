{#- The open sales pipeline at the end of the as-of date: one row per open opportunity (its latest
    state), with the value weighted by the stated probability and by its account manager's track
    record at that stage (int_forecast_snapshots), the quarter it is expected to close in
    (in_current_quarter: by the end of the as-of date's quarter, overdue ones included: "this
    quarter's pipeline"), and the relationship around it: days since the customer's last two-way
    dialogue (fct_dialogue_daily) and, from forecast.silent_opportunity_days without one,
    without_dialogue with the sentence that says so (the same words as on a churn-risk case). -#}

{%- set as_of = as_of_date_literal() -%}
{%- set silent_days = scoring('forecast.silent_opportunity_days') | int -%}

with snapshots as (
    select * from {{ ref('int_forecast_snapshots') }}
),

customers as (
    select * from {{ ref('dim_customers') }}
),

dialogue_daily as (
    select * from {{ ref('fct_dialogue_daily') }}
),

open_now as (
    select *
    from snapshots
    where snapshot_kind = 'as_of'
),

joined as (
    select
        open_now.*,
        customers.customer_name,
        customers.account_manager_id as customer_account_manager_id,
        dialogue.days_since_dialogue,
        dialogue.last_dialogue_date
    from open_now
    left join customers on customers.customer_id = open_now.customer_id
    left join dialogue_daily as dialogue
        on dialogue.customer_id = open_now.customer_id and dialogue.as_of_date = {{ as_of }}
)

select
    opportunity_id,
    customer_id,
    customer_name,
    account_manager_id,
    {{ as_of }} as as_of_date,
    stated_on,
    pipeline_stage,
    stated_probability,
    track_record_probability,
    track_record_deals,
    amount,
    currency,
    cast(amount_reporting as {{ type_double() }}) as amount_reporting,
    cast(amount_reporting * stated_probability as {{ type_double() }}) as stated_value_reporting,
    cast(amount_reporting * track_record_probability as {{ type_double() }}) as track_record_value_reporting,
    {{ sql_string(scoring('reporting.currency')) }} as reporting_currency,
    expected_close_date,
    first_expected_close_date,
    {{ quarter_start('expected_close_date') }} as expected_close_quarter,
    expected_close_date <= {{ quarter_end(as_of) }} as in_current_quarter,
    expected_close_date < {{ as_of }} as is_overdue,
    expected_close_date > first_expected_close_date as has_slipped,
    days_since_dialogue,
    last_dialogue_date,
    coalesce(days_since_dialogue >= {{ silent_days }}, true) as without_dialogue,
    case when coalesce(days_since_dialogue >= {{ silent_days }}, true) then
        {{ silent_opportunity_words('opportunity_id', 'pipeline_stage', 'amount', 'currency', 'expected_close_date', 'days_since_dialogue') }}
    end as silence_words
from joined
