{#- The dense customer-day state: one row per customer per day from its first day to the as-of
    date, with running (cumulative) counts of every kind of touch and the last date of each
    signal. Trailing windows are differences of running counts (int_customer_windows), which makes
    every window O(1) per row and lets a daily run extend the series from the stored state of the
    day before instead of re-reading a year of events. Incremental by customer-day: see
    macros/incremental.sql for which days are rebuilt.

    What it counts per customer-day (int_customer_windows takes its trailing windows from these):
      counts      (name, condition on int_touchpoints): running count cum_<name>
      sums        (name, expression): running sum cum_<name>
      last_dates  (name, condition): last_<name>_date
      running     every cum_<name>, including cum_dialogue_days (days with a two-way dialogue) -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['customer_id', 'as_of_date'],
    pre_hook="{{ prune_customer_days() }}",
    customer_batched=true,
    post_hook="{{ insert_customer_batches() }}"
) }}

{%- set counts = [
    ('contacts', 'true'),
    ('dialogues', 'is_two_way_dialogue'),
    ('caring', "contact_kind = 'caring'"),
    ('friction', "contact_kind = 'friction'"),
    ('neutral', "contact_kind = 'neutral'"),
    ('inbound_calls', "event_type = 'call' and direction = 'inbound'"),
    ('inbound_calls_answered', "event_type = 'call' and direction = 'inbound' and coalesce(answered, false)"),
    ('visits', "event_type = 'service_visit'"),
    ('visits_resolved', "event_type = 'service_visit' and coalesce(resolved, false)"),
    ('visits_first_time_fix', "event_type = 'service_visit' and coalesce(first_time_fix, false)"),
    ('complaints', "event_type = 'complaint'"),
    ('complaints_high', "event_type = 'complaint' and severity = 'high'"),
    ('orders', "event_type = 'order'"),
    ('surveys', "event_type = 'survey_response' and nps_score is not null"),
    ('promoters', "event_type = 'survey_response' and nps_score >= " ~ scoring('loyalty.promoter_min')),
    ('detractors', "event_type = 'survey_response' and nps_score <= " ~ scoring('loyalty.detractor_max')),
    ('survey_comments', "event_type = 'survey_response' and comment is not null and comment <> ''"),
] -%}
{%- for d in contract_departments() -%}{%- do counts.append(('dept_' ~ d, "department = '" ~ d ~ "'")) -%}{%- endfor -%}
{%- for r in contract_contact_roles() -%}{%- do counts.append(('role_' ~ r, "is_two_way_dialogue and contact_role = '" ~ r ~ "'")) -%}{%- endfor -%}
{%- for s in contract_dunning_stages() -%}{%- do counts.append(('dunning_' ~ s, "event_type = 'dunning_contact' and dunning_stage = '" ~ s ~ "'")) -%}{%- endfor -%}
{#- the drift model's streams (macros/drift_streams.sql), every one it knows, so that switching
    one on in config/scoring.yml needs no new column -#}
{%- for name, spec in drift_stream_conditions().items() -%}{%- do counts.append(('drift_' ~ name, spec['condition'])) -%}{%- endfor -%}
{#- money is summed as exact decimals, so running totals do not depend on summation order -#}
{%- set sums = [('order_amount', "cast(case when event_type = 'order' then coalesce(amount, 0) else 0 end as " ~ dbt.type_numeric() ~ ")")] -%}
{%- set last_dates = [
    ('dialogue', 'is_two_way_dialogue'),
    ('caring', "contact_kind = 'caring'"),
    ('order', "event_type = 'order'"),
    ('dunning', "event_type = 'dunning_contact'"),
    ('open_high_complaint', "event_type = 'complaint' and severity = 'high' and not coalesce(resolved, false)"),
    ('resolution', "(event_type = 'complaint' and coalesce(resolved, false)) or (event_type = 'service_visit' and coalesce(resolved, false))"),
] -%}
{%- set running = counts | map(attribute=0) | list + ['dialogue_days'] + sums | map(attribute=0) | list -%}
{%- set inc = is_incremental() -%}
{%- set first_dialogue_in_order_group -%}
    min(case when inputs.dialogue_day is not null and inputs.order_day is null then inputs.as_of_date end) over (
        partition by inputs.customer_id, inputs.order_group order by inputs.as_of_date
        rows between unbounded preceding and current row)
{%- endset -%}

with touchpoints as (
    select * from {{ ref('int_touchpoints') }}
),

versions as (
    select * from {{ ref('int_customer_versions') }}
),

bounds as (
    select * from {{ ref('int_customer_bounds') }}
),

calendar as (
    select * from {{ ref('int_calendar') }}
),

rebuild as (
    {{ customer_days_to_rebuild() }}
),

event_days as (
    select
        touchpoints.customer_id,
        touchpoints.event_date as as_of_date,
        {% for name, condition in counts -%}
        sum(case when {{ condition }} then 1 else 0 end) as day_{{ name }},
        {% endfor -%}
        {% for name, expr in sums -%}
        sum({{ expr }}) as day_{{ name }},
        {% endfor -%}
        {% for name, condition in last_dates -%}
        max(case when {{ condition }} then 1 else 0 end) as has_{{ name }},
        {% endfor -%}
        max(case when event_type = 'dunning_contact' then coalesce(amount_overdue, 0) end) as day_dunning_amount,
        max(touchpoints.landed_at) as day_landed_at
    from touchpoints
    inner join rebuild
        on rebuild.customer_id = touchpoints.customer_id
       and touchpoints.event_date >= rebuild.rebuild_from
    group by touchpoints.customer_id, touchpoints.event_date
),

version_days as (
    -- a master-data version is an input from the day it takes effect
    select
        versions.customer_id,
        greatest(versions.valid_from, bounds.first_day) as as_of_date,
        max(versions.landed_at) as day_landed_at
    from versions
    inner join bounds on bounds.customer_id = versions.customer_id
    inner join rebuild
        on rebuild.customer_id = versions.customer_id
       and greatest(versions.valid_from, bounds.first_day) >= rebuild.rebuild_from
    where greatest(versions.valid_from, bounds.first_day) <= {{ as_of_date_literal() }}
    group by versions.customer_id, greatest(versions.valid_from, bounds.first_day)
),

input_days as (
    -- the sparse days on which the customer's state changes
    select
        coalesce(event_days.customer_id, version_days.customer_id) as customer_id,
        coalesce(event_days.as_of_date, version_days.as_of_date) as as_of_date,
        {% for name in running if name != 'dialogue_days' -%}
        coalesce(event_days.day_{{ name }}, 0) as day_{{ name }},
        {% endfor -%}
        case when coalesce(event_days.day_dialogues, 0) > 0 then 1 else 0 end as day_dialogue_days,
        {% for name, condition in last_dates -%}
        case when event_days.has_{{ name }} = 1 then event_days.as_of_date end as {{ name }}_day,
        {% endfor -%}
        event_days.day_dunning_amount,
        greatest(event_days.day_landed_at, version_days.day_landed_at) as day_landed_at
    from event_days
    full outer join version_days
        on version_days.customer_id = event_days.customer_id and version_days.as_of_date = event_days.as_of_date
)

{%- if inc %},

base as (
    -- the stored state of the day before each customer's rebuild starts
    select stored.*
    from {{ this }} as stored
    inner join rebuild
        on rebuild.customer_id = stored.customer_id
       and stored.as_of_date = {{ add_days('rebuild.rebuild_from', -1) }}
    where stored.as_of_date >= {{ add_days(rebuild_floor(), -1) }}
)
{%- endif %},

grouped_inputs as (
    select
        input_days.*,
        count(input_days.day_dunning_amount) over running_total as dunning_group,
        count(input_days.order_day) over running_total as order_group
    from input_days
    window running_total as (
        partition by input_days.customer_id order by input_days.as_of_date
        rows between unbounded preceding and current row
    )
),

state as (
    -- running state on the input days (plus the stored state before the rebuild)
    select
        inputs.customer_id,
        inputs.as_of_date,
        {% for name in running -%}
        {% if inc %}coalesce(base.cum_{{ name }}, 0) + {% endif %}sum(inputs.day_{{ name }}) over running_total as cum_{{ name }},
        {% endfor -%}
        {% for name, condition in last_dates -%}
        {% if inc %}greatest({% endif %}max(inputs.{{ name }}_day) over running_total{% if inc %}, base.last_{{ name }}_date){% endif %} as last_{{ name }}_date,
        {% endfor -%}
        coalesce(
            max(inputs.day_dunning_amount) over (partition by inputs.customer_id, inputs.dunning_group)
            {%- if inc %}, base.last_dunning_amount{% endif %}
        ) as last_dunning_amount,
        {#- the first dialogue day after the last order day: order follow-up without looking up
            another day's row (group 0 holds the days before the first order of this build) -#}
        case when inputs.order_group > 0 then {{ first_dialogue_in_order_group }}
             {%- if inc %} when base.last_order_date is not null
             then coalesce(base.first_dialogue_after_order, {{ first_dialogue_in_order_group }}){% endif %}
        end as first_dialogue_after_order,
        {% if inc %}greatest({% endif %}max(inputs.day_landed_at) over running_total{% if inc %}, base.inputs_landed_at){% endif %} as inputs_landed_at
    from grouped_inputs as inputs
    {% if inc -%}
    left join base on base.customer_id = inputs.customer_id
    {%- endif %}
    window running_total as (
        partition by inputs.customer_id order by inputs.as_of_date
        rows between unbounded preceding and current row
    )
),

spine as (
    select
        rebuild.customer_id,
        calendar.date_day as as_of_date,
        max(input_days.as_of_date) over (
            partition by rebuild.customer_id order by calendar.date_day
            rows between unbounded preceding and current row
        ) as state_day
    from rebuild
    inner join calendar on calendar.date_day >= rebuild.rebuild_from
    left join input_days
        on input_days.customer_id = rebuild.customer_id and input_days.as_of_date = calendar.date_day
)

select
    spine.customer_id,
    spine.as_of_date,
    {% for name in running -%}
    coalesce(state.cum_{{ name }}{% if inc %}, base.cum_{{ name }}{% endif %}, 0) as cum_{{ name }},
    {% endfor -%}
    {% for name, condition in last_dates -%}
    {% if inc %}coalesce(state.last_{{ name }}_date, base.last_{{ name }}_date){% else %}state.last_{{ name }}_date{% endif %} as last_{{ name }}_date,
    {% endfor -%}
    {% if inc %}coalesce(state.last_dunning_amount, base.last_dunning_amount){% else %}state.last_dunning_amount{% endif %} as last_dunning_amount,
    {#- null is a value here (an order without a dialogue since): the stored state applies only
        before the first input day of the rebuild -#}
    {% if inc %}case when spine.state_day is null then base.first_dialogue_after_order else state.first_dialogue_after_order end{% else %}state.first_dialogue_after_order{% endif %} as first_dialogue_after_order,
    {% if inc %}coalesce(state.inputs_landed_at, base.inputs_landed_at){% else %}state.inputs_landed_at{% endif %} as inputs_landed_at
from spine
left join state on state.customer_id = spine.customer_id and state.as_of_date = spine.state_day
{% if inc -%}
left join base on base.customer_id = spine.customer_id
{%- endif %}
order by spine.as_of_date, spine.customer_id
