"""ntkbench.data: registered datasets, the on-disk MNIST-1D cache, and Splits.

conftest's autouse ``cache_dir`` gives every test its own empty ``$NTKBENCH_CACHE_DIR``.
"""

import io
import random
import re

import numpy as np
import pytest

import ntkbench.data.mnist1d as mnist1d
from ntkbench.data import Splits, centred_one_hot, load_dataset
from ntkbench.registry import DATASETS, UnknownNameError

SIZES = dict(n_train=30, n_val=10, n_test=10)
FIELDS = ("x", "targets", "labels")
SPLITS = ("train", "val", "test")


def arrays(splits: Splits) -> dict[str, np.ndarray]:
    return {f"{field}_{split}": getattr(splits, f"{field}_{split}") for field in FIELDS for split in SPLITS}


def assert_same_splits(a: Splits, b: Splits) -> None:
    left, right = arrays(a), arrays(b)
    for key in left:
        np.testing.assert_array_equal(left[key], right[key], err_msg=key)
        assert left[key].dtype == right[key].dtype, key


def rows(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in x}


def load(name="mnist1d", seed=0, **kwargs) -> Splits:
    return load_dataset(name, **SIZES, seed=seed, **kwargs)


# --- MNIST-1D ---------------------------------------------------------------------------

def test_mnist1d_deterministic_within_and_across_cache_dirs(tmp_path, monkeypatch):
    first = load()
    assert_same_splits(first, load())
    monkeypatch.setenv("NTKBENCH_CACHE_DIR", str(tmp_path / "fresh"))
    assert_same_splits(first, load())


def test_mnist1d_seed_changes_data():
    assert not np.array_equal(load(seed=0).x_train, load(seed=1).x_train)


def test_mnist1d_shapes_and_centred_one_hot_targets():
    splits = load()
    assert splits.num_outputs == mnist1d.NUM_CLASSES
    for split in SPLITS:
        n = SIZES[f"n_{split}"]
        x, targets, labels = (getattr(splits, f"{field}_{split}") for field in FIELDS)
        assert x.shape == (n, 40) and x.dtype == np.float32
        assert targets.shape == (n, 10) and targets.dtype == np.float32
        assert labels.shape == (n,)
        np.testing.assert_allclose(targets.sum(axis=1), 0.0, atol=1e-6)
        np.testing.assert_array_equal(np.argmax(targets, axis=1), labels)
        np.testing.assert_allclose(targets.max(axis=1), 0.9, rtol=1e-6)


def test_mnist1d_splits_do_not_overlap():
    splits = load()
    train, val, test = (rows(getattr(splits, f"x_{split}")) for split in SPLITS)
    assert len(train) == SIZES["n_train"] and len(val) == SIZES["n_val"] and len(test) == SIZES["n_test"]
    assert not (train & val) and not (train & test) and not (val & test)


def test_mnist1d_cache_file_is_written_then_reused(cache_dir, monkeypatch):
    first = load()
    files = list((cache_dir / "datasets").glob("mnist1d-*.npz"))
    assert len(files) == 1

    def no_generation(args):
        raise AssertionError("regenerated although the pool is cached")

    monkeypatch.setattr(mnist1d, "generate", no_generation)
    assert_same_splits(first, load())
    with pytest.raises(AssertionError, match="regenerated"):
        load(seed=1)  # a different pool is not in the cache


def saved(**arrays) -> bytes:
    """The bytes of an .npz file holding ``arrays``."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def resaved(change):
    """A damage that rewrites the pool's arrays as ``change(arrays)`` returns them."""

    def damage(path):
        with np.load(path) as stored:
            arrays = dict(stored)
        return saved(**change(arrays))

    return damage


POOL_DAMAGES = [  # (damage: the pool file → its new bytes, a regular expression for the problem named)
    pytest.param(lambda path: path.read_bytes()[:1000], "File is not a zip file", id="truncated"),
    pytest.param(lambda path: b"", "No data left in file", id="empty"),
    pytest.param(lambda path: bytes(4096), "contains pickled", id="zero-filled"),
    pytest.param(resaved(lambda a: {"x": a["x"], "args": a["args"]}), "y is not a file in the archive", id="no-y"),
    pytest.param(resaved(lambda a: {**a, "x": a["x"].astype(np.float64)}), "x is not 50 rows of finite float32",
                 id="x-float64"),
    pytest.param(resaved(lambda a: {**a, "x": a["x"][:-1]}), "x is not 50 rows", id="x-short"),
    pytest.param(resaved(lambda a: {**a, "x": np.where(a["x"] > 0, np.nan, a["x"])}), "finite", id="x-nan"),
    pytest.param(resaved(lambda a: {**a, "y": a["y"] + 10}), "y is not 50 int32 labels in 0…9", id="y-out-of-range"),
    pytest.param(resaved(lambda a: {**a, "args": np.array('{"seed": 1}')}), "generated with other arguments",
                 id="other-args"),
    pytest.param(resaved(lambda a: {**a, "y": a["y"].astype(object)}), "allow_pickle=False", id="pickled-object"),
]


@pytest.mark.parametrize("damage, problem", POOL_DAMAGES)
def test_damaged_mnist1d_pool_is_named_in_a_warning_and_generated_again(cache_dir, monkeypatch, damage, problem,
                                                                        recwarn):
    first = load()  # a pool of 50 samples
    [path] = (cache_dir / "datasets").glob("mnist1d-*.npz")
    path.write_bytes(damage(path))
    generated = []
    monkeypatch.setattr(mnist1d, "generate", lambda args, real=mnist1d.generate: generated.append(args) or real(args))
    with pytest.warns(UserWarning, match=f"^ignoring damaged dataset cache file {re.escape(str(path))} "
                                         f"\\(.*{problem}.*\\); it is recomputed$"):
        assert_same_splits(first, load())
    assert len(generated) == 1
    recwarn.clear()
    assert_same_splits(first, load())  # the repaired file, without a warning
    assert len(generated) == 1 and not recwarn.list


