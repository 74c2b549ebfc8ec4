"""The ``loyalty_weekly_report`` DAG's steps: the leadership report and the managers' weekly digests."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from loyalty_core.settings import Settings

log = logging.getLogger(__name__)


class NothingPublishedYet(Exception):
    """The warehouse holds no published data yet (a new installation before its first daily run):
    the weekly DAG skips its steps instead of failing and paging the data engineers."""


def require_published(settings: Settings) -> None:
    """Raise NothingPublishedYet before the first publish; a warehouse that cannot be reached (a
    PostgreSQL server down) is a real failure and raises WarehouseError as before."""
    # at run time: parsing the DAG file stays light
    from loyalty_core.marts import never_built

    # at run time: parsing the DAG file stays light
    from loyalty_monitor import warehouse

    if never_built(settings) or not warehouse.pipeline_runs(settings, limit=1):
        raise NothingPublishedYet(
            "nothing is published yet: the weekly report and digests start after the first daily run "
            "publishes (`loyalty run`, or the loyalty_pipeline DAG)")


def render_weekly_report(settings: Settings, period_end: dt.date) -> str:
    """The leadership report up to ``period_end`` (its default window: the 12 weeks before), as a file
    ``<data_dir>/reports/loyalty-report-<period_end>.html``; a rerun overwrites the same file."""
    # at run time: parsing the DAG file stays light
    from loyalty_monitor.reporting import render_report

    # at run time: parsing the DAG file stays light
    from loyalty_monitor.reporting.queries import PeriodBeforeData

    require_published(settings)
    out = settings.data_dir / "reports" / f"loyalty-report-{period_end.isoformat()}.html"
    try:
        return str(render_report(settings, out, period_end=period_end))  # it makes the directory
    except PeriodBeforeData as exc:
        # a new installation whose first day falls after the report's week: nothing of it yet (a
        # user who asks for such a period is refused, reporting/queries.resolve_period)
        raise NothingPublishedYet(f"the published days begin on {exc.first}, after the report's period end "
                                  f"{period_end}: the weekly report starts with the week after") from None


def send_weekly_digests(settings: Settings, week_end: dt.date) -> dict[str, Any]:
    """Each account manager's weekly digest for the ISO week holding ``week_end`` (alerting/weekly.py),
    once per manager and week; raise (after recording) if some could not be delivered.
    NothingPublishedYet before the first publish, as render_weekly_report."""
    # at run time: parsing the DAG file stays light
    from loyalty_monitor.alerting import AlertDeliveryError

    # at run time: parsing the DAG file stays light
    from loyalty_monitor.alerting.weekly import send_weekly_digests as send

    require_published(settings)
    result = send(settings, week_end)
    if result.failed:
        raise AlertDeliveryError(f"{result.failed} weekly digests failed for {result.week} (recorded in "
                                 f"ops.alert_state; a retry sends only those): " + "; ".join(result.errors[:5]))
    return {"week": result.week, "sent": result.sent, "already_done": result.already_done,
            "skipped": result.skipped}
