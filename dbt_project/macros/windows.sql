{#- Trailing windows over int_customer_days: a window sum is today's running count minus the
    running count `days` days ago. That older count is either a column lag_<days>_cum_<name> of the
    current row (by_window: a lag() over the customer's dense daily series, one sort for every
    window length; a full build) or the row of a join alias lag_<days> (a daily run, which looks
    up a few stored days instead of sorting the whole history). -#}

{% macro trailing(name, days, by_window) -%}
  {%- if by_window -%}
  (current_day.cum_{{ name }} - coalesce(current_day.lag_{{ days | int }}_cum_{{ name }}, 0))
  {%- else -%}
  (current_day.cum_{{ name }} - coalesce(lag_{{ days | int }}.cum_{{ name }}, 0))
  {%- endif -%}
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
