{#- The loyalty matrix per customer per month (its last day, or the as-of date for the current
    month), over the trailing loyalty.window_days:
      rational loyalty   promises kept: service visits resolved and fixed first time, inbound
                         calls answered; shrunk towards health.service.prior_rate
      emotional loyalty  50 + 50 x net promoter index (promoters minus detractors over answers,
                         shrunk towards 0 with health.service.prior_weight pseudo-answers), minus
                         loyalty.points_per_complaint per complaint; survey comments are counted
                         for context
      quadrant           ambassador (both strong), rationally_loyal (promises kept, no attachment:
                         open to a better offer), emotionally_loyal (attached despite broken
                         promises: fix delivery), at_risk (neither). Strong = >= loyalty.strong_min. -#}
{%- set prior_rate = scoring('health.service.prior_rate') -%}
{%- set prior_weight = scoring('health.service.prior_weight') -%}
{%- set strong = scoring('loyalty.strong_min') -%}

with period_ends as (
    select date_day as period_end_date, month_start as period_month
    from {{ ref('int_calendar') }}
    where date_day = month_end or date_day = {{ as_of_date_literal() }}
),

scored as (
    select
        windows.customer_id,
        period_ends.period_month,
        windows.as_of_date as period_end_date,
        windows.segment,
        windows.account_manager_id,
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
            '50.0 + 50.0 * (promoters_loyalty_window - detractors_loyalty_window) / (surveys_loyalty_window + ' ~ prior_weight ~ ' + 0.000001)'
            ~ ' - ' ~ scoring('loyalty.points_per_complaint') ~ ' * complaints_loyalty_window') }}
            as emotional_score
    from {{ ref('int_customer_windows') }} as windows
    inner join period_ends on period_ends.period_end_date = windows.as_of_date
)

select
    {{ dbt.hash("customer_id || '|' || " ~ as_text('period_end_date')) }} as matrix_key,
    customer_id,
    period_month,
    period_end_date,
    segment,
    account_manager_id,
    surveys,
    promoters,
    detractors,
    survey_comments,
    complaints,
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
