{#- Small portable helpers on top of dbt's cross-database macros (no DuckDB-only syntax). -#}

{% macro add_days(date_expr, days) -%}
  {{ return(adapter.dispatch('add_days')(date_expr, days)) }}
{%- endmacro %}

{% macro default__add_days(date_expr, days) -%}
  cast({{ dbt.dateadd('day', days, date_expr) }} as date)
{%- endmacro %}

{% macro spark__add_days(date_expr, days) -%}
  {#- dbt-spark's dateadd goes through unix timestamps; date_add is the plain date arithmetic -#}
  date_add(cast({{ date_expr }} as date), cast({{ days }} as int))
{%- endmacro %}

{% macro days_between(start_expr, end_expr) -%}
  {{ dbt.datediff(start_expr, end_expr, 'day') }}
{%- endmacro %}

{% macro to_utc(timestamp_with_zone) -%}
  {#- timestamp with time zone -> timestamp without time zone, in UTC (ANSI AT TIME ZONE). -#}
  {{ return(adapter.dispatch('to_utc')(timestamp_with_zone)) }}
{%- endmacro %}

{% macro default__to_utc(timestamp_with_zone) -%}
  ({{ timestamp_with_zone }} at time zone 'UTC')
{%- endmacro %}

{% macro spark__to_utc(timestamp_with_zone) -%}
  {#- Spark reads the landed UTC instants as TIMESTAMP (local time zone); with the session time
      zone UTC (loyalty_core/spark.py) the wall clock without zone is the UTC one -#}
  cast({{ timestamp_with_zone }} as timestamp_ntz)
{%- endmacro %}

{% macro minus_seconds(timestamp_expr, seconds) -%}
  {#- a timestamp `seconds` earlier, to the microsecond (dbt-spark's dateadd keeps whole seconds) -#}
  {{ return(adapter.dispatch('minus_seconds')(timestamp_expr, seconds)) }}
{%- endmacro %}

{% macro default__minus_seconds(timestamp_expr, seconds) -%}
  {{ dbt.dateadd('second', -(seconds | int), timestamp_expr) }}
{%- endmacro %}

{% macro spark__minus_seconds(timestamp_expr, seconds) -%}
  ({{ timestamp_expr }} - make_dt_interval(0, 0, 0, {{ seconds | int }}))
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

{% macro fixed_text(expr, digits) -%}
  {#- A number as text with exactly `digits` decimals ('1.0', '3.7'): a double cast to text reads
      '1.0' on DuckDB and '1' on PostgreSQL, a fixed-point decimal reads alike on both. -#}
  cast(cast({{ round_to(expr, digits) }} as decimal(38, {{ digits | int }})) as {{ dbt.type_string() }})
{%- endmacro %}

{% macro int_text(expr) -%}
  cast(cast({{ round_to(expr, 0) }} as {{ dbt.type_bigint() }}) as {{ dbt.type_string() }})
{%- endmacro %}

{% macro grouped_int_text(expr) -%}
  {#- A whole amount as text with thousands separators ('78,805'), alike on every engine: money in
      a sentence an account manager reads. -#}
  {{ return(adapter.dispatch('grouped_int_text')(expr)) }}
{%- endmacro %}

{% macro default__grouped_int_text(expr) -%}
  format('{:,}', cast({{ round_to(expr, 0) }} as bigint))
{%- endmacro %}

{% macro postgres__grouped_int_text(expr) -%}
  to_char(cast({{ round_to(expr, 0) }} as bigint), 'FM999,999,999,999,999,990')
{%- endmacro %}

{% macro spark__grouped_int_text(expr) -%}
  format_number(cast({{ round_to(expr, 0) }} as bigint), 0)
{%- endmacro %}

{% macro type_double() -%}
  {{ return(adapter.dispatch('type_double')()) }}
{%- endmacro %}

{% macro default__type_double() -%}double precision{%- endmacro %}

{% macro duckdb__type_double() -%}double{%- endmacro %}

{% macro spark__type_double() -%}double{%- endmacro %}

{% macro round_half_away(expr) -%}
  {#- A double rounded to a whole number, half away from zero (5062.5 -> 5063), on every engine:
      PostgreSQL's round(double precision) rounds half to even (5062), DuckDB's half away. -#}
  {{ return(adapter.dispatch('round_half_away')(expr)) }}
{%- endmacro %}

{% macro default__round_half_away(expr) -%}
  trunc(({{ expr }}) + sign({{ expr }}) * 0.5)
{%- endmacro %}

{% macro duckdb__round_half_away(expr) -%}
  round({{ expr }})
{%- endmacro %}

{% macro spark__round_half_away(expr) -%}
  {#- Spark's round(double) rounds half up (away from zero), as DuckDB's -#}
  round({{ expr }})
{%- endmacro %}

{% macro round_to(expr, digits) -%}
  {{ return(adapter.dispatch('round_to')(expr, digits)) }}
{%- endmacro %}

{% macro default__round_to(expr, digits) -%}
  {#- Round half away from zero, in decimal: the double is first fixed to 9 decimals, so that the
      last bits of a double (which differ between engines: PostgreSQL divides numeric literals in
      numeric, DuckDB in double) cannot move a value that is mathematically 43.75 to either side of
      the boundary. PostgreSQL has round(numeric, int) only; the value is cast back to double. -#}
  cast(round(cast({{ expr }} as numeric(38, 9)), {{ digits }}) as {{ type_double() }})
{%- endmacro %}

{% macro duckdb__round_to(expr, digits) -%}
  cast(round(cast({{ expr }} as decimal(38, 9)), {{ digits }}) as {{ type_double() }})
{%- endmacro %}

{% macro day_spine(first_day, last_day) -%}
  {#- A relation of one row per day (column date_day) from first_day to last_day, both included. -#}
  {{ return(adapter.dispatch('day_spine')(first_day, last_day)) }}
{%- endmacro %}

{% macro default__day_spine(first_day, last_day) -%}
  {{ dbt.date_spine('day', first_day, dbt.dateadd('day', 1, last_day)) }}
{%- endmacro %}

{% macro spark__day_spine(first_day, last_day) -%}
  {#- dbt's date_spine asks the number of days first, which dbt-spark cannot answer for a subquery -#}
  select explode(sequence(cast({{ first_day }} as date), cast({{ last_day }} as date), interval 1 day)) as date_day
{%- endmacro %}

{% macro computed_once() -%}
  {#- `with name {{ computed_once() }} (...)`: a CTE whose columns later CTEs use many times. PostgreSQL
      inlines a CTE referenced once and does not share common subexpressions, so a chain of such
      CTEs (the drift model's windows -> mixture per window -> mixture over windows) would repeat
      each window's expression thousands of times per row; MATERIALIZED computes it once. -#}
  {{ return(adapter.dispatch('computed_once')()) }}
{%- endmacro %}

{% macro default__computed_once() -%}as{%- endmacro %}

{% macro postgres__computed_once() -%}as materialized{%- endmacro %}

{% macro inlined() -%}
  {#- `with name {{ inlined() }} (select * from {{ ref(...) }})`: an import CTE that a model reads
      more than once (a daily run's look-ups n days back). DuckDB and PostgreSQL materialize a CTE
      referenced twice, which would copy the whole relation before any filter reached it; NOT
      MATERIALIZED keeps each reference a scan of its own, filtered. Spark always inlines. -#}
  {{ return(adapter.dispatch('inlined')()) }}
{%- endmacro %}

{% macro default__inlined() -%}as not materialized{%- endmacro %}

{% macro spark__inlined() -%}as{%- endmacro %}

{% macro milli(expr) -%}
  {#- a quantity in integer thousandths: running sums of it are exact and do not depend on
      summation order, so a daily run and a full refresh give identical rows -#}
  cast({{ round_half_away('(' ~ expr ~ ') * 1000') }} as {{ dbt.type_bigint() }})
{%- endmacro %}

{% macro log_sum_exp_milli(terms) -%}
  {#- log(sum of w x exp(x)) over `terms` [(x, w)], x in integer thousandths of a nat, as integer
      thousandths: the log of a mixture of likelihood ratios. Computed as max + log(sum of
      w x exp(x - max)), so that large x do not overflow. -#}
  {%- set top -%}greatest({% for expr, w in terms %}{{ expr }}{{ ', ' if not loop.last }}{% endfor %}){%- endset -%}
  {%- set mixed -%}
  {{ top }} + 1000 * ln(
      {%- for expr, w in terms %}
      {{ w }} * exp(({{ expr }} - {{ top }}) / 1000.0){{ ' +' if not loop.last }}
      {%- endfor %}
  )
  {%- endset %}
  cast({{ round_half_away(mixed) }} as {{ dbt.type_bigint() }})
{%- endmacro %}

{% macro add_months(date_expr, months) -%}
  cast({{ dbt.dateadd('month', months, date_expr) }} as date)
{%- endmacro %}

{% macro quarter_start(date_expr) -%}
  cast({{ dbt.date_trunc('quarter', date_expr) }} as date)
{%- endmacro %}

{% macro quarter_end(date_expr) -%}
  {#- the last day of the quarter of date_expr (via months: PostgreSQL has no interval 'quarter') -#}
  {{ add_days(add_months(quarter_start(date_expr), 3), -1) }}
{%- endmacro %}

{% macro null_safe_equal(left, right) -%}
  {#- equality that holds for two nulls (the company's rows have no account manager) -#}
  ({{ left }} is not distinct from {{ right }})
{%- endmacro %}
