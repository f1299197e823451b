"""CIFAR-10 and CIFAR-5m: tiny files in the real on-disk formats, read by the real loaders.

Image ``k`` is recognisable after any per-channel standardisation: its red channel peaks
(255) at flat pixel ``k`` only. Its green value is 4·row + k % 4, its blue 4·col + 2 + k % 3.
"""

import io
import pickle
import re
import zipfile

import numpy as np
import pytest

from ntkbench.data import load_dataset
from ntkbench.data.cifar import DataFileError, DataMissingError, _npz_rows, read_cifar5m, read_cifar10
from ntkbench.registry import DATASETS

PER_BATCH = 20  # CIFAR-10: 5 batches of 20 images
PARTS = (7, 5, 6, 4, 8, 10)  # CIFAR-5m: rows of part0 … part5
SIZES = dict(n_train=12, n_val=5, n_test=6)
SPLITS = ("train", "val", "test")


def image(k: int) -> np.ndarray:
    rows, cols = np.mgrid[:32, :32]
    red = np.full((32, 32), 3 * k % 200)
    red.flat[k] = 255
    return np.stack([red, 4 * rows + k % 4, 4 * cols + 2 + k % 3], axis=-1).astype(np.uint8)


def images(ks) -> np.ndarray:
    return np.stack([image(k) for k in ks])


def ids(x: np.ndarray) -> np.ndarray:
    """The ``k`` of each image, raw or standardised."""
    return np.argmax(x[..., 0].reshape(len(x), -1), axis=1)


def write_cifar10(root, per_batch=PER_BATCH):
    directory = root / "cifar-10-batches-py"
    directory.mkdir(parents=True)
    for b in range(5):
        ks = range(b * per_batch, (b + 1) * per_batch)
        rows = [np.concatenate([image(k)[..., c].ravel() for c in range(3)]) for k in ks]  # R, G, B planes
        batch = {b"batch_label": f"training batch {b + 1} of 5".encode(), b"labels": [k % 10 for k in ks],
                 b"data": np.stack(rows), b"filenames": [f"image_{k}.png".encode() for k in ks]}
        with (directory / f"data_batch_{b + 1}").open("wb") as handle:
            pickle.dump(batch, handle, protocol=2)
    return root


def write_cifar5m(root, parts=PARTS, save=np.savez, make=images):
    directory = root / "cifar5m"
    directory.mkdir(parents=True)
    starts = np.cumsum([0, *parts])
    for i, (start, stop) in enumerate(zip(starts, starts[1:])):
        save(directory / f"part{i}.npz", X=make(range(start, stop)), Y=np.arange(start, stop) % 10)
    return root


WRITERS = {"cifar10": write_cifar10, "cifar5m": lambda root: write_cifar5m(root, parts=(40,) * 6)}


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """An empty data directory that ``$NTKBENCH_DATA_DIR`` points at."""
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("NTKBENCH_DATA_DIR", str(path))
    return path


@pytest.fixture(params=sorted(WRITERS))
def dataset(request, data_dir) -> str:
    """The name of a dataset whose tiny files are in ``data_dir``."""
    WRITERS[request.param](data_dir)
    return request.param


def load(name, seed=0, **changes):
    return load_dataset(name, **{**SIZES, **changes}, seed=seed)


# --- reading the files ------------------------------------------------------------------

