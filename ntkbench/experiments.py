"""Experiment specs and the measurements they name.

An :class:`ExperimentSpec` is a frozen, hashable description of one measurement (a
scaling curve of the trained network, or of its eNTK at initialisation). Runners turn a
spec into records, one row per (seed, n), computed seed by seed so that the cache can keep
partial progress. Several claims share an experiment by asking for an equal spec.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable
from importlib import metadata

import jax
import numpy as np

from ntkbench.data import load_dataset
from ntkbench.gram_engines import PRECISIONS, check_choice
from ntkbench.kernels import entk_gram, infinite_ntk_gram, kernel_distance
from ntkbench.models import build_model
from ntkbench.registry import ARCHITECTURES, DATASETS
from ntkbench.regression import DEFAULT_RIDGE_GRID, error_rate, fit_ridge, fit_ridge_path, mse
from ntkbench.train import batches_networks, init_params, train_many
from ntkbench.train_config import TrainConfig

#: How every curve predicts. ``centred``: the network predicts f(x; θ) − f(x; θ0) and every
#: kernel regression has no offset, so every curve starts from the zero function.
#: ``uncentred``: the network as is, and eNTK regression offset by the network's output.
CONVENTIONS = ("centred", "uncentred")

SCHEMA_VERSION = 3  # bumped when computed numbers change (3: conventions, per-seed data, patience)
PROBE_SIZE = 256  # held-out inputs (the first test points) on which kernels are compared


class NotApplicableError(Exception):
    """The experiment does not exist for this case (e.g. an architecture without a twin)."""


def stax_twin(arch: str):
    """The architecture's stax twin factory; NotApplicableError when it has none."""
    twin = ARCHITECTURES.get(arch).twin
    if twin is None:
        raise NotApplicableError(f"architecture {arch!r} has no stax twin")
    return twin


def check_applicable(kind: str, arch: str) -> None:
    """Raise NotApplicableError before anything is computed for a case that cannot run."""
    if kind == "ntk_inf":
        stax_twin(arch)
KEYED_PACKAGES = ("ntkbench", "jax", "jaxlib", "flax", "optax", "neural-tangents", "mnist1d", "numpy", "scipy")


@dataclasses.dataclass(frozen=True)
class ExperimentSpec:
    kind: str  # a key of RUNNERS
    arch: str
    dataset: str
    n_grid: tuple[int, ...]
    n_val: int
    n_test: int
    seeds: tuple[int, ...]
    arch_kwargs: tuple[tuple[str, object], ...] = ()
    data_kwargs: tuple[tuple[str, object], ...] = ()
    data_seed: int = 0
    train: TrainConfig | None = None  # only for experiments that train
    ridge_grid: tuple[float, ...] = DEFAULT_RIDGE_GRID
    n0: int | None = None  # training size of the network whose trained eNTK is used
    entk_precision: str = "float32"  # of the eNTK's matrix products (ntkbench.gram_engines.PRECISIONS)
    convention: str = "centred"  # one of CONVENTIONS
    n_pool: int = 0  # training pool each seed draws its order from (0: n_max)

    def __post_init__(self):
        if self.kind not in RUNNERS:
            raise ValueError(f"unknown experiment kind {self.kind!r}; known: {', '.join(RUNNERS)}")
        if not self.n_grid or list(self.n_grid) != sorted(set(self.n_grid)) or min(self.n_grid) < 1:
            raise ValueError(f"n_grid must be increasing positive sizes, got {self.n_grid}")
        needs_n0 = self.kind in NEEDS_N0
        if (needs_n0 and (self.n0 is None or self.train is None)) or (not needs_n0 and self.n0 is not None):
            raise ValueError(f"n0 and train are required by, and n0 only allowed for, "
                             f"{' and '.join(NEEDS_N0)} experiments")
        if self.n0 is not None and self.n0 not in self.n_grid:
            raise ValueError(f"n0={self.n0} must be one of n_grid {self.n_grid}")
        check_choice("precision", self.entk_precision, PRECISIONS)
        check_choice("convention", self.convention, CONVENTIONS)
        if self.n_pool and self.n_pool < self.n_max:
            raise ValueError(f"n_pool={self.n_pool} is smaller than the largest training set {self.n_max}")

    def network(self) -> "ExperimentSpec":
        """The spec of the network-training experiment with this one's data and model."""
        return dataclasses.replace(self, kind="nn", n0=None, entk_precision=ExperimentSpec.entk_precision)

    @property
    def n_max(self) -> int:
        return max(self.n_grid)

    @property
    def pool_size(self) -> int:
        return self.n_pool or self.n_max

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @functools.cached_property
    def key(self) -> str:
        """sha256 of the spec, the schema version, the versions of the numerical stack and,
        for a dataset read from files, their fingerprint."""
        payload = {"spec": self.to_dict(), "schema": SCHEMA_VERSION, "versions": package_versions()}
        dataset = DATASETS.get(self.dataset) if self.dataset in DATASETS.names() else None
        if dataset is not None and dataset.fingerprint is not None:
            payload["data"] = dataset.fingerprint()
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.arch}/{self.dataset}@{self.key[:10]}"


