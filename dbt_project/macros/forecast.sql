{#- Helpers of the forecast audit (config/scoring.yml `forecast`; docs/warehouse.md "Forecast honesty"). -#}

{% macro forecast_band_edges() -%}
  {#- The calibration bands' edges, 0 to 1 (a list of numbers; [0, 1] while dbt only parses). -#}
  {{ return(scoring('forecast.band_edges') or [0, 1]) }}
{%- endmacro %}

{% macro forecast_band(probability, what='number') -%}
  {#- The band of a stated probability: its number (1 = lowest), or its `low` / `high` edge. A value
      on an inner edge belongs to the band above it; 1 belongs to the last band. -#}
  {%- set edges = forecast_band_edges() -%}
  case
    {%- for i in range(1, edges | length - 1) %}
    when {{ probability }} < {{ edges[i] }} then {{ {'number': i, 'low': edges[i - 1], 'high': edges[i]}[what] }}
    {%- endfor %}
    else {{ {'number': edges | length - 1, 'low': edges[-2], 'high': edges[-1]}[what] }}
  end
{%- endmacro %}

{% macro add_months(date_expr, months) -%}
  cast({{ dbt.dateadd('month', months, date_expr) }} as date)
{%- endmacro %}

{% macro quarter_start(date_expr) -%}
  cast({{ dbt.date_trunc('quarter', date_expr) }} as date)
{%- endmacro %}

{% macro quarter_end(date_expr) -%}
  {#- the last day of the quarter of date_expr (via months: PostgreSQL has no interval 'quarter') -#}
  {{ add_days(add_months(quarter_start(date_expr), 3), -1) }}
{%- endmacro %}

{% macro track_record_start(snapshot_expr) -%}
  {#- The first close date of the track record judged at snapshot_expr (exclusive end):
      forecast.track_record_quarters quarters (x 3 months) before it. -#}
  {{ add_months(snapshot_expr, -3 * (scoring('forecast.track_record_quarters') | int)) }}
{%- endmacro %}

{% macro null_safe_equal(left, right) -%}
  {#- equality that holds for two nulls (the company's rows have no account manager) -#}
  ({{ left }} is not distinct from {{ right }})
{%- endmacro %}

{% macro silent_opportunity_words(opportunity_id, stage, amount, currency, expected_close_date, days_since_dialogue) -%}
  {#- "open opportunity OPP-1 (proposal, 185000 DKK, expected to close 2026-06-30) and no two-way
      dialogue for 52 days": an open deal at a customer nobody talks to. -#}
  'open opportunity ' || {{ opportunity_id }} || ' (' || coalesce({{ stage }}, 'no stage') || ', '
    || {{ int_text(amount) }} || ' ' || {{ currency }} || ', expected to close '
    || {{ as_text(expected_close_date) }} || ') and '
    || coalesce('no two-way dialogue for ' || {{ as_text(days_since_dialogue) }} || ' days', 'no two-way dialogue recorded')
{%- endmacro %}
