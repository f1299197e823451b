"""Power-law fits of loss against sample size, with windows and bootstrap CIs.

L(n) ≈ a·n^(−α) (+ c). Methods:

* ``"loglog"`` — least squares of log L on log n over a window;
* ``"floor"``  — L = a·n^(−α) + c (c ≥ 0) fitted in log space over a window;
* ``"auto"``   — log–log least squares over the automatic pre-saturation window: the
  leading points where the floor fit's power-law term a·n^(−α) is at least the floor c.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.optimize

METHODS = ("loglog", "floor", "auto")


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


def saturation_window(n, loss, min_points: int = 3, ratio: float = 1.0) -> tuple[int, int]:
    """Index range [0, hi] of the pre-saturation points: a·n^(−α) ≥ ratio·c."""
    n = np.asarray(n, dtype=float)
    if len(n) <= min_points:
        return 0, len(n) - 1
    fit = fit_floor(n, loss)
    reducible = fit.amplitude * n ** (-fit.alpha)
    inside = np.nonzero(reducible >= ratio * fit.floor)[0]
    hi = int(inside.max()) if len(inside) else 0
    return 0, max(hi, min_points - 1)


def exponent(n, loss, method: str) -> float:
    """α of one curve over the points given (the window is applied by the caller)."""
    if method == "floor":
        return fit_floor(n, loss).alpha
    return fit_loglog(n, loss)[0]


@dataclasses.dataclass(frozen=True)
class PairedFit:
    """Exponents of two curves over one shared window, with percentile bootstrap CIs."""

    alpha_a: float
    alpha_a_ci: tuple[float, float]
    alpha_b: float
    alpha_b_ci: tuple[float, float]
    gap: float  # alpha_a − alpha_b
    gap_ci: tuple[float, float]
    window: tuple[int, int]  # (n_min, n_max) actually fitted
    method: str
    points: int


def paired_exponents(n_grid, loss_a, loss_b, method: str = "auto", window=None,
                     reps: int = 1000, level: float = 0.95, seed: int = 0) -> PairedFit:
    """Fit α to two curves (arrays of shape (seeds, len(n_grid))) over one window.

    The bootstrap resamples seeds (paired between the curves) and n-points inside the
    window, refitting both curves each time; the CIs are percentile intervals.
    """
    if method not in METHODS:
        raise ValueError(f"unknown fit method {method!r}; known: {', '.join(METHODS)}")
    n = np.asarray(n_grid, dtype=float)
    a, b = np.atleast_2d(np.asarray(loss_a, float)), np.atleast_2d(np.asarray(loss_b, float))
    if a.shape != b.shape or a.shape[1] != len(n):
        raise ValueError(f"curves of shape {a.shape} and {b.shape} do not match {len(n)} sizes")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and a.min() > 0 and b.min() > 0):
        raise ValueError("losses must be finite and positive to fit a power law")
    lo, hi = _window_indices(n, a.mean(0), b.mean(0), method, window)
    idx = np.arange(lo, hi + 1)
    fit_method = "floor" if method == "floor" else "loglog"
    needed = 3 if fit_method == "floor" else 2
    if len(idx) < needed:
        raise ValueError(f"{method} fit needs at least {needed} sample sizes in its window, "
                         f"got {n[idx].astype(int).tolist()}")

    def both(seed_rows, points):
        alpha_a = exponent(n[points], a[seed_rows][:, points].mean(0), fit_method)
        alpha_b = exponent(n[points], b[seed_rows][:, points].mean(0), fit_method)
        return alpha_a, alpha_b

    all_seeds = np.arange(a.shape[0])
    point_a, point_b = both(all_seeds, idx)
    rng = np.random.default_rng(seed)
    samples = []
    while len(samples) < reps:
        points = np.sort(rng.choice(idx, size=len(idx), replace=True))
        if len(np.unique(points)) < needed:
            continue
        samples.append(both(rng.choice(all_seeds, size=len(all_seeds), replace=True), points))
    samples = np.asarray(samples)
    q = [(1 - level) / 2 * 100, (1 + level) / 2 * 100]

    def ci(values):
        low, high = np.percentile(values, q)
        return float(low), float(high)

    return PairedFit(point_a, ci(samples[:, 0]), point_b, ci(samples[:, 1]), point_a - point_b,
                     ci(samples[:, 0] - samples[:, 1]), (int(n[lo]), int(n[hi])), method, len(idx))


def _window_indices(n, mean_a, mean_b, method, window) -> tuple[int, int]:
    if method == "auto":
        hi = min(saturation_window(n, mean_a)[1], saturation_window(n, mean_b)[1])
        return 0, hi
    if window is None:
        return 0, len(n) - 1
    n_min, n_max = window
    inside = np.nonzero((n >= n_min) & (n <= n_max))[0]
    if len(inside) < 2:
        raise ValueError(f"window {window} holds fewer than 2 sample sizes of {n.astype(int).tolist()}")
    return int(inside[0]), int(inside[-1])
