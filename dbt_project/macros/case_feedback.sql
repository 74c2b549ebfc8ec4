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
