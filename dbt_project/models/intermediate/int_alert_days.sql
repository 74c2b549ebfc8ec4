{#- Every customer-day on which an "action needed" rule holds: facts, not predictions (an
    unresolved high-severity complaint past its deadline; dunning escalation on a valuable customer
    without caring contact). One row per customer, day and rule (the flags of int_alert_flags,
    unpivoted), after the warm-up: the rules of config/scoring.yml `alerts.rules` without a
    `reason` (action_needed_rules). The scorecard rules (those with a reason) raise no alerts of
    their own: they are reasons inside a churn-risk case (fct_churn_risk_cases), whose opening the
    drift model decides. -#}
{%- set rules = scoring('alerts.rules') %}

with alert_flags {{ inlined() }} (
    select * from {{ ref('int_alert_flags') }}
)

{% for rule in action_needed_rules() -%}
select
    customer_id,
    as_of_date,
    '{{ rule }}' as rule,
    '{{ rules[rule]['severity'] }}' as severity,
    case '{{ rules[rule]['severity'] }}' when 'high' then 3 when 'medium' then 2 else 1 end as severity_rank
from alert_flags
where past_warmup and {{ rule }}
{{ 'union all' if not loop.last }}
{% endfor %}
