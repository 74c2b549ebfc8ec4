"""The BG/NBD "buy till you die" model of Fader, Hardie & Lee (2005), "Counting your customers the
easy way: an alternative to the Pareto/NBD model", Marketing Science 24(2), 275-284.

Why this model: a customer who stops buying never says so. BG/NBD turns each customer's repeat
count x, the time of the last repeat transaction t_x and the customer's age T into the probability
that the customer is still "alive" and into expected future transactions, from four population
parameters fitted by maximum likelihood. Pure numpy/scipy, vectorised over customers: the archived
``lifetimes`` package is not needed at run time.

Time is in one unit throughout (CDNOW uses weeks): t_x and T are measured from the customer's first
purchase, which is not itself counted in x.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1, roots_jacobi

__all__ = [
    "BGNBDParams",
    "RFM",
    "conditional_expected_transactions",
    "expected_transactions",
    "fit",
    "log_likelihood",
    "p_alive",
    "rfm_from_transactions",
]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class BGNBDParams:
    """Population parameters: transaction rates ~ Gamma(shape r, rate alpha) and the per-transaction
    drop-out probability ~ Beta(a, b). alpha is in the data's time unit."""

    r: float
    alpha: float
    a: float
    b: float

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    def _check(self) -> None:
        values = (self.r, self.alpha, self.a, self.b)
        if not all(math.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"BG/NBD parameters must be finite and > 0, got {self.to_dict()}")


@dataclass(frozen=True)
class RFM:
    """Calibration summary per customer (ids in input order): x repeat transactions, t_x the time
    of the last one and T the age at the end of the calibration period, both from first purchase."""

    ids: tuple[Hashable, ...]
    x: FloatArray
    t_x: FloatArray
    T: FloatArray


