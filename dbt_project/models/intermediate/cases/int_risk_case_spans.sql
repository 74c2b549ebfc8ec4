{#- One row per churn-risk case, its span only: the day it opened, its last elevated day and its peak.
    A case opens the first day the drift probability (int_drift_days) reaches
    risk_cases.open_probability (after risk_cases.warmup_days), or, with
    risk_cases.cases_per_manager_per_month set, the opening probability that keeps the trailing
    year's cases within that budget, or, with risk_cases.target_precision set, the lowest opening
    probability at which the cases of the judged year reached that precision. It stays open while the probability stays at or above
    risk_cases.close_probability (a run of elevated days); the first day below closes it, and only
    then can a new case open for the same customer.

    Rebuilt in full on every run, from the elevated days only (a narrow scan of int_drift_days):
    what a case says on its opening day is int_case_openings, which is computed once per opening. -#}
{{ config(materialized='table') }}
{%- set rc = scoring('risk_cases') -%}

with drift_days as (
    select * from {{ ref('int_drift_days') }}
),

customers as (
    select * from {{ ref('int_customers') }}
),

elevated as (
    select
        drift.customer_id,
        drift.as_of_date,
        drift.drift_probability,
        drift.observed_days,
        drift.inputs_landed_at,
        lag(drift.as_of_date) over (partition by drift.customer_id order by drift.as_of_date) as previous_day
    from drift_days as drift
    where drift.drift_probability >= {{ rc['close_probability'] }}
),

runs as (
    -- consecutive elevated days; a day below close_probability ends the run
    select
        elevated.*,
        sum(case when previous_day is null or {{ days_between('previous_day', 'as_of_date') }} > 1 then 1 else 0 end)
            over (partition by customer_id order by as_of_date rows between unbounded preceding and current row) as run_number
    from elevated
),

{%- if rc.get('cases_per_manager_per_month') or rc.get('target_precision') %}
{#- the opening probabilities a budget or a target precision chooses from -#}
candidates as (
    {% for k in range([1, (rc['close_probability'] * 100) | round(0, 'ceil') | int] | max, 100) -%}
    select {{ k / 100 }} as threshold{{ ' union all' if not loop.last }}
    {% endfor %}
),
{%- endif %}

{%- if rc.get('cases_per_manager_per_month') %}
{#- A budget instead of a probability: the opening probability is the lowest of 0.01, 0.02, ...,
    0.99 (from the closing probability up) at which the runs of the trailing year that would open a case stay within the budget
    (cases per account manager per month x managers x 12). Re-derived each run, from the model's
    own recent history. -#}
peaks as (
    select customer_id, run_number, max(drift_probability) as peak_probability, max(as_of_date) as last_day
    from runs
    where observed_days >= {{ rc['warmup_days'] | int }}
    group by customer_id, run_number
),

budget as (
    select {{ rc['cases_per_manager_per_month'] }} * 12 * count(distinct account_manager_id) as cases_per_year
    from customers
),

opening_threshold as (
    select coalesce(min(counted.threshold), 0.99) as threshold
    from (
        select candidates.threshold, count(peaks.customer_id) as cases
        from candidates
        left join peaks
            on peaks.peak_probability >= candidates.threshold
           and peaks.last_day > {{ add_days(drift_last_day(), -365) }}
        group by candidates.threshold
    ) as counted
    cross join budget
    where counted.cases <= budget.cases_per_year
),
{%- elif rc.get('target_precision') %}
{#- A target precision instead of a probability: the opening probability is the lowest of 0.01,
    0.02, ..., 0.99 (from the closing probability up) at which, of the customers given a case in the
    judged year (cases opened 180 to 545 days before the last scored day, so that their outcome is
    known), at least target_precision left within 180 days of the case: churn as the data shows it
    (orders stopped, macros/case_feedback.sql), dated by the customer's last touch it started or
    two-way dialogue. Only thresholds judged on at least target_precision_min_customers customers
    count; where none reaches the target, or none is judged yet (a young installation),
    open_probability.
    Re-derived each run, from the model's own history and what became of the customers. -#}
touchpoints as (
    select * from {{ ref('int_touchpoints') }}
),

orders_stopped as (
    {{ orders_stopped('touchpoints') }}
),

last_seen as (
    -- when a customer whose orders stopped was last heard from (a touch it started, or a two-way
    -- dialogue): when it left. The day its orders were seen to stop comes months later.
    select touchpoints.customer_id, max(touchpoints.event_date) as last_seen_on
    from touchpoints
    inner join orders_stopped on orders_stopped.customer_id = touchpoints.customer_id
    where touchpoints.direction = 'inbound' or touchpoints.is_two_way_dialogue
    group by touchpoints.customer_id
),

running_highs as (
    -- each run's running maximum after the warm-up: a candidate opening probability t opens the
    -- run's case on the day its running maximum first reaches t
    select
        customer_id,
        run_number,
        as_of_date,
        max(drift_probability) over (partition by customer_id, run_number order by as_of_date
                                     rows between unbounded preceding and current row) as running_max
    from runs
    where observed_days >= {{ rc['warmup_days'] | int }}
),

records as (
    select *
    from (
        select
            running_highs.*,
            coalesce(lag(running_max) over (partition by customer_id, run_number order by as_of_date), 0) as previous_max
        from running_highs
    ) as highs
    where running_max > previous_max
),

judged as (
    -- per candidate, the customers given a case in the judged year and whether they left within 180
    -- days of it (a case after the customer had left came too late: not a precise one)
    select
        candidates.threshold,
        records.customer_id,
        max(case when last_seen.last_seen_on >= records.as_of_date
                  and last_seen.last_seen_on <= {{ add_days('records.as_of_date', 180) }}
                 then 1 else 0 end) as churned
    from candidates
    inner join records
        on records.previous_max < candidates.threshold and records.running_max >= candidates.threshold
    left join last_seen on last_seen.customer_id = records.customer_id
    where records.as_of_date > {{ add_days(drift_last_day(), -545) }}
      and records.as_of_date <= {{ add_days(drift_last_day(), -180) }}
    group by candidates.threshold, records.customer_id
),

measured as (
    select threshold, count(*) as customers, sum(churned) as churned
    from judged
    group by threshold
    having count(*) >= {{ rc.get('target_precision_min_customers', 30) | int }}
),

reached as (
    select min(threshold) as threshold
    from measured
    where churned >= {{ rc['target_precision'] }} * customers
),

opening_threshold as (
    select coalesce(reached.threshold, {{ rc['open_probability'] }}) as threshold
    from reached
),
{%- else %}
opening_threshold as (
    select {{ rc['open_probability'] }} as threshold
),
{%- endif %}

opened as (
    select runs.customer_id, runs.run_number, min(runs.as_of_date) as opened_on
    from runs
    cross join opening_threshold
    where runs.drift_probability >= opening_threshold.threshold and runs.observed_days >= {{ rc['warmup_days'] | int }}
    group by runs.customer_id, runs.run_number
),

spans as (
    select customer_id, run_number, max(as_of_date) as last_elevated_day, max(drift_probability) as peak_probability
    from runs
    group by customer_id, run_number
)

select
    opened.customer_id,
    opened.opened_on,
    spans.last_elevated_day,
    spans.peak_probability,
    runs.drift_probability as probability_at_open,
    runs.inputs_landed_at as opened_inputs_landed_at,
    opening_threshold.threshold as opening_probability
from opened
inner join spans on spans.customer_id = opened.customer_id and spans.run_number = opened.run_number
inner join runs on runs.customer_id = opened.customer_id and runs.as_of_date = opened.opened_on
cross join opening_threshold
