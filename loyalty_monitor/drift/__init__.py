"""The churn-drift model: population parameters (segment priors, the portfolio's seasonal profile,
BG/NBD) fitted in Python and stored in the warehouse; the daily per-customer evidence is scored in
dbt (models/intermediate/int_drift_*). See docs/warehouse.md, "The drift model"."""
