"""Training with optax: a jit-compiled step, minibatch SGD or Adam, early stopping.

Loss is the mean over samples of the squared error summed over outputs (MSE on centred
one-hot targets for classification). The parameters returned for each seed are those with
the lowest validation loss among the evaluations (early stopping on the validation split,
the counterpart of the kernel's ridge selected on the same split).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from ntkbench.train_config import TrainConfig

__all__ = ["DivergedError", "TrainConfig", "TrainResult", "init_params", "train"]


class DivergedError(RuntimeError):
    """Training produced a non-finite or exploding loss."""


@dataclasses.dataclass
class TrainResult:
    params: object  # parameters with the lowest validation loss
    best_step: int
    history: list[dict]  # per evaluation: step, train_loss, val_loss
    checkpoints: dict = dataclasses.field(default_factory=dict)  # step → parameters


def make_optimizer(config: TrainConfig, steps: int) -> optax.GradientTransformation:
    """The optimizer for a run of ``steps`` steps (the cosine schedule decays over them)."""
    if config.schedule == "cosine":
        lr = optax.cosine_decay_schedule(config.learning_rate, steps)
    else:
        lr = optax.constant_schedule(config.learning_rate)
    if config.optimizer == "adam":
        return optax.adam(lr)
    return optax.sgd(lr, momentum=config.momentum)


def mse(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    return jnp.mean(jnp.sum((predictions - targets) ** 2, axis=-1))


def init_params(model, seed: int, sample_input: np.ndarray):
    return model.init(jax.random.PRNGKey(int(seed)), jnp.asarray(sample_input[:1]))


def train(model, params, seed: int, x, y, x_val, y_val, config: TrainConfig,
          description: str = "train", checkpoints=()) -> TrainResult:
    """Train ``params`` on (x, y) with minibatches drawn by ``seed``; early-stop on validation.
    The parameters after each step count in ``checkpoints`` (0: the initial ones) are kept in
    ``TrainResult.checkpoints``.

    Steps run as a Python loop over one jit-compiled step: on CPU, XLA runs convolutions
    inside ``lax.scan`` ~35x slower than the same step called from Python.
    """
    x, y, x_val, y_val = map(jnp.asarray, (x, y, x_val, y_val))
    n = x.shape[0]
    batch = min(config.batch_size, n)
    total = config.steps_for(n)
    every = max(1, min(config.eval_every, total // 10))  # at least ~10 evaluations per run
    optimizer = make_optimizer(config, total)

    def loss_fn(p, xb, yb):
        return mse(model.apply(p, xb), yb)

    @jax.jit
    def step(p, opt_state, key):
        idx = jax.random.choice(key, n, (batch,), replace=False)
        loss, grads = jax.value_and_grad(loss_fn)(p, x[idx], y[idx])
        updates, opt_state = optimizer.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    evaluate = jax.jit(lambda p: (loss_fn(p, x, y), loss_fn(p, x_val, y_val)))
    opt_state = optimizer.init(params)
    keys = jax.random.split(jax.random.PRNGKey(int(seed) + 1_000_003), total)
    best = (np.inf, 0, params)
    history = []
    kept = {0: params} if 0 in checkpoints else {}
    for i in tqdm(range(total), desc=description, leave=False, disable=None):
        params, opt_state, _ = step(params, opt_state, keys[i])
        done = i + 1
        if done in checkpoints:
            kept[done] = params
        if done % every and done != total:
            continue
        train_loss, val_loss = (float(v) for v in evaluate(params))
        if not (math.isfinite(train_loss) and train_loss < 1e6):
            raise DivergedError(f"training diverged by step {done}: train loss {train_loss:.3g} "
                                f"with {config.optimizer} at learning rate {config.learning_rate:g}")
        if val_loss < best[0]:
            best = (val_loss, done, params)
        history.append({"step": done, "train_loss": train_loss, "val_loss": val_loss})
    return TrainResult(best[2], best[1], history, kept)
