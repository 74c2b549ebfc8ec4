"""``loyalty generate``: write a seeded touchpoint history with its ground truth (see docs/generator.md)."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date


def cmd_generate(args: argparse.Namespace) -> int:
    from loyalty_monitor.generator import generate
    from loyalty_monitor.settings import load_settings

    out = args.out or load_settings().data_dir / "generated"
    started = time.monotonic()

    def show_progress(fraction: float, lines: int) -> None:
        rate = lines / max(time.monotonic() - started, 1e-9)
        print(f"generate: {fraction:6.1%} of the history, {lines:,} lines written ({rate:,.0f}/s)",
              file=sys.stderr, flush=True)

    summary = generate(out, customers=args.customers, start=args.start, end=args.end, seed=args.seed,
                       events_per_customer_month=args.events_per_customer_month,
                       target_events=args.target_events, progress=show_progress)
    print(f"wrote {summary.touchpoint_lines:,} touchpoint lines ({summary.valid_events:,} valid events, "
          f"{summary.duplicates:,} re-sent duplicates, {summary.late_events:,} late, "
          f"{summary.malformed:,} malformed) and {summary.customer_lines:,} customer lines for "
          f"{summary.customers:,} customers ({summary.churners:,} drift to churn, "
          f"{summary.deleted:,} deleted), {summary.start} to {summary.end}, seed {summary.seed}, "
          f"in {summary.seconds:.1f} s ({summary.events_per_second:,.0f} lines/s)")
    print(f"files: {summary.customers_file}, {summary.touchpoints_file}, {summary.ground_truth_file}")
    return 0


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="write a realistic, seeded touchpoint history with ground truth",
                       description="Write customers.jsonl, touchpoints.jsonl (send order, with re-sent "
                                   "duplicates, late and malformed lines) and ground_truth.json.")
    p.add_argument("--customers", type=_positive_int, default=500, help="number of customers (default 500)")
    p.add_argument("--start", type=_iso_date, default=None,
                   help="first day, YYYY-MM-DD (default: 18 months before --end)")
    p.add_argument("--end", type=_iso_date, default=None,
                   help="last day, YYYY-MM-DD (default: today, UTC)")
    p.add_argument("--seed", type=int, default=42, help="random seed: same seed, same files (default 42)")
    p.add_argument("--out", default=None, help="output directory (default: <data_dir>/generated)")
    p.add_argument("--events-per-customer-month", type=_positive_float, default=None,
                   help="scale the volume per customer (default mix: about 5)")
    p.add_argument("--target-events", type=_positive_int, default=None,
                   help="pick the number of customers to give about this many valid events "
                        "(overrides --customers)")
    p.set_defaults(func=cmd_generate)
