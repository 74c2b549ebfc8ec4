{#- The drift model per customer per day: the evidence that the relationship is drifting toward
    churn, and its probability. For every stream of drift.streams (config/scoring.yml):
      n_<s>                the day's count (dialogue: 1 on a day with a two-way dialogue)
      usual_rate_<s>       the customer's usual rate per portfolio-normal day: its own count over
                           its history up to drift.baseline_skip_days ago, shrunk towards its
                           segment's rate (int_portfolio_days) with the weight of drift.prior_days
                           (gamma-Poisson posterior mean); a share stream: its usual share
      expected_<s>         what the customer usually does on such a day: usual rate x the
                           stream's seasonal index of the day (a share: usual share x the day's base);
                           0 for a rate stream the customer hardly ever used (drift.min_baseline_events)
      cum_exposure_milli_<s>  a rate stream's portfolio-normal days so far (thousandths)
      evidence_milli_<s>   the day's log-likelihood ratio of "drifting" (rate x drifting_rate_ratio)
                           against "as usual", in thousandths of a nat: a quiet day of a chatty
                           customer adds a little, a dialogue subtracts, each friction event adds
      since_restart_milli_<s>  the stream's evidence since the CUSUM last stood at zero: what moved
                           the probability (the drivers of a case)
    and over all streams (the day's total capped at drift.max_daily_evidence):
      evidence_milli       CUSUM S = max(0, S_yesterday + day's evidence): the log-likelihood ratio
                           of the most likely drift start against "no drift"; computed as running
                           total minus its running minimum (cum_evidence_milli - floor_evidence_milli),
                           which window functions give on a full build and the stored row of the
                           day before gives on a daily run
      drift_probability    1 / (1 + exp(-(S + log prior odds))), prior odds from drift.prior_drift_share
    Sums are in integer thousandths, so a daily run and a full refresh give identical rows.
    Only days that are over are scored (drift_last_day: an event-driven run during the day leaves
    today to the next run).
    Incremental by customer-day (macros/incremental.sql). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['customer_id', 'as_of_date'],
    pre_hook="{{ prune_customer_days() }}"
) }}
-- depends_on: {{ ref('fct_touchpoints') }}
-- depends_on: {{ ref('int_customer_versions') }}
-- depends_on: {{ ref('int_customer_bounds') }}
{%- set streams = drift_streams() -%}
{%- set skip = scoring('drift.baseline_skip_days') | int -%}
{%- set prior_days = scoring('drift.prior_days') | float -%}
{%- set prior_events = scoring('drift.share_prior_events') | float -%}
{%- set rate_streams = streams | selectattr('kind', 'equalto', 'rate') | list -%}
{%- set rate_names = [] -%}
{%- for s in streams -%}
  {%- for name in [s.name, s.of] if name and name not in rate_names -%}{%- do rate_names.append(name) -%}{%- endfor -%}
{%- endfor -%}
{%- set cap = scoring('drift.max_daily_evidence') | float -%}
{%- set min_rate = scoring('drift.min_rate_per_day') | float -%}
{%- set min_events = scoring('drift.min_baseline_events') | int -%}
{%- set share = scoring('drift.prior_drift_share') | float -%}
{%- set since = rebuild_floor() -%}
{%- set inc = is_incremental() %}

with rebuild as (
    {{ customer_days_to_rebuild() }}
),

customer_days as (
    -- the rebuilt days, and the day before them (today's count = running count - yesterday's)
    select
        days.customer_id,
        days.as_of_date,
        rebuild.rebuild_from,
        {% for s in streams -%}
        {{ stream_count(s, 'days') }} as cum_n_{{ s.name }},
        {% if s.kind == 'share' -%}
        days.cum_drift_{{ s.of }} as cum_base_{{ s.name }},
        {% endif -%}
        {% endfor -%}
        days.inputs_landed_at
    from {{ ref('int_customer_days') }} as days
    inner join rebuild
        on rebuild.customer_id = days.customer_id
       and days.as_of_date >= {{ add_days('rebuild.rebuild_from', -1) }}
    where days.as_of_date <= {{ drift_last_day() }}
    {% if since is not none -%}
      and days.as_of_date >= {{ add_days(since, -1) }}
    {%- endif %}
),

portfolio_days as (
    select
        date_day,
        max(season_index_milli) as season_index_milli,
        {% for s in rate_streams -%}
        max(season_index_{{ s.name }}_milli) as season_index_{{ s.name }}_milli,
        {% endfor -%}
        {% for name in rate_names -%}
        max(portfolio_rate_{{ name }}) as portfolio_rate_{{ name }}{{ ',' if not loop.last }}
        {% endfor %}
    from {{ ref('int_portfolio_days') }}
    {% if since is not none -%}
    where date_day >= {{ add_days(since, -1) }}
    {%- endif %}
    group by date_day
),

