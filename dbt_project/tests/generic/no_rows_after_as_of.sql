{#- Nothing after the as-of date is used: no row of the model is dated after it. -#}
{% test no_rows_after_as_of(model, column_name) %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} > {{ as_of_date_literal() }}
{% endtest %}
