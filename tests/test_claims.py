"""Claim verdicts as pure functions of hand-built fits."""

import numpy as np
import pytest

from ntkbench.claims import (DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, ScalingClaim, evaluate_scaling,
                             get_claim, scaling_verdict)
from ntkbench.fit import PairedFit

MARGIN = 0.05


@pytest.mark.parametrize("gap_ci, verdict", [
    pytest.param((0.10, 0.30), HOLDS, id="above"),
    pytest.param((0.051, 0.06), HOLDS, id="just-above"),
    pytest.param((-0.30, -0.10), DOES_NOT_HOLD, id="below"),
    pytest.param((0.00, 0.049), DOES_NOT_HOLD, id="positive-but-below-margin"),
    pytest.param((0.00, 0.10), INCONCLUSIVE, id="straddling"),
    pytest.param((-1.00, 1.00), INCONCLUSIVE, id="wide"),
    pytest.param((MARGIN, 0.30), INCONCLUSIVE, id="low-end-on-margin"),  # touching δ is not clearing it
    pytest.param((-0.30, MARGIN), INCONCLUSIVE, id="high-end-on-margin"),
])
def test_scaling_verdict(gap_ci, verdict):
    assert scaling_verdict(gap_ci, MARGIN) == verdict


def paired_fit(gap_ci) -> PairedFit:
    return PairedFit(alpha_a=0.6, alpha_a_ci=(0.5, 0.7), alpha_b=0.3, alpha_b_ci=(0.2, 0.4),
                     gap=sum(gap_ci) / 2, gap_ci=gap_ci, window=(128, 2048), method="loglog", points=5, seeds=5,
                     alternatives=(((128, 1024), 0.1), ((256, 2048), 0.2)), slopes_a=(0.5, 0.6), slopes_b=(0.3, 0.3))


@pytest.mark.parametrize("gap_ci, verdict", [
    ((0.2, 0.4), HOLDS), ((-0.4, -0.2), DOES_NOT_HOLD), ((-0.1, 0.3), INCONCLUSIVE)], ids=str)
def test_evaluate_scaling_reports_every_number_and_the_verdict(gap_ci, verdict):
    claim = ScalingClaim("X", "a beats b", a="nn", b="entk_init", margin=MARGIN)
    fit = paired_fit(gap_ci)
    assert evaluate_scaling(claim, fit) == {
        "verdict": verdict, "expected": HOLDS, "margin": MARGIN, "tolerance": claim.drift_tolerance,
        "curve_a": "NN", "curve_b": "eNTK(init)",
        "alpha_a": 0.6, "alpha_a_lo": 0.5, "alpha_a_hi": 0.7,
        "alpha_b": 0.3, "alpha_b_lo": 0.2, "alpha_b_hi": 0.4,
        "gap": fit.gap, "gap_lo": gap_ci[0], "gap_hi": gap_ci[1],
        "window_lo": 128, "window_hi": 2048, "method": "loglog", "points": 5, "seeds": 5,
        "gap_alt1": 0.1, "gap_alt1_window": "128–1024", "gap_alt2": 0.2, "gap_alt2_window": "256–2048",
        "slopes_a": "0.500 0.600", "slopes_b": "0.300 0.300",
    }


def test_evaluate_scaling_uses_the_claims_margin():
    fit = paired_fit((0.1, 0.3))
    strict = ScalingClaim("X", "strict", a="nn", b="entk_init", margin=0.2)
    assert evaluate_scaling(strict, fit)["verdict"] == INCONCLUSIVE


def test_unknown_curve_kind_is_named_as_is():
    claim = ScalingClaim("X", "custom", a="nn", b="my_kernel")
    assert evaluate_scaling(claim, paired_fit((0.1, 0.3)))["curve_b"] == "my_kernel"


def test_c1_compares_the_network_with_its_initial_entk():
    claim = get_claim("C1")
    assert (claim.a, claim.b, claim.expected) == ("nn", "entk_init", HOLDS)
    assert set(claim.metrics) == {"test_mse", "test_error"}


