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
