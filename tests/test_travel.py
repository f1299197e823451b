"""Statistics of a kernel's path along training, on runs whose angles are known exactly."""

import numpy as np
import pandas as pd
import pytest

from ntkbench.travel import TooShortError, even_checkpoints, per_seed_statistics, run_statistics

STEPS = (0, 1, 3, 10, 30, 100, 200, 300, 400, 500, 600, 700, 800)


def run_records(power: float, seed: int = 0, steps=STEPS, scale: float = 0.3, losses=(1.0, 0.8)) -> pd.DataFrame:
    """A kernel turning in one plane by φ(t) = scale·(t/T)^power (so the angle between the
    kernels at s and t is |φ(s) − φ(t)|), its kernel-at-t test loss falling linearly from
    losses[0] at half-way to losses[1] at the end; learning-rate time = 0.001 × step."""
    steps = np.asarray(steps)
    phi = scale * (steps / steps[-1]) ** power
    half = steps[-1] / 2
    loss = np.where(steps <= half, losses[0], losses[0] + (losses[1] - losses[0]) * (steps - half) / half)
    return pd.DataFrame({"seed": seed, "step": steps, "time": 0.001 * steps, "kernel_test_mse": loss,
                         "kernel_test_error": loss / 2, "angle_to": [list(np.abs(p - phi)) for p in phi],
                         "cka_angle_to": [list(np.abs(p - phi) / 2) for p in phi]})


@pytest.mark.parametrize("power", [1.0, 0.5, 0.1])
def test_travel_fractions_are_those_of_the_path(power):
    stats = run_statistics(run_records(power))
    assert stats["travel_ahead_25"] == pytest.approx(1 - 0.25**power)
    assert stats["travel_ahead_50"] == pytest.approx(1 - 0.5**power)
    assert stats["velocity_ratio"] == pytest.approx((1 - 0.75**power) / 0.25**power)
    assert stats["cka_travel_ahead_25"] == pytest.approx(1 - 0.25**power)
    assert stats["travel"] == pytest.approx(0.3)
    assert stats["late_travel"] == pytest.approx(0.3 * (1 - 0.25**power))
    assert stats["kernel_improvement_mse"] == pytest.approx(0.2)
    assert stats["kernel_improvement_error"] == pytest.approx(0.2)


def test_statistics_do_not_depend_on_the_kernels_scale_or_on_extra_early_checkpoints():
    base = run_statistics(run_records(0.5))
    for other in (run_records(0.5, scale=0.003), run_records(0.5, steps=sorted({*STEPS, 2, 5, 20, 50}))):
        statistics = run_statistics(other)
        for name in ("travel_ahead_25", "travel_ahead_50", "velocity_ratio", "cka_travel_ahead_25"):
            assert statistics[name] == pytest.approx(base[name])


def test_late_travel_is_the_displacement_after_the_first_quarter_not_the_path():
    # the kernel turns by 0.1 one way or back in each eighth after the first quarter, then ends
    # 0.05 away from where it was at the quarter: it went far, but got only 0.05 further
    steps = np.array(STEPS)
    phi = np.interp(steps, [0, 200, 300, 400, 500, 600, 700, 800], [0, 0.2, 0.3, 0.2, 0.3, 0.2, 0.3, 0.25])
    records = run_records(1.0).assign(angle_to=[list(np.abs(p - phi)) for p in phi])
    stats = run_statistics(records)
    assert stats["late_travel"] == pytest.approx(0.05) and stats["travel"] == pytest.approx(0.25)
    assert stats["travel_ahead_25"] > 0.5  # the path statistics count the back and forth


def test_even_checkpoints_pick_eighths_of_the_learning_rate_time():
    steps = np.array(STEPS)
    assert steps[even_checkpoints(steps, 0.001 * steps)].tolist() == [0, 100, 200, 300, 400, 500, 600, 700, 800]


def test_a_run_too_short_for_eighths_is_an_error_naming_its_steps():
    with pytest.raises(TooShortError, match=r"best validation step 4\) has checkpoints at steps \[0, 1, 2, 4\]"):
        run_statistics(run_records(1.0, steps=(0, 1, 2, 4)))


def test_per_seed_statistics_one_row_per_seed():
    frame = per_seed_statistics(pd.concat([run_records(1.0, seed=1), run_records(0.5, seed=0)]))
    assert frame.index.tolist() == [0, 1]
    assert frame.loc[1, "travel_ahead_25"] == pytest.approx(0.75)
