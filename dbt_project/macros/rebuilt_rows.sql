{#- Data tests of an incremental model check the rows the same dbt invocation (re)wrote.

    A daily run rewrites a few days of the multi-million-row customer-day tables; testing every
    stored row again on every run made the tests cost more than the models. Rows a run does not
    rewrite were tested by the run that wrote them, and stay as they were (delete+insert replaces
    whole keys, and pruning removes rows, never changes them).

    How: the pre-hook of each incremental model records, before it writes anything, which rows it
    is about to rewrite (a SQL predicate such as `as_of_date >= cast('2026-06-22' as date)`) in
    the small table `dbt_rebuilt_rows` (on Spark one per model, `dbt_rebuilt_rows__<model>`), with dbt's invocation_id. Every data test has
    `where: "__rebuilt_rows__"` (dbt_project.yml); `get_where_subquery` below replaces the
    placeholder with the recorded predicate when the tested model was built incrementally in this
    same invocation, and drops the filter otherwise: a full refresh, a table model, or a
    `dbt test` on its own tests every row. -#}

{% macro rebuilt_rows_ledger(relation) -%}
  {{ return(adapter.dispatch('rebuilt_rows_ledger')(relation)) }}
{%- endmacro %}

{% macro default__rebuilt_rows_ledger(relation) -%}
  {{ return(api.Relation.create(database=relation.database, schema=relation.schema, identifier='dbt_rebuilt_rows')) }}
{%- endmacro %}

{% macro spark__rebuilt_rows_ledger(relation) -%}
  {#- one ledger per model: on Spark a delete rewrites the whole table (macros/spark.sql), and two
      models' pre-hooks rewriting one shared ledger at once (spark_threads > 1) would each drop
      the other's copy ("table already exists", or a row lost) -#}
  {{ return(api.Relation.create(database=relation.database, schema=relation.schema,
                                identifier='dbt_rebuilt_rows__' ~ relation.identifier)) }}
{%- endmacro %}

{% macro record_rebuilt_rows(predicate) -%}
  {#- pre-hook SQL: record `predicate` (the rows of `this` this run rewrites) for this invocation. -#}
  {{ hook_sql(rebuilt_rows_statements(predicate)) }}
{%- endmacro %}

{% macro rebuilt_rows_statements(predicate) -%}
  {#- the statements of record_rebuilt_rows, as a list for hook_sql (macros/spark.sql) -#}
  {%- set ledger = rebuilt_rows_ledger(this) -%}
  {%- set create -%}
  create table if not exists {{ ledger }} (
      model_name {{ dbt.type_string() }},
      invocation_id {{ dbt.type_string() }},
      rebuilt_rows {{ dbt.type_string() }}
  )
  {%- endset -%}
  {%- set insert -%}
  insert into {{ ledger }} (model_name, invocation_id, rebuilt_rows)
  values ({{ sql_string(this.identifier) }}, {{ sql_string(invocation_id) }}, {{ sql_string(predicate) }})
  {%- endset -%}
  {{ return([create] + delete_rows(ledger, 'model_name = ' ~ sql_string(this.identifier)) + [insert]) }}
{%- endmacro %}

{% macro rebuilt_rows_predicate(relation) -%}
  {#- The predicate recorded for `relation` in this invocation, or none. -#}
  {%- if not execute or relation.identifier is none -%}{{ return(none) }}{%- endif -%}
  {%- set incremental = graph.nodes.values() | selectattr('resource_type', 'equalto', 'model')
        | selectattr('alias', 'equalto', relation.identifier)
        | selectattr('config.materialized', 'equalto', 'incremental') | list -%}
  {%- if not incremental -%}{{ return(none) }}{%- endif -%}
  {%- set ledger = rebuilt_rows_ledger(relation) -%}
  {%- if not table_exists_now(ledger) -%}{{ return(none) }}{%- endif -%}
  {%- set found = run_query(
        "select rebuilt_rows from " ~ ledger ~ " where model_name = " ~ sql_string(relation.identifier)
        ~ " and invocation_id = " ~ sql_string(invocation_id)) -%}
  {%- if found.rows | length == 0 -%}{{ return(none) }}{%- endif -%}
  {{ return(found.columns[0].values()[0]) }}
{%- endmacro %}

{% macro get_where_subquery(relation) -%}
  {#- dbt's own macro, plus the `__rebuilt_rows__` placeholder (see the top of this file). -#}
  {%- set where = config.get('where', '') -%}
  {%- if where and '__rebuilt_rows__' in where -%}
    {%- set predicate = rebuilt_rows_predicate(relation) -%}
    {%- set where = where | replace('__rebuilt_rows__', '(' ~ (predicate or '1 = 1') ~ ')') -%}
    {%- if where | trim == '(1 = 1)' -%}{%- set where = '' -%}{%- endif -%}
  {%- endif -%}
  {%- if where -%}
    {%- set filtered -%}
      (select * from {{ relation }} where {{ where }}) dbt_subquery
    {%- endset -%}
    {{ return(filtered) }}
  {%- else -%}
    {{ return(relation) }}
  {%- endif -%}
{%- endmacro %}

{% macro table_exists_now(relation) -%}
  {#- Whether a table exists right now, asking the database (dbt's relation cache does not know
      tables that hooks created). -#}
  {{ return(adapter.dispatch('table_exists_now')(relation)) }}
{%- endmacro %}

{% macro default__table_exists_now(relation) -%}
  {%- set found = run_query(
        "select count(*) from information_schema.tables where table_schema = " ~ sql_string(relation.schema)
        ~ " and table_name = " ~ sql_string(relation.identifier)) -%}
  {{ return(found.columns[0].values()[0] > 0) }}
{%- endmacro %}

{% macro spark__table_exists_now(relation) -%}
  {#- Spark has no information_schema -#}
  {%- set found = run_query("show tables in " ~ relation.schema ~ " like " ~ sql_string(relation.identifier)) -%}
  {{ return(found.rows | length > 0) }}
{%- endmacro %}
