{#- The streams of the drift model (config/scoring.yml `drift.streams`), one place for the models
    that count them:
      columns          the int_customer_days running counts (cum_*) whose sum is the stream's
                       running count (stream_count(s, alias) writes the sum)
      event_condition  which fct_touchpoints rows belong to it (the portfolio's daily totals)
      per_day          true when the stream counts days (at most one per customer-day), not events
    Dialogue counts days with a two-way dialogue (several calls on one day are one conversation);
    the others count events. -#}

{% macro drift_streams() -%}
  {%- set defined = {
    'dialogue': {'columns': ['cum_dialogue_days'], 'event_condition': 'is_two_way_dialogue', 'per_day': true},
    'senior': {'columns': ['cum_role_executive', 'cum_role_decision_maker'],
               'event_condition': "is_two_way_dialogue and contact_role in ('executive', 'decision_maker')", 'per_day': false},
    'orders': {'columns': ['cum_orders'], 'event_condition': "event_type = 'order'", 'per_day': false},
    'friction': {'columns': ['cum_friction'], 'event_condition': "contact_kind = 'friction'", 'per_day': false},
    'detractors': {'columns': ['cum_detractors'],
                   'event_condition': "event_type = 'survey_response' and nps_score <= " ~ scoring('loyalty.detractor_max'),
                   'per_day': false},
  } -%}
  {%- set streams = [] -%}
  {%- for name, spec in scoring('drift.streams').items() -%}
    {%- if name not in defined -%}
      {{ exceptions.raise_compiler_error("config/scoring.yml drift.streams." ~ name ~ ": unknown stream (known: " ~ defined.keys() | join(', ') ~ ")") }}
    {%- endif -%}
    {%- do streams.append(dict(defined[name], name=name, ratio=spec['drifting_rate_ratio'] | float,
                               label=spec['label'])) -%}
  {%- endfor -%}
  {{ return(streams) }}
{%- endmacro %}

{% macro milli(expr) -%}
  {#- a quantity in integer thousandths: running sums of it are exact and do not depend on
      summation order, so a daily run and a full refresh give identical rows -#}
  cast(round({{ expr }} * 1000) as {{ dbt.type_bigint() }})
{%- endmacro %}

{% macro portfolio_days_stored_until() -%}
  {#- The newest day int_portfolio_days holds, as a date literal (none when empty). -#}
  {%- if not execute -%}{{ return(none) }}{%- endif -%}
  {%- set value = run_query("select max(date_day) from " ~ this).columns[0].values()[0] -%}
  {%- if value is none -%}{{ return(none) }}{%- endif -%}
  {{ return("cast('" ~ value.strftime('%Y-%m-%d') ~ "' as date)") }}
{%- endmacro %}

{% macro prune_portfolio_days() -%}
  {#- pre-hook: a backfill (as-of date moved back) drops the days after it; they are estimated
      again when a run reaches them. -#}
  {%- if is_incremental() -%}
    {%- set stored = portfolio_days_stored_until() -%}
    {{ record_rebuilt_rows('1 = 1' if stored is none else 'date_day > least(' ~ stored ~ ', ' ~ as_of_date_literal() ~ ')') }}
    delete from {{ this }} where date_day > {{ as_of_date_literal() }}
  {%- else -%}
    select 1
  {%- endif -%}
{%- endmacro %}

{% macro stream_evidence(s) -%}
  {#- The day's log-likelihood ratio of "drifting" (rate x drifting_rate_ratio) against "as usual"
      for stream `s`, from n_<s> and expected_<s>. Event streams are Poisson:
      n ln(ratio) + (1 - ratio) expected. A day stream (dialogue days) is Bernoulli with
      P(day) = 1 - exp(-expected): a quiet day adds (1 - ratio) expected, a dialogue day
      ln((1 - exp(-ratio expected)) / (1 - exp(-expected))). -#}
  {%- set rho = s.ratio -%}
  {%- set n = 'n_' ~ s.name -%}
  {%- set e = 'expected_' ~ s.name -%}
  {%- if s.per_day -%}
  (case when {{ e }} <= 0 then 0
        when {{ n }} > 0 then ln((1 - exp(-{{ rho }} * {{ e }})) / (1 - exp(-{{ e }})))
        else {{ 1 - rho }} * {{ e }} end)
  {%- else -%}
  (case when {{ e }} <= 0 then 0 else {{ n }} * ln({{ rho }}) + {{ 1 - rho }} * {{ e }} end)
  {%- endif -%}
{%- endmacro %}

{% macro reporting_rate(currency_expr) -%}
  {#- Units of the reporting currency per unit of `currency_expr` (config/scoring.yml `reporting.rates`);
      null for a currency without a rate, so it is never silently counted at 1:1. -#}
  (case {{ currency_expr }}
    {%- for code, rate in scoring('reporting.rates').items() %}
    when '{{ code }}' then {{ rate }}
    {%- endfor %}
  end)
{%- endmacro %}

{% macro stream_count(s, alias) -%}
  {#- the running count of stream `s` on the int_customer_days row `alias` -#}
  ({% for column in s.columns %}{{ alias }}.{{ column }}{{ ' + ' if not loop.last }}{% endfor %})
{%- endmacro %}
