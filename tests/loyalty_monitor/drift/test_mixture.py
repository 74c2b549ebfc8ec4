"""The mixture weights of the drift model, learned by EM (loyalty_monitor/drift/mixture.py).

Synthetic evidence first (numpy, the estimator alone): customer-days of a portfolio whose drifts show
in all streams together, or whose drifts are champions leaving (one stream alone), and a portfolio
where nothing drifts. Then `loyalty warehouse build --refit` on a generated history (real dbt on
DuckDB): the weekly fits over the history and the history scored with them. The weekly fit of the
population step and the view it reads are tested on the handcrafted history in test_drift_model.py.
"""

from __future__ import annotations

import datetime as dt
import itertools
import subprocess
import sys

import duckdb
import numpy as np
import pytest
from warehouse_history import land, make_history, warehouse_settings

from loyalty_core.marts import open_marts
from loyalty_monitor.drift import mixture
from loyalty_monitor.drift.explain import explain, render_text
from loyalty_monitor.drift.mixture import MIN_WEIGHT, em_weights
from loyalty_monitor.scoring import load_scoring

WINDOWS, STREAMS = 6, 4           # alternatives: all together, then each stream alone
PRIOR = np.array([0.5] + [0.5 / STREAMS] * STREAMS)
SHARE = 0.045


def _portfolio(rng, days: int, together: int, alone_in: dict[int, int]) -> np.ndarray:
    """[window, alternative, customer-day] log-likelihood ratios: ``days`` quiet customer-days (every
    stream's evidence against a drift, with noise), ``together`` days of a drift in every stream and
    ``alone_in[s]`` days of a drift in stream ``s`` only (that stream strongly for, the others
    against: the dialogue of a champion's customer goes on)."""
    def day(drifting: set[int]) -> np.ndarray:
        per_stream = np.where([s in drifting for s in range(STREAMS)], 6.0, -1.5)[None, :] \
            + rng.normal(0, 0.7, (WINDOWS, STREAMS))
        return np.concatenate([per_stream.sum(axis=1, keepdims=True), per_stream], axis=1)
    rows = [day(set()) for _ in range(days)] + [day(set(range(STREAMS))) for _ in range(together)]
    for stream, n in alone_in.items():
        rows += [day({stream}) for _ in range(n)]
    return np.stack(rows, axis=2)


def test_fades_give_all_streams_together_the_weight():
    logs = _portfolio(np.random.default_rng(1), days=5000, together=400, alone_in={})
    weights, drift_days, _ = em_weights(logs, PRIOR, SHARE, prior_drift_days=100)
    assert weights[0] > 0.75
    assert weights.sum() == pytest.approx(1.0)
    assert 350 < drift_days < 500


def test_champions_leaving_give_their_stream_its_share():
    """Half the drifts show in stream 2 alone: EM finds that stream, and not the others."""
    logs = _portfolio(np.random.default_rng(2), days=5000, together=300, alone_in={2: 300})
    weights, _, _ = em_weights(logs, PRIOR, SHARE, prior_drift_days=100)
    assert weights[1 + 2] > 0.3
    assert weights[0] > 0.3
    assert all(weights[1 + s] < 0.05 for s in (0, 1, 3))


def test_without_drifts_the_prior_holds():
    """Nothing drifts: the evidence says little about the alternatives, and the Dirichlet prior
    (the configured weights) keeps them near where they were; no weight reaches zero."""
    logs = _portfolio(np.random.default_rng(3), days=5000, together=0, alone_in={})
    weights, drift_days, _ = em_weights(logs, PRIOR, SHARE, prior_drift_days=100)
    assert drift_days < 100
    assert np.abs(weights - PRIOR).max() < 0.2
    assert weights.min() >= MIN_WEIGHT


def test_no_customer_days_no_change():
    weights, drift_days, iterations = em_weights(np.zeros((WINDOWS, STREAMS + 1, 0)), PRIOR, SHARE, 100)
    assert np.allclose(weights, PRIOR) and drift_days == 0 and iterations == 0


