{#- Precision and recall of the churn-risk cases as the account managers' own feedback shows them:
    one row per month and account manager.

    Cases (fct_case_lifecycle) count in the month they opened: how many, how many got a first
    response (acknowledge, snooze or close) within case_feedback.acknowledge_days, how many were
    followed by a two-way dialogue (fct_touchpoints) within case_feedback.dialogue_days, how they
    were closed, and whether they were confirmed. A case is **confirmed real** when its feedback
    says real_risk or, without a real_risk / not_a_risk verdict, it was closed saved or lost; a
    **false alarm** when its feedback says not_a_risk or, without such a verdict, it was closed
    not_a_risk. Both together are the cases with an outcome; precision_rate = real / with an outcome.
    Cases closed contacted or duplicate without a verdict, or with only "unsure", have no outcome.

    Churned customers count in the month they churned: the first of
      orders_stopped  a customer with at least churn_min_orders orders whose last order is more than
                      greatest(churn_lapse_min_days, churn_lapse_gaps x its usual gap between
                      orders) days before the as-of date; it churned on the day that silence
                      crossed the threshold (last order + the threshold);
      closed_lost     its account manager closed a case as lost (the day of the close).
    A churned customer was caught when a case of it opened on or before the churn day and at most
    recall_lookback_days before; recall_rate = caught / churned. Tombstoned customers are erased
    before the build (docs/event-contract.md, "What erasure removes"): they are in no mart, so
    here neither. Customers and cases count with their current account manager. -#}
{%- set p = case_feedback_params() -%}

with cases as (
    select *
    from {{ ref('fct_case_lifecycle') }}
    where opened_on <= {{ as_of_date_literal() }}
),

dialogue as (
    select customer_id, event_date
    from {{ ref('fct_touchpoints') }}
    where is_two_way_dialogue
),

followed as (
    select cases.case_id, count(*) as dialogues
    from cases
    inner join dialogue
        on dialogue.customer_id = cases.customer_id
       and dialogue.event_date >= cases.opened_on
       and dialogue.event_date <= {{ add_days('cases.opened_on', p['dialogue_days'] | int) }}
    group by cases.case_id
),

case_facts as (
    select
        cases.case_id,
        cases.customer_id,
        cases.account_manager_id,
        cases.opened_on,
        cast({{ dbt.date_trunc('month', 'cases.opened_on') }} as date) as month_start,
        case when cases.first_response_at is not null
                  and {{ days_between('cases.opened_on', 'cast(cases.first_response_at as date)') }} <= {{ p['acknowledge_days'] | int }}
             then 1 else 0 end as acknowledged_in_time,
        case when followed.dialogues > 0 then 1 else 0 end as dialogue_in_time,
        case when cases.lifecycle_state = 'closed' then cases.close_outcome end as close_outcome,
        case
            when cases.feedback_verdict = 'real_risk' then 'real'
            when cases.feedback_verdict = 'not_a_risk' then 'false_alarm'
            when cases.lifecycle_state = 'closed' and cases.close_outcome in ('saved', 'lost') then 'real'
            when cases.lifecycle_state = 'closed' and cases.close_outcome = 'not_a_risk' then 'false_alarm'
        end as confirmation
    from cases
    left join followed on followed.case_id = cases.case_id
),

orders as (
    select
        customer_id,
        count(*) as orders,
        min(event_date) as first_order_date,
        max(event_date) as last_order_date
    from {{ ref('fct_touchpoints') }}
    where event_type = 'order'
    group by customer_id
),

order_lapse as (
    select
        customer_id,
        last_order_date,
        cast(greatest(
            {{ p['churn_lapse_min_days'] | int }},
            ceil({{ p['churn_lapse_gaps'] }} * {{ days_between('first_order_date', 'last_order_date') }} / (orders - 1.0))
        ) as {{ dbt.type_int() }}) as lapse_days
    from orders
    where orders >= {{ p['churn_min_orders'] | int }}
),

churn_events as (
    select customer_id, {{ dbt.dateadd('day', 'lapse_days', 'last_order_date') }} as churned_at, 'orders_stopped' as churn_reason
    from order_lapse
    where {{ days_between('last_order_date', as_of_date_literal()) }} > lapse_days
    union all
    select customer_id, closed_at as churned_at, 'closed_lost' as churn_reason
    from cases
    where lifecycle_state = 'closed' and close_outcome = 'lost'
),

churned as (
    select customer_id, churned_on, churn_reason
    from (
        select
            customer_id,
            cast(churned_at as date) as churned_on,
            churn_reason,
            row_number() over (partition by customer_id order by churned_at, churn_reason) as nth
        from churn_events
    ) as ranked
    where nth = 1
),

churn_facts as (
    select
        churned.customer_id,
        customers.account_manager_id,
        cast({{ dbt.date_trunc('month', 'churned.churned_on') }} as date) as month_start,
        churned.churn_reason,
        case when exists (
            select 1 from cases
            where cases.customer_id = churned.customer_id
              and cases.opened_on <= churned.churned_on
              and cases.opened_on >= {{ add_days('churned.churned_on', -(p['recall_lookback_days'] | int)) }}
        ) then 1 else 0 end as had_case
    from churned
    inner join {{ ref('dim_customers') }} as customers on customers.customer_id = churned.customer_id
),

case_months as (
    select
        month_start,
        account_manager_id,
        count(*) as cases_opened,
        sum(acknowledged_in_time) as cases_acknowledged_in_time,
        sum(dialogue_in_time) as cases_with_dialogue_in_time,
        sum(case when close_outcome = 'saved' then 1 else 0 end) as cases_closed_saved,
        sum(case when close_outcome = 'lost' then 1 else 0 end) as cases_closed_lost,
        sum(case when close_outcome = 'not_a_risk' then 1 else 0 end) as cases_closed_not_a_risk,
        sum(case when close_outcome in ('contacted', 'duplicate') then 1 else 0 end) as cases_closed_other,
        sum(case when confirmation = 'real' then 1 else 0 end) as cases_confirmed_real,
        sum(case when confirmation = 'false_alarm' then 1 else 0 end) as cases_false_alarm
    from case_facts
    group by month_start, account_manager_id
),

churn_months as (
    select
        month_start,
        account_manager_id,
        count(*) as customers_churned,
        sum(had_case) as churned_with_case,
        sum(case when churn_reason = 'orders_stopped' then 1 else 0 end) as churned_orders_stopped,
        sum(case when churn_reason = 'closed_lost' then 1 else 0 end) as churned_closed_lost
    from churn_facts
    group by month_start, account_manager_id
),

grid as (
    select month_start, account_manager_id from case_months
    union
    select month_start, account_manager_id from churn_months
),

managers as (
    select account_manager_id, max(account_manager_name) as account_manager_name,
           max(account_manager_email) as account_manager_email
    from {{ ref('dim_customers') }}
    group by account_manager_id
)

select
    grid.month_start,
    grid.account_manager_id,
    managers.account_manager_name,
    managers.account_manager_email,
    coalesce(case_months.cases_opened, 0) as cases_opened,
    coalesce(case_months.cases_acknowledged_in_time, 0) as cases_acknowledged_in_time,
    coalesce(case_months.cases_with_dialogue_in_time, 0) as cases_with_dialogue_in_time,
    coalesce(case_months.cases_closed_saved, 0) as cases_closed_saved,
    coalesce(case_months.cases_closed_lost, 0) as cases_closed_lost,
    coalesce(case_months.cases_closed_not_a_risk, 0) as cases_closed_not_a_risk,
    coalesce(case_months.cases_closed_other, 0) as cases_closed_other,
    coalesce(case_months.cases_confirmed_real, 0) as cases_confirmed_real,
    coalesce(case_months.cases_false_alarm, 0) as cases_false_alarm,
    coalesce(case_months.cases_confirmed_real, 0) + coalesce(case_months.cases_false_alarm, 0) as cases_with_outcome,
    coalesce(churn_months.customers_churned, 0) as customers_churned,
    coalesce(churn_months.churned_with_case, 0) as churned_with_case,
    coalesce(churn_months.customers_churned, 0) - coalesce(churn_months.churned_with_case, 0) as churned_without_case,
    coalesce(churn_months.churned_orders_stopped, 0) as churned_orders_stopped,
    coalesce(churn_months.churned_closed_lost, 0) as churned_closed_lost,
    {{ safe_ratio('case_months.cases_confirmed_real', 'coalesce(case_months.cases_confirmed_real, 0) + coalesce(case_months.cases_false_alarm, 0)') }} as precision_rate,
    {{ safe_ratio('churn_months.churned_with_case', 'churn_months.customers_churned') }} as recall_rate
from grid
left join case_months
    on case_months.month_start = grid.month_start
   and coalesce(case_months.account_manager_id, '') = coalesce(grid.account_manager_id, '')
left join churn_months
    on churn_months.month_start = grid.month_start
   and coalesce(churn_months.account_manager_id, '') = coalesce(grid.account_manager_id, '')
left join managers on coalesce(managers.account_manager_id, '') = coalesce(grid.account_manager_id, '')
