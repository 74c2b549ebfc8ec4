{#- Per customer per day: trailing-window counts (30/90 days and the windows scoring.yml names),
    the dialogue rhythm, and the master data valid that day. A view: the incremental marts read
    only the customer-days they rebuild, so the lag joins run on those rows only.

    Dialogue rhythm:
      days_since_dialogue  days since the last two-way dialogue; a customer that never had one
                           counts from its first day (silence since we have known it).
      usual_gap_days       the customer's own baseline: over the trailing baseline window (from
                           its start, or the customer's first day, to the last dialogue) the days
                           per dialogue day; once it has enough dialogue days and observed days
                           (dialogue.own_baseline_min_*). Until then, the segment's typical gap
                           (dialogue.segment_usual_gap_days). Clamped to [min_gap_days, max_gap_days].
      gap_ratio            days_since_dialogue / usual_gap_days. -#}
{{ customer_windows_sql() }}
