"""ntkbench.controls (named apart from benchmarks/test_controls.py): controls decide by
equivalence, the gap's CI inside ±δ and, where asked, agreement in function space; anything
else (including "inconclusive") is not the expected verdict."""

import pytest

from ntkbench.claims import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE
from ntkbench.controls import CONTROLS, Control


def row(low: float, high: float, distance=None) -> dict:
    return {"gap_lo": low, "gap_hi": high, "margin": 0.05, "agreement_distance": distance}


@pytest.mark.parametrize("low, high, distance, verdict", [
    pytest.param(-0.02, 0.03, 0.05, DOES_NOT_HOLD, id="equivalent-and-agreeing"),
    pytest.param(-0.02, 0.03, 0.2, INCONCLUSIVE, id="equivalent-gap-but-far-in-function-space"),
    pytest.param(-0.02, 0.03, None, INCONCLUSIVE, id="no-predictions-to-compare"),
    pytest.param(-0.02, 0.08, 0.05, INCONCLUSIVE, id="gap-ci-leaves-the-band"),
    pytest.param(0.06, 0.2, 0.5, HOLDS, id="the-claim-holds"),
])
def test_equivalence_with_agreement(low, high, distance, verdict):
    control = Control("x", "C1", "mlp", "mnist1d", agreement=("nn_linearized", 0.1))
    decided = control.decide(row(low, high, distance))
    assert decided["verdict"] == verdict
    assert "‖f_a − f_nn_linearized‖²/‖f_nn_linearized‖²" in decided["control_checks"]


def test_equivalence_without_agreement_reads_the_gap_only():
    control = Control("x", "C1", "mlp", "teacher")
    assert control.decide(row(-0.04, 0.04))["verdict"] == DOES_NOT_HOLD
    assert control.decide(row(-0.06, 0.04))["verdict"] == INCONCLUSIVE


def test_a_verdict_control_keeps_the_claims_own_verdict():
    assert CONTROLS["C1:feature_target"].decide(row(0.1, 0.2)) == {}


def test_the_lazy_c1_control_checks_agreement_with_the_linearised_network():
    assert CONTROLS["C1:lazy"].agreement == ("nn_linearized", 0.1)
