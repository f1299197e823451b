"""The runners of the built-in experiment kinds: the trained network's curve ("nn") and kernel
regression with its eNTK at initialisation ("entk_init"), its infinite-width NTK
("ntk_inf") and the eNTK of the network trained on n0 points ("entk_after").

Each runner turns a seed of an :class:`ntkbench.experiments.ExperimentSpec` into records,
one per training size; test predictions go to the cache's array store, so that curves can
be compared in function space.
"""

from __future__ import annotations

import numpy as np

from ntkbench.experiments import Context, ExperimentKind, register_kind, seed_groups
from ntkbench.kernels import entk_gram
from ntkbench.registry import ARCHITECTURES
from ntkbench.regression import error_rate, fit_ridge_path, mse
from ntkbench.train import batches_networks, init_params, train_many


def evaluate(predictions: np.ndarray, splits) -> dict:
    """Test loss and error, and those of the trivial predictor 0 on the same points."""
    zero = np.zeros_like(splits.targets_test)
    return {"test_mse": mse(predictions, splits.targets_test),
            "test_error": error_rate(predictions, splits.labels_test),
            "trivial_test_mse": mse(zero, splits.targets_test),
            "trivial_test_error": error_rate(zero, splits.labels_test)}


def run_nn_seeds(ctx: Context, seeds: list[int]) -> list[dict]:
    """Train from each seed's initialisation on each nested prefix of its training set."""
    spec, d = ctx.spec, ctx.splits
    records = []
    runs = [(seed, n) for n in spec.n_grid for seed in seeds]
    for (seed, n), result in zip(runs, _train_runs(ctx, runs)):
        predictions = _network_outputs(ctx, result.params, seed, slice(spec.n_max + spec.n_val, None))
        ctx.store_predictions(seed, n, predictions)
        targets = ctx.targets(seed)[:n]
        fitted = _network_outputs(ctx, result.params, seed, slice(0, n))
        records.append({"seed": seed, "n": n, **evaluate(predictions, d),
                        "best_step": result.best_step, "last_step": result.last_step, "cut": result.cut,
                        "train_mse": mse(fitted, targets), "val_mse": result.best["val_loss"],
                        "min_train_mse": min(h["train_loss"] for h in result.history),
                        "trivial_train_mse": mse(np.zeros_like(targets), targets)})
    return records


def run_nn_seed(ctx: Context, seed: int) -> list[dict]:
    """:func:`run_nn_seeds` for one seed."""
    return run_nn_seeds(ctx, [seed])


def _network_outputs(ctx: Context, params, seed: int, rows: slice) -> np.ndarray:
    """The network's predictions on ``rows`` of :meth:`Context.inputs`: f(x; θ), minus
    f(x; θ0) in the centred convention."""
    out = ctx.outputs(params, seed, rows)
    if ctx.spec.convention == "centred":
        out = out - ctx.initial_outputs(seed)[rows]
    return out


def _train_runs(ctx: Context, runs: list[tuple[int, int]]):
    """Train each (seed, n) on the seed's first n points from its initialisation; store the
    parameters. The runs of one n train in one vmapped step where that pays
    (:func:`ntkbench.train.batches_networks`), else all runs one at a time (on host threads).
    In the centred convention the network fits y + f(x; θ0), so f − f0 fits y."""
    if not batches_networks():
        return _train_and_store(ctx, runs, batched=False)
    results = {}
    for n in sorted({n for _, n in runs}):
        same_size = [run for run in runs if run[1] == n]
        results.update(zip(same_size, _train_and_store(ctx, same_size, batched=True)))
    return [results[run] for run in runs]


def _train_and_store(ctx: Context, runs: list[tuple[int, int]], batched: bool):
    """One :func:`ntkbench.train.train_many` call for ``runs``; their parameters go to the store."""
    spec, d, model = ctx.spec, ctx.splits, ctx.model
    n_max, n_val = spec.n_max, spec.n_val
    xs, ys, y_vals = [], [], []
    for seed, n in runs:
        x_all = ctx.inputs(seed)
        shift = ctx.initial_outputs(seed) if spec.convention == "centred" else np.zeros((len(x_all), 1))
        xs.append(x_all[:n])
        ys.append((ctx.targets(seed)[:n] + shift[:n]).astype(np.float32))
        y_vals.append((d.targets_val + shift[n_max:n_max + n_val]).astype(np.float32))
    seeds = [seed for seed, _ in runs]
    params0 = [init_params(model, seed, d.x_train) for seed in seeds]
    # checkpoints serve the eNTK along training, which follows the network itself
    checkpoints = spec.network().kind == "nn"
    results = train_many(model, params0, seeds, xs, ys, d.x_val, y_vals, spec.train, checkpoints=checkpoints,
                         description=f"{spec.arch} seeds {sorted(set(seeds))} n={sorted({n for _, n in runs})}",
                         batched=batched)
    if ctx.cache is not None:
        for (seed, n), result in zip(runs, results):
            ctx.cache.save_params(spec.network(), f"seed{seed}-n{n}", result.params)
            for step, params in result.checkpoints.items():
                ctx.cache.save_params(spec.network(), f"seed{seed}-n{n}-step{step}", params)
    return results


