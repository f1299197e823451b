"""Training: config validation, optimisation, early stopping, divergence and determinism."""

import dataclasses

import jax
import numpy as np
import pytest

from ntkbench.models import build_model
from ntkbench.train import DivergedError, TrainConfig, init_params, mse, train

CONFIGS = {
    "adam": TrainConfig(optimizer="adam", learning_rate=1e-2, schedule="constant", batch_size=8,
                        steps=60, eval_every=10),
    "sgd": TrainConfig(optimizer="sgd", learning_rate=0.05, schedule="cosine", batch_size=8,
                       steps=60, eval_every=10),
}


@pytest.mark.parametrize("changes, message", [
    ({"optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'; known: adam, sgd"),
    ({"schedule": "step"}, "unknown schedule 'step'; known: constant, cosine"),
    ({"steps": 0}, "must be positive"),
    ({"eval_every": 0}, "must be positive"),
    ({"batch_size": 0}, "must be positive"),
], ids=["optimizer", "schedule", "steps", "eval_every", "batch_size"])
def test_config_rejects_bad_settings(changes, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**changes)


@dataclasses.dataclass(frozen=True)
class Problem:
    model: object
    params: object
    x: np.ndarray
    y: np.ndarray

    def loss(self, params, targets=None) -> float:
        """Mean squared error on the training inputs (against ``targets``, default ``y``)."""
        return float(mse(self.model.apply(params, self.x), self.y if targets is None else targets))

    def train(self, config, seed=0, val_targets=None):
        """Train from ``params``; validate on the training inputs (against ``val_targets``)."""
        val_targets = self.y if val_targets is None else val_targets
        return train(self.model, self.params, seed, self.x, self.y, self.x, val_targets, config)


@pytest.fixture(scope="module")
def problem() -> Problem:
    """32 Gaussian inputs, 3 smooth targets, a width-16 MLP."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 6)).astype(np.float32)
    y = np.tanh(x @ rng.normal(size=(6, 3))).astype(np.float32)
    model = build_model("mlp", 3, width=16)
    return Problem(model, init_params(model, 0, x), x, y)


@pytest.fixture(scope="module")
def trained(problem):
    """A training run with each optimizer of CONFIGS, by name."""
    return {name: problem.train(config) for name, config in CONFIGS.items()}


@pytest.mark.parametrize("optimizer", sorted(CONFIGS))
def test_training_lowers_the_loss(problem, trained, optimizer):
    config, result = CONFIGS[optimizer], trained[optimizer]
    every = min(config.eval_every, config.steps // 10)  # at least ten evaluations a run
    assert [h["step"] for h in result.history] == list(range(every, config.steps + 1, every))
    assert problem.loss(result.params) < 0.5 * problem.loss(problem.params)
    assert result.history[-1]["train_loss"] < 0.5 * problem.loss(problem.params)


def test_same_seed_gives_identical_parameters(problem, trained):
    config, result = CONFIGS["adam"], trained["adam"]
    again = problem.train(config)
    for first, second in zip(jax.tree.leaves(result.params), jax.tree.leaves(again.params)):
        np.testing.assert_array_equal(first, second)
    other_seed = problem.train(config, seed=1)  # minibatches differ, so must the result
    assert problem.loss(other_seed.params) != problem.loss(result.params)


def test_returns_the_parameters_with_the_best_validation_loss(problem):
    # Validation targets opposite to the training ones: fitting the training set worsens
    # the validation loss, so the best parameters are an early evaluation, not the last.
    config = dataclasses.replace(CONFIGS["adam"], steps=60, eval_every=5)
    result = problem.train(config, val_targets=-problem.y)
    val_losses = {h["step"]: h["val_loss"] for h in result.history}
    assert result.best_step == min(val_losses, key=val_losses.get)
    assert result.best_step < config.steps
    assert problem.loss(result.params, -problem.y) == pytest.approx(val_losses[result.best_step], rel=1e-5)
    assert val_losses[config.steps] > val_losses[result.best_step]


def test_huge_learning_rate_raises_diverged_error(problem):
    config = dataclasses.replace(CONFIGS["adam"], learning_rate=1e6, steps=20)
    with pytest.raises(DivergedError, match=r"diverged by step 2: .* with adam at learning rate 1e\+06") as error:
        problem.train(config)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("n, steps", [(8, 40), (16, 40), (32, 80), (4096, 100)])
def test_max_epochs_caps_the_steps_of_small_training_sets(n, steps):
    config = TrainConfig(steps=100, batch_size=16, max_epochs=40)
    assert config.steps_for(n) == steps
    assert TrainConfig(steps=100).steps_for(n) == 100


def test_checkpoints_are_log_spaced_with_two_in_the_second_half():
    from ntkbench.train_config import checkpoint_steps

    steps = checkpoint_steps(TrainConfig(steps=2000, batch_size=128, max_epochs=200), 512)
    assert steps[0] == 0 and steps[-1] == 800  # 200 epochs of 4 steps
    assert {400, 600} <= set(steps) and steps == tuple(sorted(set(steps)))
    assert steps[1] <= 800 / 256 + 1
