"""ntkbench.fit: power-law exponents, floors, fixed windows and paired t intervals."""

import numpy as np
import pytest

from ntkbench.fit import (MIN_POINTS, alternative_windows, fit_floor, fit_loglog, local_slopes, paired_exponents,
                          t_interval)

N_GRID = 2 ** np.arange(6, 15)  # 64 … 16384
SATURATING_GRID = 2 ** np.arange(4, 17)  # 16 … 65536
SMALL_GRID = 2 ** np.arange(7, 13)  # the small tier's 128 … 4096
SIGMA = 0.03


def curves(n, alpha, amplitude=3.0, floor=0.0, sigma=SIGMA, seed=0, seeds=1):
    """(seeds, len(n)) losses (a·n^(−α) + c)·exp(σ·ε), ε standard normal."""
    noise = np.random.default_rng(seed).normal(size=(seeds, len(n)))
    return (amplitude * np.asarray(n, float) ** -alpha + floor) * np.exp(sigma * noise)


# --- single curves ----------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("alpha", [0.25, 0.5, 1.0])
def test_fit_loglog_recovers_exponent(alpha, seed):
    fitted_alpha, log_amplitude = fit_loglog(N_GRID, curves(N_GRID, alpha, seed=seed)[0])
    assert fitted_alpha == pytest.approx(alpha, abs=0.02)
    assert log_amplitude == pytest.approx(np.log(3.0), abs=0.2)


@pytest.mark.parametrize("seed", range(3))
def test_fit_floor_recovers_floor_and_exponent(seed):
    loss = curves(SATURATING_GRID, 0.5, amplitude=5.0, floor=0.05, sigma=0.01, seed=seed)[0]
    result = fit_floor(SATURATING_GRID, loss)
    assert result.alpha == pytest.approx(0.5, rel=0.05)
    assert result.floor == pytest.approx(0.05, rel=0.05)
    assert result.amplitude == pytest.approx(5.0, rel=0.15)


def test_fit_floor_of_pure_power_law_has_no_floor():
    result = fit_floor(N_GRID, curves(N_GRID, 0.5, sigma=0.0)[0])
    assert result.alpha == pytest.approx(0.5, abs=1e-3)
    assert result.floor < 1e-3 * 3.0 * N_GRID.max() ** -0.5


# --- paired exponents -------------------------------------------------------------------

def paired(method="loglog", alpha_a=0.6, alpha_b=0.4, n=N_GRID, floor=0.0, sigma=SIGMA, data_seed=0, **kwargs):
    """paired_exponents on two planted curves of 5 seeds each (kwargs: window, …)."""
    a = curves(n, alpha_a, floor=floor, sigma=sigma, seed=data_seed, seeds=5)
    b = curves(n, alpha_b, floor=floor, sigma=sigma, seed=data_seed + 100, seeds=5)
    return paired_exponents(n, a, b, method=method, **kwargs)


@pytest.mark.parametrize("seed", range(3))
def test_paired_loglog_recovers_exponents_and_gap(seed):
    result = paired(data_seed=seed)
    assert result.alpha_a == pytest.approx(0.6, abs=0.02) and result.alpha_b == pytest.approx(0.4, abs=0.02)
    assert result.gap == pytest.approx(result.alpha_a - result.alpha_b)
    assert result.gap_ci[0] < 0.2 < result.gap_ci[1]
    assert result.window == (64, 16384) and result.points == len(N_GRID) and result.seeds == 5


def test_paired_floor_method_recovers_exponents():
    result = paired("floor", n=SATURATING_GRID, floor=0.02, sigma=0.01)
    assert result.alpha_a == pytest.approx(0.6, abs=0.05) and result.alpha_b == pytest.approx(0.4, abs=0.05)


def test_the_gap_is_the_mean_of_per_seed_gaps_with_a_paired_t_interval():
    a, b = curves(SMALL_GRID, 0.3, seeds=5), curves(SMALL_GRID, 0.2, seed=1, seeds=5)
    gaps = [fit_loglog(SMALL_GRID, ra)[0] - fit_loglog(SMALL_GRID, rb)[0] for ra, rb in zip(a, b)]
    result = paired_exponents(SMALL_GRID, a, b)
    assert (result.gap, *result.gap_ci) == pytest.approx(t_interval(gaps))
    mean, low, high = t_interval([1.0, 2.0, 3.0])
    assert mean == 2.0 and high - mean == pytest.approx(4.302653 / np.sqrt(3))  # t(0.975, 2)·s/√n


