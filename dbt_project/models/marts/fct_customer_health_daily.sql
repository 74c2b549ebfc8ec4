{#- Relationship health per customer per day: the five area scores, the weighted health score, the
    red / yellow / green status and the top three drivers in plain words, worst area first
    (int_health_daily, scored by int_health_scored). Incremental by customer-day (see
    macros/incremental.sql): a daily run rewrites the days whose inputs changed. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['customer_id', 'as_of_date'],
    on_schema_change='append_new_columns',
    pre_hook="{{ prune_customer_days() }}",
    customer_batched=true,
    post_hook="{{ insert_customer_batches() }}"
) }}
{%- set since = rebuild_floor() %}

with health as (
    select * from {{ ref('int_health_daily') }}
),

rebuild as (
    {{ customer_days_to_rebuild() }}
)

select
    health.customer_id,
    health.as_of_date,
    health.health_score,
    health.dialogue_score,
    health.stakeholder_score,
    health.service_score,
    health.financial_score,
    health.commercial_score,
    health.status,
    health.drivers,
    cast(health.days_since_dialogue as {{ dbt.type_bigint() }}) as days_since_dialogue,
    health.usual_gap_days,
    health.gap_ratio,
    health.segment,
    health.account_manager_id,
    cast(health.observed_days as {{ dbt.type_bigint() }}) as observed_days,
    health.friction_share_recent,
    cast(health.days_since_caring as {{ dbt.type_bigint() }}) as days_since_caring,
    cast(health.open_high_complaint_days as {{ dbt.type_bigint() }}) as open_high_complaint_days,
    health.worst_dunning_stage,
    health.amount_overdue,
    health.value_at_stake,
    health.currency,
    health.inputs_landed_at
from health
inner join rebuild
    on rebuild.customer_id = health.customer_id
   and health.as_of_date >= rebuild.rebuild_from
where {{ customer_batch_filter('health.customer_id') }}
{%- if since is not none %}
  and health.as_of_date >= {{ since }}
{%- endif %}
