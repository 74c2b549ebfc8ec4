{#- The SQL of int_customer_windows, shared with the incremental marts: `since` (a SQL date)
    limits it to the days being rebuilt, and bounds the lag lookups so daily runs read only the
    stored days they need.

    How a window looks up the running count n days ago (macros/windows.sql), by_window:
      true   lag(cum, n) over each customer's daily series: the series is dense (one row per day
             from the customer's first day, a data test on int_customer_days), so n rows back is
             n days back. One partitioned sort serves every window length: what a full build of
             tens of millions of customer-days can afford (a join per window length there built a
             hash table of the whole table each, and spilled tens of GB).
      false  a left join per window length on (customer, day - n), bounded by `since`: what a
             daily run wants, probing a few stored days for the few rows it rebuilds.
    Default: by window when the whole history is built (since is none). -#}

{% macro customer_windows_sql(since=none, by_window=none) -%}
{%- set by_window = (since is none) if by_window is none else by_window -%}
{%- set lags = trailing_window_lengths() -%}
{%- set baseline = scoring('dialogue.baseline_window_days') | int -%}
{%- set followup = scoring('dialogue.order_followup_days') | int -%}
{%- set recent = scoring('dialogue.recent_days') | int -%}
{%- set segment_gaps = scoring('dialogue.segment_usual_gap_days') -%}
{%- set departments = contract_departments() -%}
{#- every trailing window: (column, running count, days) -#}
{%- set windows = [] -%}
{%- for n in lags -%}
  {%- for name in ['contacts', 'dialogues', 'caring', 'friction', 'neutral', 'dialogue_days', 'order_amount', 'orders'] -%}
    {%- do windows.append((name ~ '_' ~ n ~ 'd', name, n)) -%}
  {%- endfor -%}
{%- endfor -%}
{%- for d in departments -%}
  {%- do windows.append(('contacts_' ~ d ~ '_30d', 'dept_' ~ d, 30)) -%}
  {%- do windows.append(('contacts_' ~ d ~ '_90d', 'dept_' ~ d, 90)) -%}
{%- endfor -%}
{%- set sw = scoring('health.stakeholder.window_days') | int -%}
{%- for r in contract_contact_roles() -%}
  {%- do windows.append(('role_' ~ r ~ '_stakeholder_window', 'role_' ~ r, sw)) -%}
{%- endfor -%}
{%- set sv = scoring('health.service.window_days') | int -%}
{%- for name in ['visits', 'visits_resolved', 'visits_first_time_fix', 'inbound_calls', 'inbound_calls_answered', 'complaints', 'complaints_high'] -%}
  {%- do windows.append((name ~ '_service_window', name, sv)) -%}
{%- endfor -%}
{%- set lw = scoring('loyalty.window_days') | int -%}
{%- for name in ['visits', 'visits_resolved', 'visits_first_time_fix', 'inbound_calls', 'inbound_calls_answered', 'complaints', 'surveys', 'promoters', 'detractors', 'survey_comments'] -%}
  {%- do windows.append((name ~ '_loyalty_window', name, lw)) -%}
{%- endfor -%}
{%- set fw = scoring('health.financial.window_days') | int -%}
{%- for s in contract_dunning_stages() -%}
  {%- do windows.append(('dunning_' ~ s ~ '_financial_window', 'dunning_' ~ s, fw)) -%}
{%- endfor -%}
{%- set lagged = [] -%}
{%- for column, name, n in windows -%}
  {%- if (name, n) not in lagged -%}{%- do lagged.append((name, n)) -%}{%- endif -%}
{%- endfor -%}

{% if by_window -%}
with current_days as (
    select
        days.*,
        {% for name, n in lagged -%}
        lag(days.cum_{{ name }}, {{ n }}) over customer_series as lag_{{ n }}_cum_{{ name }}{{ ',' if not loop.last }}
        {% endfor %}
    from {{ ref('int_customer_days') }} as days
    where {{ customer_batch_filter('days.customer_id') }}
    window customer_series as (partition by days.customer_id order by days.as_of_date)
),

joined as (
{%- else -%}
with joined as (
{%- endif %}

    select
        {% for column in customer_day_measures().columns -%}
        current_day.{{ column }},
        {% endfor -%}
        bounds.first_day,
        {{ days_between('bounds.first_day', 'current_day.as_of_date') }} + 1 as observed_days,
        coalesce(versions.segment, 'unknown') as segment,
        versions.account_manager_id,
        versions.annual_potential,
        versions.currency,
        {% for column, name, n in windows -%}
        {{ trailing(name, n, by_window) }} as {{ column }}{{ ',' if not loop.last }}
        {% endfor %}
    from {{ 'current_days' if by_window else ref('int_customer_days') }} as current_day
    inner join {{ ref('int_customer_bounds') }} as bounds on bounds.customer_id = current_day.customer_id
    left join {{ ref('int_customer_versions') }} as versions
        on versions.customer_id = current_day.customer_id
       and current_day.as_of_date >= versions.valid_from
       and current_day.as_of_date < versions.valid_to
    {% if not by_window -%}
    {% for n in lags -%}
    left join {{ ref('int_customer_days') }} as lag_{{ n }}
        on lag_{{ n }}.customer_id = current_day.customer_id
       and lag_{{ n }}.as_of_date = {{ add_days('current_day.as_of_date', -n) }}
       {% if since is not none -%}
       and lag_{{ n }}.as_of_date between {{ add_days(since, -n) }} and {{ add_days(as_of_date_literal(), -n) }}
       {%- endif %}
    {% endfor -%}
    {%- endif %}
    {% if since is not none -%}
    where current_day.as_of_date >= {{ since }}
    {%- endif %}
),

rhythm as (
    select
        joined.*,
        case joined.segment
            {% for seg, gap in segment_gaps.items() -%}
            when '{{ seg }}' then {{ gap }}
            {% endfor -%}
            else {{ segment_gaps['unknown'] }}
        end as segment_usual_gap_days,
        coalesce(
            {{ days_between('joined.last_dialogue_date', 'joined.as_of_date') }},
            joined.observed_days - 1
        ) as days_since_dialogue,
        -- own baseline: days from the window start (or first day) to the last dialogue, per dialogue day
        {{ safe_ratio(
            days_between(
                'greatest(joined.first_day, ' ~ add_days('joined.as_of_date', -(baseline - 1)) ~ ')',
                'joined.last_dialogue_date') ~ ' + 1',
            'joined.dialogue_days_' ~ baseline ~ 'd') }} as own_gap_days,
        (
            joined.dialogue_days_{{ baseline }}d >= {{ scoring('dialogue.own_baseline_min_dialogue_days') }}
            and joined.observed_days >= {{ scoring('dialogue.own_baseline_min_observed_days') }}
        ) as has_own_baseline
    from joined
)

select
    rhythm.*,
    case when has_own_baseline then 'own' else 'segment' end as usual_gap_basis,
    least({{ scoring('dialogue.max_gap_days') }}, greatest({{ scoring('dialogue.min_gap_days') }},
        case when has_own_baseline then own_gap_days else segment_usual_gap_days end)) as usual_gap_days,
    {{ safe_ratio('days_since_dialogue', 'least(' ~ scoring('dialogue.max_gap_days') ~ ', greatest(' ~ scoring('dialogue.min_gap_days') ~ ', case when has_own_baseline then own_gap_days else segment_usual_gap_days end))') }} as gap_ratio,
    {{ safe_ratio('friction_' ~ recent ~ 'd', 'contacts_' ~ recent ~ 'd') }} as friction_share_recent,
    {{ safe_ratio('caring_' ~ recent ~ 'd', 'contacts_' ~ recent ~ 'd') }} as caring_share_recent,
    case
        when last_order_date is null then null
        when first_dialogue_after_order <= {{ add_days('last_order_date', followup) }} then true
        when {{ days_between('last_order_date', 'as_of_date') }} < {{ followup }} then null
        else false
    end as order_followed_up,
    {{ days_between('last_caring_date', 'as_of_date') }} as days_since_caring,
    case
        when last_open_high_complaint_date is not null
         and (last_resolution_date is null or last_resolution_date < last_open_high_complaint_date)
        then {{ days_between('last_open_high_complaint_date', 'as_of_date') }}
    end as open_high_complaint_days,
    case
        {%- for s in contract_dunning_stages() | reverse %}
        when dunning_{{ s }}_financial_window > 0 then '{{ s }}'
        {%- endfor %}
    end as worst_dunning_stage,
    case
        when last_dunning_date is not null
         and {{ days_between('last_dunning_date', 'as_of_date') }} < {{ scoring('health.financial.window_days') }}
        then last_dunning_amount else 0
    end as amount_overdue,
    greatest(
        coalesce(annual_potential, 0) * {{ scoring('alerts.value_at_stake_potential_share') }},
        order_amount_365d
    ) as value_at_stake
from rhythm
{%- endmacro %}
