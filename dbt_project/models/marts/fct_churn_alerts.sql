{#- One row per alert episode: a run of days on which a rule holds for a customer, where gaps of
    up to alerts.episode_cooldown_days do not end the episode. alert_date is the first day,
    episode_end_date the last day the rule held once the cool-down has passed without it (null
    while the episode is open). health, status, drivers and value at stake are those of the alert
    date (what the account manager is told); severity is the worst seen in the episode so far.
    alert_id is stable: a hash of customer, rule and alert date. -#}
{%- set cooldown = scoring('alerts.episode_cooldown_days') | int -%}
{%- set rules = scoring('alerts.rules') -%}

with fired as (
    select
        alert_days.*,
        lag(as_of_date) over (partition by customer_id, rule order by as_of_date) as previous_day
    from {{ ref('int_alert_days') }} as alert_days
),

numbered as (
    select
        fired.*,
        sum(case when previous_day is null or {{ days_between('previous_day', 'as_of_date') }} > {{ cooldown }} then 1 else 0 end)
            over (partition by customer_id, rule order by as_of_date rows between unbounded preceding and current row)
            as episode_number
    from fired
),

episodes as (
    select
        customer_id,
        rule,
        episode_number,
        min(as_of_date) as alert_date,
        max(as_of_date) as last_day,
        max(severity_rank) as severity_rank
    from numbered
    group by customer_id, rule, episode_number
)

select
    {{ dbt.hash("episodes.customer_id || '|' || episodes.rule || '|' || " ~ as_text('episodes.alert_date')) }} as alert_id,
    episodes.customer_id,
    customers.customer_name,
    customers.account_manager_id,
    customers.account_manager_name,
    customers.account_manager_email,
    episodes.rule,
    case episodes.severity_rank when 3 then 'high' when 2 then 'medium' else 'low' end as severity,
    episodes.alert_date,
    case
        when {{ days_between('episodes.last_day', as_of_date_literal()) }} >= {{ cooldown }} then episodes.last_day
    end as episode_end_date,
    health.health_score,
    health.status,
    health.drivers,
    case episodes.rule
        {% for name, spec in rules.items() -%}
        when '{{ name }}' then {{ sql_string(spec['suggested_action']) }}
        {% endfor -%}
    end as suggested_action,
    cast(health.value_at_stake as {{ type_double() }}) as value_at_stake,
    coalesce(health.currency, customers.currency) as currency,
    health.segment,
    {{ days_between('episodes.alert_date', 'episodes.last_day') }} + 1 as episode_days
from episodes
inner join {{ ref('fct_customer_health_daily') }} as health
    on health.customer_id = episodes.customer_id and health.as_of_date = episodes.alert_date
inner join {{ ref('dim_customers') }} as customers
    on customers.customer_id = episodes.customer_id
