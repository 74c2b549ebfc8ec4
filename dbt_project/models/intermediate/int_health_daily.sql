{#- Relationship health per customer per day as it is published (fct_customer_health_daily) and
    judged (int_alert_flags, int_case_openings): the scorecard of int_health_scored with the top
    three drivers in plain words, worst area first, and the scores rounded as published (one
    decimal; the gap ratio two). A view: every row stands on its own, so a reader that wants a few
    days (a daily run) computes only those. -#}
{%- set green = scoring('health.green_min') -%}
{%- set areas = ['dialogue', 'stakeholder', 'service', 'financial', 'commercial'] -%}

with scored as (
    select * from {{ ref('int_health_scored') }}
),

ranked as (
    {#- The top three drivers, worst area first (ties in area order), among the areas below
        green: ranked within the row, so the full history streams through without a sort, a
        group or a join back (at tens of millions of customer-days those spill to disk).
        Scores are compared as published (one decimal): two areas that read 59.6 are a tie, and
        the last bits of a double, which differ between engines, cannot reorder them. -#}
    select
        scored.*,
        {% for area in areas -%}
        {%- set outer = loop -%}
        {%- set mine = round_to(area ~ '_score', 1) -%}
        case when {{ area }}_score < {{ green }} then 1
            {% for other in areas if other != area -%}
            {%- set theirs = round_to(other ~ '_score', 1) -%}
            + case when {{ other }}_score < {{ green }}
                    and ({{ theirs }} < {{ mine }}
                         {%- if areas.index(other) < outer.index0 %} or {{ theirs }} = {{ mine }}{% endif %})
                   then 1 else 0 end
            {% endfor -%}
        end as {{ area }}_driver_rank{{ ',' if not outer.last }}
        {% endfor %}
    from scored
),

top_drivers as (
    select
        ranked.*,
        {% for k in [1, 2, 3] -%}
        case
            {% for area in areas -%}
            when {{ area }}_driver_rank = {{ k }} then {{ area }}_driver
            {% endfor -%}
        end as driver_{{ k }}{{ ',' if not loop.last }}
        {% endfor %}
    from ranked
),

with_drivers as (
    select
        top_drivers.*,
        coalesce('; ' || driver_1, '') || coalesce('; ' || driver_2, '') || coalesce('; ' || driver_3, '') as driver_list
    from top_drivers
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
    case when scored.driver_list <> '' then substr(scored.driver_list, 3) end as drivers,
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
from with_drivers as scored
