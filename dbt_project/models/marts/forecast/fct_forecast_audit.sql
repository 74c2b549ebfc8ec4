{#- The forecast audit (article 004: the pipeline audited like the accounts): per account manager
    (and the company: scope company, account_manager_id null) and per period (each quarter in which
    deals closed or that began with a pipeline, and the track record), over the forecasts of the
    deals that closed in the period (int_forecast_periods):
      stated_mean, realised_rate  mean stated probability and realised win rate over the forecasts;
      optimism_bias              stated_mean - realised_rate (> 0: optimistic), with its standard
                                 error counting each deal once (its forecasts share one outcome);
      brier_score                mean (stated - outcome)^2 (0 is perfect, 0.25 a coin at 50 %), and
                                 Murphy's parts over the bands: reliability (sum n_k/N (stated_k -
                                 realised_k)^2: miscalibration, 0 is perfect), resolution (sum n_k/N
                                 (realised_k - realised)^2: how well the bands separate won from lost)
                                 and uncertainty (realised (1 - realised)); within-band spread makes
                                 brier differ slightly from reliability - resolution + uncertainty;
      slipped_deals, slipped_share, mean_slip_days  closed deals that closed more than
                                 forecast.slip_grace_days after the close date first expected;
      won_value_reporting        what the period's closed deals won, in the reporting currency;
      pipeline_*                 quarter rows: the pipeline open at the quarter's start and expected
                                 to close by its end (overdue included), weighted by the stated
                                 probabilities and by each manager's track record at that stage as
                                 known then (int_forecast_snapshots), next to what was won;
      judgement                  'too few to judge' below forecast.min_closed_deals closed deals;
                                 else 'optimistic' / 'pessimistic' when the bias is at least
                                 forecast.bias_tolerance from zero and significance_z standard
                                 errors away from it, 'calibrated' within the tolerance, and
                                 'unclear' when beyond it but not yet significant. -#}

{%- set f = scoring('forecast') -%}
{%- set keys = ['scope', 'account_manager_id', 'period_type', 'period_start', 'period_end'] -%}

with forecast_periods as (
    select * from {{ ref('int_forecast_periods') }}
),

calibration_bands as (
    select * from {{ ref('fct_forecast_calibration') }}
),

snapshots as (
    select * from {{ ref('int_forecast_snapshots') }}
),

periods as (
    select
        scope, scope_manager_id as account_manager_id, period_type, period_start, period_end,
        opportunity_id, stated_probability, outcome, slipped, close_days_after_first_expected,
        deal_final_amount_reporting
    from forecast_periods
),

deals as (
    select
        {{ keys | join(', ') }},
        opportunity_id,
        max(outcome) as outcome,
        count(*) as forecasts,
        sum(stated_probability - outcome) as residual_sum,
        max(case when slipped then 1 else 0 end) as slipped,
        max(close_days_after_first_expected) as slip_days,
        max(deal_final_amount_reporting) as won_value
    from periods
    group by {{ keys | join(', ') }}, opportunity_id
),

judged as (
    select
        {{ keys | join(', ') }},
        count(*) as closed_deals,
        sum(outcome) as won_deals,
        sum(forecasts) as forecasts,
        cast(sum(residual_sum) as {{ type_double() }}) / sum(forecasts) as optimism_bias,
        sum(slipped) as slipped_deals,
        cast(avg(case when slipped = 1 then slip_days end) as {{ type_double() }}) as mean_slip_days,
        sum(case when outcome = 1 then won_value end) as won_value_reporting
    from deals
    group by {{ keys | join(', ') }}
),

spread as (
    -- the bias's standard error, each deal once: sqrt(sum_d (residuals_d - bias x forecasts_d)^2) / N
    select
        {% for k in keys %}deals.{{ k }}, {% endfor %}
        sqrt(sum((deals.residual_sum - judged.optimism_bias * deals.forecasts)
                 * (deals.residual_sum - judged.optimism_bias * deals.forecasts))) / max(judged.forecasts) as bias_standard_error
    from deals
    inner join judged on {% for k in keys %}{{ 'and ' if not loop.first }}{{ null_safe_equal('deals.' ~ k, 'judged.' ~ k) }} {% endfor %}
    group by {% for k in keys %}deals.{{ k }}{{ ', ' if not loop.last }}{% endfor %}
),

bands as (
    select
        {% for k in keys %}bands.{{ k }}, {% endfor %}
        sum(bands.sum_stated) / sum(bands.forecasts) as stated_mean,
        cast(sum(bands.sum_outcome) as {{ type_double() }}) / sum(bands.forecasts) as realised_rate,
        sum(bands.sum_squared_error) / sum(bands.forecasts) as brier_score,
        sum(bands.forecasts * (bands.stated_mean - bands.realised_rate) * (bands.stated_mean - bands.realised_rate))
            / sum(bands.forecasts) as reliability
    from calibration_bands as bands
    group by {% for k in keys %}bands.{{ k }}{{ ', ' if not loop.last }}{% endfor %}
),

