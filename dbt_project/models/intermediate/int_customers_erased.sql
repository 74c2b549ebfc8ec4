{#- Customers erased by a tombstone: their latest master-data row (by updated_at / Kafka timestamp,
    then Kafka offset) is a tombstone. Erasure ignores the as-of date: personal data must go from
    every mart, also in backfills.
    A table, not a view: int_touchpoints, int_customer_versions, int_case_lifecycle,
    int_opportunity_states, fct_touchpoints' pre-hook and its own data tests read it, and a view
    would rank every landed master-data record again for each of them. -#}
{{ config(materialized='table') }}
with landed_customers as (
    select * from {{ ref('stg_landing__customers') }}
),

ordered as (
    select
        customer_id,
        is_deleted,
        record_order_at,
        row_number() over (
            partition by customer_id
            order by record_order_at desc, kafka_partition desc, kafka_offset desc
        ) as recency
    from landed_customers
)

select customer_id, record_order_at as erased_at
from ordered
where recency = 1 and is_deleted
