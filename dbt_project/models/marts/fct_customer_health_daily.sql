{#- Relationship health per customer per day (the scorecard of int_health_scored) with the top
    three drivers in plain words, worst area first. Incremental by customer-day (see
    macros/incremental.sql). -#}
-- depends_on: {{ ref('fct_touchpoints') }}
-- depends_on: {{ ref('int_customer_versions') }}
-- depends_on: {{ ref('int_customer_bounds') }}
-- depends_on: {{ ref('int_customer_days') }}
-- depends_on: {{ ref('int_health_scored') }}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['customer_id', 'as_of_date'],
    pre_hook="{{ prune_customer_days() }}"
) }}
{%- set green = scoring('health.green_min') -%}
{%- set areas = ['dialogue', 'stakeholder', 'service', 'financial', 'commercial'] -%}

with rebuild as (
    {{ customer_days_to_rebuild() }}
),

scored as (
    select scored.*
    from ({{ health_scored_sql('(' ~ customer_windows_sql(since=rebuild_floor()) ~ ')') }}) as scored
    inner join rebuild
        on rebuild.customer_id = scored.customer_id
       and scored.as_of_date >= rebuild.rebuild_from
),

area_drivers as (
    {% for area in areas -%}
    select customer_id, as_of_date, {{ loop.index }} as area_order, {{ area }}_score as area_score, {{ area }}_driver as driver
    from scored
    where {{ area }}_score < {{ green }}
    {{ 'union all' if not loop.last }}
    {% endfor %}
),

ranked_drivers as (
    select
        area_drivers.*,
        row_number() over (partition by customer_id, as_of_date order by area_score, area_order) as driver_rank
    from area_drivers
),

drivers as (
    select
        customer_id,
        as_of_date,
        {{ dbt.listagg('driver', "'; '", 'order by driver_rank') }} as drivers
    from ranked_drivers
    where driver_rank <= 3
    group by customer_id, as_of_date
)

select
    scored.customer_id,
    scored.as_of_date,
    {{ round_to("scored.health_score", 1) }} as health_score,
    {{ round_to("scored.dialogue_score", 1) }} as dialogue_score,
    {{ round_to("scored.stakeholder_score", 1) }} as stakeholder_score,
    {{ round_to("scored.service_score", 1) }} as service_score,
    {{ round_to("scored.financial_score", 1) }} as financial_score,
    {{ round_to("scored.commercial_score", 1) }} as commercial_score,
    scored.status,
    drivers.drivers,
    scored.days_since_dialogue,
    {{ round_to("scored.usual_gap_days", 1) }} as usual_gap_days,
    {{ round_to("scored.gap_ratio", 2) }} as gap_ratio,
    scored.segment,
    scored.account_manager_id,
    scored.observed_days,
    scored.friction_share_recent,
    scored.days_since_caring,
    scored.open_high_complaint_days,
    scored.worst_dunning_stage,
    scored.amount_overdue,
    scored.value_at_stake,
    scored.currency,
    scored.inputs_landed_at
from scored
left join drivers
    on drivers.customer_id = scored.customer_id and drivers.as_of_date = scored.as_of_date
