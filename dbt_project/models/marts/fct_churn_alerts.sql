{#- Every alert an account manager receives, of two kinds (alert_kind):
      risk_case      a churn-risk case of the drift model (fct_churn_risk_cases), rule
                     'churn_risk' (drifting) or 'went_silent' (it may already have left: its
                     case_kind): probability, drivers from the model, scorecard reasons;
      action_needed  an episode of a fact rule (int_alert_days): a run of days on which the rule
                     holds for a customer, where gaps of up to alerts.episode_cooldown_days do not
                     end the episode; severity the worst seen so far, drivers from the scorecard.
    alert_date is the first day, episode_end_date the last day it held once it is over (null while
    open). health, status and value at stake are those of the alert date (what the account
    manager is told). Both kinds carry the value at stake in the reporting currency and the
    expected value at risk (probability x value; 1 x value for a fact), the key dispatch ranks
    by. alert_id is stable: a hash of customer, rule and alert date (a case's: its case_id, hashed
    with 'churn_risk' whatever its kind, so that a case keeps its id). -#}
{%- set cooldown = scoring('alerts.episode_cooldown_days') | int -%}
{%- set rules = scoring('alerts.rules') -%}

with alert_days as (
    select * from {{ ref('int_alert_days') }}
),

health as (
    select * from {{ ref('fct_customer_health_daily') }}
),

customers as (
    select * from {{ ref('dim_customers') }}
),

risk_cases as (
    select * from {{ ref('fct_churn_risk_cases') }}
),

fired as (
    select
        alert_days.*,
        lag(as_of_date) over (partition by customer_id, rule order by as_of_date) as previous_day
    from alert_days
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
        {% for name, spec in rules.items() if name in action_needed_rules() -%}
        when '{{ name }}' then {{ sql_string(spec['suggested_action']) }}
        {% endfor -%}
    end as suggested_action,
    cast(health.value_at_stake as {{ type_double() }}) as value_at_stake,
    coalesce(health.currency, customers.currency) as currency,
    health.segment,
    cast({{ days_between('episodes.alert_date', 'episodes.last_day') }} + 1 as {{ dbt.type_bigint() }}) as episode_days,
    'action_needed' as alert_kind,
    cast(1.0 as {{ type_double() }}) as probability,
    cast(health.value_at_stake * {{ reporting_rate('coalesce(health.currency, customers.currency)') }} as {{ type_double() }}) as value_at_stake_reporting,
    {{ sql_string(scoring('reporting.currency')) }} as reporting_currency,
    cast(health.value_at_stake * {{ reporting_rate('coalesce(health.currency, customers.currency)') }} as {{ type_double() }}) as expected_value_at_risk,
    cast(null as {{ dbt.type_string() }}) as reasons
from episodes
inner join health
    on health.customer_id = episodes.customer_id and health.as_of_date = episodes.alert_date
inner join customers
    on customers.customer_id = episodes.customer_id

union all

select
    cases.case_id as alert_id,
    cases.customer_id,
    cases.customer_name,
    cases.account_manager_id,
    cases.account_manager_name,
    cases.account_manager_email,
    cases.case_kind as rule,
    cases.severity,
    cases.opened_on as alert_date,
    {{ add_days('cases.closed_on', -1) }} as episode_end_date,
    cases.health_score,
    cases.status,
    cases.drivers,
    cases.suggested_action,
    cases.value_at_stake,
    cases.currency,
    cases.segment,
    cases.case_days as episode_days,
    'risk_case' as alert_kind,
    cases.probability_at_open as probability,
    cases.value_at_stake_reporting,
    cases.reporting_currency,
    cases.expected_value_at_risk,
    cases.reasons
from risk_cases as cases
