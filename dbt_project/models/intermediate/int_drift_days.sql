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
      evidence_milli_<s>   the day's log-likelihood ratio of "drifting" against "as usual" (the
                           chart of `loyalty explain`; a share stream's windows add it up)
      cum_count_<s>, cum_exposure_milli_<s>  a rate stream's running count and portfolio-normal days
      last_active_date, active_exposure_milli_<s>  the customer's last day with an event of a rate
                           stream, and each rate stream's running exposure on it: a silence still
                           going on is judged against the history before it (its usual rate and
                           every window's), so however long it lasts it never becomes the
                           customer's norm (macros/drift_streams.sql, drift_exposure_before)
      cum_capped_milli_<s> a share stream's running evidence, each day capped at drift.max_daily_evidence
    The evidence is judged over windows of the last k days (drift.window_days): per window and stream
    the log-likelihood ratio of "drifting since k days ago" against "as usual" (a rate stream's usual
    rate from its history before the window, integrated over its uncertainty: see `windowed`), then the
    log of the mixture over "all streams together or one alone" and over the windows:
      window<k>_milli      the window's mixture log-likelihood ratio (thousandths of a nat)
      evidence_milli       the mixture over the windows: the log-likelihood ratio of "drifting, since
                           some day in the windows" against "as usual"
      drift_window_days, restart_date  the window that carries most evidence and its first day: when
                           the drift most likely began
      since_restart_milli_<s>  what stream <s> contributed in that window (the drivers of a case)
      drift_probability    1 / (1 + exp(-(evidence + log prior odds))), prior odds from drift.prior_drift_share
    Every window is a difference of running integer sums, so a daily run (which looks up, per
    rebuilt day, the stored day each window starts from) and a full refresh give identical rows.
    Only days that are over are scored (drift_last_day: an event-driven run during the day leaves
    today to the next run).
    Incremental by customer-day (macros/incremental.sql). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['customer_id', 'as_of_date'],
    pre_hook="{{ prune_customer_days() }}",
    customer_batched=true,
    post_hook="{{ insert_customer_batches() }}"
) }}
-- depends_on: {{ ref('int_calendar') }}
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
{%- set windows = scoring('drift.window_days') | map('int') | list -%}
{%- set since = rebuild_floor() -%}
{#- a day the customer did something the rate streams count (two-way dialogue, an order) -#}
{%- set active_terms = [] -%}{%- for s in rate_streams -%}{%- do active_terms.append('exposed.n_' ~ s.name) -%}{%- endfor -%}
{%- set active_condition = ('(' ~ (active_terms | join(' + ')) ~ ') > 0') if active_terms else 'false' -%}
{%- set inc = is_incremental() %}

with customer_day_rows {{ inlined() }} (
    select * from {{ ref('int_customer_days') }}
),

portfolio_day_rows {{ inlined() }} (
    select * from {{ ref('int_portfolio_days') }}
),

versions as (
    select * from {{ ref('int_customer_versions') }}
),

bounds as (
    select * from {{ ref('int_customer_bounds') }}
),

rebuild as (
    {{ customer_days_to_rebuild() }}
),

customer_days as (
    -- the rebuilt days, and the day before them (today's count = running count - yesterday's)
    select
        days.customer_id,
        days.as_of_date,
        rebuild.rebuild_from,
        {% for s in streams -%}
        days.cum_drift_{{ s.name }} as cum_n_{{ s.name }},
        {% if s.kind == 'share' -%}
        days.cum_drift_{{ s.of }} as cum_base_{{ s.name }},
        {% endif -%}
        {% endfor -%}
        days.inputs_landed_at
    from customer_day_rows as days
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
    from portfolio_day_rows
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
    left join versions
        on versions.customer_id = customer_days.customer_id
       and customer_days.as_of_date >= versions.valid_from and customer_days.as_of_date < versions.valid_to
    left join portfolio_days on portfolio_days.date_day = customer_days.as_of_date
    left join portfolio_day_rows as segment_days
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
),

active as (
    -- the customer's last day with an event of a rate stream, and each rate stream's running
    -- exposure on that day: a silence that is still going on is judged against the history
    -- before it, however long it lasts, so it never becomes the customer's norm (a running
    -- maximum: exposure only grows)
    select
        exposed.*,
        {% if inc %}coalesce({% endif %}max(case when {{ active_condition }} then exposed.as_of_date end) over running{% if inc %}, base.last_active_date){% endif %} as last_active_date{{ ',' if rate_streams }}
        {% for s in rate_streams -%}
        {% if inc %}coalesce({% endif %}max(case when {{ active_condition }} then exposed.cum_exposure_milli_{{ s.name }} end) over running{% if inc %}, base.active_exposure_milli_{{ s.name }}){% endif %} as active_exposure_milli_{{ s.name }}{{ ',' if not loop.last }}
        {% endfor %}
    from exposed
    {% if inc -%}
    left join base on base.customer_id = exposed.customer_id
    {%- endif %}
    window running as (
        partition by exposed.customer_id order by exposed.as_of_date
        rows between unbounded preceding and current row
    )
)
{%- if inc %},

