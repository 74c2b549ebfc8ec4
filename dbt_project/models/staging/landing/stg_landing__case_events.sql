{#- Contract 1.2: every case event (acknowledge, snooze, close, feedback) as landed from the
    `case-events` topic, one row per event_id (the first landed copy, so re-sends count once),
    typed, timestamps in UTC. Small (a few events per case), so a plain view. Rows the landing
    gate set aside (suite landed_case_events, docs/quality.md "Quarantine") are left out until
    released or accepted; nothing else is filtered here (as-of date, erasure: int_case_lifecycle
    does that). -#}
{%- set columns = [
    ('event_id', dbt.type_string()), ('schema_version', dbt.type_int()), ('event_type', dbt.type_string()),
    ('occurred_at_raw', dbt.type_string()), ('case_id', dbt.type_string()), ('customer_id', dbt.type_string()),
    ('actor', dbt.type_string()), ('source', dbt.type_string()), ('reason', dbt.type_string()),
    ('outcome', dbt.type_string()), ('note', dbt.type_string()), ('verdict', dbt.type_string()),
    ('comment', dbt.type_string()), ('payload_json', dbt.type_string()), ('extra_json', dbt.type_string()),
    ('kafka_topic', dbt.type_string()), ('kafka_partition', dbt.type_int()), ('kafka_offset', dbt.type_bigint()),
] -%}

with landed as (
    {% if landing_has_files('case_events') %}
    select
        {% for name, type in columns -%}
        cast({{ name }} as {{ type }}) as {{ name }},
        {% endfor -%}
        cast(snooze_until as date) as snooze_until,
        {{ to_utc('occurred_at') }} as occurred_at,
        {{ to_utc('landed_at') }} as landed_at
    from {{ source('landing', 'case_events') }}
    {% else %}
    select
        {% for name, type in columns -%}
        cast(null as {{ type }}) as {{ name }},
        {% endfor -%}
        cast(null as date) as snooze_until,
        cast(null as {{ dbt.type_timestamp() }}) as occurred_at,
        cast(null as {{ dbt.type_timestamp() }}) as landed_at
    where 1 = 0
    {% endif %}
),

ranked as (
    select
        landed.*,
        row_number() over (partition by event_id order by landed_at, kafka_partition, kafka_offset) as copy_number
    from landed
    where event_id is not null and case_id is not null and customer_id is not null and occurred_at is not null
      and {{ quarantine_not_held('case_event', 'landed') }}
)

select
    {% for name, type in columns -%}
    ranked.{{ name }},
    {% endfor -%}
    ranked.snooze_until,
    ranked.occurred_at,
    cast(ranked.occurred_at as date) as event_date,
    ranked.landed_at
from ranked
where ranked.copy_number = 1