counted as (
    select
        customer_days.*,
        coalesce(versions.segment, 'unknown') as segment,
        coalesce(portfolio_days.season_index_milli, 1000) as season_index_milli,
        {% for s in rate_streams -%}
        coalesce(portfolio_days.season_index_{{ s.name }}_milli, 1000) as season_index_{{ s.name }}_milli,
        {% endfor -%}
        {% for s in streams -%}
        cum_n_{{ s.name }} - coalesce(lag(cum_n_{{ s.name }}) over customer_series, 0) as n_{{ s.name }},
        {% if s.kind == 'share' -%}
        cum_base_{{ s.name }} - coalesce(lag(cum_base_{{ s.name }}) over customer_series, 0) as base_{{ s.name }},
        -- the segment's share (its rate of the stream over its rate of the base), or the portfolio's
        coalesce(case when segment_days.segment_exposure_days >= {{ prior_days }}
                      then {{ safe_ratio('segment_days.segment_rate_' ~ s.name, 'segment_days.segment_rate_' ~ s.of) }} end,
                 {{ safe_ratio('portfolio_days.portfolio_rate_' ~ s.name, 'portfolio_days.portfolio_rate_' ~ s.of) }}, 0) as prior_rate_{{ s.name }}{{ ',' if not loop.last }}
        {% else -%}
        -- the segment's rate, or the portfolio's while the segment has too little exposure
        coalesce(case when segment_days.segment_exposure_days >= {{ prior_days }} then segment_days.segment_rate_{{ s.name }} end,
                 portfolio_days.portfolio_rate_{{ s.name }}, 0) as prior_rate_{{ s.name }}{{ ',' if not loop.last }}
        {% endif -%}
        {% endfor %}
    from customer_days
    left join {{ ref('int_customer_versions') }} as versions
        on versions.customer_id = customer_days.customer_id
       and customer_days.as_of_date >= versions.valid_from and customer_days.as_of_date < versions.valid_to
    left join portfolio_days on portfolio_days.date_day = customer_days.as_of_date
    left join {{ ref('int_portfolio_days') }} as segment_days
        on segment_days.date_day = customer_days.as_of_date
       and segment_days.segment = coalesce(versions.segment, 'unknown')
    window customer_series as (partition by customer_days.customer_id order by customer_days.as_of_date)
),

rebuilt as (
    select counted.*
    from counted
    where as_of_date >= rebuild_from
)
{%- if inc %},

base as (
    -- the stored state of the day before each customer's rebuild
    select stored.*
    from {{ this }} as stored
    inner join rebuild
        on rebuild.customer_id = stored.customer_id
       and stored.as_of_date = {{ add_days('rebuild.rebuild_from', -1) }}
    where stored.as_of_date >= {{ add_days(since, -1) }}
)
{%- endif %},

exposed as (
    select
        rebuilt.*,
        {% for s in rate_streams -%}
        {% if inc %}coalesce(base.cum_exposure_milli_{{ s.name }}, 0) + {% endif %}sum(rebuilt.season_index_{{ s.name }}_milli) over running as cum_exposure_milli_{{ s.name }}{{ ',' if not loop.last }}
        {% endfor %}
    from rebuilt
    {% if inc -%}
    left join base on base.customer_id = rebuilt.customer_id
    {%- endif %}
    window running as (
        partition by rebuilt.customer_id order by rebuilt.as_of_date
        rows between unbounded preceding and current row
    )
)
{%- if inc %},

exposure_totals as (
    -- running exposure by day: the rebuilt days and the stored days before them
    select customer_id, as_of_date{% for s in rate_streams %}, cum_exposure_milli_{{ s.name }}{% endfor %} from exposed
    union all
    select stored.customer_id, stored.as_of_date{% for s in rate_streams %}, stored.cum_exposure_milli_{{ s.name }}{% endfor %}
    from {{ this }} as stored
    inner join rebuild
        on rebuild.customer_id = stored.customer_id
       and stored.as_of_date < rebuild.rebuild_from
    where stored.as_of_date >= {{ add_days(since, -skip) }}
)
{%- endif %},

