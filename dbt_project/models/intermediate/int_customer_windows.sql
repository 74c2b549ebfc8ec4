{#- Per customer per day: trailing-window counts (30/90 days and the windows scoring.yml names),
    the dialogue rhythm, and the master data valid that day. Incremental by customer-day like the
    int_customer_days it reads (macros/incremental.sql), and built in customer batches: the marts
    that publish these columns (fct_dialogue_daily, fct_customer_health_daily through
    int_health_scored, fct_loyalty_matrix) read the stored rows of the days they rebuild.

    A trailing window is today's running count minus the running count n days ago. How it finds the
    count n days ago:
      full build  lag(cum, n) over each customer's daily series: the series is dense (one row per day
                  from the customer's first day, a data test on int_customer_days), so n rows back is
                  n days back. One partitioned sort serves every window length: what a full build of
                  tens of millions of customer-days can afford (a join per window length there built a
                  hash table of the whole table each, and spilled tens of GB).
      daily run   a left join per window length on (customer, day - n), bounded to the days being
                  rebuilt (their earliest day, rebuild_floor): a look-up of a few stored days for the
                  few rows it rebuilds.

    Dialogue rhythm:
      days_since_dialogue  days since the last two-way dialogue; a customer that never had one
                           counts from its first day (silence since we have known it).
      usual_gap_days       the customer's own baseline: over the trailing baseline window (from
                           its start, or the customer's first day, to the last dialogue) the days
                           per dialogue day; once it has enough dialogue days and observed days
                           (dialogue.own_baseline_min_*). Until then, the segment's typical gap
                           (dialogue.segment_usual_gap_days). Clamped to [min_gap_days, max_gap_days].
      gap_ratio            days_since_dialogue / usual_gap_days. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['customer_id', 'as_of_date'],
    pre_hook="{{ prune_customer_days() }}",
    customer_batched=true,
    post_hook="{{ insert_customer_batches() }}"
) }}
{%- set since = rebuild_floor() -%}
{%- set by_window = since is none -%}
{%- set baseline = scoring('dialogue.baseline_window_days') | int -%}
{%- set followup = scoring('dialogue.order_followup_days') | int -%}
{%- set recent = scoring('dialogue.recent_days') | int -%}
{%- set segment_gaps = scoring('dialogue.segment_usual_gap_days') -%}
{#- the window lengths every running count is read back by -#}
{%- set lengths = [] -%}
{%- for n in [30, 60, 90, 365,
              scoring('dialogue.recent_days'), scoring('dialogue.baseline_window_days'),
              scoring('health.stakeholder.window_days'), scoring('health.service.window_days'),
              scoring('health.financial.window_days'), scoring('health.commercial.trend_window_days'),
              2 * scoring('health.commercial.trend_window_days'), scoring('loyalty.window_days')] -%}
  {%- if (n | int) not in lengths -%}{%- do lengths.append(n | int) -%}{%- endif -%}
{%- endfor -%}
{%- set lengths = lengths | sort -%}
{#- every trailing window: (column, running count of int_customer_days, days) -#}
{%- set windows = [] -%}
{%- for n in lengths -%}
  {%- for name in ['contacts', 'dialogues', 'caring', 'friction', 'neutral', 'dialogue_days', 'order_amount', 'orders'] -%}
    {%- do windows.append((name ~ '_' ~ n ~ 'd', name, n)) -%}
  {%- endfor -%}
{%- endfor -%}
{%- for d in contract_departments() -%}
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
{%- endfor %}

with days {{ inlined() }} (
    select * from {{ ref('int_customer_days') }}
),

bounds as (
    select * from {{ ref('int_customer_bounds') }}
),

versions as (
    select * from {{ ref('int_customer_versions') }}
),

rebuild as (
    {{ customer_days_to_rebuild() }}
),

{% if by_window -%}
windowed as (
    -- a full build: the count n days ago is n rows back in the customer's dense daily series
    select
        days.*,
        {% for column, name, n in windows -%}
        (days.cum_{{ name }} - coalesce(lag(days.cum_{{ name }}, {{ n }}) over customer_series, 0)) as {{ column }}{{ ',' if not loop.last }}
        {% endfor %}
    from days
    where {{ customer_batch_filter('days.customer_id') }}
    window customer_series as (partition by days.customer_id order by days.as_of_date)
),
{%- else -%}
windowed as (
    -- a daily run: the stored day n days back, looked up among the days the windows reach
    select
        current_day.*,
        {% for column, name, n in windows -%}
        (current_day.cum_{{ name }} - coalesce(lag_{{ n }}.cum_{{ name }}, 0)) as {{ column }}{{ ',' if not loop.last }}
        {% endfor %}
    from days as current_day
    {% for n in lengths -%}
    left join days as lag_{{ n }}
        on lag_{{ n }}.customer_id = current_day.customer_id
       and lag_{{ n }}.as_of_date = {{ add_days('current_day.as_of_date', -n) }}
       and {{ looked_back_days('lag_' ~ n ~ '.as_of_date', n, since, as_of_date_literal()) }}
    {% endfor -%}
    where current_day.as_of_date >= {{ since }}
),
{%- endif %}

joined as (
    select
        windowed.*,
        bounds.first_day,
        {{ days_between('bounds.first_day', 'windowed.as_of_date') }} + 1 as observed_days,
        coalesce(versions.segment, 'unknown') as segment,
        versions.account_manager_id,
        versions.annual_potential,
        versions.currency
    from windowed
    inner join rebuild
        on rebuild.customer_id = windowed.customer_id
       and windowed.as_of_date >= rebuild.rebuild_from
    inner join bounds on bounds.customer_id = windowed.customer_id
    left join versions
        on versions.customer_id = windowed.customer_id
       and windowed.as_of_date >= versions.valid_from
       and windowed.as_of_date < versions.valid_to
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
