"""The mixture weights of the drift model, learned by EM (loyalty_monitor/drift/mixture.py).

Synthetic evidence first (numpy, the estimator alone): customer-days of a portfolio whose drifts show
in all streams together, or whose drifts are champions leaving (one stream alone), and a portfolio
where nothing drifts. The dbt side (the view the fit reads, the fits taking effect) is tested on the
handcrafted history in test_drift_model.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from loyalty_monitor.drift.mixture import MIN_WEIGHT, em_weights

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