baselined as (
    -- the customer's own history up to baseline_skip_days ago: counts and exposure
    select
        exposed.*,
        {% if inc -%}
        {% for s in rate_streams -%}
        coalesce(exposure_back.cum_exposure_milli_{{ s.name }}, 0) as baseline_exposure_milli_{{ s.name }},
        {% endfor -%}
        {% for s in streams -%}
        {% if s.kind == 'share' -%}
        coalesce(counts_back.cum_drift_{{ s.of }}, 0) as baseline_base_{{ s.name }},
        {% endif -%}
        coalesce({{ stream_count(s, 'counts_back') }}, 0) as baseline_n_{{ s.name }}{{ ',' if not loop.last }}
        {% endfor -%}
        {%- else -%}
        {% for s in rate_streams -%}
        coalesce(lag(cum_exposure_milli_{{ s.name }}, {{ skip }}) over customer_series, 0) as baseline_exposure_milli_{{ s.name }},
        {% endfor -%}
        {% for s in streams -%}
        {% if s.kind == 'share' -%}
        coalesce(lag(cum_base_{{ s.name }}, {{ skip }}) over customer_series, 0) as baseline_base_{{ s.name }},
        {% endif -%}
        coalesce(lag(cum_n_{{ s.name }}, {{ skip }}) over customer_series, 0) as baseline_n_{{ s.name }}{{ ',' if not loop.last }}
        {% endfor -%}
        {%- endif %}
    from exposed
    {% if inc -%}
    left join exposure_totals as exposure_back
        on exposure_back.customer_id = exposed.customer_id
       and exposure_back.as_of_date = {{ add_days('exposed.as_of_date', -skip) }}
    left join {{ ref('int_customer_days') }} as counts_back
        on counts_back.customer_id = exposed.customer_id
       and counts_back.as_of_date = {{ add_days('exposed.as_of_date', -skip) }}
       and counts_back.as_of_date >= {{ add_days(since, -skip) }}
    {%- else %}
    window customer_series as (partition by exposed.customer_id order by exposed.as_of_date)
    {%- endif %}
),

rated as (
    select
        baselined.*,
        {% for s in streams -%}
        {% if s.kind == 'share' -%}
        (prior_rate_{{ s.name }} * {{ prior_events }} + baseline_n_{{ s.name }})
            / ({{ prior_events }} + baseline_base_{{ s.name }}) as usual_rate_{{ s.name }}{{ ',' if not loop.last }}
        {% else -%}
        (prior_rate_{{ s.name }} * {{ prior_days }} + baseline_n_{{ s.name }})
            / ({{ prior_days }} + baseline_exposure_milli_{{ s.name }} / 1000.0) as usual_rate_{{ s.name }}{{ ',' if not loop.last }}
        {% endif -%}
        {% endfor %}
    from baselined
),

expected as (
    select
        rated.*,
        {% for s in streams -%}
        {% if s.kind == 'share' -%}
        usual_rate_{{ s.name }} * base_{{ s.name }} as expected_{{ s.name }}{{ ',' if not loop.last }}
        {% else -%}
        -- silence is evidence only in what the customer does: once it has been watched for
        -- prior_days, a stream it used fewer than min_baseline_events times carries none (a
        -- customer who orders through a distributor does not drift by not ordering)
        case when usual_rate_{{ s.name }} >= {{ min_rate }}
              and (baseline_n_{{ s.name }} >= {{ min_events }} or baseline_exposure_milli_{{ s.name }} < {{ (prior_days * 1000) | int }})
             then usual_rate_{{ s.name }} * season_index_{{ s.name }}_milli / 1000.0 else 0 end as expected_{{ s.name }}{{ ',' if not loop.last }}
        {% endif -%}
        {% endfor %}
    from rated
),

evidence as (
    select
        expected.*,
        {% for s in streams -%}
        {{ milli(stream_evidence(s)) }} as evidence_milli_{{ s.name }}{{ ',' if not loop.last }}
        {% endfor %}
    from expected
),

day_total as (
    select
        evidence.*,
        least({{ (cap * 1000) | int }}, greatest({{ (-cap * 1000) | int }},
            {% for s in streams %}evidence_milli_{{ s.name }}{{ ' + ' if not loop.last }}{% endfor %})) as day_evidence_milli
    from evidence
),

running as (
    select
        day_total.*,
        {% if inc %}coalesce(base.cum_evidence_milli, 0) + {% endif %}sum(day_total.day_evidence_milli) over running_total as cum_evidence_milli,
        {% for s in streams -%}
        {% if inc %}coalesce(base.cum_evidence_milli_{{ s.name }}, 0) + {% endif %}sum(day_total.evidence_milli_{{ s.name }}) over running_total as cum_evidence_milli_{{ s.name }},
        {% if inc %}coalesce(base.cum_capped_milli_{{ s.name }}, 0) + {% endif %}sum(least({{ (cap * 1000) | int }}, greatest({{ (-cap * 1000) | int }}, day_total.evidence_milli_{{ s.name }}))) over running_total as cum_capped_milli_{{ s.name }}{{ ',' if not loop.last }}
        {% endfor %}
    from day_total
    {% if inc -%}
    left join base on base.customer_id = day_total.customer_id
    {%- endif %}
    window running_total as (
        partition by day_total.customer_id order by day_total.as_of_date
        rows between unbounded preceding and current row
    )
),

