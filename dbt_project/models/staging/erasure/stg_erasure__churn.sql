{#- Erased customers that churned, per month, account manager and reason (source erasure.erased_churn:
    counts the erasure register keeps, no customer named). Read by fct_case_feedback_monthly so that
    tombstoned customers count among the churned ones. -#}
select
    cast(month_start as date) as month_start,
    cast(account_manager_id as {{ dbt.type_string() }}) as account_manager_id,
    cast(churn_reason as {{ dbt.type_string() }}) as churn_reason,
    cast(customers as {{ dbt.type_int() }}) as customers,
    cast(with_case as {{ dbt.type_int() }}) as with_case
from {{ source('erasure', 'erased_churn') }}
