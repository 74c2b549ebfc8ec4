"""``loyalty generate``: write a seeded touchpoint history with its ground truth (see docs/generator.md)."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date

from loyalty_monitor.cli._common import example, positive_float, positive_int, share


def cmd_generate(args: argparse.Namespace) -> int:
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_core.settings import load_settings

    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor.generator import generate

    out = args.out or load_settings().data_dir / "generated"
    started = time.monotonic()

    def show_progress(fraction: float, lines: int) -> None:
        rate = lines / max(time.monotonic() - started, 1e-9)
        print(f"generate: {fraction:6.1%} of the history, {lines:,} lines written ({rate:,.0f}/s)",
              file=sys.stderr, flush=True)

    summary = generate(out, customers=args.customers, start=args.start, end=args.end, seed=args.seed,
                       events_per_customer_month=args.events_per_customer_month,
                       target_events=args.target_events, churn_share=args.churn_share,
                       churn_shape=args.churn_shape, seasonality=args.seasonality,
                       segment_mix=args.segment_mix, opportunity_rate=args.opportunity_rate,
                       progress=show_progress)
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


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError("must be a finite number >= 0")
    return value


def _segment_mix(text: str) -> dict[str, float]:
    """``key=0.6,growth=0.3,standard=0.1`` -> {"key": 0.6, ...}."""
    # the command's own dependencies, loaded when it runs (cli/__init__.py)
    from loyalty_monitor.generator import SEGMENTS

    known = [name for name, _ in SEGMENTS]
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, sep, weight = part.partition("=")
        name = name.strip()
        if not sep or name not in known:
            raise argparse.ArgumentTypeError(
                f"{part.strip()!r}: expected SEGMENT=WEIGHT with SEGMENT one of {', '.join(known)}")
        try:
            mix[name] = float(weight)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{weight.strip()!r} is not a number") from None
        if not mix[name] >= 0 or mix[name] == float("inf"):
            raise argparse.ArgumentTypeError(f"{name}: the weight must be a finite number >= 0")
    if sum(mix.values()) <= 0:
        raise argparse.ArgumentTypeError("at least one weight must be positive")
    return mix


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="write a realistic, seeded touchpoint history with ground truth",
                       description="Write customers.jsonl, touchpoints.jsonl (send order, with re-sent\n"
                                   "duplicates, late and malformed lines) and ground_truth.json.",
                       **example("loyalty generate --customers 500 --end 2026-10-31 --seed 7 --out data/generated"))
    p.add_argument("--customers", type=positive_int, default=500, help="number of customers (default 500)")
    p.add_argument("--start", type=_iso_date, default=None,
                   help="first day, YYYY-MM-DD (default: 18 months before --end)")
    p.add_argument("--end", type=_iso_date, default=None,
                   help="last day, YYYY-MM-DD (default: today, UTC)")
    p.add_argument("--seed", type=int, default=42, help="random seed: same seed, same files (default 42)")
    p.add_argument("--out", default=None, help="output directory (default: <data_dir>/generated)")
    p.add_argument("--events-per-customer-month", type=positive_float, default=None,
                   help="scale the volume per customer (default mix: about 5)")
    p.add_argument("--target-events", type=positive_int, default=None,
                   help="pick the number of customers to give about this many valid events "
                        "(overrides --customers)")
    p.add_argument("--churn-share", type=share, default=0.17,
                   help="share of customers that drift away and churn (default 0.17; e.g. 0.02 for a "
                        "calm portfolio)")
    p.add_argument("--churn-shape", choices=("fade", "sudden", "slow", "champion"), default="fade",
                   help="how churners drift away: fade (default: linear over 45-180 days), sudden (full "
                        "drift from the first day, orders stop at once; 7-21 days), slow (linear over "
                        "150-210 days), champion (the champion leaves: reached below decision level at "
                        "once, executive meetings stop, dialogue falls only to 0.6; 90-180 days)")
    p.add_argument("--seasonality", type=_non_negative_float, default=1.0,
                   help="strength of the seasonal dips: 0 none, 1 default (summer, Christmas), above 1 "
                        "deeper dips plus a quiet August and the week after Easter Monday")
    p.add_argument("--segment-mix", type=_segment_mix, default=None, metavar="SEG=W,...",
                   help="segment weights instead of key 0.15, growth 0.30, standard 0.55, e.g. "
                        "key=0.6,growth=0.3,standard=0.1 (normalised; segments left out get none)")
    p.add_argument("--opportunity-rate", type=_non_negative_float, default=1.0,
                   help="scale the sales opportunities (contract 1.1; default 1: key accounts about 3 "
                        "deals a year, growth 1.5, standard 0.6; 0 = none)")
    p.set_defaults(func=cmd_generate)