cusum as (
    select
        running.*,
        {% for s in streams -%}
        least(0, {% if inc %}coalesce(base.floor_capped_milli_{{ s.name }}, 0), {% endif %}min(running.cum_capped_milli_{{ s.name }}) over running_total) as floor_capped_milli_{{ s.name }},
        {% endfor -%}
        least(0, {% if inc %}coalesce(base.floor_evidence_milli, 0), {% endif %}min(running.cum_evidence_milli) over running_total) as floor_evidence_milli
    from running
    {% if inc -%}
    left join base on base.customer_id = running.customer_id
    {%- endif %}
    window running_total as (
        partition by running.customer_id order by running.as_of_date
        rows between unbounded preceding and current row
    )
),

restarts as (
    -- each day the CUSUM stands at zero starts a new excursion: count them, so each excursion's
    -- evidence per stream is measured from its own start
    select
        cusum.*,
        {% if inc %}coalesce(base.restart_count, 0) + {% endif %}sum(case when cusum.cum_evidence_milli = cusum.floor_evidence_milli then 1 else 0 end) over running_total as restart_count
    from cusum
    {% if inc -%}
    left join base on base.customer_id = cusum.customer_id
    {%- endif %}
    window running_total as (
        partition by cusum.customer_id order by cusum.as_of_date
        rows between unbounded preceding and current row
    )
),

attributed as (
    select
        restarts.*,
        {% for s in streams -%}
        restarts.cum_evidence_milli_{{ s.name }} - case
            {% if inc -%}
            when restarts.restart_count = coalesce(base.restart_count, 0)
            then coalesce(base.cum_evidence_milli_{{ s.name }} - base.since_restart_milli_{{ s.name }}, 0)
            {% else -%}
            when restarts.restart_count = 0 then 0
            {% endif -%}
            else first_value(restarts.cum_evidence_milli_{{ s.name }}) over excursion
        end as since_restart_milli_{{ s.name }},
        {% endfor -%}
        case
            {% if inc -%}
            when restarts.restart_count = coalesce(base.restart_count, 0) then base.restart_date
            {% else -%}
            when restarts.restart_count = 0 then null
            {% endif -%}
            else first_value(restarts.as_of_date) over excursion
        end as restart_date
    from restarts
    {% if inc -%}
    left join base on base.customer_id = restarts.customer_id
    {%- endif %}
    window excursion as (
        partition by restarts.customer_id, restarts.restart_count order by restarts.as_of_date
        rows between unbounded preceding and current row
    )
),

mixed as (
    -- which streams drift is not known in advance: all together (a fade), or one alone (a champion
    -- leaves and the dialogue goes on with the wrong people). The evidence is the log of the
    -- mixture likelihood ratio over these alternatives, each with its own CUSUM.
    select
        attributed.*,
        {{ drift_mixture_milli('attributed.cum_evidence_milli - attributed.floor_evidence_milli',
                               streams, 'attributed.cum_capped_milli_', 'attributed.floor_capped_milli_') }} as evidence_milli
    from attributed
)

select
    attributed.customer_id,
    attributed.as_of_date,
    attributed.segment,
    {{ days_between('bounds.first_day', 'attributed.as_of_date') }} as observed_days,
    attributed.season_index_milli,
    {% for s in rate_streams -%}
    attributed.cum_exposure_milli_{{ s.name }},
    {% endfor -%}
    {% for s in streams -%}
    attributed.n_{{ s.name }},
    {% if s.kind == 'share' -%}
    attributed.base_{{ s.name }},
    {% endif -%}
    cast(attributed.usual_rate_{{ s.name }} as {{ type_double() }}) as usual_rate_{{ s.name }},
    cast(attributed.expected_{{ s.name }} as {{ type_double() }}) as expected_{{ s.name }},
    attributed.evidence_milli_{{ s.name }},
    attributed.cum_evidence_milli_{{ s.name }},
    attributed.since_restart_milli_{{ s.name }},
    attributed.cum_capped_milli_{{ s.name }},
    attributed.floor_capped_milli_{{ s.name }},
    attributed.cum_capped_milli_{{ s.name }} - attributed.floor_capped_milli_{{ s.name }} as alone_milli_{{ s.name }},
    {% endfor -%}
    attributed.day_evidence_milli,
    attributed.cum_evidence_milli,
    attributed.floor_evidence_milli,
    attributed.cum_evidence_milli - attributed.floor_evidence_milli as together_milli,
    attributed.evidence_milli,
    attributed.restart_count,
    attributed.restart_date,
    cast(1.0 / (1.0 + exp(-(attributed.evidence_milli / 1000.0 + ln(cast({{ share }} as {{ type_double() }}) / (1 - {{ share }}))))) as {{ type_double() }}) as drift_probability,
    attributed.inputs_landed_at
from mixed as attributed
inner join {{ ref('int_customer_bounds') }} as bounds on bounds.customer_id = attributed.customer_id
