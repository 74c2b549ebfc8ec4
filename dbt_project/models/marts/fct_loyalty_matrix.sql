{#- The loyalty matrix per customer per month (its last day, or the as-of date for the current
    month), over the trailing loyalty.window_days:
      rational loyalty   promises kept: service visits resolved and fixed first time, inbound
                         calls answered; shrunk towards health.service.prior_rate
      emotional loyalty  50 + 50 x net promoter index: promoters minus detractors over the
                         evidence, where each complaint counts as loyalty.complaint_weight of a
                         detractor answer, shrunk towards the neutral 0 with loyalty.prior_answers
                         pseudo-answers. Absence of evidence is not evidence of low loyalty: a
                         customer without answers or complaints scores the neutral 50, and one
                         answer moves it only part of the way; survey comments are counted for
                         context
      quadrant           ambassador (both strong), rationally_loyal (promises kept, no attachment:
                         open to a better offer), emotionally_loyal (attached despite broken
                         promises: fix delivery), at_risk (neither). Strong = >= loyalty.strong_min.
    Also carries what fct_sales_platform aggregates (country, revenue, potential, health status).
    Incremental: a run recomputes the months from the earliest rebuilt day on (the current month's
    row is replaced as the month goes on). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['customer_id', 'period_month'],
    on_schema_change='append_new_columns',
    pre_hook="{{ prune_customer_days('period_end_date') }}"
) }}
{%- set prior_rate = scoring('health.service.prior_rate') -%}
{%- set prior_weight = scoring('health.service.prior_weight') -%}
{%- set strong = scoring('loyalty.strong_min') -%}
{%- set prior_answers = scoring('loyalty.prior_answers') -%}
{%- set complaint_weight = scoring('loyalty.complaint_weight') -%}

{%- set since = rebuild_floor('period_end_date') %}

with calendar as (
    select * from {{ ref('int_calendar') }}
),

windows as (
    select * from {{ ref('int_customer_windows') }}
),

health as (
    select * from {{ ref('fct_customer_health_daily') }}
),

versions as (
    select * from {{ ref('int_customer_versions') }}
),

period_ends as (
    select date_day as period_end_date, month_start as period_month
    from calendar
    where (date_day = month_end or date_day = {{ as_of_date_literal() }})
    {% if since is not none %}and date_day >= {{ since }}{% endif %}
),

scored as (
    select
        windows.customer_id,
        period_ends.period_month,
        windows.as_of_date as period_end_date,
        windows.segment,
        windows.account_manager_id,
        coalesce(versions.country, 'unknown') as country,
        windows.order_amount_365d as revenue_trailing_year,
        windows.annual_potential,
        health.status,
        windows.first_day,
        windows.inputs_landed_at,
        windows.surveys_loyalty_window as surveys,
        windows.promoters_loyalty_window as promoters,
        windows.detractors_loyalty_window as detractors,
        windows.survey_comments_loyalty_window as survey_comments,
        windows.complaints_loyalty_window as complaints,
        {{ clamp_0_100(
            '100.0 * (visits_resolved_loyalty_window + visits_first_time_fix_loyalty_window + inbound_calls_answered_loyalty_window + '
            ~ prior_rate ~ ' * ' ~ prior_weight ~ ') / (2 * visits_loyalty_window + inbound_calls_loyalty_window + ' ~ prior_weight ~ ' + 0.000001)') }}
            as rational_score,
        {{ clamp_0_100(
            '50.0 + 50.0 * (promoters_loyalty_window - detractors_loyalty_window - ' ~ complaint_weight ~ ' * complaints_loyalty_window)'
            ~ ' / (surveys_loyalty_window + ' ~ complaint_weight ~ ' * complaints_loyalty_window + ' ~ prior_answers ~ ' + 0.000001)') }}
            as emotional_score
    from windows
    inner join period_ends on period_ends.period_end_date = windows.as_of_date
    inner join health
        on health.customer_id = windows.customer_id and health.as_of_date = windows.as_of_date
    left join versions
        on versions.customer_id = windows.customer_id
       and windows.as_of_date >= versions.valid_from and windows.as_of_date < versions.valid_to
    {% if since is not none -%}
    where windows.as_of_date >= {{ since }}
    {%- endif %}
)

select
    {{ dbt.hash("customer_id || '|' || " ~ as_text('period_month')) }} as matrix_key,
    customer_id,
    period_month,
    period_end_date,
    segment,
    account_manager_id,
    country,
    revenue_trailing_year,
    annual_potential,
    status,
    case when first_day >= period_month then 1 else 0 end as is_new_customer,
    inputs_landed_at,
    cast(surveys as {{ dbt.type_bigint() }}) as surveys,
    cast(promoters as {{ dbt.type_bigint() }}) as promoters,
    cast(detractors as {{ dbt.type_bigint() }}) as detractors,
    cast(survey_comments as {{ dbt.type_bigint() }}) as survey_comments,
    cast(complaints as {{ dbt.type_bigint() }}) as complaints,
    {{ round_to("rational_score", 1) }} as rational_loyalty,
    {{ round_to("emotional_score", 1) }} as emotional_loyalty,
    rational_score >= {{ strong }} as rational_strong,
    emotional_score >= {{ strong }} as emotional_strong,
    case
        when rational_score >= {{ strong }} and emotional_score >= {{ strong }} then 'ambassador'
        when rational_score >= {{ strong }} then 'rationally_loyal'
        when emotional_score >= {{ strong }} then 'emotionally_loyal'
        else 'at_risk'
    end as quadrant
from scored
