"""Training hyperparameters (kept free of jax so that reading them is cheap)."""

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
    schedule: str = "cosine"
    batch_size: int = 128
    steps: int = 2000
    eval_every: int = 100
    max_epochs: int | None = None  # caps the steps of small training sets at this many epochs

    def steps_for(self, n: int) -> int:
        """Steps of a run on n samples: ``steps``, capped at ``max_epochs`` passes over them."""
        if self.max_epochs is None:
            return self.steps
        return max(1, min(self.steps, math.ceil(self.max_epochs * n / min(self.batch_size, n))))

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value, kind = getattr(self, field.name), _TYPES[field.type]
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ValueError(f"{field.name} must be {_NAMES[field.type]}, got {value!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; known: {', '.join(SCHEDULES)}")
        if self.steps < 1 or self.eval_every < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError("steps, eval_every, batch_size and learning_rate must be positive")


def checkpoint_steps(config: TrainConfig, n: int, count: int = 6) -> tuple[int, ...]:
    """0, ``count`` log-spaced step counts from 1/256 of a run on n samples to its end, and
    the half- and three-quarter marks (so that the second half holds three checkpoints)."""
    total = config.steps_for(n)
    steps = [int(round(s)) for s in _geomspace(max(total / 256, 1), total, count)]
    return tuple(sorted({0, *steps, total // 2, 3 * total // 4}))


def _geomspace(start: float, stop: float, count: int) -> list[float]:
    ratio = (stop / start) ** (1 / (count - 1)) if count > 1 else 1.0
    return [start * ratio**i for i in range(count)]


_TYPES = {"str": str, "float": (int, float), "int": int, "int | None": (int, type(None))}
_NAMES = {"str": "a string", "float": "a number", "int": "an integer", "int | None": "an integer or None"}
