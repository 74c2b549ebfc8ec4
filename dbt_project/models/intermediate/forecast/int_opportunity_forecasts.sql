{#- The forecasts the audit judges: every probability an account manager stated on an open
    opportunity (each open state, int_opportunity_states), once the deal has closed: outcome 1 if
    it was won, 0 if lost. A deal still open is not judged yet. Each forecast is the manager's who
    stated it (the state's account_manager_id); its band is the calibration band of its stated
    probability (config/scoring.yml forecast.band_edges). slipped: the deal closed more than
    forecast.slip_grace_days after the close date first expected. -#}

select
    states.event_id,
    states.opportunity_id,
    states.customer_id,
    states.account_manager_id,
    states.event_date as stated_on,
    states.pipeline_stage,
    states.stated_probability,
    {{ forecast_band('states.stated_probability', 'number') }} as band_number,
    {{ forecast_band('states.stated_probability', 'low') }} as band_low,
    {{ forecast_band('states.stated_probability', 'high') }} as band_high,
    states.outcome,
    states.deal_status,
    states.deal_closed_on,
    states.deal_close_known_on,
    {{ quarter_start('states.deal_closed_on') }} as close_quarter_start,
    states.first_expected_close_date,
    (states.deal_closed_on > {{ add_days('states.first_expected_close_date', scoring('forecast.slip_grace_days') | int) }}) as slipped,
    {{ days_between('states.first_expected_close_date', 'states.deal_closed_on') }} as close_days_after_first_expected,
    states.deal_final_amount,
    states.deal_currency,
    states.deal_final_amount * {{ reporting_rate('states.deal_currency') }} as deal_final_amount_reporting
from {{ ref('int_opportunity_states') }} as states
where states.status = 'open'
  and states.stated_probability is not null
  and states.outcome is not null
  and states.event_date <= states.deal_close_known_on
