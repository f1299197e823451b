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


def checkpoint_steps(end: int, count: int = 6) -> tuple[int, ...]:
    """0, ``count`` log-spaced step counts from 1/256 of a run ending at step ``end`` to its
    end, and the half- and three-quarter marks (so that the second half holds three)."""
    steps = [int(round(s)) for s in _geomspace(max(end / 256, 1), end, count)]
    return tuple(sorted({0, *steps, end // 2, 3 * end // 4}))


def kept_steps(max_steps: int, eval_every: int, ratio: float = 1.05) -> tuple[int, ...]:
    """Steps at which a run keeps its parameters in memory, so that :func:`checkpoint_steps`
    of whatever step it ends at can be served to within ~5%: every step up to ``eval_every``,
    then evaluation steps on a geometric grid."""
    kept, step = list(range(min(eval_every, max_steps) + 1)), eval_every
    while step <= max_steps:
        if step >= kept[-1] * ratio:
            kept.append(step)
        step += eval_every
    return tuple(kept)


def _geomspace(start: float, stop: float, count: int) -> list[float]:
    ratio = (stop / start) ** (1 / (count - 1)) if count > 1 else 1.0
    return [start * ratio**i for i in range(count)]


_TYPES = {"str": str, "float": (int, float), "int": int}
_NAMES = {"str": "a string", "float": "a number", "int": "an integer"}
