{#- Trailing windows over int_customer_days: a window sum is today's running count minus the
    running count `days` days ago (alias lag_<days>, joined by int_customer_windows). -#}

{% macro trailing(name, days) -%}
  (current_day.cum_{{ name }} - coalesce(lag_{{ days | int }}.cum_{{ name }}, 0))
{%- endmacro %}

{% macro trailing_window_lengths() -%}
  {%- set lengths = [30, 60, 90, 365,
      scoring('dialogue.recent_days'), scoring('dialogue.baseline_window_days'),
      scoring('health.stakeholder.window_days'), scoring('health.service.window_days'),
      scoring('health.financial.window_days'), scoring('health.commercial.trend_window_days'),
      2 * scoring('health.commercial.trend_window_days'), scoring('loyalty.window_days')] -%}
  {%- set out = [] -%}
  {%- for n in lengths -%}{%- if (n | int) not in out -%}{%- do out.append(n | int) -%}{%- endif -%}{%- endfor -%}
  {{ return(out | sort) }}
{%- endmacro %}
