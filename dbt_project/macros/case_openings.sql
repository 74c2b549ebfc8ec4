{% macro prune_case_openings() -%}
  {#- pre-hook of int_case_openings: drop the openings that no longer open a case (late data moved
      or removed it, an erased customer, a backfill to an earlier as-of date), so that the stored
      rows are those a full refresh would give. -#}
  {%- if is_incremental() -%}
    {%- set key = "customer_id || '|' || " ~ as_text('opened_on') -%}
    {{ hook_sql(delete_rows(this, key ~ ' not in (select ' ~ key ~ ' from ' ~ ref('int_risk_case_spans') ~ ')')) }}
  {%- else -%}
    select 1
  {%- endif -%}
{%- endmacro %}

{% macro case_openings_floor(cases_sql) -%}
  {#- The earliest opening day among the openings a daily run computes (cases_sql), as a SQL date
      literal; the day after the as-of date when there are none; none on a full refresh. -#}
  {%- if not is_incremental() or not execute -%}{{ return(none) }}{%- endif -%}
  {{ return(earliest_day(cases_sql, 'opened_on')) }}
{%- endmacro %}
