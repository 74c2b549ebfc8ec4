{#- The Parquet landing zone (docs/design.md "Landing zone"). The dbt-duckdb source reads it with
    read_parquet; a dataset with no files yet (e.g. no customer records landed) must not fail the
    build, so staging models ask first and fall back to an empty, typed relation. -#}

{% macro landing_has_files(dataset) -%}
  {{ return(adapter.dispatch('landing_has_files')(dataset)) }}
{%- endmacro %}

{% macro default__landing_has_files(dataset) -%}
  {#- On warehouses where the landing tables are loaded (PostgreSQL), they always exist. -#}
  {{ return(true) }}
{%- endmacro %}

{% macro duckdb__landing_has_files(dataset) -%}
  {%- if not execute -%}{{ return(true) }}{%- endif -%}
  {%- set pattern = env_var('LOYALTY_LANDING') ~ '/' ~ dataset ~ '/*/*.parquet' -%}
  {%- set result = run_query("select count(*) from glob('" ~ pattern | replace("'", "''") ~ "')") -%}
  {{ return(result.columns[0].values()[0] > 0) }}
{%- endmacro %}
