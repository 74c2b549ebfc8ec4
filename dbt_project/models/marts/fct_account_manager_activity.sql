{#- Per account manager per week: sales calls and meetings on the manager's customers against the
    weekly plan (activity_plan in config/scoring.yml), and how many of the manager's customers had
    no two-way dialogue for 30, 60 and 90 days at the end of the week (or at the as-of date in the
    current week). Customers are attributed to the manager responsible on that day. -#}
with calendar as (
    select * from {{ ref('int_calendar') }}
),

touchpoints as (
    select * from {{ ref('fct_touchpoints') }}
),

versions {{ inlined() }} (
    select * from {{ ref('int_customer_versions') }}
),

dialogue_daily as (
    select * from {{ ref('fct_dialogue_daily') }}
),

weeks as (
    select
        week_start,
        max(date_day) as week_end_date,
        count(*) as days_in_week
    from calendar
    group by week_start
),

activity as (
    select
        versions.account_manager_id,
        cast({{ dbt.date_trunc('week', 'touchpoints.event_date') }} as date) as week_start,
        sum(case when touchpoints.event_type = 'call' and touchpoints.direction = 'outbound' then 1 else 0 end) as calls,
        sum(case when touchpoints.event_type = 'meeting' then 1 else 0 end) as meetings
    from touchpoints
    inner join versions
        on versions.customer_id = touchpoints.customer_id
       and touchpoints.event_date >= versions.valid_from
       and touchpoints.event_date < versions.valid_to
    where touchpoints.department = 'sales' and versions.account_manager_id is not null
    group by versions.account_manager_id, cast({{ dbt.date_trunc('week', 'touchpoints.event_date') }} as date)
),

coverage as (
    select
        dialogue.account_manager_id,
        weeks.week_start,
        count(*) as customers,
        sum(case when dialogue.days_since_dialogue >= 30 then 1 else 0 end) as customers_no_dialogue_30d,
        sum(case when dialogue.days_since_dialogue >= 60 then 1 else 0 end) as customers_no_dialogue_60d,
        sum(case when dialogue.days_since_dialogue >= 90 then 1 else 0 end) as customers_no_dialogue_90d
    from dialogue_daily as dialogue
    inner join weeks on weeks.week_end_date = dialogue.as_of_date
    where dialogue.account_manager_id is not null
    group by dialogue.account_manager_id, weeks.week_start
),

managers as (
    select account_manager_id, max(account_manager_name) as account_manager_name
    from versions
    where valid_to = cast('9999-12-31' as date) and account_manager_id is not null
    group by account_manager_id
),

keys as (
    select account_manager_id, week_start from coverage
    union
    select account_manager_id, week_start from activity
)

select
    {{ dbt.hash("keys.account_manager_id || '|' || " ~ as_text('keys.week_start')) }} as activity_key,
    keys.account_manager_id,
    managers.account_manager_name,
    keys.week_start,
    weeks.week_end_date,
    weeks.days_in_week,
    cast(coalesce(activity.calls, 0) as {{ dbt.type_bigint() }}) as calls,
    {{ scoring('activity_plan.calls_per_week') }} as calls_planned,
    cast(coalesce(activity.meetings, 0) as {{ dbt.type_bigint() }}) as meetings,
    {{ scoring('activity_plan.meetings_per_week') }} as meetings_planned,
    {{ safe_ratio('coalesce(activity.calls, 0)', scoring('activity_plan.calls_per_week')) }} as calls_vs_plan,
    {{ safe_ratio('coalesce(activity.meetings, 0)', scoring('activity_plan.meetings_per_week')) }} as meetings_vs_plan,
    cast(coalesce(coverage.customers, 0) as {{ dbt.type_bigint() }}) as customers,
    cast(coalesce(coverage.customers_no_dialogue_30d, 0) as {{ dbt.type_bigint() }}) as customers_no_dialogue_30d,
    cast(coalesce(coverage.customers_no_dialogue_60d, 0) as {{ dbt.type_bigint() }}) as customers_no_dialogue_60d,
    cast(coalesce(coverage.customers_no_dialogue_90d, 0) as {{ dbt.type_bigint() }}) as customers_no_dialogue_90d
from keys
inner join weeks on weeks.week_start = keys.week_start
left join activity on activity.account_manager_id = keys.account_manager_id and activity.week_start = keys.week_start
left join coverage on coverage.account_manager_id = keys.account_manager_id and coverage.week_start = keys.week_start
left join managers on managers.account_manager_id = keys.account_manager_id
