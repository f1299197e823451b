"""Training with optax: jit-compiled minibatch steps, early stopping on validation patience.

Loss is the mean over samples of the squared error summed over outputs (MSE on centred
one-hot targets for classification). The parameters returned for each run are those with
the lowest validation loss (early stopping on the validation split, the counterpart of the
kernel's ridge selected on the same split); the budget rule is in
:mod:`ntkbench.train_config`.

Minibatches: each epoch is one permutation of the training points, drawn on the host from
the run's seed and cut into batches (sampling without replacement within an epoch, at no
per-step cost). Several runs with the same shapes can train in one vmapped step
(:func:`train_many`); each one then stops, keeps its best parameters and draws its batches
exactly as it would alone.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from ntkbench.train_config import TrainConfig, checkpoint_steps, kept_steps

__all__ = ["DivergedError", "TrainConfig", "TrainResult", "init_params", "train", "train_many"]


class DivergedError(RuntimeError):
    """Training produced a non-finite or exploding loss."""


@dataclasses.dataclass
class TrainResult:
    params: object  # parameters with the lowest validation loss
    best_step: int
    last_step: int  # steps run before stopping
    cut: bool  # stopped by max_steps while its validation loss was still improving
    history: list[dict]  # per evaluation: step, train_loss (on ≤ len(x_val) training points), val_loss
    checkpoints: dict = dataclasses.field(default_factory=dict)  # step → parameters

    @property
    def best(self) -> dict:
        """The evaluation at the best step (train and validation loss of the kept parameters)."""
        return next(h for h in self.history if h["step"] == self.best_step)


def batches_networks() -> bool:
    """Whether the runs of a curve train in one vmapped step (:func:`train_many`): on an
    accelerator, yes; on a CPU, no. Measured with ``benchmarks/perf/training.py`` on 2 CPU
    cores (five networks): vmapped MNIST-1D MLPs run 1.25–1.3× the networks·steps/s of one
    at a time, vmapped 1-D CNNs 0.5× (XLA's CPU convolutions lose their fast path under vmap).
    One at a time, a seed's numbers are bit-identical whichever other seeds a run has (a
    vmapped step differs in the last bits): the CPU tiers keep that, at 1.3× on the MLPs."""
    return jax.default_backend() != "cpu"


def make_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """The optimizer of a run (a cosine schedule decays over ``max_steps``)."""
    if config.schedule == "cosine":
        lr = optax.cosine_decay_schedule(config.learning_rate, config.max_steps)
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
          description: str = "train", checkpoints: bool = False) -> TrainResult:
    """Train ``params`` on (x, y) with minibatches drawn by ``seed``; early-stop on validation.
    With ``checkpoints``, :func:`checkpoint_steps` of the best step (to within ~5%) are kept
    in ``TrainResult.checkpoints``."""
    return train_many(model, [params], [seed], [x], [y], x_val, y_val, config, description,
                      checkpoints, batched=False)[0]


def train_many(model, params: list, seeds: list[int], xs: list, ys: list, x_val, y_val_list,
               config: TrainConfig, description: str = "train", checkpoints: bool = False,
               batched: bool = True) -> list[TrainResult]:
    """Train several runs of one model on training sets of one size; ``y_val_list`` holds
    each run's validation targets (or one array for all). ``batched``: one vmapped step for
    all runs; otherwise one run after the other (each with the same results as alone)."""
    y_vals = list(y_val_list) if isinstance(y_val_list, list | tuple) else [y_val_list] * len(params)
    if not batched:
        return [_train_group(model, [p], [s], [x], [y], x_val, [v], config, description, checkpoints)[0]
                for p, s, x, y, v in zip(params, seeds, xs, ys, y_vals)]
    return _train_group(model, params, seeds, xs, ys, x_val, y_vals, config, description, checkpoints)


def _train_group(model, params, seeds, xs, ys, x_val, y_vals, config, description, checkpoints):
    runs = len(params)
    n = int(np.shape(xs[0])[0])
    batch = min(config.batch_size, n)
    per_epoch, patience = config.steps_per_epoch(n), config.patience_for(n)
    stack = (lambda arrays: jnp.stack([jnp.asarray(a) for a in arrays])) if runs > 1 else (lambda a: jnp.asarray(a[0]))
    x, y, y_val = stack(xs), stack(ys), stack(y_vals)
    x_val = jnp.asarray(x_val)
    # the train loss is followed on as many training points as the validation split has
    # (the training sets are shuffled, so a prefix is a random subset): evaluating all n
    # every few steps would cost as much as the training
    watched = min(n, int(x_val.shape[0]))
    x_watch, y_watch = x[..., :watched, :], y[..., :watched, :]
    p = jax.tree.map(lambda *leaves: jnp.stack(leaves), *params) if runs > 1 else params[0]
    many = runs > 1
    step, evaluate, init_state = _compiled(model, config, many)
    opt_state = init_state(p)
    rngs = [np.random.default_rng([int(s), n, 1_000_003]) for s in seeds]
    trackers = [_Tracker(params[i], patience, config) for i in range(runs)]
    keep = set(kept_steps(config.max_steps, config.eval_every)) if checkpoints else set()
    unstack = (lambda tree, i: jax.tree.map(lambda a: a[i], tree)) if many else (lambda tree, i: tree)
    if 0 in keep:
        for i, tracker in enumerate(trackers):
            tracker.kept[0] = params[i]
    early = {2**k for k in range(config.eval_every.bit_length())}  # finer evaluations before the first
    order = None
    progress = tqdm(total=config.max_steps, desc=description, leave=False, disable=None)
    for done in range(1, config.max_steps + 1):
        position = (done - 1) % per_epoch
        if position == 0:
            order = np.stack([rng.permutation(n)[:per_epoch * batch] for rng in rngs]).reshape(runs, per_epoch, batch)
        idx = order[:, position] if many else order[0, position]
        p, opt_state = step(p, opt_state, x, y, idx)
        if done in keep:
            for i, tracker in enumerate(trackers):
                if tracker.running:
                    tracker.kept[done] = unstack(p, i)
        if done % config.eval_every and done != config.max_steps and done not in early:
            continue
        progress.update(done - progress.n)
        losses = np.asarray(evaluate(p, x_watch, y_watch, x_val, y_val), dtype=np.float64).reshape(2, runs)
        for i, tracker in enumerate(trackers):
            if tracker.running:
                tracker.record(done, losses[0, i], losses[1, i], lambda i=i: unstack(p, i))
        if not any(t.running for t in trackers):
            break
    progress.close()
    return [t.result() for t in trackers]


@functools.lru_cache(maxsize=64)
def _compiled(model, config: TrainConfig, many: bool):
    """(step, evaluate, init) of a model and optimizer, jit-compiled once per process for
    each shape (vmapped over runs when ``many``), so that the runs of a curve don't recompile."""
    optimizer = make_optimizer(config)

    def loss_fn(q, xb, yb):
        return mse(model.apply(q, xb), yb)

    def one_step(q, opt_state, x, y, idx):
        grads = jax.grad(loss_fn)(q, x[idx], y[idx])
        updates, opt_state = optimizer.update(grads, opt_state, q)
        return optax.apply_updates(q, updates), opt_state

    def one_eval(q, x, y, x_val, y_val):
        return loss_fn(q, x, y), loss_fn(q, x_val, y_val)

    if many:
        return (jax.jit(jax.vmap(one_step)), jax.jit(jax.vmap(one_eval, in_axes=(0, 0, 0, None, 0))),
                jax.jit(jax.vmap(optimizer.init)))
    return jax.jit(one_step), jax.jit(one_eval), jax.jit(optimizer.init)


