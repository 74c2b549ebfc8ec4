"""``loyalty run``, ``loyalty alerts list``, ``loyalty up`` and ``loyalty down``."""

from __future__ import annotations

import argparse
import json
import sys

from loyalty_core.dates import cli_date, parse_as_of
from loyalty_core.settings import load_settings
from loyalty_monitor.cli._common import example

_date = cli_date


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def cmd_run(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor import stack

    settings = load_settings()
    if args.start or args.end:
        if not (args.start and args.end):
            raise ValueError("--start and --end go together")
        dates = stack.date_range(args.start, args.end, args.step)
    else:
        dates = [parse_as_of(args.as_of)]
    for day in (max(dates), min(dates)):  # before anything is started or written
        stack.pipeline.check_run_date(settings, day)
    log_file = None if args.verbose else stack.run_log_file(settings)
    outcomes = stack.run_dates(settings, dates, log_file=log_file)
    failure = stack.run_failure(settings, dates, outcomes, log_file)
    if failure:
        print(f"loyalty run: {failure}")
    return 1 if failure else 0


def cmd_alerts(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor.alerting import list_alerts

    rows = list_alerts(load_settings(), status=args.status, manager=args.manager, since=args.since,
                       limit=args.limit)
    if args.format == "json":
        print(json.dumps(rows, indent=2, default=str))
        return 0
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from rich.console import Console

    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from rich.table import Table

    filters = [f for f in (args.status, args.manager and f"manager {args.manager}",
                           args.since and f"since {args.since}", args.limit is not None and f"first {args.limit}") if f]
    table = Table(title=f"churn alerts{' (' + ', '.join(filters) + ')' if filters else ''}: {len(rows)}")
    # the alert id is what `loyalty alerts ack|snooze|close|feedback` take (a churn-risk case's id)
    table.add_column("alert id", no_wrap=True)
    for column in ("status", "channel", "alert date", "customer", "severity", "at stake", "recipient",
                   "attempts", "sent at", "last error"):
        table.add_column(column)
    for r in rows:
        stake = f"{r['value_at_stake']:,.0f} {r['currency'] or ''}" if r["value_at_stake"] is not None else ""
        status = f"held: {r['held_because']}" if r.get("held_because") else r["status"]
        table.add_row(r["alert_id"] or "", status, r["channel"] or "", str(r["alert_date"] or ""),
                      f"{r['customer_name'] or ''} ({r['customer_id'] or r['alert_id']})", r["severity"] or "",
                      stake.strip(), r["recipient"] or "", str(r["attempts"] or ""),
                      str(r["sent_at"] or "")[:19], (r["last_error"] or "")[:60])
    # Piped output is not cut to 80 columns: people pipe this into less or grep.
    Console(width=None if sys.stdout.isatty() else 240).print(table)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor import stack

    info = stack.up(load_settings(), port=args.port, host=args.host, wait_s=args.wait)
    return 1 if info["ui_answers"] is False else 0


def cmd_down(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor import stack

    stack.down(load_settings())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the pipeline DAG end to end in-process (dag.test), for a date or a range",
                       **example("loyalty run --as-of 2026-10-31",
                                 "loyalty run --start 2026-10-01 --end 2026-10-31 --step 7"))
    p.add_argument("--as-of", type=_date, help="logical date to compute (default: today, UTC)")
    p.add_argument("--start", type=_date, help="first date of a backfill")
    p.add_argument("--end", type=_date, help="last date of a backfill (inclusive)")
    p.add_argument("--step", type=int, default=1, help="days between backfill runs (default 1)")
    p.add_argument("--verbose", action="store_true",
                   help="show Airflow's, dbt's and the quality gate's output here instead of in a log file")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("alerts", help="churn alerts and their delivery state",
                       **example("loyalty alerts list --status failed"))
    alerts = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = alerts.add_parser("list", help="list alerts with status, channel, attempts and last error",
                          **example("loyalty alerts list --manager anna@example.com --since 2026-10-01 --limit 20",
                                    "loyalty alerts list --status failed --format json | jq '.[].last_error'"))
    q.add_argument("--status", choices=["sent", "failed", "undeliverable", "capped", "expired", "pending", "held"],
                   help="pending: not handled by dispatch yet; held: its case is snoozed or closed")
    q.add_argument("--manager", metavar="EMAIL|NAME",
                   help="only this account manager's alerts: e-mail address, or part of the name")
    q.add_argument("--since", type=_date, metavar="YYYY-MM-DD", help="only alerts dated on or after this day")
    q.add_argument("--limit", type=_non_negative_int, metavar="N", help="only the first N rows (failed first)")
    q.add_argument("--format", choices=["table", "json"], default="table")
    q.set_defaults(func=cmd_alerts)

    p = sub.add_parser("up", help="start broker, consumer, airflow standalone (UI on 127.0.0.1:8080) and the "
                                  "account managers' web app (loyalty web, 127.0.0.1:8050)",
                       **example("loyalty up --port 8081"))
    p.add_argument("--port", type=int, default=8080, help="Airflow UI port (default 8080)")
    p.add_argument("--host", default=None,
                   help="address the Airflow UI listens on (default LOYALTY_AIRFLOW_HOST or 127.0.0.1: this "
                        "machine only; 0.0.0.0: every interface)")
    p.add_argument("--wait", type=float, default=300.0, metavar="SECONDS",
                   help="wait up to this long until the Airflow UI answers (default 300; 0: do not wait); "
                        "exit 1 if it does not")
    p.set_defaults(func=cmd_up)
    p = sub.add_parser("down", help="stop what `loyalty up` started", **example("loyalty down"))
    p.set_defaults(func=cmd_down)