resolution as (
    select
        {% for k in keys %}calibration.{{ k }}, {% endfor %}
        sum(calibration.forecasts * (calibration.realised_rate - bands.realised_rate) * (calibration.realised_rate - bands.realised_rate))
            / sum(calibration.forecasts) as resolution
    from calibration_bands as calibration
    inner join bands on {% for k in keys %}{{ 'and ' if not loop.first }}{{ null_safe_equal('calibration.' ~ k, 'bands.' ~ k) }} {% endfor %}
    group by {% for k in keys %}calibration.{{ k }}{{ ', ' if not loop.last }}{% endfor %}
),

pipeline_rows as (
    -- each quarter's opening pipeline expected to close by the quarter's end (overdue included)
    select 'manager' as scope, account_manager_id, snapshot_date, amount_reporting,
           stated_probability, track_record_probability
    from snapshots
    where snapshot_kind = 'quarter_start' and expected_close_date <= {{ quarter_end('snapshot_date') }}
    union all
    select 'company' as scope, cast(null as {{ dbt.type_string() }}) as account_manager_id, snapshot_date,
           amount_reporting, stated_probability, track_record_probability
    from snapshots
    where snapshot_kind = 'quarter_start' and expected_close_date <= {{ quarter_end('snapshot_date') }}
),

pipeline as (
    select
        scope, account_manager_id, 'quarter' as period_type, snapshot_date as period_start,
        {{ quarter_end('snapshot_date') }} as period_end,
        count(*) as pipeline_deals,
        cast(sum(amount_reporting) as {{ type_double() }}) as pipeline_value_reporting,
        cast(sum(amount_reporting * stated_probability) as {{ type_double() }}) as pipeline_stated_value,
        cast(sum(amount_reporting * track_record_probability) as {{ type_double() }}) as pipeline_track_record_value
    from pipeline_rows
    group by scope, account_manager_id, snapshot_date
),

keyset as (
    select {{ keys | join(', ') }} from judged
    union
    select {{ keys | join(', ') }} from pipeline
)

select
    {% for k in keys %}keyset.{{ k }},
    {% endfor -%}
    cast(coalesce(judged.closed_deals, 0) as {{ dbt.type_bigint() }}) as closed_deals,
    cast(coalesce(judged.won_deals, 0) as {{ dbt.type_bigint() }}) as won_deals,
    cast(coalesce(judged.forecasts, 0) as {{ dbt.type_bigint() }}) as forecasts,
    cast(bands.stated_mean as {{ type_double() }}) as stated_mean,
    cast(bands.realised_rate as {{ type_double() }}) as realised_rate,
    cast(judged.optimism_bias as {{ type_double() }}) as optimism_bias,
    cast(spread.bias_standard_error as {{ type_double() }}) as bias_standard_error,
    cast(bands.brier_score as {{ type_double() }}) as brier_score,
    cast(bands.reliability as {{ type_double() }}) as reliability,
    cast(resolution.resolution as {{ type_double() }}) as resolution,
    cast(bands.realised_rate * (1 - bands.realised_rate) as {{ type_double() }}) as uncertainty,
    cast(coalesce(judged.slipped_deals, 0) as {{ dbt.type_bigint() }}) as slipped_deals,
    cast({{ safe_ratio('judged.slipped_deals', 'judged.closed_deals') }} as {{ type_double() }}) as slipped_share,
    judged.mean_slip_days,
    cast(judged.won_value_reporting as {{ type_double() }}) as won_value_reporting,
    pipeline.pipeline_deals,
    pipeline.pipeline_value_reporting,
    pipeline.pipeline_stated_value,
    pipeline.pipeline_track_record_value,
    {{ sql_string(scoring('reporting.currency')) }} as reporting_currency,
    case
        when coalesce(judged.closed_deals, 0) < {{ f['min_closed_deals'] | int }} then 'too few to judge'
        when abs(judged.optimism_bias) < {{ f['bias_tolerance'] }} then 'calibrated'
        when judged.optimism_bias > 0 and judged.optimism_bias - {{ f['significance_z'] }} * coalesce(spread.bias_standard_error, 0) > 0 then 'optimistic'
        when judged.optimism_bias < 0 and judged.optimism_bias + {{ f['significance_z'] }} * coalesce(spread.bias_standard_error, 0) < 0 then 'pessimistic'
        else 'unclear'
    end as judgement
from keyset
{%- for name in ['judged', 'spread', 'bands', 'resolution', 'pipeline'] %}
left join {{ name }}
    on {% for k in keys %}{{ 'and ' if not loop.first }}{{ null_safe_equal(name ~ '.' ~ k, 'keyset.' ~ k) }} {% endfor %}
{%- endfor %}