class _Tracker:
    """One run's early-stopping record: best validation loss, its step and parameters."""

    def __init__(self, params, patience: int, config: TrainConfig):
        self.params, self.patience, self.config = params, patience, config
        self.best_val, self.best_step, self.last_step = math.inf, 0, 0
        self.history, self.kept, self.running = [], {}, True

    def record(self, step: int, train_loss: float, val_loss: float, params) -> None:
        if not (math.isfinite(train_loss) and train_loss < 1e6):
            raise DivergedError(f"training diverged by step {step}: train loss {train_loss:.3g} with "
                                f"{self.config.optimizer} at learning rate {self.config.learning_rate:g}")
        self.history.append({"step": step, "train_loss": float(train_loss), "val_loss": float(val_loss)})
        self.last_step = step
        if val_loss < self.best_val:
            self.best_val, self.best_step, self.params = val_loss, step, params()
        if step - self.best_step >= self.patience or step >= self.config.max_steps:
            self.running = False

    def result(self) -> TrainResult:
        cut = self.last_step - self.best_step < self.patience
        checkpoints = {}
        if self.kept:
            available = np.array(sorted({s for s in self.kept if s <= self.best_step} | {self.best_step}))
            for target in checkpoint_steps(self.best_step):
                nearest = int(available[np.argmin(np.abs(available - target))])
                checkpoints[nearest] = self.params if nearest == self.best_step else self.kept[nearest]
        return TrainResult(self.params, self.best_step, self.last_step, cut, self.history, checkpoints)
