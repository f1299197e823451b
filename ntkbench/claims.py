"""Claims as specs, and their verdicts as pure functions of the measured fits.

A scaling claim compares the exponent of curve ``a`` with that of curve ``b`` (experiment
kinds, e.g. the trained network vs its eNTK at initialisation), fitted per seed over a
window fixed in advance, and holds when the lower end of the 95% t interval of the paired
per-seed gaps α_a − α_b exceeds the claim's margin δ. When the whole interval lies below
δ the claim does not hold; otherwise the verdict is inconclusive.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ntkbench.fit import PairedFit, t_interval
from ntkbench.travel import statistic_window

HOLDS, DOES_NOT_HOLD, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
ERROR, NOT_APPLICABLE = "error", "not applicable"
METRICS = ("test_mse", "test_error")


@dataclasses.dataclass(frozen=True)
class ScalingClaim:
    id: str
    title: str
    a: str  # experiment kind of the curve expected to scale better
    b: str  # experiment kind it is compared against
    margin: float = 0.05  # δ
    fit_method: str = "loglog"
    window: tuple[int, int] | None = None  # (n_min, n_max); None: the tier's fit window
    metrics: tuple[str, ...] = METRICS
    # the metric whose rows the verdict counts rest on (test MSE: the loss every curve is
    # trained or fitted on); the others are reported as secondary
    primary: str = "test_mse"
    expected: str = HOLDS  # what the paper reports
    datasets: tuple[str, ...] = ("mnist1d",)  # default datasets of its cases
    # (spec field, tier field): one case per value of the tier field; the field "set" takes
    # (architecture, overrides) pairs applied to the whole tier instead of a spec field
    sweep: tuple[str, str] | None = None
    # largest change of the gap or either exponent that still matches a reference row
    drift_tolerance: float = 0.02
    fit_from_sweep: bool = False  # fit only the sizes at or above the swept value (C2: n ≥ n0)

    def fit_window(self, variant: dict, tier) -> tuple[int, int] | None:
        """The window fixed for a case before any loss is seen: the claim's; from the swept
        value to the largest size (``fit_from_sweep``); else the tier's (None: whole grid)."""
        if self.window is not None:
            return self.window
        if self.fit_from_sweep:
            return int(variant[self.sweep[0]]), max(tier.n_grid)
        return tier.fit_window


CLAIMS: dict[str, ScalingClaim] = {}


def register_claim(claim: ScalingClaim) -> ScalingClaim:
    CLAIMS[claim.id] = claim
    return claim


register_claim(ScalingClaim(
    "C1", "trained network scales better than its eNTK at initialisation", a="nn", b="entk_init"))
register_claim(ScalingClaim(
    "C1'", "trained network scales better than its infinite-width NTK", a="nn", b="ntk_inf"))
register_claim(ScalingClaim(
    "C1b", "C1 holds across learning rate, batch size, optimizer and width", a="nn", b="entk_init",
    sweep=("set", "robustness")))
register_claim(ScalingClaim(
    "C2", "an eNTK pre-trained on n0 samples still scales worse than the network",
    a="nn", b="entk_after", sweep=("n0", "after_n0"), fit_from_sweep=True))


def get_claim(claim_id: str) -> ScalingClaim:
    if claim_id not in CLAIMS:
        raise ValueError(f"unknown claim {claim_id!r}; known: {', '.join(sorted(CLAIMS))}")
    return CLAIMS[claim_id]


def scaling_verdict(gap_ci: tuple[float, float], margin: float) -> str:
    """holds: CI above δ; does not hold: CI below δ; inconclusive: CI straddles δ.
    (Used for every claim: the CI of the claim's statistic against its threshold.)"""
    low, high = gap_ci
    if low > margin:
        return HOLDS
    if high < margin:
        return DOES_NOT_HOLD
    return INCONCLUSIVE


def evaluate_scaling(claim: ScalingClaim, fit: PairedFit, names: tuple[str, str] | None = None) -> dict:
    """The verdict and every number behind it, as one flat leaderboard row fragment;
    ``names``: of the two curves (default: their experiment kinds)."""
    if names is None:
        from ntkbench.experiments import KINDS  # jax: only once there are fits to evaluate

        names = tuple(KINDS[k].label.format(n0="n0") if k in KINDS else k for k in (claim.a, claim.b))
    return {
        "verdict": scaling_verdict(fit.gap_ci, claim.margin),
        "expected": claim.expected,
        "margin": claim.margin, "tolerance": claim.drift_tolerance,
        "curve_a": names[0], "curve_b": names[1],
        "alpha_a": fit.alpha_a, "alpha_a_lo": fit.alpha_a_ci[0], "alpha_a_hi": fit.alpha_a_ci[1],
        "alpha_b": fit.alpha_b, "alpha_b_lo": fit.alpha_b_ci[0], "alpha_b_hi": fit.alpha_b_ci[1],
        "gap": fit.gap, "gap_lo": fit.gap_ci[0], "gap_hi": fit.gap_ci[1],
        "window_lo": fit.window[0], "window_hi": fit.window[1],
        "method": fit.method, "points": fit.points, "seeds": fit.seeds,
        **{key: value for i, ((lo, hi), gap) in enumerate(fit.alternatives, 1)
           for key, value in ((f"gap_alt{i}", gap), (f"gap_alt{i}_window", f"{lo}–{hi}"))},
        "slopes_a": " ".join(f"{s:.3f}" for s in fit.slopes_a), "slopes_b": " ".join(f"{s:.3f}" for s in fit.slopes_b),
    }


