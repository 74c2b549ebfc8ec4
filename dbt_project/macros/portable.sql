{#- Small portable helpers on top of dbt's cross-database macros (no DuckDB-only syntax). -#}

{% macro add_days(date_expr, days) -%}
  cast({{ dbt.dateadd('day', days, date_expr) }} as date)
{%- endmacro %}

{% macro days_between(start_expr, end_expr) -%}
  {{ dbt.datediff(start_expr, end_expr, 'day') }}
{%- endmacro %}

{% macro to_utc(timestamp_with_zone) -%}
  {#- timestamp with time zone -> timestamp without time zone, in UTC (ANSI AT TIME ZONE). -#}
  ({{ timestamp_with_zone }} at time zone 'UTC')
{%- endmacro %}

{% macro safe_ratio(numerator, denominator) -%}
  (case when ({{ denominator }}) is null or ({{ denominator }}) = 0 then null
        else cast({{ numerator }} as {{ type_double() }}) / ({{ denominator }}) end)
{%- endmacro %}

{% macro clamp_0_100(expr) -%}
  least(100.0, greatest(0.0, cast({{ expr }} as {{ type_double() }})))
{%- endmacro %}

{% macro bool_to_int(expr) -%}
  (case when {{ expr }} then 1 else 0 end)
{%- endmacro %}

{% macro as_text(expr) -%}
  cast({{ expr }} as {{ dbt.type_string() }})
{%- endmacro %}

{% macro int_text(expr) -%}
  cast(cast({{ round_to(expr, 0) }} as {{ dbt.type_bigint() }}) as {{ dbt.type_string() }})
{%- endmacro %}

{% macro type_double() -%}
  {{ return(adapter.dispatch('type_double')()) }}
{%- endmacro %}

{% macro default__type_double() -%}double precision{%- endmacro %}

{% macro duckdb__type_double() -%}double{%- endmacro %}

{% macro round_to(expr, digits) -%}
  {{ return(adapter.dispatch('round_to')(expr, digits)) }}
{%- endmacro %}

{% macro default__round_to(expr, digits) -%}
  {#- PostgreSQL has round(numeric, int) only; the value is cast back to double precision. -#}
  cast(round(cast({{ expr }} as numeric), {{ digits }}) as {{ type_double() }})
{%- endmacro %}

{% macro duckdb__round_to(expr, digits) -%}
  round({{ expr }}, {{ digits }})
{%- endmacro %}
