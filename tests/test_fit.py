"""ntkbench.fit: power-law exponents, floors, saturation windows and bootstrap CIs."""

import numpy as np
import pytest

from ntkbench.fit import fit_floor, fit_loglog, paired_exponents, saturation_window

N_GRID = 2 ** np.arange(6, 15)  # 64 … 16384
SATURATING_GRID = 2 ** np.arange(4, 17)  # 16 … 65536
SIGMA = 0.03


def curves(n, alpha, amplitude=3.0, floor=0.0, sigma=SIGMA, seed=0, seeds=1):
    """(seeds, len(n)) losses (a·n^(−α) + c)·exp(σ·ε), ε standard normal."""
    noise = np.random.default_rng(seed).normal(size=(seeds, len(n)))
    return (amplitude * np.asarray(n, float) ** -alpha + floor) * np.exp(sigma * noise)


class BoundedRng:
    """A default_rng whose ``choice`` gives up after many draws (instead of hanging a test)."""

    def __init__(self, real, seed, limit=20_000):
        self._rng, self._left = real(seed), limit

    def choice(self, *args, **kwargs):
        self._left -= 1
        if self._left < 0:
            raise RuntimeError("bootstrap never finishes: no resample has enough distinct points")
        return self._rng.choice(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._rng, name)


@pytest.fixture(autouse=True)
def bounded_bootstrap(monkeypatch):
    """paired_exponents' bootstrap loops until it has enough resamples: fail, don't hang."""
    real = np.random.default_rng
    monkeypatch.setattr(np.random, "default_rng", lambda seed=None: BoundedRng(real, seed))


def planted_window_end(n, alpha, amplitude, floor) -> int:
    """Index of the last point whose power-law term is at least the floor."""
    return int(np.nonzero(amplitude * n ** -alpha >= floor)[0].max())


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


@pytest.mark.parametrize(("amplitude", "floor"), [(5.0, 0.05), (5.0, 0.2), (2.0, 0.01)])
def test_saturation_window_cuts_where_floor_dominates(amplitude, floor):
    loss = curves(SATURATING_GRID, 0.5, amplitude, floor, sigma=0.0)[0]
    expected = planted_window_end(SATURATING_GRID, 0.5, amplitude, floor)
    assert 2 < expected < len(SATURATING_GRID) - 1  # the design saturates inside the grid
    assert saturation_window(SATURATING_GRID, loss) == (0, expected)


def test_saturation_window_keeps_pure_power_law():
    loss = curves(N_GRID, 0.5, seed=1)[0]
    assert saturation_window(N_GRID, loss) == (0, len(N_GRID) - 1)


def test_saturation_window_keeps_min_points():
    loss = curves(SATURATING_GRID, 0.5, amplitude=5.0, floor=2.0, sigma=0.0)[0]  # floor from the start
    assert np.all(5.0 * SATURATING_GRID ** -0.5 < 2.0)  # no point is before saturation
    assert saturation_window(SATURATING_GRID, loss, min_points=4) == (0, 3)
    assert saturation_window(N_GRID[:3], loss[:3]) == (0, 2)  # too few points to cut


# --- paired exponents -------------------------------------------------------------------

def paired(method="loglog", alpha_a=0.6, alpha_b=0.4, n=N_GRID, floor=0.0, sigma=SIGMA, data_seed=0,
           reps=200, **kwargs):
    """paired_exponents on two planted curves of 3 seeds each (kwargs: window, seed, …)."""
    a = curves(n, alpha_a, floor=floor, sigma=sigma, seed=data_seed, seeds=3)
    b = curves(n, alpha_b, floor=floor, sigma=sigma, seed=data_seed + 100, seeds=3)
    return paired_exponents(n, a, b, method=method, reps=reps, **kwargs)


@pytest.mark.parametrize("seed", range(3))
def test_paired_loglog_recovers_exponents_and_gap(seed):
    result = paired(data_seed=seed)
    assert result.alpha_a == pytest.approx(0.6, abs=0.02)
    assert result.alpha_b == pytest.approx(0.4, abs=0.02)
    assert result.gap == pytest.approx(result.alpha_a - result.alpha_b)
    assert result.alpha_a_ci[0] <= 0.6 <= result.alpha_a_ci[1]
    assert result.alpha_b_ci[0] <= 0.4 <= result.alpha_b_ci[1]
    assert result.gap_ci[0] <= 0.2 <= result.gap_ci[1]
    assert result.gap_ci[0] < result.gap < result.gap_ci[1]
    assert (result.window, result.points, result.method) == ((64, 16384), len(N_GRID), "loglog")


