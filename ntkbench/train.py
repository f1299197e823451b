"""Training with optax: jit-compiled minibatch steps, early stopping on validation patience.

Loss is the mean over samples of the squared error summed over outputs (MSE on centred
one-hot targets for classification). The parameters returned for each run are those with
the lowest validation loss (early stopping on the validation split, the counterpart of the
kernel's ridge selected on the same split), the initial parameters (step 0) included: a run
that never beats its starting point on validation keeps it, as a kernel whose best ridge is
the largest keeps close to its offset. (In the centred convention step 0 is the zero
function, the trivial predictor; without it, a run whose first steps overshoot keeps a
point worse than trivial, and its curve falls faster than anything it learned.) The budget
rule is in :mod:`ntkbench.train_config`.

Minibatches: each epoch is one permutation of the training points, drawn on the host from
the run's seed and cut into batches (sampling without replacement within an epoch, at no
per-step cost), and gathered on the host, so that the compiled steps do not depend on the
training size. The steps between two host visits run as ``lax.scan``s where that pays
(:func:`scans_steps`). Several runs with the same shapes can train in one vmapped step
(:func:`train_many`); each one then stops, keeps its best parameters and draws its batches
exactly as it would alone. Runs that are not vmapped together train side by side on host
threads (:func:`host_threads`), each exactly as alone.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor

from ntkbench import _env  # noqa: F401  (XLA flags before jax starts)
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
    cores (five networks): vmapped MNIST-1D MLPs run about the networks·steps/s of scanned
    runs one at a time and 0.6× of two side by side (:func:`host_threads`); vmapped 1-D
    CNNs 0.5× (XLA's CPU convolutions lose their fast path under vmap). Trained alone, a
    seed's numbers are bit-identical whichever other seeds a run has (a vmapped step
    differs in the last bits)."""
    return jax.default_backend() != "cpu"


def host_threads() -> int:
    """How many runs that are not vmapped together train at once, on host threads: on a CPU,
    the cores this process may use, shared among the pytest-xdist workers of the machine;
    on an accelerator, one. XLA's CPU step keeps to about one core at these sizes: on 2 cores,
    MNIST-1D MLPs train 1.6× as fast two side by side and 1-D CNNs 1.2×, each run
    bit-identical to alone."""
    if jax.default_backend() != "cpu":
        return 1
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(workers, 1))


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
          description: str = "train", checkpoints: bool = False, scanned: bool | None = None) -> TrainResult:
    """Train ``params`` on (x, y) with minibatches drawn by ``seed``; early-stop on validation.
    With ``checkpoints``, :func:`checkpoint_steps` of the best step (to within ~5%) are kept
    in ``TrainResult.checkpoints``."""
    return train_many(model, [params], [seed], [x], [y], x_val, y_val, config, description,
                      checkpoints, batched=False, scanned=scanned)[0]


def train_many(model, params: list, seeds: list[int], xs: list, ys: list, x_val, y_val_list,
               config: TrainConfig, description: str = "train", checkpoints: bool = False,
               batched: bool = True, scanned: bool | None = None) -> list[TrainResult]:
    """Train several runs of one model on training sets of one size; ``y_val_list`` holds
    each run's validation targets (or one array for all). ``batched``: one vmapped step for
    all runs; otherwise one run after the other (each with the same results as alone).
    ``scanned``: the steps between two evaluations as one ``lax.scan``, or one call each
    (default: :func:`scans_steps` decides)."""
    y_vals = list(y_val_list) if isinstance(y_val_list, list | tuple) else [y_val_list] * len(params)
    scanned = scans_steps(model, xs[0][:1], config) if scanned is None else scanned
    if batched:
        return _train_group(model, params, seeds, xs, ys, x_val, y_vals, config, description, checkpoints, scanned)

    def alone(i):
        return _train_group(model, [params[i]], [seeds[i]], [xs[i]], [ys[i]], x_val, [y_vals[i]], config,
                            description, checkpoints, scanned)[0]

    threads = min(host_threads(), len(params))
    if threads == 1:
        return [alone(i) for i in range(len(params))]
    largest_first = sorted(range(len(params)), key=lambda i: -len(xs[i]))
    with ThreadPoolExecutor(threads) as pool:
        futures = {i: pool.submit(alone, i) for i in largest_first}
        try:
            return [futures[i].result() for i in range(len(params))]
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


