"""How far, and when, a kernel travels along training: statistics of one run's checkpoints.

Each seed's checkpoints carry the angles arccos(1 − S) between its kernels (plain and
centred) and the learning-rate time of each checkpoint. The statistics are relative to the
run's own travel, measured on the checkpoints nearest to k/8 of its training time
(k = 0…8), so that neither the kernel's scale nor the checkpoint density decides them:

* ``travel_ahead_25`` / ``travel_ahead_50`` — the fraction of the angular path length
  still ahead after 25% / 50% of training (0: frozen by then; 0.75 / 0.5: uniform speed);
* ``velocity_ratio`` — angular speed over the last quarter of training over that of the
  first quarter;
* ``cka_travel_ahead_25`` — ``travel_ahead_25`` of the centred kernels (CKA angles);
* ``kernel_improvement_mse`` / ``kernel_improvement_error`` — relative drop of the test
  loss of regression with the kernel taken at t, from half-way to the end;
* ``travel`` — the angle between the kernels at initialisation and at the end;
* ``late_travel`` — the angle between the kernels at a quarter of training and at the end:
  how far the kernel still gets after the first quarter (a net displacement, like
  ``travel``; the path length over the eighths is several times longer, mostly back and
  forth, so it measures how much a kernel jitters as much as where it goes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EIGHTHS = 8


class TooShortError(ValueError):
    """A run's useful training has too few checkpoints to resolve eighths of it."""
STATISTICS = ("travel_ahead_25", "travel_ahead_50", "velocity_ratio", "cka_travel_ahead_25",
              "kernel_improvement_mse", "kernel_improvement_error", "travel", "late_travel")


def even_checkpoints(steps: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Indices of the checkpoints nearest to k/8 of the run's training time, k = 0…8."""
    targets = times[-1] * np.arange(EIGHTHS + 1) / EIGHTHS
    indices = np.array([int(np.argmin(np.abs(times - target))) for target in targets])
    if np.any(np.diff(indices) <= 0):
        raise TooShortError(f"the network's useful training (best validation step {steps[-1]}) has checkpoints at "
                         f"steps {steps.tolist()} only, too few for eighths of it: evaluate more often "
                         "(eval_every) or train more slowly (learning_rate)")
    return indices


def path_lengths(angles: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """The angle travelled in each eighth of training (between consecutive ``indices``)."""
    return np.array([angles[i, j] for i, j in zip(indices[:-1], indices[1:])])


def run_statistics(run: pd.DataFrame) -> dict[str, float]:
    """Every statistic of one seed's checkpoint records (sorted by step)."""
    run = run.sort_values("step")
    indices = even_checkpoints(run["step"].to_numpy(int), run["time"].to_numpy(float))
    angles = np.array(run["angle_to"].tolist(), dtype=float)
    steps = path_lengths(angles, indices)
    centred = path_lengths(np.array(run["cka_angle_to"].tolist(), dtype=float), indices)
    half, end = indices[EIGHTHS // 2], indices[-1]

    def improvement(column: str) -> float:
        loss = run[column].to_numpy(float)
        return float((loss[half] - loss[end]) / loss[half]) if loss[half] > 0 else np.nan

    return {"travel_ahead_25": steps[2:].sum() / steps.sum(), "travel_ahead_50": steps[4:].sum() / steps.sum(),
            "velocity_ratio": steps[6:].sum() / steps[:2].sum(),
            "cka_travel_ahead_25": centred[2:].sum() / centred.sum(),
            "kernel_improvement_mse": improvement("kernel_test_mse"),
            "kernel_improvement_error": improvement("kernel_test_error"),
            "travel": float(angles[indices[0], end]), "late_travel": float(angles[indices[2], end])}


def per_seed_statistics(records: pd.DataFrame) -> pd.DataFrame:
    """One row of :func:`run_statistics` per seed, indexed by seed."""
    return pd.DataFrame({seed: run_statistics(run) for seed, run in records.groupby("seed")}).T.sort_index()


def statistic_window(statistic: str) -> tuple[float, float]:
    """The part of training (fractions of its learning-rate time) a statistic looks at."""
    return {"travel_ahead_25": (0.25, 1.0), "cka_travel_ahead_25": (0.25, 1.0), "travel_ahead_50": (0.5, 1.0),
            "late_travel": (0.25, 1.0),
            "velocity_ratio": (0.75, 1.0), "kernel_improvement_mse": (0.5, 1.0),
            "kernel_improvement_error": (0.5, 1.0)}.get(statistic, (0.0, 1.0))