def _validated(x: ArrayLike, t_x: ArrayLike, T: ArrayLike,
               weights: ArrayLike | None = None) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Broadcast and check the summary statistics: a fit on impossible rows (a repeat purchase
    after the customer's age, a recency without purchases) would return parameters silently wrong."""
    arrays = [np.asarray(v, dtype=float) for v in (x, t_x, T)]
    w = np.ones_like(arrays[0]) if weights is None else np.asarray(weights, dtype=float)
    try:
        x_, t_x_, T_, w_ = (np.atleast_1d(a) for a in np.broadcast_arrays(*arrays, w))
    except ValueError as exc:
        shapes = ", ".join(str(np.shape(a)) for a in (*arrays, w))
        raise ValueError(f"x, t_x, T (and weights) have inconsistent shapes: {shapes}") from exc
    if x_.size == 0:
        raise ValueError("no customers: x, t_x and T are empty")
    for name, arr in (("x", x_), ("t_x", t_x_), ("T", T_), ("weights", w_)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinite values")
    if np.any(x_ < 0) or np.any(x_ != np.round(x_)):
        raise ValueError("x (repeat transactions) must be whole numbers >= 0")
    if np.any(t_x_ < 0):
        raise ValueError("t_x must be >= 0")
    if np.any(t_x_ > T_):
        bad = int(np.argmax(t_x_ > T_))
        raise ValueError(f"t_x > T at row {bad} ({t_x_[bad]} > {T_[bad]}): the last repeat "
                         "transaction cannot be after the end of the observation period")
    if np.any((x_ == 0) & (t_x_ != 0)):
        bad = int(np.argmax((x_ == 0) & (t_x_ != 0)))
        raise ValueError(f"t_x must be 0 when x == 0 (row {bad} has t_x={t_x_[bad]})")
    if np.any((x_ > 0) & (t_x_ <= 0)):
        bad = int(np.argmax((x_ > 0) & (t_x_ <= 0)))
        raise ValueError(f"t_x must be > 0 when x > 0 (row {bad}): a repeat transaction comes after "
                         "the first purchase")
    if np.any(w_ < 0):
        raise ValueError("weights must be >= 0")
    return x_, t_x_, T_, w_


def _log_gamma_terms(params: BGNBDParams, x: FloatArray) -> FloatArray:
    """ln A1 + ln A2 of eq. (6) without r ln alpha: ln Gamma(r+x) - ln Gamma(r) + ln B(a, b+x) - ln B(a, b),
    the first as ln Gamma(x) - ln B(r, x). Written with the beta function because the differences of
    ln Gamma cancel catastrophically for large arguments (at r = 1e11, 3e-4 per customer), and the
    fits on daily contact data run far along the ridges towards the model's limits, where those
    errors summed over the customers swamped the differences a search compares."""
    r, a, b = params.r, params.a, params.b
    with np.errstate(divide="ignore", invalid="ignore"):
        rate_terms = np.where(x > 0, gammaln(np.maximum(x, 1.0)) - betaln(r, np.maximum(x, 1.0)), 0.0)
    return rate_terms + betaln(a, b + x) - betaln(a, b)


def _log_rate_terms(params: BGNBDParams, x: FloatArray, t_x: FloatArray,
                    T: FloatArray) -> tuple[FloatArray, FloatArray]:
    """r ln alpha + ln A3 and r ln alpha + ln A4 of eq. (6), as -r ln(1 + T/alpha) - x ln(alpha + T)
    (and t_x for T): the same numbers, without subtracting two terms of size r ln alpha (3e14 at
    r = 1e13, where a double's last digit is 0.06)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x > 0
    log_t = np.log(alpha + T)
    ln_a3 = -r * np.log1p(T / alpha) - x * log_t
    # b + x - 1 > 0 only matters (and is only guaranteed) where x > 0.
    ln_a4 = np.where(repeat, math.log(a) - np.log(np.where(repeat, b + x - 1, 1.0))
                     - r * np.log1p(t_x / alpha) - x * np.log(alpha + t_x), -np.inf)
    return ln_a3, ln_a4


def _per_customer_ll(params: BGNBDParams, x: FloatArray, t_x: FloatArray, T: FloatArray) -> FloatArray:
    """Equation (6) of the paper in log form: ln L = ln A1 + ln A2 + ln(A3 + [x>0] A4), the last
    term by logaddexp: exp(ln A3) and exp(ln A4) underflow for large x (Fader & Hardie's note
    "Overcoming the BG/NBD model's #NUM! error problem")."""
    ln_a3, ln_a4 = _log_rate_terms(params, x, t_x, T)
    return _log_gamma_terms(params, x) + np.logaddexp(ln_a3, ln_a4)


def log_likelihood(params: BGNBDParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike,
                   weights: ArrayLike | None = None) -> float:
    """Total log-likelihood of the sample, eq. (6); ``weights`` counts identical (x, t_x, T) rows,
    so a large customer base can be fitted on its distinct summaries."""
    params._check()
    x_, t_x_, T_, w_ = _validated(x, t_x, T, weights)
    return float(np.sum(w_ * _per_customer_ll(params, x_, t_x_, T_)))


_DEFAULT_INITIAL = BGNBDParams(r=1.0, alpha=1.0, a=1.0, b=1.0)
# Extra starting points. The likelihood has ridges towards its limits (a, b -> infinity: nobody drops
# out; r, alpha -> infinity: everyone buys at the same rate), along which a local search ends in
# different places from different starts, most on daily data far from CDNOW's weekly purchases.
_RESTARTS = (BGNBDParams(r=1.0, alpha=1.0, a=1.0, b=1.0), BGNBDParams(r=1.0, alpha=3.0, a=1.0, b=3.0),
             BGNBDParams(r=0.5, alpha=10.0, a=0.5, b=10.0), BGNBDParams(r=3.0, alpha=100.0, a=1.0, b=100.0))
_LOG_BOUND = 30.0  # parameters stay within e^-30 .. e^30: beyond that the likelihood is flat noise
_POLISH_EVALUATIONS = 2000  # Nelder-Mead's budget for leaving a ridge the gradient search stopped on
_TOLERANCES = {"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-10}


def _objective(x: FloatArray, t_x: FloatArray, T: FloatArray, w: FloatArray):
    """The mean negative log-likelihood of eq. (6) and its gradient, in theta = log(r, alpha, a, b).

    With L = logaddexp(ln A3, ln A4) and the shares w3 = A3 / (A3 + A4), w4 = 1 - w3, the partial
    derivatives of ln L_i are: r: psi(r+x) - psi(r) + ln alpha - w3 ln(alpha+T) - w4 ln(alpha+t_x);
    alpha: r/alpha - (r+x) (w3/(alpha+T) + w4/(alpha+t_x)); a: psi(a+b) - psi(a+b+x) + w4/a;
    b: psi(a+b) + psi(b+x) - psi(b) - psi(a+b+x) - w4/(b+x-1) (psi the digamma function); the
    gradient in theta multiplies each by its parameter. Exact gradients let a quasi-Newton search
    converge in tens of evaluations where a derivative-free one took thousands."""
    total = float(np.sum(w))
    repeat = x > 0
    x_minus_1 = np.where(repeat, x - 1.0, 0.0)

    def value_and_gradient(theta: FloatArray) -> tuple[float, FloatArray]:
        if np.any(np.abs(theta) > _LOG_BOUND):
            return 1e300, np.zeros(4)
        r, alpha, a, b = np.exp(theta)
        params = BGNBDParams(r, alpha, a, b)
        log_T, log_t_x = np.log(alpha + T), np.log(alpha + t_x)
        ln_a3, ln_a4 = _log_rate_terms(params, x, t_x, T)
        ln_l = np.logaddexp(ln_a3, ln_a4)
        ll = _log_gamma_terms(params, x) + ln_l
        w4 = np.exp(ln_a4 - ln_l)
        w3 = 1.0 - w4
        common_ab = digamma(a + b) - digamma(a + b + x)
        partials = (
            digamma(r + x) - digamma(r) + math.log(alpha) - w3 * log_T - w4 * log_t_x,
            r / alpha - (r + x) * (w3 / (alpha + T) + w4 / (alpha + t_x)),
            common_ab + w4 / a,
            common_ab + digamma(b + x) - digamma(b) - w4 / np.where(repeat, b + x_minus_1, 1.0),
        )
        value = -float(np.dot(w, ll)) / total
        gradient = -np.array([np.dot(w, d) for d in partials]) * np.array([r, alpha, a, b]) / total
        if not np.isfinite(value) or not np.all(np.isfinite(gradient)):
            return 1e300, np.zeros(4)
        return value, gradient

    return value_and_gradient


def _in_means(objective):
    """The same objective in phi = (log r, log r/alpha, log(a+b), log a/b): the mean rate and the mean
    drop-out probability with the concentration of each. The ridges towards the limits run along
    single coordinates there, so a search that stalls in theta can still walk along them."""

    def theta_of(phi: FloatArray) -> FloatArray:
        log_r, log_mean, log_sum, logit = phi
        share = expit(logit)
        return np.array([log_r, log_r - log_mean, log_sum + math.log(max(share, 1e-300)),
                         log_sum + math.log(max(1.0 - share, 1e-300))])

    def value_and_gradient(phi: FloatArray) -> tuple[float, FloatArray]:
        theta = theta_of(phi)
        value, g = objective(theta)
        if value >= 1e300:
            return value, np.zeros(4)
        share = expit(phi[3])
        return value, np.array([g[0] + g[1], -g[1], g[2] + g[3], (1.0 - share) * g[2] - share * g[3]])

    def phi_of(start: BGNBDParams) -> FloatArray:
        return np.array([math.log(start.r), math.log(start.r / start.alpha), math.log(start.a + start.b),
                         math.log(start.a / start.b)])

    return value_and_gradient, theta_of, phi_of


def fit(x: ArrayLike, t_x: ArrayLike, T: ArrayLike, weights: ArrayLike | None = None,
        initial: BGNBDParams = _DEFAULT_INITIAL) -> BGNBDParams:
    """Maximum-likelihood parameters. The search runs on log-parameters (so positivity needs no
    constraint): L-BFGS-B with the exact gradient (``_objective``) from ``initial`` and from the
    standard starts, once in the parameters and once in means and concentrations (``_in_means``);
    the best end point is then given a Nelder-Mead stretch and polished again, because on the ridges
    towards the model's limits a gradient search can stop where the likelihood still rises."""
    initial._check()
    x_, t_x_, T_, w_ = _validated(x, t_x, T, weights)
    if float(np.sum(w_)) <= 0:
        raise ValueError("weights sum to 0: nothing to fit")
    objective = _objective(x_, t_x_, T_, w_)
    in_means, theta_of, phi_of = _in_means(objective)
    bounds = [(-_LOG_BOUND, _LOG_BOUND)] * 4
    # in means, a bound a little inside keeps every parameter within _LOG_BOUND of its own
    mean_bounds = [(-_LOG_BOUND + 1.0, _LOG_BOUND - 1.0)] * 4

    ends: list[tuple[float, FloatArray]] = []
    messages = []
    for start in [initial, *(s for s in _RESTARTS if s != initial)]:
        result = minimize(objective, np.log([start.r, start.alpha, start.a, start.b]), jac=True,
                          method="L-BFGS-B", bounds=bounds, options=_TOLERANCES)
        messages.append(str(result.message))
        ends.append((float(result.fun), result.x))
        result = minimize(in_means, phi_of(start), jac=True, method="L-BFGS-B", bounds=mean_bounds,
                          options=_TOLERANCES)
        messages.append(str(result.message))
        theta = theta_of(result.x)
        ends.append((objective(theta)[0], theta))
    best_value, best_theta = min(ends, key=lambda end: end[0])
    if best_value < 1e300:
        stretch = minimize(lambda theta: objective(theta)[0], best_theta, method="Nelder-Mead",
                           options={"maxfev": _POLISH_EVALUATIONS, "xatol": 1e-6, "fatol": 1e-12})
        polished = minimize(objective, stretch.x, jac=True, method="L-BFGS-B", bounds=bounds, options=_TOLERANCES)
        for result in (stretch, polished):
            if np.isfinite(result.fun) and result.fun < best_value and np.all(np.abs(result.x) <= _LOG_BOUND):
                best_value, best_theta = float(result.fun), result.x
    if not math.isfinite(best_value) or best_value >= 1e300:
        raise RuntimeError(f"BG/NBD fit found no finite likelihood: {'; '.join(messages)}")
    r, alpha, a, b = (float(v) for v in np.exp(best_theta))
    return BGNBDParams(r=r, alpha=alpha, a=a, b=b)


def p_alive(params: BGNBDParams, x: ArrayLike, t_x: ArrayLike, T: ArrayLike) -> FloatArray:
    """P(still alive at T | x, t_x, T), Fader, Hardie & Lee (2008) note "Computing P(alive) using the
    BG/NBD model": 1 for x == 0 (in this model a customer can only drop out right after a repeat
    purchase), else 1 / (1 + a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)), evaluated as a logistic of a
    log-odds so a large x cannot overflow the power."""
    params._check()
    x_, t_x_, T_, _ = _validated(x, t_x, T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x_ > 0
    log_odds_dead = (math.log(a) - np.log(np.where(repeat, b + x_ - 1, 1.0))
                     + (r + x_) * (np.log(alpha + T_) - np.log(alpha + t_x_)))
    return np.where(repeat, expit(-log_odds_dead), 1.0)


def _one_minus_scaled_hyp2f1(params: BGNBDParams, x: FloatArray, z: FloatArray) -> FloatArray:
    """1 - (1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z), the bracket in eqs. (7) and (10).

    Euler's transformation 2F1(p, q; c; z) = (1-z)^(c-p-q) 2F1(c-p, c-q; c; z) rewrites the product
    as (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z): the direct form's huge 2F1 times tiny power (for a
    large x, or z near 1) never appears. a == 1 is a removable singularity of eqs. (7) and (10) that
    is not special-cased: a fitted a is never exactly 1."""
    r, a, b = params.r, params.a, params.b
    return 1.0 - np.power(1.0 - z, a - 1.0) * hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z)


#: Gauss-Jacobi nodes for the drop-out probability's beta in the fallback below, and the beta
#: concentration a + b + x beyond which it is taken as a point mass at its mean (its relative spread
#: is about 1/sqrt(a + b + x); the nodes' own recurrence is not meant for such weights)
_BETA_NODES = 40
_POINT_MASS_CONCENTRATION = 1e3


def _by_quadrature(params: BGNBDParams, t: FloatArray, x: FloatArray, T: FloatArray) -> FloatArray:
    """E[transactions in (T, T+t] | alive at T, x repeats by T], the bracket of eq. (10) integrated
    numerically instead of through 2F1: a fit on a portfolio where hardly anyone drops out runs a
    and b off (the NBD limit), one where everyone buys alike runs r and alpha off (the Poisson
    limit), and the hypergeometric terms then overflow.

    Given alive, lambda ~ gamma(r+x, alpha+T) and p ~ beta(a, b+x), independent; alive at rate lambda
    with drop-out p after each transaction, the expected count in t is (1 - exp(-lambda p t)) / p.
    Its mean over lambda is (1 - (1 + p t/(alpha+T))^-(r+x)) / p (log1p/expm1: stable for any r and a
    tiny p, where it tends to the NBD's (r+x) t/(alpha+T)); the mean over p is Gauss-Jacobi, or the
    value at the beta's mean when the beta is a point mass."""
    t, x, T = np.broadcast_arrays(np.asarray(t, dtype=float), np.asarray(x, dtype=float), np.asarray(T, dtype=float))
    shape, scale = params.r + x, params.alpha + T

    def given(p: FloatArray, k: np.ndarray) -> FloatArray:
        return -np.expm1(-shape[k] * np.log1p(p * t[k] / scale[k])) / p

    out = np.empty(t.shape, dtype=float)
    for repeats in np.unique(x):
        k = x == repeats
        b_post = params.b + repeats
        if params.a + b_post >= _POINT_MASS_CONCENTRATION:
            out[k] = given(np.asarray(params.a / (params.a + b_post)), k)
            continue
        nodes, weights = roots_jacobi(_BETA_NODES, b_post - 1.0, params.a - 1.0)
        p = (1.0 + nodes) / 2.0
        values = given(p[:, None], k)  # nodes x customers
        out[k] = (weights[:, None] * values).sum(axis=0) / weights.sum()
    return out


def expected_transactions(params: BGNBDParams, t: ArrayLike) -> FloatArray:
    """E[X(t)], repeat transactions in (0, t] by a new customer about whom nothing else is known,
    eq. (7): (a+b-1)/(a-1) [1 - (alpha/(alpha+t))^r 2F1(r, b; a+b-1; t/(alpha+t))]."""
    params._check()
    t_ = np.asarray(t, dtype=float)
    if np.any(~np.isfinite(t_)) or np.any(t_ < 0):
        raise ValueError("t must be finite and >= 0")
    z = t_ / (params.alpha + t_)
    factor = (params.a + params.b - 1.0) / (params.a - 1.0)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        exact = factor * _one_minus_scaled_hyp2f1(params, np.zeros_like(t_), z)
    if np.all(np.isfinite(exact)):
        return exact
    return np.where(np.isfinite(exact), exact, _by_quadrature(params, t_, np.zeros_like(t_), np.zeros_like(t_)))


def conditional_expected_transactions(params: BGNBDParams, t: ArrayLike, x: ArrayLike,
                                      t_x: ArrayLike, T: ArrayLike) -> FloatArray:
    """E[Y(t) | x, t_x, T], expected transactions in (T, T+t] given the customer's history, eq. (10):
    (a+b+x-1)/(a-1) [1 - ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; t/(alpha+T+t))]
    times P(alive), since the denominator of eq. (10) is 1/P(alive)."""
    params._check()
    x_, t_x_, T_, _ = _validated(x, t_x, T)
    t_ = np.asarray(t, dtype=float)
    if np.any(~np.isfinite(t_)) or np.any(t_ < 0):
        raise ValueError("t must be finite and >= 0")
    t_, x_, t_x_, T_ = np.broadcast_arrays(t_, x_, t_x_, T_)
    z = t_ / (params.alpha + T_ + t_)
    factor = (params.a + params.b + x_ - 1.0) / (params.a - 1.0)
    alive = p_alive(params, x_, t_x_, T_)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        exact = factor * _one_minus_scaled_hyp2f1(params, x_, z) * alive
    if np.all(np.isfinite(exact)):
        return exact
    return np.where(np.isfinite(exact), exact, _by_quadrature(params, t_, x_, T_) * alive)


def rfm_from_transactions(transactions: Mapping[Hashable, Iterable[float]], calibration_end: float,
                          day: float | None = None) -> RFM:
    """Summarise per-customer transaction times (in the model's time unit, measured from any common
    origin) into (x, t_x, T) for the calibration period ending at ``calibration_end``.

    As in the paper's CDNOW "repeat transactions": the first purchase starts the clock and is not
    counted, and transactions on the same day count once. ``day`` is the length of one day in the
    model's unit (1/7 for weeks): times in the same day are merged. Without it, only equal times
    are merged. Times after ``calibration_end`` are ignored; customers whose first purchase is after
    it are not in the calibration cohort and are left out."""
    if day is not None and not (math.isfinite(day) and day > 0):
        raise ValueError(f"day must be > 0, got {day}")
    ids: list[Hashable] = []
    xs: list[float] = []
    recencies: list[float] = []
    ages: list[float] = []
    for customer, times in transactions.items():
        arr = np.asarray(list(times), dtype=float)
        if arr.size == 0:
            continue
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"customer {customer!r} has a NaN or infinite transaction time")
        arr = arr[arr <= calibration_end]
        if arr.size == 0:
            continue
        if day is not None:
            # Day index; the small offset keeps k*day/day from flooring to k-1 through rounding.
            keys = np.floor(arr / day + 1e-9)
            _, first_of_day = np.unique(keys, return_index=True)
            distinct = np.sort(arr[first_of_day])
        else:
            distinct = np.unique(arr)
        first = distinct[0]
        ids.append(customer)
        xs.append(float(distinct.size - 1))
        recencies.append(float(distinct[-1] - first))
        ages.append(float(calibration_end - first))
    return RFM(ids=tuple(ids), x=np.asarray(xs, dtype=float), t_x=np.asarray(recencies, dtype=float),
               T=np.asarray(ages, dtype=float))
