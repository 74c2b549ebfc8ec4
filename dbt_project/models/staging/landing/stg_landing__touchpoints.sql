{#- One row per unique touchpoint (event_id), keeping the first landed copy so that producer
    re-sends count once. Timestamps in UTC; event_date is the UTC date of occurred_at, so late
    events land on the day they describe. Incremental: only batches landed since the last run
    (minus a safety overlap) are read; copies of events already stored are skipped. Rows held in
    the quality gate's quarantine are left out; a row let in later counts as landed then
    (macros/quarantine.sql). -#}
{{ config(materialized='incremental', incremental_strategy='append', pre_hook="{{ record_landed_rows() }}") }}

{%- set columns = [
    ('event_id', dbt.type_string()), ('schema_version', dbt.type_int()), ('event_type', dbt.type_string()),
    ('occurred_at_raw', dbt.type_string()), ('customer_id', dbt.type_string()),
    ('department', dbt.type_string()), ('direction', dbt.type_string()), ('employee_id', dbt.type_string()),
    ('contact_role', dbt.type_string()), ('note', dbt.type_string()), ('source', dbt.type_string()),
    ('answered', dbt.type_boolean()), ('duration_s', type_double()), ('transferred', dbt.type_boolean()),
    ('resolved', dbt.type_boolean()), ('first_time_fix', dbt.type_boolean()), ('stage', dbt.type_string()),
    ('amount_overdue', type_double()), ('days_overdue', dbt.type_bigint()), ('invoice_id', dbt.type_string()),
    ('severity', dbt.type_string()), ('nps_score', dbt.type_int()), ('comment', dbt.type_string()),
    ('amount', type_double()), ('currency', dbt.type_string()), ('product_line', dbt.type_string()),
    ('payload_json', dbt.type_string()), ('extra_json', dbt.type_string()),
    ('kafka_topic', dbt.type_string()), ('kafka_partition', dbt.type_int()), ('kafka_offset', dbt.type_bigint()),
] -%}

with landed as (
    {% if landing_has_files('touchpoints') %}
    select
        {% for name, type in columns -%}
        cast({{ name }} as {{ type }}) as {{ name }},
        {% endfor -%}
        {{ to_utc('occurred_at') }} as occurred_at,
        {{ to_utc('kafka_timestamp') }} as kafka_timestamp,
        {{ quarantine_landed_at('touchpoint', 'landed_row', to_utc('landed_row.landed_at')) }} as landed_at
    from {{ source('landing', 'touchpoints') }} as landed_row
    where {{ quarantine_not_held('touchpoint', 'landed_row') }}
    {% if is_incremental() %}
    {%- set watermark = incremental_watermark(this, 'landed_at') %}
      and ({{ to_utc('landed_row.landed_at') }} > {{ watermark }}
           {{ quarantine_let_in_since('touchpoint', 'landed_row', watermark) }})
    {% endif %}
    {% else %}
    select
        {% for name, type in columns -%}
        cast(null as {{ type }}) as {{ name }},
        {% endfor -%}
        cast(null as {{ dbt.type_timestamp() }}) as occurred_at,
        cast(null as {{ dbt.type_timestamp() }}) as kafka_timestamp,
        cast(null as {{ dbt.type_timestamp() }}) as landed_at
    where 1 = 0
    {% endif %}
),

ranked as (
    select
        landed.*,
        row_number() over (
            partition by event_id
            order by landed_at, kafka_partition, kafka_offset
        ) as copy_number
    from landed
    where event_id is not null and customer_id is not null and occurred_at is not null
)

select
    {% for name, type in columns -%}
    ranked.{{ name }},
    {% endfor -%}
    ranked.occurred_at,
    cast(ranked.occurred_at as date) as event_date,
    ranked.kafka_timestamp,
    ranked.landed_at
from ranked
where ranked.copy_number = 1
{% if is_incremental() %}
  and not exists (select 1 from {{ this }} as stored where stored.event_id = ranked.event_id)
{% endif %}
