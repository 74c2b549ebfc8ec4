{#- One row per churn-risk case: a customer whose probability of drifting toward churn
    (int_drift_days) reached risk_cases.open_probability (or, with
    risk_cases.cases_per_manager_per_month set, the opening probability that keeps the trailing
    year's cases within that budget). A case stays open while the probability
    stays at or above risk_cases.close_probability; the day it falls below, the customer has
    recovered and the case is closed; only then can a new case open for the same customer.
    drivers: the streams that moved the probability most in the window that carries most evidence
    (since the day the drift most likely began: int_drift_days.restart_date), in words, with the customer's own usual values, and an open sales
    opportunity at a customer without two-way dialogue for forecast.silent_opportunity_days on the
    opening day (the largest; forecast audit, contract 1.1). reasons: the
    scorecard rules that also held on the opening day (status drop, sharp health drop, dialogue
    gap). Values at stake in the customer's currency and in the reporting currency
    (config/scoring.yml `reporting`); expected_value_at_risk = probability x value at stake. -#}
{%- set rc = scoring('risk_cases') -%}
{%- set streams = drift_streams() -%}
{%- set rates = scoring('reporting.rates') -%}
{%- set min_driver = (rc['min_driver_evidence'] * 1000) | int -%}
{%- set rules = scoring('alerts.rules') -%}
{%- set reason_rules = [('status_drop', 'health fell below its own norm'),
                        ('sharp_health_drop', 'health dropped sharply'),
                        ('dialogue_gap', 'far outside its usual dialogue rhythm')] -%}

with elevated as (
    select
        drift.customer_id,
        drift.as_of_date,
        drift.drift_probability,
        drift.observed_days,
        lag(drift.as_of_date) over (partition by drift.customer_id order by drift.as_of_date) as previous_day
    from {{ ref('int_drift_days') }} as drift
    where drift.drift_probability >= {{ rc['close_probability'] }}
),

runs as (
    -- consecutive elevated days; a day below close_probability ends the run
    select
        elevated.*,
        sum(case when previous_day is null or {{ days_between('previous_day', 'as_of_date') }} > 1 then 1 else 0 end)
            over (partition by customer_id order by as_of_date rows between unbounded preceding and current row) as run_number
    from elevated
),

{%- if rc.get('cases_per_manager_per_month') %}
{#- A budget instead of a probability: the opening probability is the lowest of 0.01, 0.02, ...,
    0.99 (from the closing probability up) at which the runs of the trailing year that would open a case stay within the budget
    (cases per account manager per month x managers x 12). Re-derived each run, from the model's
    own recent history. -#}
peaks as (
    select customer_id, run_number, max(drift_probability) as peak_probability, max(as_of_date) as last_day
    from runs
    where observed_days >= {{ rc['warmup_days'] | int }}
    group by customer_id, run_number
),

candidates as (
    {% for k in range([1, (rc['close_probability'] * 100) | round(0, 'ceil') | int] | max, 100) -%}
    select {{ k / 100 }} as threshold{{ ' union all' if not loop.last }}
    {% endfor %}
),

budget as (
    select {{ rc['cases_per_manager_per_month'] }} * 12 * count(distinct account_manager_id) as cases_per_year
    from {{ ref('dim_customers') }}
),

opening_threshold as (
    select coalesce(min(counted.threshold), 0.99) as threshold
    from (
        select candidates.threshold, count(peaks.customer_id) as cases
        from candidates
        left join peaks
            on peaks.peak_probability >= candidates.threshold
           and peaks.last_day > {{ add_days(drift_last_day(), -365) }}
        group by candidates.threshold
    ) as counted
    cross join budget
    where counted.cases <= budget.cases_per_year
),
{%- else %}
opening_threshold as (
    select {{ rc['open_probability'] }} as threshold
),
{%- endif %}

opened as (
    select runs.customer_id, runs.run_number, min(runs.as_of_date) as opened_on
    from runs
    cross join opening_threshold
    where runs.drift_probability >= opening_threshold.threshold and runs.observed_days >= {{ rc['warmup_days'] | int }}
    group by runs.customer_id, runs.run_number
),

spans as (
    select customer_id, run_number, max(as_of_date) as last_elevated_day, max(drift_probability) as peak_probability
    from runs
    group by customer_id, run_number
),

cases as (
    select
        opened.customer_id,
        opened.opened_on,
        spans.last_elevated_day,
        spans.peak_probability
    from opened
    inner join spans on spans.customer_id = opened.customer_id and spans.run_number = opened.run_number
),

at_open as (
    -- the opening day, and the day the evidence started to build (the CUSUM's last zero before it)
    select
        cases.*,
        drift.drift_probability,
        drift.segment,
        coalesce(drift.restart_date, {{ add_days('bounds.first_day', -1) }}) as building_since,
        {% for s in streams -%}
        drift.since_restart_milli_{{ s.name }},
        drift.usual_rate_{{ s.name }},
        {{ stream_count(s, 'days') }} - coalesce({{ stream_count(s, 'restart_days') }}, 0) as seen_{{ s.name }},
        {% if s.kind == 'share' -%}
        days.cum_drift_{{ s.of }} - coalesce(restart_days.cum_drift_{{ s.of }}, 0) as seen_base_{{ s.name }},
        {% else -%}
        drift.usual_rate_{{ s.name }} * (drift.cum_exposure_milli_{{ s.name }} - coalesce(restart_drift.cum_exposure_milli_{{ s.name }}, 0)) / 1000.0 as expected_{{ s.name }},
        {% endif -%}
        {% endfor -%}
        {{ days_between('days.last_dialogue_date', 'cases.opened_on') }} as days_since_dialogue,
        {{ days_between('days.last_order_date', 'cases.opened_on') }} as days_since_order
    from cases
    inner join {{ ref('int_drift_days') }} as drift
        on drift.customer_id = cases.customer_id and drift.as_of_date = cases.opened_on
    inner join {{ ref('int_customer_bounds') }} as bounds on bounds.customer_id = cases.customer_id
    inner join {{ ref('int_customer_days') }} as days
        on days.customer_id = cases.customer_id and days.as_of_date = cases.opened_on
    left join {{ ref('int_customer_days') }} as restart_days
        on restart_days.customer_id = cases.customer_id and restart_days.as_of_date = drift.restart_date
    left join {{ ref('int_drift_days') }} as restart_drift
        on restart_drift.customer_id = cases.customer_id and restart_drift.as_of_date = drift.restart_date
),

ranked as (
    -- the streams ranked within the row by what they added to the evidence (ties in config order)
    select
        at_open.*,
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
    from at_open
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
        inner join {{ ref('int_opportunity_states') }} as states
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
        coalesce('; ' || driver_1, '') || coalesce('; ' || driver_2, '') || coalesce('; ' || driver_3, '')
            || coalesce('; ' || silent_opportunities.words, '') as driver_list,
        ''
        {%- for rule, words in reason_rules %}
        || case when flags.{{ rule }} then '; {{ words }}' else '' end
        {%- endfor %} as reason_list
    from worded
    left join {{ ref('int_alert_flags') }} as flags
        on flags.customer_id = worded.customer_id and flags.as_of_date = worded.opened_on
    left join silent_opportunities
        on silent_opportunities.customer_id = worded.customer_id and silent_opportunities.opened_on = worded.opened_on
)

select
    {{ dbt.hash("reasoned.customer_id || '|churn_risk|' || " ~ as_text('reasoned.opened_on')) }} as case_id,
    reasoned.customer_id,
    customers.customer_name,
    customers.account_manager_id,
    customers.account_manager_name,
    customers.account_manager_email,
    reasoned.opened_on,
    case when reasoned.last_elevated_day < {{ drift_last_day() }} then {{ add_days('reasoned.last_elevated_day', 1) }} end as closed_on,
    case when reasoned.last_elevated_day < {{ drift_last_day() }} then 'closed' else 'open' end as case_status,
    cast(reasoned.drift_probability as {{ type_double() }}) as probability_at_open,
    cast(reasoned.peak_probability as {{ type_double() }}) as peak_probability,
    case when reasoned.drift_probability >= {{ rc['high_probability'] }} then 'high' else 'medium' end as severity,
    case when reasoned.driver_list <> '' then substr(reasoned.driver_list, 3) end as drivers,
    case when reasoned.reason_list <> '' then substr(reasoned.reason_list, 3) end as reasons,
    {{ sql_string(rc['suggested_action']) }} as suggested_action,
    health.health_score,
    health.status,
    cast(health.value_at_stake as {{ type_double() }}) as value_at_stake,
    coalesce(health.currency, customers.currency) as currency,
    cast(health.value_at_stake * {{ reporting_rate('coalesce(health.currency, customers.currency)') }} as {{ type_double() }}) as value_at_stake_reporting,
    {{ sql_string(scoring('reporting.currency')) }} as reporting_currency,
    cast(reasoned.drift_probability * health.value_at_stake * {{ reporting_rate('coalesce(health.currency, customers.currency)') }} as {{ type_double() }}) as expected_value_at_risk,
    coalesce(reasoned.segment, health.segment) as segment,
    {{ days_between('reasoned.opened_on', 'reasoned.last_elevated_day') }} + 1 as case_days
from reasoned
inner join {{ ref('fct_customer_health_daily') }} as health
    on health.customer_id = reasoned.customer_id and health.as_of_date = reasoned.opened_on
inner join {{ ref('dim_customers') }} as customers
    on customers.customer_id = reasoned.customer_id