def test_paired_cis_deterministic_for_a_seed():
    first = paired(reps=100)
    assert paired(reps=100) == first
    other = paired(reps=100, seed=7)
    assert other.gap == first.gap and other.gap_ci != first.gap_ci


def test_paired_explicit_window():
    result = paired(window=(100, 5000))
    assert result.window == (128, 4096) and result.points == 6
    inside = (N_GRID >= 100) & (N_GRID <= 5000)
    a = curves(N_GRID, 0.6, seeds=3)
    assert result.alpha_a == pytest.approx(fit_loglog(N_GRID[inside], a[:, inside].mean(0))[0])


def test_paired_floor_method_recovers_exponents():
    result = paired("floor", n=SATURATING_GRID, floor=0.02, sigma=0.01, reps=50)
    assert result.alpha_a == pytest.approx(0.6, rel=0.05)
    assert result.alpha_b == pytest.approx(0.4, rel=0.05)
    assert result.gap_ci[0] <= 0.2 <= result.gap_ci[1]


def test_auto_window_ends_before_saturation():
    a = curves(SATURATING_GRID, 0.6, amplitude=5.0, floor=0.02, sigma=0.0, seeds=2)
    b = curves(SATURATING_GRID, 0.4, amplitude=3.0, floor=0.05, sigma=0.0, seeds=2)
    end = min(planted_window_end(SATURATING_GRID, 0.6, 5.0, 0.02),
              planted_window_end(SATURATING_GRID, 0.4, 3.0, 0.05))
    auto = paired_exponents(SATURATING_GRID, a, b, method="auto", reps=50)
    assert auto.window == (16, SATURATING_GRID[end]) and auto.points == end + 1
    assert auto.window[1] < SATURATING_GRID.max()
    # fitting through saturation flattens both curves; the pre-saturation window does less so
    full = paired_exponents(SATURATING_GRID, a, b, method="loglog", reps=50)
    assert abs(auto.alpha_a - 0.6) < abs(full.alpha_a - 0.6)
    assert abs(auto.alpha_b - 0.4) < abs(full.alpha_b - 0.4)


# --- bad inputs -------------------------------------------------------------------------

GOOD = curves(N_GRID, 0.5, seeds=2)


@pytest.mark.parametrize(("loss_a", "loss_b", "kwargs", "match"), [
    (GOOD, GOOD[:1], {}, "do not match"),
    (GOOD[:, :-1], GOOD[:, :-1], {}, "do not match"),
    (GOOD * np.where(N_GRID == 256, 0.0, 1.0), GOOD, {}, "finite and positive"),
    (GOOD, -GOOD, {}, "finite and positive"),
    (GOOD, GOOD * np.where(N_GRID == 256, np.nan, 1.0), {}, "finite and positive"),
    (GOOD, GOOD, {"method": "spline"}, "unknown fit method"),
    (GOOD, GOOD, {"window": (100, 200)}, "fewer than 2"),
    (GOOD, GOOD, {"window": (20000, 40000)}, "fewer than 2"),
], ids=["seeds", "sizes", "zero", "negative", "nan", "method", "window-1", "window-0"])
def test_bad_inputs(loss_a, loss_b, kwargs, match):
    kwargs = {"method": "loglog", "reps": 10} | kwargs
    with pytest.raises(ValueError, match=match):
        paired_exponents(N_GRID, loss_a, loss_b, **kwargs)


@pytest.mark.parametrize(("n", "method", "window"), [
    (N_GRID, "floor", (100, 300)),  # 2 sizes (128, 256): the floor fit needs 3
    (N_GRID[:2], "floor", None),
    (N_GRID[:1], "loglog", None),  # 1 size: no line
], ids=["floor-window-2", "floor-grid-2", "loglog-grid-1"])
def test_too_few_points_for_the_method(n, method, window):
    """Fewer sample sizes than the fit needs must be refused. (The bootstrap resamples until a
    resample has enough distinct points, so without a check it never ends; ``bounded_bootstrap``
    turns that hang into a RuntimeError.)"""
    loss = curves(n, 0.5, seeds=2)
    with pytest.raises(ValueError):
        paired_exponents(n, loss, loss, method=method, window=window, reps=10)
