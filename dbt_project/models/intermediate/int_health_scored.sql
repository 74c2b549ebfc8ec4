{#- The relationship scorecard per customer per day: five areas scored 0-100, the weighted health
    score, the red / yellow / green status and the drivers in plain words (worst area first).
    Every parameter is in config/scoring.yml (section `health`); docs/warehouse.md explains each
    rule. An area without evidence yet (a brand-new customer) scores `no_evidence_score`, so a
    customer we hardly know is neither praised nor alarmed. -#}
{{ health_scored_sql(ref('int_customer_windows')) }}