def trained_params(ctx: Context, seed: int, n: int, checkpoints: bool = False):
    """The network's best-validation parameters after training on n points, or with
    ``checkpoints`` a dict step → parameters at its stored checkpoints: stored by the
    network's experiment (computed first if needed), or trained again when the store
    lacks them."""
    template = init_params(ctx.model, seed, ctx.splits.x_train)
    if ctx.cache is not None:
        ctx.cache.get(ctx.spec.network())
        if not checkpoints:
            stored = ctx.cache.load_params(ctx.spec.network(), f"seed{seed}-n{n}", template)
        else:
            stored = ctx.cache.load_checkpoints(ctx.spec.network(), f"seed{seed}-n{n}-step", template)
        if stored:
            return stored
    group = next(g for g in seed_groups(ctx, list(ctx.spec.seeds)) if seed in g)  # as the network experiment
    result = _train_runs(ctx, [(s, n) for s in group])[group.index(seed)]
    return result.checkpoints if checkpoints else result.params


def kernel_curve(ctx: Context, gram: np.ndarray, f0: np.ndarray, seed: int) -> list[dict]:
    """Kernel regression on each nested prefix, from one Gram over :meth:`Context.inputs`
    (the seed's n_max training points, the validation points and the test points), with
    ``f0`` the offset on the same rows."""
    spec, d = ctx.spec, ctx.splits
    n_max, n_val = spec.n_max, spec.n_val
    val = slice(n_max, n_max + n_val)
    test = slice(n_max + n_val, None)
    fits = fit_ridge_path(gram[:n_max, :n_max], gram[val, :n_max], gram[test, :n_max], ctx.targets(seed),
                          d.targets_val, f0[:n_max], f0[val], f0[test], spec.n_grid, spec.ridge_grid)
    edges = (min(spec.ridge_grid), max(spec.ridge_grid))
    for fit in fits:
        ctx.store_predictions(seed, fit.n, fit.test_predictions)
    return [{"seed": seed, "n": fit.n, **evaluate(fit.test_predictions, d), "ridge": fit.ridge,
             "ridge_at_edge": fit.ridge in edges, "val_mse": fit.val_mse} for fit in fits]


def entk_curve(ctx: Context, params, seed: int) -> list[dict]:
    """Kernel regression with the eNTK at ``params`` (offset: :meth:`Context.offset`)."""
    gram = entk_gram(ctx.model, params, ctx.inputs(seed), precision=ctx.spec.entk_precision,
                     description=f"eNTK {ctx.spec.arch} seed {seed}")
    return kernel_curve(ctx, gram, ctx.offset(params, seed), seed)


def run_entk_init_seed(ctx: Context, seed: int) -> list[dict]:
    """Kernel regression with the eNTK at the seed's initialisation (same init as the NN)."""
    return entk_curve(ctx, init_params(ctx.model, seed, ctx.splits.x_train), seed)


def run_entk_after_seed(ctx: Context, seed: int) -> list[dict]:
    """Kernel regression with the eNTK of the network trained on the first n0 points (the
    "after kernel"). Training sets are nested prefixes, so for n ≥ n0 the kernel's training
    set contains the n0 points it was pre-trained on, as in Vyas et al."""
    return entk_curve(ctx, trained_params(ctx, seed, ctx.spec.n0), seed)


def run_ntk_inf_seed(ctx: Context, seed: int) -> list[dict]:
    """Kernel regression with the twin's analytic infinite-width NTK (no offset: the
    infinite-width network's mean output is 0) on the seed's training sets; one Gram over
    the whole pool serves every seed."""
    s = ctx.spec
    rows = np.concatenate([ctx.order(seed), s.pool_size + np.arange(s.n_val + s.n_test)])
    gram = ctx.infinite_ntk_gram[np.ix_(rows, rows)]
    return kernel_curve(ctx, gram, np.zeros((len(rows), ctx.splits.num_outputs)), seed)


def _twin_missing(arch: str) -> str | None:
    return None if ARCHITECTURES.get(arch).twin is not None else f"architecture {arch!r} has no stax twin"


register_kind(ExperimentKind("nn", run_nn_seed, "NN", trains=True, batched=run_nn_seeds))
register_kind(ExperimentKind("entk_init", run_entk_init_seed, "eNTK(init)", entk=True))
register_kind(ExperimentKind("ntk_inf", run_ntk_inf_seed, "NTK(∞)", applies=_twin_missing))
register_kind(ExperimentKind("entk_after", run_entk_after_seed, "eNTK(after n0={n0})", trains=True,
                             needs_n0=True, entk=True))

