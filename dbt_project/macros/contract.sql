{#- Enumerations of the event contract v1 (loyalty_monitor/contract/events.v1.schema.json) that the
    models pivot into columns. One place in dbt; tests/test_warehouse_build.py checks they equal the
    schema's, so a contract change cannot silently drop a department, role or dunning stage. -#}

{% macro contract_departments() -%}
    {{ return(['sales', 'service', 'support', 'finance', 'reception', 'management', 'other']) }}
{%- endmacro %}

{% macro contract_contact_roles() -%}
    {{ return(['executive', 'decision_maker', 'user', 'finance', 'other']) }}
{%- endmacro %}

{% macro contract_dunning_stages() -%}
    {{ return(['reminder', 'second_reminder', 'collection_call', 'final_notice']) }}
{%- endmacro %}
