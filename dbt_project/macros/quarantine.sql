{#- The quarantine (docs/quality.md "Quarantine"): landed rows the landing gate set aside because
    they failed a row-level critical expectation. Staging leaves out every row whose status is not
    `released` or `accepted`, keyed by dataset, Kafka lineage (kafka_topic, kafka_partition,
    kafka_offset) and record id (event_id of a touchpoint or case event, customer_id of a master-data
    record: offline loads number each file from 0). A row let in after it landed counts as landed when it was let in
    (`released_at`): that is when the warehouse learns of it, and it is what makes the incremental
    models pick it up and rebuild the days it changes, like any late-arriving event. On DuckDB the
    quarantine is the Parquet file at LOYALTY_QUARANTINE (expectations/quarantine.py writes it); on
    other warehouses a table ops.quarantine with the same columns. No quarantine: nothing is held. -#}

{% macro quarantine_relation() -%}
  {{ return(adapter.dispatch('quarantine_relation')()) }}
{%- endmacro %}

{% macro default__quarantine_relation() -%}
  {%- if not execute -%}{{ return(none) }}{%- endif -%}
  {{ return(adapter.get_relation(database=target.database, schema='ops', identifier='quarantine')) }}
{%- endmacro %}

{% macro duckdb__quarantine_relation() -%}
  {%- if not execute -%}{{ return(none) }}{%- endif -%}
  {%- set path = env_var('LOYALTY_QUARANTINE', '') | replace("'", "''") -%}
  {%- if not path -%}{{ return(none) }}{%- endif -%}
  {%- set found = run_query("select count(*) from glob('" ~ path ~ "')").columns[0].values()[0] -%}
  {{ return("read_parquet('" ~ path ~ "')" if found > 0 else none) }}
{%- endmacro %}

{% macro _quarantine_same_row(quarantine, row, dataset) -%}
  {%- set id_column = 'customer_id' if dataset == 'customer' else 'event_id' -%}
  {{ quarantine }}.kafka_topic is not distinct from {{ row }}.kafka_topic
  and {{ quarantine }}.kafka_partition = {{ row }}.kafka_partition
  and {{ quarantine }}.kafka_offset = {{ row }}.kafka_offset
  and {{ quarantine }}.{{ id_column }} is not distinct from {{ row }}.{{ id_column }}
{%- endmacro %}

{% macro quarantine_not_held(dataset, row) -%}
  {#- SQL condition: the landed row `row` (an alias) is not held in quarantine. -#}
  {%- set relation = quarantine_relation() -%}
  {%- if relation is none -%}
    1 = 1
  {%- else -%}
    not exists (
        select 1 from {{ relation }} as held
        where held.dataset = '{{ dataset }}' and held.status not in ('released', 'accepted')
          and {{ _quarantine_same_row('held', row, dataset) }}
    )
  {%- endif -%}
{%- endmacro %}

{% macro quarantine_landed_at(dataset, row, landed_at) -%}
  {#- `landed_at` (an expression, UTC), or the instant the row was let in if it was quarantined. -#}
  {%- set relation = quarantine_relation() -%}
  {%- if relation is none -%}
    {{ landed_at }}
  {%- else -%}
    greatest({{ landed_at }}, (
        select max({{ to_utc('admitted.released_at') }}) from {{ relation }} as admitted
        where admitted.dataset = '{{ dataset }}' and admitted.status in ('released', 'accepted')
          and {{ _quarantine_same_row('admitted', row, dataset) }}
    ))
  {%- endif -%}
{%- endmacro %}

{% macro _quarantine_let_in_after(quarantine, dataset, watermark) -%}
  {{ quarantine }}.dataset = '{{ dataset }}' and {{ quarantine }}.status in ('released', 'accepted')
  and {{ to_utc(quarantine ~ '.released_at') }} > {{ watermark }}
{%- endmacro %}

{% macro quarantine_let_in_since(dataset, row, watermark) -%}
  {#- For an incremental read of landed rows newer than `watermark`: an `or` condition that also
      reads the rows let in from quarantine after it (they landed before it). Empty when there are
      none, so a daily run keeps its pruned scan; the run after a release reads their dates. -#}
  {%- set relation = quarantine_relation() -%}
  {%- if relation is none or not execute -%}{{ return('') }}{%- endif -%}
  {%- set dates = run_query("select distinct cast(q.event_date as " ~ dbt.type_string() ~ ") from " ~ relation ~ " as q where "
                            ~ _quarantine_let_in_after('q', dataset, watermark) ~ " and q.event_date is not null"
                            ).columns[0].values() -%}
  {%- if dates | length == 0 -%}{{ return('') }}{%- endif -%}
  or ({{ row }}.event_date in ({% for day in dates %}cast('{{ day }}' as date){{ ", " if not loop.last }}{% endfor %})
      and exists (select 1 from {{ relation }} as admitted
                  where {{ _quarantine_let_in_after('admitted', dataset, watermark) }}
                    and {{ _quarantine_same_row('admitted', row, dataset) }}))
{%- endmacro %}
