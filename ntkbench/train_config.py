"""Training hyperparameters (kept free of jax so that reading them is cheap).

The budget is defined the same way at every training size: evaluate every ``eval_every``
steps, stop once the validation loss has not improved for ``patience`` steps (or
``patience_epochs`` passes over the data, whichever is longer), and never run past
``max_steps``. A run that reaches ``max_steps`` while its best validation loss is less than
one patience old was cut while still improving, and is flagged as such.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    momentum: float = 0.9  # SGD only
    schedule: str = "constant"  # cosine decays over max_steps
    batch_size: int = 128
    max_steps: int = 20000  # the cap
    eval_every: int = 25  # steps between validation evaluations (and at steps 1, 2, 4, … before)
    patience: int = 500  # steps without a better validation loss before stopping
    patience_epochs: float = 0.0  # ... or this many epochs, whichever is longer

    def steps_per_epoch(self, n: int) -> int:
        """Minibatches of one epoch (each epoch is one permutation of the n points)."""
        return max(1, n // min(self.batch_size, n))

    def patience_for(self, n: int) -> int:
        """Steps without a better validation loss after which a run on n points stops."""
        return max(self.patience, math.ceil(self.patience_epochs * self.steps_per_epoch(n)))

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value, kind = getattr(self, field.name), _TYPES[field.type]
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ValueError(f"{field.name} must be {_NAMES[field.type]}, got {value!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; known: {', '.join(SCHEDULES)}")
        positive = ("max_steps", "eval_every", "patience", "batch_size", "learning_rate")
        if any(getattr(self, name) <= 0 for name in positive) or self.patience_epochs < 0:
            raise ValueError(f"{', '.join(positive)} must be positive and patience_epochs non-negative")


def learning_rate_time(config: TrainConfig, steps) -> np.ndarray:
    """Training time as the integral of the learning rate, Σ_{t < step} η_t, at ``steps``: the
    clock on which a schedule that decays cannot freeze a kernel by construction (with a
    constant rate it is η · step)."""
    steps = np.asarray(steps, dtype=np.int64)
    t = np.arange(int(steps.max(initial=0)) + 1, dtype=np.float64)
    rates = np.full_like(t, config.learning_rate)
    if config.schedule == "cosine":  # optax.cosine_decay_schedule(learning_rate, max_steps)
        rates = config.learning_rate * 0.5 * (1 + np.cos(np.pi * np.minimum(t, config.max_steps) / config.max_steps))
    return np.concatenate([[0.0], np.cumsum(rates)])[steps]


#: evenly spaced checkpoints (in learning-rate time) of an evolution run: 0, 1/8, …, 8/8
EVEN_CHECKPOINTS = 8


def checkpoint_steps(end: int, config: TrainConfig | None = None, count: int = 6) -> tuple[int, ...]:
    """Checkpoints of a run ending at step ``end``: 0, ``count`` log-spaced step counts from
    1/256 of the run to its end (the early dynamics), and the steps at k/8 of its
    learning-rate time (:func:`learning_rate_time`; of its steps without ``config``)."""
    steps = {int(round(s)) for s in _geomspace(max(end / 256, 1), end, count)}
    clock = learning_rate_time(config, np.arange(end + 1)) if config is not None else np.arange(end + 1.0)
    for k in range(1, EVEN_CHECKPOINTS + 1):
        steps.add(int(np.searchsorted(clock, clock[-1] * k / EVEN_CHECKPOINTS)))
    return tuple(sorted({0, *steps}))


def kept_steps(max_steps: int, ratio: float = 1.05) -> tuple[int, ...]:
    """Steps at which a run keeps its parameters in memory, so that :func:`checkpoint_steps`
    of whatever step it ends at can be served to within ~5% (and eighths of a run as short
    as 8 steps resolved): every step while that is within ``ratio``, then a geometric grid."""
    kept = [0]
    while kept[-1] < max_steps:
        kept.append(min(max_steps, max(kept[-1] + 1, math.floor(kept[-1] * ratio))))
    return tuple(kept)


def _geomspace(start: float, stop: float, count: int) -> list[float]:
    ratio = (stop / start) ** (1 / (count - 1)) if count > 1 else 1.0
    return [start * ratio**i for i in range(count)]


_TYPES = {"str": str, "float": (int, float), "int": int}
_NAMES = {"str": "a string", "float": "a number", "int": "an integer"}
