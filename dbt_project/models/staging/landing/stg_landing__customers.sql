{#- Every customer master-data record and tombstone as landed, typed, timestamps in UTC.
    `record_order_at` orders a customer's rows: updated_at for records, the Kafka timestamp for
    tombstones (which carry no updated_at). Small, so a plain view. Records held in the quality
    gate's quarantine are left out; one let in later counts as landed then (macros/quarantine.sql). -#}
{%- set columns = [
    ('customer_id', dbt.type_string()), ('schema_version', dbt.type_int()), ('name', dbt.type_string()),
    ('segment', dbt.type_string()), ('country', dbt.type_string()), ('account_manager_id', dbt.type_string()),
    ('account_manager_name', dbt.type_string()), ('account_manager_email', dbt.type_string()),
    ('annual_potential', type_double()), ('currency', dbt.type_string()), ('extra_json', dbt.type_string()),
    ('kafka_topic', dbt.type_string()), ('kafka_partition', dbt.type_int()), ('kafka_offset', dbt.type_bigint()),
] -%}

with landed as (
    {% if landing_has_files('customers') %}
    select
        {% for name, type in columns -%}
        cast({{ name }} as {{ type }}) as {{ name }},
        {% endfor -%}
        coalesce(is_deleted, false) as is_deleted,
        {{ to_utc('updated_at') }} as updated_at,
        {{ to_utc('kafka_timestamp') }} as kafka_timestamp,
        {{ quarantine_landed_at('customer', 'landed_row', to_utc('landed_row.landed_at')) }} as landed_at
    from {{ source('landing', 'customers') }} as landed_row
    where {{ quarantine_not_held('customer', 'landed_row') }}
    {% else %}
    select
        {% for name, type in columns -%}
        cast(null as {{ type }}) as {{ name }},
        {% endfor -%}
        cast(null as {{ dbt.type_boolean() }}) as is_deleted,
        cast(null as {{ dbt.type_timestamp() }}) as updated_at,
        cast(null as {{ dbt.type_timestamp() }}) as kafka_timestamp,
        cast(null as {{ dbt.type_timestamp() }}) as landed_at
    where 1 = 0
    {% endif %}
)

select
    landed.*,
    coalesce(updated_at, kafka_timestamp, landed_at) as record_order_at
from landed
where customer_id is not null
