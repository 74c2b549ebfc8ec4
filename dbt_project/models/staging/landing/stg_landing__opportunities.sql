{#- Contract 1.1: the opportunity events among the landed touchpoints, one row per event_id (the
    first landed copy, as in stg_landing__touchpoints), with their payload typed. The landing zone
    keeps every payload whole in payload_json; the fields are read from it with json_text()
    (macros/json.sql: DuckDB, PostgreSQL and Spark spell JSON access differently). Nothing is
    filtered here (as-of date, erasure): the intermediate models do that. -#}

select
    touchpoints.event_id,
    touchpoints.customer_id,
    touchpoints.occurred_at,
    touchpoints.event_date,
    touchpoints.employee_id,
    {{ json_text('touchpoints.payload_json', 'opportunity_id') }} as opportunity_id,
    {{ json_text('touchpoints.payload_json', 'account_manager_id') }} as account_manager_id,
    {{ json_text('touchpoints.payload_json', 'status') }} as status,
    {{ json_text('touchpoints.payload_json', 'pipeline_stage') }} as pipeline_stage,
    cast({{ json_text('touchpoints.payload_json', 'stated_probability') }} as {{ type_double() }}) as stated_probability,
    cast({{ json_text('touchpoints.payload_json', 'amount') }} as {{ type_double() }}) as amount,
    {{ json_text('touchpoints.payload_json', 'currency') }} as currency,
    cast({{ json_text('touchpoints.payload_json', 'expected_close_date') }} as date) as expected_close_date,
    cast({{ json_text('touchpoints.payload_json', 'final_amount') }} as {{ type_double() }}) as final_amount,
    cast({{ json_text('touchpoints.payload_json', 'closed_on') }} as date) as closed_on,
    touchpoints.landed_at
from {{ ref('stg_landing__touchpoints') }} as touchpoints
where touchpoints.event_type = 'opportunity'