def test_mnist1d_generation_keeps_global_rng_state(monkeypatch):
    calls = []
    monkeypatch.setattr(mnist1d, "generate", lambda args, real=mnist1d.generate: calls.append(args) or real(args))
    np.random.seed(1234)
    random.seed(1234)
    np_state, py_state = np.random.get_state(), random.getstate()
    load()
    assert len(calls) == 1  # the pool was generated, not read from a cache
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
    assert random.getstate() == py_state


# --- Splits -----------------------------------------------------------------------------

def pool(size: int = 20):
    x = np.arange(size * 2, dtype=np.float32).reshape(size, 2)
    labels = np.arange(size) % 3
    return x, centred_one_hot(labels, 3), labels


def test_from_pool_cuts_test_val_train_in_order():
    x, targets, labels = pool()
    splits = Splits.from_pool(x, targets, labels, n_train=5, n_val=3, n_test=4)
    np.testing.assert_array_equal(splits.x_test, x[:4])
    np.testing.assert_array_equal(splits.x_val, x[4:7])
    np.testing.assert_array_equal(splits.x_train, x[7:12])
    np.testing.assert_array_equal(splits.targets_train, targets[7:12])
    np.testing.assert_array_equal(splits.labels_train, labels[7:12])


def test_from_pool_larger_train_extends_smaller():
    """Nested prefixes: from one pool, more training points keep val/test and extend train."""
    small = Splits.from_pool(*pool(), n_train=5, n_val=3, n_test=4)
    large = Splits.from_pool(*pool(), n_train=12, n_val=3, n_test=4)
    for field in FIELDS:
        np.testing.assert_array_equal(getattr(large, f"{field}_train")[:5], getattr(small, f"{field}_train"))
        for split in ("val", "test"):
            np.testing.assert_array_equal(getattr(large, f"{field}_{split}"), getattr(small, f"{field}_{split}"))


def test_from_pool_too_small():
    with pytest.raises(ValueError, match="pool has 20 samples, 21 needed"):
        Splits.from_pool(*pool(), n_train=10, n_val=6, n_test=5)


def test_centred_one_hot():
    expected = np.array([[-0.25, 0.75, -0.25, -0.25], [-0.25, -0.25, -0.25, 0.75]], dtype=np.float32)
    np.testing.assert_array_equal(centred_one_hot(np.array([1, 3]), 4), expected)


# --- teacher ----------------------------------------------------------------------------

TEACHERS = ("network", "low_dimensional")


@pytest.mark.parametrize("teacher", TEACHERS)
def test_teacher_deterministic(teacher):
    assert_same_splits(load("teacher", teacher=teacher), load("teacher", teacher=teacher))
    assert not np.array_equal(load("teacher", teacher=teacher).targets_train,
                              load("teacher", seed=1, teacher=teacher).targets_train)


@pytest.mark.parametrize("teacher", TEACHERS)
def test_teacher_targets_normalised(teacher):
    splits = load("teacher", teacher=teacher, dim=7, outputs=3)
    y = np.concatenate([splits.targets_train, splits.targets_val, splits.targets_test]).astype(np.float64)
    assert splits.x_train.shape == (SIZES["n_train"], 7) and y.shape == (50, 3)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.mean(np.sum(y**2, axis=1)), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(splits.labels_train, np.argmax(splits.targets_train, axis=1))


def test_teacher_splits_do_not_overlap():
    splits = load("teacher")
    train, val, test = (rows(getattr(splits, f"x_{split}")) for split in SPLITS)
    assert len(train | val | test) == sum(SIZES.values())


def test_teacher_noise_perturbs_targets_only():
    clean, noisy = load("teacher"), load("teacher", noise=0.5)
    np.testing.assert_array_equal(clean.x_train, noisy.x_train)
    residual = (noisy.targets_train - clean.targets_train).astype(np.float64)
    assert 0.2 < np.sqrt(np.mean(np.sum(residual**2, axis=1))) < 0.8  # ≈ noise


def test_teacher_unknown_teacher():
    with pytest.raises(ValueError, match="known: low_dimensional, network"):
        load("teacher", teacher="oracle")


# --- registry ---------------------------------------------------------------------------

def test_registered_datasets():
    assert {"mnist1d", "teacher"} <= set(DATASETS.names())
    assert DATASETS.get("teacher").task == "regression"
    assert DATASETS.get("mnist1d").task == "classification"


def test_unknown_dataset_lists_known_names():
    with pytest.raises(UnknownNameError) as info:
        load("cifar-1d")
    message = str(info.value)
    assert "\n" not in message
    assert message == f"unknown dataset 'cifar-1d'; known: {', '.join(DATASETS.names())}"
    assert "mnist1d" in message and "teacher" in message
    assert isinstance(info.value, KeyError)


def test_a_pool_too_large_to_generate_in_minutes_is_a_one_line_error_before_generating(monkeypatch):
    from ntkbench.data import mnist1d

    monkeypatch.setattr(mnist1d, "cached_pool", lambda *a: pytest.fail("generation started"))
    with pytest.raises(ValueError, match=r"^mnist1d: 10,009,216 samples asked for \(training pool 8,192, "
                                         r"validation 10,000,000, test 1,024\); generating more than 1,000,000"):
        mnist1d.load_mnist1d(8192, 10_000_000, 1024)
