"""Churn-risk alerts to account managers, and notices to data engineers.

- ``notify_data_engineers(settings, subject, text, html=None)``: failed runs, failed quality gates.
- ``dispatch_alerts(settings, as_of)``: deliver the due rows of ``published.fct_churn_alerts``.
- ``list_alerts(settings, status=None, manager=None, since=None, limit=None)``: alerts with their
  delivery state (``ops.alert_state``).
"""

from loyalty_monitor.alerting.channels import DeliveryError, build_channels, redact_url
from loyalty_monitor.alerting.dispatch import (
    AlertDeliveryError,
    AlertPolicy,
    DispatchResult,
    dispatch_alerts,
    list_alerts,
    load_policy,
    notify_data_engineers,
)

__all__ = [
    "AlertDeliveryError", "AlertPolicy", "DeliveryError", "DispatchResult", "build_channels",
    "dispatch_alerts", "list_alerts", "load_policy", "notify_data_engineers", "redact_url",
]
