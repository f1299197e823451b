"""ExperimentCache: computed once, stored atomically, resumed seed by seed, shared by processes;
parameters stored by one experiment and reused by another.

The runners are replaced by fast fakes that record each call, so these tests never train,
except the after-kernel tests, which start from a copy of the session's tiny run and train
a network again only where its stored parameters were removed.
"""

import dataclasses
import json
import multiprocessing
import os
import re
import shutil
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
from flax import serialization

from ntkbench import experiments, runners, storage
from ntkbench.cache import ExperimentCache, NotInCacheError
from ntkbench.cases import Case, experiment_spec
from ntkbench.experiments import KINDS
from ntkbench.models import build_model


def fake_records(spec, seed: int) -> list[dict]:
    return [{"seed": seed, "n": n, "test_mse": 1.0 / n + seed, "test_error": 0.5 / n} for n in spec.n_grid]


class CountingRunner:
    """Stands in for a runner: records the seeds it is asked for; can fail on one seed."""

    def __init__(self, fail_on_seed: int | None = None):
        self.seeds: list[int] = []
        self.fail_on_seed = fail_on_seed

    def __call__(self, context, seed: int) -> list[dict]:
        if seed == self.fail_on_seed:
            raise RuntimeError(f"interrupted at seed {seed}")
        self.seeds.append(seed)
        return fake_records(context.spec, seed)


@pytest.fixture
def use_runner(monkeypatch):
    """``use_runner(runner)`` installs a fake runner for the "nn" experiment kind."""

    def use(runner):
        monkeypatch.setitem(KINDS, "nn", dataclasses.replace(KINDS["nn"], runner=runner, batched=None))
        return runner

    return use


@pytest.fixture
def runner(use_runner):
    return use_runner(CountingRunner())


@pytest.fixture
def root(cache_dir) -> Path:
    return cache_dir / "experiments"


@pytest.fixture
def spec(make_spec):
    return make_spec(seeds=(0, 1, 2))


def partial_path(cache: ExperimentCache, spec) -> Path:
    return cache.path(spec).with_suffix(".partial.json")


def test_miss_computes_and_stores(root, spec, runner):
    cache = ExperimentCache(root)
    result = cache.get(spec)
    assert not result.from_cache
    assert runner.seeds == [0, 1, 2]
    assert cache.computed == [spec.key]
    assert result.path == cache.path(spec) and result.path.parent == root
    assert json.loads(result.path.read_text())["key"] == spec.key
    assert not partial_path(cache, spec).exists()
    assert len(result.records) == len(spec.seeds) * len(spec.n_grid)


def test_hit_in_a_new_instance_loads_from_disk(root, spec, runner):
    first = ExperimentCache(root).get(spec)
    second_cache = ExperimentCache(root)
    second = second_cache.get(spec)
    assert second.from_cache
    assert runner.seeds == [0, 1, 2]  # not called again
    assert second_cache.computed == []
    pd.testing.assert_frame_equal(second.records, first.records, check_like=True)  # columns: any order
    assert second.elapsed_s == first.elapsed_s


def test_same_instance_reuses_the_result_in_memory(root, spec, runner):
    cache = ExperimentCache(root)
    first = cache.get(spec)
    cache.path(spec).unlink()  # not read again either
    assert cache.get(spec) is first
    assert runner.seeds == [0, 1, 2]


def test_an_experiments_files_move_to_another_cache_whole(root, spec, runner, tmp_path):
    cache = ExperimentCache(root)
    cache.get(spec)
    cache.save_params(spec, "seed0-n8", {"w": np.ones(2, np.float32)})
    cache.save_predictions(spec, 0, 8, np.zeros(3))
    files = cache.files(spec)
    assert sorted(files) == [cache.path(spec).name, f"params/{cache.path(spec).stem}/seed0-n8.msgpack",
                             f"predictions/{cache.path(spec).stem}/seed0-n8.npy"]
    other = ExperimentCache(tmp_path / "other")
    assert not other.stored(spec)
    other.store(spec, files)
    assert other.stored(spec) and other.files(spec) == files
    assert other.get(spec).from_cache and runner.seeds == [0, 1, 2]  # loaded, not computed again


def test_incomplete_records_are_not_stored(root, spec, make_spec, tmp_path):
    cache = ExperimentCache(root)
    name = cache.path(spec).name
    two_seeds = {"key": spec.key, "elapsed_s": 1.0, "records": fake_records(spec, 0) + fake_records(spec, 1)}
    for files, problem in [({}, "no records of"), ({name: json.dumps(two_seeds).encode()}, r"no records of seeds \[2\]")]:
        with pytest.raises(ValueError, match=problem):
            cache.store(spec, files)
    assert not root.exists()


