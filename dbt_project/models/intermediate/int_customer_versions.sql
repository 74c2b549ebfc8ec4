{{ config(materialized='table') }}
{#- Master-data versions per customer, valid by day (slowly changing, type 2): the last record of
    each day (by updated_at, then Kafka offset) is valid from that day until the next version. The
    first version also covers the days before it, so early touchpoints get a segment and account
    manager. Records updated after the as-of date are not known yet; erased customers are gone. -#}
with landed_customers as (
    select * from {{ ref('stg_landing__customers') }}
),

erased as (
    select * from {{ ref('int_customers_erased') }}
),

records as (
    select
        customers.*,
        cast(customers.updated_at as date) as effective_day,
        row_number() over (
            partition by customers.customer_id, cast(customers.updated_at as date)
            order by customers.updated_at desc, customers.kafka_partition desc, customers.kafka_offset desc
        ) as day_recency
    from landed_customers as customers
    where not customers.is_deleted
      and customers.updated_at is not null
      and cast(customers.updated_at as date) <= {{ as_of_date_literal() }}
      and customers.customer_id not in (select customer_id from erased)
),

versions as (
    select
        records.*,
        row_number() over (partition by customer_id order by effective_day) as version_number,
        lead(effective_day) over (partition by customer_id order by effective_day) as next_effective_day
    from records
    where day_recency = 1
)

select
    customer_id,
    version_number,
    case when version_number = 1 then cast('1900-01-01' as date) else effective_day end as valid_from,
    coalesce(next_effective_day, cast('9999-12-31' as date)) as valid_to,
    effective_day,
    name as customer_name,
    coalesce(segment, 'unknown') as segment,
    country,
    account_manager_id,
    account_manager_name,
    account_manager_email,
    annual_potential,
    currency,
    updated_at,
    landed_at
from versions
