{#- Enumerations of the event contract v1 (loyalty_core/contract/events.v1.schema.json) that the
    models pivot into columns. dbt cannot read a file, so loyalty_monitor.warehouse.dbt_vars passes
    the schema's enumerations as var `contract` (loyalty_core.contract.enumerations()): the
    schema file is the one place a department, role, stage or segment is declared. -#}

{% macro contract_enumeration(name) -%}
  {#- contract_enumeration('dunning_stages') -> the schema's values, in its order. -#}
  {%- set given = var('contract', none) -%}
  {%- if given is none -%}
    {%- if execute -%}
      {{ exceptions.raise_compiler_error("dbt var 'contract' is missing: run through `loyalty warehouse build`, or pass --vars from loyalty_monitor.warehouse.dbt_vars()") }}
    {%- else -%}
      {{ return([]) }}
    {%- endif -%}
  {%- endif -%}
  {%- if name not in given -%}
    {{ exceptions.raise_compiler_error("the event contract has no enumeration '" ~ name ~ "'") }}
  {%- endif -%}
  {{ return(given[name]) }}
{%- endmacro %}

{% macro contract_departments() -%}
    {{ return(contract_enumeration('departments')) }}
{%- endmacro %}

{% macro contract_contact_roles() -%}
    {{ return(contract_enumeration('contact_roles')) }}
{%- endmacro %}

{% macro contract_dunning_stages() -%}
    {#- in the order they escalate (the schema's order): the last is the worst -#}
    {{ return(contract_enumeration('dunning_stages')) }}
{%- endmacro %}

{% macro contract_segments() -%}
    {{ return(contract_enumeration('segments')) }}
{%- endmacro %}
