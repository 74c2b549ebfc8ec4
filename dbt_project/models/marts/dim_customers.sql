{#- Current master data per customer (its latest version as of the as-of date: int_customers).
    Customers that appear in touchpoints before any master-data record are kept with
    has_master_data = false and segment 'unknown'; erased customers are absent. -#}
with customers as (
    select * from {{ ref('int_customers') }}
)

select
    customer_id,
    customer_name,
    segment,
    country,
    account_manager_id,
    account_manager_name,
    account_manager_email,
    annual_potential,
    currency,
    updated_at,
    has_master_data,
    first_seen_date,
    first_touch_date
from customers
