{#- What a churn-risk case says on its opening day, one row per case of int_risk_case_spans: the
    drivers (the streams that moved the probability most in the window that carries most evidence,
    since the day the drift most likely began: int_drift_days.restart_date), in words, with the
    customer's own usual values, and an open sales opportunity at a customer without two-way
    dialogue for forecast.silent_opportunity_days on the opening day (the largest; forecast audit,
    contract 1.1); the reasons (the scorecard rules that also held on the opening day, in the words
    of their `reason` in config/scoring.yml: status drop, sharp health drop, dialogue gap); health and value at stake on that day.
    And whether the customer had gone silent by then (went_silent: "may already have left"): nothing
    heard from it (no inbound touch of any kind, no two-way dialogue) for risk_cases.went_silent_min_days
    or more, a silence whose chance under the customer's usual rhythm is at most
    risk_cases.went_silent_chance. The rhythm: the days it was heard from in the year up to the last
    one (from its first day, if later), a Poisson rate, so a silence of d days has chance
    exp(-d / usual gap). No rhythm to judge (a label of churn_risk) when the customer was known for
    less than risk_cases.warmup_days up to its last such day, or was not heard from in the year
    before the opening.

    Incremental, because these lookups into the customer-day tables are what a case costs: a stored
    opening is kept while its opening day's inputs are unchanged (the int_drift_days row of that day
    has the same inputs_landed_at: late events and master-data changes move it), so a daily run
    computes the openings of new cases only. Openings that no longer open a case (late data moved
    or removed it) and those of erased customers are deleted; a full refresh gives the same rows. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['customer_id', 'opened_on'],
    pre_hook="{{ prune_case_openings() }}",
    on_schema_change='append_new_columns'
) }}
{%- set rc = scoring('risk_cases') -%}
{%- set streams = drift_streams() -%}
{%- set min_driver = (rc['min_driver_evidence'] * 1000) | int -%}
{%- set reason_rules = case_reason_rules() -%}
{%- set cases_to_compute -%}
    select spans.customer_id, spans.opened_on, spans.opened_inputs_landed_at
    from {{ ref('int_risk_case_spans') }} as spans
    {% if is_incremental() -%}
    left join {{ this }} as stored
        on stored.customer_id = spans.customer_id and stored.opened_on = spans.opened_on
    where stored.customer_id is null or stored.inputs_landed_at is distinct from spans.opened_inputs_landed_at
    {#- openings stored before went_silent existed are computed again, once -#}
    {%- if 'went_silent' not in (adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list) %}
       or true
    {%- endif %}
    {%- endif %}
{%- endset -%}
{#- On a daily run, the earliest opening day to compute, as a literal: a filter on it reaches the
    scans below the scorecard views, so that the health of the few opening days is computed, not
    that of the whole history (the semi-joins cannot go below the views' projections). None on a
    full refresh. -#}
{%- set first_opening = case_openings_floor(cases_to_compute) -%}
{#- a restart day is at most the longest drift window before its opening day (int_drift_days) -#}
{%- set longest_window = scoring('drift.window_days') | max -%}
{#- went silent: the rhythm of the year up to the last day the customer was heard from -#}
{%- set silent_min_days = rc.get('went_silent_min_days', 30) | int -%}
{%- set silent_chance = rc.get('went_silent_chance', 0.01) | float -%}

with

drift_days {{ inlined() }} (
    select * from {{ ref('int_drift_days') }}
),

customer_days {{ inlined() }} (
    select * from {{ ref('int_customer_days') }}
),

opportunity_states as (
    select * from {{ ref('int_opportunity_states') }}
),

alert_flags as (
    select * from {{ ref('int_alert_flags') }}
),

health_daily as (
    select * from {{ ref('int_health_daily') }}
),

cases as (
    -- the openings to compute: all on a full refresh; new or restated ones on a daily run
    {{ cases_to_compute }}
),

touchpoints {{ inlined() }} (
    select * from {{ ref('int_touchpoints') }}
),

heard_days as (
    -- the days the customer said something to us (an inbound touch of any kind, a two-way
    -- dialogue) in the two years before each opening
    select distinct
        cases.customer_id,
        cases.opened_on,
        touches.event_date
    from cases
    inner join touchpoints as touches
        on touches.customer_id = cases.customer_id
       and touches.event_date <= cases.opened_on
       and touches.event_date > {{ add_days('cases.opened_on', -730) }}
    where (touches.direction = 'inbound' or touches.is_two_way_dialogue)
      {%- if first_opening %} and touches.event_date > {{ add_days(first_opening, -730) }}{% endif %}
),

last_heard as (
    select customer_id, opened_on, max(event_date) as last_heard_on
    from heard_days
    group by customer_id, opened_on
),

heard as (
    -- the last day, if in the year before the opening, and the days heard from in the year up to it
    select
        last_heard.customer_id,
        last_heard.opened_on,
        last_heard.last_heard_on,
        count(*) as heard_days_in_year
    from last_heard
    inner join heard_days
        on heard_days.customer_id = last_heard.customer_id
       and heard_days.opened_on = last_heard.opened_on
       and heard_days.event_date > {{ add_days('last_heard.last_heard_on', -365) }}
    where last_heard.last_heard_on > {{ add_days('last_heard.opened_on', -365) }}
    group by last_heard.customer_id, last_heard.opened_on, last_heard.last_heard_on
),

{%- set counted = [] -%}
{%- for s in streams -%}{%- for name in [s.name, s.of] if name and name not in counted -%}{%- do counted.append(name) -%}{%- endfor -%}{%- endfor -%}
{%- set rates = streams | selectattr('kind', 'ne', 'share') | map(attribute='name') | list -%}
opening_days as (
    -- the opening day's rows: inner joins, so that the few cases drive the look-ups into the
    -- customer-day tables (a left join hashes the whole table)
    select
        cases.*,
        drift.segment,
        drift.restart_date,
        drift.observed_days,
        {% for s in streams -%}
        drift.since_restart_milli_{{ s.name }},
        drift.usual_rate_{{ s.name }},
        {% endfor -%}
        {% for name in rates -%}
        drift.cum_exposure_milli_{{ name }} as open_exposure_milli_{{ name }},
        {% endfor -%}
        {% for name in counted -%}
        days.cum_drift_{{ name }} as open_drift_{{ name }},
        {% endfor -%}
        days.last_dialogue_date,
        days.last_order_date
    from cases
    inner join drift_days as drift
        on drift.customer_id = cases.customer_id and drift.as_of_date = cases.opened_on{% if first_opening %} and drift.as_of_date >= {{ first_opening }}{% endif %}
    inner join customer_days as days
        on days.customer_id = cases.customer_id and days.as_of_date = cases.opened_on{% if first_opening %} and days.as_of_date >= {{ first_opening }}{% endif %}
),

{#- The running counts (int_customer_days) and exposures (int_drift_days) on the day the evidence
    started to build: none before the customer's first day. -#}
{%- set restart_lookups = [
    ('restart_counts', 'customer_days', counted, 'cum_drift_', 'restart_drift_'),
    ('restart_exposure', 'drift_days', rates, 'cum_exposure_milli_', 'restart_exposure_milli_'),
] -%}
{%- for cte, relation, names, stored, named in restart_lookups %}
{{ cte }} as (
    select
        opening_days.customer_id,
        opening_days.opened_on,
        {% for name in names -%}
        restart_days.{{ stored }}{{ name }} as {{ named }}{{ name }}{{ ',' if not loop.last }}
        {% endfor %}
    from opening_days
    inner join (
        -- the restart days only, found by a semi-join first: a join straight to the table lets the
        -- planner hash the whole table (at 20M events it spilled 13 GiB)
        select * from {{ relation }} as d
        where exists (select 1 from opening_days as o where o.customer_id = d.customer_id and o.restart_date = d.as_of_date)
          {%- if first_opening %} and d.as_of_date >= {{ add_days(first_opening, -longest_window) }}{% endif %}
    ) as restart_days
        on restart_days.customer_id = opening_days.customer_id and restart_days.as_of_date = opening_days.restart_date
),
{% endfor %}
at_open as (
    -- the opening day, and the day the evidence started to build (int_drift_days.restart_date)
    select
        opening.customer_id,
        opening.opened_on,
        opening.opened_inputs_landed_at,
        opening.segment,
        -- no restart day yet: since the customer's first day (observed_days after it)
        coalesce(opening.restart_date, {{ add_days('opening.opened_on', '-(opening.observed_days + 1)') }}) as building_since,
        {% for s in streams -%}
        opening.since_restart_milli_{{ s.name }},
        opening.usual_rate_{{ s.name }},
        opening.open_drift_{{ s.name }} - coalesce(counts.restart_drift_{{ s.name }}, 0) as seen_{{ s.name }},
        {% if s.kind == 'share' -%}
        opening.open_drift_{{ s.of }} - coalesce(counts.restart_drift_{{ s.of }}, 0) as seen_base_{{ s.name }},
        {% else -%}
        opening.usual_rate_{{ s.name }} * (opening.open_exposure_milli_{{ s.name }} - coalesce(exposure.restart_exposure_milli_{{ s.name }}, 0)) / 1000.0 as expected_{{ s.name }},
        {% endif -%}
        {% endfor -%}
        {{ days_between('opening.last_dialogue_date', 'opening.opened_on') }} as days_since_dialogue,
        {{ days_between('opening.last_order_date', 'opening.opened_on') }} as days_since_order,
        heard.last_heard_on,
        {{ days_between('heard.last_heard_on', 'opening.opened_on') }} as days_silent,
        coalesce(heard.heard_days_in_year, 0) as heard_days_in_year,
        -- the days of the rhythm's year the customer was known (its first day is observed_days
        -- before the opening)
        least(365, opening.observed_days - {{ days_between('heard.last_heard_on', 'opening.opened_on') }} + 1) as rhythm_days
    from opening_days as opening
    left join restart_counts as counts
        on counts.customer_id = opening.customer_id and counts.opened_on = opening.opened_on
    left join restart_exposure as exposure
        on exposure.customer_id = opening.customer_id and exposure.opened_on = opening.opened_on
    left join heard
        on heard.customer_id = opening.customer_id and heard.opened_on = opening.opened_on
),

silence as (
    select
        at_open.*,
        case when heard_days_in_year > 0 and rhythm_days >= {{ rc['warmup_days'] | int }}
             then cast(rhythm_days as {{ type_double() }}) / heard_days_in_year end as usual_heard_gap_days,
        {% if silent_chance > 0 -%}
        coalesce(days_silent >= {{ silent_min_days }} and heard_days_in_year > 0 and rhythm_days >= {{ rc['warmup_days'] | int }}
                 and days_silent * heard_days_in_year >= -ln({{ silent_chance }}) * rhythm_days, false)
        {%- else %}false{% endif %} as went_silent
    from at_open
),

ranked as (
    -- the streams ranked within the row by what they added to the evidence (ties in config order)
    select
        silence.*,
        {% for s in streams -%}
        {%- set outer = loop -%}
        case when since_restart_milli_{{ s.name }} >= {{ min_driver }} then 1
            {% for other in streams if other.name != s.name -%}
            + case when since_restart_milli_{{ other.name }} >= {{ min_driver }}
                    and (since_restart_milli_{{ other.name }} > since_restart_milli_{{ s.name }}
                         {%- if streams.index(other) < outer.index0 %} or since_restart_milli_{{ other.name }} = since_restart_milli_{{ s.name }}{% endif %})
                   then 1 else 0 end
            {% endfor -%}
        end as rank_{{ s.name }},
        {% endfor -%}
        {% for s in streams -%}
        {% if s.kind == 'share' -%}
        {{ sql_string(s.label) }} || ': ' || {{ int_text('seen_' ~ s.name) }} || ' of '
            || {{ int_text('seen_base_' ~ s.name) }} || ' {{ {'contacts': 'contacts', 'surveys': 'survey answers', 'visits': 'service visits', 'commercial': 'sales and management contacts'}[s.of] }} since '
            || {{ as_text('building_since') }} || ', usually ' || {{ int_text('usual_rate_' ~ s.name ~ ' * 100') }} || ' %'
            as driver_{{ s.name }}{{ ',' if not loop.last }}
        {% else -%}
        {{ sql_string(s.label) }} || ': ' || {{ int_text('seen_' ~ s.name) }} || ' since '
            || {{ as_text('building_since') }} || ', about ' || {{ fixed_text('expected_' ~ s.name, 1) }}
            || ' expected (usually ' || {{ fixed_text('usual_rate_' ~ s.name ~ ' * 90', 1) }} || ' per 90 days'
            {%- if s.name == 'dialogue' %}
            || coalesce('; the last two-way dialogue ' || {{ as_text('days_since_dialogue') }} || ' days ago', '')
            {%- elif s.name == 'orders' %}
            || coalesce('; the last order ' || {{ as_text('days_since_order') }} || ' days ago', '')
            {%- endif %} || ')' as driver_{{ s.name }}{{ ',' if not loop.last }}
        {% endif -%}
        {% endfor %}
    from silence
),

worded as (
    select
        ranked.*,
        {% for k in [1, 2, 3] -%}
        case
            {% for s in streams -%}
            when rank_{{ s.name }} = {{ k }} then driver_{{ s.name }}
            {% endfor -%}
        end as driver_{{ k }}{{ ',' if not loop.last }}
        {% endfor %}
    from ranked
),

flags_on_opening_days as (
    -- the scorecard rows of the opening days only (semi-joins, as above)
    select * from alert_flags as f
    where exists (select 1 from cases as c where c.customer_id = f.customer_id and c.opened_on = f.as_of_date){% if first_opening %} and f.as_of_date >= {{ first_opening }}{% endif %}
),

health_on_opening_days as (
    select * from health_daily as h
    where exists (select 1 from cases as c where c.customer_id = h.customer_id and c.opened_on = h.as_of_date){% if first_opening %} and h.as_of_date >= {{ first_opening }}{% endif %}
),

silent_opportunities as (
    -- opportunities open on the opening day at a customer without two-way dialogue: the largest, in words
    select customer_id, opened_on,
           words || case when opportunities > 1 then ' (and ' || {{ as_text('opportunities - 1') }} || ' more open)' else '' end as words
    from (
        select
            at_open.customer_id,
            at_open.opened_on,
            {{ silent_opportunity_words('states.opportunity_id', 'states.pipeline_stage', 'states.amount', 'states.currency', 'states.expected_close_date', 'at_open.days_since_dialogue') }} as words,
            count(*) over (partition by at_open.customer_id, at_open.opened_on) as opportunities,
            row_number() over (
                partition by at_open.customer_id, at_open.opened_on
                order by coalesce(states.amount * {{ reporting_rate('states.currency') }}, -1) desc, states.opportunity_id
            ) as largest
        from at_open
        inner join opportunity_states as states
            on states.customer_id = at_open.customer_id
           and states.status = 'open'
           and states.event_date <= at_open.opened_on
           and (states.next_event_date is null or states.next_event_date > at_open.opened_on)
        where coalesce(at_open.days_since_dialogue >= {{ scoring('forecast.silent_opportunity_days') | int }}, true)
    ) as ranked
    where largest = 1
),

reasoned as (
    select
        worded.*,
        case when went_silent then '; nothing heard from the customer for ' || {{ as_text('days_silent') }}
            || ' days (no inbound touch, no two-way dialogue; usually every '
            || {{ int_text('usual_heard_gap_days') }} || ' days): it may already have left' else '' end
        || coalesce('; ' || driver_1, '') || coalesce('; ' || driver_2, '') || coalesce('; ' || driver_3, '')
            || coalesce('; ' || silent_opportunities.words, '') as driver_list,
        ''
        {%- for rule, words in reason_rules %}
        || case when flags.{{ rule }} then {{ sql_string('; ' ~ words) }} else '' end
        {%- endfor %} as reason_list
    from worded
    left join flags_on_opening_days as flags
        on flags.customer_id = worded.customer_id and flags.as_of_date = worded.opened_on
    left join silent_opportunities
        on silent_opportunities.customer_id = worded.customer_id and silent_opportunities.opened_on = worded.opened_on
)


select
    reasoned.customer_id,
    reasoned.opened_on,
    reasoned.opened_inputs_landed_at as inputs_landed_at,
    reasoned.segment,
    case when reasoned.driver_list <> '' then substr(reasoned.driver_list, 3) end as drivers,
    case when reasoned.reason_list <> '' then substr(reasoned.reason_list, 3) end as reasons,
    health.health_score,
    health.status,
    health.value_at_stake,
    health.currency,
    health.segment as health_segment,
    reasoned.last_heard_on,
    cast(reasoned.days_silent as {{ dbt.type_bigint() }}) as days_silent,
    cast(reasoned.usual_heard_gap_days as {{ type_double() }}) as usual_heard_gap_days,
    reasoned.went_silent
from reasoned
inner join health_on_opening_days as health
    on health.customer_id = reasoned.customer_id and health.as_of_date = reasoned.opened_on
