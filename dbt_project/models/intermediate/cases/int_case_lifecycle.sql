{#- The current state of every case an account manager acted on: the latest acknowledge, snooze or
    close (by occurred_at, then landing order) up to the as-of date is its state; feedback does not
    change it. A snooze lasts until its `until` day (the first day the case may alert again); from
    then on the case counts as acknowledged. Events of erased customers are gone (notes are
    personal data). Cases without an event are not here: they are `new` (fct_case_lifecycle). -#}

with case_events as (
    select * from {{ ref('stg_landing__case_events') }}
),

erased as (
    select * from {{ ref('int_customers_erased') }}
),

events as (
    select *
    from case_events
    where event_date <= {{ as_of_date_literal() }}
      and customer_id not in (select customer_id from erased)
),

state_events as (
    select
        events.*,
        row_number() over (
            partition by case_id order by occurred_at desc, landed_at desc, kafka_partition desc, kafka_offset desc
        ) as recency
    from events
    where event_type in ('acknowledge', 'snooze', 'close')
),

feedback as (
    select
        events.*,
        row_number() over (
            partition by case_id order by occurred_at desc, landed_at desc, kafka_partition desc, kafka_offset desc
        ) as recency
    from events
    where event_type = 'feedback'
),

per_case as (
    select
        case_id,
        min(customer_id) as customer_id,
        count(*) as events,
        min(case when event_type in ('acknowledge', 'snooze', 'close') then occurred_at end) as first_response_at,
        min(case when event_type = 'acknowledge' then occurred_at end) as first_acknowledged_at,
        max(occurred_at) as last_event_at
    from events
    group by case_id
)

select
    per_case.case_id,
    per_case.customer_id,
    case
        when latest.event_type = 'close' then 'closed'
        when latest.event_type = 'snooze' and latest.snooze_until > {{ as_of_date_literal() }} then 'snoozed'
        when latest.event_type is not null then 'acknowledged'
    end as lifecycle_state,
    latest.event_type as state_event_type,
    latest.occurred_at as state_changed_at,
    latest.actor as state_changed_by,
    case when latest.event_type = 'snooze' then latest.snooze_until end as snoozed_until,
    case when latest.event_type = 'snooze' then latest.reason end as snooze_reason,
    case when latest.event_type = 'close' then latest.occurred_at end as closed_at,
    case when latest.event_type = 'close' then latest.outcome end as close_outcome,
    case when latest.event_type = 'close' then latest.note end as close_note,
    per_case.first_response_at,
    per_case.first_acknowledged_at,
    per_case.last_event_at,
    per_case.events,
    fb.verdict as feedback_verdict,
    fb.comment as feedback_comment,
    fb.occurred_at as feedback_at
from per_case
left join state_events as latest on latest.case_id = per_case.case_id and latest.recency = 1
left join feedback as fb on fb.case_id = per_case.case_id and fb.recency = 1