@functools.cache
def package_versions(names: tuple[str, ...] = KEYED_PACKAGES) -> dict[str, str]:
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


@dataclasses.dataclass
class Context:
    """What every seed of an experiment shares: the data, the model, and the cache that
    holds the experiments it depends on and their stored parameters."""

    spec: ExperimentSpec
    cache: object = None  # an ExperimentCache; None computes without storing parameters
    _initial: dict = dataclasses.field(default_factory=dict, init=False, repr=False)  # seed → f(x; θ0)

    @functools.cached_property
    def splits(self):
        s = self.spec
        return load_dataset(s.dataset, s.pool_size, s.n_val, s.n_test, s.data_seed, **dict(s.data_kwargs))

    @functools.cached_property
    def model(self):
        return build_model(self.spec.arch, self.splits.num_outputs, **dict(self.spec.arch_kwargs))

    def order(self, seed: int) -> np.ndarray:
        """The seed's training points: the first n_max of its own permutation of the pool
        (every training set of the seed is a prefix of it)."""
        return training_order(seed, self.spec.pool_size, self.spec.n_max)

    def inputs(self, seed: int) -> np.ndarray:
        """[the seed's n_max training inputs | validation | test], the rows of every Gram."""
        d = self.splits
        return np.concatenate([d.x_train[self.order(seed)], d.x_val, d.x_test])

    def targets(self, seed: int) -> np.ndarray:
        """The seed's n_max training targets, in its order."""
        return self.splits.targets_train[self.order(seed)]

    @functools.cached_property
    def apply(self):
        """The model's forward pass, jit-compiled once for the experiment."""
        return jax.jit(self.model.apply)

    def outputs(self, params, seed: int, rows=slice(None)) -> np.ndarray:
        """f(x; ``params``) on ``rows`` of :meth:`inputs`, in float64."""
        return np.asarray(self.apply(params, self.inputs(seed)[rows]), dtype=np.float64)

    def initial_outputs(self, seed: int) -> np.ndarray:
        """f(x; θ0) on :meth:`inputs` of the seed, computed once per seed."""
        if seed not in self._initial:
            self._initial[seed] = self.outputs(init_params(self.model, seed, self.splits.x_train), seed)
        return self._initial[seed]

    def offset(self, params, seed: int) -> np.ndarray:
        """The eNTK regression's offset on :meth:`inputs`: the network's output at
        ``params`` (uncentred), or zero (centred)."""
        if self.spec.convention == "centred":
            return np.zeros((len(self.inputs(seed)), self.splits.num_outputs))
        return self.outputs(params, seed)

    @functools.cached_property
    def infinite_ntk_gram(self) -> np.ndarray:
        """The twin's NTK over [pool | validation | test], once for every seed."""
        twin = stax_twin(self.spec.arch)
        d = self.splits
        x_all = np.concatenate([d.x_train, d.x_val, d.x_test])
        return infinite_ntk_gram(twin(d.num_outputs, **dict(self.spec.arch_kwargs)), x_all)


def training_order(seed: int, pool: int, n_max: int) -> np.ndarray:
    """Indices into the training pool of a seed's n_max training points, in order."""
    return np.random.default_rng([int(seed), 20_221_104]).permutation(pool)[:n_max]