@dataclasses.dataclass(frozen=True)
class EvolutionClaim:
    """C3-style claim on the eNTK along training (experiment kind ``kind``), measured against
    the run of the control ``reference`` (a lazy network, whose kernel is frozen by design).

    Each case's metric is a statistic of :mod:`ntkbench.travel`, relative to the run's own
    travel. It is computed per seed for the case's run and for the reference run; the
    verdict is the t interval of the paired per-seed differences (case − reference) against
    the statistic's margin. The reference control's own metric, ``travel_ratio``, is its
    kernel's total travel over that of the case it calibrates (expected below its margin).
    """

    id: str
    title: str
    metrics: tuple[str, ...] = ("travel_ahead_25", "travel_ahead_50", "velocity_ratio", "cka_travel_ahead_25",
                                "kernel_improvement_mse", "kernel_improvement_error")
    # δ per statistic, fixed in advance: a tenth of the run's travel (fractions, speed ratio),
    # a 1% relative drop of the kernel's test loss, a tenth of the calibrated run's travel
    margins: tuple[tuple[str, float], ...] = (
        ("travel_ahead_25", 0.1), ("travel_ahead_50", 0.1), ("velocity_ratio", 0.1), ("cka_travel_ahead_25", 0.1),
        ("kernel_improvement_mse", 0.01), ("kernel_improvement_error", 0.01), ("travel_ratio", 0.1))
    primary: str = "travel_ahead_25"  # the statistic the verdict counts rest on
    reference: str = "C3:lazy"  # the control whose run is the frozen-kernel baseline
    kind: str = "entk_evolution"
    expected: str = HOLDS
    datasets: tuple[str, ...] = ("mnist1d",)
    sweep = None

    def threshold(self, metric: str) -> float:
        return dict(self.margins)[metric]

    def tolerance(self, metric: str) -> float:
        """Largest change of a statistic that still matches a reference row: half its threshold."""
        return self.threshold(metric) / 2


register_claim(EvolutionClaim("C3", "the eNTK keeps evolving through most of training"))


def evaluate_evolution(claim: EvolutionClaim, metric: str, own: pd.DataFrame, other: pd.DataFrame,
                       names: tuple[str, str], level: float = 0.95) -> dict:
    """Verdict of one statistic from per-seed statistics (:func:`ntkbench.travel.per_seed_statistics`)
    of the case's run (``own``) and the run it is compared with (``other``), paired by seed:
    ``travel_ratio`` is own travel / other travel, any other metric own − other."""
    seeds = own.index.intersection(other.index)
    if len(seeds) < 2:
        raise ValueError(f"{metric}: the runs share {len(seeds)} seeds; a t interval needs two")
    column = "travel" if metric == "travel_ratio" else metric
    a, b = own.loc[seeds, column].to_numpy(float), other.loc[seeds, column].to_numpy(float)
    values = a / b if metric == "travel_ratio" else a - b
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{metric} is undefined for these checkpoints (a loss or a travel of zero)")
    mean, low, high = t_interval(values, level)
    threshold = claim.threshold(metric)
    (alpha_a, *ci_a), (alpha_b, *ci_b) = t_interval(a, level), t_interval(b, level)
    window = statistic_window(column)
    return {
        "verdict": scaling_verdict((low, high), threshold),
        "expected": claim.expected, "margin": threshold, "tolerance": claim.tolerance(metric),
        "curve_a": names[0], "alpha_a": alpha_a, "alpha_a_lo": ci_a[0], "alpha_a_hi": ci_a[1],
        "curve_b": names[1], "alpha_b": alpha_b, "alpha_b_lo": ci_b[0], "alpha_b_hi": ci_b[1],
        "gap": mean, "gap_lo": low, "gap_hi": high, "window_lo": window[0], "window_hi": window[1],
        "method": "of training", "points": len(seeds), "seeds": len(seeds),
    }
