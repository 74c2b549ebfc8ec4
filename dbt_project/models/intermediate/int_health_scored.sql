{#- The relationship scorecard per customer per day: five areas scored 0-100, the weighted health
    score, the red / yellow / green status and the drivers in plain words (worst area first).
    Every parameter is in config/scoring.yml (section `health`); docs/warehouse.md explains each
    rule. An area without evidence yet (a brand-new customer) scores `no_evidence_score`, so a
    customer we hardly know is neither praised nor alarmed. A view: every row is scored on its
    own, so a reader that wants a few days (a daily run) scores only those. -#}
{%- set h = scoring('health') -%}
{%- set neutral = h['no_evidence_score'] -%}
{%- set weights = h['weights'] -%}
{%- set weight_total = weights.values() | sum -%}
{%- set sw = h['stakeholder']['window_days'] | int -%}
{%- set tw = h['commercial']['trend_window_days'] | int -%}
{%- set recent = scoring('dialogue.recent_days') | int -%}
{%- set f = h['financial'] -%}
{#- the financial area's score per dunning stage of the contract, worst first -#}
{%- set stage_cases -%}
  {%- for s in contract_dunning_stages() | reverse %} when '{{ s }}' then {{ f['stage_scores'][s] }}{%- endfor -%}
{%- endset %}

with windows as (
    select * from {{ ref('int_customer_windows') }}
),

parts as (
    select
        w.*,
        -- dialogue: the current gap against the usual rhythm ...
        case
            when gap_ratio is null or gap_ratio <= {{ h['dialogue']['full_score_ratio'] }} then 100.0
            when gap_ratio >= {{ h['dialogue']['zero_score_ratio'] }} then 0.0
            else 100.0 * ({{ h['dialogue']['zero_score_ratio'] }} - gap_ratio)
                 / ({{ h['dialogue']['zero_score_ratio'] }} - {{ h['dialogue']['full_score_ratio'] }})
        end as dialogue_gap_part,
        -- ... dialogue days in the recent window against what the usual rhythm expects ...
        case
            when observed_days < usual_gap_days then {{ neutral }}
            else 100.0 * least(1.0, dialogue_days_{{ recent }}d * usual_gap_days / least({{ recent }}, observed_days))
        end as dialogue_frequency_part,
        -- ... and how much of recent contact was not friction
        case
            when contacts_{{ recent }}d = 0 then {{ neutral }}
            else 100.0 * (1 - friction_share_recent)
        end as dialogue_friction_part,
        -- stakeholder breadth: distinct roles reached in two-way dialogue, executive or decision maker
        (
            {% for r in contract_contact_roles() -%}
            {{ bool_to_int('role_' ~ r ~ '_stakeholder_window > 0') }}{{ ' + ' if not loop.last }}
            {%- endfor %}
        ) as roles_reached,
        (role_executive_stakeholder_window + role_decision_maker_stakeholder_window) > 0 as executive_reached,
        least(1.0, cast(observed_days as {{ type_double() }}) / {{ sw }}) as stakeholder_evidence,
        -- service: promises kept (resolution, first-time fix, answered calls), shrunk to a prior
        cast(
            visits_resolved_service_window + visits_first_time_fix_service_window + inbound_calls_answered_service_window
            + {{ h['service']['prior_rate'] }} * {{ h['service']['prior_weight'] }}
        as {{ type_double() }}) / (
            2 * visits_service_window + inbound_calls_service_window + {{ h['service']['prior_weight'] }}
            + 0.000001
        ) as service_rate,
        -- commercial: revenue of the recent window against the customer's own trailing-year pace
        -- (less noisy than window-on-window with few, lumpy orders), and share of annual potential
        order_amount_{{ tw }}d as revenue_recent,
        {{ safe_ratio('(order_amount_365d - order_amount_' ~ tw ~ 'd) * ' ~ tw, 'least(365, observed_days) - ' ~ tw) }} as revenue_expected,
        {{ safe_ratio('order_amount_365d * 365.0', 'least(365, observed_days) * annual_potential') }} as potential_share
    from windows as w
),

scored as (
    select
        parts.*,
        {{ clamp_0_100(
            (1 - h['dialogue']['friction_weight'] - h['dialogue']['frequency_weight']) ~ ' * dialogue_gap_part + '
            ~ h['dialogue']['frequency_weight'] ~ ' * dialogue_frequency_part + '
            ~ h['dialogue']['friction_weight'] ~ ' * dialogue_friction_part') }} as dialogue_score,
        {{ clamp_0_100(
            'stakeholder_evidence * ('
            ~ (100 - h['stakeholder']['executive_points']) ~ ' * least(1.0, cast(roles_reached as ' ~ type_double() ~ ') / ' ~ h['stakeholder']['target_roles'] ~ '.0)'
            ~ ' + case when executive_reached then ' ~ h['stakeholder']['executive_points'] ~ ' else 0 end)'
            ~ ' + (1 - stakeholder_evidence) * ' ~ neutral) }} as stakeholder_score,
        {{ clamp_0_100(
            '100.0 * service_rate - ' ~ h['service']['points_per_complaint'] ~ ' * complaints_service_window'
            ~ ' - case when open_high_complaint_days is not null then ' ~ h['service']['points_per_open_high_complaint'] ~ ' else 0 end') }} as service_score,
        {{ clamp_0_100(
            "case worst_dunning_stage" ~ stage_cases ~ " else 100 end"
            ~ " - case when annual_potential > 0 then " ~ f['max_amount_points']
            ~ " * least(1.0, amount_overdue / (annual_potential * " ~ f['overdue_share_for_max'] ~ ")) else 0 end") }} as financial_score,
        {{ clamp_0_100(
            h['commercial']['trend_weight'] ~ ' * ('
            ~ 'case when observed_days < ' ~ 2 * tw ~ ' then ' ~ neutral
            ~ ' when coalesce(revenue_expected, 0) <= 0 and revenue_recent > 0 then 100'
            ~ ' when coalesce(revenue_expected, 0) <= 0 then case when cum_orders > 0 then 0 else ' ~ neutral ~ ' end'
            ~ ' else 100.0 * least(1.0, revenue_recent / revenue_expected) end)'
            ~ ' + (1 - ' ~ h['commercial']['trend_weight'] ~ ') * ('
            ~ 'case when potential_share is null then ' ~ neutral
            ~ ' else least(1.0, cast(observed_days as ' ~ type_double() ~ ') / 90.0) * 100.0 * least(1.0, potential_share / ' ~ h['commercial']['target_potential_share'] ~ ')'
            ~ ' + (1 - least(1.0, cast(observed_days as ' ~ type_double() ~ ') / 90.0)) * ' ~ neutral ~ ' end)') }} as commercial_score
    from parts
),

health as (
    select
        scored.*,
        {{ clamp_0_100(
            '(' ~ weights['dialogue'] ~ ' * dialogue_score + ' ~ weights['stakeholder'] ~ ' * stakeholder_score + '
            ~ weights['service'] ~ ' * service_score + ' ~ weights['financial'] ~ ' * financial_score + '
            ~ weights['commercial'] ~ ' * commercial_score) / ' ~ weight_total) }} as health_score
    from scored
)

select
    health.*,
    case
        when health_score >= {{ h['green_min'] }}
         and coalesce(friction_share_recent, 0) < {{ h['friction_share_not_green'] }} then 'green'
        when health_score >= {{ h['yellow_min'] }} then 'yellow'
        else 'red'
    end as status,
    -- plain-words driver per area, used when the area scores below green
    case
        when last_dialogue_date is null
            then 'no two-way dialogue in ' || {{ int_text('days_since_dialogue') }} || ' days of contact'
        when gap_ratio > {{ h['dialogue']['full_score_ratio'] }}
            then 'no two-way dialogue for ' || {{ int_text('days_since_dialogue') }} || ' days, usually every '
                 || {{ int_text('usual_gap_days') }}
        when friction_share_recent is not null
            then {{ int_text('100 * friction_share_recent') }} || '% of recent contact is friction (dunning, complaints, missed calls)'
        else 'little recent contact'
    end as dialogue_driver,
    case
        when roles_reached = 0 then 'no customer stakeholder reached in two-way dialogue for {{ sw }} days'
        when not executive_reached
            then 'only ' || {{ int_text('roles_reached') }} || ' contact role(s) reached in {{ sw }} days, no executive or decision maker'
        else 'only ' || {{ int_text('roles_reached') }} || ' contact role(s) reached in {{ sw }} days'
    end as stakeholder_driver,
    case
        when open_high_complaint_days is not null
            then (case when open_high_complaint_days = 0 then 'high-severity complaint came in today, not resolved'
                       when open_high_complaint_days = 1 then 'high-severity complaint open for 1 day'
                       else 'high-severity complaint open for ' || {{ int_text('open_high_complaint_days') }} || ' days' end)
        when complaints_service_window > 0
            then {{ int_text('complaints_service_window') }} || ' complaint(s) in {{ h['service']['window_days'] }} days'
        else 'service promises missed: ' || {{ int_text('100 * service_rate') }} || '% of visits resolved, fixed first time or calls answered'
    end as service_driver,
    case
        when worst_dunning_stage is not null
            then 'dunning reached ' || replace(worst_dunning_stage, '_', ' ') || ', '
                 || {{ grouped_int_text('amount_overdue') }} || ' ' || coalesce(currency, '') || ' overdue'
        else 'overdue invoices'
    end as financial_driver,
    case
        when revenue_expected > 0 and revenue_recent < revenue_expected
            then 'orders down ' || {{ int_text('100 * (1 - revenue_recent / revenue_expected)') }} || '% on its usual pace over {{ tw }} days'
        when revenue_recent <= 0 and cum_orders > 0 then 'no orders for {{ tw }} days'
        when potential_share is not null
            then 'buys only ' || {{ int_text('100 * potential_share') }} || '% of its annual potential'
        else 'low order volume'
    end as commercial_driver
from health
