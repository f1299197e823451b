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

HOLDS, DOES_NOT_HOLD, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
ERROR, NOT_APPLICABLE = "error", "not applicable"
METRICS = ("test_mse", "test_error")
CURVE_NAMES = {"nn": "NN", "entk_init": "eNTK(init)", "ntk_inf": "NTK(∞)", "entk_after": "eNTK(after)"}


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


def evaluate_scaling(claim: ScalingClaim, fit: PairedFit) -> dict:
    """The verdict and every number behind it, as one flat leaderboard row fragment."""
    return {
        "verdict": scaling_verdict(fit.gap_ci, claim.margin),
        "expected": claim.expected,
        "margin": claim.margin, "tolerance": claim.drift_tolerance,
        "curve_a": CURVE_NAMES.get(claim.a, claim.a),
        "curve_b": CURVE_NAMES.get(claim.b, claim.b),
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
    """C3-style claim on the eNTK along training (experiment kind "entk_evolution").

    Statistics, one per case (its "metric"), each computed per seed and compared through the
    t interval of the mean over seeds against its threshold:

    * ``distance_rising`` — S(K_0, K_T) − S(K_0, K_k), k the checkpoint nearest to
      ``after_fraction`` of training: the kernel still moves away from init after k
      (threshold ``distance_margin``);
    * ``late_velocity`` — mean S(K_t, K_t+Δ)/Δ (per epoch) over the last ``late_fraction``
      of training (threshold ``velocity_eps``);
    * ``late_kernel_improvement`` — relative drop of the test MSE of kernel regression with
      the kernel at t, from the start of the late window to the end (threshold
      ``improvement_margin``).
    """

    id: str
    title: str
    after_fraction: float = 0.25
    late_fraction: float = 0.5
    distance_margin: float = 0.01
    velocity_eps: float = 1e-4
    improvement_margin: float = 0.01
    metrics: tuple[str, ...] = ("distance_rising", "late_velocity", "late_kernel_improvement")
    primary: str = "distance_rising"  # the statistic the verdict counts rest on
    expected: str = HOLDS
    datasets: tuple[str, ...] = ("mnist1d",)
    sweep = None
    kind = "entk_evolution"

    def threshold(self, metric: str) -> float:
        return {"distance_rising": self.distance_margin, "late_velocity": self.velocity_eps,
                "late_kernel_improvement": self.improvement_margin}[metric]

    def tolerance(self, metric: str) -> float:
        """Largest change of a statistic that still matches a reference row: half its threshold."""
        return self.threshold(metric) / 2


register_claim(EvolutionClaim("C3", "the eNTK keeps evolving through most of training"))


def evolution_statistics(claim: EvolutionClaim, records: pd.DataFrame):
    """Per-seed values of each statistic from the checkpoint records of an evolution run,
    and the epoch window (start, end) each statistic looks at."""
    per_seed = {metric: [] for metric in claim.metrics}
    for _, run in records.sort_values("step").groupby("seed"):
        steps, epochs = run["step"].to_numpy(), run["epoch"].to_numpy(dtype=float)
        k = int(np.argmin(np.abs(steps - claim.after_fraction * steps[-1])))
        late = np.nonzero(steps >= (1 - claim.late_fraction) * steps[-1])[0]
        start = int(late[0])
        windows = {"distance_rising": (epochs[k], epochs[-1]), "late_velocity": (epochs[start], epochs[-1]),
                   "late_kernel_improvement": (epochs[start], epochs[-1])}
        distance, mse = run["distance_from_init"].to_numpy(), run["kernel_test_mse"].to_numpy()
        values = {
            "distance_rising": distance[-1] - distance[k],
            "late_velocity": float(np.mean(run["velocity"].to_numpy(dtype=float)[late[:-1]]))
            if len(late) > 1 else np.nan,
            "late_kernel_improvement": (mse[start] - mse[-1]) / mse[start],
        }
        for metric in claim.metrics:
            per_seed[metric].append(values[metric])
    return {metric: np.asarray(v, dtype=float) for metric, v in per_seed.items()}, windows


def evaluate_evolution(claim: EvolutionClaim, metric: str, per_seed: np.ndarray, epochs: tuple[float, float],
                       level: float = 0.95) -> dict:
    """Verdict of one statistic: the t interval (over seeds) of its mean vs its threshold."""
    if len(per_seed) == 0 or not np.all(np.isfinite(per_seed)):
        raise ValueError(f"{metric} is undefined for these checkpoints (the late window needs two)")
    mean, low, high = t_interval(per_seed, level)
    threshold = claim.threshold(metric)
    return {
        "verdict": scaling_verdict((low, high), threshold),
        "expected": claim.expected, "margin": threshold, "tolerance": claim.tolerance(metric),
        "gap": mean, "gap_lo": low, "gap_hi": high,
        "window_lo": epochs[0], "window_hi": epochs[1], "method": "epochs", "points": len(per_seed),
    }
