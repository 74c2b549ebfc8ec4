"""``loyalty report`` (the leadership report) and ``loyalty demo`` (the whole product, end to end)."""

from __future__ import annotations

import argparse

from loyalty_core.dates import cli_date
from loyalty_core.settings import load_settings
from loyalty_monitor.cli._common import example, output_file

_date = cli_date


def cmd_report(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor.progress import steps_progress

    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor.reporting import render, render_report

    update, done = steps_progress("writing the report", render.STEPS)
    try:
        path = render_report(load_settings(), args.out, args.period_start, args.period_end, on_progress=update)
    finally:
        done()
    print(f"leadership report written to {path.resolve()}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor.demo import run_demo

    summary = run_demo(load_settings(), customers=args.customers, months=args.months, fresh=args.fresh,
                       seed=args.seed, keep_broker=args.keep_broker, end=args.end)
    return 0 if summary.ok else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write the leadership report: one self-contained HTML file",
                       **example("loyalty report --out report.html --period-end 2026-10-31"))
    p.add_argument("--out", type=output_file, required=True, help="HTML file to write (e.g. report.html)")
    p.add_argument("--period-start", type=_date, default=None,
                   help="first day of the period (default: 12 weeks before the period end)")
    p.add_argument("--period-end", type=_date, default=None,
                   help="last day of the period (default: the latest as-of date in the warehouse)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="run the whole product on a generated history: broker, Kafka, "
                                    "landing, dbt, quality gate, alerts, report",
                       **example("loyalty demo --customers 200 --months 12 --fresh"))
    p.add_argument("--customers", type=int, default=500, help="customers to generate (default 500)")
    p.add_argument("--months", type=int, default=18, help="months of history (default 18)")
    p.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    p.add_argument("--end", type=_date, default=None,
                   help="last day of the history and the pipeline's as-of date (default: yesterday, UTC)")
    p.add_argument("--fresh", action="store_true",
                   help="delete the previous demo's data first (default: reuse what is still valid)")
    p.add_argument("--keep-broker", action="store_true",
                   help="leave the embedded broker running afterwards (default: stop it)")
    p.set_defaults(func=cmd_demo)

