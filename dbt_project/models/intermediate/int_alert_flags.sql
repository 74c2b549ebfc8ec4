{#- Per customer per day: which churn-alert rules hold (a flag per rule), after the warm-up
    (alerts.warmup_days of history per customer). Dense and incremental like the health mart it
    reads, so a daily run evaluates only the new days (with the look-back its windows need). Rules (config/scoring.yml
    `alerts.rules`):
      status_drop          the status has been yellow or red for persist_days days in a row AND
                           the mean health of the last recent_days days lies at least
                           min_points_below_norm below the customer's OWN norm (its mean health
                           over norm_window_days ending norm_skip_days ago; the green line
                           health.green_min until it has norm_min_days of history), so a
                           customer whose usual state is yellow is not alerted for being itself;
                           severity_red when red or high_points_below_norm below its norm
      sharp_health_drop    health fell by at least min_drop_points below its highest value of
                           the last window_days days, on persist_days days in a row
      dialogue_gap         gap_ratio >= min_gap_ratio and at least min_days_since_dialogue days
      dunning_escalation   dunning reached one of `stages` in the financial window, value at stake
                           >= min_value_at_stake, and no caring contact for no_caring_days
      open_high_complaint  a high-severity complaint open for more than deadline_days -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['customer_id', 'as_of_date'],
    pre_hook="{{ prune_customer_days() }}"
) }}
-- depends_on: {{ ref('fct_touchpoints') }}
-- depends_on: {{ ref('int_customer_versions') }}
-- depends_on: {{ ref('int_customer_bounds') }}
{%- set rules = scoring('alerts.rules') -%}
{%- set drop = rules['sharp_health_drop'] -%}
{%- set sd = rules['status_drop'] -%}
{%- set lookback = [drop['window_days'] | int + drop['persist_days'] | int, sd['persist_days'] | int,
                    sd['recent_days'] | int, sd['norm_window_days'] | int] | max -%}
{%- set since = rebuild_floor() -%}
{%- set dunning = rules['dunning_escalation'] %}

with rebuild as (
    {{ customer_days_to_rebuild() }}
),

health as (
    select
        health.*,
        rebuild.rebuild_from,
        max(health.health_score) over (
            partition by health.customer_id order by health.as_of_date
            rows between {{ drop['window_days'] | int }} preceding and current row
        ) as recent_peak_health,
        sum(case when health.status <> 'green' then 1 else 0 end) over (
            partition by health.customer_id order by health.as_of_date
            rows between {{ sd['persist_days'] | int - 1 }} preceding and current row
        ) as recent_not_green_days,
        avg(health.health_score) over (
            partition by health.customer_id order by health.as_of_date
            rows between {{ sd['recent_days'] | int - 1 }} preceding and current row
        ) as recent_mean_health,
        -- the customer's own norm: its mean health over a year that ends a while ago, so that a slow
        -- drift does not drag the norm down with it
        avg(health.health_score) over (
            partition by health.customer_id order by health.as_of_date
            rows between {{ sd['norm_window_days'] | int }} preceding and {{ sd['norm_skip_days'] | int }} preceding
        ) as own_norm_health,
        count(health.health_score) over (
            partition by health.customer_id order by health.as_of_date
            rows between {{ sd['norm_window_days'] | int }} preceding and {{ sd['norm_skip_days'] | int }} preceding
        ) as own_norm_days
    from {{ ref('fct_customer_health_daily') }} as health
    inner join rebuild
        on rebuild.customer_id = health.customer_id
       and health.as_of_date >= {{ add_days('rebuild.rebuild_from', -lookback) }}
    {% if since is not none -%}
    where health.as_of_date >= {{ add_days(since, -lookback) }}
    {%- endif %}
),

judged as (
    select
        health.*,
        -- the norm a customer is judged against: its own once it has enough history, else the
        -- portfolio-wide line of a healthy relationship (health.green_min)
        case
            when own_norm_days >= {{ sd['norm_min_days'] | int }} then own_norm_health
            else {{ scoring('health.green_min') }}
        end - recent_mean_health as points_below_norm,
        case when recent_peak_health - health_score >= {{ drop['min_drop_points'] }} then 1 else 0 end as dropped_today
    from health
),

flagged as (
    select
        judged.*,
        sum(dropped_today) over (
            partition by customer_id order by as_of_date
            rows between {{ drop['persist_days'] | int - 1 }} preceding and current row
        ) as recent_dropped_days
    from judged
)

select
    customer_id,
    as_of_date,
    observed_days > {{ scoring('alerts.warmup_days') | int }} as past_warmup,
    {{ '(recent_not_green_days >= ' ~ sd['persist_days'] ~ ' and points_below_norm >= ' ~ sd['min_points_below_norm'] ~ ')' if sd['enabled'] else 'false' }} as status_drop,
    case
        when status = 'red' or points_below_norm >= {{ sd['high_points_below_norm'] }} then '{{ sd['severity_red'] }}'
        else '{{ sd['severity_yellow'] }}'
    end as status_drop_severity,
    {{ 'recent_dropped_days >= ' ~ drop['persist_days'] if drop['enabled'] else 'false' }} as sharp_health_drop,
    {{ '(gap_ratio >= ' ~ rules['dialogue_gap']['min_gap_ratio'] ~ ' and days_since_dialogue >= ' ~ rules['dialogue_gap']['min_days_since_dialogue'] ~ ')' if rules['dialogue_gap']['enabled'] else 'false' }} as dialogue_gap,
    {{ '(coalesce(worst_dunning_stage in (' ~ sql_string_list(dunning['stages']) ~ '), false) and value_at_stake >= ' ~ dunning['min_value_at_stake'] ~ ' and (days_since_caring is null or days_since_caring > ' ~ dunning['no_caring_days'] ~ '))' if dunning['enabled'] else 'false' }} as dunning_escalation,
    {{ 'coalesce(open_high_complaint_days > ' ~ rules['open_high_complaint']['deadline_days'] ~ ', false)' if rules['open_high_complaint']['enabled'] else 'false' }} as open_high_complaint,
    inputs_landed_at
from flagged
where as_of_date >= rebuild_from
