{#- Per customer per day: which churn-alert rules hold (a flag per rule), after the warm-up
    (alerts.warmup_days of history per customer), judged on the health of int_health_daily (as
    fct_customer_health_daily publishes it). Dense and incremental like the health it reads, so a
    daily run evaluates only the new days (with the look-back its windows need). Rules (config/scoring.yml
    `alerts.rules`):
      status_drop          the status has been yellow or red for persist_days days in a row AND
                           the mean health of the last recent_days days lies at least
                           min_points_below_norm below the customer's OWN norm (its mean health
                           over norm_window_days ending norm_skip_days ago; the green line
                           health.green_min until it has norm_min_days of history), so a
                           customer whose usual state is yellow is not alerted for being itself;
                           severity_red when red or high_points_below_norm below its norm
      sharp_health_drop    health fell by at least min_drop_points below its highest value of
                           the last window_days days, on persist_days days in a row
      dialogue_gap         gap_ratio >= min_gap_ratio and at least min_days_since_dialogue days
      dunning_escalation   dunning reached one of `stages` in the financial window, value at stake
                           >= min_value_at_stake, and no caring contact for no_caring_days
      new_high_complaint   a high-severity complaint is open (from the day it came in: the
                           account manager hears of it at once)
      open_high_complaint  a high-severity complaint open for more than deadline_days -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['customer_id', 'as_of_date'],
    pre_hook="{{ prune_customer_days() }}",
    customer_batched=true,
    post_hook="{{ insert_customer_batches() }}"
) }}
{%- set rules = scoring('alerts.rules') -%}
{%- set drop = rules['sharp_health_drop'] -%}
{%- set sd = rules['status_drop'] -%}
{#- Means over long windows (the own norm: a year) are differences of running health totals
    stored on each row (cum_health_tenths, cum_health_days), read n days back like the trailing
    windows of int_customer_windows: a daily run reads a few stored days per customer instead of
    reading a year of health rows; a full build takes them n rows back in the customer's dense
    series (lag), one sort instead of a hash join of the whole history per offset. Totals are in
    integer tenths (health_score has one decimal), so they are exact and do not depend on
    summation order. -#}
{%- set lookback = [drop['window_days'] | int + drop['persist_days'] | int, sd['persist_days'] | int] | max -%}
{%- set since = rebuild_floor() -%}
{%- set inc = is_incremental() -%}
{%- set offsets = {'recent_start': sd['recent_days'] | int, 'norm_end': sd['norm_skip_days'] | int,
                   'norm_start': sd['norm_window_days'] | int + 1} -%}
{%- set dunning = rules['dunning_escalation'] -%}
{#- where normed reads the running totals at each offset: the looked-back columns of the rebuilt
    day (daily run) or lag columns of the row itself (full build) -#}
{%- set at = {'own': 'own.' if inc else 'flagged.'} -%}
{%- for name in offsets -%}{%- do at.update({name: ('own.' if inc else 'flagged.') ~ name ~ '_'}) -%}{%- endfor %}

with health_daily as (
    select * from {{ ref('int_health_daily') }}
),

rebuild as (
    {{ customer_days_to_rebuild() }}
),

health as (
    select
        health.*,
        rebuild.rebuild_from,
        max(health.health_score) over (
            partition by health.customer_id order by health.as_of_date
            rows between {{ drop['window_days'] | int }} preceding and current row
        ) as recent_peak_health,
        sum(case when health.status <> 'green' then 1 else 0 end) over (
            partition by health.customer_id order by health.as_of_date
            rows between {{ sd['persist_days'] | int - 1 }} preceding and current row
        ) as recent_not_green_days,
        cast(round(health.health_score * 10) as {{ dbt.type_bigint() }}) as health_tenths
        {%- if not inc %},
        sum(cast(round(health.health_score * 10) as {{ dbt.type_bigint() }})) over (
            partition by health.customer_id order by health.as_of_date
            rows between unbounded preceding and current row
        ) as cum_health_tenths,
        count(*) over (
            partition by health.customer_id order by health.as_of_date
            rows between unbounded preceding and current row
        ) as cum_health_days
        {%- endif %}
    from health_daily as health
    inner join rebuild
        on rebuild.customer_id = health.customer_id
       and health.as_of_date >= {{ add_days('rebuild.rebuild_from', -lookback) }}
    where {{ customer_batch_filter('health.customer_id') }}
    {% if since is not none -%}
      and health.as_of_date >= {{ add_days(since, -lookback) }}
    {%- endif %}
)
{%- if inc %},

{#- a daily run: the running totals continue from the stored day before each customer's rebuild,
    and the totals n days back are looked up among the rebuilt and stored days -#}
stored as (
    -- the running totals stored on the day before each customer's rebuild
    select stored.customer_id, stored.cum_health_tenths, stored.cum_health_days
    from {{ this }} as stored
    inner join rebuild
        on rebuild.customer_id = stored.customer_id
       and stored.as_of_date = {{ add_days('rebuild.rebuild_from', -1) }}
    where stored.as_of_date >= {{ add_days(since, -1) }}
),

running as (
    select
        health.customer_id,
        health.as_of_date,
        coalesce(stored.cum_health_tenths, 0) + sum(health.health_tenths) over running_total as cum_health_tenths,
        coalesce(stored.cum_health_days, 0) + count(*) over running_total as cum_health_days
    from health
    left join stored on stored.customer_id = health.customer_id
    where health.as_of_date >= health.rebuild_from
    window running_total as (
        partition by health.customer_id order by health.as_of_date
        rows between unbounded preceding and current row
    )
),

stored_totals as (
    -- the stored running totals n days before a rebuilt day, for each offset (when that day lies
    -- before the rebuild; after it, the rebuilt series has it: looked_back)
    select stored.customer_id, stored.as_of_date, stored.cum_health_tenths, stored.cum_health_days
    from {{ this }} as stored
    inner join rebuild
        on rebuild.customer_id = stored.customer_id
       and stored.as_of_date < rebuild.rebuild_from
    where {{ looked_back_days('stored.as_of_date', offsets.values() | list, since, as_of_date_literal()) }}
),

looked_back as (
    -- each rebuilt day's totals and those n days back: n rows back in the dense rebuilt series
    -- (lag), or the stored day before the rebuild. `running` is read once: Spark plans a CTE anew
    -- at every reference, and a join per offset planned the chain below it four times more
    select
        running.*
        {%- for name, days in offsets.items() %}{% for column in ['cum_health_tenths', 'cum_health_days'] %},
        coalesce(lag(running.{{ column }}, {{ days }}) over customer_series, {{ name }}.{{ column }}) as {{ name }}_{{ column }}
        {%- endfor %}{% endfor %}
    from running
    {% for name, days in offsets.items() -%}
    left join stored_totals as {{ name }}
        on {{ name }}.customer_id = running.customer_id
       and {{ name }}.as_of_date = {{ add_days('running.as_of_date', -days) }}
    {% endfor -%}
    window customer_series as (partition by running.customer_id order by running.as_of_date)
)
{%- endif %},

judged as (
    select
        health.*,
        case when recent_peak_health - health_score >= {{ drop['min_drop_points'] }} then 1 else 0 end as dropped_today
    from health
),

flagged as (
    select
        judged.*,
        sum(dropped_today) over (
            partition by customer_id order by as_of_date
            rows between {{ drop['persist_days'] | int - 1 }} preceding and current row
        ) as recent_dropped_days
        {%- if not inc -%},
        {#- a full build reads the running totals n days back from the customer's dense daily
            series (n rows back): one sort instead of a hash join of the whole history per offset -#}
        {% for name, days in offsets.items() -%}
        lag(cum_health_tenths, {{ days }}) over customer_series as {{ name }}_cum_health_tenths,
        lag(cum_health_days, {{ days }}) over customer_series as {{ name }}_cum_health_days{{ ',' if not loop.last }}
        {% endfor -%}
        {%- endif %}
    from judged
    {%- if not inc %}
    window customer_series as (partition by customer_id order by as_of_date)
    {%- endif %}
),

normed as (
    select
        flagged.*,
        {% if inc -%}
        own.cum_health_tenths,
        own.cum_health_days,
        {% endif -%}
        -- the mean health of the last recent_days days
        {{ safe_ratio(at.own ~ 'cum_health_tenths - coalesce(' ~ at.recent_start ~ 'cum_health_tenths, 0)',
                      '10.0 * (' ~ at.own ~ 'cum_health_days - coalesce(' ~ at.recent_start ~ 'cum_health_days, 0))') }} as recent_mean_health,
        -- the customer's own norm: its mean health over a year that ends a while ago, so that a slow
        -- drift does not drag the norm down with it
        coalesce({{ at.norm_end }}cum_health_days, 0) - coalesce({{ at.norm_start }}cum_health_days, 0) as own_norm_days,
        {{ safe_ratio('coalesce(' ~ at.norm_end ~ 'cum_health_tenths, 0) - coalesce(' ~ at.norm_start ~ 'cum_health_tenths, 0)',
                      '10.0 * (coalesce(' ~ at.norm_end ~ 'cum_health_days, 0) - coalesce(' ~ at.norm_start ~ 'cum_health_days, 0))') }} as own_norm_health
    from flagged
    {% if inc -%}
    inner join looked_back as own
        on own.customer_id = flagged.customer_id and own.as_of_date = flagged.as_of_date
    {%- endif %}
    where flagged.as_of_date >= flagged.rebuild_from
),

judged_norm as (
    select
        normed.*,
        -- the norm a customer is judged against: its own once it has enough history, else the
        -- portfolio-wide line of a healthy relationship (health.green_min)
        case
            when own_norm_days >= {{ sd['norm_min_days'] | int }} then own_norm_health
            else {{ scoring('health.green_min') }}
        end - recent_mean_health as points_below_norm
    from normed
)

select
    customer_id,
    as_of_date,
    observed_days > {{ scoring('alerts.warmup_days') | int }} as past_warmup,
    {{ '(recent_not_green_days >= ' ~ sd['persist_days'] ~ ' and points_below_norm >= ' ~ sd['min_points_below_norm'] ~ ')' if sd['enabled'] else 'false' }} as status_drop,
    case
        when status = 'red' or points_below_norm >= {{ sd['high_points_below_norm'] }} then '{{ sd['severity_red'] }}'
        else '{{ sd['severity_yellow'] }}'
    end as status_drop_severity,
    {{ 'recent_dropped_days >= ' ~ drop['persist_days'] if drop['enabled'] else 'false' }} as sharp_health_drop,
    {{ '(gap_ratio >= ' ~ rules['dialogue_gap']['min_gap_ratio'] ~ ' and days_since_dialogue >= ' ~ rules['dialogue_gap']['min_days_since_dialogue'] ~ ')' if rules['dialogue_gap']['enabled'] else 'false' }} as dialogue_gap,
    {{ '(coalesce(worst_dunning_stage in (' ~ sql_string_list(dunning['stages']) ~ '), false) and value_at_stake >= ' ~ dunning['min_value_at_stake'] ~ ' and (days_since_caring is null or days_since_caring > ' ~ dunning['no_caring_days'] ~ '))' if dunning['enabled'] else 'false' }} as dunning_escalation,
    {{ '(open_high_complaint_days is not null)' if rules['new_high_complaint']['enabled'] else 'false' }} as new_high_complaint,
    {{ 'coalesce(open_high_complaint_days > ' ~ rules['open_high_complaint']['deadline_days'] ~ ', false)' if rules['open_high_complaint']['enabled'] else 'false' }} as open_high_complaint,
    cum_health_tenths,
    cum_health_days,
    inputs_landed_at
from judged_norm
