"""Claims as specs, and their verdicts as pure functions of the measured fits.

A scaling claim compares the exponent of curve ``a`` with that of curve ``b`` (experiment
kinds, e.g. the trained network vs its eNTK at initialisation) and holds when the lower
end of the gap's CI, α_a − α_b, exceeds the claim's margin δ. When the whole CI lies below
δ the claim does not hold; otherwise the verdict is inconclusive.
"""

from __future__ import annotations

import dataclasses

from ntkbench.fit import PairedFit

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
    fit_method: str = "auto"
    window: tuple[int, int] | None = None  # (n_min, n_max) for "loglog"/"floor"; None: all
    metrics: tuple[str, ...] = METRICS
    expected: str = HOLDS  # what the paper reports
    datasets: tuple[str, ...] = ("mnist1d",)  # default datasets of its cases
    sweep: tuple[str, str] | None = None  # (spec field, tier field): one case per tier value


CLAIMS: dict[str, ScalingClaim] = {}


def register_claim(claim: ScalingClaim) -> ScalingClaim:
    CLAIMS[claim.id] = claim
    return claim


register_claim(ScalingClaim(
    "C1", "trained network scales better than its eNTK at initialisation", a="nn", b="entk_init"))
register_claim(ScalingClaim(
    "C1'", "trained network scales better than its infinite-width NTK", a="nn", b="ntk_inf"))
register_claim(ScalingClaim(
    "C2", "an eNTK pre-trained on n0 samples still scales worse than the network",
    a="nn", b="entk_after", sweep=("n0", "after_n0")))


def get_claim(claim_id: str) -> ScalingClaim:
    if claim_id not in CLAIMS:
        raise ValueError(f"unknown claim {claim_id!r}; known: {', '.join(sorted(CLAIMS))}")
    return CLAIMS[claim_id]


def scaling_verdict(gap_ci: tuple[float, float], margin: float) -> str:
    """holds: CI above δ; does not hold: CI below δ; inconclusive: CI straddles δ."""
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
        "margin": claim.margin,
        "curve_a": CURVE_NAMES.get(claim.a, claim.a),
        "curve_b": CURVE_NAMES.get(claim.b, claim.b),
        "alpha_a": fit.alpha_a, "alpha_a_lo": fit.alpha_a_ci[0], "alpha_a_hi": fit.alpha_a_ci[1],
        "alpha_b": fit.alpha_b, "alpha_b_lo": fit.alpha_b_ci[0], "alpha_b_hi": fit.alpha_b_ci[1],
        "gap": fit.gap, "gap_lo": fit.gap_ci[0], "gap_hi": fit.gap_ci[1],
        "window_lo": fit.window[0], "window_hi": fit.window[1],
        "method": fit.method, "points": fit.points,
    }
