{#- One field of a JSON object kept as text (the landing zone's payload_json), as text; null when the
    key is absent. Dispatched, because every engine spells it differently:
      DuckDB       json_extract_string(doc, '$.key')
      PostgreSQL   cast(doc as json) ->> 'key'          (the default)
      Spark        get_json_object(doc, '$.key')
    `key` is a plain identifier ([A-Za-z0-9_]); cast the result to the type you need. -#}

{% macro json_text(json_expr, key) -%}
  {%- if not modules.re.match('^[A-Za-z0-9_]+$', key) -%}
    {{ exceptions.raise_compiler_error("json_text: key must be a plain identifier, got " ~ key) }}
  {%- endif -%}
  {{ return(adapter.dispatch('json_text')(json_expr, key)) }}
{%- endmacro %}

{% macro default__json_text(json_expr, key) -%}
  (cast({{ json_expr }} as json) ->> '{{ key }}')
{%- endmacro %}

{% macro duckdb__json_text(json_expr, key) -%}
  json_extract_string({{ json_expr }}, '$.{{ key }}')
{%- endmacro %}

{% macro spark__json_text(json_expr, key) -%}
  get_json_object({{ json_expr }}, '$.{{ key }}')
{%- endmacro %}
