"""ntkbench.storage: one cache root for everything cached, and caches that are read-only.

A read-only cache is a real one: a copy whose permissions deny writing; a root process, which
writes whatever the permissions say, reads it as the unprivileged uid 65534.
"""

import contextlib
import dataclasses
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from ntkbench import storage
from ntkbench.cache import ExperimentCache
from ntkbench.data import load_dataset
from ntkbench.experiments import KINDS
from ntkbench.storage import CACHE_ENV, ReadOnlyCacheError, cache_root, locked, use_cache_root

NOBODY = 65534


@contextlib.contextmanager
def read_only_copy(source: Path, writable_files: tuple[str, ...] = ()) -> Iterator[Path]:
    """Within the block, a copy of the directory ``source`` that this process cannot write (but
    for the files named in ``writable_files``: the directories still cannot be written)."""
    base = Path(tempfile.mkdtemp(prefix="ntkbench-read-only-"))
    try:
        copy = shutil.copytree(source, base / source.name)
        for path in [base, *base.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o666 if path.name in writable_files else 0o444)
        if os.geteuid() != 0:
            yield copy
            return
        try:
            os.seteuid(NOBODY)
        except PermissionError:
            pytest.skip("this root process cannot run as an unprivileged user")
        try:
            yield copy
        finally:
            os.seteuid(0)
    finally:
        for path in [base, *base.rglob("*")]:
            path.chmod(0o700)
        shutil.rmtree(base)


