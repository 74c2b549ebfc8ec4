{#- Every touchpoint up to the as-of date, classified (int_touchpoints: the rules and the two-way
    dialogue flag), as people and reports read them. Incremental: new landed events (and events
    that became due because the as-of date moved) are inserted; the pre-hook first deletes events
    after the as-of date and those of erased customers (int_customers_erased). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='event_id',
    on_schema_change='append_new_columns',
    pre_hook="{{ prune_touchpoints() }}"
) }}
-- depends_on: {{ ref('int_customers_erased') }} (read by the pre-hook only: dbt cannot see a hook's refs)

with touchpoints as (
    select * from {{ ref('int_touchpoints') }}
)

select
    event_id,
    customer_id,
    occurred_at,
    event_date,
    event_type,
    department,
    direction,
    employee_id,
    contact_role,
    source,
    contact_kind,
    kind_rule,
    is_two_way_dialogue,
    answered,
    duration_s,
    transferred,
    resolved,
    first_time_fix,
    dunning_stage,
    amount_overdue,
    days_overdue,
    invoice_id,
    severity,
    nps_score,
    comment,
    amount,
    currency,
    product_line,
    note,
    cast(days_late as {{ dbt.type_bigint() }}) as days_late,
    landed_at,
    kafka_topic,
    kafka_partition,
    kafka_offset
from touchpoints
{% if is_incremental() %}
where landed_at > {{ incremental_watermark(this, 'landed_at') }}
   or event_date > (select coalesce(max(event_date), cast('1900-01-01' as date)) from {{ this }})
{% endif %}
