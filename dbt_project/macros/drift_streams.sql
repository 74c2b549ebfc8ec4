{#- The streams of the drift model (config/scoring.yml `drift.streams`): one place for the models
    that count them (int_customer_days per customer, int_portfolio_days per segment). -#}

{% macro drift_stream_conditions() -%}
  {#- Every stream the model can watch, as a condition on fct_touchpoints. The streams are
      disjoint (no touchpoint is in two of them), so that the evidence of each adds up without
      counting one touch twice: a collection call is friction, not dialogue; dialogue with an
      executive or decision maker is senior, not dialogue. int_customer_days keeps a running count
      cum_drift_<name> of each (macros/customer_day_measures.sql). -#}
  {%- set senior_roles = "('executive', 'decision_maker')" -%}
  {{ return({
    'dialogue': "is_two_way_dialogue and contact_kind <> 'friction' and coalesce(contact_role, 'other') not in " ~ senior_roles,
    'senior': "is_two_way_dialogue and contact_kind <> 'friction' and contact_role in " ~ senior_roles,
    'orders': "event_type = 'order'",
    'friction': "contact_kind = 'friction'",
    'detractors': "event_type = 'survey_response' and nps_score <= " ~ scoring('loyalty.detractor_max'),
    'promoters': "event_type = 'survey_response' and nps_score >= " ~ scoring('loyalty.promoter_min'),
  }) }}
{%- endmacro %}

{% macro drift_streams() -%}
  {#- The streams config/scoring.yml `drift.streams` switches on, in its order, each with its
      condition, drifting_rate_ratio and label. -#}
  {%- set defined = drift_stream_conditions() -%}
  {%- set streams = [] -%}
  {%- for name, spec in scoring('drift.streams').items() -%}
    {%- if name not in defined -%}
      {{ exceptions.raise_compiler_error("config/scoring.yml drift.streams." ~ name ~ ": unknown stream (known: " ~ defined.keys() | join(', ') ~ ")") }}
    {%- endif -%}
    {%- do streams.append({'name': name, 'event_condition': defined[name], 'ratio': spec['drifting_rate_ratio'] | float,
                           'label': spec['label']}) -%}
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
      for stream `s`, Poisson in n_<s> with mean expected_<s>: n ln(ratio) + (1 - ratio) expected.
      A quiet day adds (1 - ratio) expected for a fading stream; each event of a growing stream
      adds ln(ratio) less what was expected anyway. -#}
  {%- set rho = s.ratio -%}
  (case when expected_{{ s.name }} <= 0 then 0
        else n_{{ s.name }} * ln({{ rho }}) + {{ 1 - rho }} * expected_{{ s.name }} end)
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
  {{ alias }}.cum_drift_{{ s.name }}
{%- endmacro %}

{% macro action_needed_rules() -%}
  {#- The alert rules that state facts needing action now (not churn predictions), enabled in
      config/scoring.yml. -#}
  {%- set rules = scoring('alerts.rules') -%}
  {{ return(['dunning_escalation', 'open_high_complaint'] | select('in', rules.keys() | list) | list) }}
{%- endmacro %}
