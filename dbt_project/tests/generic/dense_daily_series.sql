{#- Each `key` has exactly one row per day between its first and last day: the full build reads
    "n days ago" as "n rows back" in the key's series (int_customer_windows), which holds
    only for a gap-free series. Duplicates are unique_combination's to find; a gap shows here. -#}
{% test dense_daily_series(model, key, day) %}
select {{ key }}, count(*) as rows_stored,
       {{ days_between('min(' ~ day ~ ')', 'max(' ~ day ~ ')') }} + 1 as days_spanned
from {{ model }}
group by {{ key }}
having count(*) <> {{ days_between('min(' ~ day ~ ')', 'max(' ~ day ~ ')') }} + 1
{% endtest %}