def test_unknown_claim_is_rejected_with_the_known_ids():
    with pytest.raises(ValueError, match=r"unknown claim 'C9'; known: .*C1"):
        get_claim("C9")


def evolution_records(distance_end: float, velocity_late: float, mse_late: tuple[float, float],
                      seeds=(0, 1, 2), jitter: float = 0.0, mse_jitter: float = 0.0):
    """Checkpoint records of an evolution run at steps 0, 25, 50, 75, 100 (epochs = steps)."""
    import pandas as pd

    rows = []
    for seed in seeds:
        wobble = 1 + jitter * (seed - 1)
        distance = [0.0, 0.2 * distance_end, 0.5 * distance_end, 0.8 * distance_end, distance_end]
        final = mse_late[1] + mse_jitter * (seed - 1)
        mse = [2.0, 1.5, mse_late[0], (mse_late[0] + final) / 2, final]
        for i, step in enumerate((0, 25, 50, 75, 100)):
            rows.append({"seed": seed, "step": step, "epoch": float(step),
                         "distance_from_init": distance[i] * wobble,
                         "velocity": None if step == 100 else velocity_late * wobble,
                         "kernel_test_mse": mse[i]})
    return pd.DataFrame(rows)


C3 = get_claim("C3")


@pytest.mark.parametrize("records, expected", [
    pytest.param(evolution_records(0.5, 1e-3, (1.0, 0.8)), {m: HOLDS for m in C3.metrics}, id="evolving"),
    pytest.param(evolution_records(1e-4, 1e-7, (1.0, 1.0)), {m: DOES_NOT_HOLD for m in C3.metrics}, id="frozen"),
    pytest.param(evolution_records(0.0133, 1e-4, (1.0, 0.99), jitter=0.5, mse_jitter=0.02),
                 {m: INCONCLUSIVE for m in C3.metrics}, id="noisy-at-thresholds"),
])
def test_evolution_verdicts(records, expected):
    from ntkbench.claims import evaluate_evolution, evolution_statistics

    per_seed, windows = evolution_statistics(C3, records)
    verdicts = {m: evaluate_evolution(C3, m, per_seed[m], windows[m])["verdict"] for m in C3.metrics}
    assert verdicts == expected


def test_evolution_statistics_and_windows():
    from ntkbench.claims import evolution_statistics

    per_seed, windows = evolution_statistics(C3, evolution_records(0.5, 2e-3, (1.0, 0.8)))
    assert per_seed["distance_rising"] == pytest.approx([0.5 - 0.1] * 3)  # k = 25% of training
    assert per_seed["late_velocity"] == pytest.approx([2e-3] * 3)
    assert per_seed["late_kernel_improvement"] == pytest.approx([0.2] * 3)
    assert windows == {"distance_rising": (25.0, 100.0), "late_velocity": (50.0, 100.0),
                       "late_kernel_improvement": (50.0, 100.0)}


def test_undefined_statistic_is_an_error_not_a_verdict():
    from ntkbench.claims import evaluate_evolution

    with pytest.raises(ValueError, match="late_velocity is undefined"):
        evaluate_evolution(C3, "late_velocity", np.array([np.nan, np.nan]), (1.0, 2.0))


@pytest.mark.parametrize("tier_name", ["smoke", "small", "paper"])
def test_c2_fits_only_sizes_at_or_above_n0_on_at_least_four_sizes(tier_name):
    from ntkbench.fit import MIN_POINTS
    from ntkbench.tiers import get_tier

    tier, c2 = get_tier(tier_name), get_claim("C2")
    for n0 in tier.after_n0:
        low, high = c2.fit_window({"n0": n0}, tier)
        assert (low, high) == (n0, max(tier.n_grid))
        assert sum(low <= n <= high for n in tier.n_grid) >= MIN_POINTS
    assert get_claim("C1").fit_window({}, tier) == tier.fit_window  # the tier's window elsewhere
