"""ExperimentCache: computed once, stored atomically, resumed seed by seed, shared by processes.

The runners are replaced by fast fakes that record each call, so these tests never train.
"""

import dataclasses
import json
import multiprocessing
import os
import time
from pathlib import Path

import pandas as pd
import pytest

from ntkbench import storage
from ntkbench.cache import ExperimentCache
from ntkbench.experiments import RUNNERS


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
        monkeypatch.setitem(RUNNERS, "nn", runner)
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


@pytest.mark.parametrize("damage", [
    pytest.param(lambda data: data[: len(data) // 2], id="truncated"),
    pytest.param(lambda data: b"", id="empty"),
    pytest.param(lambda data: b"\xff\xfe not utf-8", id="binary"),
    pytest.param(lambda data: b"[]", id="json-but-not-an-object"),
])
def test_corrupt_cache_file_is_recomputed_with_a_warning(root, spec, runner, damage):
    path = ExperimentCache(root).get(spec).path
    path.write_bytes(damage(path.read_bytes()))
    with pytest.warns(UserWarning, match="unreadable cache file"):
        result = ExperimentCache(root).get(spec)
    assert not result.from_cache
    assert runner.seeds == [0, 1, 2] * 2
    assert json.loads(path.read_text())["key"] == spec.key  # repaired on disk


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


def test_partial_file_of_another_spec_is_not_resumed(root, spec, use_runner):
    use_runner(CountingRunner(fail_on_seed=1))
    cache = ExperimentCache(root)
    with pytest.raises(RuntimeError):
        cache.get(spec)
    # Same file name, different key: the stale partial records must not be reused.
    stale = json.loads(partial_path(cache, spec).read_text())
    partial_path(cache, spec).write_text(json.dumps({**stale, "key": "another spec"}))
    resumed = use_runner(CountingRunner())
    ExperimentCache(root).get(spec)
    assert resumed.seeds == [0, 1, 2]


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
    RUNNERS["nn"] = SlowLoggingRunner(log)
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
