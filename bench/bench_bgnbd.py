"""BG/NBD on the real CDNOW sample: ``python -m bench.bench_bgnbd [--repeats N] [--out PATH]``.

Fits loyalty_monitor/drift/bgnbd.py on the calibration period of Fader, Hardie & Lee (2005),
"Counting your customers the easy way", Marketing Science 24(2) ("FHL"): 2,357 CDNOW customers,
weeks 1-39 of 1997, time in weeks. Prints, from one run on this machine:
- the fitted r, alpha, a, b and log-likelihood beside FHL's Table 2 (ratio ours / published);
- the 39-week holdout (weeks 40-78): the sum over customers of the conditional expectation
  (eq. 10) against the actual repeat transactions, and the cohort's cumulative repeat transactions
  by week 78 from eq. (7) against actual, beside FHL's "under-forecasting by ... 4%" (p. 281);
- the fit time (median of N fits; each fit runs three local searches, see ``fit``).
Writes bench/results/bgnbd.json. Needs the lifetimes wheel: scripts/fetch-datasets.sh (run by `make bench` and `make test`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from bench import positive_int, run_main

RESULTS = Path(__file__).parent / "results" / "bgnbd.json"
PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}   # FHL Table 2
PUBLISHED_LL = -9582.4
PUBLISHED_CUMULATIVE_ERROR = -0.04    # FHL p. 281: BG/NBD under-forecasts cumulative sales by 4%
TOLERANCE = 0.02                      # the tests' bound on each parameter's deviation
HOLDOUT_WEEKS = 39


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=5, help="fits to time (default 5)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"results file (default {RESULTS})")
    args = parser.parse_args()

    from loyalty_monitor.drift import cdnow
    from loyalty_monitor.drift.bgnbd import (
        conditional_expected_transactions,
        expected_transactions,
        fit,
        log_likelihood,
    )

    started = time.perf_counter()
    split = cdnow.calibration_holdout()
    load_s = time.perf_counter() - started
    times = []
    for _ in range(max(1, args.repeats)):
        started = time.perf_counter()
        params = fit(split.x, split.t_x, split.T)
        times.append(time.perf_counter() - started)
    fit_s = statistics.median(times)
    ll = log_likelihood(params, split.x, split.t_x, split.T)

    print(f"CDNOW sample: {len(split.ids):,} customers, calibration to {split.calibration_last_day}, "
          f"holdout to {split.holdout_last_day} (read in {load_s:.2f} s)")
    print(f"\n{'param':<7}{'fitted':>10}{'published':>11}{'ratio':>9}")
    rows = {}
    for name, published in PUBLISHED.items():
        ours = getattr(params, name)
        rows[name] = {"fitted": ours, "published": published, "ratio": ours / published}
        print(f"{name:<7}{ours:>10.4f}{published:>11.3f}{ours / published:>9.4f}"
              f"  {'OK' if abs(ours / published - 1) <= TOLERANCE else 'OFF'}")
    print(f"{'LL':<7}{ll:>10.1f}{PUBLISHED_LL:>11.1f}")

    forecast = conditional_expected_transactions(params, HOLDOUT_WEEKS, split.x, split.t_x, split.T)
    total, actual = float(forecast.sum()), float(split.holdout.sum())
    cumulative = float(expected_transactions(params, split.T + HOLDOUT_WEEKS).sum())
    actual_cumulative = float(split.x.sum()) + actual
    cumulative_error = cumulative / actual_cumulative - 1
    print(f"\nholdout, weeks 40-78, sum of eq. (10): {total:,.1f} forecast vs {actual:,.0f} actual "
          f"({total / actual - 1:+.1%}); FHL print no such total")
    print(f"cumulative repeat transactions by week 78, eq. (7): {cumulative:,.1f} vs "
          f"{actual_cumulative:,.0f} actual ({cumulative_error:+.1%}); FHL: {PUBLISHED_CUMULATIVE_ERROR:+.0%}")
    corr = float(np.corrcoef(split.holdout, forecast)[0, 1])
    zero = split.x == 0
    print(f"zero class: {forecast[zero].mean():.3f} forecast vs {split.holdout[zero].mean():.3f} actual "
          f"(FHL: 0.23 vs 0.24); correlation with actual {corr:.3f} (FHL: 0.626)")
    print(f"\nfit: {fit_s * 1000:.0f} ms (median of {len(times)}), {len(split.ids):,} customers")

    results = {
        "customers": len(split.ids), "params": rows, "log_likelihood": ll, "published_ll": PUBLISHED_LL,
        "holdout": {"weeks": HOLDOUT_WEEKS, "forecast_eq10": total, "actual": actual,
                    "error": total / actual - 1, "correlation": corr,
                    "zero_class_forecast": float(forecast[zero].mean()),
                    "zero_class_actual": float(split.holdout[zero].mean())},
        "cumulative_week_78": {"forecast_eq7": cumulative, "actual": actual_cumulative,
                               "error": cumulative_error, "published_error": PUBLISHED_CUMULATIVE_ERROR},
        "fit_seconds_median": fit_s, "fit_seconds": times, "load_seconds": load_s,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    run_main(main)
