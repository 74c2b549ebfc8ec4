{#- Access to the run's parameters: config/scoring.yml (var `scoring`) and the as-of date. -#}

{% macro scoring(path) -%}
  {#- scoring('health.green_min') -> the value from config/scoring.yml, passed as var `scoring`. -#}
  {%- set node = var('scoring', none) -%}
  {%- if node is none -%}
    {%- if execute -%}
      {{ exceptions.raise_compiler_error("dbt var 'scoring' is missing: run through `loyalty warehouse build`, or pass --vars from loyalty_monitor.warehouse.dbt_vars()") }}
    {%- else -%}
      {{ return(0) }}
    {%- endif -%}
  {%- endif -%}
  {%- set ns = namespace(node=node) -%}
  {%- for part in path.split('.') -%}
    {%- if ns.node is mapping and part in ns.node -%}
      {%- set ns.node = ns.node[part] -%}
    {%- else -%}
      {{ exceptions.raise_compiler_error("config/scoring.yml has no key '" ~ path ~ "'") }}
    {%- endif -%}
  {%- endfor -%}
  {{ return(ns.node) }}
{%- endmacro %}

{% macro as_of_date_literal() -%}
  {#- The as-of date as a SQL date literal: var `as_of_date` (YYYY-MM-DD), else the environment
      variable LOYALTY_AS_OF_DATE, else today in UTC. `loyalty warehouse build` passes the
      environment variable: dbt's partial parsing compares the --vars of the last parse, so a var
      that changes every day made every daily run parse the whole project again. The value is
      read only when dbt executes (it does not matter while dbt parses), so it never enters the
      parsed manifest either. -#}
  {%- if not execute -%}{{ return("cast('1900-01-01' as date)") }}{%- endif -%}
  {%- set value = var('as_of_date', none) or env_var('LOYALTY_AS_OF_DATE', '')
                  or modules.datetime.datetime.utcnow().date().isoformat() -%}
  {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', value | string) -%}
    {{ exceptions.raise_compiler_error("var as_of_date must be YYYY-MM-DD, got " ~ value) }}
  {%- endif -%}
  cast('{{ value }}' as date)
{%- endmacro %}

{% macro sql_string_list(values) -%}
  {%- for v in values -%}'{{ v | replace("'", "''") }}'{{ ", " if not loop.last }}{%- endfor -%}
{%- endmacro %}

{% macro sql_string(value) -%}
  '{{ value | replace("'", "''") }}'
{%- endmacro %}
