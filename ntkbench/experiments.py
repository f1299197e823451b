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
from ntkbench.train import init_params, train
from ntkbench.train_config import TrainConfig, checkpoint_steps

SCHEMA_VERSION = 2  # bumped when computed numbers change (2: one ridge scale for all n, nested solves)
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

    def network(self) -> "ExperimentSpec":
        """The spec of the network-training experiment with this one's data and model."""
        return dataclasses.replace(self, kind="nn", n0=None, entk_precision=ExperimentSpec.entk_precision)

    @property
    def n_max(self) -> int:
        return max(self.n_grid)

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

    @functools.cached_property
    def splits(self):
        s = self.spec
        return load_dataset(s.dataset, s.n_max, s.n_val, s.n_test, s.data_seed, **dict(s.data_kwargs))

    @functools.cached_property
    def model(self):
        return build_model(self.spec.arch, self.splits.num_outputs, **dict(self.spec.arch_kwargs))

    @functools.cached_property
    def infinite_ntk_curve(self) -> list[dict]:
        twin = stax_twin(self.spec.arch)
        d = self.splits
        x_all = np.concatenate([d.x_train, d.x_val, d.x_test])
        gram = infinite_ntk_gram(twin(d.num_outputs, **dict(self.spec.arch_kwargs)), x_all)
        return kernel_curve(self, gram, np.zeros((len(x_all), d.num_outputs)), seed=-1)


def _evaluate(predictions: np.ndarray, splits) -> dict:
    return {"test_mse": mse(predictions, splits.targets_test),
            "test_error": error_rate(predictions, splits.labels_test)}


def run_nn_seed(ctx: Context, seed: int) -> list[dict]:
    """Train from the seed's initialisation on each nested prefix of the training set."""
    spec, d, model = ctx.spec, ctx.splits, ctx.model
    records = []
    for n in spec.n_grid:
        result = _train_at(ctx, seed, n)
        predictions = np.asarray(model.apply(result.params, d.x_test), dtype=np.float64)
        records.append({"seed": seed, "n": n, **_evaluate(predictions, d),
                        "best_step": result.best_step, "final_train_mse": result.history[-1]["train_loss"]})
    return records


def _train_at(ctx: Context, seed: int, n: int):
    """Train on the first n points from the seed's initialisation; store the parameters."""
    spec, d, model = ctx.spec, ctx.splits, ctx.model
    params0 = init_params(model, seed, d.x_train)
    result = train(model, params0, seed, d.x_train[:n], d.targets_train[:n], d.x_val, d.targets_val,
                   spec.train, description=f"{spec.arch} seed {seed} n={n}",
                   checkpoints=checkpoint_steps(spec.train, n))
    if ctx.cache is not None:
        ctx.cache.save_params(spec.network(), f"seed{seed}-n{n}", result.params)
        for step, params in result.checkpoints.items():
            ctx.cache.save_params(spec.network(), f"seed{seed}-n{n}-step{step}", params)
    return result


def trained_params(ctx: Context, seed: int, n: int, steps=None):
    """The network's best-validation parameters after training on n points, or with
    ``steps`` a dict step → parameters at those checkpoints: stored by the network's
    experiment (computed first if needed), or trained again when the store lacks them."""
    template = init_params(ctx.model, seed, ctx.splits.x_train)
    names = {None: f"seed{seed}-n{n}"} if steps is None else {s: f"seed{seed}-n{n}-step{s}" for s in steps}
    if ctx.cache is not None:
        ctx.cache.get(ctx.spec.network())
        stored = {k: ctx.cache.load_params(ctx.spec.network(), name, template) for k, name in names.items()}
        if all(p is not None for p in stored.values()):
            return stored[None] if steps is None else stored
    result = _train_at(ctx, seed, n)
    return result.params if steps is None else {s: result.checkpoints[s] for s in steps}


def kernel_curve(ctx: Context, gram: np.ndarray, f0: np.ndarray, seed: int) -> list[dict]:
    """Kernel regression on each nested prefix, from one Gram over [train_max | val | test].

    ``gram`` and ``f0`` (the network output at the kernel's parameters) are indexed by the
    concatenation of the n_max training points, the validation points and the test points.
    """
    spec, d = ctx.spec, ctx.splits
    n_max, n_val = spec.n_max, spec.n_val
    val = slice(n_max, n_max + n_val)
    test = slice(n_max + n_val, None)
    fits = fit_ridge_path(gram[:n_max, :n_max], gram[val, :n_max], gram[test, :n_max], d.targets_train[:n_max],
                          d.targets_val, f0[:n_max], f0[val], f0[test], spec.n_grid, spec.ridge_grid)
    return [{"seed": seed, "n": fit.n, **_evaluate(fit.test_predictions, d), "ridge": fit.ridge, "val_mse": fit.val_mse}
            for fit in fits]


def entk_curve(ctx: Context, params, seed: int) -> list[dict]:
    """Kernel regression with the eNTK at ``params``, offset by the network's output there."""
    d, model = ctx.splits, ctx.model
    x_all = np.concatenate([d.x_train, d.x_val, d.x_test])
    gram = entk_gram(model, params, x_all, precision=ctx.spec.entk_precision,
                     description=f"eNTK {ctx.spec.arch} seed {seed}")
    f0 = np.asarray(jax.jit(model.apply)(params, x_all), dtype=np.float64)
    return kernel_curve(ctx, gram, f0, seed)


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
    infinite-width network's mean output is 0). Seed-independent: computed once per
    experiment and repeated for each seed so the curve pairs with the network's."""
    return [{**record, "seed": seed} for record in ctx.infinite_ntk_curve]


def run_entk_evolution_seed(ctx: Context, seed: int) -> list[dict]:
    """The eNTK along the training of the network on n0 points, at log-spaced checkpoints:
    distances between kernels on the probe set, velocity per epoch, and the test loss of
    kernel regression (on the same n0 points) with the kernel taken at each checkpoint."""
    spec, d, model = ctx.spec, ctx.splits, ctx.model
    n, steps = spec.n0, checkpoint_steps(spec.train, spec.n0)
    x_all = np.concatenate([d.x_train[:n], d.x_val, d.x_test])
    val, test = slice(n, n + spec.n_val), slice(n + spec.n_val, None)
    probe = slice(n + spec.n_val, n + spec.n_val + min(PROBE_SIZE, spec.n_test))
    apply = jax.jit(model.apply)
    records, probes = [], []
    for step, params in trained_params(ctx, seed, n, steps).items():
        gram = entk_gram(model, params, x_all, precision=spec.entk_precision,
                         description=f"eNTK {spec.arch} seed {seed} step {step}")
        f0 = np.asarray(apply(params, x_all), dtype=np.float64)
        fit = fit_ridge(gram[:n, :n], gram[val, :n], gram[test, :n], d.targets_train[:n], d.targets_val,
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


NEEDS_N0 = ("entk_after", "entk_evolution")
ENTK_KINDS = ("entk_init", *NEEDS_N0)  # the kinds that compute an empirical NTK
RUNNERS: dict[str, Callable[[Context, int], list[dict]]] = {
    "nn": run_nn_seed,
    "entk_init": run_entk_init_seed,
    "ntk_inf": run_ntk_inf_seed,
    "entk_after": run_entk_after_seed,
    "entk_evolution": run_entk_evolution_seed,
}
