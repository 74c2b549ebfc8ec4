{#- Customer batches: a full build of a customer-day table in parts, so that its memory does not
    grow with the number of customers.

    A full build of a customer-day model sorts and windows every customer's whole daily series
    (partition by customer_id order by as_of_date). Each customer's rows depend on that customer
    only, so the table can be built for one range of customers at a time: the working set of each
    part is one batch, whatever the size of the history.

    How: a model that opts in has `customer_batched=true` and the post-hook
    `insert_customer_batches()`. On DuckDB, when its full build would write more than
    LOYALTY_CUSTOMER_BATCH_ROWS customer-days (settings.customer_batch_rows), the customers of
    int_customer_bounds are cut, in customer_id order, into consecutive ranges of at most about
    that many customer-days each. The model's SQL restricts the customers it reads to the first
    range (`customer_batch_filter`: in customer_days_to_rebuild, and where a full build reads a
    customer-day table before it joins the customers to rebuild), the materialization creates the
    table from it as usual, and the post-hook inserts the other ranges with the same compiled SQL,
    the range replaced, in the same transaction. Each range is contiguous, so each part is stored
    in row groups of its own and the next model's part reads only those (DuckDB skips row groups
    by their min/max).

    A daily run (incremental) is never batched: it rebuilds a few days per customer. PostgreSQL
    and Spark manage their memory themselves and build in one statement. Batched and unbatched
    builds give identical rows (tests/loyalty_monitor/warehouse/test_warehouse_batches.py). -#}

{% macro customer_batch_rows() -%}
  {{ return(env_var('LOYALTY_CUSTOMER_BATCH_ROWS', '0') | int) }}
{%- endmacro %}

{% macro customer_batches(in_post_hook=false) -%}
  {#- This model's customer ranges [(first, last), ...] when its full build runs in batches, else
      []. Read at execution only; the same query gives the same ranges in the model and its
      post-hook (which runs after the table exists: the batch marker in the compiled SQL, not
      is_incremental(), tells it that the build was a batched one). -#}
  {%- if not execute or target.type != 'duckdb' or not config.get('customer_batched', false)
         or (is_incremental() and not in_post_hook) -%}
    {{ return([]) }}
  {%- endif -%}
  {%- set rows_per_batch = customer_batch_rows() -%}
  {%- if rows_per_batch <= 0 -%}{{ return([]) }}{%- endif -%}
  {%- set query -%}
    select min(customer_id) as first_customer, max(customer_id) as last_customer
    from (
        select
            customer_id,
            floor((sum(days) over (order by customer_id rows between unbounded preceding and current row) - days)
                  / {{ rows_per_batch }}) as batch
        from (
            select customer_id, {{ days_between('first_day', as_of_date_literal()) }} + 1 as days
            from {{ ref('int_customer_bounds') }}
        ) as customers
    ) as numbered
    group by batch
    order by batch
  {%- endset -%}
  {%- set ranges = run_query(query).rows | map('list') | list -%}
  {{ return(ranges if ranges | length > 1 else []) }}
{%- endmacro %}

{% macro customer_batch_range(ranges, index) -%}
  {#- The text of batch `index` (0-based) that follows the column in the filter. -#}
  between {{ sql_string(ranges[index][0]) }} and {{ sql_string(ranges[index][1]) }} /* customer batch {{ index + 1 }} of {{ ranges | length }} */
{%- endmacro %}

{% macro customer_batch_filter(column) -%}
  {#- A predicate on `column` (a customer_id) that keeps the first batch's customers when this
      model is built in batches (the post-hook swaps the range for the others); else 1 = 1. -#}
  {%- set ranges = customer_batches() -%}
  {%- if ranges -%}
    {{ column }} {{ customer_batch_range(ranges, 0) }}
  {%- else -%}
    1 = 1
  {%- endif -%}
{%- endmacro %}

{% macro insert_customer_batches() -%}
  {#- post-hook: the batches after the first, each with the model's compiled SQL for its range. -#}
  {%- set code = model.compiled_code or '' -%}
  {%- if '/* customer batch 1 of ' not in code -%}
    select 1
  {%- else -%}
    {%- set ranges = customer_batches(in_post_hook=true) -%}
    {%- set first = customer_batch_range(ranges, 0) if ranges else '' -%}
    {%- if not ranges or first not in code -%}
      {{ exceptions.raise_compiler_error("customer batches of " ~ this ~ " changed between the model and its post-hook") }}
    {%- endif -%}
    {%- for index in range(1, ranges | length) %}
    insert into {{ this }}
    {{ code | replace(first, customer_batch_range(ranges, index)) }};
    {%- endfor %}
  {%- endif -%}
{%- endmacro %}
