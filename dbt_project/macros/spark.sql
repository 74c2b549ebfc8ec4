{#- Apache Spark (dbt-spark; docs/warehouse.md "Engines"): what Spark needs in its own form.

    Tables on Spark are plain Parquet (no Delta or Iceberg: their jars are not part of Spark), which
    cannot DELETE or MERGE rows. Two things follow:

    - Hooks that delete rows (pruning an incremental table for a backfill or an erasure, the
      rebuilt-rows ledger) go through delete_rows() and hook_sql(): on Spark a delete rewrites the
      table without the rows, and only when some row matches (a daily run normally deletes nothing).
    - The incremental strategy `delete+insert` of the models is kept, with a Spark implementation
      (spark_delete_insert below): the new rows are written once, then the table is rewritten as
      the stored rows whose key is not among them plus the new rows, into a table that replaces the
      old one by a rename. So a daily run and a full refresh give the same rows on Spark as on the
      other engines ("full refresh == daily runs", tests/loyalty_monitor/warehouse/test_warehouse_postgres.py). Spark's own
      strategies cannot do that on Parquet: `append` duplicates a re-built day, and
      `insert_overwrite` replaces whole partitions (or the whole table), while a daily run rebuilds
      a few customers from a day on. The price: a daily run rewrites each incremental table once
      (sequential Parquet I/O, no sort), not only the days it changed.

    dbt-spark's own validation and strategy macros are overridden here (same names, root project
    wins); every strategy it supports still goes to its own implementation. -#}

