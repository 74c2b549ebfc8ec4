{{ config(materialized='table') }}
{#- The daily calendar spine: every day from the start of the history to the as-of date. -#}
{%- set start_date = "(select min(first_day) from " ~ ref('int_customer_bounds') ~ ")" -%}
{%- set end_date = as_of_date_literal() -%}
with days as (
    {{ day_spine("coalesce(" ~ start_date ~ ", " ~ end_date ~ ")", end_date) }}
)

select
    cast(date_day as date) as date_day,
    cast({{ dbt.date_trunc('week', 'date_day') }} as date) as week_start,
    cast({{ dbt.date_trunc('month', 'date_day') }} as date) as month_start,
    cast({{ dbt.last_day('date_day', 'month') }} as date) as month_end
from days
where cast(date_day as date) <= {{ end_date }}
