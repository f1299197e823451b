"""Kernel regression with the network's output as offset and a validation-selected ridge,
on nested training sets.

For the first n of the training points, predictions at points x are
    f̂(x) = f0(x) + K(x, X_n) (K(X_n, X_n) + λI)⁻¹ (Y_n − f0(X_n)),
with λ = r · mean diagonal of the largest training Gram (its mean eigenvalue), shared by
every n, and r chosen per n from a grid by validation MSE.

Nested solves: the Cholesky factor of a leading block of K + λI is the leading block of the
factor, and so is the forward substitution of the residuals. So one float64 Cholesky
factorisation of the largest system per ridge value serves every n, with two triangular
solves for all of them together. A system that is not numerically positive definite at a small ridge
still serves the sizes below the pivot where its factorisation stopped.

On a GPU, systems of ``DEVICE_CHOLESKY_MIN_SIZE`` points or more are factorised there (in
float64); one that is not positive definite there is factorised again on the host, whose
LAPACK gives the valid leading size. The triangular solves stay on the host: O(n²) each.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import scipy.linalg
from scipy.linalg import lapack

DEFAULT_RIDGE_GRID = tuple(10.0 ** np.arange(-7.0, 2.01))  # one factorisation of the largest system each
#: the smallest system factorised on a GPU: below it the host's LAPACK takes milliseconds,
#: about what the copy to the device and back costs
DEVICE_CHOLESKY_MIN_SIZE = 4096


class IllConditionedKernelError(ArithmeticError):
    """The Gram is not a usable PSD matrix: non-finite, or no ridge makes it factorisable."""


@dataclasses.dataclass(frozen=True)
class RidgeFit:
    n: int
    ridge: float  # relative ridge r (λ = r · mean diagonal of the largest training Gram)
    val_mse: float
    test_predictions: np.ndarray


def mse(predictions: np.ndarray, targets: np.ndarray) -> float:
    return float(np.mean(np.sum((predictions - targets) ** 2, axis=-1)))


def relative_distance(a: np.ndarray, b: np.ndarray) -> float:
    """‖a − b‖² / ‖b‖²: how far predictions ``a`` are from ``b`` in function space."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.sum((a - b) ** 2) / np.sum(b**2))


def error_rate(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(predictions, axis=-1) != labels))


def closed_form_predictions(k_train: np.ndarray, k_eval_train: np.ndarray, residual: np.ndarray,
                            offset_eval: np.ndarray, lam: float) -> np.ndarray:
    """Direct solve: offset + K_et (K_tt + λI)⁻¹ residual (a reference for tests)."""
    coef = np.linalg.solve(k_train + lam * np.eye(len(k_train)), residual)
    return offset_eval + k_eval_train @ coef


def fit_ridge_path(k_train: np.ndarray, k_val_train: np.ndarray, k_test_train: np.ndarray,
                   y_train: np.ndarray, y_val: np.ndarray, f0_train: np.ndarray, f0_val: np.ndarray,
                   f0_test: np.ndarray, sizes, ridge_grid=DEFAULT_RIDGE_GRID) -> list[RidgeFit]:
    """Kernel regression on the first n training points for each n of ``sizes``; the
    Gram arguments hold all the training points (``k_train`` is the largest system)."""
    k_train = np.asarray(k_train, dtype=np.float64)
    if not np.all(np.isfinite(k_train)):
        raise IllConditionedKernelError("kernel has non-finite entries")
    scale = float(np.mean(np.diag(k_train)))
    if not scale > 0.0:
        raise IllConditionedKernelError("kernel has no positive diagonal mean")
    residual = np.asarray(y_train - f0_train, dtype=np.float64)
    best: dict[int, tuple] = {}
    for ridge in ridge_grid:
        factor, valid = _leading_cholesky(k_train, ridge * scale)
        usable = [n for n in sizes if n <= valid]
        for n, coef in zip(usable, _leading_solves(factor, residual, usable)):
            val_mse = mse(f0_val + k_val_train[:, :n] @ coef, y_val)
            if np.isfinite(val_mse) and (n not in best or val_mse < best[n][1]):
                best[n] = (ridge, val_mse, coef)
    missing = [n for n in sizes if n not in best]
    if missing:
        raise IllConditionedKernelError(f"no ridge gives a positive definite system with a finite "
                                        f"validation loss at n = {', '.join(map(str, missing))}")
    return [RidgeFit(n, float(best[n][0]), float(best[n][1]), f0_test + k_test_train[:, :n] @ best[n][2])
            for n in sizes]


