{#- The forecasts the audit judges: every probability an account manager stated on an open
    opportunity (each open state, int_opportunity_states), once the deal has closed: outcome 1 if
    it was won, 0 if lost. A deal still open is not judged yet. Each forecast is the manager's who
    stated it (the state's account_manager_id); its band is the calibration band of its stated
    probability (config/scoring.yml forecast.band_edges). slipped: the deal closed more than
    forecast.slip_grace_days after the close date first expected. A band holds the probabilities from
    its low edge up to its high edge; a value on an inner edge belongs to the band above it, 1 to the
    last band. -#}
{%- set edges = scoring('forecast.band_edges') or [0, 1] -%}

with states as (
    select * from {{ ref('int_opportunity_states') }}
)

select
    states.event_id,
    states.opportunity_id,
    states.customer_id,
    states.account_manager_id,
    states.event_date as stated_on,
    states.pipeline_stage,
    states.stated_probability,
    {% for what in ['number', 'low', 'high'] -%}
    {{ 'cast(' if what != 'number' }}case
        {%- for i in range(1, edges | length - 1) %}
        when states.stated_probability < {{ edges[i] }} then {{ {'number': i, 'low': edges[i - 1], 'high': edges[i]}[what] }}
        {%- endfor %}
        else {{ {'number': edges | length - 1, 'low': edges[-2], 'high': edges[-1]}[what] }}
    end{{ ' as ' ~ type_double() ~ ')' if what != 'number' }} as band_{{ what }},
    {% endfor -%}
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
from states
where states.status = 'open'
  and states.stated_probability is not null
  and states.outcome is not null
  and states.event_date <= states.deal_close_known_on
