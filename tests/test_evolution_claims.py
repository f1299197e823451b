"""Evolution claims: C3's verdict from per-seed statistics, paired with the lazy run."""

import numpy as np
import pytest

from ntkbench.claims import DOES_NOT_HOLD, HOLDS, INCONCLUSIVE, get_claim
from ntkbench.evolution_claims import evaluate_evolution

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
    lazy = statistics({"travel_ahead_25": [0.30] * 5})
    row = evaluate_evolution(C3, "travel_ahead_25", statistics({"travel_ahead_25": own}), lazy, ("mlp", "lazy"))
    assert row["verdict"] == verdict
    assert row["gap"] == pytest.approx(np.mean(own) - 0.30) and row["margin"] == 0.1
    assert (row["alpha_a"], row["alpha_b"]) == (pytest.approx(np.mean(own)), pytest.approx(0.30))
    assert (row["window_lo"], row["window_hi"], row["seeds"]) == (0.25, 1.0, 5)


def test_travel_ratio_of_the_lazy_control():
    lazy, trained = statistics({"travel": [0.01, 0.012, 0.011]}), statistics({"travel": [0.5, 0.6, 0.55]})
    row = evaluate_evolution(C3, "travel_ratio", lazy, trained, ("lazy", "mlp"))
    assert row["gap"] == pytest.approx(np.mean([0.02, 0.02, 0.02]))
    assert row["verdict"] == DOES_NOT_HOLD  # under a tenth of the trained network's travel


@pytest.mark.parametrize("late, verdict", [
    pytest.param([0.30, 0.25, 0.28, 0.32, 0.27], HOLDS, id="late-travel-far-beyond-the-lazy-kernels"),
    pytest.param([0.02, 0.03, 0.025, 0.02, 0.03], DOES_NOT_HOLD, id="near-lazy"),
    pytest.param([0.05, 0.3, 0.1, 0.4, 0.02], INCONCLUSIVE, id="noisy"),
])
def test_primary_verdict_is_late_travel_over_the_lazy_kernels_whole_travel(late, verdict):
    assert C3.primary == "late_travel_ratio" and C3.metrics[0] == C3.primary
    lazy = statistics({"travel": [0.010, 0.012, 0.011, 0.009, 0.010]})
    row = evaluate_evolution(C3, "late_travel_ratio", statistics({"late_travel": late}), lazy, ("mlp", "lazy"))
    ratios = np.array(late) / np.array([0.010, 0.012, 0.011, 0.009, 0.010])
    assert row["gap"] == pytest.approx(ratios.mean()) and row["margin"] == 10.0
    assert row["verdict"] == verdict
    assert (row["alpha_a"], row["alpha_b"]) == (pytest.approx(np.mean(late)), pytest.approx(0.0104))
    assert (row["window_lo"], row["window_hi"]) == (0.25, 1.0)


def test_undefined_statistic_is_an_error_not_a_verdict():
    undefined = statistics({"kernel_improvement_mse": [np.nan, np.nan]})
    with pytest.raises(ValueError, match="kernel_improvement_mse is undefined"):
        evaluate_evolution(C3, "kernel_improvement_mse", undefined, undefined, ("a", "b"))
    with pytest.raises(ValueError, match="share 1 seeds"):
        evaluate_evolution(C3, "travel_ahead_25", statistics({"travel_ahead_25": [0.5]}),
                           statistics({"travel_ahead_25": [0.5]}), ("a", "b"))




def test_the_summary_sets_each_statistic_beside_the_lazy_runs():
    import pandas as pd

    own = statistics({"travel_ahead_25": [0.70, 0.72, 0.68], "velocity_ratio": [0.5, 0.6, 0.55]})
    lazy = statistics({"travel_ahead_25": [0.30] * 3, "velocity_ratio": [0.6, 0.6, 0.6]})
    rows = pd.DataFrame([{"case": "mlp/mnist1d", "metric": metric,
                          **evaluate_evolution(C3, metric, own, lazy, ("mlp (as trained)", "mlp (lazy)"))}
                         for metric in ("velocity_ratio", "travel_ahead_25")])
    ((title, table),) = C3.summaries(rows)
    assert "C3:lazy" in title
    assert table["statistic"].tolist() == ["travel_ahead_25", "velocity_ratio"]  # in the claim's order
    first = table.iloc[0]
    assert first["run [CI]"].startswith("0.700 [") and first["reference run [CI]"].startswith("0.300 [")
    assert first["difference or ratio [CI]"].startswith("0.400 [") and first["verdict"] == HOLDS
    assert C3.summaries(rows.iloc[:0]) == []
