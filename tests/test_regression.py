"""ntkbench.regression: kernel ridge regression with offsets and a validation-chosen ridge."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ntkbench.regression as regression
from ntkbench.regression import (
    DEFAULT_RIDGE_GRID,
    IllConditionedKernelError,
    closed_form_predictions,
    error_rate,
    fit_ridge,
    fit_ridge_path,
    mse,
)


def linear_problem(seed=0, n_train=40, n_val=200, n_test=10, dim=30, outputs=3, noise=0.3,
                   signal=1.0, offset_scale=0.0):
    """Linear kernel K = X Xᵀ on Gaussian inputs; targets signal·X w + noise; offsets f0."""
    rng = np.random.default_rng(seed)
    n = n_train + n_val + n_test
    x = rng.normal(size=(n, dim))
    y = signal * x @ rng.normal(size=(dim, outputs)) / np.sqrt(dim) + noise * rng.normal(size=(n, outputs))
    f0 = offset_scale * rng.normal(size=(n, outputs))
    parts = np.split(np.arange(n), [n_train, n_train + n_val])
    return x @ x.T, y, f0, parts


def fit(kernel, y, f0, parts, **kwargs):
    train, val, test = parts
    return fit_ridge(kernel[np.ix_(train, train)], kernel[np.ix_(val, train)], kernel[np.ix_(test, train)],
                     y[train], y[val], f0[train], f0[val], f0[test], **kwargs)


def closed_form(kernel, y, f0, parts, ridge, at):
    """Reference predictions at the ``at`` split (1: val, 2: test) for relative ridge ``ridge``."""
    train, points = parts[0], parts[at]
    k_train = kernel[np.ix_(train, train)]
    lam = ridge * np.mean(np.linalg.eigvalsh(k_train))
    return closed_form_predictions(k_train, kernel[np.ix_(points, train)], y[train] - f0[train], f0[points], lam)


def test_predictions_equal_closed_form_on_random_psd_kernel():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(30, 50))
    kernel = features @ features.T  # full rank: 30 points, 50 features
    y, f0 = rng.normal(size=(30, 2)), rng.normal(size=(30, 2))
    parts = np.split(np.arange(30), [15, 23])
    result = fit(kernel, y, f0, parts)
    expected = closed_form(kernel, y, f0, parts, result.ridge, at=2)
    np.testing.assert_allclose(result.test_predictions, expected, rtol=1e-8, atol=1e-10)
    val_mse = mse(closed_form(kernel, y, f0, parts, result.ridge, at=1), y[parts[1]])
    assert result.val_mse == pytest.approx(val_mse, rel=1e-8)


def test_offsets_enter_predictions():
    """A constant shift of the offsets and targets shifts the predictions by the same amount."""
    kernel, y, f0, parts = linear_problem(offset_scale=0.5)
    base, shifted = fit(kernel, y, f0, parts), fit(kernel, y + 2.0, f0 + 2.0, parts)
    assert shifted.ridge == base.ridge
    np.testing.assert_allclose(shifted.test_predictions, base.test_predictions + 2.0, rtol=1e-9)


def test_selects_the_ridge_with_lowest_validation_mse():
    kernel, y, f0, parts = linear_problem(offset_scale=0.1)
    val_mses = [mse(closed_form(kernel, y, f0, parts, r, at=1), y[parts[1]]) for r in DEFAULT_RIDGE_GRID]
    best = int(np.argmin(val_mses))
    assert 0 < best < len(DEFAULT_RIDGE_GRID) - 1  # the design has an interior optimum
    assert sorted(val_mses)[1] > 1.01 * val_mses[best]  # ... that is clearly the best
    result = fit(kernel, y, f0, parts)
    assert result.ridge == DEFAULT_RIDGE_GRID[best]
    assert result.val_mse == pytest.approx(val_mses[best], rel=1e-8)


@pytest.mark.parametrize(("signal", "noise", "expected"), [
    (1.0, 0.0, min(DEFAULT_RIDGE_GRID)),  # noise-free linear targets: interpolate
    (0.0, 1.0, max(DEFAULT_RIDGE_GRID) / 10),  # pure noise: shrink to the offset (the top decade)
])
def test_ridge_extremes(signal, noise, expected):
    kernel, y, f0, parts = linear_problem(signal=signal, noise=noise)
    ridge = fit(kernel, y, f0, parts).ridge
    assert ridge == expected if noise == 0.0 else ridge >= expected


def test_custom_ridge_grid():
    kernel, y, f0, parts = linear_problem(noise=0.0)
    assert fit(kernel, y, f0, parts, ridge_grid=(0.5, 0.01, 3.0)).ridge == 0.01


@pytest.mark.parametrize("kernel", [
    np.full((4, 4), np.nan),
    np.diag([1.0, 2.0, np.nan, 1.0]),
    np.diag([1.0, np.inf, 1.0, 1.0]),
    np.zeros((4, 4)),
    -np.eye(4),
], ids=["nan", "one-nan", "inf", "zero", "negative-definite"])
def test_ill_conditioned_kernel(kernel):
    y, f0 = np.ones((4, 2)), np.zeros((4, 2))
    parts = [np.arange(4)] * 3
    with pytest.raises(IllConditionedKernelError):
        fit(kernel, y, f0, parts)


def test_mse_sums_outputs_and_averages_samples():
    predictions = np.array([[1.0, 2.0], [0.0, 0.0], [3.0, -1.0]])
    targets = np.array([[0.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    assert mse(predictions, targets) == pytest.approx((1 + 4 + 1 + 4) / 3)
    assert mse(targets, targets) == 0.0


def test_error_rate_uses_argmax():
    predictions = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5], [-1.0, -2.0, -0.5]])
    assert error_rate(predictions, np.array([1, 0, 2, 2])) == 0.0
    assert error_rate(predictions, np.array([1, 1, 0, 2])) == 0.5
    assert error_rate(predictions, np.array([0, 2, 1, 0])) == 1.0


# --- nested training sets: one factorisation per ridge ----------------------------------

def nested_problem(n=60):
    kernel, y, f0, parts = linear_problem(n_train=n, n_val=50, n_test=20, offset_scale=0.2)
    train, val, test = parts
    return kernel, y, f0, (train, val, test)


def path(kernel, y, f0, parts, sizes, **kwargs):
    train, val, test = parts
    return fit_ridge_path(kernel[np.ix_(train, train)], kernel[np.ix_(val, train)], kernel[np.ix_(test, train)],
                          y[train], y[val], f0[train], f0[val], f0[test], sizes, **kwargs)


def test_path_equals_closed_form_on_each_prefix_with_the_largest_systems_ridge_scale():
    kernel, y, f0, (train, val, test) = nested_problem()
    scale = np.mean(np.diag(kernel[np.ix_(train, train)]))  # of the largest system, for every n
    fits = path(kernel, y, f0, (train, val, test), (5, 17, 40, 60))
    assert [fit.n for fit in fits] == [5, 17, 40, 60]
    for fit in fits:
        head = train[:fit.n]

        def predict(points, ridge):
            return closed_form_predictions(kernel[np.ix_(head, head)], kernel[np.ix_(points, head)],
                                           y[head] - f0[head], f0[points], ridge * scale)

        val_mses = [mse(predict(val, r), y[val]) for r in DEFAULT_RIDGE_GRID]
        assert fit.ridge == DEFAULT_RIDGE_GRID[int(np.argmin(val_mses))]
        assert fit.val_mse == pytest.approx(min(val_mses), rel=1e-8)
        np.testing.assert_allclose(fit.test_predictions, predict(test, fit.ridge), rtol=1e-7, atol=1e-9)


def test_a_single_size_path_is_fit_ridge():
    kernel, y, f0, parts = nested_problem()
    (fit_path,) = path(kernel, y, f0, parts, (60,))
    single = fit(kernel, y, f0, parts)
    assert (fit_path.n, fit_path.ridge, fit_path.val_mse) == (single.n, single.ridge, single.val_mse)


def test_sizes_below_a_failed_pivot_keep_the_small_ridges():
    """The last point breaks positive definiteness unless λ > 5: the first 59 points still
    get every ridge (so, noise-free, the smallest), the 60th only the large ones."""
    kernel, y, f0, parts = linear_problem(n_train=60, n_val=50, n_test=20, noise=0.0)
    train = parts[0]
    last = train[-1]
    kernel[last, :] = kernel[:, last] = 0.0
    kernel[last, last] = -5.0  # the last pivot is λ − 5
    scale = np.mean(np.diag(kernel[np.ix_(train, train)]))
    small, whole = path(kernel, y, f0, parts, (59, 60))
    assert small.ridge == min(DEFAULT_RIDGE_GRID)
    step = DEFAULT_RIDGE_GRID[1] / DEFAULT_RIDGE_GRID[0]  # the grid's ratio
    assert whole.ridge * scale > 5.0 > whole.ridge / step * scale  # the smallest that works
    with pytest.raises(IllConditionedKernelError, match="no ridge gives a positive definite system with a finite "
                                                        "validation loss at n = 60"):
        path(kernel, y, f0, parts, (59, 60), ridge_grid=(1e-6, 1e-3))


# --- where the factorisation runs: the host's LAPACK, or float64 on a GPU ---------------

def test_the_cpu_factorises_on_the_host(monkeypatch):
    assert jax.default_backend() == "cpu"
    assert not regression.factorises_on_device(10**6)
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert regression.factorises_on_device(regression.DEVICE_CHOLESKY_MIN_SIZE)
    assert not regression.factorises_on_device(regression.DEVICE_CHOLESKY_MIN_SIZE - 1)


def test_the_device_factor_equals_lapacks():
    kernel = linear_problem(n_train=80, dim=120)[0][:80, :80]
    host, valid = regression._leading_cholesky(kernel, 1e-3, on_device=False)
    device, device_valid = regression._leading_cholesky(kernel, 1e-3, on_device=True)
    assert valid == device_valid == 80 and device.dtype == np.float64
    np.testing.assert_allclose(device, host, rtol=0, atol=1e-12 * np.abs(host).max())
    assert jnp.ones(1).dtype == np.float32  # 64-bit types for that call only


def test_an_indefinite_system_on_the_device_falls_back_to_the_hosts_partial_factor(monkeypatch):
    kernel = linear_problem(n_train=80, dim=120)[0][:80, :80]
    kernel[50, :] = kernel[:, 50] = 0.0
    kernel[50, 50] = -1.0  # pivot 51 fails
    host, valid = regression._leading_cholesky(kernel, 1e-3, on_device=False)
    original, results = regression._device_cholesky, []
    monkeypatch.setattr(regression, "_device_cholesky", lambda k, lam: results.append(original(k, lam)) or results[-1])
    device, device_valid = regression._leading_cholesky(kernel, 1e-3, on_device=True)
    assert results == [None]  # tried on the device, not finite there
    assert valid == device_valid == 50
    np.testing.assert_array_equal(device, host)


def test_a_path_factorised_on_the_device_equals_the_hosts(monkeypatch):
    kernel, y, f0, parts = nested_problem()
    last = parts[0][-1]
    kernel[last, :] = kernel[:, last] = 0.0
    kernel[last, last] = -5.0  # the largest system is indefinite at small ridges (as above)
    host = path(kernel, y, f0, parts, (20, 59, 60))
    monkeypatch.setattr(regression, "factorises_on_device", lambda n: True)
    device = path(kernel, y, f0, parts, (20, 59, 60))
    for a, b in zip(host, device):
        assert (a.n, a.ridge) == (b.n, b.ridge) and a.val_mse == pytest.approx(b.val_mse, rel=1e-9)
        np.testing.assert_allclose(a.test_predictions, b.test_predictions, rtol=1e-9, atol=1e-12)