def test_a_collecting_cache_reads_what_is_stored_and_computes_nothing(root, spec, make_spec, runner):
    ExperimentCache(root).get(spec)
    collecting = ExperimentCache(root, collect=True)
    assert collecting.get(spec).from_cache
    other = make_spec(seeds=(0, 1, 2, 3))
    with pytest.raises(NotInCacheError, match=rf"^{re.escape(other.label)} is not in the cache$"):
        collecting.get(other)
    partial_path(collecting, other).write_text("{}")
    with pytest.raises(NotInCacheError, match=r"is not in the cache \(partly computed\)"):
        collecting.get(other)
    assert runner.seeds == [0, 1, 2] and collecting.computed == []


def test_a_failure_elsewhere_is_raised_for_every_reader(root, spec, runner):
    cache = ExperimentCache(root)
    cache.failures[spec.key] = RuntimeError("diverged on a worker")
    with pytest.raises(RuntimeError, match="diverged on a worker"):
        cache.get(spec)
    assert runner.seeds == []


def test_different_specs_do_not_share_a_result(root, spec, runner):
    cache = ExperimentCache(root)
    cache.get(spec)
    other = cache.get(dataclasses.replace(spec, seeds=(5,)))
    assert not other.from_cache
    assert runner.seeds == [0, 1, 2, 5]
    assert len(list(root.glob("*.json"))) == 2


def test_curve_orders_losses_by_seed_and_n(root, make_spec, runner):
    result = ExperimentCache(root).get(make_spec(seeds=(1, 0)))
    n_grid, losses = result.curve("test_mse")
    assert n_grid == [8, 16]
    assert losses.tolist() == [[1 + 1 / 8, 1 + 1 / 16], [1 / 8, 1 / 16]]


def edited(change):
    """A damage that parses the stored JSON document, changes it in place and writes it back."""

    def damage(data: bytes) -> bytes:
        document = json.loads(data)
        change(document)
        return json.dumps(document).encode()

    return damage


