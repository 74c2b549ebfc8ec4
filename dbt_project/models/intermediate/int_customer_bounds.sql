{{ config(materialized='table') }}
{#- Every customer in scope as of the as-of date and the first day of its daily series: its first
    touchpoint or first master-data record, whichever is earlier, but not before the history starts
    (the first landed touchpoint). Erased customers are out of scope. -#}
with touchpoints as (
    select * from {{ ref('int_touchpoints') }}
),

versions as (
    select * from {{ ref('int_customer_versions') }}
),

touch as (
    select customer_id, min(event_date) as first_touch_date
    from touchpoints
    group by customer_id
),

master as (
    select customer_id, min(effective_day) as first_record_date
    from versions
    group by customer_id
),

history as (
    select coalesce(min(first_touch_date), {{ as_of_date_literal() }}) as history_start
    from touch
),

customers as (
    select
        coalesce(touch.customer_id, master.customer_id) as customer_id,
        touch.first_touch_date,
        master.first_record_date
    from touch
    full outer join master on master.customer_id = touch.customer_id
)

select
    customers.customer_id,
    greatest(
        history.history_start,
        least(
            coalesce(customers.first_touch_date, cast('9999-12-31' as date)),
            coalesce(customers.first_record_date, cast('9999-12-31' as date))
        )
    ) as first_day,
    customers.first_touch_date,
    history.history_start
from customers
cross join history
