"""Power-law fits of loss against sample size: per-seed exponents, paired t intervals.

L(n) ≈ a·n^(−α) (+ c). Methods:

* ``"loglog"`` — least squares of log L on log n over the window;
* ``"floor"``  — L = a·n^(−α) + c (c ≥ 0) fitted in log space over the window.

The window is fixed before any loss is seen (the tier's or the claim's, never chosen on
test curves), both curves of a comparison use it, and it holds at least ``MIN_POINTS``
sizes. Each seed's curves are fitted separately; as the seeds are independent draws of
data and initialisation and the two curves of one seed share them, the interval of the
gap is the Student-t interval of the paired per-seed gaps (exact for normal per-seed
estimates, whatever their spread; see ``tests/test_fit.py`` for the measured coverage).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.optimize
import scipy.stats

METHODS = ("loglog", "floor")
MIN_POINTS = 4  # sample sizes in a window


@dataclasses.dataclass(frozen=True)
class FloorFit:
    alpha: float
    amplitude: float
    floor: float


def fit_loglog(n, loss) -> tuple[float, float]:
    """(α, log a) of the least-squares line through (log n, log L)."""
    slope, intercept = np.polyfit(np.log(n), np.log(loss), 1)
    return float(-slope), float(intercept)


def fit_floor(n, loss) -> FloorFit:
    """L = a·n^(−α) + c, fitted on log L, with α in [0, 4] and c ≥ 0."""
    n, loss = np.asarray(n, dtype=float), np.asarray(loss, dtype=float)
    alpha0, log_a0 = fit_loglog(n, loss)
    alpha0 = float(np.clip(alpha0, 0.01, 3.9))
    log_n = np.log(n)

    def residual(theta):
        alpha, log_a, c = theta
        return np.log(np.exp(log_a - alpha * log_n) + c) - np.log(loss)

    start = np.array([alpha0, log_a0, 0.1 * loss.min()])
    lower, upper = [0.0, -50.0, 0.0], [4.0, 50.0, loss.min()]
    result = scipy.optimize.least_squares(residual, start, bounds=(lower, upper))
    alpha, log_a, c = result.x
    return FloorFit(float(alpha), float(np.exp(log_a)), float(c))


def exponent(n, loss, method: str) -> float:
    """α of one curve over the points given (the window is applied by the caller)."""
    if method == "floor":
        return fit_floor(n, loss).alpha
    return fit_loglog(n, loss)[0]


def t_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the Student-t interval of the mean of independent ``values``."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        raise ValueError(f"an interval needs at least 2 seeds, got {len(values)}")
    mean, spread = float(values.mean()), float(values.std(ddof=1) / np.sqrt(len(values)))
    half = float(scipy.stats.t.ppf((1 + level) / 2, len(values) - 1)) * spread
    return mean, mean - half, mean + half


def local_slopes(n, loss) -> tuple[float, ...]:
    """−Δlog L / Δlog n between consecutive sizes of a (mean) curve."""
    return tuple(float(s) for s in -np.diff(np.log(loss)) / np.diff(np.log(np.asarray(n, dtype=float))))


def alternative_windows(n_grid, window=None, points: int = MIN_POINTS) -> tuple[tuple[int, int], ...]:
    """The windows each row also reports: the lowest and the highest ``points`` sizes inside
    ``window`` (None: the whole grid), those that differ from ``window`` itself."""
    n = [int(v) for v in n_grid if window is None or window[0] <= v <= window[1]]
    if len(n) < points:
        return ()
    candidates = ((n[0], n[points - 1]), (n[-points], n[-1]))
    return tuple(w for w in dict.fromkeys(candidates) if w != (n[0], n[-1]))


@dataclasses.dataclass(frozen=True)
class PairedFit:
    """Exponents of two curves over one window: means over seeds with t intervals."""

    alpha_a: float
    alpha_a_ci: tuple[float, float]
    alpha_b: float
    alpha_b_ci: tuple[float, float]
    gap: float  # mean over seeds of alpha_a − alpha_b
    gap_ci: tuple[float, float]
    window: tuple[int, int]  # (n_min, n_max) fitted
    method: str
    points: int
    seeds: int = 0
    alternatives: tuple = ()  # ((n_min, n_max), gap) on each alternative window
    slopes_a: tuple[float, ...] = ()  # local slopes of the mean curves over the whole grid
    slopes_b: tuple[float, ...] = ()


def paired_exponents(n_grid, loss_a, loss_b, method: str = "loglog", window=None, level: float = 0.95,
                     alternatives=()) -> PairedFit:
    """Fit α to each seed's two curves (arrays of shape (seeds, len(n_grid))) over ``window``
    ((n_min, n_max); None: the whole grid), and the gap's paired t interval over seeds.
    ``alternatives``: more windows on which to report the gap."""
    if method not in METHODS:
        raise ValueError(f"unknown fit method {method!r}; known: {', '.join(METHODS)}")
    n = np.asarray(n_grid, dtype=float)
    a, b = np.atleast_2d(np.asarray(loss_a, float)), np.atleast_2d(np.asarray(loss_b, float))
    if a.shape != b.shape or a.shape[1] != len(n):
        raise ValueError(f"curves of shape {a.shape} and {b.shape} do not match {len(n)} sizes")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and a.min() > 0 and b.min() > 0):
        raise ValueError("losses must be finite and positive to fit a power law")
    idx = window_indices(n, window)
    alpha_a = np.array([exponent(n[idx], row[idx], method) for row in a])
    alpha_b = np.array([exponent(n[idx], row[idx], method) for row in b])
    (ma, *ci_a), (mb, *ci_b), (gap, *ci_gap) = (t_interval(v, level) for v in (alpha_a, alpha_b, alpha_a - alpha_b))
    others = []
    for other in alternatives:
        j = window_indices(n, other)
        others.append(((int(n[j[0]]), int(n[j[-1]])), float(np.mean(
            [exponent(n[j], ra[j], method) - exponent(n[j], rb[j], method) for ra, rb in zip(a, b)]))))
    return PairedFit(ma, tuple(ci_a), mb, tuple(ci_b), gap, tuple(ci_gap), (int(n[idx[0]]), int(n[idx[-1]])),
                     method, len(idx), len(a), tuple(others), local_slopes(n, a.mean(0)), local_slopes(n, b.mean(0)))


def window_indices(n, window) -> np.ndarray:
    """Indices of the sizes inside ``window`` (None: all); at least ``MIN_POINTS`` of them."""
    n = np.asarray(n, dtype=float)
    inside = np.arange(len(n)) if window is None else np.nonzero((n >= window[0]) & (n <= window[1]))[0]
    if len(inside) < MIN_POINTS:
        raise ValueError(f"a fit window needs at least {MIN_POINTS} sample sizes, got "
                         f"{n[inside].astype(int).tolist()} of {n.astype(int).tolist()}")
    return inside
