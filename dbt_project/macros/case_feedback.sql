{#- Parameters of fct_case_feedback_monthly. Defaults here; an installation may override any of them
    in config/scoring.yml under `case_feedback:` (docs/report.md, "Precision measured in
    production"). -#}
{% macro case_feedback_params() -%}
  {%- set defaults = {
      'acknowledge_days': 7,
      'dialogue_days': 14,
      'churn_min_orders': 3,
      'churn_lapse_min_days': 90,
      'churn_lapse_gaps': 3,
      'recall_lookback_days': 365,
  } -%}
  {%- set cfg = var('scoring', {}) -%}
  {%- set given = (cfg.get('case_feedback') if cfg is mapping else none) or {} -%}
  {%- set out = {} -%}
  {%- for key, value in defaults.items() -%}
    {%- do out.update({key: given.get(key, value)}) -%}
  {%- endfor -%}
  {{ return(out) }}
{%- endmacro %}

{% macro orders_stopped(touchpoints) -%}
  {#- The customers whose orders stopped, as of the as-of date: at least churn_min_orders orders, the
      last more than greatest(churn_lapse_min_days, churn_lapse_gaps x the usual gap between orders)
      days ago; churned_at is the day that silence crossed the threshold (last order + the lapse).
      `touchpoints` is a relation or CTE with customer_id, event_type and event_date. The churn the
      data shows, read by int_case_churn and by the target-precision calibration of
      int_risk_case_spans. -#}
  {%- set p = case_feedback_params() -%}
  select customer_id, {{ dbt.dateadd('day', 'lapse_days', 'last_order_date') }} as churned_at
  from (
      select
          customer_id,
          last_order_date,
          cast(greatest(
              {{ p['churn_lapse_min_days'] | int }},
              ceil({{ p['churn_lapse_gaps'] }} * {{ days_between('first_order_date', 'last_order_date') }} / (orders - 1.0))
          ) as {{ dbt.type_int() }}) as lapse_days
      from (
          select customer_id, count(*) as orders, min(event_date) as first_order_date, max(event_date) as last_order_date
          from {{ touchpoints }}
          where event_type = 'order'
          group by customer_id
      ) as orders
      where orders >= {{ p['churn_min_orders'] | int }}
  ) as order_lapse
  where {{ days_between('last_order_date', as_of_date_literal()) }} > lapse_days
{%- endmacro %}
