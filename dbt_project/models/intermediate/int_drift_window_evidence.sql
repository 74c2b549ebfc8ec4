{#- The drift model's evidence per window and stream, per customer-day: what int_drift_days mixes
    (macros/drift_streams.sql, drift_window_evidence, from the running sums int_drift_days stores),
    before the mixture. The population step's fit of the mixture weights reads it
    (loyalty_monitor/drift/mixture.py) for the days it learns from; nothing else does. A view: its
    rows are a look-up of a few stored days per customer-day, computed only for the days read. -#}
{{ config(materialized='view') }}
{%- set streams = drift_streams() -%}
{%- set windows = scoring('drift.window_days') | map('int') | list %}

with drift_days {{ inlined() }} (
    select * from {{ ref('int_drift_days') }}
)

select
    days.customer_id,
    days.as_of_date,
    days.observed_days,
    {% for k in windows -%}
    {% for s in streams -%}
    {{ drift_window_evidence(s, k, 'days.', 'back' ~ k ~ '.') }} as w{{ k }}_milli_{{ s.name }}{{ ',' if not (loop.last and k == windows[-1]) }}
    {% endfor -%}
    {% endfor %}
from drift_days as days
{% for k in windows -%}
left join drift_days as back{{ k }}
    on back{{ k }}.customer_id = days.customer_id
   and back{{ k }}.as_of_date = {{ add_days('days.as_of_date', -k) }}
{% endfor %}
