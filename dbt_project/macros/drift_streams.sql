{#- The streams of the drift model (config/scoring.yml `drift.streams`): one place for the models
    that count them (int_customer_days per customer, int_portfolio_days per segment). -#}

{% macro drift_stream_conditions() -%}
  {#- Every stream the model can watch, as a condition on fct_touchpoints, and its kind:
      rate   how often it happens: Poisson counts per portfolio-normal day. The rate streams are
             disjoint (no touch in two of them), so their evidence adds up without counting a
             touch twice: a collection call is friction, not dialogue.
      share  which part of a base count it is (of): binomial given the base, so independent of
             how much contact there is. Who we talk to (senior: executives and decision makers
             among the two-way dialogue), how contact goes (friction among all contacts) and what
             the customer answers (detractors, promoters among survey answers) are shares: a
             customer who stops calling also stops having unanswered calls, and that silence is
             the rate streams' evidence, not evidence against a drift; a champion who leaves
             shows as dialogue that goes on, with the wrong people.
      Bases: contacts (every touchpoint), surveys (survey answers with a score), visits (service
      visits: unresolved ones are a share of them), commercial (calls,
      e-mails and meetings of sales and management, either way: the relationship's stakeholders
      are reached there; a service technician meets the users).
      int_customer_days keeps a running count cum_drift_<name> of each (customer_day_measures). -#}
  {%- set senior_roles = "('executive', 'decision_maker')" -%}
  {#- the commercial relationship: calls, e-mails and meetings of sales and management, either way -#}
  {%- set commercial = "event_type in ('call', 'email', 'meeting') and department in ('sales', 'management') and contact_kind <> 'friction'" -%}
  {{ return({
    'dialogue': {'kind': 'rate', 'condition': "is_two_way_dialogue and contact_kind <> 'friction'"},
    'senior': {'kind': 'share', 'of': 'commercial', 'condition': commercial ~ " and contact_role in " ~ senior_roles},
    'orders': {'kind': 'rate', 'condition': "event_type = 'order'"},
    'friction': {'kind': 'share', 'of': 'contacts', 'condition': "contact_kind = 'friction'"},
    'unresolved': {'kind': 'share', 'of': 'visits', 'condition': "event_type = 'service_visit' and not coalesce(resolved, false)"},
    'detractors': {'kind': 'share', 'of': 'surveys', 'condition': "event_type = 'survey_response' and nps_score <= " ~ scoring('loyalty.detractor_max')},
    'promoters': {'kind': 'share', 'of': 'surveys', 'condition': "event_type = 'survey_response' and nps_score >= " ~ scoring('loyalty.promoter_min')},
    'contacts': {'kind': 'base', 'condition': 'true'},
    'surveys': {'kind': 'base', 'condition': "event_type = 'survey_response' and nps_score is not null"},
    'visits': {'kind': 'base', 'condition': "event_type = 'service_visit'"},
    'commercial': {'kind': 'base', 'condition': commercial},
  }) }}
{%- endmacro %}

{% macro drift_streams() -%}
  {#- The streams config/scoring.yml `drift.streams` switches on, in its order: name, kind, of
      (a share's base), event_condition, ratio (drifting_ratio) and label. -#}
  {%- set defined = drift_stream_conditions() -%}
  {%- set streams = [] -%}
  {%- for name, spec in scoring('drift.streams').items() -%}
    {%- if name not in defined or defined[name]['kind'] == 'base' -%}
      {{ exceptions.raise_compiler_error("config/scoring.yml drift.streams." ~ name ~ ": unknown stream") }}
    {%- endif -%}
    {%- do streams.append({'name': name, 'kind': defined[name]['kind'], 'of': defined[name].get('of'),
                           'event_condition': defined[name]['condition'],
                           'ratio': spec['drifting_ratio'] | float, 'label': spec['label']}) -%}
  {%- endfor -%}
  {{ return(streams) }}
{%- endmacro %}

{% macro drift_counted() -%}
  {#- What the portfolio counts per day and segment: every stream and base the model knows, as
      (name, condition), whether config/scoring.yml switches it on or not, so that switching one
      on needs no new column in the append-only int_portfolio_days. -#}
  {%- set out = [] -%}
  {%- for name, spec in drift_stream_conditions().items() -%}{%- do out.append((name, spec['condition'])) -%}{%- endfor -%}
  {{ return(out) }}
{%- endmacro %}

{% macro milli(expr) -%}
  {#- a quantity in integer thousandths: running sums of it are exact and do not depend on
      summation order, so a daily run and a full refresh give identical rows -#}
  cast({{ round_half_away('(' ~ expr ~ ') * 1000') }} as {{ dbt.type_bigint() }})
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
    {{ hook_sql(rebuilt_rows_statements('1 = 1' if stored is none else 'date_day > least(' ~ stored ~ ', ' ~ drift_last_day() ~ ')')
                + delete_rows(this, 'date_day > ' ~ drift_last_day())) }}
  {%- else -%}
    select 1
  {%- endif -%}
{%- endmacro %}

{% macro stream_evidence(s) -%}
  {#- The day's log-likelihood ratio of "drifting" against "as usual" for stream `s`.
      rate:  Poisson in n_<s> with mean expected_<s>, drifting mean ratio x expected:
             n ln(ratio) + (1 - ratio) expected. A quiet day adds (1 - ratio) expected for a fading
             stream; each event of a growing stream adds ln(ratio) less what was expected anyway.
      share: binomial, n_<s> of the day's base_<s> touches, usual share usual_rate_<s> (q),
             drifting share q' = min(0.99, ratio x q): n ln(q'/q) + (base - n) ln((1 - q')/(1 - q)).
             A day without any base touch is no evidence. -#}
  {%- set rho = s.ratio -%}
  {%- if s.kind == 'share' -%}
  {%- set q = 'usual_rate_' ~ s.name -%}
  {%- set q1 = 'least(0.99, ' ~ rho ~ ' * ' ~ q ~ ')' -%}
  (case when base_{{ s.name }} = 0 or {{ q }} <= 0 or {{ q }} >= 0.99 then 0
        else n_{{ s.name }} * ln({{ q1 }} / {{ q }})
             + (base_{{ s.name }} - n_{{ s.name }}) * ln((1 - {{ q1 }}) / (1 - {{ q }})) end)
  {%- else -%}
  (case when expected_{{ s.name }} <= 0 then 0
        else n_{{ s.name }} * ln({{ rho }}) + {{ 1 - rho }} * expected_{{ s.name }} end)
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
  {{ alias }}.cum_drift_{{ s.name }}
{%- endmacro %}

{% macro action_needed_rules() -%}
  {#- The alert rules that state facts needing action now (not churn predictions): those of
      config/scoring.yml `alerts.rules` without a `reason`, by name (the order of a mapping that
      reaches dbt as a var is not the file's on every path: a fixed order keeps the SQL, and the
      rows it writes, the same on every run) (loyalty_monitor.scoring.action_rules). -#}
  {%- set rules = scoring('alerts.rules') -%}
  {%- if rules is not mapping -%}{{ return([]) }}{%- endif -%}
  {%- set out = [] -%}
  {%- for name, spec in rules.items() | sort if spec.get('reason') is none -%}{%- do out.append(name) -%}{%- endfor -%}
  {{ return(out) }}
{%- endmacro %}

{% macro case_reason_rules() -%}
  {#- The scorecard rules, as (rule, words) pairs: those of config/scoring.yml `alerts.rules` with a
      `reason`, the words a churn-risk case lists when the rule held on its opening day
      (loyalty_monitor.scoring.reason_rules), by name: the reasons' order in a case must not depend
      on which path the var took (an event-driven run and a full refresh listed them differently). -#}
  {%- set rules = scoring('alerts.rules') -%}
  {%- if rules is not mapping -%}{{ return([]) }}{%- endif -%}
  {%- set out = [] -%}
  {%- for name, spec in rules.items() | sort if spec.get('reason') -%}{%- do out.append((name, spec['reason'])) -%}{%- endfor -%}
  {{ return(out) }}
{%- endmacro %}

{% macro drift_last_day() -%}
  {#- The last day the drift model scores: the as-of date, but never a day that is not over yet
      (UTC). An event-driven run during the day builds the rest up to today; the drift model's
      population parameters are written once per day and kept (int_portfolio_days), so they must
      not be estimated from half a day. Silence is judged over weeks: a day of latency. -#}
  {%- if not execute -%}{{ return(as_of_date_literal()) }}{%- endif -%}
  {%- set yesterday = (modules.datetime.datetime.utcnow().date() - modules.datetime.timedelta(days=1)).isoformat() -%}
  {{ return("least(" ~ as_of_date_literal() ~ ", cast('" ~ yesterday ~ "' as date))") }}
{%- endmacro %}

{% macro log_sum_exp_milli(terms) -%}
  {#- log(sum of w x exp(x)) over `terms` [(x, w)], x in integer thousandths of a nat, as integer
      thousandths: the log of a mixture of likelihood ratios. Computed as max + log(sum of
      w x exp(x - max)), so that large x do not overflow. -#}
  {%- set top -%}greatest({% for expr, w in terms %}{{ expr }}{{ ', ' if not loop.last }}{% endfor %}){%- endset -%}
  {%- set mixed -%}
  {{ top }} + 1000 * ln(
      {%- for expr, w in terms %}
      {{ w }} * exp(({{ expr }} - {{ top }}) / 1000.0){{ ' +' if not loop.last }}
      {%- endfor %}
  )
  {%- endset %}
  cast({{ round_half_away(mixed) }} as {{ dbt.type_bigint() }})
{%- endmacro %}
