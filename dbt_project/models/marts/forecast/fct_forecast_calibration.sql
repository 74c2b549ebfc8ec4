{#- The calibration table: per account manager (scope manager) and for the whole company (scope
    company, account_manager_id null), per period (each quarter in which deals closed, and the
    track record: int_forecast_periods) and per probability band (config/scoring.yml
    forecast.band_edges): how many forecasts, the mean stated probability and the realised win
    rate. A calibrated forecaster's realised rate equals its stated mean in every band (the
    diagonal of the calibration chart). enough_forecasts: at least forecast.min_band_forecasts
    forecasts in the band, so its realised rate is worth showing. The sums let a reader
    aggregate bands or periods exactly (Brier score = sum_squared_error / forecasts). -#}

with periods as (
    select * from {{ ref('int_forecast_periods') }}
)

select
    scope,
    scope_manager_id as account_manager_id,
    period_type,
    period_start,
    period_end,
    band_number,
    band_low,
    band_high,
    cast(count(*) as {{ dbt.type_bigint() }}) as forecasts,
    cast(count(distinct opportunity_id) as {{ dbt.type_bigint() }}) as deals,
    cast(avg(stated_probability) as {{ type_double() }}) as stated_mean,
    cast(avg(cast(outcome as {{ type_double() }})) as {{ type_double() }}) as realised_rate,
    cast(sum(stated_probability) as {{ type_double() }}) as sum_stated,
    cast(sum(outcome) as {{ dbt.type_bigint() }}) as sum_outcome,
    cast(sum((stated_probability - outcome) * (stated_probability - outcome)) as {{ type_double() }}) as sum_squared_error,
    count(*) >= {{ scoring('forecast.min_band_forecasts') | int }} as enough_forecasts
from periods
group by scope, scope_manager_id, period_type, period_start, period_end, band_number, band_low, band_high