stored_exposure as (
    -- the stored running exposure baseline_skip_days before a rebuilt day (when that day lies
    -- before the rebuild; after it, the rebuilt series has it: baselined)
    select stored.customer_id, stored.as_of_date{% for s in rate_streams %}, stored.cum_exposure_milli_{{ s.name }}{% endfor %}
    from {{ this }} as stored
    inner join rebuild
        on rebuild.customer_id = stored.customer_id
       and stored.as_of_date < rebuild.rebuild_from
    where {{ looked_back_days('stored.as_of_date', skip, since, drift_last_day()) }}
)
{%- endif %},

baselined as (
    -- the customer's own history up to baseline_skip_days ago: counts and exposure
    select
        exposed.*,
        {% if inc -%}
        {% for s in rate_streams -%}
        coalesce(lag(exposed.cum_exposure_milli_{{ s.name }}, {{ skip }}) over customer_series,
                 exposure_back.cum_exposure_milli_{{ s.name }}, 0) as baseline_exposure_milli_{{ s.name }},
        {% endfor -%}
        {% for s in streams -%}
        {% if s.kind == 'share' -%}
        coalesce(counts_back.cum_drift_{{ s.of }}, 0) as baseline_base_{{ s.name }},
        {% endif -%}
        coalesce(counts_back.cum_drift_{{ s.name }}, 0) as baseline_n_{{ s.name }}{{ ',' if not loop.last }}
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
    from active as exposed
    {% if inc -%}
    left join stored_exposure as exposure_back
        on exposure_back.customer_id = exposed.customer_id
       and exposure_back.as_of_date = {{ add_days('exposed.as_of_date', -skip) }}
    left join customer_day_rows as counts_back
        on counts_back.customer_id = exposed.customer_id
       and counts_back.as_of_date = {{ add_days('exposed.as_of_date', -skip) }}
       and {{ looked_back_days('counts_back.as_of_date', skip, since, drift_last_day()) }}
    {%- endif %}
    window customer_series as (partition by exposed.customer_id order by exposed.as_of_date)
),