def test_read_cifar10_turns_channel_major_rows_into_images(data_dir):
    x, y = read_cifar10(write_cifar10(data_dir))
    assert x.shape == (5 * PER_BATCH, 32, 32, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(x, images(range(5 * PER_BATCH)))
    np.testing.assert_array_equal(y, np.arange(5 * PER_BATCH) % 10)
    assert x[37, 5, 9].tolist() == [3 * 37 % 200, 4 * 5 + 1, 4 * 9 + 2 + 1]
    assert x[37, 1, 5, 0] == 255  # flat pixel 37 = row 1, column 5


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed], ids=["savez", "compressed"])
def test_read_cifar5m_takes_the_first_rows_part_after_part(data_dir, save):
    root = write_cifar5m(data_dir, save=save)
    x, y = read_cifar5m(root, 10)  # 7 of part0, 3 of part1
    np.testing.assert_array_equal(x, images(range(10)))
    np.testing.assert_array_equal(y, np.arange(10) % 10)
    assert y.dtype == np.int64
    np.testing.assert_array_equal(ids(read_cifar5m(root, 1000)[0]), np.arange(sum(PARTS)))


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed], ids=["savez", "compressed"])
def test_npz_rows_reads_only_the_requested_rows(data_dir, save, monkeypatch):
    part0 = write_cifar5m(data_dir, save=save) / "cifar5m" / "part0.npz"
    read, real = [], zipfile.ZipExtFile.read
    monkeypatch.setattr(zipfile.ZipExtFile, "read", lambda self, n=-1: read.append(len(data := real(self, n))) or data)
    np.testing.assert_array_equal(_npz_rows(part0, "X", 3), images(range(3)))
    assert 3 * 3072 <= sum(read) < 4 * 3072  # three rows and the .npy header, of seven
    np.testing.assert_array_equal(_npz_rows(part0, "Y", 99), np.arange(7))  # at most the stored rows


def test_npz_rows_rejects_fortran_order(tmp_path):
    np.savez(tmp_path / "part.npz", X=np.asfortranarray(images(range(2))))
    with pytest.raises(ValueError, match="X is stored in Fortran order"):
        _npz_rows(tmp_path / "part.npz", "X", 1)


# --- splits -----------------------------------------------------------------------------

def test_splits_sizes_targets_and_no_overlap(dataset):
    splits = load(dataset)
    assert splits.num_outputs == 10
    seen = []
    for split in SPLITS:
        x, targets, labels = (getattr(splits, f"{field}_{split}") for field in ("x", "targets", "labels"))
        n = SIZES[f"n_{split}"]
        assert x.shape == (n, 32, 32, 3) and x.dtype == np.float32
        assert targets.shape == (n, 10) and labels.shape == (n,)
        np.testing.assert_array_equal(np.argmax(targets, axis=1), labels)
        np.testing.assert_allclose(targets.sum(axis=1), 0.0, atol=1e-6)
        np.testing.assert_array_equal(labels, ids(x) % 10)  # each image keeps its own label
        seen += ids(x).tolist()
    assert len(set(seen)) == len(seen) == sum(SIZES.values())


def test_standardised_per_channel_with_training_statistics(dataset):
    splits = load(dataset)
    train = images(ids(splits.x_train)).astype(np.float64) / 255
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2))
    x_train = splits.x_train.astype(np.float64)
    np.testing.assert_allclose(x_train.mean(axis=(0, 1, 2)), 0.0, atol=1e-3)  # float32 statistics:
    np.testing.assert_allclose(x_train.std(axis=(0, 1, 2)), 1.0, rtol=1e-3)  # see the test below
    for split in SPLITS:
        x = getattr(splits, f"x_{split}")
        np.testing.assert_allclose(x, (images(ids(x)) / 255 - mean) / std, atol=1e-3, err_msg=split)


def test_standardisation_statistics_do_not_drift_with_the_training_size(data_dir):
    write_cifar5m(data_dir, parts=(700,) * 6, make=lambda ks: np.random.default_rng(ks.start).integers(
        0, 256, (len(ks), 32, 32, 3), dtype=np.uint8))
    x_train = load("cifar5m", n_train=2000, n_val=1, n_test=1).x_train.astype(np.float64)
    np.testing.assert_allclose(x_train.std(axis=(0, 1, 2)), 1.0, rtol=1e-5)
    np.testing.assert_allclose(x_train.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)


def test_seed_shuffles_the_pool_deterministically(dataset):
    first, again, other = load(dataset), load(dataset), load(dataset, seed=1)
    for split in SPLITS:
        for field in ("x", "targets", "labels"):
            np.testing.assert_array_equal(getattr(first, f"{field}_{split}"), getattr(again, f"{field}_{split}"))
    assert not np.array_equal(ids(first.x_train), ids(other.x_train))