def files(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


# --- the cache root -----------------------------------------------------------------------

def test_cache_root_is_the_environment_variable_else_the_user_cache(cache_dir, monkeypatch, tmp_path):
    assert cache_root() == cache_dir
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "ntkbench"


def test_a_session_root_overrides_the_environment_variable_until_the_block_ends(cache_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with use_cache_root(Path("relative")) as root:
        assert root == cache_root() == tmp_path / "relative"
        assert ExperimentCache().root == tmp_path / "relative" / "experiments"
        with use_cache_root(None):
            assert cache_root() == root  # None leaves it as it is
    assert cache_root() == cache_dir
    with pytest.raises(RuntimeError), use_cache_root(tmp_path / "other"):
        raise RuntimeError
    assert cache_root() == cache_dir  # restored whatever ends the block


BENCHMARK = """
import pytest


@pytest.mark.ntkbench_claim("C1")
def test_c1(ntkbench_case, ntkbench_evaluate):
    ntkbench_evaluate(ntkbench_case)
"""


def test_the_option_and_the_environment_variable_name_one_root_with_one_layout(pytester, tiny_settings, cache_dir,
                                                                              monkeypatch):
    """Experiments under <root>/experiments, generated datasets under <root>/datasets, whichever
    names the root; the option's root (relative to where pytest runs) lasts as long as its session."""
    pytester.makepyfile(test_c1=BENCHMARK)
    args = ["-p", "no:cacheprovider", "--ntkbench-tier=smoke", "--ntkbench-arch=mlp", "--ntkbench-plots=none",
            *(f"--ntkbench-set={setting}" for setting in tiny_settings)]
    by_option = pytester.runpytest_inprocess(*args, "--ntkbench-cache-dir=root")
    assert by_option.ret == 0 and "(computed" in by_option.stdout.str()
    assert cache_root() == cache_dir and not cache_dir.exists()  # restored; nothing written there
    layout = files(pytester.path / "root")
    assert {Path(name).parts[0] for name in layout} == {"experiments", "datasets"}
    assert any(re.fullmatch(r"datasets/mnist1d-\w+\.npz", name) for name in layout)
    assert {name.split("-")[0] for name in layout if re.fullmatch(r"experiments/[^/]+\.json", name)} == {
        "experiments/nn", "experiments/entk_init"}
    monkeypatch.setenv(CACHE_ENV, str(pytester.path / "root"))
    by_env = pytester.runpytest_inprocess(*args)  # the same root: everything is loaded, nothing written
    assert by_env.ret == 0 and "(computed" not in by_env.stdout.str() and "(cached" in by_env.stdout.str()
    assert files(pytester.path / "root") == layout


# --- read-only caches -----------------------------------------------------------------------

def test_lock_of_a_read_only_directory_is_not_taken_and_says_so(tmp_path):
    (tmp_path / "cache").mkdir()
    with locked(tmp_path / "cache" / "file.json") as writable:
        assert writable
    with read_only_copy(tmp_path / "cache") as copy:
        before = files(copy)
        with locked(copy / "file.json") as writable:
            assert not writable
        assert files(copy) == before


def test_a_lock_that_can_be_taken_in_a_read_only_directory_still_says_so(tmp_path):
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "file.json.lock").touch()
    with read_only_copy(tmp_path / "cache", writable_files=("file.json.lock",)) as copy:
        with locked(copy / "file.json") as writable:
            assert not writable
        assert files(copy) == ["file.json.lock"]


@pytest.fixture
def runs(monkeypatch) -> list[int]:
    """The seeds that the "nn" kind's runner (a fast fake) is asked for."""
    seeds = []

    def runner(context, seed):
        seeds.append(seed)
        return [{"seed": seed, "n": n, "test_mse": 1.0 / n} for n in context.spec.n_grid]

    monkeypatch.setitem(KINDS, "nn", dataclasses.replace(KINDS["nn"], runner=runner, batched=None))
    return seeds


def test_a_read_only_cache_is_read(cache_dir, make_spec, runs):
    spec = make_spec()
    computed = ExperimentCache(cache_dir / "experiments").get(spec)
    with read_only_copy(cache_dir) as copy:
        before = files(copy)
        result = ExperimentCache(copy / "experiments").get(spec)
        assert files(copy) == before
    assert result.from_cache
    pd.testing.assert_frame_equal(result.records, computed.records, check_like=True)
    assert runs == list(spec.seeds)  # computed once, before


@pytest.mark.parametrize("damaged", [False, True], ids=["missing", "damaged"])
def test_what_a_read_only_cache_lacks_is_a_one_line_error(cache_dir, make_spec, runs, damaged):
    spec = make_spec()
    path = ExperimentCache(cache_dir / "experiments").get(spec).path
    if damaged:
        path.write_text("{")
    else:
        spec = make_spec(seeds=(7,))
    with read_only_copy(cache_dir) as copy, contextlib.ExitStack() as stack:
        if damaged:
            stack.enter_context(pytest.warns(UserWarning, match="ignoring damaged cache file"))
        cache = ExperimentCache(copy / "experiments")
        with pytest.raises(ReadOnlyCacheError) as info:
            cache.get(spec)
        expected = cache.path(spec)
    assert str(info.value) == (f"{expected} must be computed, but {expected.parent} is not writable: point "
                               f"--ntkbench-cache-dir / ${CACHE_ENV} at a writable directory")
    assert isinstance(info.value, PermissionError)
    assert runs == [0, 1]  # the first computation only


def test_a_read_only_dataset_cache_is_read(cache_dir, monkeypatch):
    first = load_dataset("mnist1d", 30, 10, 10, seed=0)
    with read_only_copy(cache_dir) as copy:
        monkeypatch.setenv(CACHE_ENV, str(copy))
        again = load_dataset("mnist1d", 30, 10, 10, seed=0)
        with pytest.raises(ReadOnlyCacheError, match=r"^\S+/datasets/mnist1d-\w+\.npz must be computed, but "):
            load_dataset("mnist1d", 30, 10, 10, seed=1)
    assert (again.x_train == first.x_train).all() and (again.labels_test == first.labels_test).all()


def test_other_lock_failures_are_not_taken_for_a_read_only_directory(tmp_path, monkeypatch):
    def fail(self, *args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(storage.FileLock, "acquire", fail)
    with pytest.raises(OSError, match="Input/output error"), locked(tmp_path / "file.json"):
        pass