DAMAGES = [  # (damage, a regular expression for the problem the warning names)
    pytest.param(lambda data: data[: len(data) // 2], r"line \d+ column \d+", id="truncated"),
    pytest.param(lambda data: b"", "Expecting value", id="empty"),
    pytest.param(lambda data: b"\xff\xfe not utf-8", "Expecting value", id="binary"),
    pytest.param(lambda data: b"[]", "not a JSON object", id="json-but-not-an-object"),
    pytest.param(edited(lambda d: d.update(key="0" * 64)), "its key is not the experiment's", id="other-key"),
    pytest.param(edited(lambda d: d.pop("key")), "its key is not the experiment's", id="no-key"),
    pytest.param(edited(lambda d: d.update(records={"seed": 0})), "records is not a list", id="records-not-a-list"),
    pytest.param(edited(lambda d: d["records"].append(3)), "records is not a list of objects",
                 id="record-not-an-object"),
    pytest.param(edited(lambda d: d["records"][0].pop("seed")), "with integer seed and n", id="record-without-seed"),
    pytest.param(edited(lambda d: d["records"][0].update(n="8")), "with integer seed and n", id="n-not-an-integer"),
    pytest.param(edited(lambda d: d.pop("elapsed_s")), "elapsed_s is not a non-negative number", id="no-elapsed_s"),
    pytest.param(edited(lambda d: d.update(elapsed_s=-1)), "elapsed_s is not a non-negative", id="negative-elapsed_s"),
    pytest.param(edited(lambda d: d["records"][0].update(n=9)), "sizes that the experiment does not have",
                 id="other-n"),
    pytest.param(edited(lambda d: d["records"][0].update(seed=7)), "seeds or sizes", id="other-seed"),
]


@pytest.mark.parametrize("damage, problem", DAMAGES)
def test_damaged_cache_file_is_named_in_a_warning_and_recomputed(root, spec, runner, damage, problem, recwarn):
    path = ExperimentCache(root).get(spec).path
    path.write_bytes(damage(path.read_bytes()))
    with pytest.warns(UserWarning, match=f"^ignoring damaged cache file {re.escape(str(path))} \\(.*{problem}.*\\); "
                                         "it is recomputed$"):
        result = ExperimentCache(root).get(spec)
    assert not result.from_cache
    assert runner.seeds == [0, 1, 2] * 2
    assert json.loads(path.read_text())["key"] == spec.key  # repaired on disk
    recwarn.clear()
    assert ExperimentCache(root).get(spec).from_cache and not recwarn.list  # once, not on every run


def test_complete_file_without_every_seed_is_recomputed(root, spec, runner):
    path = ExperimentCache(root).get(spec).path
    path.write_bytes(edited(lambda d: d.update(records=[r for r in d["records"] if r["seed"] != 1]))(path.read_bytes()))
    with pytest.warns(UserWarning, match=re.escape(f"{path} (no records of seeds [1])")):
        assert sorted(set(ExperimentCache(root).get(spec).records["seed"])) == [0, 1, 2]


def test_interrupted_run_keeps_finished_seeds_and_resumes(root, spec, use_runner):
    use_runner(CountingRunner(fail_on_seed=1))
    cache = ExperimentCache(root)
    with pytest.raises(RuntimeError, match="interrupted at seed 1"):
        cache.get(spec)
    assert not cache.path(spec).exists()
    partial = json.loads(partial_path(cache, spec).read_text())
    assert partial["key"] == spec.key
    assert {r["seed"] for r in partial["records"]} == {0}

    resumed = use_runner(CountingRunner())
    result = ExperimentCache(root).get(spec)
    assert resumed.seeds == [1, 2]  # only the missing seeds
    assert not result.from_cache
    assert sorted(set(result.records["seed"])) == [0, 1, 2]
    assert not partial_path(cache, spec).exists()


@pytest.mark.parametrize("damage, problem", DAMAGES)
def test_damaged_partial_file_is_named_in_a_warning_and_not_resumed(root, spec, use_runner, damage, problem):
    use_runner(CountingRunner(fail_on_seed=1))
    cache = ExperimentCache(root)
    with pytest.raises(RuntimeError):
        cache.get(spec)
    path = partial_path(cache, spec)
    path.write_bytes(damage(path.read_bytes()))
    resumed = use_runner(CountingRunner())
    with pytest.warns(UserWarning, match=f"^ignoring damaged cache file {re.escape(str(path))} .*{problem}"):
        result = ExperimentCache(root).get(spec)
    assert resumed.seeds == [0, 1, 2]  # every seed again: the stale partial records are not reused
    assert sorted(set(result.records["seed"])) == [0, 1, 2] and not path.exists()


def test_atomic_write_creates_directories_and_replaces(tmp_path):
    path = tmp_path / "a" / "b" / "file.json"
    storage.atomic_write_bytes(path, b"old")
    storage.atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"
    assert os.listdir(path.parent) == ["file.json"]


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failed_atomic_write_keeps_the_old_file_and_no_temporaries(tmp_path, monkeypatch, failing):
    path = tmp_path / "file.json"
    storage.atomic_write_bytes(path, b"old")

    def fail(*args, **kwargs):
        raise OSError(f"{failing} failed")

    monkeypatch.setattr(storage.os, failing, fail)
    with pytest.raises(OSError, match=f"{failing} failed"):
        storage.atomic_write_bytes(path, b"new contents")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["file.json"]


# --- stored parameters ------------------------------------------------------------------

def mlp_params(seed: int, width: int = 4):
    model = build_model("mlp", 3, width=width, depth=1)
    return model.init(jax.random.PRNGKey(seed), np.zeros((1, 5), np.float32))


def assert_same_pytree(actual, expected) -> None:
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        assert np.asarray(a).dtype == np.asarray(e).dtype
        np.testing.assert_array_equal(a, e)


@pytest.fixture
def stored(root, spec):
    """(cache, path): parameters saved under the name "seed0-n8" of ``spec``."""
    cache = ExperimentCache(root)
    cache.save_params(spec, "seed0-n8", mlp_params(0))
    [path] = root.glob("params/*/seed0-n8.msgpack")
    return cache, path


def test_params_round_trip(stored, root, spec):
    template = mlp_params(1)  # same shapes, other values
    assert_same_pytree(ExperimentCache(root).load_params(spec, "seed0-n8", template), mlp_params(0))


@pytest.mark.parametrize("name, other_spec", [("seed1-n8", False), ("seed0-n16", False), ("seed0-n8", True)],
                         ids=["other-seed", "other-n", "other-spec"])
def test_missing_params_are_none_without_a_warning(stored, spec, name, other_spec, recwarn):
    cache, _ = stored
    asked = dataclasses.replace(spec, seeds=(7,)) if other_spec else spec
    assert cache.load_params(asked, name, mlp_params(1)) is None
    assert not recwarn.list


@pytest.mark.parametrize("damage", [
    pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
    pytest.param(lambda data: b"", id="empty"),
    pytest.param(lambda data: bytes(len(data)), id="zero-filled"),
    pytest.param(lambda data: b"\xc1" + data[1:], id="invalid-msgpack"),
    pytest.param(lambda data: b"\x00", id="msgpack-but-not-a-map"),
    pytest.param(lambda data: serialization.to_bytes({"params": {"x": np.zeros(3)}}), id="other-structure"),
    pytest.param(lambda data: serialization.to_bytes(mlp_params(0, width=6)), id="other-shapes"),
])
def test_corrupt_parameter_file_is_none_with_a_warning(stored, spec, damage):
    cache, path = stored
    path.write_bytes(damage(path.read_bytes()))
    with pytest.warns(UserWarning, match="unreadable parameter file"):
        assert cache.load_params(spec, "seed0-n8", mlp_params(1)) is None


@pytest.fixture
def warm_copy(tiny_run, tmp_path) -> Path:
    """A copy of the tiny run's cache: its network experiment and the parameters it stored."""
    return shutil.copytree(tiny_run.cache.root, tmp_path / "warm")


@pytest.fixture
def train_calls(monkeypatch) -> list[tuple[int, int]]:
    """(seed, training size) of every network the runners train."""
    calls, original = [], runners.train_many

    def counting(model, params, seeds, xs, *args, **kwargs):
        calls.extend((seed, len(x)) for seed, x in zip(seeds, xs))
        return original(model, params, seeds, xs, *args, **kwargs)

    monkeypatch.setattr(runners, "train_many", counting)
    return calls


@pytest.mark.parametrize("missing", [(), (1,)], ids=["all-stored", "seed-1-missing"])
def test_entk_after_uses_the_parameters_stored_by_the_network_experiment(warm_copy, tiny_tier, train_calls,
                                                                       missing):
    n0 = tiny_tier.after_n0[0]
    spec = experiment_spec("entk_after", Case("C2", "mlp", "mnist1d", "test_mse", (("n0", n0),)), tiny_tier,
                           swept=True)
    # the copy holds the network experiment's parameters only, the best ones as seed<s>-n<n>
    files = {seed: path for seed in spec.seeds for path in warm_copy.glob(f"params/nn-*/seed{seed}-n{n0}.msgpack")}
    assert sorted(files) == list(spec.seeds)
    removed = {seed: files[seed].read_bytes() for seed in missing}
    for seed in missing:
        files[seed].unlink()
    cache = ExperimentCache(warm_copy)
    result = cache.get(spec)
    assert cache.computed == [spec.key]  # the network experiment itself was loaded, not rerun
    # trained again only where missing, with the seeds it was trained with (one vmapped group)
    groups = experiments.seed_groups(experiments.Context(spec), list(spec.seeds))
    again = [seed for group in groups if set(group) & set(missing) for seed in group]
    assert train_calls == [(seed, n0) for seed in again]
    for seed, data in removed.items():
        assert files[seed].read_bytes() == data  # the same parameters, stored again
    assert sorted(zip(result.records["seed"], result.records["n"])) == sorted(
        (seed, n) for seed in spec.seeds for n in spec.n_grid)
    assert np.all(np.isfinite(result.records["test_mse"]))


class SlowLoggingRunner:
    """A runner for another process: appends its pid and seed to a log, then sleeps."""

    def __init__(self, log: Path):
        self.log = log

    def __call__(self, context, seed: int) -> list[dict]:
        with self.log.open("a") as handle:
            handle.write(f"{os.getpid()} {seed}\n")
        time.sleep(0.3)
        return fake_records(context.spec, seed)


def get_in_this_process(root: Path, spec, log: Path, start, results) -> None:
    """Runs in a child process: asks for the experiment once both children are ready."""
    KINDS["nn"] = dataclasses.replace(KINDS["nn"], runner=SlowLoggingRunner(log), batched=None)
    start.wait(timeout=60)
    results.put(ExperimentCache(root).get(spec).from_cache)


def test_concurrent_processes_compute_an_experiment_once(root, spec, tmp_path):
    log = tmp_path / "runner.log"
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])  # import ntkbench once, then fork
    start, results = context.Barrier(2), context.Queue()
    processes = [context.Process(target=get_in_this_process, args=(root, spec, log, start, results))
                 for _ in range(2)]
    for process in processes:
        process.start()
    try:
        from_cache = sorted(results.get(timeout=60) for _ in processes)
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    assert [process.exitcode for process in processes] == [0, 0]
    assert from_cache == [False, True]
    calls = [line.split() for line in log.read_text().splitlines()]
    assert [seed for _, seed in calls] == ["0", "1", "2"]
    assert len({pid for pid, _ in calls}) == 1  # all in one process