def test_cifar10_larger_training_sets_extend_smaller_ones(data_dir):
    """The pool is always the whole file set, so val/test keep their images and train grows."""
    write_cifar10(data_dir)
    small, large = load("cifar10"), load("cifar10", n_train=30)
    np.testing.assert_array_equal(ids(large.x_train)[:SIZES["n_train"]], ids(small.x_train))
    for split in ("val", "test"):
        np.testing.assert_array_equal(ids(getattr(large, f"x_{split}")), ids(getattr(small, f"x_{split}")))
        np.testing.assert_array_equal(getattr(large, f"targets_{split}"), getattr(small, f"targets_{split}"))


def test_classes_keeps_and_relabels_a_subset(dataset):
    splits = load(dataset, n_train=6, n_val=2, n_test=2, classes=(3, 5))
    assert splits.num_outputs == 2
    for split in SPLITS:
        x, labels = getattr(splits, f"x_{split}"), getattr(splits, f"labels_{split}")
        assert set(ids(x) % 10) <= {3, 5}
        np.testing.assert_array_equal(labels, (ids(x) % 10 == 5).astype(int))
        np.testing.assert_array_equal(np.argmax(getattr(splits, f"targets_{split}"), axis=1), labels)


# --- missing data -----------------------------------------------------------------------

EXPECTED = {"cifar10": ("cifar-10-batches-py", "data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5"),
            "cifar5m": ("cifar5m", "part0.npz, part1.npz, part2.npz, part3.npz, part4.npz, part5.npz")}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_missing_directory_says_what_to_put_where(name, data_dir):
    directory, files = EXPECTED[name]
    with pytest.raises(DataMissingError) as info:
        load(name)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError) and "\n" not in message
    assert message.startswith(f"{data_dir / directory} is missing: ")
    assert f"({files})" in message and "--ntkbench-data-dir / $NTKBENCH_DATA_DIR" in message


@pytest.mark.parametrize("name, removed", [("cifar10", "data_batch_3"), ("cifar5m", "part4.npz")])
def test_partial_directory_names_the_missing_file(name, removed, data_dir):
    WRITERS[name](data_dir)
    (data_dir / EXPECTED[name][0] / removed).unlink()
    with pytest.raises(DataMissingError, match=f"^{data_dir / EXPECTED[name][0]} lacks {removed}: "):
        load(name)


def test_cifar5m_pool_too_small_for_the_splits(data_dir):
    write_cifar5m(data_dir, parts=(2,) * 6)
    with pytest.raises(ValueError, match="^pool has 12 samples, 23 needed$"):
        load("cifar5m")


# --- damaged files ----------------------------------------------------------------------

def pickled(batch) -> bytes:
    return pickle.dumps(batch, protocol=2)


def npz(compress=False, **arrays) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def flipped(data: bytes, start: int = 100, stop: int = 200) -> bytes:
    """``data`` with the bits of ``data[start:stop]`` flipped (by default: in the first member's data)."""
    return data[:start] + bytes(b ^ 0xFF for b in data[start:stop]) + data[stop:]


def batch(data=None, labels=None, **changes) -> dict:
    """A CIFAR-10 batch of two images (``data``, ``labels``: replacements)."""
    rows = np.zeros((2, 3072), np.uint8) if data is None else data
    return {b"data": rows, b"labels": [1, 2] if labels is None else labels, **changes}


