{#- Every customer-day on which a churn-alert rule holds: one row per customer, day and rule
    (the flags of int_alert_flags, unpivoted), after the warm-up. -#}
{%- set rules = scoring('alerts.rules') %}

{% for rule in ['status_drop', 'sharp_health_drop', 'dialogue_gap', 'dunning_escalation', 'open_high_complaint'] -%}
select
    customer_id,
    as_of_date,
    '{{ rule }}' as rule,
    {% if rule == 'status_drop' %}status_drop_severity{% else %}'{{ rules[rule]['severity'] }}'{% endif %} as severity,
    case {% if rule == 'status_drop' %}status_drop_severity{% else %}'{{ rules[rule]['severity'] }}'{% endif %}
        when 'high' then 3 when 'medium' then 2 else 1 end as severity_rank
from {{ ref('int_alert_flags') }}
where past_warmup and {{ rule }}
{{ 'union all' if not loop.last }}
{% endfor %}
