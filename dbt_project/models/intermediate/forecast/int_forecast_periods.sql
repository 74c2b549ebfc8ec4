{#- The forecasts of int_opportunity_forecasts, each in the groups it is judged in: per scope
    (each account manager, and the company: account_manager_id null) and per period:
      quarter        the calendar quarter in which the deal closed;
      track_record   the deals closed in the last forecast.track_record_quarters quarters (x 3
                     months) up to the as-of date: the record a manager is judged by.
    Both marts of the audit (fct_forecast_calibration, fct_forecast_audit) aggregate these rows. -#}

{%- set as_of = as_of_date_literal() -%}
{%- set next_day = add_days(as_of, 1) -%}

with forecasts as (
    select * from {{ ref('int_opportunity_forecasts') }}
),

periodised as (
    select
        'quarter' as period_type,
        forecasts.close_quarter_start as period_start,
        {{ quarter_end('forecasts.close_quarter_start') }} as period_end,
        forecasts.*
    from forecasts
    union all
    select
        'track_record' as period_type,
        {{ track_record_start(next_day) }} as period_start,
        {{ as_of }} as period_end,
        forecasts.*
    from forecasts
    where forecasts.deal_closed_on >= {{ track_record_start(next_day) }}
)

select 'manager' as scope, periodised.account_manager_id as scope_manager_id, periodised.*
from periodised
union all
select 'company' as scope, cast(null as {{ dbt.type_string() }}) as scope_manager_id, periodised.*
from periodised
