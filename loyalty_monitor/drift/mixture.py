"""Population step of the drift model: how this portfolio's drifts show, learned from its own history.

A drift may show in all streams together (the fade: less dialogue, fewer orders, more friction) or
in one alone (a champion leaves: the dialogue goes on, with the wrong people). ``int_drift_days``
weighs, per window, the evidence of these alternatives as a mixture. Which of them a portfolio's
drifts take is not a constant of nature: one portfolio loses customers by fading, another by
losing its champions. So the weights are population parameters, estimated like the segment rates
(empirical Bayes): by EM over the evidence of every customer-day of the trailing
``drift.segment_window_days``, a customer-day's weight in the update being the probability that it
is in a drift, with the configured weights (``drift.single_stream_share``) as a Dirichlet prior worth
``drift.mixture_prior_drift_days`` customer-days in a drift. The evidence per window and stream is
read from ``int_drift_window_evidence`` (the same formula as ``int_drift_days``); it does not depend
on the weights, so the fit has no feedback through its own output.

Fitted weekly with the BG/NBD parameters (``population.refresh``), stored in
``build.drift_mixture_weights`` (one row per fit and alternative: the history of the weights). A fit
takes effect on the first day ``int_drift_days`` has not scored yet, so a scored day keeps the
weights it was scored with, and a full refresh (which reads the same history of fits) gives the same
rows as the daily runs. ``backfill`` writes the fits the weekly step would have made over a whole
history (a new installation's first build, ``loyalty warehouse build --refit``, the benchmark); the
drift model must then be built again with a full refresh.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loyalty_core.marts import open_marts
from loyalty_core.settings import Settings
from loyalty_monitor.scoring import load_scoring

log = logging.getLogger(__name__)

WEIGHTS_TABLE = "build.drift_mixture_weights"
EVIDENCE_VIEW = "build.int_drift_window_evidence"
#: The alternative "all streams together" (the others are named by their stream).
ALL = "all"
#: At most this many customer-days enter one fit: the days read are spread evenly over the
#: trailing window (consecutive days of a customer say much the same), every ``stride`` days. Eight
#: weights are well determined by far fewer; at 1M events a fit on 890k customer-days took 29 s and,
#: read as Python rows, 7 GiB.
MAX_CUSTOMER_DAYS = 250_000
#: ... and the days are at most 13 apart (28 a year, rotating through the weekdays), so that no one
#: day (Christmas) makes a fit; a portfolio too large for the cap on those days is thinned by
#: customer instead (every n-th customer of each day, by customer_id): at 160k customers the cap
#: alone would leave two days. (PostgreSQL orders customer_id by its collation: with a non-C locale
#: it may read other customers than DuckDB or Spark, an equally good sample.)
MAX_DAYS_APART = 13
#: A weight never falls below this: an alternative the portfolio has not shown yet stays possible.
MIN_WEIGHT = 1e-6


@dataclass(frozen=True)
class MixtureFit:
    effective_from: dt.date
    weights: dict[str, float]
    customer_days: int
    drift_days: float
    iterations: int


@dataclass(frozen=True)
class _Model:
    streams: list[str]
    windows: list[int]
    prior: dict[str, float]
    prior_drift_days: float
    prior_share: float
    min_observed: int
    trailing_days: int
    enabled: bool


def configured_weights(drift: dict) -> dict[str, float]:
    """The weights of config/scoring.yml's ``drift`` section: "all together" 1 - single_stream_share,
    each stream alone an equal part of it (the prior of the fit, and the weights before any fit; the
    same as dbt's ``drift_configured_weights``)."""
    streams = list(drift["streams"])
    alone = float(drift["single_stream_share"])
    return {ALL: 1.0 - alone, **{s: alone / len(streams) for s in streams}}


def _model(settings: Settings) -> _Model:
    drift = load_scoring(settings.scoring_file)["drift"]
    streams = list(drift["streams"])
    windows = [int(k) for k in drift["window_days"]]
    return _Model(streams=streams, windows=windows, prior=configured_weights(drift),
                  prior_drift_days=float(drift["mixture_prior_drift_days"]),
                  prior_share=float(drift["prior_drift_share"]),
                  min_observed=min(windows) + int(drift["baseline_skip_days"]),
                  trailing_days=int(drift["segment_window_days"]), enabled=bool(drift["learned_mixture"]))


def em_weights(logs: np.ndarray, prior: np.ndarray, prior_share: float, prior_drift_days: float,
               start: np.ndarray | None = None, tol: float = 1e-6, max_iter: int = 1000) -> tuple[np.ndarray, float, int]:
    """The mixture weights that maximise the posterior of the observed evidence.

    ``logs[k, j, n]``: the log-likelihood ratio (nats) of alternative ``j`` in window ``k`` on
    customer-day ``n`` (the windows mix with equal weights, as in ``int_drift_days``). EM: each
    customer-day's probability of a drift (prior odds from ``prior_share``) times the share each
    alternative has in its evidence, summed, plus ``prior_drift_days`` x ``prior`` (Dirichlet).
    Returns the weights, the expected number of customer-days in a drift and the iterations.
    """
    prior = np.asarray(prior, dtype=float)
    prior = prior / prior.sum()
    weights = prior.copy() if start is None else np.asarray(start, dtype=float)
    if logs.shape[2] == 0:
        return weights, 0.0, 0
    windows = logs.shape[0]
    log_prior_odds = math.log(prior_share / (1.0 - prior_share))
    # exp(log LR + log weight) = LR x weight: the exponentials once, scaled by each customer-day's
    # largest log LR so that none overflows; each iteration only re-weights them
    top = logs.max(axis=(0, 1))
    scaled = np.exp(logs - top).sum(axis=0)                      # [alternative, customer-day]
    drift_days = 0.0
    for iteration in range(1, max_iter + 1):
        terms = scaled * np.maximum(weights, MIN_WEIGHT)[:, None]
        total = terms.sum(axis=0)
        evidence = top + np.log(total) - math.log(windows)
        in_drift = 1.0 / (1.0 + np.exp(-np.clip(evidence + log_prior_odds, -700, 700)))
        counts = (terms / total * in_drift).sum(axis=1) + prior_drift_days * prior
        updated = np.maximum(counts / counts.sum(), MIN_WEIGHT)
        updated /= updated.sum()
        drift_days = float(in_drift.sum())
        done = float(np.abs(updated - weights).max()) < tol
        weights = updated
        if done:
            return weights, drift_days, iteration
    return weights, drift_days, max_iter


def _alternative_logs(raw: np.ndarray, model: _Model) -> np.ndarray:
    """[window, alternative, customer-day] in nats from the view's columns (per window: every stream),
    ``raw`` [customer-day, column] in thousandths."""
    streams, windows = model.streams, model.windows
    raw = raw.reshape(len(raw), len(windows), len(streams)) / 1000.0
    per_window = np.transpose(raw, (1, 2, 0))                     # [window, stream, customer-day]
    together = per_window.sum(axis=1, keepdims=True)
    return np.concatenate([together, per_window], axis=1)


def _read(con, model: _Model, since: dt.date, until: dt.date) -> tuple[np.ndarray, np.ndarray]:
    """Days and evidence logs of the customer-days from ``since`` to ``until`` that are judged: every
    ``stride`` days (at most MAX_DAYS_APART), and of those days' customers every ``every_nth``, so
    that about ``MAX_CUSTOMER_DAYS`` at most enter."""
    judged = con.execute("select count(*) from build.int_drift_days where as_of_date between ? and ? "
                         "and observed_days >= ?", [since, until, model.min_observed]).fetchone()[0] or 0
    span = (until - since).days + 1
    if span <= 0 or not judged:
        return np.array([], dtype="datetime64[D]"), np.zeros((len(model.windows), len(model.streams) + 1, 0))
    stride = max(1, min(-(-judged // MAX_CUSTOMER_DAYS), MAX_DAYS_APART))
    days = [until - dt.timedelta(days=i) for i in range(0, span, stride)]
    every_nth = max(1, -(-judged * len(days) // (span * MAX_CUSTOMER_DAYS)))  # integer ceilings
    names = [f"w{k}_milli_{s}" for k in model.windows for s in model.streams]
    columns = ", ".join(names)
    # One query for all the days, fetched as Arrow: the view joins every day to the same customer's
    # day a window earlier, and each query of a few days scanned int_drift_days again (20 queries
    # and Python tuples: 15 s for 170,000 customer-days; 2 s now). Columns arrive as int64 or
    # DECIMAL (sums of integers), cast to float64 here; at most MAX_CUSTOMER_DAYS rows.
    table = con.query_arrow(f"select as_of_date, {columns} from ("
                            f"select as_of_date, {columns}, row_number() over ("
                            f"partition by as_of_date order by customer_id) as nth from {EVIDENCE_VIEW} "
                            f"where observed_days >= ? and as_of_date in ({', '.join('?' * len(days))})"
                            f") as judged where mod(nth, {every_nth}) = 0",
                            [model.min_observed, *days])
    dates = np.asarray(table.column(0).to_numpy(zero_copy_only=False), dtype="datetime64[D]")
    values = np.column_stack([pc.cast(table.column(name), pa.float64()).to_numpy(zero_copy_only=False)
                              for name in names]) if table.num_rows else np.zeros((0, len(names)))
    return dates, _alternative_logs(values, model)


def _ensure_table(con) -> None:
    con.execute(f"""create table if not exists {WEIGHTS_TABLE} (
        effective_from date, alternative varchar, weight double precision, customer_days integer,
        drift_days double precision, fitted_at timestamp)""")


def _write(con, fits: list[MixtureFit], replace_all: bool) -> None:
    stamp = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.execute("begin")
    if replace_all:
        con.execute(f"delete from {WEIGHTS_TABLE}")
    for fit in fits:
        con.execute(f"delete from {WEIGHTS_TABLE} where effective_from = ?", [fit.effective_from])
        con.executemany(f"insert into {WEIGHTS_TABLE} values (?, ?, ?, ?, ?, ?)",
                        [(fit.effective_from, name, weight, fit.customer_days, fit.drift_days, stamp)
                         for name, weight in fit.weights.items()])
    con.execute("commit")


def _fit(dates: np.ndarray, logs: np.ndarray, model: _Model, effective_from: dt.date,
         start: np.ndarray | None) -> MixtureFit:
    names = [ALL, *model.streams]
    since = np.datetime64(effective_from - dt.timedelta(days=model.trailing_days), "D")
    chosen = (dates >= since) & (dates < np.datetime64(effective_from, "D"))
    prior = np.array([model.prior[n] for n in names])
    weights, drift_days, iterations = em_weights(logs[:, :, chosen], prior, model.prior_share,
                                                 model.prior_drift_days, start=start)
    return MixtureFit(effective_from, {n: float(w) for n, w in zip(names, weights)}, int(chosen.sum()),
                      drift_days, iterations)


def _day(value) -> dt.date | None:
    return value.date() if isinstance(value, dt.datetime) else value


def _scored_until(con) -> dt.date | None:
    return _day(con.execute("select max(as_of_date) from build.int_drift_days").fetchone()[0])


def refresh(settings: Settings) -> MixtureFit | None:
    """Fit the weights on the trailing window of scored days; they take effect on the next day."""
    model = _model(settings)
    if not model.enabled:
        return None
    con = open_marts(settings, read_only=False)
    try:
        _ensure_table(con)
        last = _scored_until(con)
        if last is None:
            return None
        effective_from = last + dt.timedelta(days=1)
        dates, logs = _read(con, model, effective_from - dt.timedelta(days=model.trailing_days), last)
        fit = _fit(dates, logs, model, effective_from, None)
        _write(con, [fit], replace_all=False)
    finally:
        con.close()
    log.info("drift mixture weights from %s: %s (%d customer-days, %.0f in a drift)", fit.effective_from,
             ", ".join(f"{k} {v:.3f}" for k, v in fit.weights.items()), fit.customer_days, fit.drift_days)
    return fit


def backfill(settings: Settings, every_days: int = 7) -> list[MixtureFit]:
    """The fits the weekly step would have made over the whole scored history (replacing any), each
    on the days before it. The drift model must then be built with a full refresh."""
    model = _model(settings)
    if not model.enabled:
        return []
    con = open_marts(settings, read_only=False)
    try:
        _ensure_table(con)
        first = _day(con.execute("select min(as_of_date) from build.int_drift_days").fetchone()[0])
        last = _scored_until(con)
        if first is None or last is None:
            return []
        dates, logs = _read(con, model, first, last)
        fits, start = [], None
        day = first + dt.timedelta(days=every_days)
        while day <= last + dt.timedelta(days=1):
            fit = _fit(dates, logs, model, day, start)
            start = np.array(list(fit.weights.values()))
            fits.append(fit)
            day += dt.timedelta(days=every_days)
        _write(con, fits, replace_all=True)
    finally:
        con.close()
    log.info("drift mixture weights backfilled: %d weekly fits", len(fits))
    return fits
