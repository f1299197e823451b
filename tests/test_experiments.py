"""ExperimentSpec identity (frozen, hashable, keyed by content), its validation, and the
runners' records."""

import dataclasses
import importlib.util
import itertools
import sys

import numpy as np
import pandas as pd
import pytest

from ntkbench import experiments, runners
from ntkbench.cache import ExperimentCache
from ntkbench.cases import Case, experiment_spec
from ntkbench.experiments import KINDS, NotApplicableError
from ntkbench.registry import ARCHITECTURES, Architecture

NEEDS_N0 = [kind for kind in KINDS if KINDS[kind].needs_n0]
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
    pytest.param({"train": TrainConfig(max_steps=4, eval_every=2, learning_rate=0.01)}, id="learning_rate"),
    pytest.param({"train": TrainConfig(max_steps=4, eval_every=2, optimizer="sgd")}, id="optimizer"),
    pytest.param({"arch_kwargs": (("width", 16),)}, id="arch_kwargs"),
    pytest.param({"arch": "cnn1d"}, id="arch"),
    pytest.param({"dataset": "teacher"}, id="dataset"),
    pytest.param({"n_val": 16}, id="n_val"),
    pytest.param({"n_test": 32}, id="n_test"),
    pytest.param({"data_seed": 1}, id="data_seed"),
    pytest.param({"data_kwargs": (("dim", 8),)}, id="data_kwargs"),
    pytest.param({"ridge_grid": (0.1, 1.0)}, id="ridge_grid"),
    pytest.param({"entk_precision": "tf32"}, id="entk_precision"),
    pytest.param({"convention": "uncentred"}, id="convention"),
    pytest.param({"n_pool": 64}, id="n_pool"),
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


# --- n0: the training size of the network whose trained eNTK a kind uses ----------------

@pytest.mark.parametrize("kind", NEEDS_N0)
@pytest.mark.parametrize("changes, message", [
    pytest.param({"n0": None}, "n0 and train are required by", id="without-n0"),
    pytest.param({"train": None}, "n0 and train are required by", id="without-train"),
    pytest.param({"n0": 12}, r"^n0=12 must be one of n_grid \(8, 16\)$", id="n0-off-the-grid"),
])
def test_kinds_using_a_trained_network_need_n0_on_the_grid_and_train(make_spec, kind, changes, message):
    fields = {"n0": 8, "train": make_spec().train}
    make_spec(kind, **fields)  # valid
    with pytest.raises(ValueError, match=message):
        make_spec(kind, **{**fields, **changes})


@pytest.mark.parametrize("kind", [kind for kind in KINDS if kind not in NEEDS_N0])
def test_other_kinds_reject_n0(make_spec, kind):
    # train as make_spec gives it: the network's for "nn", None for the kernels
    with pytest.raises(ValueError, match="n0 and train are required by, and n0 only allowed for"):
        make_spec(kind, n0=8)


def test_n0_is_part_of_the_key_and_the_network_spec_drops_it(make_spec):
    after = {n0: make_spec("entk_after", n0=n0, train=make_spec().train) for n0 in (8, 16)}
    assert after[8].key != after[16].key
    assert after[8].network() == after[16].network() == make_spec()
    assert after[8].network().key == make_spec().key
    bf16 = dataclasses.replace(after[8], entk_precision="bf16")  # the network does not depend on it either
    assert bf16.key != after[8].key and bf16.network() == make_spec()


# --- the code in the key: the files that define what computes an experiment ----------------

WIDE = """
import flax.linen as nn


class Wide(nn.Module):
    num_outputs: int

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.num_outputs)(nn.relu(nn.Dense(8)(x)))


def wide(num_outputs):
    return Wide(num_outputs)
"""


@pytest.mark.parametrize("builder", ["wide", "Wide"], ids=["function", "class"])
def test_the_key_holds_the_file_that_defines_the_architecture(make_spec, scratch_architectures, tmp_path,
                                                              monkeypatch, builder):
    """Editing the forward pass (not the registered builder) changes the keys of that architecture
    only. The key depends on the file's text, not on where it lies, nor on which module of the
    same name was imported last (pytest's conftest modules share the name ``conftest``)."""

    def imported(text: str, folder) -> object:
        folder.mkdir()
        (folder / "wide_arch.py").write_text(text)
        module_spec = importlib.util.spec_from_file_location("wide_arch", folder / "wide_arch.py")
        module = importlib.util.module_from_spec(module_spec)
        monkeypatch.setitem(sys.modules, "wide_arch", module)
        module_spec.loader.exec_module(module)
        return getattr(module, builder)

    def key(build) -> str:
        ARCHITECTURES._entries["wide"] = Architecture("wide", build)
        return make_spec(arch="wide", arch_kwargs=()).key

    mlp = make_spec().key
    first = imported(WIDE, tmp_path / "a")
    edited = imported(WIDE.replace("nn.relu", "nn.tanh"), tmp_path / "b")  # now sys.modules["wide_arch"]
    assert key(first) != key(edited)
    assert key(first) == key(imported(WIDE, tmp_path / "c"))
    assert make_spec().key == mlp


