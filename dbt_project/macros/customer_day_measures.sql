{#- What int_customer_days counts per customer-day, one place for the model and for the windows
    that read it (macros/customer_windows.sql lists its columns from here):
      counts      (name, condition on fct_touchpoints): running count cum_<name>
      sums        (name, expression): running sum cum_<name>
      last_dates  (name, condition): last_<name>_date
      running     every cum_<name>, including cum_dialogue_days (days with a two-way dialogue)
      columns     every column of int_customer_days, in order -#}

{% macro customer_day_measures() -%}
  {%- set departments = contract_departments() -%}
  {%- set roles = contract_contact_roles() -%}
  {%- set stages = contract_dunning_stages() -%}
  {%- set counts = [
    ('contacts', 'true'),
    ('dialogues', 'is_two_way_dialogue'),
    ('caring', "contact_kind = 'caring'"),
    ('friction', "contact_kind = 'friction'"),
    ('neutral', "contact_kind = 'neutral'"),
    ('inbound_calls', "event_type = 'call' and direction = 'inbound'"),
    ('inbound_calls_answered', "event_type = 'call' and direction = 'inbound' and coalesce(answered, false)"),
    ('visits', "event_type = 'service_visit'"),
    ('visits_resolved', "event_type = 'service_visit' and coalesce(resolved, false)"),
    ('visits_first_time_fix', "event_type = 'service_visit' and coalesce(first_time_fix, false)"),
    ('complaints', "event_type = 'complaint'"),
    ('complaints_high', "event_type = 'complaint' and severity = 'high'"),
    ('orders', "event_type = 'order'"),
    ('surveys', "event_type = 'survey_response' and nps_score is not null"),
    ('promoters', "event_type = 'survey_response' and nps_score >= " ~ scoring('loyalty.promoter_min')),
    ('detractors', "event_type = 'survey_response' and nps_score <= " ~ scoring('loyalty.detractor_max')),
    ('survey_comments', "event_type = 'survey_response' and comment is not null and comment <> ''"),
] -%}
  {%- for d in departments -%}{%- do counts.append(('dept_' ~ d, "department = '" ~ d ~ "'")) -%}{%- endfor -%}
  {%- for r in roles -%}{%- do counts.append(('role_' ~ r, "is_two_way_dialogue and contact_role = '" ~ r ~ "'")) -%}{%- endfor -%}
  {%- for s in stages -%}{%- do counts.append(('dunning_' ~ s, "event_type = 'dunning_contact' and dunning_stage = '" ~ s ~ "'")) -%}{%- endfor -%}
  {#- the drift model's streams (macros/drift_streams.sql), every one it knows, so that switching
      one on in config/scoring.yml needs no new column -#}
  {%- for name, spec in drift_stream_conditions().items() -%}{%- do counts.append(('drift_' ~ name, spec['condition'])) -%}{%- endfor -%}
  {#- money is summed as exact decimals, so running totals do not depend on summation order -#}
  {%- set sums = [('order_amount', "cast(case when event_type = 'order' then coalesce(amount, 0) else 0 end as " ~ dbt.type_numeric() ~ ")")] -%}
  {%- set last_dates = [
    ('dialogue', 'is_two_way_dialogue'),
    ('caring', "contact_kind = 'caring'"),
    ('order', "event_type = 'order'"),
    ('dunning', "event_type = 'dunning_contact'"),
    ('open_high_complaint', "event_type = 'complaint' and severity = 'high' and not coalesce(resolved, false)"),
    ('resolution', "(event_type = 'complaint' and coalesce(resolved, false)) or (event_type = 'service_visit' and coalesce(resolved, false))"),
] -%}
  {%- set running = counts | map(attribute=0) | list + ['dialogue_days'] + sums | map(attribute=0) | list -%}
  {%- set columns = ['customer_id', 'as_of_date'] -%}
  {%- for name in running -%}{%- do columns.append('cum_' ~ name) -%}{%- endfor -%}
  {%- for name, condition in last_dates -%}{%- do columns.append('last_' ~ name ~ '_date') -%}{%- endfor -%}
  {%- do columns.extend(['last_dunning_amount', 'first_dialogue_after_order', 'inputs_landed_at']) -%}
  {{ return({'counts': counts, 'sums': sums, 'last_dates': last_dates, 'running': running, 'columns': columns}) }}
{%- endmacro %}
