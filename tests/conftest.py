"""Fixtures shared by the unit and plugin tests.

Every test runs with ``NTKBENCH_CACHE_DIR`` pointing at its own temporary directory, so the
user's cache is never read or written. Everything is sized to run in seconds on 2 CPU cores.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import tempfile
import types

import pytest

from ntkbench.storage import CACHE_ENV

# Tier overrides that shrink the smoke tier to a couple of seconds per experiment.
TINY_SETTINGS = ("n_grid=(64,128,192,256)", "n_val=64", "n_test=64", "seeds=(0,1)", "max_steps=400",
                 "eval_every=5", "patience=40", "after_n0=(64,)", "mlp.width=16")


JAX_CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"


def pytest_configure(config):
    """One jax compilation cache for the whole run: the xdist workers and the sessions the
    tests start in subprocesses (which inherit the environment) compile each program once.
    Compiled programs only: every test still computes its numbers (the same ones, bit for
    bit). Left alone when the environment names a cache of its own."""
    if JAX_CACHE_ENV not in os.environ and not hasattr(config, "workerinput"):
        config.ntkbench_jax_cache = os.environ[JAX_CACHE_ENV] = tempfile.mkdtemp(prefix="ntkbench-tests-jax-")
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"


def pytest_unconfigure(config):
    if getattr(config, "ntkbench_jax_cache", None):
        shutil.rmtree(os.environ.pop(JAX_CACHE_ENV), ignore_errors=True)
        os.environ.pop("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", None)


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    """This test's own ntkbench cache directory (``$NTKBENCH_CACHE_DIR``)."""
    path = tmp_path / "ntkbench-cache"
    monkeypatch.setenv(CACHE_ENV, str(path))
    return path


@pytest.fixture(scope="session")
def use_cache_dir():
    """A context manager pointing ``$NTKBENCH_CACHE_DIR`` at a directory, for fixtures wider
    than a test (where the function-scoped ``monkeypatch`` is not available)."""

    @contextlib.contextmanager
    def use(path):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(CACHE_ENV, str(path))
            yield path

    return use


@pytest.fixture(scope="session")
def tiny_settings() -> tuple[str, ...]:
    """``KEY=VALUE`` overrides of the smoke tier for tests (see TINY_SETTINGS)."""
    return TINY_SETTINGS


@pytest.fixture(scope="session")
def tiny_tier():
    """The smoke tier, shrunk to two seeds, three tiny sample sizes and a narrow MLP."""
    from ntkbench.tiers import get_tier

    return get_tier("smoke").with_overrides(list(TINY_SETTINGS))


@pytest.fixture(scope="session")
def make_spec():
    """``make_spec(kind="nn", **changes)``: a tiny MLP-on-MNIST-1D ExperimentSpec."""
    from ntkbench.experiments import ExperimentSpec
    from ntkbench.train import TrainConfig

    base = ExperimentSpec(kind="nn", arch="mlp", dataset="mnist1d", n_grid=(8, 16), n_val=8,
                          n_test=16, seeds=(0, 1), arch_kwargs=(("width", 8),),
                          train=TrainConfig(max_steps=4, eval_every=2))

    def make(kind: str = "nn", **changes):
        if kind != "nn":
            changes.setdefault("train", None)
        return dataclasses.replace(base, kind=kind, **changes)

    return make


@pytest.fixture
def scratch_architectures(monkeypatch):
    """Architectures registered during the test are dropped afterwards."""
    from ntkbench.registry import ARCHITECTURES

    ARCHITECTURES.names()  # the built-in and entry-point registrations first, into the original
    monkeypatch.setattr(ARCHITECTURES, "_entries", dict(ARCHITECTURES._entries))


@pytest.fixture
def twinless(scratch_architectures) -> str:
    """The name of a scratch architecture, a flax Dense layer, registered without a stax twin."""
    import flax.linen as nn

    from ntkbench.registry import register_architecture

    register_architecture("twinless")(lambda num_outputs: nn.Dense(num_outputs))
    return "twinless"


@pytest.fixture(scope="session")
def tiny_run(tiny_tier, tmp_path_factory, use_cache_dir):
    """C1's MLP-on-MNIST-1D cases, run once per session on the tiny tier.

    ``rows``: the leaderboard row of each metric; ``cache``: the ExperimentCache that
    computed their two experiments (``cache.root`` is a warm cache for plugin runs with
    ``tiny_settings``, whose experiment specs are the same).
    """
    from ntkbench.cache import ExperimentCache
    from ntkbench.cases import cases_for, run_case

    with use_cache_dir(tmp_path_factory.mktemp("tiny-run")) as root:
        cache = ExperimentCache(root / "experiments")
        rows = {case.metric: run_case(case, tiny_tier, cache)
                for case in cases_for("C1", ["mlp"], ["mnist1d"])}
    return types.SimpleNamespace(rows=rows, cache=cache)


@pytest.fixture
def warm_cache(tiny_run):
    """The experiment cache directory of the session's tiny run."""
    return tiny_run.cache.root


@pytest.fixture
def tiny_pytest_args(tiny_settings, warm_cache) -> list[str]:
    """Options for a pytester run of benchmark modules: tiny tier, the MLP, the warm cache."""
    return ["-p", "no:cacheprovider", "--ntkbench-tier=smoke", "--ntkbench-arch=mlp",
            *(f"--ntkbench-set={setting}" for setting in tiny_settings), f"--ntkbench-cache-dir={warm_cache.parent}"]
