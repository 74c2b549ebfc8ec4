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

    Churned customers (int_case_churn) count in the month they churned: the first of orders
    stopped (after a regular rhythm) and a case closed lost, with their current account manager. A
    churned customer was caught when a case of it opened on or before the churn day and at most
    recall_lookback_days before; recall_rate = caught / churned.

    Erased customers (a tombstone, or `loyalty erase`) are in no table once erased (docs/event-
    contract.md, "What erasure removes"), but they still count: the erasure register keeps, for
    each, only the month it churned, its account manager, why (tombstoned, or the orders_stopped /
    closed_lost churn it already had) and whether it had a case (loyalty_monitor/erasure/,
    "churn"), aggregated per month, manager and reason in <data_dir>/erasure/erased_churn.parquet
    (stg_erasure__churn). A customer that had not churned before
    churned the day it was erased (churned_tombstoned). -#}
{%- set p = case_feedback_params() -%}

with case_lifecycle as (
    select * from {{ ref('fct_case_lifecycle') }}
),

touchpoints as (
    select * from {{ ref('fct_touchpoints') }}
),

case_churn as (
    select * from {{ ref('int_case_churn') }}
),

erased_churn as (
    select * from {{ ref('stg_erasure__churn') }}
),

customers as (
    select * from {{ ref('dim_customers') }}
),

cases as (
    select *
    from case_lifecycle
    where opened_on <= {{ as_of_date_literal() }}
),

dialogue as (
    select customer_id, event_date
    from touchpoints
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

churn_facts as (
    select customer_id, account_manager_id, month_start, churn_reason, had_case
    from case_churn
),

{#- Customers erased since (tombstone or `loyalty erase`): in no table any more, they count from
    what the erasure register keeps (month, account manager, reason, had a case), aggregated. -#}
erased as (
    select month_start, account_manager_id, churn_reason, customers, with_case
    from erased_churn
    where month_start <= {{ as_of_date_literal() }}
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

erased_months as (
    select
        month_start,
        account_manager_id,
        sum(customers) as customers_churned,
        sum(with_case) as churned_with_case,
        sum(case when churn_reason = 'orders_stopped' then customers else 0 end) as churned_orders_stopped,
        sum(case when churn_reason = 'closed_lost' then customers else 0 end) as churned_closed_lost,
        sum(case when churn_reason = 'tombstoned' then customers else 0 end) as churned_tombstoned,
        sum(customers) as churned_erased
    from erased
    group by month_start, account_manager_id
),

all_churn_months as (
    select month_start, account_manager_id, customers_churned, churned_with_case, churned_orders_stopped,
           churned_closed_lost, 0 as churned_tombstoned, 0 as churned_erased
    from churn_months
    union all
    select month_start, account_manager_id, customers_churned, churned_with_case, churned_orders_stopped,
           churned_closed_lost, churned_tombstoned, churned_erased
    from erased_months
),

churn_totals as (
    select
        month_start,
        account_manager_id,
        sum(customers_churned) as customers_churned,
        sum(churned_with_case) as churned_with_case,
        sum(churned_orders_stopped) as churned_orders_stopped,
        sum(churned_closed_lost) as churned_closed_lost,
        sum(churned_tombstoned) as churned_tombstoned,
        sum(churned_erased) as churned_erased
    from all_churn_months
    group by month_start, account_manager_id
),

grid as (
    select month_start, account_manager_id from case_months
    union
    select month_start, account_manager_id from churn_totals
),

managers as (
    select account_manager_id, max(account_manager_name) as account_manager_name,
           max(account_manager_email) as account_manager_email
    from customers
    group by account_manager_id
)

select
    grid.month_start,
    grid.account_manager_id,
    managers.account_manager_name,
    managers.account_manager_email,
    cast(coalesce(case_months.cases_opened, 0) as {{ dbt.type_bigint() }}) as cases_opened,
    cast(coalesce(case_months.cases_acknowledged_in_time, 0) as {{ dbt.type_bigint() }}) as cases_acknowledged_in_time,
    cast(coalesce(case_months.cases_with_dialogue_in_time, 0) as {{ dbt.type_bigint() }}) as cases_with_dialogue_in_time,
    cast(coalesce(case_months.cases_closed_saved, 0) as {{ dbt.type_bigint() }}) as cases_closed_saved,
    cast(coalesce(case_months.cases_closed_lost, 0) as {{ dbt.type_bigint() }}) as cases_closed_lost,
    cast(coalesce(case_months.cases_closed_not_a_risk, 0) as {{ dbt.type_bigint() }}) as cases_closed_not_a_risk,
    cast(coalesce(case_months.cases_closed_other, 0) as {{ dbt.type_bigint() }}) as cases_closed_other,
    cast(coalesce(case_months.cases_confirmed_real, 0) as {{ dbt.type_bigint() }}) as cases_confirmed_real,
    cast(coalesce(case_months.cases_false_alarm, 0) as {{ dbt.type_bigint() }}) as cases_false_alarm,
    cast(coalesce(case_months.cases_confirmed_real, 0) + coalesce(case_months.cases_false_alarm, 0) as {{ dbt.type_bigint() }}) as cases_with_outcome,
    cast(coalesce(churn_totals.customers_churned, 0) as {{ dbt.type_bigint() }}) as customers_churned,
    cast(coalesce(churn_totals.churned_with_case, 0) as {{ dbt.type_bigint() }}) as churned_with_case,
    cast(coalesce(churn_totals.customers_churned, 0) - coalesce(churn_totals.churned_with_case, 0) as {{ dbt.type_bigint() }}) as churned_without_case,
    cast(coalesce(churn_totals.churned_orders_stopped, 0) as {{ dbt.type_bigint() }}) as churned_orders_stopped,
    cast(coalesce(churn_totals.churned_closed_lost, 0) as {{ dbt.type_bigint() }}) as churned_closed_lost,
    cast(coalesce(churn_totals.churned_tombstoned, 0) as {{ dbt.type_bigint() }}) as churned_tombstoned,
    cast(coalesce(churn_totals.churned_erased, 0) as {{ dbt.type_bigint() }}) as churned_erased,
    {{ safe_ratio('case_months.cases_confirmed_real', 'coalesce(case_months.cases_confirmed_real, 0) + coalesce(case_months.cases_false_alarm, 0)') }} as precision_rate,
    {{ safe_ratio('churn_totals.churned_with_case', 'churn_totals.customers_churned') }} as recall_rate
from grid
left join case_months
    on case_months.month_start = grid.month_start
   and coalesce(case_months.account_manager_id, '') = coalesce(grid.account_manager_id, '')
left join churn_totals
    on churn_totals.month_start = grid.month_start
   and coalesce(churn_totals.account_manager_id, '') = coalesce(grid.account_manager_id, '')
left join managers on coalesce(managers.account_manager_id, '') = coalesce(grid.account_manager_id, '')
