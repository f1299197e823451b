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
from ntkbench.kernels import entk_gram
from ntkbench.models import build_model
from ntkbench.regression import DEFAULT_RIDGE_GRID, error_rate, fit_ridge, mse
from ntkbench.train import init_params, train
from ntkbench.train_config import TrainConfig

SCHEMA_VERSION = 1
KEYED_PACKAGES = ("ntkbench", "jax", "jaxlib", "flax", "optax", "numpy", "scipy")


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

    def __post_init__(self):
        if self.kind not in RUNNERS:
            raise ValueError(f"unknown experiment kind {self.kind!r}; known: {', '.join(RUNNERS)}")
        if not self.n_grid or list(self.n_grid) != sorted(set(self.n_grid)) or min(self.n_grid) < 1:
            raise ValueError(f"n_grid must be increasing positive sizes, got {self.n_grid}")

    @property
    def n_max(self) -> int:
        return max(self.n_grid)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @functools.cached_property
    def key(self) -> str:
        """sha256 of the spec, the schema version and the versions of the numerical stack."""
        payload = {"spec": self.to_dict(), "schema": SCHEMA_VERSION, "versions": package_versions()}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.arch}/{self.dataset}@{self.key[:10]}"


@functools.cache
def package_versions() -> dict[str, str]:
    found = {}
    for name in KEYED_PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


@dataclasses.dataclass
class Context:
    """What every seed of an experiment shares: the data and the model."""

    spec: ExperimentSpec

    @functools.cached_property
    def splits(self):
        s = self.spec
        return load_dataset(s.dataset, s.n_max, s.n_val, s.n_test, s.data_seed, **dict(s.data_kwargs))

    @functools.cached_property
    def model(self):
        return build_model(self.spec.arch, self.splits.num_outputs, **dict(self.spec.arch_kwargs))


def _evaluate(predictions: np.ndarray, splits) -> dict:
    return {"test_mse": mse(predictions, splits.targets_test),
            "test_error": error_rate(predictions, splits.labels_test)}


def run_nn_seed(ctx: Context, seed: int) -> list[dict]:
    """Train from the seed's initialisation on each nested prefix of the training set."""
    spec, d, model = ctx.spec, ctx.splits, ctx.model
    params0 = init_params(model, seed, d.x_train)
    records = []
    for n in spec.n_grid:
        result = train(model, params0, seed, d.x_train[:n], d.targets_train[:n], d.x_val, d.targets_val,
                       spec.train, description=f"{spec.arch} seed {seed} n={n}")
        predictions = np.asarray(model.apply(result.params, d.x_test), dtype=np.float64)
        records.append({"seed": seed, "n": n, **_evaluate(predictions, d),
                        "best_step": result.best_step, "final_train_mse": result.history[-1]["train_loss"]})
    return records


def kernel_curve(ctx: Context, gram: np.ndarray, f0: np.ndarray, seed: int) -> list[dict]:
    """Kernel regression on each nested prefix, from one Gram over [train_max | val | test].

    ``gram`` and ``f0`` (the network output at the kernel's parameters) are indexed by the
    concatenation of the n_max training points, the validation points and the test points.
    """
    spec, d = ctx.spec, ctx.splits
    n_max, n_val = spec.n_max, spec.n_val
    val = slice(n_max, n_max + n_val)
    test = slice(n_max + n_val, None)
    records = []
    for n in spec.n_grid:
        fit = fit_ridge(gram[:n, :n], gram[val, :n], gram[test, :n], d.targets_train[:n], d.targets_val,
                        f0[:n], f0[val], f0[test], spec.ridge_grid)
        records.append({"seed": seed, "n": n, **_evaluate(fit.test_predictions, d),
                        "ridge": fit.ridge, "val_mse": fit.val_mse})
    return records


def run_entk_init_seed(ctx: Context, seed: int) -> list[dict]:
    """Kernel regression with the eNTK at the seed's initialisation (same init as the NN)."""
    d, model = ctx.splits, ctx.model
    params0 = init_params(model, seed, d.x_train)
    x_all = np.concatenate([d.x_train, d.x_val, d.x_test])
    gram = entk_gram(model, params0, x_all, description=f"eNTK {ctx.spec.arch} seed {seed}")
    f0 = np.asarray(jax.jit(model.apply)(params0, x_all), dtype=np.float64)
    return kernel_curve(ctx, gram, f0, seed)


RUNNERS: dict[str, Callable[[Context, int], list[dict]]] = {
    "nn": run_nn_seed,
    "entk_init": run_entk_init_seed,
}