rated as (
    select
        baselined.*,
        {% for s in streams -%}
        {% if s.kind == 'share' -%}
        (prior_rate_{{ s.name }} * {{ prior_events }} + baseline_n_{{ s.name }})
            / ({{ prior_events }} + baseline_base_{{ s.name }}) as usual_rate_{{ s.name }}{{ ',' if not loop.last }}
        {% else -%}
        -- over the exposure up to the skip, without a silence that began before it and still goes on
        -- (drift_exposure_before); baseline_exposure_milli_<s> stays how long it has been watched
        (prior_rate_{{ s.name }} * {{ prior_days }} + baseline_n_{{ s.name }})
            / ({{ prior_days }} + {{ drift_exposure_before(s, skip, 'baselined.', 'baselined.baseline_exposure_milli_' ~ s.name) }} / 1000.0) as usual_rate_{{ s.name }}{{ ',' if not loop.last }}
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
    -- the day's log-likelihood ratio of "drifting" against "as usual", per stream:
    --   rate:  Poisson in n with mean expected, drifting mean ratio x expected:
    --          n ln(ratio) + (1 - ratio) expected. A quiet day adds (1 - ratio) expected for a fading
    --          stream; each event of a growing stream adds ln(ratio) less what was expected anyway.
    --   share: binomial, n of the day's base touches, usual share q = usual_rate, drifting share
    --          q' = min(0.99, ratio x q): n ln(q'/q) + (base - n) ln((1 - q')/(1 - q)).
    --          A day without any base touch is no evidence.
    select
        expected.*,
        {% for s in streams -%}
        {%- if s.kind == 'share' -%}
        {%- set q = 'usual_rate_' ~ s.name -%}
        {%- set q1 = 'least(0.99, ' ~ s.ratio ~ ' * ' ~ q ~ ')' -%}
        {%- set llr -%}
        (case when base_{{ s.name }} = 0 or {{ q }} <= 0 or {{ q }} >= 0.99 then 0
              else n_{{ s.name }} * ln({{ q1 }} / {{ q }})
                   + (base_{{ s.name }} - n_{{ s.name }}) * ln((1 - {{ q1 }}) / (1 - {{ q }})) end)
        {%- endset -%}
        {%- else -%}
        {%- set llr -%}
        (case when expected_{{ s.name }} <= 0 then 0
              else n_{{ s.name }} * ln({{ s.ratio }}) + {{ 1 - s.ratio }} * expected_{{ s.name }} end)
        {%- endset -%}
        {%- endif %}
        {{ milli(llr) }} as evidence_milli_{{ s.name }}{{ ',' if not loop.last }}
        {% endfor %}
    from expected
),

running as (
    -- running totals the windows are differences of: a share stream's daily evidence (capped at
    -- drift.max_daily_evidence, so one burst cannot open a case on its own) and a rate stream's count
    select
        evidence.*,
        {% for s in streams -%}
        {% if s.kind == 'share' -%}
        {% if inc %}coalesce(base.cum_capped_milli_{{ s.name }}, 0) + {% endif %}sum(least({{ (cap * 1000) | int }}, greatest({{ (-cap * 1000) | int }}, evidence.evidence_milli_{{ s.name }}))) over running_total as cum_capped_milli_{{ s.name }}{{ ',' if not loop.last }}
        {% else -%}
        evidence.cum_n_{{ s.name }} as cum_count_{{ s.name }}{{ ',' if not loop.last }}
        {% endif -%}
        {% endfor %}
    from evidence
    {% if inc -%}
    left join base on base.customer_id = evidence.customer_id
    {%- endif %}
    window running_total as (
        partition by evidence.customer_id order by evidence.as_of_date
        rows between unbounded preceding and current row
    )
),
{%- set back_columns = [] -%}
{%- for s in streams -%}
  {%- if s.kind == 'share' -%}{%- do back_columns.append('cum_capped_milli_' ~ s.name) -%}
  {%- else -%}{%- do back_columns.append('cum_count_' ~ s.name) -%}{%- do back_columns.append('cum_exposure_milli_' ~ s.name) -%}{%- endif -%}
{%- endfor %}
{%- if inc %}
stored_backs as (
    -- the stored days before the rebuild a window of a rebuilt day can start from (k days before
    -- it, for each k of drift.window_days): a few stored days per customer, not its last 180 days
    select stored.customer_id, stored.as_of_date{% for c in back_columns %}, stored.{{ c }}{% endfor %}
    from {{ this }} as stored
    inner join rebuild
        on rebuild.customer_id = stored.customer_id
       and stored.as_of_date < rebuild.rebuild_from
    where {{ looked_back_days('stored.as_of_date', windows, since, drift_last_day()) }}
),
{%- endif %}
backs as (
    -- each day's totals k days back: k rows back in the customer's dense daily series (lag); on a
    -- daily run the series starts at the rebuild, and a day before it is the stored day. `running`
    -- is read once: Spark plans a CTE anew at every reference, and a join of the series per window
    -- planned this model's whole chain seven times (382 table scans for a daily run of nothing)
    select
        running.*
        {%- for k in windows %}{% for c in back_columns %},
        {% if inc %}coalesce(lag(running.{{ c }}, {{ k }}) over customer_series, back{{ k }}.{{ c }}){% else %}lag(running.{{ c }}, {{ k }}) over customer_series{% endif %} as back{{ k }}_{{ c }}
        {%- endfor %}{% endfor %}
    from running
    {% if inc -%}
    {% for k in windows -%}
    left join stored_backs as back{{ k }}
        on back{{ k }}.customer_id = running.customer_id
       and back{{ k }}.as_of_date = {{ add_days('running.as_of_date', -k) }}
    {% endfor -%}
    {%- endif %}
    window customer_series as (partition by running.customer_id order by running.as_of_date)
),
observed as (
    select backs.*, {{ days_between('bounds.first_day', 'backs.as_of_date') }} as observed_days
    from backs
    inner join bounds on bounds.customer_id = backs.customer_id
),
windowed {{ computed_once() }} (
    -- per window of the last k days (drift.window_days) and stream: the log-likelihood ratio of
    -- "drifting since k days ago" against "as usual", in thousandths of a nat
    -- (macros/drift_streams.sql, drift_window_evidence)
    select
        observed.*,
        {% for k in windows -%}
        {% for s in streams -%}
        {{ drift_window_evidence(s, k, 'observed.', 'observed.back' ~ k ~ '_') }} as w{{ k }}_milli_{{ s.name }}{{ ',' if not (loop.last and k == windows[-1]) }}
        {% endfor -%}
        {% endfor %}
    from observed
),
{%- set configured = drift_configured_weights(streams) -%}
{%- set fits = drift_mixture_fits() if scoring('drift.learned_mixture') else none %}
{%- if fits is not none %}
mixture_fits as (
    -- the learned weights of each fit (config/scoring.yml's where a fit has no weight for a stream)
    select
        effective_from,
        {% for name, weight in configured.items() -%}
        coalesce(max(case when alternative = '{{ name }}' then weight end), {{ weight }}) as weight_{{ name }}{{ ',' if not loop.last }}
        {% endfor %}
    from {{ fits }}
    group by effective_from
),
mixture_spans as (
    select mixture_fits.*, lead(effective_from) over (order by effective_from) as effective_until
    from mixture_fits
),
mixture_days as (
    -- per day the fit in effect: the latest that took effect on or before it (a fit takes effect
    -- on the first day not yet scored, so a stored day never changes its weights)
    select calendar.date_day, mixture_spans.*
    from {{ ref('int_calendar') }} as calendar
    inner join mixture_spans
        on mixture_spans.effective_from <= calendar.date_day
       and (mixture_spans.effective_until is null or calendar.date_day < mixture_spans.effective_until)
),
{%- endif %}
mixed {{ computed_once() }} (
    -- when the drift began, and whether it shows in all streams together (a fade) or in one alone
    -- (a champion leaves and the dialogue goes on with the wrong people), is not known in advance:
    -- per window, the log of the mixture likelihood ratio over these alternatives, weighted by how
    -- the portfolio's drifts have shown so far (the population step's fit, mixture_days) or, before
    -- the first fit, by drift.single_stream_share; over the windows, their mixture with equal weights
    select
        windowed.*,
        {% if fits is not none -%}
        mixture_days.effective_from as mixture_effective_from,
        {% else -%}
        cast(null as date) as mixture_effective_from,
        {% endif -%}
        {% for k in windows -%}
        {%- set parts = [] -%}{%- for s in streams -%}{%- do parts.append('windowed.w' ~ k ~ '_milli_' ~ s.name) -%}{%- endfor -%}
        {%- set weight = {} -%}
        {%- for name, w in configured.items() -%}
          {%- do weight.update({name: ('coalesce(mixture_days.weight_' ~ name ~ ', ' ~ w ~ ')') if fits is not none else w}) -%}
        {%- endfor -%}
        {%- set terms = [('(' ~ (parts | join(' + ')) ~ ')', weight['all'])] -%}
        {%- for s in streams -%}{%- do terms.append(('windowed.w' ~ k ~ '_milli_' ~ s.name, weight[s.name])) -%}{%- endfor -%}
        {{ log_sum_exp_milli(terms) }} as window{{ k }}_milli{{ ',' if not loop.last }}
        {% endfor %}
    from windowed
    {% if fits is not none -%}
    left join mixture_days on mixture_days.date_day = windowed.as_of_date
    {%- endif %}
),
weighed {{ computed_once() }} (
    select
        mixed.*,
        {%- set terms = [] -%}
        {%- for k in windows -%}{%- do terms.append(('mixed.window' ~ k ~ '_milli', 1.0 / (windows | length))) -%}{%- endfor %}
        {{ log_sum_exp_milli(terms) }} as evidence_milli,
        -- the window that carries most of the evidence: when the drift most likely began (drivers)
        case
            when mixed.observed_days < {{ (windows | min) + skip }} then null
            {% for k in windows -%}
            when mixed.window{{ k }}_milli = greatest({% for j in windows %}mixed.window{{ j }}_milli{{ ', ' if not loop.last }}{% endfor %}) then {{ k }}
            {% endfor -%}
        end as drift_window_days
    from mixed
)
select
    weighed.customer_id,
    weighed.as_of_date,
    weighed.segment,
    weighed.observed_days,
    weighed.season_index_milli,
    weighed.last_active_date,
    {% for s in rate_streams -%}
    weighed.cum_exposure_milli_{{ s.name }},
    weighed.active_exposure_milli_{{ s.name }},
    weighed.cum_count_{{ s.name }},
    cast(weighed.prior_rate_{{ s.name }} as {{ type_double() }}) as prior_rate_{{ s.name }},
    {% endfor -%}
    {% for s in streams -%}
    weighed.n_{{ s.name }},
    {% if s.kind == 'share' -%}
    weighed.base_{{ s.name }},
    weighed.cum_capped_milli_{{ s.name }},
    {% endif -%}
    cast(weighed.usual_rate_{{ s.name }} as {{ type_double() }}) as usual_rate_{{ s.name }},
    cast(weighed.expected_{{ s.name }} as {{ type_double() }}) as expected_{{ s.name }},
    weighed.evidence_milli_{{ s.name }},
    case weighed.drift_window_days
        {% for k in windows -%}
        when {{ k }} then weighed.w{{ k }}_milli_{{ s.name }}
        {% endfor -%}
    end as since_restart_milli_{{ s.name }},
    {% endfor -%}
    {% for k in windows -%}
    weighed.window{{ k }}_milli,
    {% endfor -%}
    weighed.evidence_milli,
    weighed.mixture_effective_from,
    weighed.drift_window_days,
    {{ add_days('weighed.as_of_date', '-weighed.drift_window_days') }} as restart_date,
    cast(1.0 / (1.0 + exp(-(weighed.evidence_milli / 1000.0 + ln(cast({{ share }} as {{ type_double() }}) / (1 - {{ share }}))))) as {{ type_double() }}) as drift_probability,
    weighed.inputs_landed_at
from weighed
