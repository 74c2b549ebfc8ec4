"""``loyalty explain CUSTOMER``: why the drift model thinks a customer is (not) drifting away."""

from __future__ import annotations

import argparse
from pathlib import Path

from loyalty_core.dates import cli_date
from loyalty_core.settings import load_settings
from loyalty_monitor.cli._common import output_file, positive_int


def cmd_explain(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor.drift.explain import explain, render_html, render_text

    story = explain(load_settings(), args.customer, as_of=args.as_of, days=args.days)
    if args.html:
        path = Path(args.html)
        path.parent.mkdir(parents=True, exist_ok=True)  # as `loyalty report --out` does
        path.write_text(render_html(story), encoding="utf-8")
        print(f"written to {path.resolve()}")
    else:
        print(render_text(story))
    return 0


def days_shown(text: str) -> int:
    """``--days``: at least 1, and no more than a century (further back lies before any date)."""
    days = positive_int(text)
    if days > 36500:
        raise argparse.ArgumentTypeError(f"at most 36500 (a century), got {days}")
    return days


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "explain", help="show a customer's drift probability over time and what moved it",
        description="The drift model's story of one customer: the probability that the relationship is "
                    "drifting toward churn, day by day, and the evidence each signal added.",
        epilog="example: loyalty explain C000042 --as-of 2026-10-31 --html why-C000042.html",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("customer", help="customer id (as in the events and `loyalty alerts list`)")
    p.add_argument("--as-of", type=cli_date, default=None, help="last day to show (default: the latest built day)")
    p.add_argument("--days", type=days_shown, default=180, help="days to show (default 180, at most 36500)")
    p.add_argument("--html", type=output_file, default=None, metavar="FILE", help="write a page with a chart instead of printing")
    p.set_defaults(func=cmd_explain)