def _train_group(model, params, seeds, xs, ys, x_val, y_vals, config, description, checkpoints, scanned):
    runs, many = len(params), len(params) > 1
    n = int(np.shape(xs[0])[0])
    stack = (lambda arrays: jnp.stack([jnp.asarray(a) for a in arrays])) if many else (lambda a: jnp.asarray(a[0]))
    y_val, x_val = stack(y_vals), jnp.asarray(x_val)
    # minibatches are gathered on the host, so that the compiled steps see (steps, [runs,]
    # batch, …) arrays whatever n is: one compile per batch shape, not per training size
    x_host, y_host = (np.stack([np.asarray(a) for a in arrays]) for arrays in (xs, ys))
    runs_axis = np.arange(runs)[None, :, None]
    # the train loss is followed on as many training points as the validation split has
    # (the training sets are shuffled, so a prefix is a random subset): evaluating all n
    # every few steps would cost as much as the training
    watched = min(n, int(x_val.shape[0]))
    x_watch, y_watch = stack([a[:watched] for a in xs]), stack([a[:watched] for a in ys])
    p = jax.tree.map(lambda *leaves: jnp.stack(leaves), *params) if many else params[0]
    steps, evaluate, init_state = _compiled(model, config, many, scanned)
    opt_state = init_state(p)
    batches = _Batches(seeds, n, config)
    trackers = [_Tracker(params[i], config.patience_for(n), config) for i in range(runs)]
    keep = set(kept_steps(config.max_steps)) if checkpoints else set()
    unstack = (lambda tree, i: jax.tree.map(lambda a: a[i], tree)) if many else (lambda tree, i: tree)
    if 0 in keep:
        for i, tracker in enumerate(trackers):
            tracker.kept[0] = params[i]
    losses = np.asarray(evaluate(p, x_watch, y_watch, x_val, y_val), dtype=np.float64).reshape(2, runs)
    for i, tracker in enumerate(trackers):  # step 0: the initial parameters are a candidate too
        tracker.record(0, losses[0, i], losses[1, i], lambda i=i: params[i])
    done = 0
    progress = tqdm(total=config.max_steps, desc=description, leave=False, disable=None)
    for end in chunk_ends(config):
        idx = batches.take(end - done)  # (steps, runs, batch)
        xb, yb = x_host[runs_axis, idx], y_host[runs_axis, idx]
        p, opt_state = steps(p, opt_state, xb if many else xb[:, 0], yb if many else yb[:, 0])
        done = end
        if done in keep:
            for i, tracker in enumerate(trackers):
                if tracker.running:
                    tracker.kept[done] = unstack(p, i)
        if not evaluates(done, config):
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


def evaluates(step: int, config: TrainConfig) -> bool:
    """Whether a run evaluates after ``step``: every ``eval_every`` steps, at the cap, and at
    steps 1, 2, 4, … before the first ``eval_every``."""
    return step % config.eval_every == 0 or step == config.max_steps or (
        step < config.eval_every and step & (step - 1) == 0)


def chunk_ends(config: TrainConfig) -> list[int]:
    """The steps after which the host looks at a run (to evaluate or keep parameters): each of
    the first ``eval_every``, then each evaluation and kept step. The steps between two ends run as one
    call. The same for every run of a config, with or without checkpoints, so that a run's
    numbers never depend on what else is asked of it."""
    first = min(config.eval_every, config.max_steps)
    evaluations = {*range(1, first + 1), *range(2 * config.eval_every, config.max_steps + 1, config.eval_every),
                   config.max_steps}
    return sorted(evaluations | set(kept_steps(config.max_steps)) - {0})


class _Batches:
    """Minibatch indices of each run: one permutation of the n points an epoch (drawn on the
    host from the run's seed), cut into ``steps_per_epoch`` batches."""

    def __init__(self, seeds, n: int, config: TrainConfig):
        self.rngs = [np.random.default_rng([int(s), n, 1_000_003]) for s in seeds]
        self.n, self.batch, self.per_epoch = n, min(config.batch_size, n), config.steps_per_epoch(n)
        self.order, self.position = None, 0

    def take(self, count: int) -> np.ndarray:
        """Indices of the next ``count`` steps, shaped (count, runs, batch)."""
        rows = []
        for _ in range(count):
            if self.position % self.per_epoch == 0:
                self.order = np.stack([rng.permutation(self.n)[:self.per_epoch * self.batch] for rng in self.rngs])
                self.order = self.order.reshape(len(self.rngs), self.per_epoch, self.batch)
            rows.append(self.order[:, self.position % self.per_epoch])
            self.position += 1
        return np.stack(rows)


