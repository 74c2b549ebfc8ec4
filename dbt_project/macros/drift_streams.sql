{#- The streams of the drift model (config/scoring.yml `drift.streams`): one place for the models
    that count them (int_customer_days per customer, int_portfolio_days per segment). -#}

{% macro drift_stream_conditions() -%}
  {#- Every stream the model can watch, as a condition on int_touchpoints, and its kind:
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
      int_customer_days keeps a running count cum_drift_<name> of each. -#}
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

{% macro drift_window_evidence(s, k, now, back) -%}
  {#- The log-likelihood ratio of "stream s drifting since k days ago" against "as usual", in
      thousandths of a nat (0 until the customer has been watched for baseline_skip_days before
      the window), from the running sums of int_drift_days: `now` prefixes the day's columns,
      `back` those of the day k days before. One formula for int_drift_days (its windows) and
      int_drift_window_evidence (the windows per stream, which the population step's mixture fit
      reads).
        rate:  N events over E portfolio-normal days in the window. The usual rate is not known but
               estimated from the customer's history before the window, shrunk towards its segment:
               Gamma(a, b) with a = prior rate x prior_days + events before, b = prior_days + days
               before. Integrated over that uncertainty (negative binomial), the ratio is
               N ln(rho) + (a + N) ln((b + E) / (b + rho E)): silence of a customer we know little
               about is weak evidence and stays bounded; silence of a well-known chatty one is strong.
               No evidence from a stream the customer hardly ever used (drift.min_rate_per_day,
               drift.min_baseline_events).
        share: the window's sum of the day's capped evidence. -#}
  {%- set skip = scoring('drift.baseline_skip_days') | int -%}
  {%- set prior_days = scoring('drift.prior_days') | float -%}
  {%- set min_rate = scoring('drift.min_rate_per_day') | float -%}
  {%- set min_events = scoring('drift.min_baseline_events') | int -%}
  {%- if s.kind == 'share' -%}
  case when {{ now }}observed_days >= {{ k + skip }}
       then {{ now }}cum_capped_milli_{{ s.name }} - {{ back }}cum_capped_milli_{{ s.name }} else 0 end
  {%- else -%}
  {%- set n_window = '(' ~ now ~ 'cum_count_' ~ s.name ~ ' - ' ~ back ~ 'cum_count_' ~ s.name ~ ')' -%}
  {%- set e_window = '((' ~ now ~ 'cum_exposure_milli_' ~ s.name ~ ' - ' ~ back ~ 'cum_exposure_milli_' ~ s.name ~ ') / 1000.0)' -%}
  {#- the exposure before the window, without a silence that began before it and still goes on
      (its counts are those of the last active day anyway): see drift_exposure_before -#}
  {%- set exposure_before = drift_exposure_before(s, k, now, back ~ 'cum_exposure_milli_' ~ s.name) -%}
  {%- set a_before = '(' ~ now ~ 'prior_rate_' ~ s.name ~ ' * ' ~ prior_days ~ ' + ' ~ back ~ 'cum_count_' ~ s.name ~ ')' -%}
  {%- set b_before = '(' ~ prior_days ~ ' + ' ~ exposure_before ~ ' / 1000.0)' -%}
  {#- whether the stream was used often enough to be judged asks how long the customer has been
      watched: the exposure k days back, silence and all -#}
  case when {{ now }}observed_days >= {{ k + skip }}
        and {{ now }}usual_rate_{{ s.name }} >= {{ min_rate }}
        and ({{ back }}cum_count_{{ s.name }} >= {{ min_events }}
             or {{ back }}cum_exposure_milli_{{ s.name }} < {{ (prior_days * 1000) | int }})
       then {{ milli('(' ~ n_window ~ ' * ln(' ~ s.ratio ~ ') + (' ~ a_before ~ ' + ' ~ n_window ~ ') * ln((' ~ b_before ~ ' + ' ~ e_window ~ ') / (' ~ b_before ~ ' + ' ~ s.ratio ~ ' * ' ~ e_window ~ ')))') }}
       else 0 end
  {%- endif -%}
{%- endmacro %}

{% macro silent_since_before(now, k) -%}
  {#- Whether the customer's last day with an event of a rate stream (last_active_date) lies more
      than k days before the day: it has been silent in every rate stream since before then. -#}
  ({{ now }}last_active_date is not null and {{ days_between(now ~ 'last_active_date', now ~ 'as_of_date') }} > {{ k }})
{%- endmacro %}

{% macro drift_exposure_before(s, k, now, exposure_back) -%}
  {#- A rate stream's running exposure k days before the day (exposure_back), or, when the
      customer has been silent in every rate stream since before then, its exposure on its last
      active day: a silence that is still going on is judged against the history before it and
      never becomes part of it, however long it lasts (a customer silent for a year is not "as
      usual" because the year is now in its baseline). Its counts are unchanged by the silence. -#}
  (case when {{ silent_since_before(now, k) }} then {{ now }}active_exposure_milli_{{ s.name }} else {{ exposure_back }} end)
{%- endmacro %}

{% macro drift_mixture_fits() -%}
  {#- The relation the population step writes the learned mixture weights to
      (loyalty_monitor/drift/mixture.py: one row per fit and alternative, effective from a day on),
      or none before the first fit (the weights of config/scoring.yml then apply). -#}
  {%- if not execute -%}{{ return(none) }}{%- endif -%}
  {{ return(adapter.get_relation(database=this.database, schema=this.schema, identifier='drift_mixture_weights')) }}
{%- endmacro %}

{% macro drift_configured_weights(streams) -%}
  {#- The prior weights of the alternatives: all streams together 1 - single_stream_share, each
      stream alone an equal part of single_stream_share. -#}
  {%- set alone = scoring('drift.single_stream_share') | float -%}
  {%- set out = {'all': 1.0 - alone} -%}
  {%- for s in streams -%}{%- do out.update({s.name: alone / (streams | length)}) -%}{%- endfor -%}
  {{ return(out) }}
{%- endmacro %}
