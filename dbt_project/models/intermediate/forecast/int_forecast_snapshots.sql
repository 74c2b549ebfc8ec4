{{ config(materialized='table') }}
{#- The open pipeline as it stood at each snapshot: the start of every quarter from the first
    opportunity's to the as-of date's (snapshot_kind quarter_start: what was known the evening
    before the quarter began), and the end of the as-of date (snapshot_kind as_of, snapshot_date =
    the day after it). One row per opportunity open then (its latest state before snapshot_date),
    with two probabilities:
      stated_probability        what its account manager stated;
      track_record_probability  the manager's own win rate at that stage: of the manager's deals
                                that closed in the forecast.track_record_quarters quarters before
                                the snapshot and were ever at that stage, the share won, shrunk
                                towards the company's rate at that stage with
                                forecast.track_record_prior_deals pseudo-deals. Without any closed
                                deal at that stage in the company, the stated probability stands.
    Amounts also in the reporting currency (config/scoring.yml reporting.rates). -#}

{%- set as_of = as_of_date_literal() -%}
{%- set prior = scoring('forecast.track_record_prior_deals') -%}

with states as (
    select * from {{ ref('int_opportunity_states') }}
),

forecasts as (
    select * from {{ ref('int_opportunity_forecasts') }}
),

months as (
    {{ dbt.date_spine('month',
                      "coalesce((select " ~ quarter_start('min(event_date)') ~ " from " ~ ref('int_opportunity_states') ~ "), " ~ quarter_start(as_of) ~ ")",
                      add_days(as_of, 1)) }}
),

points as (
    select cast(date_month as date) as snapshot_date, 'quarter_start' as snapshot_kind
    from months
    where cast(date_month as date) = {{ quarter_start('cast(date_month as date)') }}
      and cast(date_month as date) <= {{ as_of }}
    union all
    select {{ add_days(as_of, 1) }} as snapshot_date, 'as_of' as snapshot_kind
),

open_then as (
    select points.snapshot_date, points.snapshot_kind, states.*
    from points
    inner join states
        on states.event_date < points.snapshot_date
       and (states.next_event_date is null or states.next_event_date >= points.snapshot_date)
    where states.status = 'open'
),

judged as (
    -- closed deals in each snapshot's track-record window, once per stage they were at
    select distinct
        points.snapshot_date,
        forecasts.account_manager_id,
        forecasts.pipeline_stage,
        forecasts.opportunity_id,
        forecasts.outcome
    from points
    inner join forecasts
        on forecasts.deal_close_known_on < points.snapshot_date
       and forecasts.deal_closed_on >= {{ track_record_start('points.snapshot_date') }}
),

manager_record as (
    select snapshot_date, account_manager_id, pipeline_stage,
           count(*) as deals, sum(outcome) as won
    from judged
    group by snapshot_date, account_manager_id, pipeline_stage
),

company_record as (
    select snapshot_date, pipeline_stage, count(distinct opportunity_id) as deals,
           count(distinct case when outcome = 1 then opportunity_id end) as won
    from judged
    group by snapshot_date, pipeline_stage
)

select
    open_then.snapshot_date,
    open_then.snapshot_kind,
    open_then.opportunity_id,
    open_then.customer_id,
    open_then.account_manager_id,
    open_then.event_date as stated_on,
    open_then.pipeline_stage,
    open_then.stated_probability,
    cast(case
        when company_record.deals is null or company_record.deals = 0 then open_then.stated_probability
        when coalesce(manager_record.deals, 0) + {{ prior }} = 0 then cast(company_record.won as {{ type_double() }}) / company_record.deals
        else (coalesce(manager_record.won, 0) + {{ prior }} * cast(company_record.won as {{ type_double() }}) / company_record.deals)
             / (coalesce(manager_record.deals, 0) + {{ prior }})
    end as {{ type_double() }}) as track_record_probability,
    coalesce(manager_record.deals, 0) as track_record_deals,
    coalesce(manager_record.won, 0) as track_record_won,
    open_then.amount,
    open_then.currency,
    open_then.amount * {{ reporting_rate('open_then.currency') }} as amount_reporting,
    open_then.expected_close_date,
    open_then.first_expected_close_date
from open_then
left join manager_record
    on manager_record.snapshot_date = open_then.snapshot_date
   and manager_record.account_manager_id = open_then.account_manager_id
   and manager_record.pipeline_stage = open_then.pipeline_stage
left join company_record
    on company_record.snapshot_date = open_then.snapshot_date
   and company_record.pipeline_stage = open_then.pipeline_stage
