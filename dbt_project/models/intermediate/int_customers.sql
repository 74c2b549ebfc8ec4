{#- Current master data per customer (its latest version as of the as-of date). Customers that
    appear in touchpoints before any master-data record are kept with has_master_data = false and
    segment 'unknown', so no touchpoint is orphaned. Erased customers (tombstones) are absent.
    dim_customers publishes it; the case models read the current account manager here. -#}
with versions as (
    select * from {{ ref('int_customer_versions') }}
),

bounds as (
    select * from {{ ref('int_customer_bounds') }}
),

latest as (
    select versions.*
    from versions
    where versions.valid_to = cast('9999-12-31' as date)
)

select
    bounds.customer_id,
    latest.customer_name,
    coalesce(latest.segment, 'unknown') as segment,
    latest.country,
    latest.account_manager_id,
    latest.account_manager_name,
    latest.account_manager_email,
    latest.annual_potential,
    latest.currency,
    latest.updated_at,
    latest.customer_id is not null as has_master_data,
    bounds.first_day as first_seen_date,
    bounds.first_touch_date
from bounds
left join latest on latest.customer_id = bounds.customer_id
