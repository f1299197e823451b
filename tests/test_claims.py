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
    assert evaluate_scaling(claim, fit, ("NN", "eNTK(init)")) == {
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


C3 = get_claim("C3")


def statistics(values: dict[str, list[float]]):
    import pandas as pd

    return pd.DataFrame(values, index=range(len(next(iter(values.values())))))


@pytest.mark.parametrize("own, verdict", [
    pytest.param([0.70, 0.72, 0.68, 0.71, 0.69], HOLDS, id="more-travel-ahead-than-lazy"),
    pytest.param([0.31, 0.29, 0.30, 0.32, 0.28], DOES_NOT_HOLD, id="as-frozen-as-lazy"),
    pytest.param([0.2, 0.6, 0.3, 0.7, 0.4], INCONCLUSIVE, id="noisy"),
])
def test_evolution_verdict_is_the_paired_difference_with_the_lazy_run(own, verdict):
    from ntkbench.claims import evaluate_evolution

    lazy = statistics({"travel_ahead_25": [0.30] * 5})
    row = evaluate_evolution(C3, "travel_ahead_25", statistics({"travel_ahead_25": own}), lazy, ("mlp", "lazy"))
    assert row["verdict"] == verdict
    assert row["gap"] == pytest.approx(np.mean(own) - 0.30) and row["margin"] == 0.1
    assert (row["alpha_a"], row["alpha_b"]) == (pytest.approx(np.mean(own)), pytest.approx(0.30))
    assert (row["window_lo"], row["window_hi"], row["seeds"]) == (0.25, 1.0, 5)


def test_travel_ratio_of_the_lazy_control():
    from ntkbench.claims import evaluate_evolution

    lazy, trained = statistics({"travel": [0.01, 0.012, 0.011]}), statistics({"travel": [0.5, 0.6, 0.55]})
    row = evaluate_evolution(C3, "travel_ratio", lazy, trained, ("lazy", "mlp"))
    assert row["gap"] == pytest.approx(np.mean([0.02, 0.02, 0.02]))
    assert row["verdict"] == DOES_NOT_HOLD  # under a tenth of the trained network's travel


def test_undefined_statistic_is_an_error_not_a_verdict():
    from ntkbench.claims import evaluate_evolution

    undefined = statistics({"kernel_improvement_mse": [np.nan, np.nan]})
    with pytest.raises(ValueError, match="kernel_improvement_mse is undefined"):
        evaluate_evolution(C3, "kernel_improvement_mse", undefined, undefined, ("a", "b"))
    with pytest.raises(ValueError, match="share 1 seeds"):
        evaluate_evolution(C3, "travel_ahead_25", statistics({"travel_ahead_25": [0.5]}),
                           statistics({"travel_ahead_25": [0.5]}), ("a", "b"))


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
