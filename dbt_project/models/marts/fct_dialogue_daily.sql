{#- Dialogue frequency per customer per day: contacts in the trailing 30 and 90 days by
    department and kind, the dialogue rhythm (days since the last two-way dialogue, the usual gap,
    the gap ratio), follow-up after the last order and the friction share of recent contact.
    The windows and the rhythm are int_customer_windows'. Incremental by customer-day (see
    macros/incremental.sql). -#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['customer_id', 'as_of_date'],
    on_schema_change='append_new_columns',
    pre_hook="{{ prune_customer_days() }}",
    customer_batched=true,
    post_hook="{{ insert_customer_batches() }}"
) }}
{%- set departments = contract_departments() -%}
{%- set since = rebuild_floor() %}

with windows as (
    select * from {{ ref('int_customer_windows') }}
),

rebuild as (
    {{ customer_days_to_rebuild() }}
)

select
    windows.customer_id,
    windows.as_of_date,
    windows.segment,
    windows.account_manager_id,
    {% for n in [30, 90] -%}
    cast(windows.contacts_{{ n }}d as {{ dbt.type_bigint() }}) as contacts_{{ n }}d,
    cast(windows.dialogues_{{ n }}d as {{ dbt.type_bigint() }}) as dialogues_{{ n }}d,
    cast(windows.caring_{{ n }}d as {{ dbt.type_bigint() }}) as caring_{{ n }}d,
    cast(windows.friction_{{ n }}d as {{ dbt.type_bigint() }}) as friction_{{ n }}d,
    cast(windows.neutral_{{ n }}d as {{ dbt.type_bigint() }}) as neutral_{{ n }}d,
    {% for d in departments -%}
    cast(windows.contacts_{{ d }}_{{ n }}d as {{ dbt.type_bigint() }}) as contacts_{{ d }}_{{ n }}d,
    {% endfor -%}
    {% endfor -%}
    windows.last_dialogue_date,
    cast(windows.days_since_dialogue as {{ dbt.type_bigint() }}) as days_since_dialogue,
    windows.usual_gap_basis,
    windows.segment_usual_gap_days,
    {{ round_to("windows.usual_gap_days", 1) }} as usual_gap_days,
    {{ round_to("windows.gap_ratio", 2) }} as gap_ratio,
    windows.last_order_date,
    windows.order_followed_up,
    windows.friction_share_recent,
    windows.caring_share_recent,
    windows.last_caring_date,
    windows.inputs_landed_at
from windows
inner join rebuild
    on rebuild.customer_id = windows.customer_id
   and windows.as_of_date >= rebuild.rebuild_from
where {{ customer_batch_filter('windows.customer_id') }}
{%- if since is not none %}
  and windows.as_of_date >= {{ since }}
{%- endif %}