@pytest.fixture
def fresh_digests():
    """Source digests computed afresh in the test, and again after it."""
    experiments._source_digest.cache_clear()
    experiments._context_digest.cache_clear()
    yield
    experiments._source_digest.cache_clear()
    experiments._context_digest.cache_clear()


def every_kind(make_spec) -> dict:
    trained = make_spec().train
    return {kind: make_spec(kind, **({"n0": 8, "train": trained} if experiments.KINDS[kind].needs_n0 else {}))
            for kind in experiments.KINDS}


@pytest.mark.parametrize("module, changed", [
    pytest.param("ntkbench.travel", {"entk_evolution"}, id="evolution-only"),
    pytest.param("ntkbench.layer_factors", set(experiments.KINDS), id="imported-through-kernels"),
    pytest.param("ntkbench.data.splits", set(experiments.KINDS), id="imported-by-the-dataset"),
])
def test_the_key_holds_the_engine_modules_its_code_imports(make_spec, monkeypatch, fresh_digests, module, changed):
    before = {kind: spec.key for kind, spec in every_kind(make_spec).items()}
    source = experiments._module_source
    monkeypatch.setattr(experiments, "_module_source",
                        lambda name: source(name) + ("# edited\n" if name == module else ""))
    experiments._source_digest.cache_clear()
    experiments._context_digest.cache_clear()
    after = {kind: spec.key for kind, spec in every_kind(make_spec).items()}
    assert {kind for kind in before if after[kind] != before[kind]} == changed


def test_engine_imports_are_found_anywhere_in_a_file():
    source = "import numpy\nimport ntkbench.train\n\ndef f():\n    from ntkbench.kernels import entk_gram\n" \
             "    from ntkbench import regression, storage\n    from ntkbench.models.layers import ScaledDense\n"
    assert experiments._engine_imports(source) == {"ntkbench.train", "ntkbench.kernels", "ntkbench.regression",
                                                   "ntkbench.models.layers"}


def test_unknown_entk_precision_is_rejected(make_spec):
    with pytest.raises(ValueError, match="unknown eNTK precision 'fp8'; known: float32, tf32, bf16"):
        make_spec("entk_init", entk_precision="fp8")


def test_entk_precision_reaches_the_gram(make_spec, monkeypatch):
    seen = []
    original = runners.entk_gram
    monkeypatch.setattr(runners, "entk_gram", lambda *a, **kw: seen.append(kw["precision"]) or original(*a, **kw))
    ExperimentCache().get(make_spec("entk_init", seeds=(0,), entk_precision="bf16"))
    assert seen == ["bf16"]


# --- ntk_inf: the twin's analytic NTK, computed once per experiment ---------------------

@pytest.fixture
def twin_gram_rows(monkeypatch):
    """The number of input rows of every ``infinite_ntk_gram`` call the runners make."""
    rows, original = [], experiments.infinite_ntk_gram

    def counting(twin, x1, *args, **kwargs):
        rows.append(len(x1))
        return original(twin, x1, *args, **kwargs)

    monkeypatch.setattr(experiments, "infinite_ntk_gram", counting)
    return rows


def test_ntk_inf_is_computed_once_over_the_pool_and_fitted_on_each_seeds_data(make_spec, twin_gram_rows):
    spec = make_spec("ntk_inf", seeds=(0, 1, 2), n_pool=32)
    records = ExperimentCache().get(spec).records
    assert twin_gram_rows == [spec.n_pool + spec.n_val + spec.n_test]  # one Gram: pool | val | test
    assert sorted(zip(records["seed"], records["n"])) == sorted(itertools.product(spec.seeds, spec.n_grid))
    assert np.all(np.isfinite(records["test_mse"])) and (records["test_mse"] > 0).all()
    per_seed = [records[records["seed"] == seed]["test_mse"].to_numpy() for seed in spec.seeds]
    assert not np.array_equal(per_seed[0], per_seed[1])  # each seed its own training sets