def fit_ridge(k_train, k_val_train, k_test_train, y_train, y_val, f0_train, f0_val, f0_test,
              ridge_grid=DEFAULT_RIDGE_GRID) -> RidgeFit:
    """Kernel regression on all of one training set."""
    return fit_ridge_path(k_train, k_val_train, k_test_train, y_train, y_val, f0_train, f0_val, f0_test,
                          (len(k_train),), ridge_grid)[0]


def _leading_solves(factor: np.ndarray, residual: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """(L_n L_nᵀ)⁻¹ residual[:n] for each n, L_n the leading n×n block of ``factor``.

    L_n⁻¹ residual[:n] is the first n rows of L⁻¹ residual (forward substitution), and
    L_n⁻ᵀ z is the first n rows of L⁻ᵀ [z; 0]; so two triangular solves with the leading
    block of the largest size (the whole factor, not a copy, when that is all of it) serve
    every size at once."""
    if not sizes:
        return []
    largest = max(sizes)
    factor = factor if largest == len(factor) else factor[:largest, :largest]
    solve = functools.partial(scipy.linalg.solve_triangular, lower=True, check_finite=False)
    outputs = residual.shape[1]
    forward = solve(factor, residual[:largest])
    stacked = np.zeros((largest, len(sizes) * outputs), order="F")
    for i, n in enumerate(sizes):
        stacked[:n, i * outputs:(i + 1) * outputs] = forward[:n]
    backward = solve(factor, stacked, trans="T")
    return [backward[:n, i * outputs:(i + 1) * outputs] for i, n in enumerate(sizes)]


def factorises_on_device(n: int) -> bool:
    """Whether an n×n system is factorised on the default device: a GPU, and n large enough."""
    if n < DEVICE_CHOLESKY_MIN_SIZE:
        return False
    import jax

    return jax.default_backend() == "gpu"


def _leading_cholesky(k_train: np.ndarray, lam: float, on_device: bool | None = None) -> tuple[np.ndarray, int]:
    """(lower Cholesky factor of K + λI, the size of its leading block that is valid): LAPACK
    stops at the first non-positive pivot, and every block before it is complete.
    ``on_device`` (default: :func:`factorises_on_device`): try the default jax device first;
    a factor that is not finite there (not positive definite) is redone on the host."""
    if on_device is None:
        on_device = factorises_on_device(len(k_train))
    factor = _device_cholesky(k_train, lam) if on_device else None
    if factor is not None:
        return factor, len(k_train)
    system = np.array(k_train.T, order="F")  # K is symmetric: a straight copy of its rows
    system.flat[::len(system) + 1] += lam
    factor, info = lapack.dpotrf(system, lower=1, clean=1, overwrite_a=1)
    if info < 0:
        raise ValueError(f"dpotrf: argument {-info} is invalid")
    return factor, (len(k_train) if info == 0 else info - 1)


def _device_cholesky(k_train: np.ndarray, lam: float) -> np.ndarray | None:
    """The lower Cholesky factor of K + λI computed in float64 on the default jax device
    (64-bit types enabled for this call only), or None if it is not finite."""
    import jax

    with jax.enable_x64(True):
        factor, finite = _device_factor_fn()(np.asarray(k_train, dtype=np.float64), np.float64(lam))
        return np.asarray(factor) if bool(finite) else None


@functools.cache
def _device_factor_fn():
    """jit-compiled (K, λ) → (lower factor of K + λI, whether it is finite)."""
    import jax
    import jax.numpy as jnp

    def factor(k, lam):
        lower = jnp.linalg.cholesky(k + lam * jnp.eye(len(k), dtype=k.dtype), symmetrize_input=False)
        return lower, jnp.all(jnp.isfinite(lower))

    return jax.jit(factor)