DAMAGED = [  # (dataset, file, its bytes given the good ones, a regular expression for the problem named)
    pytest.param("cifar10", "data_batch_3", lambda good: b"junk", "pickle data was truncated", id="junk"),
    pytest.param("cifar10", "data_batch_3", lambda good: b"h\x00.", "Memo value not found", id="memo-junk"),
    pytest.param("cifar10", "data_batch_3", lambda good: b"", "Ran out of input", id="empty"),
    pytest.param("cifar10", "data_batch_3", lambda good: good[: len(good) // 2], "", id="truncated"),
    pytest.param("cifar10", "data_batch_3", lambda good: pickled([1, 2]), "no dict of data and labels", id="a-list"),
    pytest.param("cifar10", "data_batch_3", lambda good: pickled({b"data": np.zeros((2, 3072), np.uint8)}),
                 "no dict of data and labels", id="no-labels"),
    pytest.param("cifar10", "data_batch_3", lambda good: pickled(batch(np.zeros((2, 3071), np.uint8))),
                 r"data is uint8 \(2, 3071\), not uint8 rows of 3×32×32 pixels", id="short-rows"),
    pytest.param("cifar10", "data_batch_3", lambda good: pickled(batch(np.zeros((2, 3072)))), "data is float64",
                 id="float-pixels"),
    pytest.param("cifar10", "data_batch_3", lambda good: pickled(batch(labels=[1])),
                 "labels are not 2 classes in 0…9, one per image", id="missing-label"),
    pytest.param("cifar10", "data_batch_3", lambda good: pickled(batch(labels=[1, 10])), "labels are not 2 classes",
                 id="label-out-of-range"),
    pytest.param("cifar5m", "part1.npz", lambda good: b"junk", "File is not a zip file", id="5m-junk"),
    pytest.param("cifar5m", "part1.npz", lambda good: good[: len(good) // 2], "File is not a zip file",
                 id="5m-truncated"),
    pytest.param("cifar5m", "part1.npz", lambda good: flipped(npz(True, X=images(range(40)), Y=np.zeros(40, int))),
                 "Error -3 while decompressing|Bad CRC-32", id="5m-corrupted-compressed"),
    pytest.param("cifar5m", "part1.npz", lambda good: npz(X=images(range(40))), "no item named 'Y.npy'", id="5m-no-Y"),
    pytest.param("cifar5m", "part1.npz", lambda good: npz(X=images(range(40)).astype(np.float32), Y=np.zeros(40, int)),
                 r"X is float32 \(32, 32, 3\) images, not uint8 32×32×3", id="5m-float-images"),
    pytest.param("cifar5m", "part1.npz", lambda good: npz(X=np.zeros((40, 32, 32), np.uint8), Y=np.zeros(40, int)),
                 r"X is uint8 \(32, 32\) images", id="5m-grey-images"),
    pytest.param("cifar5m", "part1.npz", lambda good: npz(X=images(range(40)), Y=np.zeros(3, int)),
                 "Y are not 6 classes in 0…9, one per image", id="5m-short-Y"),
    pytest.param("cifar5m", "part1.npz", lambda good: npz(X=images(range(40)), Y=np.full(40, 12)),
                 "Y are not 6 classes", id="5m-label-out-of-range"),
]


@pytest.mark.parametrize("name, file, damage, problem", DAMAGED)
def test_damaged_file_is_a_one_line_error_naming_it(data_dir, name, file, damage, problem):
    WRITERS[name](data_dir)
    path = data_dir / EXPECTED[name][0] / file
    path.write_bytes(damage(path.read_bytes()))
    what = {"cifar10": "a CIFAR-10 python batch", "cifar5m": r"a CIFAR-5m part \(arrays X and Y\)"}[name]
    with pytest.raises(DataFileError, match=f"^{re.escape(str(path))} is not {what}: .*{problem}") as info:
        load(name)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_registered_as_image_datasets():
    for name in ("cifar10", "cifar5m"):
        assert DATASETS.get(name).input_kind == "image" and DATASETS.get(name).task == "classification"


def test_data_dir_option_exists():
    from ntkbench.plugin import pytest_addoption

    names = []
    group = type("Group", (), {"addoption": lambda self, *opts, **kwargs: names.extend(opts)})()
    pytest_addoption(type("Parser", (), {"getgroup": lambda self, *args: group})())
    assert "--ntkbench-tier" in names and "--ntkbench-data-dir" in names
