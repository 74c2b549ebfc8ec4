{#- Per customer per day: which churn-alert rules hold (a flag per rule), after the warm-up
    (alerts.warmup_days of history per customer). Dense and incremental like the health mart it
    reads, so a daily run evaluates only the new days (with the look-back its windows need). Rules (config/scoring.yml
    `alerts.rules`):
      status_drop          the status has been yellow or red for persist_days days in a row
                           (severity by today's status)
      sharp_health_drop    health fell by at least min_drop_points below its highest value of
                           the last window_days days
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
{%- set lookback = [drop['window_days'] | int, rules['status_drop']['persist_days'] | int] | max -%}
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
            rows between {{ rules['status_drop']['persist_days'] | int - 1 }} preceding and current row
        ) as recent_not_green_days
    from {{ ref('fct_customer_health_daily') }} as health
    inner join rebuild
        on rebuild.customer_id = health.customer_id
       and health.as_of_date >= {{ add_days('rebuild.rebuild_from', -lookback) }}
    {% if since is not none -%}
    where health.as_of_date >= {{ add_days(since, -lookback) }}
    {%- endif %}
)

select
    customer_id,
    as_of_date,
    observed_days > {{ scoring('alerts.warmup_days') | int }} as past_warmup,
    {{ 'recent_not_green_days >= ' ~ rules['status_drop']['persist_days'] if rules['status_drop']['enabled'] else 'false' }} as status_drop,
    case when status = 'red' then '{{ rules['status_drop']['severity_red'] }}' else '{{ rules['status_drop']['severity_yellow'] }}' end as status_drop_severity,
    {{ 'recent_peak_health - health_score >= ' ~ drop['min_drop_points'] if drop['enabled'] else 'false' }} as sharp_health_drop,
    {{ '(gap_ratio >= ' ~ rules['dialogue_gap']['min_gap_ratio'] ~ ' and days_since_dialogue >= ' ~ rules['dialogue_gap']['min_days_since_dialogue'] ~ ')' if rules['dialogue_gap']['enabled'] else 'false' }} as dialogue_gap,
    {{ '(coalesce(worst_dunning_stage in (' ~ sql_string_list(dunning['stages']) ~ '), false) and value_at_stake >= ' ~ dunning['min_value_at_stake'] ~ ' and (days_since_caring is null or days_since_caring > ' ~ dunning['no_caring_days'] ~ '))' if dunning['enabled'] else 'false' }} as dunning_escalation,
    {{ 'coalesce(open_high_complaint_days > ' ~ rules['open_high_complaint']['deadline_days'] ~ ', false)' if rules['open_high_complaint']['enabled'] else 'false' }} as open_high_complaint,
    inputs_landed_at
from health
where as_of_date >= rebuild_from
