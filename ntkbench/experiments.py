"""Experiment specs and the measurements they name.

An :class:`ExperimentSpec` is a frozen, hashable description of one measurement (a
scaling curve of the trained network, or of its eNTK at initialisation). Runners turn a
spec into records, one row per (seed, n), computed seed by seed so that the cache can keep
partial progress. Several claims share an experiment by asking for an equal spec.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import importlib.util
import inspect
import json
import textwrap
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from ntkbench import _env  # noqa: F401  (XLA flags before jax starts)
import jax
import numpy as np

from ntkbench.data import load_dataset
from ntkbench.gram_engines import PRECISIONS, check_choice
from ntkbench.kernels import infinite_ntk_gram
from ntkbench.models import build_model
from ntkbench.registry import ARCHITECTURES, DATASETS
from ntkbench.regression import DEFAULT_RIDGE_GRID
from ntkbench.train import batches_networks, init_params
from ntkbench.train_config import TrainConfig

#: How every curve predicts. ``centred``: the network predicts f(x; θ) − f(x; θ0) and every
#: kernel regression has no offset, so every curve starts from the zero function.
#: ``uncentred``: the network as is, and eNTK regression offset by the network's output.
CONVENTIONS = ("centred", "uncentred")

SCHEMA_VERSION = 5  # bumped when computed numbers change (4: stored predictions, C3 angles; 5: probe kernels
# computed on their own, kernel-at-t regression at the even checkpoints only)


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
    reason = get_kind(kind).applies(arch)
    if reason:
        raise NotApplicableError(reason)
KEYED_PACKAGES = ("ntkbench", "jax", "jaxlib", "flax", "optax", "neural-tangents", "mnist1d", "numpy", "scipy")
#: The ntkbench modules that compute numbers. An experiment's key holds the source of each one
#: that its kind's, architecture's or dataset's code imports, directly or through one another;
#: the other ntkbench modules (registry, storage, cache, claims, the plugin…) never change them.
ENGINE_MODULES = frozenset(f"ntkbench.{name}" for name in (
    "train", "train_config", "kernels", "gram_engines", "layer_factors", "nt_compat", "regression", "runners",
    "evolution", "linearized", "travel", "models.layers", "data.splits"))


@dataclasses.dataclass(frozen=True)
class ExperimentSpec:
    kind: str  # a key of KINDS
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
        kind = get_kind(self.kind)
        if not self.n_grid or list(self.n_grid) != sorted(set(self.n_grid)) or min(self.n_grid) < 1:
            raise ValueError(f"n_grid must be increasing positive sizes, got {self.n_grid}")
        if (kind.needs_n0 and (self.n0 is None or self.train is None)) or (not kind.needs_n0 and self.n0 is not None):
            needing = [k.name for k in KINDS.values() if k.needs_n0]
            raise ValueError(f"n0 and train are required by, and n0 only allowed for, "
                             f"{' and '.join(needing)} experiments")
        if self.n0 is not None and self.n0 not in self.n_grid:
            raise ValueError(f"n0={self.n0} must be one of n_grid {self.n_grid}")
        check_choice("precision", self.entk_precision, PRECISIONS)
        check_choice("convention", self.convention, CONVENTIONS)
        if self.n_pool and self.n_pool < self.n_max:
            raise ValueError(f"n_pool={self.n_pool} is smaller than the largest training set {self.n_max}")

    def network(self) -> "ExperimentSpec":
        """The spec of the network-training experiment with this one's data and model (kept
        with this spec, its key included, so that a copy pickled for a scheduler's worker
        carries both keys as the session computed them)."""
        if "_network" not in self.__dict__:
            network = dataclasses.replace(self, kind=get_kind(self.kind).network, n0=None,
                                          entk_precision=ExperimentSpec.entk_precision)
            self.__dict__["_network"] = network if network != self else self
        return self.__dict__["_network"]

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
        """sha256 of the spec, the schema version, the versions of the numerical stack, the
        source of the code that computes it (:func:`code_digests`) and, for a dataset read
        from files, their fingerprint."""
        payload = {"spec": self.to_dict(), "schema": SCHEMA_VERSION, "versions": package_versions(),
                   "code": code_digests(self)}
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


def code_digests(spec: ExperimentSpec) -> dict[str, str | None]:
    """Digests of the code that computes ``spec``: its kind's runner, batched runner and model
    wrapper, its architecture's builder and twin, its dataset's loader (each: the whole file
    that defines it, with the ENGINE_MODULES it imports) and the Context every kind shares."""
    kind = get_kind(spec.kind)
    arch = ARCHITECTURES.get(spec.arch) if spec.arch in ARCHITECTURES else None
    dataset = DATASETS.get(spec.dataset) if spec.dataset in DATASETS else None
    return {"kind": _digest(kind.runner, kind.batched, kind.model), "arch": arch and _digest(arch.build, arch.twin),
            "dataset": dataset and _digest(dataset.load), "context": _context_digest()}


def _digest(*objects) -> str:
    defined = (obj if inspect.isfunction(obj) or inspect.ismethod(obj) or inspect.isclass(obj) else type(obj)
               for obj in objects if obj is not None)  # a callable instance: its class
    return hashlib.sha256(" ".join(map(_source_digest, defined)).encode()).hexdigest()


@functools.cache
def _source_digest(target) -> str:
    """Digest of the file that defines ``target`` (its own source where no file holds it, as in
    a notebook) and of the ENGINE_MODULES it imports, transitively."""
    try:
        file = _source_file(target)
        source = Path(file).read_text() if file and Path(file).is_file() else textwrap.dedent(inspect.getsource(target))
    except (OSError, TypeError) as exc:
        raise ValueError(f"cannot key experiments on {target!r}: its source is unavailable ({exc})") from None
    return _closure_digest((source,))


def _source_file(target) -> str | None:
    """The file that defines ``target``; for a class, that of its own methods (its module's name
    may since name another module, as pytest's conftest modules share theirs)."""
    if inspect.isclass(target):
        codes = (getattr(inspect.unwrap(f), "__code__", None) for f in vars(target).values() if inspect.isfunction(f))
        files = [code.co_filename for code in codes if code is not None and Path(code.co_filename).is_file()]
        if files:
            return files[0]
    return inspect.getsourcefile(target)


@functools.cache
def _context_digest() -> str:
    """Digest of what every experiment shares: Context, training_order and the modules they use."""
    return _closure_digest((inspect.getsource(Context), inspect.getsource(training_order)),
                           frozenset({"ntkbench.train", "ntkbench.kernels"}))


def _closure_digest(sources: tuple[str, ...], modules: frozenset[str] = frozenset()) -> str:
    """sha256 of ``sources``, ``modules`` and the ENGINE_MODULES they import, transitively (order-free)."""
    modules, pending = set(modules), [*sources, *map(_module_source, modules)]
    while pending:
        found = _engine_imports(pending.pop()) - modules
        modules |= found
        pending += map(_module_source, found)
    texts = sorted({*sources, *map(_module_source, modules)})
    return hashlib.sha256(" ".join(hashlib.sha256(t.encode()).hexdigest() for t in texts).encode()).hexdigest()


@functools.cache
def _module_source(name: str) -> str:
    return Path(importlib.util.find_spec(name).origin).read_text()


@functools.cache
def _engine_imports(source: str) -> frozenset[str]:
    """The ENGINE_MODULES that ``source`` imports (absolute imports, anywhere in it)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.update([node.module, *(f"{node.module}.{alias.name}" for alias in node.names)])
    return frozenset(names & ENGINE_MODULES)


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
        """The architecture's module, as the experiment's kind trains it (``ExperimentKind.model``)."""
        model = build_model(self.spec.arch, self.splits.num_outputs, **dict(self.spec.arch_kwargs))
        transform = get_kind(self.spec.kind).model
        return transform(model) if transform is not None else model

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

    def store_predictions(self, seed: int, n: int, predictions: np.ndarray) -> None:
        """Keep a run's test predictions (for comparisons in function space)."""
        if self.cache is not None:
            self.cache.save_predictions(self.spec, seed, n, predictions)

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


def seed_groups(ctx: Context, seeds: list[int]) -> list[list[int]]:
    """The seeds that one runner call computes together: every seed of a network curve in
    one vmapped step where that pays (:func:`ntkbench.train.batches_networks`), else one
    seed a call (each call's records are saved as partial progress)."""
    if KINDS[ctx.spec.kind].batched is not None and len(seeds) > 1 and batches_networks():
        return [list(seeds)]
    return [[seed] for seed in seeds]


def run_seeds(ctx: Context, seeds: list[int]) -> list[dict]:
    """The records of ``seeds`` (one group of :func:`seed_groups`)."""
    kind = KINDS[ctx.spec.kind]
    if len(seeds) > 1 and kind.batched is not None:
        return kind.batched(ctx, seeds)
    return [record for seed in seeds for record in kind.runner(ctx, seed)]


@dataclasses.dataclass(frozen=True)
class ExperimentKind:
    """What one kind of experiment is: ``runner(ctx, seed)`` → the seed's records (and
    optionally ``batched(ctx, seeds)`` for several seeds at once); ``label`` names its curve
    in tables and figures ({n0} is filled in); ``trains``: its spec carries the training
    config (it trains a network or reads a trained one); ``needs_n0``: its spec names the
    training size n0 of the network it reads (``n0_from``: the tier field that gives it when
    no case sets it); ``entk``: it computes an empirical NTK (its spec carries the eNTK
    precision); ``applies(arch)``: None, or why the kind cannot run for that architecture;
    ``network``: the kind whose trained parameters it stores or reads (``ExperimentSpec.network``);
    ``model``: wraps the architecture's module before it is trained (e.g. its linearisation);
    ``figure``: how :mod:`ntkbench.plots` draws it ("scaling", "evolution" or "none")."""

    name: str
    runner: Callable[[Context, int], list[dict]]
    label: str
    trains: bool = False
    needs_n0: bool = False
    n0_from: str | None = None
    entk: bool = False
    batched: Callable[[Context, list[int]], list[dict]] | None = None
    applies: Callable[[str], str | None] = lambda arch: None
    figure: str = "scaling"
    network: str = "nn"
    model: Callable[[object], object] | None = None


KINDS: dict[str, ExperimentKind] = {}


def register_kind(kind: ExperimentKind) -> ExperimentKind:
    """Make an experiment kind known to specs, cases and the cache (a user's conftest.py or
    plugin module may register its own)."""
    KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> ExperimentKind:
    if name not in KINDS:
        raise ValueError(f"unknown experiment kind {name!r}; known: {', '.join(KINDS)}")
    return KINDS[name]


import ntkbench.runners  # noqa: E402,F401  (registers the built-in kinds)
import ntkbench.evolution  # noqa: E402,F401  (registers the kind "entk_evolution")
import ntkbench.linearized  # noqa: E402,F401  (registers the kind "nn_linearized")