def test_the_window_is_the_one_given_whatever_the_losses():
    """Perturbing the test losses, even saturating one curve, never moves the window."""
    rng = np.random.default_rng(0)
    base_a, base_b = curves(SMALL_GRID, 0.3, seeds=5), curves(SMALL_GRID, 0.2, seed=1, seeds=5)
    for trial in range(50):
        a = base_a * np.exp(rng.normal(0, 0.3, base_a.shape))
        b = np.maximum(base_b * np.exp(rng.normal(0, 0.3, base_b.shape)), rng.uniform(0, 0.5))  # a floor
        for window in (None, (256, 4096)):
            result = paired_exponents(SMALL_GRID, a, b, window=window)
            assert result.window == ((128, 4096) if window is None else window)


def test_alternative_windows_and_local_slopes_are_reported():
    a, b = curves(SMALL_GRID, 0.3, sigma=0.0, seeds=2), curves(SMALL_GRID, 0.2, sigma=0.0, seeds=2)
    windows = alternative_windows(SMALL_GRID)
    assert windows == ((128, 1024), (512, 4096))
    assert alternative_windows(SMALL_GRID, (256, 4096)) == ((256, 2048), (512, 4096))
    assert alternative_windows(SMALL_GRID, (512, 4096)) == ()  # four sizes: no other window
    assert alternative_windows(SMALL_GRID[:3]) == ()
    result = paired_exponents(SMALL_GRID, a, b, alternatives=windows)
    assert [w for w, _ in result.alternatives] == list(windows)
    assert [gap for _, gap in result.alternatives] == pytest.approx([0.1, 0.1])
    assert result.slopes_a == pytest.approx([0.3] * 5) and result.slopes_b == pytest.approx([0.2] * 5)
    assert local_slopes([1, 2, 4], [1.0, 0.5, 0.25]) == pytest.approx((1.0, 1.0))


@pytest.mark.parametrize("seeds", [2, 5])
def test_95_percent_intervals_cover_the_planted_gap(seeds):
    """Coverage at realistic noise (the small tier's records: per-seed exponents vary with sd
    0.004–0.03, log losses with sd 0.003–0.11 per size): each seed draws its own exponents
    around the planted ones (sd 0.02, correlated 0.5 between the two curves, as the curves
    of one seed share data and initialisation) and log-normal noise of sd 0.05 per point.
    Measured coverage over 2000 trials: 95.6% at 2 seeds, 95.9% at 3, 94.0% at 5."""
    rng = np.random.default_rng(1)
    trials, covered, n = 2000, 0, SMALL_GRID.astype(float)
    for _ in range(trials):
        shared = rng.normal(0, 0.02, seeds)
        alpha_a = 0.30 + 0.5 * shared + np.sqrt(0.75) * rng.normal(0, 0.02, seeds)
        alpha_b = 0.20 + 0.5 * shared + np.sqrt(0.75) * rng.normal(0, 0.02, seeds)
        a = 2.0 * n ** -alpha_a[:, None] * np.exp(rng.normal(0, 0.05, (seeds, len(n))))
        b = 1.5 * n ** -alpha_b[:, None] * np.exp(rng.normal(0, 0.05, (seeds, len(n))))
        low, high = paired_exponents(n, a, b).gap_ci
        covered += low <= 0.10 <= high
    assert covered / trials >= 0.90, f"coverage {covered / trials:.3f}"


# --- bad inputs -------------------------------------------------------------------------

GOOD = curves(N_GRID, 0.5, seeds=2)


@pytest.mark.parametrize(("loss_a", "loss_b", "kwargs", "match"), [
    (GOOD, GOOD[:1], {}, "do not match"),
    (GOOD[:, :-1], GOOD[:, :-1], {}, "do not match"),
    (GOOD * np.where(N_GRID == 256, 0.0, 1.0), GOOD, {}, "finite and positive"),
    (GOOD, -GOOD, {}, "finite and positive"),
    (GOOD, GOOD * np.where(N_GRID == 256, np.nan, 1.0), {}, "finite and positive"),
    (GOOD, GOOD, {"method": "spline"}, "unknown fit method"),
    (GOOD, GOOD, {"window": (100, 600)}, "at least 4 sample sizes, got \\[128, 256, 512\\]"),
    (GOOD, GOOD, {"window": (20000, 40000)}, "at least 4 sample sizes, got \\[\\]"),
    (GOOD[:1], GOOD[:1], {}, "at least 2 seeds"),
], ids=["seeds", "sizes", "zero", "negative", "nan", "method", "window-3", "window-0", "one-seed"])
def test_bad_inputs(loss_a, loss_b, kwargs, match):
    with pytest.raises(ValueError, match=match):
        paired_exponents(N_GRID, loss_a, loss_b, **kwargs)


def test_a_grid_with_fewer_sizes_than_a_window_needs_is_refused():
    n = N_GRID[:MIN_POINTS - 1]
    loss = curves(n, 0.5, seeds=2)
    with pytest.raises(ValueError, match="at least 4 sample sizes"):
        paired_exponents(n, loss, loss)
