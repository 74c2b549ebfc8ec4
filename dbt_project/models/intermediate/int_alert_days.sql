{#- Every customer-day on which a churn-alert rule holds (one row per customer, day and rule),
    after the warm-up (alerts.warmup_days of history per customer). Rules (config/scoring.yml
    `alerts.rules`):
      status_drop          the status has been yellow or red for persist_days days in a row
                           (severity by today's status)
      sharp_health_drop    health fell by at least min_drop_points below its highest value of
                           the last window_days days
      dialogue_gap         gap_ratio >= min_gap_ratio and at least min_days_since_dialogue days
      dunning_escalation   dunning reached one of `stages` in the financial window, value at stake
                           >= min_value_at_stake, and no caring contact for no_caring_days
      open_high_complaint  a high-severity complaint open for more than deadline_days -#}
{%- set rules = scoring('alerts.rules') -%}
{%- set drop = rules['sharp_health_drop'] -%}

with health as (
    select
        health.*,
        max(health.health_score) over (
            partition by health.customer_id order by health.as_of_date
            rows between {{ drop['window_days'] | int }} preceding and current row
        ) as recent_peak_health,
        sum(case when health.status <> 'green' then 1 else 0 end) over (
            partition by health.customer_id order by health.as_of_date
            rows between {{ rules['status_drop']['persist_days'] | int - 1 }} preceding and current row
        ) as recent_not_green_days
    from {{ ref('fct_customer_health_daily') }} as health
),

eligible as (
    select * from health where observed_days > {{ scoring('alerts.warmup_days') | int }}
)

{%- set selects = [] -%}
{%- if rules['status_drop']['enabled'] -%}
  {%- do selects.append("select customer_id, as_of_date, 'status_drop' as rule, case when status = 'red' then '" ~ rules['status_drop']['severity_red'] ~ "' else '" ~ rules['status_drop']['severity_yellow'] ~ "' end as severity from eligible where recent_not_green_days >= " ~ rules['status_drop']['persist_days']) -%}
{%- endif -%}
{%- if drop['enabled'] -%}
  {%- do selects.append("select customer_id, as_of_date, 'sharp_health_drop' as rule, '" ~ drop['severity'] ~ "' as severity from eligible where recent_peak_health - health_score >= " ~ drop['min_drop_points']) -%}
{%- endif -%}
{%- if rules['dialogue_gap']['enabled'] -%}
  {%- do selects.append("select customer_id, as_of_date, 'dialogue_gap' as rule, '" ~ rules['dialogue_gap']['severity'] ~ "' as severity from eligible where gap_ratio >= " ~ rules['dialogue_gap']['min_gap_ratio'] ~ " and days_since_dialogue >= " ~ rules['dialogue_gap']['min_days_since_dialogue']) -%}
{%- endif -%}
{%- if rules['dunning_escalation']['enabled'] -%}
  {%- set d = rules['dunning_escalation'] -%}
  {%- do selects.append("select customer_id, as_of_date, 'dunning_escalation' as rule, '" ~ d['severity'] ~ "' as severity from eligible where worst_dunning_stage in (" ~ sql_string_list(d['stages']) ~ ") and value_at_stake >= " ~ d['min_value_at_stake'] ~ " and (days_since_caring is null or days_since_caring > " ~ d['no_caring_days'] ~ ")") -%}
{%- endif -%}
{%- if rules['open_high_complaint']['enabled'] -%}
  {%- do selects.append("select customer_id, as_of_date, 'open_high_complaint' as rule, '" ~ rules['open_high_complaint']['severity'] ~ "' as severity from eligible where open_high_complaint_days > " ~ rules['open_high_complaint']['deadline_days']) -%}
{%- endif -%}
{%- if not selects -%}
  {%- do selects.append("select customer_id, as_of_date, 'status_drop' as rule, 'low' as severity from eligible where 1 = 0") -%}
{%- endif %}

, fired as (
    {{ selects | join('\n    union all\n    ') }}
)

select
    customer_id,
    as_of_date,
    rule,
    severity,
    case severity when 'high' then 3 when 'medium' then 2 else 1 end as severity_rank
from fired