def test_refit_backfills_the_weekly_fits_and_scores_the_history_with_them(tmp_path, monkeypatch):
    """`loyalty warehouse build --refit` on a generated history: the weekly fits the population step
    would have made (each from the days before it) are written, and the history is scored again
    with them: a day keeps the weights of the latest fit that took effect on or before it, and the
    days before the first fit keep the configured ones. The first week has no customer-day old
    enough to judge, so its fit is the prior itself."""
    history = make_history(tmp_path / "history", customers=60, start="2025-06-01", end="2026-02-28", seed=5)
    settings = warehouse_settings(tmp_path / "data")
    land(settings, history.touchpoints, history.customers)
    result = subprocess.run(
        [sys.executable, "-m", "loyalty_monitor.cli", "warehouse", "build", "--refit", "--as-of", "2026-02-28"],
        capture_output=True, text=True, check=False, env={"LOYALTY_DATA_DIR": str(settings.data_dir),
                                             "LOYALTY_SCORING_FILE": str(settings.scoring_file),
                                             "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "weekly fits over the history" in result.stderr
    drift = load_scoring(settings.scoring_file)["drift"]
    alone, streams = drift["single_stream_share"], list(drift["streams"])
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        fits = con.execute("select effective_from, alternative, weight, customer_days "
                           "from build.drift_mixture_weights order by effective_from").fetchall()
        first_day, last_day = con.execute("select min(as_of_date), max(as_of_date) from build.int_drift_days").fetchone()
        scored = dict(con.execute("select as_of_date, min(mixture_effective_from) from build.int_drift_days "
                                  "group by as_of_date").fetchall())
        someone = con.execute("select min(customer_id) from build.int_drift_days where as_of_date = ?",
                              [last_day]).fetchone()[0]
    finally:
        con.close()
    by_day: dict = {}
    for day, name, weight, customer_days in fits:
        by_day.setdefault(day, {})[name] = (weight, customer_days)
    days = sorted(by_day)
    assert days[0] == first_day + dt.timedelta(days=7)
    assert all((b - a).days == 7 for a, b in itertools.pairwise(days)) and days[-1] > last_day - dt.timedelta(days=7)
    for weights in by_day.values():
        assert set(weights) == {"all", *streams}
        assert sum(w for w, _ in weights.values()) == pytest.approx(1.0)
    first = by_day[days[0]]
    assert first["all"] == (pytest.approx(1 - alone), 0)   # nothing to judge yet: the prior
    assert max(c for _, c in by_day[days[-1]].values()) > 0   # the last fit learned from the history
    for day, effective in scored.items():
        started = [d for d in days if d <= day]
        assert effective == (started[-1] if started else None), day
    # an analyst sees which weights scored the last day (`loyalty explain`)
    story = explain(settings, someone)
    assert story.mixture_from == max(d for d in days if d <= last_day)
    assert f"How this portfolio's drifts show (learned, weights from {story.mixture_from})" in render_text(story)

    # A portfolio too large for the cap: days at most MAX_DAYS_APART apart, thinned by customer
    model = mixture._model(settings)
    con = open_marts(settings, read_only=True)
    try:
        judged = con.execute("select count(*) from build.int_drift_days where as_of_date between ? and ? "
                             "and observed_days >= ?", [first_day, last_day, model.min_observed]).fetchone()[0]
        monkeypatch.setattr(mixture, "MAX_CUSTOMER_DAYS", judged // 100)
        dates, logs = mixture._read(con, model, first_day, last_day)
    finally:
        con.close()
    read_days = sorted(set(dates.tolist()))
    assert read_days[-1] == last_day and {(b - a).days for a, b in itertools.pairwise(read_days)} == {13}
    assert len(read_days) >= 10  # not the two days the cap alone would leave
    assert 0 < len(dates) <= judged // 100 * 1.1 and logs.shape[2] == len(dates)
