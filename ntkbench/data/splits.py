"""The train/validation/test container every dataset loader returns."""

from __future__ import annotations

import dataclasses

import numpy as np


def centred_one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """One-hot targets minus 1/K, so that each target row sums to zero."""
    return np.eye(num_classes, dtype=np.float32)[labels] - np.float32(1.0 / num_classes)


@dataclasses.dataclass(frozen=True)
class Splits:
    """Disjoint train/validation/test arrays. ``targets`` are regression targets (n, k);
    ``labels`` the class of each point (argmax of the target for regression tasks)."""

    x_train: np.ndarray
    targets_train: np.ndarray
    labels_train: np.ndarray
    x_val: np.ndarray
    targets_val: np.ndarray
    labels_val: np.ndarray
    x_test: np.ndarray
    targets_test: np.ndarray
    labels_test: np.ndarray

    @property
    def num_outputs(self) -> int:
        return int(self.targets_train.shape[1])

    @classmethod
    def from_pool(cls, x: np.ndarray, targets: np.ndarray, labels: np.ndarray,
                  n_train: int, n_val: int, n_test: int) -> "Splits":
        """Cut one pool into test | validation | train, without overlap.

        Train comes last so that larger training sets extend smaller ones (nested prefixes).
        """
        needed = n_train + n_val + n_test
        if len(x) < needed:
            raise ValueError(f"pool has {len(x)} samples, {needed} needed")
        cuts = np.cumsum([n_test, n_val, n_train])
        parts = [np.split(a[:needed], cuts[:-1]) for a in (x, targets, labels)]
        (xt, xv, xtr), (tt, tv, ttr), (lt, lv, ltr) = parts
        return cls(xtr, ttr, ltr, xv, tv, lv, xt, tt, lt)
