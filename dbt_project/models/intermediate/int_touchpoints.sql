{#- One row per unique touchpoint up to the as-of date, with its two-way-dialogue flag and its
    caring / friction / neutral classification. The rules, first match wins (kind_rule says which):
      friction  dunning         every dunning contact (collections damage the relationship)
      friction  complaint       every complaint
      friction  unanswered_call a call nobody answered
      friction  dropped_call    an answered call shorter than classification.dropped_call_max_seconds,
                                or transferred without being resolved ("transferred into the void")
      caring    visit           every service visit (we came to the customer)
      caring    outreach        an outbound answered call, email or meeting by a department not in
                                classification.non_caring_departments (proactive outreach)
      neutral   other           everything else (inbound calls and e-mails, orders, surveys)
    Two-way dialogue: an answered call that was not dropped (and not taken by a department in
    classification.non_dialogue_departments: the switchboard), a meeting, or a service visit.
    Erased customers' events are left out.
    Opportunity events (contract 1.1) are not touches: a CRM record of a deal is no contact with the
    customer, so they never count as contact, dialogue or friction; they feed the forecast audit
    (models/intermediate/forecast).
    A view over the deduplicated landing stage: every row is classified on its own, so the
    customer-day models read only the events they rebuild (a filter on event_date or landed_at
    reaches the stage's scan). fct_touchpoints publishes these rows (incrementally). -#}

{%- set dropped_max = scoring('classification.dropped_call_max_seconds') -%}
{%- set non_caring = scoring('classification.non_caring_departments') -%}
{%- set non_dialogue = scoring('classification.non_dialogue_departments') -%}

with landed as (
    select * from {{ ref('stg_landing__touchpoints') }}
),

erased as (
    select * from {{ ref('int_customers_erased') }}
),

events as (
    select *
    from landed
    where event_date <= {{ as_of_date_literal() }}
      and event_type <> 'opportunity'
      and customer_id not in (select customer_id from erased)
),

flagged as (
    select
        events.*,
        (event_type = 'call' and coalesce(answered, false) and (
            coalesce(duration_s, {{ dropped_max }}) < {{ dropped_max }}
            or (coalesce(transferred, false) and resolved = false)
        )) as is_dropped_call
    from events
),

classified as (
    select
        flagged.*,
        case
            when event_type = 'dunning_contact' then 'dunning'
            when event_type = 'complaint' then 'complaint'
            when event_type = 'call' and not coalesce(answered, false) then 'unanswered_call'
            when is_dropped_call then 'dropped_call'
            when event_type = 'service_visit' then 'visit'
            when event_type in ('call', 'email', 'meeting') and direction = 'outbound'
                 {% if non_caring %}and department not in ({{ sql_string_list(non_caring) }}){% endif %}
                then 'outreach'
            else 'other'
        end as kind_rule
    from flagged
)

select
    event_id,
    customer_id,
    occurred_at,
    event_date,
    event_type,
    department,
    direction,
    employee_id,
    contact_role,
    source,
    case
        when kind_rule in ('dunning', 'complaint', 'unanswered_call', 'dropped_call') then 'friction'
        when kind_rule in ('visit', 'outreach') then 'caring'
        else 'neutral'
    end as contact_kind,
    kind_rule,
    (
        (event_type = 'call' and coalesce(answered, false) and not is_dropped_call
         {% if non_dialogue %}and department not in ({{ sql_string_list(non_dialogue) }}){% endif %})
        or event_type in ('meeting', 'service_visit')
    ) as is_two_way_dialogue,
    answered,
    duration_s,
    transferred,
    resolved,
    first_time_fix,
    stage as dunning_stage,
    amount_overdue,
    days_overdue,
    invoice_id,
    severity,
    nps_score,
    comment,
    amount,
    currency,
    product_line,
    note,
    {{ days_between('event_date', 'cast(landed_at as date)') }} as days_late,
    landed_at,
    kafka_topic,
    kafka_partition,
    kafka_offset
from classified