SCAN_MIN_STEPS = 10_000  # the cap from which runs scan: below it, the extra compile is not repaid


def scans_steps(model, sample_input, config: TrainConfig) -> bool:
    """Whether the steps between two host visits run as one ``lax.scan`` (one dispatch)
    rather than one call each: yes for runs capped at ``SCAN_MIN_STEPS`` or more, except
    for models with convolutions on a CPU. Measured on 2 CPU cores (batch 128): the small
    tier's MLP step drops from 0.32 to 0.20 ms with bit-identical parameters, and its
    network curve (31,840 steps over six sizes and five seeds) from 11.7 to 9.9 s, compiles
    included; the 1-D CNN's step rises from 3 to 57 ms (XLA's CPU convolutions lose their
    fast path inside a loop). A scan is one more compile per shape (~0.3 s), so short runs
    (unit tests, the smoke tier's cap of 2,000 steps) would only pay for it."""
    if config.max_steps < SCAN_MIN_STEPS:
        return False
    sample = np.asarray(sample_input)
    return jax.default_backend() != "cpu" or not _has_convolution(model, sample.shape, str(sample.dtype))


@functools.lru_cache(maxsize=64)
def _has_convolution(model, shape: tuple, dtype: str) -> bool:
    x = jax.ShapeDtypeStruct(shape, dtype)
    params = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
    return "conv_general_dilated" in str(jax.make_jaxpr(model.apply)(params, x))


def power_of_two_pieces(count: int) -> list[int]:
    """``count`` as a sum of distinct powers of two, largest first (13 → [8, 4, 1]). Chunks
    between host visits have many lengths (evaluations, kept steps); scanning them in these
    pieces compiles at most log2(longest chunk) + 1 scans per shape instead of one per
    length (measured: 17–21 s of compiles per training size of the small tier's MLP)."""
    return [1 << bit for bit in reversed(range(count.bit_length())) if count >> bit & 1]


@functools.lru_cache(maxsize=64)
def _compiled(model, config: TrainConfig, many: bool, scans: bool):
    """(steps, evaluate, init) of a model and optimizer, jit-compiled once per process for
    each shape (vmapped over runs when ``many``), so that the runs of a curve don't
    recompile. ``steps`` runs one step per row of its (steps, [runs,] batch, …) minibatches:
    as ``lax.scan``s of power-of-two lengths if ``scans``, else one call each."""
    optimizer = make_optimizer(config)

    def loss_fn(q, xb, yb):
        return mse(model.apply(q, xb), yb)

    def one_step(q, opt_state, xb, yb):
        grads = jax.grad(loss_fn)(q, xb, yb)
        updates, opt_state = optimizer.update(grads, opt_state, q)
        return optax.apply_updates(q, updates), opt_state

    def one_eval(q, x, y, x_val, y_val):
        return loss_fn(q, x, y), loss_fn(q, x_val, y_val)

    init = optimizer.init
    if many:
        one_step, one_eval, init = jax.vmap(one_step), jax.vmap(one_eval, in_axes=(0, 0, 0, None, 0)), jax.vmap(init)
    step = jax.jit(one_step)

    @jax.jit
    def scan(q, opt_state, xs, ys):
        return jax.lax.scan(lambda state, batch: (one_step(*state, *batch), None), (q, opt_state), (xs, ys))[0]

    def scanned(q, opt_state, xs, ys):
        start = 0
        for size in power_of_two_pieces(len(xs)):  # a scan compiles once per length
            piece = slice(start, start + size)
            q, opt_state = step(q, opt_state, xs[start], ys[start]) if size == 1 else scan(q, opt_state, xs[piece], ys[piece])
            start += size
        return q, opt_state

    def stepwise(q, opt_state, xs, ys):
        for xb, yb in zip(xs, ys):
            q, opt_state = step(q, opt_state, xb, yb)
        return q, opt_state

    return (scanned if scans else stepwise), jax.jit(one_eval), jax.jit(init)


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
            for target in checkpoint_steps(self.best_step, self.config):
                nearest = int(available[np.argmin(np.abs(available - target))])
                checkpoints[nearest] = self.params if nearest == self.best_step else self.kept[nearest]
        return TrainResult(self.params, self.best_step, self.last_step, cut, self.history, checkpoints)
