"""Scaling claims: verdicts and rows as pure functions of hand-built fits."""

import pytest

from ntkbench.claims import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, get_claim
from ntkbench.fit import PairedFit
from ntkbench.scaling_claims import ScalingClaim, evaluate_scaling

MARGIN = 0.05


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
