{#- The portfolio per day and segment: what the drift model judges each customer against.
      active_customers      customers in scope whose daily series has started
      n_contacts, n_<stream> the day's touchpoints and the counts of the streams and share bases
      season_index_<s>_milli  each stream's seasonal index of the day, in thousandths: the
                            portfolio's count that day over its usual count per customer-day (the
                            trailing year), with drift.season_pseudo_count pseudo-events at the
                            usual level. Weekends, summer and Christmas come out low, from the
                            data, without a calendar; each stream its own (orders come in at
                            weekends, calls do not). season_index_milli: all contacts.
      segment_rate_<stream> the segment's usual rate per customer and portfolio-normal day over the
                            drift.segment_window_days before the day (the prior of every customer
                            in the segment); portfolio_rate_<stream> the same over all segments
      segment_exposure_days the portfolio-normal customer-days behind segment_rate_*
    Population parameters, frozen once estimated: a day's row is written once, by the first run
    that reaches it, and never rewritten (full_refresh=false, append-only; days after the as-of
    date are dropped for backfills). So a full refresh of the customer models and the daily runs
    judge every day against the same parameters, and erasing a customer later does not re-score
    everybody else's past (the rows hold counts, no personal data). `loyalty warehouse build
    --refit` estimates them again from the landed history (warehouse.build(refit=True)). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['date_day', 'segment'],
    full_refresh=false,
    on_schema_change='append_new_columns',
    pre_hook="{{ prune_portfolio_days() }}"
) }}
{#- counted: every stream and share base the model knows (macros/drift_streams.sql); rated: those and all contacts -#}
{%- set counted = [] -%}
{#- every stream and base, whether config/scoring.yml switches it on or not, so that switching one
    on needs no new column in this append-only table -#}
{%- for name, spec in drift_stream_conditions().items() if name != 'contacts' -%}
  {%- do counted.append({'name': name, 'event_condition': spec['condition']}) -%}
{%- endfor -%}
{%- set rated = counted + [{'name': 'contacts'}] -%}
{%- set window = scoring('drift.segment_window_days') | int -%}
{%- set pseudo = scoring('drift.season_pseudo_count') | float -%}
{%- set inc = is_incremental() -%}
{%- set since = portfolio_days_stored_until() if inc else none -%}

with bounds as (
    select * from {{ ref('int_customer_bounds') }}
),

versions as (
    select * from {{ ref('int_customer_versions') }}
),

calendar as (
    select * from {{ ref('int_calendar') }}
),

touchpoints as (
    select * from {{ ref('int_touchpoints') }}
),

segments as (
    select
        bounds.customer_id,
        bounds.first_day,
        coalesce(versions.segment, 'unknown') as segment
    from bounds
    left join versions
        on versions.customer_id = bounds.customer_id and versions.valid_to = cast('9999-12-31' as date)
),

segment_list as (
    select distinct segment from segments
),

grid as (
    select calendar.date_day, segment_list.segment
    from calendar
    cross join segment_list
),

arrivals as (
    select first_day, segment, count(*) as customers
    from segments
    group by first_day, segment
),

active as (
    -- a running count over the calendar (days x segments: small), then only the new days
    select
        grid.date_day,
        grid.segment,
        sum(coalesce(arrivals.customers, 0)) over (
            partition by grid.segment order by grid.date_day rows between unbounded preceding and current row
        ) as active_customers
    from grid
    left join arrivals on arrivals.first_day = grid.date_day and arrivals.segment = grid.segment
),

events as (
    select
        touchpoints.event_date as date_day,
        segments.segment,
        count(*) as n_contacts,
        {% for s in counted -%}
        sum(case when {{ s.event_condition }} then 1 else 0 end) as n_{{ s.name }}{{ ',' if not loop.last }}
        {% endfor %}
    from touchpoints
    inner join segments on segments.customer_id = touchpoints.customer_id
    where touchpoints.event_date <= {{ drift_last_day() }}
    {%- if since is not none %}
      and touchpoints.event_date > {{ since }}
    {%- endif %}
    group by touchpoints.event_date, segments.segment
),

new_days as (
    select
        active.date_day,
        active.segment,
        active.active_customers,
        coalesce(events.n_contacts, 0) as n_contacts,
        {% for s in counted -%}
        coalesce(events.n_{{ s.name }}, 0) as n_{{ s.name }}{{ ',' if not loop.last }}
        {% endfor %}
    from active
    left join events on events.date_day = active.date_day and events.segment = active.segment
    where active.date_day <= {{ drift_last_day() }}
    {%- if since is not none %}
      and active.date_day > {{ since }}
    {%- endif %}
),

known_days as (
    -- the new days and, on a daily run, the stored days their trailing windows read
    select date_day, segment, active_customers, n_contacts,
           {% for s in counted %}n_{{ s.name }}, {% endfor %}1 as is_new
    from new_days
    {%- if since is not none %}
    union all
    select date_day, segment, active_customers, n_contacts,
           {% for s in counted %}n_{{ s.name }}, {% endfor %}0 as is_new
    from {{ this }}
    where date_day >= {{ add_days(since, -(window + 1)) }}
    {%- endif %}
),

portfolio as (
    select
        date_day,
        sum(active_customers) as active_customers,
        {% for s in rated -%}
        sum(n_{{ s.name }}) as n_{{ s.name }}{{ ',' if not loop.last }}
        {% endfor %}
    from known_days
    group by date_day
),

seasons as (
    -- each stream's seasonal index of the day: its count that day over its usual count per
    -- customer-day in the trailing year (the day itself excluded), with pseudo-counts; each stream
    -- its own, since orders come in at weekends and calls do not
    select
        date_day,
        {% for s in rated -%}
        {%- set usual = safe_ratio('sum(n_' ~ s.name ~ ') over trailing_window', 'sum(active_customers) over trailing_window') %}
        case
            when coalesce({{ usual }}, 0) = 0 then 1000
            else {{ milli('(n_' ~ s.name ~ ' + ' ~ pseudo ~ ') / (active_customers * ' ~ usual ~ ' + ' ~ pseudo ~ ')') }}
        end as season_index_{{ s.name }}_milli{{ ',' if not loop.last }}
        {% endfor %}
    from portfolio
    window trailing_window as (order by date_day rows between {{ window }} preceding and 1 preceding)
),

exposed as (
    -- portfolio-normal customer-days per stream: active customers x the stream's seasonal index
    select
        known_days.*,
        {% for s in rated -%}
        seasons.season_index_{{ s.name }}_milli,
        cast(known_days.active_customers as {{ type_double() }}) * seasons.season_index_{{ s.name }}_milli / 1000.0 as exposure_{{ s.name }}{{ ',' if not loop.last }}
        {% endfor %}
    from known_days
    inner join seasons on seasons.date_day = known_days.date_day
),

portfolio_exposed as (
    select
        date_day,
        {% for s in rated -%}
        sum(n_{{ s.name }}) as n_{{ s.name }},
        sum(exposure_{{ s.name }}) as exposure_{{ s.name }}{{ ',' if not loop.last }}
        {% endfor %}
    from exposed
    group by date_day
),

portfolio_rates as (
    select
        date_day,
        {% for s in rated -%}
        {{ safe_ratio('sum(n_' ~ s.name ~ ') over trailing_window', 'sum(exposure_' ~ s.name ~ ') over trailing_window') }} as portfolio_rate_{{ s.name }}{{ ',' if not loop.last }}
        {% endfor %}
    from portfolio_exposed
    window trailing_window as (order by date_day rows between {{ window }} preceding and 1 preceding)
),

segment_rates as (
    select
        exposed.*,
        sum(exposure_contacts) over trailing_window as segment_exposure_days,
        {% for s in rated -%}
        {{ safe_ratio('sum(n_' ~ s.name ~ ') over trailing_window', 'sum(exposure_' ~ s.name ~ ') over trailing_window') }} as segment_rate_{{ s.name }}{{ ',' if not loop.last }}
        {% endfor %}
    from exposed
    window trailing_window as (partition by segment order by date_day rows between {{ window }} preceding and 1 preceding)
)

select
    segment_rates.date_day,
    segment_rates.segment,
    segment_rates.active_customers,
    segment_rates.n_contacts,
    {% for s in counted -%}
    segment_rates.n_{{ s.name }},
    {% endfor -%}
    segment_rates.season_index_contacts_milli as season_index_milli,
    {% for s in counted -%}
    segment_rates.season_index_{{ s.name }}_milli,
    {% endfor -%}
    coalesce(segment_rates.segment_exposure_days, 0) as segment_exposure_days,
    {% for s in rated -%}
    segment_rates.segment_rate_{{ s.name }},
    portfolio_rates.portfolio_rate_{{ s.name }}{{ ',' if not loop.last }}
    {% endfor %}
from segment_rates
inner join portfolio_rates on portfolio_rates.date_day = segment_rates.date_day
where segment_rates.is_new = 1