def _evaluate(predictions: np.ndarray, splits) -> dict:
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
        targets = ctx.targets(seed)[:n]
        fitted = _network_outputs(ctx, result.params, seed, slice(0, n))
        records.append({"seed": seed, "n": n, **_evaluate(predictions, d),
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
    results = train_many(model, params0, seeds, xs, ys, d.x_val, y_vals, spec.train, checkpoints=True,
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
    return [{"seed": seed, "n": fit.n, **_evaluate(fit.test_predictions, d), "ridge": fit.ridge,
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


def run_entk_evolution_seed(ctx: Context, seed: int) -> list[dict]:
    """The eNTK along the training of the network on n0 points, at log-spaced checkpoints:
    distances between kernels on the probe set, velocity per epoch, and the test loss of
    kernel regression (on the same n0 points) with the kernel taken at each checkpoint."""
    spec, d, model = ctx.spec, ctx.splits, ctx.model
    n, n_max = spec.n0, spec.n_max
    rows = np.r_[0:n, n_max:n_max + spec.n_val + spec.n_test]  # the seed's first n points, val, test
    x_all = ctx.inputs(seed)[rows]
    val, test = slice(n, n + spec.n_val), slice(n + spec.n_val, None)
    probe = slice(n + spec.n_val, n + spec.n_val + min(PROBE_SIZE, spec.n_test))
    records, probes = [], []
    for step, params in sorted(trained_params(ctx, seed, n, checkpoints=True).items()):
        gram = entk_gram(model, params, x_all, precision=spec.entk_precision,
                         description=f"eNTK {spec.arch} seed {seed} step {step}")
        f0 = ctx.offset(params, seed)[rows]
        fit = fit_ridge(gram[:n, :n], gram[val, :n], gram[test, :n], ctx.targets(seed)[:n], d.targets_val,
                        f0[:n], f0[val], f0[test], spec.ridge_grid)
        probes.append(gram[probe, probe])
        records.append({"seed": seed, "n": n, "step": step,
                        "epoch": step * min(spec.train.batch_size, n) / n,
                        **{f"kernel_{k}": v for k, v in _evaluate(fit.test_predictions, d).items()}})
    for i, record in enumerate(records):
        record["distance_from_init"] = kernel_distance(probes[0], probes[i])
        record["distance_to_final"] = kernel_distance(probes[i], probes[-1])
        nxt = records[i + 1] if i + 1 < len(records) else None
        record["velocity"] = (kernel_distance(probes[i], probes[i + 1]) / (nxt["epoch"] - record["epoch"])
                              if nxt else None)
    return records


def seed_groups(ctx: Context, seeds: list[int]) -> list[list[int]]:
    """The seeds that one runner call computes together: every seed of a network curve in
    one vmapped step where that pays (:func:`ntkbench.train.batches_networks`), else one
    seed a call (each call's records are saved as partial progress)."""
    batched = BATCHED.get(RUNNERS[ctx.spec.kind])
    if batched is not None and len(seeds) > 1 and batches_networks():
        return [list(seeds)]
    return [[seed] for seed in seeds]


def run_seeds(ctx: Context, seeds: list[int]) -> list[dict]:
    """The records of ``seeds`` (one group of :func:`seed_groups`)."""
    runner = RUNNERS[ctx.spec.kind]
    if len(seeds) > 1 and runner in BATCHED:
        return BATCHED[runner](ctx, seeds)
    return [record for seed in seeds for record in runner(ctx, seed)]


NEEDS_N0 = ("entk_after", "entk_evolution")
ENTK_KINDS = ("entk_init", *NEEDS_N0)  # the kinds that compute an empirical NTK
RUNNERS: dict[str, Callable[[Context, int], list[dict]]] = {
    "nn": run_nn_seed,
    "entk_init": run_entk_init_seed,
    "ntk_inf": run_ntk_inf_seed,
    "entk_after": run_entk_after_seed,
    "entk_evolution": run_entk_evolution_seed,
}
BATCHED = {run_nn_seed: run_nn_seeds}  # runners that can compute several seeds together
