"""ExperimentSpec identity (frozen, hashable, keyed by content) and the runners' records."""

import dataclasses
import itertools

import numpy as np
import pandas as pd
import pytest

from ntkbench.cache import ExperimentCache
from ntkbench.cases import Case, experiment_spec
from ntkbench.train import TrainConfig

KINDS = ("nn", "entk_init")


def test_spec_is_frozen(make_spec):
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_spec().n_val = 32


def test_equal_specs_are_interchangeable(make_spec):
    first, second = make_spec(), make_spec()
    assert first is not second
    assert first == second and hash(first) == hash(second)
    assert len({first, second}) == 1
    assert first.key == second.key
    assert len(first.key) == 64 and int(first.key, 16) >= 0  # a sha256 hex digest


@pytest.mark.parametrize("changes", [
    pytest.param({"kind": "entk_init"}, id="kind"),
    pytest.param({"n_grid": (8, 32)}, id="n_grid"),
    pytest.param({"seeds": (0, 2)}, id="seeds"),
    pytest.param({"seeds": (1, 0)}, id="seed-order"),
    pytest.param({"train": TrainConfig(steps=4, eval_every=2, learning_rate=0.01)}, id="learning_rate"),
    pytest.param({"train": TrainConfig(steps=4, eval_every=2, optimizer="sgd")}, id="optimizer"),
    pytest.param({"arch_kwargs": (("width", 16),)}, id="arch_kwargs"),
    pytest.param({"arch": "cnn1d"}, id="arch"),
    pytest.param({"dataset": "teacher"}, id="dataset"),
    pytest.param({"n_val": 16}, id="n_val"),
    pytest.param({"n_test": 32}, id="n_test"),
    pytest.param({"data_seed": 1}, id="data_seed"),
    pytest.param({"data_kwargs": (("dim", 8),)}, id="data_kwargs"),
    pytest.param({"ridge_grid": (0.1, 1.0)}, id="ridge_grid"),
])
def test_changing_any_field_changes_the_key(make_spec, changes):
    changed = make_spec(**changes)
    assert changed != make_spec()
    assert changed.key != make_spec().key


@pytest.mark.parametrize("n_grid", [(16, 8), (8, 8, 16), (0, 8), (-8, 8), ()], ids=str)
def test_bad_n_grid_is_rejected(make_spec, n_grid):
    with pytest.raises(ValueError, match="n_grid"):
        make_spec(n_grid=n_grid)


def test_unknown_kind_is_rejected(make_spec):
    with pytest.raises(ValueError, match="unknown experiment kind 'nosuchkind'; known: nn, entk_init"):
        make_spec("nosuchkind")


@pytest.fixture(params=KINDS)
def computed(request, tiny_run, tiny_tier):
    """The tiny run's experiment of each kind (two seeds × three sizes), computed this session."""
    spec = experiment_spec(request.param, Case("C1", "mlp", "mnist1d", "test_mse"), tiny_tier)
    return tiny_run.cache.get(spec)


def test_runner_gives_one_finite_record_per_seed_and_n(computed):
    records, spec = computed.records, computed.spec
    assert sorted(zip(records["seed"], records["n"])) == sorted(itertools.product(spec.seeds, spec.n_grid))
    for metric in ("test_mse", "test_error"):
        assert np.all(np.isfinite(records[metric])), metric
    assert (records["test_mse"] > 0).all()
    assert records["test_error"].between(0, 1).all()


def test_same_spec_gives_identical_numbers_in_a_fresh_cache(computed):
    # Seeds are computed independently (that is what lets an interrupted run resume), so
    # the last seed alone, recomputed from scratch (data included), must match exactly.
    seed = computed.spec.seeds[-1]
    again = ExperimentCache().get(dataclasses.replace(computed.spec, seeds=(seed,)))  # empty cache
    assert not again.from_cache and again.path != computed.path
    expected = computed.records[computed.records["seed"] == seed].reset_index(drop=True)
    pd.testing.assert_frame_equal(again.records, expected, check_exact=True, check_like=True)
