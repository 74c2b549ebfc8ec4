{#- Incremental-by-day machinery shared by the customer-day models.

    Every customer-day model (int_customer_days, int_customer_windows, fct_dialogue_daily,
    fct_customer_health_daily, int_alert_flags, int_drift_days)
    stores `inputs_landed_at`: the newest landed_at among the inputs its row depends on. On an
    incremental run a customer is rebuilt from the earliest of
      - the day after its last stored day (new days),
      - the earliest event_date of its touchpoints landed after the stored watermark
        (late-arriving events: they change that day and every later day),
      - the first day a master-data version landed after the watermark takes effect,
    up to the as-of date. The watermark is the model's own max(inputs_landed_at) minus
    `incremental.landing_overlap_seconds`, so each model catches up on its own even when it is run
    as a separate task (astronomer-cosmos). A full refresh builds every customer from its first day;
    both paths produce identical rows (tests/loyalty_monitor/warehouse/test_warehouse_incremental.py). -#}

{% macro incremental_watermark(relation, column) -%}
  {#- SQL timestamp literal: max(column) of relation minus the overlap; null when empty.
      Resolved at compile time so that the landing scan can prune files on the literal. -#}
  {%- if not execute -%}{{ return("cast(null as " ~ dbt.type_timestamp() ~ ")") }}{%- endif -%}
  {%- set overlap = scoring('incremental.landing_overlap_seconds') | int -%}
  {%- set result = run_query("select " ~ minus_seconds('max(' ~ column ~ ')', overlap) ~ " from " ~ relation) -%}
  {%- set value = result.columns[0].values()[0] -%}
  {%- if value is none -%}
    {{ return("cast(null as " ~ dbt.type_timestamp() ~ ")") }}
  {%- endif -%}
  {{ return("cast('" ~ value.strftime('%Y-%m-%d %H:%M:%S.%f') ~ "' as " ~ dbt.type_timestamp() ~ ")") }}
{%- endmacro %}

{% macro customer_day_inputs() -%}
  {#- The relations the machinery below reads: the customers in scope (int_customer_bounds: also the
      pre-hook's scope and the customer batches) and what says which days changed (the touchpoints
      and master-data versions landed after the watermark). customer_days_to_rebuild and
      rebuild_floor ref them whatever the branch, so that dbt records them as parents of every model
      that calls either (a daily run reads them; a full build does not). -#}
  {{ return({'bounds': ref('int_customer_bounds'), 'touchpoints': ref('int_touchpoints'),
             'versions': ref('int_customer_versions')}) }}
{%- endmacro %}

{% macro customer_days_to_rebuild(day_column='as_of_date') -%}
  {#- A select of (customer_id, rebuild_from): which customers to (re)build from which day. -#}
  {%- set inputs = customer_day_inputs() -%}
  {%- set bounds_relation = inputs['bounds'] -%}
  {%- set touchpoints_relation = inputs['touchpoints'] -%}
  {%- set versions_relation = inputs['versions'] -%}
  {%- if is_incremental() -%}
    {%- set watermark = incremental_watermark(this, 'inputs_landed_at') -%}
    select
        bounds.customer_id,
        greatest(bounds.first_day, least(
            coalesce({{ add_days('done.last_day', 1) }}, bounds.first_day),
            coalesce(touched.first_changed_day, {{ add_days('done.last_day', 1) }}, bounds.first_day),
            coalesce(versioned.first_changed_day, {{ add_days('done.last_day', 1) }}, bounds.first_day)
        )) as rebuild_from
    from {{ bounds_relation }} as bounds
    left join (
        {#- Every run extends each customer it keeps to the as-of date, so the customers stored
            are those on the newest stored day: reading that day only spares a daily run a scan
            of the whole history. A customer missing there would count as new and be rebuilt
            from its first day: slower, never wrong. -#}
        select customer_id, {{ day_column }} as last_day
        from {{ this }}
        where {{ day_column }} = (select max({{ day_column }}) from {{ this }})
    ) as done on done.customer_id = bounds.customer_id
    left join (
        select customer_id, min(event_date) as first_changed_day
        from {{ touchpoints_relation }}
        where landed_at > {{ watermark }}
        group by customer_id
    ) as touched on touched.customer_id = bounds.customer_id
    left join (
        select customer_id, min(valid_from) as first_changed_day
        from {{ versions_relation }}
        where landed_at > {{ watermark }}
        group by customer_id
    ) as versioned on versioned.customer_id = bounds.customer_id
  {%- else -%}
    select customer_id, first_day as rebuild_from
    from {{ bounds_relation }}
    where {{ customer_batch_filter('customer_id') }}
  {%- endif -%}
{%- endmacro %}

{% macro prune_customer_days(day_column='as_of_date') -%}
  {#- pre-hook: record which days this run rewrites (their data tests check those: macros/
      rebuilt_rows.sql), then drop days after the as-of date (backfills) and customers no longer
      in scope (erased by a tombstone), so incremental tables match a full refresh. -#}
  {%- if is_incremental() -%}
    {{ hook_sql(rebuilt_rows_statements(day_column ~ ' >= ' ~ rebuild_floor(day_column))
                + delete_rows(this, day_column ~ ' > ' ~ as_of_date_literal())
                + delete_rows(this, 'customer_id not in (select customer_id from ' ~ customer_day_inputs()['bounds'] ~ ')')) }}
  {%- else -%}
    select 1
  {%- endif -%}
{%- endmacro %}

{% macro prune_touchpoints() -%}
  {#- pre-hook of fct_touchpoints: record which events this run rewrites (those landed after the
      watermark, or dated after the newest stored day), then events after the as-of date and
      erased customers go. -#}
  {%- if is_incremental() -%}
    {%- set newest = run_query("select max(event_date) from " ~ this).columns[0].values()[0] if execute else none -%}
    {{ hook_sql(rebuilt_rows_statements(
         "landed_at > " ~ incremental_watermark(this, 'landed_at') ~ " or event_date > cast('" ~ newest ~ "' as date)"
         if newest is not none else '1 = 1')
       + delete_rows(this, 'event_date > ' ~ as_of_date_literal())
       + delete_rows(this, 'customer_id in (select customer_id from ' ~ ref('int_customers_erased') ~ ')')) }}
  {%- else -%}
    select 1
  {%- endif -%}
{%- endmacro %}

{% macro record_landed_rows() -%}
  {#- pre-hook of the append-only landing stage: it writes only batches landed after its watermark. -#}
  {%- if is_incremental() -%}
    {%- set watermark = incremental_watermark(this, 'landed_at') -%}
    {{ record_rebuilt_rows('1 = 1' if watermark.startswith('cast(null') else 'landed_at > ' ~ watermark) }}
  {%- else -%}
    select 1
  {%- endif -%}
{%- endmacro %}

{% macro rebuild_floor(day_column='as_of_date') -%}
  {#- The earliest day any customer is rebuilt from in this incremental run, as a SQL date literal
      (none on a full refresh): lets the windows skip stored days that cannot matter. -#}
  {%- do customer_day_inputs() -%}
  {%- if not is_incremental() or not execute -%}{{ return(none) }}{%- endif -%}
  {{ return(earliest_day(customer_days_to_rebuild(day_column), 'rebuild_from')) }}
{%- endmacro %}

{% macro looked_back_days(column, days_back, since, last_day) -%}
  {#- `column` is a day a daily run looks back to: n days before a day it rebuilds (since ..
      last_day), for an n of days_back (a number or a list); one date range per n, so that a scan
      of the stored table reads only those days. -#}
  {%- set offsets = [days_back] if days_back is number else days_back -%}
  ({% for n in offsets %}{{ column }} between {{ add_days(since, -n) }} and {{ add_days(last_day, -n) }}{{ ' or ' if not loop.last }}{% endfor %})
{%- endmacro %}

{% macro earliest_day(select_sql, column) -%}
  {#- min(column) of select_sql, run now, as a SQL date literal; the day after the as-of date when
      it has no rows (nothing to rebuild: every day-bounded filter then selects nothing). -#}
  {%- set value = run_query("select min(" ~ column ~ ") from (" ~ select_sql ~ ") as found").columns[0].values()[0] -%}
  {%- if value is none -%}
    {{ return(add_days(as_of_date_literal(), 1)) }}
  {%- endif -%}
  {{ return("cast('" ~ value.strftime('%Y-%m-%d') ~ "' as date)") }}
{%- endmacro %}

{% macro portfolio_days_stored_until() -%}
  {#- The newest day int_portfolio_days holds, as a date literal (none when empty). -#}
  {%- if not execute -%}{{ return(none) }}{%- endif -%}
  {%- set value = run_query("select max(date_day) from " ~ this).columns[0].values()[0] -%}
  {%- if value is none -%}{{ return(none) }}{%- endif -%}
  {{ return("cast('" ~ value.strftime('%Y-%m-%d') ~ "' as date)") }}
{%- endmacro %}

{% macro prune_portfolio_days() -%}
  {#- pre-hook: a backfill (as-of date moved back) drops the days after it; they are estimated
      again when a run reaches them. -#}
  {%- if is_incremental() -%}
    {%- set stored = portfolio_days_stored_until() -%}
    {{ hook_sql(rebuilt_rows_statements('1 = 1' if stored is none else 'date_day > least(' ~ stored ~ ', ' ~ drift_last_day() ~ ')')
                + delete_rows(this, 'date_day > ' ~ drift_last_day())) }}
  {%- else -%}
    select 1
  {%- endif -%}
{%- endmacro %}
