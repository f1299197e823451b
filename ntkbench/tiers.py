"""Tiers: how much of each experiment a run does (sample sizes, seeds, training budget).

* ``smoke`` — seconds per case; proves the machinery, verdicts are not meaningful.
* ``small`` — a 2-core CPU in minutes; MNIST-1D up to a few thousand samples.
* ``paper`` — one GPU; MNIST-1D up to 16k training samples and more seeds, and the image
  networks (Myrtle CNNs) on CIFAR-10 and CIFAR-5m from local files.
"""

from __future__ import annotations

import ast
import dataclasses

from ntkbench.train_config import TrainConfig


@dataclasses.dataclass(frozen=True)
class Tier:
    name: str
    n_grid: tuple[int, ...]
    n_val: int
    n_test: int
    seeds: tuple[int, ...]
    train: TrainConfig
    # the fit window (n_min, n_max) of every scaling claim that sets none, fixed before any
    # loss is seen; None: the whole grid. It must hold at least four sizes (ntkbench.fit)
    fit_window: tuple[int, int] | None = None
    # C2: training sizes of the networks whose eNTK is reused; C2 fits n ≥ n0, so at least
    # four sizes of the grid must lie at or above each (at most max(n_grid)/8 on a doubling grid)
    after_n0: tuple[int, ...] = ()
    evolution_n: int = 0  # C3: training size along whose training the eNTK is followed
    # C1b: (architecture, overrides) variants of the C1 setting; "*" for every architecture
    robustness: tuple[tuple[str, tuple[str, ...]], ...] = ()
    arch_kwargs: dict = dataclasses.field(default_factory=dict)  # arch name → kwargs
    datasets: tuple[str, ...] = ()  # run besides each claim's own datasets (e.g. CIFAR at the paper tier)
    entk_precision: str = "float32"  # eNTK matrix products: float32, tf32 or bf16 (see ntkbench.gram_engines)
    convention: str = "centred"  # how every curve predicts (ntkbench.experiments.CONVENTIONS)
    pool_factor: int = 2  # each seed draws its training sets from a pool of pool_factor × max(n_grid)
    # (architecture, experiment kind) pairs the tier leaves out for their cost: the cases that
    # need one are "not applicable" there (``--ntkbench-set "deferred=()"`` runs them)
    deferred: tuple[tuple[str, str], ...] = ()
    # whether the tier's verdicts mean anything: where they do not (smoke: the machinery only),
    # verdicts are reported but controls and unexpected verdicts do not fail a case
    verdicts: bool = True

    def __post_init__(self):
        for name in ("n_grid", "seeds"):
            value = getattr(self, name)
            if not (isinstance(value, tuple) and value and all(_is_int(v) for v in value)):
                raise ValueError(f"{name} must be a non-empty tuple of integers, got {value!r}")
        if list(self.n_grid) != sorted(set(self.n_grid)) or self.n_grid[0] < 1:
            raise ValueError(f"n_grid must be increasing positive sizes, got {self.n_grid}")
        if self.fit_window is not None and not (isinstance(self.fit_window, tuple) and len(self.fit_window) == 2
                                                and all(_is_int(v) for v in self.fit_window)):
            raise ValueError(f"fit_window must be (n_min, n_max) or None, got {self.fit_window!r}")
        for name in ("n_val", "n_test", "pool_factor"):
            if not (_is_int(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not all(isinstance(p, tuple) and len(p) == 2 and all(isinstance(v, str) for v in p) for p in self.deferred):
            raise ValueError(f"deferred must be (architecture, experiment kind) pairs, got {self.deferred!r}")

    def with_overrides(self, assignments: list[str]) -> "Tier":
        """Apply ``KEY=VALUE`` overrides: a TrainConfig field (``learning_rate=0.1``), a tier
        field (``seeds=(0,1)``) or an architecture keyword (``mlp.width=256``)."""
        tier, train, arch_kwargs = {}, {}, {k: dict(v) for k, v in self.arch_kwargs.items()}
        train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
        tier_fields = {f.name for f in dataclasses.fields(Tier)} - {"name", "train", "arch_kwargs"}
        for assignment in assignments:
            key, sep, raw = assignment.partition("=")
            if not sep:
                raise ValueError(f"override {assignment!r} is not KEY=VALUE")
            key, value = key.strip(), _parse(raw.strip())
            if "." in key:
                arch, _, kwarg = key.partition(".")
                arch_kwargs.setdefault(arch, {})[kwarg] = value
            elif key in train_fields:
                train[key] = value
            elif key in tier_fields:
                tier[key] = tuple(value) if isinstance(value, list | tuple) else value
            else:
                known = ", ".join(sorted(train_fields | tier_fields))
                raise ValueError(f"unknown override {key!r}; known: {known}, or ARCH.KWARG")
        return dataclasses.replace(self, train=dataclasses.replace(self.train, **train),
                                   arch_kwargs=arch_kwargs, **tier)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse(raw: str):
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


#: C1b sweeps. The small tier varies the MLP's learning rate, optimizer and prediction
#: convention (a CNN network curve costs ~2–3 minutes at five seeds there); the paper tier
#: varies every axis for every architecture.
SGD = ("optimizer='sgd'", "learning_rate=0.005")  # the best validation loss of 0.005, 0.01, 0.02
SMALL_ROBUSTNESS = (("mlp", ("learning_rate=0.003",)), ("mlp", SGD), ("mlp", ("convention='uncentred'",)))
PAPER_ROBUSTNESS = (("*", ("learning_rate=0.0003",)), ("*", ("learning_rate=0.003",)),
                    ("*", ("batch_size=32",)), ("*", ("batch_size=512",)), ("*", SGD),
                    ("*", ("convention='uncentred'",)),
                    ("mlp", ("mlp.width=512",)), ("cnn1d", ("cnn1d.width=128",)))

TIERS = {
    "smoke": Tier("smoke", n_grid=(16, 32, 64, 128), n_val=64, n_test=128, seeds=(0, 1),
                  train=TrainConfig(max_steps=2000, eval_every=10, patience=100),
                  after_n0=(16,), evolution_n=128, robustness=(("mlp", SGD),), verdicts=False),
    "small": Tier("small", n_grid=(128, 256, 512, 1024, 2048, 4096), n_val=512, n_test=1024,
                  seeds=(0, 1, 2, 3, 4), train=TrainConfig(max_steps=20000, eval_every=20, patience=200, patience_epochs=10),
                  after_n0=(512,), evolution_n=512, robustness=SMALL_ROBUSTNESS,
                  # for the 10-minute budget on 2 cores: the 1-D CNN at width 16 (its network
                  # curve and Grams cost ~half of width 32's) and without its NTK(∞) (~2.5 minutes)
                  arch_kwargs={"cnn1d": {"width": 16}}, deferred=(("cnn1d", "ntk_inf"),)),
    "paper": Tier("paper", n_grid=(128, 256, 512, 1024, 2048, 4096, 8192, 16384), n_val=1024,
                  n_test=4096, seeds=(0, 1, 2, 3, 4),
                  train=TrainConfig(max_steps=50000, eval_every=50, patience=1000, patience_epochs=20),
                  after_n0=(512, 2048), evolution_n=4096, robustness=PAPER_ROBUSTNESS,
                  datasets=("cifar10", "cifar5m")),
}


def get_tier(name: str) -> Tier:
    if name not in TIERS:
        raise ValueError(f"unknown tier {name!r}; known: {', '.join(TIERS)}")
    return TIERS[name]
