{{ config(materialized='table') }}
{#- Every state of every sales opportunity up to the as-of date (contract 1.1: each opportunity
    event carries the whole current state), erased customers excluded, with:
    - its validity: from its event_date to next_event_date (exclusive; null while it is the
      current state). The state on a day D, at the end of D: event_date <= D and
      (next_event_date is null or next_event_date > D). Events are ordered by occurred_at, then
      event_id;
    - the deal's facts as of the as-of date, from its latest state: deal_status (open, won, lost),
      outcome (1 won, 0 lost, null while open), deal_closed_on (closed_on, never after the day of
      the event that reported it), deal_close_known_on (that event's day), the final amount, and
      first_expected_close_date (the expected close date of its first open state: later dates
      are slips). A reopened deal is judged by its latest state. -#}

with opportunities as (
    select * from {{ ref('stg_landing__opportunities') }}
),

erased as (
    select * from {{ ref('int_customers_erased') }}
),

events as (
    select *
    from opportunities
    where event_date <= {{ as_of_date_literal() }}
      and opportunity_id is not null
      and status is not null
      and customer_id not in (select customer_id from erased)
),

ordered as (
    select
        events.*,
        row_number() over (partition by opportunity_id order by occurred_at desc, event_id desc) as recency,
        lead(event_date) over (partition by opportunity_id order by occurred_at, event_id) as next_event_date,
        first_value(expected_close_date) over (
            partition by opportunity_id
            order by case when status = 'open' and expected_close_date is not null then 0 else 1 end, occurred_at, event_id
            rows between unbounded preceding and unbounded following
        ) as first_expected_close_date
    from events
),

deals as (
    select
        opportunity_id,
        status as deal_status,
        case status when 'won' then 1 when 'lost' then 0 end as outcome,
        case when status in ('won', 'lost') then
            case when closed_on is null or closed_on > event_date then event_date else closed_on end
        end as deal_closed_on,
        case when status in ('won', 'lost') then event_date end as deal_close_known_on,
        case when status = 'won' then coalesce(final_amount, amount) end as deal_final_amount,
        currency as deal_currency,
        customer_id as deal_customer_id,
        account_manager_id as deal_account_manager_id
    from ordered
    where recency = 1
)

select
    ordered.event_id,
    ordered.opportunity_id,
    ordered.customer_id,
    ordered.account_manager_id,
    ordered.occurred_at,
    ordered.event_date,
    ordered.next_event_date,
    ordered.status,
    ordered.pipeline_stage,
    ordered.stated_probability,
    ordered.amount,
    ordered.currency,
    ordered.expected_close_date,
    ordered.first_expected_close_date,
    ordered.final_amount,
    ordered.closed_on,
    deals.deal_status,
    deals.outcome,
    deals.deal_closed_on,
    deals.deal_close_known_on,
    deals.deal_final_amount,
    deals.deal_currency,
    deals.deal_customer_id,
    deals.deal_account_manager_id,
    ordered.landed_at
from ordered
inner join deals on deals.opportunity_id = ordered.opportunity_id
