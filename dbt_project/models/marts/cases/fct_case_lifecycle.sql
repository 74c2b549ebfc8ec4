{#- Every churn-risk case with what its account manager did with it: the model's view of the case
    (open while the customer keeps drifting, closed when it recovered) next to the manager's
    (lifecycle_state: new, acknowledged, snoozed, closed; int_case_lifecycle). What the web app's
    queue, alert dispatch (a snoozed or closed case sends nothing) and the feedback figures read.
    needs_action: the model still sees the case and the manager has neither snoozed nor closed it.
    probability_now / probability_now_on: an open case's drift probability on the latest day the
    drift model scored (int_drift_days; null if the customer was not scored that day), so that the queue shows today's figure next to the one the
    case opened with (probability_at_open); null for a case the model has closed. -#}

with risk_cases as (
    select * from {{ ref('fct_churn_risk_cases') }}
),

lifecycle as (
    select * from {{ ref('int_case_lifecycle') }}
),

drift as (
    select customer_id, as_of_date, drift_probability from {{ ref('int_drift_days') }}
),

-- the latest scored day only (a filter on the date, not a scan of every customer's history: the
-- daily run's cost stays with the day); an open case's customer is scored every day
latest_drift as (
    select customer_id, as_of_date, drift_probability
    from drift
    where as_of_date = (select max(as_of_date) from drift)
)

select
    cases.case_id,
    cases.customer_id,
    cases.customer_name,
    cases.account_manager_id,
    cases.account_manager_name,
    cases.account_manager_email,
    cases.opened_on,
    cases.closed_on,
    cases.case_status,
    cases.severity,
    cases.probability_at_open,
    cases.peak_probability,
    cases.drivers,
    cases.value_at_stake,
    cases.currency,
    cases.value_at_stake_reporting,
    cases.reporting_currency,
    cases.expected_value_at_risk,
    coalesce(lifecycle.lifecycle_state, 'new') as lifecycle_state,
    lifecycle.state_changed_at,
    lifecycle.state_changed_by,
    lifecycle.snoozed_until,
    lifecycle.snooze_reason,
    lifecycle.closed_at,
    lifecycle.close_outcome,
    lifecycle.close_note,
    lifecycle.first_response_at,
    lifecycle.first_acknowledged_at,
    lifecycle.last_event_at,
    coalesce(lifecycle.events, 0) as lifecycle_events,
    lifecycle.feedback_verdict,
    lifecycle.feedback_comment,
    cases.case_status = 'open' and coalesce(lifecycle.lifecycle_state, 'new') in ('new', 'acknowledged') as needs_action,
    cases.case_kind,
    cast(case when cases.case_status = 'open' then latest_drift.drift_probability end as {{ type_double() }})
        as probability_now,
    case when cases.case_status = 'open' then latest_drift.as_of_date end as probability_now_on
from risk_cases as cases
left join lifecycle on lifecycle.case_id = cases.case_id
left join latest_drift on latest_drift.customer_id = cases.customer_id