def test_ntk_inf_of_an_architecture_without_a_twin_is_not_applicable(make_spec, twinless, twin_gram_rows):
    cache = ExperimentCache()
    with pytest.raises(NotApplicableError, match="^architecture 'twinless' has no stax twin$"):
        cache.get(make_spec("ntk_inf", arch=twinless, arch_kwargs=()))
    assert twin_gram_rows == [] and cache.computed == []
    assert not list(cache.root.glob("*.json"))  # nothing stored, not even partial records


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
    # Seeds computed one at a time are independent (that is what lets an interrupted run
    # resume), so the last seed alone, recomputed from scratch (data included), must match
    # exactly; seeds trained in one vmapped step match when the same group is recomputed.
    ctx = experiments.Context(computed.spec)
    batched = len(experiments.seed_groups(ctx, list(computed.spec.seeds))) == 1
    seeds = computed.spec.seeds if batched else computed.spec.seeds[-1:]
    again = ExperimentCache().get(dataclasses.replace(computed.spec, seeds=seeds))  # empty cache
    assert not again.from_cache and again.path != computed.path
    expected = computed.records[computed.records["seed"].isin(seeds)].reset_index(drop=True)
    pd.testing.assert_frame_equal(again.records, expected, check_exact=True, check_like=True)


def test_each_seed_draws_its_own_nested_training_sets(make_spec):
    spec = make_spec(n_pool=64)
    ctx = experiments.Context(spec)
    first, second = ctx.order(0), ctx.order(1)
    assert len(first) == spec.n_max and len(set(first)) == spec.n_max and max(first) < 64
    assert set(first[:8]) != set(second[:8]) and set(first) != set(second)  # other points, not another order
    np.testing.assert_array_equal(ctx.inputs(0)[:spec.n_max], ctx.splits.x_train[first])
    np.testing.assert_array_equal(ctx.order(0), first)  # reproducible; each n is a prefix of it


def test_centred_network_predicts_exactly_zero_at_initialisation(make_spec):
    from ntkbench.train import init_params

    ctx = experiments.Context(make_spec())
    params0 = init_params(ctx.model, 1, ctx.splits.x_train)
    rows = slice(None)
    assert np.array_equal(runners._network_outputs(ctx, params0, 1, rows), np.zeros((len(ctx.inputs(1)), 10)))
    uncentred = experiments.Context(make_spec(convention="uncentred"))
    assert np.abs(runners._network_outputs(uncentred, params0, 1, rows)).max() > 0.1


def test_centred_entk_regression_has_no_offset_and_interpolates_as_the_ridge_vanishes(make_spec):
    from ntkbench.kernels import entk_gram
    from ntkbench.regression import fit_ridge
    from ntkbench.train import init_params

    ctx = experiments.Context(make_spec())
    params0 = init_params(ctx.model, 0, ctx.splits.x_train)
    assert not ctx.offset(params0, 0).any()
    assert experiments.Context(make_spec(convention="uncentred")).offset(params0, 0).any()
    n, x_all, y = 16, ctx.inputs(0), ctx.targets(0)[:16]
    gram = entk_gram(ctx.model, params0, x_all)
    zero = np.zeros_like(y)
    fit = fit_ridge(gram[:n, :n], gram[:n, :n], gram[:n, :n], y, y, zero, zero, zero, ridge_grid=(1e-9,))
    np.testing.assert_allclose(fit.test_predictions, y, atol=1e-3)


def test_unknown_convention_is_rejected(make_spec):
    with pytest.raises(ValueError, match="convention"):
        make_spec(convention="offset")


def test_an_accelerator_trains_a_curves_seeds_in_one_vmapped_step(make_spec, monkeypatch):
    import ntkbench.train

    spec = make_spec()
    alone = [r for seed in spec.seeds for r in experiments.run_seeds(experiments.Context(spec), [seed])]
    assert experiments.seed_groups(experiments.Context(spec), list(spec.seeds)) == [[0], [1]]  # CPU
    monkeypatch.setattr(ntkbench.train.jax, "default_backend", lambda: "gpu")
    ctx = experiments.Context(spec)
    assert experiments.seed_groups(ctx, list(spec.seeds)) == [[0, 1]]
    batched = sorted(experiments.run_seeds(ctx, list(spec.seeds)), key=lambda r: (r["seed"], r["n"]))
    assert [(r["seed"], r["n"], r["best_step"]) for r in batched] == [(r["seed"], r["n"], r["best_step"]) for r in alone]
    np.testing.assert_allclose([r["test_mse"] for r in batched], [r["test_mse"] for r in alone], rtol=1e-4)
