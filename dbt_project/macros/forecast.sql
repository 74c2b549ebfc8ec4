{#- Helpers of the forecast audit (config/scoring.yml `forecast`; docs/warehouse.md "Forecast honesty"). -#}

{% macro track_record_start(snapshot_expr) -%}
  {#- The first close date of the track record judged at snapshot_expr (exclusive end):
      forecast.track_record_quarters quarters (x 3 months) before it. -#}
  {{ add_months(snapshot_expr, -3 * (scoring('forecast.track_record_quarters') | int)) }}
{%- endmacro %}

{% macro silent_opportunity_words(opportunity_id, stage, amount, currency, expected_close_date, days_since_dialogue) -%}
  {#- "open opportunity OPP-1 (proposal, 185,000 DKK, expected to close 2026-06-30) and no two-way
      dialogue for 52 days": an open deal at a customer nobody talks to. -#}
  'open opportunity ' || {{ opportunity_id }} || ' (' || coalesce({{ stage }}, 'no stage') || ', '
    || {{ grouped_int_text(amount) }} || ' ' || {{ currency }} || ', expected to close '
    || {{ as_text(expected_close_date) }} || ') and '
    || coalesce('no two-way dialogue for ' || {{ as_text(days_since_dialogue) }} || ' days', 'no two-way dialogue recorded')
{%- endmacro %}