{% macro hook_sql(statements) -%}
  {#- A pre-hook made of several statements. DuckDB and PostgreSQL run them as one script; Spark
      runs one statement per call, so they run here, in order, and the hook itself is `select 1`. -#}
  {{ return(adapter.dispatch('hook_sql')(statements)) }}
{%- endmacro %}

{% macro default__hook_sql(statements) -%}
  {{ return(statements | join(';\n')) }}
{%- endmacro %}

{% macro spark__hook_sql(statements) -%}
  {%- if execute -%}
    {%- for statement in statements -%}
      {%- if statement is mapping -%}
        {%- do spark_delete_now(statement['relation'], statement['where']) -%}
      {%- elif statement | trim -%}
        {%- do run_query(statement) -%}
      {%- endif -%}
    {%- endfor -%}
  {%- endif -%}
  {{ return('select 1') }}
{%- endmacro %}

{% macro delete_rows(relation, predicate) -%}
  {#- A list of hook statements (for hook_sql) deleting the rows of `relation` matching `predicate`. -#}
  {{ return(adapter.dispatch('delete_rows')(relation, predicate)) }}
{%- endmacro %}

{% macro default__delete_rows(relation, predicate) -%}
  {{ return(['delete from ' ~ relation ~ ' where ' ~ predicate]) }}
{%- endmacro %}

{% macro spark__delete_rows(relation, predicate) -%}
  {{ return([{'relation': relation, 'where': predicate}]) }}
{%- endmacro %}

{% macro spark_scratch(relation, suffix) -%}
  {#- A work table next to `relation`, named so that it is never taken for a mart (dim_/fct_). -#}
  {{ return(api.Relation.create(schema=relation.schema, identifier='dbt_work__' ~ relation.identifier ~ '__' ~ suffix,
                                type='table')) }}
{%- endmacro %}

{% macro spark_delete_now(relation, predicate) -%}
  {#- Delete rows from a Parquet table: rewrite it without them, if any matches. -#}
  {%- set found = run_query('select count(*) from ' ~ relation ~ ' where ' ~ predicate).columns[0].values()[0] -%}
  {%- if found > 0 -%}
    {%- set keep = spark_scratch(relation, 'keep') -%}
    {%- do run_query('drop table if exists ' ~ keep) -%}
    {%- do run_query('create table ' ~ keep ~ ' using parquet as select * from ' ~ relation
                     ~ ' where not coalesce((' ~ predicate ~ '), false)') -%}
    {%- do spark_replace_table(relation, keep) -%}
  {%- endif -%}
{%- endmacro %}

{% macro spark_replace_table(target, replacement) -%}
  {#- `replacement` (a work table with the same columns) becomes `target`: drop, then rename. -#}
  {%- do run_query('drop table if exists ' ~ target) -%}
  {%- do run_query('alter table ' ~ replacement ~ ' rename to ' ~ target) -%}
{%- endmacro %}

{% macro spark_delete_insert(source, target, unique_key) -%}
  {#- delete+insert on Parquet: returns the last statement (the materialization runs it as 'main'). -#}
  {%- set keys = [unique_key] if unique_key is string else unique_key -%}
  {%- set fresh = spark_scratch(target, 'new') -%}
  {%- set merged = spark_scratch(target, 'merged') -%}
  {%- set columns = adapter.get_columns_in_relation(target) | map(attribute='quoted') | join(', ') -%}
  {%- do run_query('drop table if exists ' ~ fresh) -%}
  {%- do run_query('drop table if exists ' ~ merged) -%}
  {#- the new rows once: the model's SQL reads the target, which is about to be replaced -#}
  {%- do run_query('create table ' ~ fresh ~ ' using parquet as select ' ~ columns ~ ' from ' ~ source) -%}
  {%- set matched -%}
    {%- for key in keys -%}stored.{{ key }} = fresh.{{ key }}{{ ' and ' if not loop.last }}{%- endfor -%}
  {%- endset -%}
  {%- do run_query('create table ' ~ merged ~ ' using parquet as select ' ~ columns ~ ' from ('
                   ~ 'select stored.* from ' ~ target ~ ' as stored left anti join ' ~ fresh ~ ' as fresh on ' ~ matched
                   ~ ' union all select ' ~ columns ~ ' from ' ~ fresh ~ ')') -%}
  {%- do spark_replace_table(target, merged) -%}
  {%- do run_query('drop table if exists ' ~ fresh) -%}
  {{ return('select 1') }}
{%- endmacro %}

{#- dbt-spark's macros, with `delete+insert` added (everything else as dbt-spark 1.11 has it). -#}
{% macro dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format) %}
  {% if raw_strategy == 'delete+insert' %}
    {% do return(raw_strategy) %}
  {% endif %}
  {% set invalid_strategy_msg -%}
    Invalid incremental strategy provided: {{ raw_strategy }}
    Expected one of: 'append', 'merge', 'insert_overwrite', 'microbatch', 'delete+insert'
  {%- endset %}
  {% if raw_strategy not in ['append', 'merge', 'insert_overwrite', 'microbatch'] %}
    {% do exceptions.raise_compiler_error(invalid_strategy_msg) %}
  {% endif %}
  {% if raw_strategy == 'merge' and file_format not in ['delta', 'iceberg', 'hudi'] %}
    {% do exceptions.raise_compiler_error('Invalid incremental strategy provided: merge needs file_format delta, iceberg or hudi') %}
  {% endif %}
  {% if raw_strategy in ['insert_overwrite', 'microbatch'] and target.endpoint %}
    {% do exceptions.raise_compiler_error('Invalid incremental strategy provided: ' ~ raw_strategy ~ ' cannot be used through an endpoint') %}
  {% endif %}
  {% do return(raw_strategy) %}
{% endmacro %}

{% macro dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) %}
  {%- if strategy == 'delete+insert' -%}
    {{ spark_delete_insert(source, target, unique_key) }}
  {%- elif strategy == 'append' -%}
    {{ get_insert_into_sql(source, target) }}
  {%- elif strategy in ('insert_overwrite', 'microbatch') -%}
    {{ get_insert_overwrite_sql(source, target, existing) }}
  {%- elif strategy == 'merge' -%}
    {{ get_merge_sql(target, source, unique_key, dest_columns=none, incremental_predicates=incremental_predicates) }}
  {%- else -%}
    {%- do exceptions.raise_compiler_error('No known SQL for the incremental strategy provided: ' ~ strategy) -%}
  {%- endif -%}
{% endmacro %}

{#- dbt's date macros on Spark (dispatch search order in dbt_project.yml puts this project first):
    dbt-spark's dateadd goes through unix timestamps and gives null for the dates it is given here,
    so last_day (month ends) came out null. Spark's own timestampadd does the calendar arithmetic. -#}
{% macro spark__dateadd(datepart, interval, from_date_or_timestamp) -%}
  {%- set units = {'day': ('DAY', 1), 'week': ('DAY', 7), 'month': ('MONTH', 1), 'quarter': ('MONTH', 3),
                   'year': ('MONTH', 12), 'hour': ('HOUR', 1), 'minute': ('MINUTE', 1), 'second': ('SECOND', 1)} -%}
  {%- if datepart not in units -%}
    {{ exceptions.raise_compiler_error("dateadd: datepart " ~ datepart ~ " is not supported on Spark") }}
  {%- endif -%}
  {%- set unit, factor = units[datepart] -%}
  timestampadd({{ unit }}, cast(({{ interval }}) * {{ factor }} as bigint), {{ from_date_or_timestamp }})
{%- endmacro %}

{% macro spark__last_day(date, datepart) -%}
  {%- if datepart == 'month' -%}
    last_day(cast({{ date }} as date))
  {%- else -%}
    date_add(cast({{ dbt.dateadd(datepart, 1, dbt.date_trunc(datepart, date)) }} as date), -1)
  {%- endif -%}
{%- endmacro %}

{#- The landing zone: Spark reads the Parquet files where they are (a local directory, or s3a://
    when the landing zone is on S3), like DuckDB's read_parquet; PostgreSQL reads loaded tables. -#}

{% macro source(source_name, table_name) -%}
  {%- set relation = builtins.source(source_name, table_name) -%}
  {{ return(adapter.dispatch('landing_source')(relation, source_name, table_name)) }}
{%- endmacro %}

{% macro default__landing_source(relation, source_name, table_name) -%}
  {{ return(relation) }}
{%- endmacro %}

{% macro spark__landing_source(relation, source_name, table_name) -%}
  {#- a unit test's fixture stands in for the source: keep it -#}
  {%- if '__dbt__cte__' in (relation | string) -%}{{ return(relation) }}{%- endif -%}
  {#- the erasure register's churn counts: the Parquet file itself (always there once a build ran) -#}
  {%- if source_name == 'erasure' -%}
    {{ return('parquet.`' ~ spark_path(env_var('LOYALTY_ERASED_CHURN', 'data/erasure/erased_churn.parquet')) ~ '`') }}
  {%- endif -%}
  {%- if source_name != 'landing' -%}{{ return(relation) }}{%- endif -%}
  {{ return('parquet.`' ~ spark_path(env_var('LOYALTY_LANDING', 'data/landing')) ~ '/' ~ table_name ~ '/*/*.parquet`') }}
{%- endmacro %}

{% macro spark_path(url) -%}
  {#- a landing-zone URL as Spark's Hadoop file systems spell it (loyalty_core/spark.py: spark_url) -#}
  {%- set url = url.rstrip('/') -%}
  {%- if url.startswith('s3://') -%}{%- set url = 's3a://' ~ url[5:] -%}{%- endif -%}
  {%- if url.startswith('file://') -%}{%- set url = url[7:] -%}{%- endif -%}
  {%- if '`' in url -%}{{ exceptions.raise_compiler_error('a landing URL with a backquote cannot be read by Spark: ' ~ url) }}{%- endif -%}
  {{ return(url) }}
{%- endmacro %}

{% macro spark__landing_has_files(dataset) -%}
  {#- Spark cannot ask whether a glob matches (a query over no file fails), so the caller says which
      datasets have files: LOYALTY_LANDING_DATASETS (warehouse.dbt_env lists them); unset = all. -#}
  {%- set present = env_var('LOYALTY_LANDING_DATASETS', '*') -%}
  {{ return(present == '*' or dataset in present.split(',')) }}
{%- endmacro %}

{% macro spark__quarantine_relation() -%}
  {%- if not execute -%}{{ return(none) }}{%- endif -%}
  {%- set path = env_var('LOYALTY_QUARANTINE', '') -%}
  {%- if not path or env_var('LOYALTY_QUARANTINE_EXISTS', '0') != '1' -%}{{ return(none) }}{%- endif -%}
  {{ return('parquet.`' ~ spark_path(path) ~ '`') }}
{%- endmacro %}
