"""Kernel regression with the network's output as offset and a validation-selected ridge.

For a training set of size n, predictions at points x are
    f̂(x) = f0(x) + K(x, X_n) (K(X_n, X_n) + λI)⁻¹ (Y_n − f0(X_n)),
with λ = r · mean eigenvalue of K(X_n, X_n) and r chosen from a grid by validation MSE.
One float64 eigendecomposition per n serves every λ of the grid.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.linalg

DEFAULT_RIDGE_GRID = tuple(10.0 ** np.arange(-6.0, 1.01, 0.5))


class IllConditionedKernelError(ArithmeticError):
    """The kernel's eigendecomposition failed or the Gram is not a usable PSD matrix."""


@dataclasses.dataclass(frozen=True)
class RidgeFit:
    ridge: float  # relative ridge r (λ = r · mean eigenvalue)
    val_mse: float
    test_predictions: np.ndarray


def mse(predictions: np.ndarray, targets: np.ndarray) -> float:
    return float(np.mean(np.sum((predictions - targets) ** 2, axis=-1)))


def error_rate(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(np.argmax(predictions, axis=-1) != labels))


def closed_form_predictions(k_train: np.ndarray, k_eval_train: np.ndarray, residual: np.ndarray,
                            offset_eval: np.ndarray, lam: float) -> np.ndarray:
    """Direct solve: offset + K_et (K_tt + λI)⁻¹ residual (a reference for tests)."""
    coef = np.linalg.solve(k_train + lam * np.eye(len(k_train)), residual)
    return offset_eval + k_eval_train @ coef


def fit_ridge(k_train: np.ndarray, k_val_train: np.ndarray, k_test_train: np.ndarray,
              y_train: np.ndarray, y_val: np.ndarray, f0_train: np.ndarray, f0_val: np.ndarray,
              f0_test: np.ndarray, ridge_grid=DEFAULT_RIDGE_GRID) -> RidgeFit:
    """Kernel regression on one training set; the ridge minimising validation MSE wins."""
    k_train = np.asarray(k_train, dtype=np.float64)
    if not np.all(np.isfinite(k_train)):
        raise IllConditionedKernelError("kernel has non-finite entries")
    try:
        eigvals, eigvecs = scipy.linalg.eigh(k_train, driver="evd")
    except (np.linalg.LinAlgError, ValueError) as exc:
        raise IllConditionedKernelError(f"eigendecomposition failed: {exc}") from exc
    scale = float(np.mean(np.clip(eigvals, 0.0, None)))
    if not scale > 0.0:
        raise IllConditionedKernelError("kernel has no positive eigenvalue")
    projected = eigvecs.T @ (y_train - f0_train)
    val_basis, test_basis = k_val_train @ eigvecs, k_test_train @ eigvecs
    eigvals = np.clip(eigvals, 0.0, None)  # round-off negatives of a PSD matrix
    best = None
    for ridge in ridge_grid:
        coef = projected / (eigvals + ridge * scale)[:, None]
        val_mse = mse(f0_val + val_basis @ coef, y_val)
        if best is None or val_mse < best[1]:
            best = (ridge, val_mse, coef)
    ridge, val_mse, coef = best
    if not np.isfinite(val_mse):
        raise IllConditionedKernelError("kernel regression gave non-finite validation loss")
    return RidgeFit(float(ridge), float(val_mse), f0_test + test_basis @ coef)
